//! krust's one internal Kafka client.
//!
//! [`Connection`] is one TCP connection to one broker: it negotiates API versions with
//! ApiVersions when it connects, then [`Connection::send`] frames any
//! [`kafka_protocol::protocol::Request`] at the highest version both sides support,
//! matches the correlation id and decodes the response, each step under a timeout.
//!
//! [`Client`] sits over a list of bootstrap servers: it answers Metadata, keeps the broker
//! list it learns from it, and opens (and caches) connections to brokers by node id.
//! [`Client::retry`] repeats an operation on retriable errors until a deadline.
//!
//! Nothing read from the network is trusted: every malformed frame becomes a
//! [`ClientError::Protocol`], never a panic.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use krust_protocol::sasl;
pub use krust_protocol::sasl::Mechanism;

pub mod http;
pub mod oauth;
pub mod tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Largest response frame accepted (Kafka's clients have no hard limit; this guards memory).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Bytes read from a connection at a time.
const READ_BUFFER: usize = 64 * 1024;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// Everything that can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("Failed to connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// An operation did not finish in time.
    #[error("Timed out after {}ms waiting for {what}", .after.as_millis())]
    Timeout { what: String, after: Duration },
    /// The connection broke while a request was in flight.
    #[error("Connection to {addr} failed: {reason}")]
    Io { addr: String, reason: String },
    /// The broker sent something that is not a valid Kafka response.
    #[error("Protocol error: {0}")]
    Protocol(String),
    /// Neither side has a version of this API in common with the other.
    #[error("The broker does not support {api:?} (client versions {client_min}..{client_max})")]
    UnsupportedApi {
        api: ApiKey,
        client_min: i16,
        client_max: i16,
    },
    /// The broker answered with an error code.
    #[error("{message}")]
    Broker { code: i16, message: String },
    /// SASL authentication failed (the broker closes the connection after it).
    #[error("SASL authentication failed: {0}")]
    Authentication(String),
}

impl ClientError {
    /// The error for a broker error code, with the broker's message if it sent one, else
    /// Kafka's standard description of the code.
    pub fn broker(code: i16, message: Option<&str>) -> ClientError {
        let message = match message {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => error_description(code),
        };
        ClientError::Broker { code, message }
    }

    /// `Ok(())` for code 0, else [`ClientError::broker`].
    pub fn check(code: i16, message: Option<&StrBytes>) -> Result<(), ClientError> {
        if code == 0 {
            Ok(())
        } else {
            Err(ClientError::broker(code, message.map(|m| m.as_str())))
        }
    }

    /// The broker error code, if this is a broker error.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again (after refreshing metadata) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            ClientError::Io { .. } | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Kafka's description of an error code (the message of its exception when the broker sent
/// none), or the code's name for codes without one here.
pub fn error_description(code: i16) -> String {
    let text = match code {
        -1 => "The server experienced an unexpected error when processing the request.",
        1 => "The requested offset is not within the range of offsets maintained by the server.",
        2 => "This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt.",
        3 => "This server does not host this topic-partition.",
        5 => "There is no leader for this topic-partition as we are in the middle of a leadership election.",
        6 => "For requests intended only for the leader, this error indicates that the broker is not the current leader. For requests intended for any replica, this error indicates that the broker is not a replica of the topic partition.",
        7 => "The request timed out.",
        8 => "The broker is not available.",
        10 => "The request included a message larger than the max message size the server will accept.",
        13 => "The server disconnected before a response was received.",
        15 => "The coordinator is not available.",
        17 => "The request attempted to perform an operation on an invalid topic.",
        19 => "Messages are rejected since there are fewer in-sync replicas than required.",
        21 => "Produce request specified an invalid value for required acks.",
        29 => "Topic authorization failed.",
        31 => "Cluster authorization failed.",
        35 => "The version of API is not supported.",
        36 => "Topic with this name already exists.",
        37 => "Number of partitions is below 1.",
        38 => "Replication factor is below 1 or larger than the number of available brokers.",
        40 => "Configuration is invalid.",
        41 => "This is not the correct controller for this cluster.",
        42 => "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.",
        44 => "Request parameters do not satisfy the configured policy.",
        56 => "Disk error when trying to access log file on the disk.",
        69 => "The group id does not exist.",
        73 => "Topic deletion is disabled.",
        78 => "The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing.",
        87 => "This record has failed the validation on broker and hence will be rejected.",
        100 => "This server does not host this topic ID.",
        _ => "",
    };
    if !text.is_empty() {
        return text.to_string();
    }
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(c)) => format!("Unknown error code {c}"),
        Some(e) => e.to_string(),
        None => "No error".to_string(),
    }
}

