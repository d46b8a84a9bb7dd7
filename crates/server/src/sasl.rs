//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: PLAIN users from the
//! listener's JAAS config, SCRAM-SHA-256/512 credentials from the cluster metadata, and
//! OAUTHBEARER tokens checked by the listener's validator ([`crate::oauth`]).
//!
//! Each connection of such a listener starts unauthenticated. It may send ApiVersions and
//! SaslHandshake (v1: the mechanism), then SaslAuthenticate until the exchange ends. Any
//! other request before that closes the connection, as does a failed exchange (after
//! `connection.failed.authentication.delay.ms` and the failure's answer). With
//! `connections.max.reauth.ms`, a session ends after that long: the client re-authenticates
//! on the same connection (KIP-368, same mechanism and principal) or it is closed at its
//! next request. An OAUTHBEARER session also ends when its token expires. Until a connection is authenticated, its requests may be at most
//! `sasl.server.max.receive.size` bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use krust_protocol::sasl::{
    constant_time_eq, parse_oauth_bearer, parse_plain, Mechanism, ScramServer,
};
use krust_protocol::ErrorCode;

use crate::broker::Broker;

/// The authentication settings of the node.
#[derive(Debug, Clone, Default)]
pub struct SaslSettings {
    /// SASL_PLAINTEXT listeners by name.
    pub listeners: HashMap<String, Arc<ListenerSasl>>,
    /// `connections.max.reauth.ms`; 0: sessions never end.
    pub reauth_ms: u64,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_auth_delay_ms: u64,
    /// `sasl.server.max.receive.size`.
    pub max_receive_size: usize,
    /// How this broker authenticates to other brokers, when the inter-broker listener is
    /// SASL_PLAINTEXT.
    pub inter_broker: Option<krust_client::SaslCredentials>,
    /// How this node authenticates to the controllers, when their listener is SASL.
    pub controller: Option<krust_client::SaslCredentials>,
}

/// One SASL listener: its mechanisms, and its PLAIN users.
#[derive(Clone, Default)]
pub struct ListenerSasl {
    pub mechanisms: Vec<Mechanism>,
    /// `user_<name>="<password>"` of its PLAIN JAAS config.
    pub plain_users: HashMap<String, String>,
    /// How it validates OAUTHBEARER tokens, when it enables OAUTHBEARER.
    pub oauth: Option<crate::oauth::Validator>,
}

impl std::fmt::Debug for ListenerSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.plain_users.keys().collect();
        users.sort();
        f.debug_struct("ListenerSasl")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &users)
            .field("oauth", &self.oauth)
            .finish()
    }
}

/// Where a connection is in authentication.
#[derive(Debug)]
enum State {
    /// A listener without SASL: everything is served.
    Open,
    /// Waiting for SaslHandshake.
    Handshake,
    /// A mechanism was chosen; SaslAuthenticate rounds follow. `previous` is the session
    /// being renewed, for a re-authentication.
    Exchange {
        mechanism: Mechanism,
        scram: Option<Box<ScramServer>>,
        previous: Option<Session>,
        /// OAUTHBEARER: the error challenge sent for a refused token, until the client
        /// acknowledges it (RFC 7628 section 3.2.3).
        refused: Option<String>,
    },
    Authenticated(Session),
}

#[derive(Debug, Clone)]
struct Session {
    principal: String,
    mechanism: Mechanism,
    /// When it ends (`connections.max.reauth.ms`).
    expires: Option<Instant>,
}

/// What to do with a request that is not part of authentication.
pub enum Gate {
    Serve,
    Close(String),
}

/// An answer to a SASL request, and whether the connection closes after it.
pub struct Answer<R> {
    pub response: R,
    pub close: Option<String>,
}

/// One connection's authentication.
#[derive(Debug)]
pub struct ConnAuth {
    listener: Option<Arc<ListenerSasl>>,
    state: State,
    /// Who the connection's requests come from: `User:<name>` once SASL authenticated it,
    /// else the TLS client certificate's subject (`User:CN=...`), else `User:ANONYMOUS`.
    principal: Arc<str>,
}

