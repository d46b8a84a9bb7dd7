//! TLS for both ends of krust's connections (rustls, with the ring provider): certificates
//! and keys from PEM, Kafka's `ssl.enabled.protocols` names, and the stream a client
//! connection reads and writes, plain or encrypted.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::SupportedProtocolVersion;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The TLS versions of an `ssl.enabled.protocols` value krust speaks (`TLSv1.2`,
/// `TLSv1.3`), and the older ones it leaves out (`TLSv1.1`, ...: never offered, as a JDK
/// with them disabled does). An error if none is left.
#[allow(clippy::type_complexity)]
pub fn versions(
    list: &str,
) -> Result<(Vec<&'static SupportedProtocolVersion>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = match p {
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.3" => &rustls::version::TLS13,
            "TLSv1.1" | "TLSv1" | "SSLv3" | "SSLv2Hello" => {
                left_out.push(p.to_string());
                continue;
            }
            other => return Err(format!("unknown protocol {other}")),
        };
        if !out
            .iter()
            .any(|o: &&SupportedProtocolVersion| o.version == v.version)
        {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err("no protocol krust speaks (TLSv1.2, TLSv1.3) is enabled".into());
    }
    Ok((out, left_out))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates of a PEM text, in order.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read the certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| format!("cannot read the private key (an unencrypted PEM key is needed): {e}"))
}

fn roots(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(pem)? {
        roots
            .add(c)
            .map_err(|e| format!("cannot trust a certificate: {e}"))?;
    }
    Ok(roots)
}

/// A server's TLS settings: its certificate chain and (unencrypted) private key in PEM,
/// and, to check clients' certificates, the certificates that sign them (PEM) and
/// whether a client must show one (`ssl.client.auth` required) or may (requested).
pub fn server_config(
    chain_pem: &[u8],
    key_pem: &[u8],
    versions: &[&'static SupportedProtocolVersion],
    client_roots: Option<(&[u8], bool)>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = certificates(chain_pem)?;
    let key = private_key(key_pem)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some((pem, required)) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(pem)?),
                provider(),
            );
            let verifier = if required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("cannot check client certificates: {e}"))?,
            )
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    Ok(Arc::new(config))
}

/// The certificates the operating system trusts.
fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no truststore was given and the system's certificates could not be read{}",
            found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    Ok(roots)
}

/// A client's TLS settings: the certificates it trusts (PEM; the operating system's when
/// `None`, as Kafka's clients fall back to theirs), and its own certificate chain and key
/// (PEM) for servers that ask for one. The server's name is verified against its
/// certificate, as Kafka's `ssl.endpoint.identification.algorithm=https`.
pub fn client_config(
    trust_pem: Option<&[u8]>,
    identity: Option<(&[u8], &[u8])>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = match trust_pem {
        Some(pem) => roots(pem)?,
        None => system_roots()?,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(certificates(chain)?, private_key(key)?)
            .map_err(|e| format!("the client certificate and key do not match: {e}"))?,
    };
    Ok(Arc::new(config))
}

/// Opens TLS over `tcp` to `host` (the name its certificate must carry).
pub async fn connect(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> io::Result<Stream> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await?;
    Ok(Stream::Tls(Box::new(tls)))
}

/// A client connection's transport.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