/// How the client identifies itself, how long it waits for one step (connect, one request
/// and its response), and the socket buffers of its connections.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    pub request_timeout: Duration,
    pub buffers: SocketBuffers,
    /// Set for brokers that require SASL authentication (`security.protocol=SASL_PLAINTEXT`
    /// or `SASL_SSL`).
    pub sasl: Option<SaslCredentials>,
    /// Set for brokers reached over TLS (`security.protocol=SSL` or `SASL_SSL`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// How a connection is secured: TLS and SASL, each if set.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslCredentials>,
}

/// Who a connection authenticates as, and how.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
    /// OAUTHBEARER: where the token comes from (`username` and `password` are unused).
    pub oauth: Option<Arc<oauth::OAuthLogin>>,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The kernel buffer sizes asked for each connection (SO_RCVBUF and SO_SNDBUF, set before
/// connecting); `None` leaves the operating system's default and its autotuning, as Kafka's
/// `-1` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketBuffers {
    /// `receive.buffer.bytes`.
    pub receive: Option<u32>,
    /// `send.buffer.bytes`.
    pub send: Option<u32>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: "krust-client".to_string(),
            request_timeout: Duration::from_secs(30),
            buffers: SocketBuffers::default(),
            sasl: None,
            tls: None,
        }
    }
}

/// One connection to one broker, with the API versions it serves.
pub struct Connection {
    /// Buffered for reading: a response's length and body come in one system call.
    stream: BufReader<tls::Stream>,
    addr: String,
    client_id: StrBytes,
    timeout: Duration,
    next_correlation: i32,
    versions: HashMap<i16, (i16, i16)>,
    /// Set after a transport failure or timeout: a late response could still arrive, so the
    /// connection cannot be used again.
    broken: Option<String>,
    /// The credentials it authenticated with, and when it must authenticate again (the
    /// broker's session lifetime, KIP-368).
    sasl: Option<(SaslCredentials, Option<Instant>)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Connection {
    /// Opens a connection to `addr` (`host:port`) and negotiates API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        Connection::connect_with(addr, client_id, timeout, SocketBuffers::default()).await
    }

