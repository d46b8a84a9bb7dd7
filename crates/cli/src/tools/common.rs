//! What every tool shares: argument parsing with Kafka's exit codes, `--command-config`
//! properties, the client settings they imply, and small codecs (base64 topic ids, murmur2,
//! a minimal JSON reader).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use krust_client::{Client, ClientConfig, SocketBuffers};

/// `--bootstrap-server` and `--command-config`, accepted by every tool.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// REQUIRED: The Kafka server(s) to connect to, host:port[,host:port].
    #[arg(long = "bootstrap-server", value_name = "server to connect to")]
    pub bootstrap_server: String,
    /// Property file with client configs (client.id, request.timeout.ms,
    /// receive.buffer.bytes, send.buffer.bytes, security.protocol, sasl.mechanism and
    /// sasl.jaas.config are used).
    #[arg(long = "command-config", value_name = "command config property file")]
    pub command_config: Option<PathBuf>,
}

impl ConnectArgs {
    /// Client settings from the command config (request.timeout.ms default 30000).
    pub fn client_config(&self, default_client_id: &str) -> anyhow::Result<ClientConfig> {
        let props = match &self.command_config {
            Some(path) => load_properties(path)?,
            None => BTreeMap::new(),
        };
        client_config_from(&props, default_client_id)
    }

    /// Connects to the bootstrap servers.
    pub async fn connect(&self, default_client_id: &str) -> anyhow::Result<Client> {
        let config = self.client_config(default_client_id)?;
        Ok(Client::connect(&self.bootstrap_server, config).await?)
    }
}

/// Client settings from properties.
pub fn client_config_from(
    props: &BTreeMap<String, String>,
    default_client_id: &str,
) -> anyhow::Result<ClientConfig> {
    let base = ClientConfig {
        client_id: default_client_id.to_string(),
        request_timeout: Duration::from_secs(30),
        buffers: SocketBuffers::default(),
        sasl: None,
        tls: None,
    };
    client_config_over(base, props)
}

