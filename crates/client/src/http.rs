//! A small HTTP/1.1 client for what OAUTHBEARER needs around Kafka's protocol: a broker
//! fetching its identity provider's keys (JWKS), a client asking a token endpoint for an
//! access token. One request per connection (`Connection: close`), `http` and `https`
//! (rustls, the operating system's roots unless others are given), bodies up to 1 MiB,
//! sized by `Content-Length`, chunked, or the end of the connection. Everything a server
//! sends is checked: a malformed answer is an error, never a panic.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls;

/// The largest response accepted, headers and body.
const MAX_RESPONSE: usize = 1 << 20;

/// A response: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The parts of an `http://` or `https://` URL a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url}: only http:// and https:// URLs are fetched"));
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let target = target.split('#').next().unwrap_or("/").to_string();
        if authority.contains('@') {
            return Err(format!(
                "{url}: user information in the URL is not supported"
            ));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unterminated IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p}"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("{url}: bad authority {authority}")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("{url}: bad port {p}"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        if host
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b"/?#[]@\\".contains(&b))
        {
            return Err(format!("{url}: bad host {host:?}"));
        }
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("{url}: the path has spaces or control characters"));
        }
        Ok(Url {
            https,
            host,
            port,
            target,
        })
    }
}

/// Sends one request and reads its response within `timeout`. `tls` is the TLS setting
/// for `https` URLs (the operating system's roots when `None`).
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Response, String> {
    let parsed = Url::parse(url)?;
    tokio::time::timeout(
        timeout,
        exchange(method, &parsed, headers, body, tls_config),
    )
    .await
    .map_err(|_| format!("{url}: no answer within {} ms", timeout.as_millis()))?
    .map_err(|e| format!("{url}: {e}"))
}

async fn exchange(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
) -> Result<Response, String> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut stream = if url.https {
        let config = match tls_config {
            Some(c) => c,
            None => tls::client_config(None, None)?,
        };
        tls::connect(&config, &url.host, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?
    } else {
        tls::Stream::Plain(tcp)
    };
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\nAccept: application/json\r\n",
        url.target, url.port
    );
    for (k, v) in headers {
        if [k, v].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err(format!("header {k} has a line break"));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("send: {e}"))?;
    stream.flush().await.map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let mut head_seen = false;
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_RESPONSE {
                    return Err(format!("the response exceeds {MAX_RESPONSE} bytes"));
                }
                // Parsed once the head has come (a new read cannot complete a head
                // whose end is not in the last few bytes plus the new ones).
                let from = raw.len().saturating_sub(n + 3);
                if head_seen || raw[from..].windows(4).any(|w| w == b"\r\n\r\n") {
                    head_seen = true;
                    if let Some(r) = parse_response(&raw, false)? {
                        return Ok(r);
                    }
                }
            }
            // A server that closes without TLS's close_notify after a whole response.
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    parse_response(&raw, true)?.ok_or_else(|| "the response ended early".to_string())
}

/// The response in `raw`, or `None` while more is to come. `eof`: the connection ended.
fn parse_response(mut raw: &[u8], eof: bool) -> Result<Option<Response>, String> {
    // Interim answers (100 Continue...) come before the real one.
    let (status, lines, rest) = loop {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(None);
        };
        let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the header is not UTF-8")?;
        let rest = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(format!("bad status line {status_line:?}"));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(format!("bad status line {status_line:?}"));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| format!("bad status line {status_line:?}"))?;
        if (100..200).contains(&status) {
            raw = rest;
            continue;
        }
        break (status, lines, rest);
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?,
            );
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        }
    }
    if chunked {
        return dechunk(rest).map(|b| b.map(|body| Response { status, body }));
    }
    match length {
        Some(n) if rest.len() >= n => Ok(Some(Response {
            status,
            body: rest[..n].to_vec(),
        })),
        Some(_) if eof => Err("the response ended early".into()),
        Some(_) => Ok(None),
        None if eof || status == 204 || status == 304 => Ok(Some(Response {
            status,
            body: rest.to_vec(),
        })),
        None => Ok(None),
    }
}

/// A chunked body, or `None` until its last chunk has come.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size.saturating_add(2) {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err("a chunk does not end with CRLF".into());
        }
        rest = &rest[size + 2..];
    }
}

/// The path of a `file:` URL (`file:/p`, `file:///p`, `file://localhost/p`); `None` for
/// other URLs.
pub fn file_url_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("file:")?;
    Some(
        rest.strip_prefix("//localhost")
            .or_else(|| rest.strip_prefix("//").filter(|r| r.starts_with('/')))
            .unwrap_or(rest),
    )
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://idp.example:8443/keys?x=1#frag").expect("url");
        assert_eq!(
            u,
            Url {
                https: true,
                host: "idp.example".into(),
                port: 8443,
                target: "/keys?x=1".into()
            }
        );
        let u = Url::parse("http://[::1]/").expect("url");
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        assert_eq!(Url::parse("http://h?q").expect("url").target, "/?q");
        for bad in [
            "ftp://h/",
            "http://",
            "http://h:x/",
            "http://u@h/",
            "http://h/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false);
        assert_eq!(
            r,
            Ok(Some(Response {
                status: 200,
                body: b"{}".to_vec()
            }))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false),
            Ok(None)
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", true).is_err());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n1;x\r\n}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked, false).map(|r| r.map(|r| r.body)),
            Ok(Some(b"{\"}".to_vec()))
        );
        assert_eq!(
            parse_response(b"HTTP/1.0 404 Nope\r\n\r\nmissing", true).map(|r| r.map(|r| r.status)),
            Ok(Some(404))
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .map(|r| r.map(|r| r.status)),
            Ok(Some(200))
        );
        for bad in [
            &b"SMTP 200\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
        ] {
            assert!(parse_response(bad, true).is_err(), "{bad:?}");
        }
        assert_eq!(form_encode("a b/c=d"), "a+b%2Fc%3Dd");
        for url in ["file:/a/b", "file:///a/b", "file://localhost/a/b"] {
            assert_eq!(file_url_path(url), Some("/a/b"), "{url}");
        }
        assert_eq!(file_url_path("http://h/a"), None);
    }
}