/// The principal of a connection that neither SASL nor a client certificate identified.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

impl ConnAuth {
    /// A new connection on listener `name`.
    pub fn new(broker: &Broker, name: &str) -> ConnAuth {
        match broker.config.sasl.listeners.get(name) {
            Some(l) => ConnAuth {
                listener: Some(l.clone()),
                state: State::Handshake,
                principal: Arc::from(ANONYMOUS),
            },
            None => ConnAuth {
                listener: None,
                state: State::Open,
                principal: Arc::from(ANONYMOUS),
            },
        }
    }

    /// The largest request frame the connection may send now.
    pub fn frame_limit(&self, broker: &Broker, max_request: usize) -> usize {
        match self.state {
            State::Open | State::Authenticated(_) => max_request,
            _ => max_request.min(broker.config.sasl.max_receive_size),
        }
    }

    /// Whether a request other than SaslHandshake and SaslAuthenticate may be served.
    pub fn gate(&self, key: ApiKey) -> Gate {
        match &self.state {
            State::Open => Gate::Serve,
            State::Authenticated(s) => match s.expires {
                Some(t) if Instant::now() >= t => Gate::Close(format!(
                    "the SASL session of {} ended (connections.max.reauth.ms, or its \
                     token's expiry) without re-authentication",
                    s.principal
                )),
                _ => Gate::Serve,
            },
            _ if key == ApiKey::ApiVersions => Gate::Serve,
            State::Handshake | State::Exchange { .. } => Gate::Close(format!(
                "unexpected {key:?} request before SASL authentication"
            )),
        }
    }