/// `config` with each client setting that `props` sets replaced (client.id,
/// request.timeout.ms, receive.buffer.bytes, send.buffer.bytes): a tool's consumer or
/// producer properties over its --command-config.
pub fn client_config_over(
    mut config: ClientConfig,
    props: &BTreeMap<String, String>,
) -> anyhow::Result<ClientConfig> {
    if let Some(id) = props.get("client.id") {
        config.client_id = id.clone();
    }
    if let Some(ms) = props.get("request.timeout.ms") {
        let ms: u64 = ms
            .trim()
            .parse()
            .with_context(|| format!("Invalid value {ms} for configuration request.timeout.ms"))?;
        config.request_timeout = Duration::from_millis(ms);
    }
    if let Some(v) = props.get("receive.buffer.bytes") {
        config.buffers.receive = socket_buffer_size("receive.buffer.bytes", v)?;
    }
    if let Some(v) = props.get("send.buffer.bytes") {
        config.buffers.send = socket_buffer_size("send.buffer.bytes", v)?;
    }
    if let Some(p) = props.get("security.protocol") {
        let p = p.trim().to_ascii_uppercase();
        let (tls, sasl) = match p.as_str() {
            "PLAINTEXT" => (false, false),
            "SASL_PLAINTEXT" => (false, true),
            "SSL" => (true, false),
            "SASL_SSL" => (true, true),
            _ => bail!(
                "Invalid value {p} for configuration security.protocol: String must be one of: \
                 PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            ),
        };
        config.sasl = if sasl {
            Some(sasl_credentials(props)?)
        } else {
            None
        };
        config.tls = if tls { Some(tls_config(props)?) } else { None };
    }
    Ok(config)
}

/// The certificates a TLS client trusts: `ssl.truststore.location` (PEM; also librdkafka's
/// `ssl.ca.location`) or `ssl.truststore.certificates`.
fn tls_config(
    props: &BTreeMap<String, String>,
) -> anyhow::Result<std::sync::Arc<rustls::ClientConfig>> {
    if let Some(t) = props.get("ssl.truststore.type") {
        if !t.trim().eq_ignore_ascii_case("PEM") {
            bail!("Invalid value {t} for configuration ssl.truststore.type: krust's tools read PEM truststores only");
        }
    }
    if let Some(a) = props.get("ssl.endpoint.identification.algorithm") {
        if !a.trim().eq_ignore_ascii_case("https") {
            bail!("Invalid value '{a}' for configuration ssl.endpoint.identification.algorithm: krust's tools always verify the broker's name (https)");
        }
    }
    // Without a truststore, the operating system's certificates.
    let pem = match (
        props
            .get("ssl.truststore.location")
            .or_else(|| props.get("ssl.ca.location")),
        props.get("ssl.truststore.certificates"),
    ) {
        (Some(path), None) => Some(
            std::fs::read(path.trim())
                .with_context(|| format!("cannot read the truststore {path}"))?,
        ),
        (None, Some(certs)) => Some(certs.clone().into_bytes()),
        (None, None) => None,
        (Some(_), Some(_)) => {
            bail!("Set one of ssl.truststore.location and ssl.truststore.certificates, not both")
        }
    };
    // The client's own certificate, for brokers that check them: `ssl.keystore.location`
    // (PEM, key and chain) or librdkafka's `ssl.certificate.location` and `ssl.key.location`.
    if let Some(t) = props.get("ssl.keystore.type") {
        if !t.trim().eq_ignore_ascii_case("PEM") {
            bail!("Invalid value {t} for configuration ssl.keystore.type: krust's tools read PEM keystores only");
        }
    }
    let read = |key: &str, path: &str| {
        std::fs::read(path.trim()).with_context(|| format!("cannot read {key} {path}"))
    };
    for inline in ["ssl.keystore.key", "ssl.keystore.certificate.chain"] {
        if props.contains_key(inline) {
            bail!(
                "{inline} is not read by krust's tools: give the client certificate as \
                 ssl.keystore.location (a PEM file with the key and chain)"
            );
        }
    }
    let identity = match (
        props.get("ssl.keystore.location"),
        props.get("ssl.certificate.location"),
        props.get("ssl.key.location"),
    ) {
        (None, None, None) => None,
        (Some(path), None, None) => {
            let pem = read("ssl.keystore.location", path)?;
            Some((pem.clone(), pem))
        }
        (None, Some(cert), Some(key)) => Some((
            read("ssl.certificate.location", cert)?,
            read("ssl.key.location", key)?,
        )),
        _ => bail!(
            "A client certificate is given by ssl.keystore.location, or by \
             ssl.certificate.location with ssl.key.location"
        ),
    };
    krust_client::tls::client_config(
        pem.as_deref(),
        identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
    )
    .map_err(|e| anyhow::anyhow!("Invalid TLS settings: {e}"))
}

/// The SASL credentials of client properties: `sasl.mechanism` (PLAIN, SCRAM-SHA-256,
/// SCRAM-SHA-512 or OAUTHBEARER), and the `username` and `password` options of
/// `sasl.jaas.config` (or librdkafka's `sasl.username` and `sasl.password`). OAUTHBEARER
/// takes its token as Kafka's clients do: from `sasl.oauthbearer.token.endpoint.url` (an
/// `http(s)` token endpoint with the `clientId` and `clientSecret` options, or a `file:`
/// holding the token), else an unsecured token built from the `unsecuredLogin*` options.
fn sasl_credentials(
    props: &BTreeMap<String, String>,
) -> anyhow::Result<krust_client::SaslCredentials> {
    let name = props.get("sasl.mechanism").map_or("GSSAPI", |m| m.trim());
    let Some(mechanism) = krust_client::Mechanism::parse(name) else {
        bail!(
            "Invalid value {name} for configuration sasl.mechanism: krust's tools support \
             PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER"
        );
    };
    let jaas = props
        .get("sasl.jaas.config")
        .map(|jaas| {
            krust_protocol::sasl::parse_jaas(jaas)
                .map_err(|e| anyhow::anyhow!("Invalid sasl.jaas.config: {e}"))
        })
        .transpose()?;
    if mechanism == krust_client::Mechanism::OAuthBearer {
        let options = jaas.map(|j| j.options).unwrap_or_default();
        let login = krust_client::oauth::OAuthLogin::from_options(
            &options,
            props
                .get("sasl.oauthbearer.token.endpoint.url")
                .map(String::as_str),
        )
        .map_err(|e| anyhow::anyhow!("Invalid OAUTHBEARER settings: {e}"))?;
        return Ok(krust_client::SaslCredentials {
            mechanism,
            username: String::new(),
            password: String::new(),
            oauth: Some(std::sync::Arc::new(login)),
        });
    }
    let (username, password) = match jaas {
        Some(j) => (
            j.option("username").map(str::to_string),
            j.option("password").map(str::to_string),
        ),
        None => (
            props.get("sasl.username").cloned(),
            props.get("sasl.password").cloned(),
        ),
    };
    match (username, password) {
        (Some(username), Some(password)) => Ok(krust_client::SaslCredentials {
            mechanism,
            username,
            password,
            oauth: None,
        }),
        _ => bail!(
            "security.protocol=SASL_PLAINTEXT needs a username and a password: set \
             sasl.jaas.config (with username=\"...\" password=\"...\") or sasl.username and \
             sasl.password"
        ),
    }
}

/// A socket buffer size as Kafka's clients take it: -1 for the operating system's default,
/// else a size in bytes. Left unset, the operating system's default is kept too (Kafka's
/// clients would set 64 KiB or 128 KiB, which turns the kernel's autotuning off).
pub fn socket_buffer_size(key: &str, value: &str) -> anyhow::Result<Option<u32>> {
    let n: i64 = value
        .trim()
        .parse()
        .with_context(|| format!("Invalid value {value} for configuration {key}"))?;
    socket_buffer_bytes(key, n)
}

/// [`socket_buffer_size`] of a number already parsed.
pub fn socket_buffer_bytes(key: &str, value: i64) -> anyhow::Result<Option<u32>> {
    match value {
        -1 => Ok(None),
        n if n >= 1 => Ok(Some(u32::try_from(n).with_context(|| {
            format!("Invalid value {value} for configuration {key}: too large")
        })?)),
        _ => bail!(
            "Invalid value {value} for configuration {key}: Value must be -1 (the system \
             default) or a positive size"
        ),
    }
}

/// Reads a Java properties file (`key=value`, `key:value` or `key value`; `#`/`!` comments).
pub fn load_properties(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(parse_properties(&text))
}

/// Parses properties text; continuation lines (trailing `\`) are joined.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':', ' ', '\t']);
        let (k, v) = match split {
            Some(i) => {
                // The key ends at '=', ':' or whitespace; then whitespace and at most one
                // '=' or ':' separate it from the value.
                let rest = entry[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                (&entry[..i], rest)
            }
            None => (entry.as_str(), ""),
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    out
}

/// Parses `key=value` items (as given to `--property`).
pub fn parse_key_values(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("Invalid property '{item}': expected key=value");
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

/// Parses the tool's arguments (`args` without the program name). Help goes to stdout with
/// exit 0; any other problem is one `Error: ...` line on stderr and exit 1, as Kafka's tools.
pub fn parse_args<T: Parser>(name: &str, args: Vec<OsString>) -> Result<T, ExitCode> {
    let mut full = vec![OsString::from(name)];
    full.extend(args);
    match T::try_parse_from(full) {
        Ok(t) => Ok(t),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                let _ = e.print();
                Err(ExitCode::SUCCESS)
            }
            _ => {
                // clap's first paragraph (e.g. the missing arguments), as one line.
                let text = e.to_string();
                let first: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                let first = first.join(" ");
                let first = first.strip_prefix("error: ").unwrap_or(&first);
                eprintln!("Error: {first} (see {name} --help)");
                Err(ExitCode::FAILURE)
            }
        },
    }
}

/// Runs a future on a fresh single-threaded runtime.
pub fn block_on<F: Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

/// The exit code of a tool whose run says whether it succeeded; stdout is flushed first and
/// an error is reported after `prefix`.
pub fn exit_code(outcome: anyhow::Result<bool>, prefix: &str) -> ExitCode {
    flush_stdout();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => fail(prefix, &e),
    }
}