    /// Like [`Connection::connect`], with the socket's kernel buffers set first.
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        buffers: SocketBuffers,
    ) -> Result<Connection, ClientError> {
        Connection::open_with(addr, client_id, timeout, buffers, &Security::default()).await
    }

    /// Opens a connection as `config` says: its client id, timeout, buffers and SASL
    /// credentials.
    pub async fn connect_config(
        addr: &str,
        config: &ClientConfig,
    ) -> Result<Connection, ClientError> {
        let security = Security {
            tls: config.tls.clone(),
            sasl: config.sasl.clone(),
        };
        Connection::open_with(
            addr,
            &config.client_id,
            config.request_timeout,
            config.buffers,
            &security,
        )
        .await
    }

    /// Like [`Connection::connect`], over TLS and authenticating with SASL as `security`
    /// says.
    pub async fn connect_secured(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Connection, ClientError> {
        Connection::open_with(addr, client_id, timeout, SocketBuffers::default(), security).await
    }

    async fn open_with(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        buffers: SocketBuffers,
        security: &Security,
    ) -> Result<Connection, ClientError> {
        let sasl = security.sasl.as_ref();
        let opened = async {
            let tcp = open(addr, buffers).await?;
            let _ = tcp.set_nodelay(true);
            match &security.tls {
                None => Ok(tls::Stream::Plain(tcp)),
                Some(config) => {
                    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    tls::connect(config, host, tcp).await
                }
            }
        };
        let stream = match tokio::time::timeout(timeout, opened).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    reason: format!("timed out after {}ms", timeout.as_millis()),
                })
            }
        };
        let mut conn = Connection {
            stream: BufReader::with_capacity(READ_BUFFER, stream),
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            timeout,
            next_correlation: 0,
            versions: HashMap::new(),
            broken: None,
            sasl: None,
        };
        conn.negotiate().await?;
        if let Some(creds) = sasl {
            conn.authenticate(creds.clone()).await?;
        }
        Ok(conn)
    }

    /// Authenticates with SaslHandshake v1 and SaslAuthenticate, as Kafka's clients do.
    async fn authenticate(&mut self, creds: SaslCredentials) -> Result<(), ClientError> {
        let r = self.authenticate_inner(&creds).await;
        match r {
            Ok(lifetime) => {
                // Re-authenticate at 85 % of the session, as Kafka's clients do (at the
                // earliest).
                let due = lifetime.map(|ms| Instant::now() + Duration::from_millis(ms / 100 * 85));
                self.sasl = Some((creds, due));
                Ok(())
            }
            Err(e) => {
                self.broken = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The session lifetime the broker gave, if any.
    async fn authenticate_inner(
        &mut self,
        creds: &SaslCredentials,
    ) -> Result<Option<u64>, ClientError> {
        let mech = creds.mechanism;
        let hv = self.version_for::<SaslHandshakeRequest>()?;
        if hv < 1 {
            return Err(ClientError::Authentication(
                "the broker offers only SaslHandshake v0".into(),
            ));
        }
        let hs =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech.name()));
        let resp = self.exchange(&hs, hv).await?;
        if resp.error_code != 0 {
            return Err(ClientError::Authentication(format!(
                "the broker does not enable {mech} (it enables {})",
                resp.mechanisms
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let av = self.version_for::<SaslAuthenticateRequest>()?;
        match mech {
            Mechanism::Plain => {
                let msg = sasl::plain_message(&creds.username, &creds.password);
                Ok(self.sasl_step(av, msg).await?.1)
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let mut scram = sasl::ScramClient::new(mech, &creds.username, &creds.password);
                let (server_first, _) = self.sasl_step(av, scram.first_message()).await?;
                let client_final = scram
                    .final_message(&server_first)
                    .map_err(|e| ClientError::Authentication(e.0))?;
                let (server_final, lifetime) = self.sasl_step(av, client_final).await?;
                scram
                    .verify_final(&server_final)
                    .map_err(|e| ClientError::Authentication(e.0))?;
                Ok(lifetime)
            }
            Mechanism::OAuthBearer => {
                let login = creds.oauth.as_ref().ok_or_else(|| {
                    ClientError::Authentication("no OAUTHBEARER login settings".into())
                })?;
                let (token, extensions) =
                    login.token().await.map_err(ClientError::Authentication)?;
                let msg = sasl::oauth_bearer_message(&token, &extensions);
                let (challenge, lifetime) = self.sasl_step(av, msg).await?;
                if challenge.is_empty() {
                    return Ok(lifetime);
                }
                // An error challenge (RFC 7628): acknowledged, the broker then fails the
                // exchange with it as the message.
                self.sasl_step(av, vec![1]).await?;
                Err(ClientError::Authentication(format!(
                    "the broker refused the token: {}",
                    String::from_utf8_lossy(&challenge)
                )))
            }
        }
    }

    /// One SaslAuthenticate round: the broker's bytes and session lifetime (if it set one).
    async fn sasl_step(
        &mut self,
        version: i16,
        bytes: Vec<u8>,
    ) -> Result<(Bytes, Option<u64>), ClientError> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let resp = self.exchange(&req, version).await?;
        if resp.error_code != 0 {
            return Err(ClientError::Authentication(
                resp.error_message
                    .map(|m| m.to_string())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| error_description(resp.error_code)),
            ));
        }
        let lifetime = u64::try_from(resp.session_lifetime_ms)
            .ok()
            .filter(|&ms| ms > 0);
        Ok((resp.auth_bytes, lifetime))
    }

    /// Authenticates again once the session is due for renewal.
    async fn renew_session(&mut self) -> Result<(), ClientError> {
        if let Some((creds, Some(due))) = &self.sasl {
            if Instant::now() >= *due {
                let creds = creds.clone();
                self.authenticate(creds).await?;
            }
        }
        Ok(())
    }

    /// Sends a request without the re-authentication check of [`Connection::send_version`].
    async fn exchange<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let api = api_key::<R>()?;
        let body = self
            .round_trip(api, version, req, R::Response::header_version(version))
            .await?;
        decode_body::<R::Response>(body, version)
    }

    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("krust"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let body = self.round_trip(ApiKey::ApiVersions, 3, &req, 0).await?;
        // A broker without v3 answers in v0 layout with UNSUPPORTED_VERSION: retry with v0.
        let code = if body.len() >= 2 {
            i16::from_be_bytes([body[0], body[1]])
        } else {
            0
        };
        let resp = if code == UNSUPPORTED_VERSION {
            let body = self
                .round_trip(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default(), 0)
                .await?;
            decode_body::<ApiVersionsResponse>(body, 0)?
        } else {
            decode_body::<ApiVersionsResponse>(body, 3)?
        };
        ClientError::check(resp.error_code, None)?;
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The broker's address as given to [`Connection::connect`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The broker's version range for `key`, if it serves it.
    pub fn broker_versions(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.versions.get(&(key as i16)).copied()
    }

    /// The highest version of `R` both sides support.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        let api = api_key::<R>()?;
        let unsupported = || ClientError::UnsupportedApi {
            api,
            client_min: R::VERSIONS.min,
            client_max: R::VERSIONS.max,
        };
        let (bmin, bmax) = self.broker_versions(api).ok_or_else(unsupported)?;
        let max = bmax.min(R::VERSIONS.max);
        if max < bmin.max(R::VERSIONS.min) {
            return Err(unsupported());
        }
        Ok(max)
    }

    /// Sends `req` at the highest common version and returns the decoded response.
    pub async fn send<R: Request>(&mut self, req: &R) -> Result<R::Response, ClientError> {
        let version = self.version_for::<R>()?;
        self.send_version(req, version).await
    }

    /// Sends `req` at an explicit `version` (which must be one the broker serves).
    pub async fn send_version<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        self.renew_session().await?;
        let api = api_key::<R>()?;
        let header_version = if api == ApiKey::ApiVersions {
            0
        } else {
            R::Response::header_version(version)
        };
        let body = self.round_trip(api, version, req, header_version).await?;
        decode_body::<R::Response>(body, version)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&mut self, req: &R) -> Result<(), ClientError> {
        if let Some(why) = &self.broken {
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                reason: format!("connection unusable after an earlier failure: {why}"),
            });
        }
        self.renew_session().await?;
        let version = self.version_for::<R>()?;
        let api = api_key::<R>()?;
        let (frame, _) = self.frame(api, version, req)?;
        let r = self.write_frame(&frame).await;
        if let Err(e) = &r {
            self.broken = Some(e.to_string());
        }
        r
    }

    fn frame<B: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &B,
    ) -> Result<(BytesMut, i32), ClientError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| ClientError::Protocol(format!("encoding {api:?} header: {e}")))?;
        body.encode(&mut buf, version)
            .map_err(|e| ClientError::Protocol(format!("encoding {api:?} v{version}: {e}")))?;
        let len = i32::try_from(buf.len() - 4)
            .map_err(|_| ClientError::Protocol("request too large".into()))?;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        Ok((buf, correlation))
    }

    async fn write_frame(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        let addr = self.addr.clone();
        // Flushed: over TLS, the last encrypted records of a large request could otherwise
        // wait in the TLS stream while the client waits for the answer.
        let write = async {
            self.stream.write_all(frame).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ClientError::Io {
                addr,
                reason: e.to_string(),
            }),
            Err(_) => Err(ClientError::Timeout {
                what: format!("a request to be sent to {addr}"),
                after: self.timeout,
            }),
        }
    }

    /// The connection's transport, once ready (TLS and SASL done), for a caller that
    /// pipelines requests itself.
    pub fn into_stream(self) -> Result<tls::Stream, ClientError> {
        if self.broken.is_some() || !self.stream.buffer().is_empty() {
            return Err(ClientError::Protocol(format!(
                "the connection to {} cannot be handed over",
                self.addr
            )));
        }
        Ok(self.stream.into_inner())
    }

    /// Whether an earlier failure made this connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Writes one request and reads its response; returns the response body after the header.
    /// A transport error, timeout or malformed response leaves the connection broken.
    async fn round_trip<B: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &B,
        response_header_version: i16,
    ) -> Result<Bytes, ClientError> {
        if let Some(why) = &self.broken {
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                reason: format!("connection unusable after an earlier failure: {why}"),
            });
        }
        let r = self
            .round_trip_inner(api, version, body, response_header_version)
            .await;
        if let Err(e) = &r {
            if !matches!(
                e,
                ClientError::Broker { .. } | ClientError::UnsupportedApi { .. }
            ) {
                self.broken = Some(e.to_string());
            }
        }
        r
    }

    async fn round_trip_inner<B: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &B,
        response_header_version: i16,
    ) -> Result<Bytes, ClientError> {
        let (frame, correlation) = self.frame(api, version, body)?;
        self.write_frame(&frame).await?;
        let timeout = self.timeout;
        let addr = self.addr.clone();
        let mut frame = match tokio::time::timeout(timeout, self.read_frame()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    what: format!("a {api:?} response from {addr}"),
                    after: timeout,
                })
            }
        };
        let header = ResponseHeader::decode(&mut frame, response_header_version)
            .map_err(|e| ClientError::Protocol(format!("bad {api:?} response header: {e}")))?;
        if header.correlation_id != correlation {
            return Err(ClientError::Protocol(format!(
                "correlation id mismatch: sent {correlation}, got {}",
                header.correlation_id
            )));
        }
        Ok(frame)
    }

    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let io = |e: std::io::Error, addr: &str| ClientError::Io {
            addr: addr.to_string(),
            reason: if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "connection closed by the broker".to_string()
            } else {
                e.to_string()
            },
        };
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .await
            .map_err(|e| io(e, &self.addr))?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| ClientError::Protocol(format!("invalid response size {len}")))?;
        // Read into spare capacity: a response of megabytes is not zeroed first.
        let mut buf = BytesMut::with_capacity(len);
        while buf.len() < len {
            let want = len - buf.len();
            let mut rest = (&mut buf).limit(want);
            let n = self
                .stream
                .read_buf(&mut rest)
                .await
                .map_err(|e| io(e, &self.addr))?;
            if n == 0 {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into(), &self.addr));
            }
        }
        Ok(buf.freeze())
    }
}