    /// Whether requests are served: the listener has no SASL, or the client authenticated.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Open | State::Authenticated(_))
    }

    /// Who the requests come from (see [`ConnAuth`]'s `principal`).
    pub fn principal(&self) -> &Arc<str> {
        &self.principal
    }

    /// The principal of a TLS client certificate's subject (an SSL listener's client).
    /// A SASL_SSL listener's clients are who SASL says they are, as in Kafka.
    pub fn set_certificate_principal(&mut self, principal: String) {
        if self.listener.is_none() {
            self.principal = Arc::from(principal);
        }
    }

    pub fn handshake(&mut self, req: &SaslHandshakeRequest) -> Answer<SaslHandshakeResponse> {
        // A listener without SASL answers, as Kafka's does, and goes on.
        let Some(listener) = self.listener.clone() else {
            return Answer {
                response: SaslHandshakeResponse::default()
                    .with_error_code(ErrorCode::IllegalSaslState.code()),
                close: None,
            };
        };
        let enabled = listener
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let previous = match &self.state {
            State::Handshake => None,
            // Re-authentication (KIP-368) renews a session that ends; without
            // connections.max.reauth.ms there is none to renew, as in Kafka.
            State::Authenticated(s) if s.expires.is_some() => Some(s.clone()),
            State::Authenticated(_) => {
                return Answer {
                    response: SaslHandshakeResponse::default()
                        .with_error_code(ErrorCode::IllegalSaslState.code())
                        .with_mechanisms(enabled),
                    close: None,
                }
            }
            State::Exchange { .. } | State::Open => {
                // (Open: a listener without SASL, answered above.)
                return Answer {
                    response: SaslHandshakeResponse::default()
                        .with_error_code(ErrorCode::IllegalSaslState.code())
                        .with_mechanisms(enabled),
                    close: Some("unexpected SaslHandshake during a SASL exchange".into()),
                };
            }
        };
        let wanted = req.mechanism.as_str();
        let Some(mechanism) = Mechanism::parse(wanted).filter(|m| listener.mechanisms.contains(m))
        else {
            return Answer {
                response: SaslHandshakeResponse::default()
                    .with_error_code(ErrorCode::UnsupportedSaslMechanism.code())
                    .with_mechanisms(enabled),
                close: Some(format!("SASL mechanism {wanted} is not enabled")),
            };
        };
        if let Some(p) = &previous {
            if p.mechanism != mechanism {
                return Answer {
                    response: SaslHandshakeResponse::default()
                        .with_error_code(ErrorCode::IllegalSaslState.code())
                        .with_mechanisms(enabled),
                    close: Some(format!(
                        "re-authentication with {mechanism} after {}",
                        p.mechanism
                    )),
                };
            }
        }
        self.state = State::Exchange {
            mechanism,
            scram: mechanism
                .scram_type()
                .map(|_| Box::new(ScramServer::new(mechanism))),
            previous,
            refused: None,
        };
        Answer {
            response: SaslHandshakeResponse::default().with_mechanisms(enabled),
            close: None,
        }
    }

    pub async fn authenticate(
        &mut self,
        broker: &Broker,
        req: &SaslAuthenticateRequest,
    ) -> Answer<SaslAuthenticateResponse> {
        let State::Exchange {
            mechanism,
            scram,
            previous,
            refused,
        } = &mut self.state
        else {
            // Out of turn: refused, and the connection closed unless it is authenticated
            // (or needs no authentication), as Kafka does.
            let close = matches!(self.state, State::Handshake)
                .then(|| "SaslAuthenticate before SaslHandshake".to_string());
            return Answer {
                response: SaslAuthenticateResponse::default()
                    .with_error_code(ErrorCode::IllegalSaslState.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "SaslAuthenticate before SaslHandshake",
                    ))),
                close,
            };
        };
        let mechanism = *mechanism;
        let step = match (mechanism, scram) {
            (Mechanism::Plain, _) => plain_step(self.listener.as_deref(), &req.auth_bytes),
            (Mechanism::OAuthBearer, _) => {
                oauth_step(self.listener.as_deref(), refused, &req.auth_bytes)
            }
            (_, Some(s)) => scram_step(broker, mechanism, s, &req.auth_bytes),
            (_, None) => Err("no SCRAM exchange".to_string()),
        };
        let step = step.and_then(|s| match (&s, previous.as_ref()) {
            (Step::Done { principal, .. }, Some(p)) if *principal != p.principal => Err(format!(
                "Authentication failed: re-authentication as {principal} on a connection of {}",
                p.principal
            )),
            _ => Ok(s),
        });
        match step {
            Ok(Step::Continue(bytes)) => Answer {
                response: SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes)),
                close: None,
            },
            Ok(Step::Done {
                bytes,
                principal,
                credential_expires_ms,
            }) => {
                let (lifetime, expires) =
                    session_lifetime(broker.config.sasl.reauth_ms, credential_expires_ms);
                tracing::debug!(%principal, %mechanism, "SASL authentication succeeded");
                if *self.principal != *principal {
                    self.principal = Arc::from(principal.as_str());
                }
                self.state = State::Authenticated(Session {
                    principal,
                    mechanism,
                    expires,
                });
                Answer {
                    response: SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(bytes))
                        .with_session_lifetime_ms(i64::try_from(lifetime).unwrap_or(i64::MAX)),
                    close: None,
                }
            }
            Err(message) => {
                let delay = broker.config.sasl.failed_auth_delay_ms;
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                let close = format!("SASL {mechanism} authentication failed: {message}");
                Answer {
                    response: SaslAuthenticateResponse::default()
                        .with_error_code(ErrorCode::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_string(message))),
                    close: Some(close),
                }
            }
        }
    }
}

enum Step {
    Continue(Vec<u8>),
    Done {
        bytes: Vec<u8>,
        principal: String,
        /// When the credential itself expires (epoch ms): an OAUTHBEARER token's `exp`.
        credential_expires_ms: Option<i64>,
    },
}