/// Prints `prefix` + the error's message as one line on stderr and returns exit code 1.
pub fn fail(prefix: &str, e: &anyhow::Error) -> ExitCode {
    let msg = format!("{e:#}").replace('\n', " ");
    eprintln!("{prefix}{msg}");
    ExitCode::FAILURE
}

/// Writes one line to stdout; a closed stdout ends the process with exit code 1.
pub fn write_stdout_line(line: &str) {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if writeln!(lock, "{line}").is_err() {
        std::process::exit(1);
    }
}

/// Flushes stdout, ignoring a closed pipe.
pub fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

/// Kafka's string form of a topic id: URL-safe base64 without padding (22 characters).
pub fn topic_id_string(id: &uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's default partition for a keyed record: `toPositive(murmur2(key)) % n`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Topics Kafka treats as internal (`org.apache.kafka.common.internals.Topic`).
pub fn is_internal_topic(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}

/// One partition of a topic as Metadata describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
}

/// Metadata of one topic: its id and partitions (sorted). With `auto_create` the broker may
/// create a missing topic (as for a producer). Retriable answers (a topic being created, a
/// partition without leader) are retried until the request timeout; an unknown topic is an
/// error.
pub async fn topic_partitions(
    client: &mut Client,
    topic: &str,
    auto_create: bool,
) -> anyhow::Result<(uuid::Uuid, Vec<PartitionLeader>)> {
    let deadline = std::time::Instant::now() + client.config().request_timeout;
    loop {
        let md = client
            .metadata_with(Some(&[topic.to_string()]), auto_create)
            .await?;
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
            .ok_or_else(|| anyhow::anyhow!("Topic {topic} not present in metadata"))?;
        let retry = match krust_client::ClientError::check(t.error_code, None) {
            Ok(()) => t.partitions.is_empty() || t.partitions.iter().any(|p| p.leader_id.0 < 0),
            Err(e) if e.is_retriable() && e.code() != Some(3) => true,
            Err(e) if e.code() == Some(3) => {
                anyhow::bail!("Topic {topic} not present in metadata");
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("Topic {topic}")));
            }
        };
        if retry && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let mut parts: Vec<PartitionLeader> = t
            .partitions
            .iter()
            .map(|p| PartitionLeader {
                partition: p.partition_index,
                leader: p.leader_id.0,
            })
            .collect();
        parts.sort_by_key(|p| p.partition);
        if parts.is_empty() {
            anyhow::bail!("Topic {topic} not present in metadata");
        }
        return Ok((t.topic_id, parts));
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A JSON value, enough to read Kafka's tool input files.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Number(n) if n.fract() == 0.0 && n.abs() < 9.007e15 => Some(*n as i64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Parses a complete JSON document.
    pub fn parse(text: &str) -> anyhow::Result<Json> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
            depth: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            bail!("unexpected trailing characters at position {}", p.i);
        }
        Ok(v)
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> anyhow::Result<()> {
        self.ws();
        if self.peek() != Some(c) {
            bail!("expected '{}' at position {}", c as char, self.i);
        }
        self.i += 1;
        Ok(())
    }

    fn value(&mut self) -> anyhow::Result<Json> {
        self.ws();
        self.depth += 1;
        if self.depth > 64 {
            bail!("JSON nested too deeply");
        }
        let v = match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.expect(b':')?;
                        let v = self.value()?;
                        fields.push((k, v));
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => bail!("expected ',' or '}}' at position {}", self.i),
                        }
                    }
                }
                Json::Object(fields)
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => bail!("expected ',' or ']' at position {}", self.i),
                        }
                    }
                }
                Json::Array(items)
            }
            Some(b'"') => Json::String(self.string()?),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Json::Bool(true)
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Json::Bool(false)
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Json::Null
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).context("invalid number")?;
                Json::Number(
                    text.parse()
                        .with_context(|| format!("invalid number '{text}'"))?,
                )
            }
            _ => bail!("unexpected character at position {}", self.i),
        };
        self.depth -= 1;
        Ok(v)
    }

    fn string(&mut self) -> anyhow::Result<String> {
        if self.peek() != Some(b'"') {
            bail!("expected a string at position {}", self.i);
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                bail!("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        bail!("unterminated string");
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .context("truncated \\u escape")?;
                            let code = u32::from_str_radix(
                                std::str::from_utf8(hex).context("bad \\u escape")?,
                                16,
                            )
                            .context("bad \\u escape")?;
                            self.i += 4;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => bail!("bad escape at position {}", self.i),
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).context("string is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn socket_buffers_follow_kafka_values() {
        let props: BTreeMap<String, String> = [
            ("receive.buffer.bytes", "65536"),
            ("send.buffer.bytes", "-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = client_config_from(&props, "x").expect("config");
        assert_eq!(c.buffers.receive, Some(65536));
        assert_eq!(c.buffers.send, None);
        assert_eq!(
            client_config_from(&BTreeMap::new(), "x")
                .expect("config")
                .buffers,
            SocketBuffers::default()
        );
        for bad in ["0", "-2", "big", "4294967296"] {
            let err = socket_buffer_size("receive.buffer.bytes", bad).expect_err(bad);
            assert!(
                err.to_string().starts_with(&format!(
                    "Invalid value {bad} for configuration receive.buffer.bytes"
                )),
                "{err}"
            );
        }
        // Properties override the base only where they set a key.
        let base = ClientConfig {
            client_id: "base".to_string(),
            request_timeout: Duration::from_secs(1),
            buffers: SocketBuffers {
                receive: Some(1),
                send: Some(2),
            },
            sasl: None,
            tls: None,
        };
        let mut only_send = BTreeMap::new();
        only_send.insert("send.buffer.bytes".to_string(), "-1".to_string());
        let over = client_config_over(base, &only_send).expect("config");
        assert_eq!(
            over.buffers,
            SocketBuffers {
                receive: Some(1),
                send: None
            }
        );
        assert_eq!(
            (over.client_id.as_str(), over.request_timeout),
            ("base", Duration::from_secs(1))
        );
    }

    #[test]
    fn topic_ids_are_url_safe_base64() {
        let id = uuid::Uuid::from_bytes([0xff; 16]);
        assert_eq!(topic_id_string(&id), "_____________________w");
        assert_eq!(
            topic_id_string(&uuid::Uuid::nil()),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
    }

    #[test]
    fn json_reads_kafka_offset_files() {
        let j = Json::parse(
            r#"{"partitions":[{"topic":"t\u0041","partition":0,"offset":3}],"version":1}"#,
        )
        .expect("parse");
        let p = &j
            .get("partitions")
            .and_then(|p| p.as_array())
            .expect("array")[0];
        assert_eq!(p.get("topic").and_then(Json::as_str), Some("tA"));
        assert_eq!(p.get("offset").and_then(Json::as_i64), Some(3));
        assert!(Json::parse("{").is_err());
        assert!(Json::parse("[1,]").is_err());
    }

    #[test]
    fn properties_parse_like_java() {
        let p = parse_properties("# c\nclient.id = me\nrequest.timeout.ms:500\n\nx\n");
        assert_eq!(p.get("client.id").map(String::as_str), Some("me"));
        assert_eq!(p.get("request.timeout.ms").map(String::as_str), Some("500"));
        assert_eq!(p.get("x").map(String::as_str), Some(""));
    }
}