/// A TCP connection to `addr`, trying each address it resolves to; the buffers are set
/// before connecting, so the window scale offered covers them.
async fn open(addr: &str, buffers: SocketBuffers) -> std::io::Result<TcpStream> {
    if buffers == SocketBuffers::default() {
        return TcpStream::connect(addr).await;
    }
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await? {
        let sock = if sa.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(n) = buffers.receive {
            sock.set_recv_buffer_size(n)?;
        }
        if let Some(n) = buffers.send {
            sock.set_send_buffer_size(n)?;
        }
        match sock.connect(sa).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolves to no address"),
        )
    }))
}

fn api_key<R: Request>() -> Result<ApiKey, ClientError> {
    ApiKey::try_from(R::KEY)
        .map_err(|_| ClientError::Protocol(format!("unknown API key {}", R::KEY)))
}

fn decode_body<T: Decodable>(mut body: Bytes, version: i16) -> Result<T, ClientError> {
    T::decode(&mut body, version).map_err(|e| {
        ClientError::Protocol(format!(
            "cannot decode {} v{version}: {e}",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("response")
        ))
    })
}

/// A broker from the Metadata broker list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A boxed future borrowing the client, for [`Client::retry`].
pub type ClientFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ClientError>> + 'a>>;

/// A client over a list of bootstrap servers.
pub struct Client {
    bootstrap: Vec<String>,
    config: ClientConfig,
    bootstrap_conn: Option<Connection>,
    brokers: HashMap<i32, BrokerInfo>,
    conns: HashMap<i32, Connection>,
}