/// A new session's lifetime in ms (0: it does not end) and when it ends, as Kafka
/// computes them: `connections.max.reauth.ms` (0: unset), bounded by the credential's
/// expiry. A credential that has already expired (within the validator's clock skew) gives
/// a session that ends at once: the client's next request other than SaslHandshake closes
/// the connection.
fn session_lifetime(reauth_ms: u64, credential_expires_ms: Option<i64>) -> (u64, Option<Instant>) {
    let now = Instant::now();
    let left = credential_expires_ms
        .map(|exp| u64::try_from(exp.saturating_sub(crate::broker::now_ms())).unwrap_or(0));
    let lifetime = match (reauth_ms, left) {
        (0, None) => return (0, None),
        (r, None) => r,
        (0, Some(l)) => l,
        (r, Some(l)) => r.min(l),
    };
    (
        lifetime,
        Some(now + std::time::Duration::from_millis(lifetime)),
    )
}

fn plain_step(listener: Option<&ListenerSasl>, msg: &[u8]) -> Result<Step, String> {
    let (user, password) = parse_plain(msg).map_err(|e| e.0)?;
    let known = listener
        .and_then(|l| l.plain_users.get(&user))
        .is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()));
    if !known {
        return Err("Authentication failed: Invalid username or password".into());
    }
    Ok(Step::Done {
        bytes: Vec::new(),
        principal: format!("User:{user}"),
        credential_expires_ms: None,
    })
}

/// One OAUTHBEARER message: the client's token, or its acknowledgement (`\x01`) of the
/// error challenge that refused one. A refused token is answered with the challenge, as
/// RFC 7628 asks; the exchange then fails with the challenge as its message.
fn oauth_step(
    listener: Option<&ListenerSasl>,
    refused: &mut Option<String>,
    msg: &[u8],
) -> Result<Step, String> {
    if let Some(challenge) = refused.take() {
        if msg == [1] {
            return Err(challenge);
        }
    }
    let response = parse_oauth_bearer(msg).map_err(|e| {
        tracing::debug!("OAUTHBEARER: {e}");
        "Authentication failed during authentication due to invalid credentials with SASL \
         mechanism OAUTHBEARER"
            .to_string()
    })?;
    let Some(validator) = listener.and_then(|l| l.oauth.as_ref()) else {
        return Err("OAUTHBEARER is not enabled on this listener".into());
    };
    match validator.validate(&response.token, crate::broker::now_ms()) {
        Ok(token) => {
            if !response.authzid.is_empty() && response.authzid != token.principal {
                return Err(format!(
                    "Authentication failed: Client requested an authorization id ({}) that is \
                     different from the token's principal name ({})",
                    response.authzid, token.principal
                ));
            }
            Ok(Step::Done {
                bytes: Vec::new(),
                principal: format!("User:{}", token.principal),
                credential_expires_ms: Some(token.expires_ms),
            })
        }
        Err(invalid) => {
            // The reason may quote the token's header and claims: bounded and escaped, as
            // any client may send them.
            let reason: String = invalid.reason.chars().take(200).collect();
            tracing::info!(reason = %reason.escape_debug(), "OAUTHBEARER token refused");
            let challenge = invalid.challenge();
            *refused = Some(challenge.clone());
            Ok(Step::Continue(challenge.into_bytes()))
        }
    }
}

fn scram_step(
    broker: &Broker,
    mechanism: Mechanism,
    scram: &mut ScramServer,
    msg: &[u8],
) -> Result<Step, String> {
    if scram.started() {
        let (bytes, user) = scram.finish(msg).map_err(|e| e.0)?;
        return Ok(Step::Done {
            bytes,
            principal: format!("User:{user}"),
            credential_expires_ms: None,
        });
    }
    let image = broker.image();
    let kind = mechanism.scram_type().unwrap_or_default();
    scram
        .first(msg, |user| {
            image.scram.get(&(user.to_string(), kind)).cloned()
        })
        .map(Step::Continue)
        .map_err(|e| e.0)
}