impl Client {
    /// Connects to the first reachable bootstrap server (`host:port[,host:port...]`).
    pub async fn connect(bootstrap: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let bootstrap: Vec<String> = bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if bootstrap.is_empty() {
            return Err(ClientError::Connect {
                addr: String::new(),
                reason: "no bootstrap servers given".into(),
            });
        }
        let mut client = Client {
            bootstrap,
            config,
            bootstrap_conn: None,
            brokers: HashMap::new(),
            conns: HashMap::new(),
        };
        client.any_connection().await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A connection to any broker: the bootstrap connection, re-established if it broke.
    pub async fn any_connection(&mut self) -> Result<&mut Connection, ClientError> {
        if self
            .bootstrap_conn
            .as_ref()
            .is_some_and(Connection::is_broken)
        {
            self.bootstrap_conn = None;
        }
        if self.bootstrap_conn.is_none() {
            let mut last = None;
            for addr in &self.bootstrap {
                match Connection::connect_config(addr, &self.config).await {
                    Ok(c) => {
                        self.bootstrap_conn = Some(c);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!("bootstrap server {addr}: {e}");
                        last = Some(e);
                    }
                }
            }
            if self.bootstrap_conn.is_none() {
                return Err(last.unwrap_or_else(|| ClientError::Connect {
                    addr: self.bootstrap.join(","),
                    reason: "no bootstrap servers".into(),
                }));
            }
        }
        self.bootstrap_conn
            .as_mut()
            .ok_or_else(|| ClientError::Protocol("no connection".into()))
    }

    /// Sends `req` to any broker; drops the connection if it failed at the transport level.
    pub async fn send_any<R: Request>(&mut self, req: &R) -> Result<R::Response, ClientError> {
        let conn = self.any_connection().await?;
        let r = conn.send(req).await;
        if matches!(
            r,
            Err(ClientError::Io { .. } | ClientError::Timeout { .. } | ClientError::Protocol(_))
        ) {
            self.bootstrap_conn = None;
        }
        r
    }

    /// Sends `req` to broker `node_id`; drops the connection if it failed at the transport level.
    pub async fn send_to<R: Request>(
        &mut self,
        node_id: i32,
        req: &R,
    ) -> Result<R::Response, ClientError> {
        let conn = self.connection_to(node_id).await?;
        let r = conn.send(req).await;
        if matches!(
            r,
            Err(ClientError::Io { .. } | ClientError::Timeout { .. } | ClientError::Protocol(_))
        ) {
            self.conns.remove(&node_id);
        }
        r
    }

    /// Metadata for `topics` (`None`: all topics). Updates the known broker list.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, ClientError> {
        self.metadata_with(topics, false).await
    }

    /// Metadata for `topics`, asking the broker to create missing topics if
    /// `allow_auto_create` (and the broker's `auto.create.topics.enable`) allow it, as
    /// producers do.
    pub async fn metadata_with(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<MetadataResponse, ClientError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_create);
        let resp = self.send_any(&req).await?;
        self.brokers = resp
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                    },
                )
            })
            .collect();
        Ok(resp)
    }

    /// The brokers learned from the last Metadata response.
    pub fn brokers(&self) -> Vec<BrokerInfo> {
        let mut v: Vec<BrokerInfo> = self.brokers.values().cloned().collect();
        v.sort_by_key(|b| b.node_id);
        v
    }

    /// A (cached) connection to broker `node_id`, found through the Metadata broker list.
    pub async fn connection_to(&mut self, node_id: i32) -> Result<&mut Connection, ClientError> {
        if self.conns.get(&node_id).is_some_and(Connection::is_broken) {
            self.conns.remove(&node_id);
        }
        if !self.conns.contains_key(&node_id) {
            if !self.brokers.contains_key(&node_id) {
                self.metadata(Some(&[])).await?;
            }
            let broker = self.brokers.get(&node_id).cloned().ok_or_else(|| {
                ClientError::broker(
                    8, // BROKER_NOT_AVAILABLE
                    Some(&format!("Broker {node_id} is not in the cluster metadata")),
                )
            })?;
            let conn = Connection::connect_config(&broker.addr(), &self.config).await?;
            self.conns.insert(node_id, conn);
        }
        self.conns
            .get_mut(&node_id)
            .ok_or_else(|| ClientError::Protocol("no connection".into()))
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or `deadline` passes.
    /// Between attempts it waits `backoff` and refreshes the broker list.
    pub async fn retry<T>(
        &mut self,
        deadline: Instant,
        backoff: Duration,
        mut op: impl for<'a> FnMut(&'a mut Client) -> ClientFuture<'a, T>,
    ) -> Result<T, ClientError> {
        loop {
            match op(self).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && Instant::now() + backoff < deadline => {
                    tracing::debug!("retrying after: {e}");
                    tokio::time::sleep(backoff).await;
                    let _ = self.metadata(Some(&[])).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests;
