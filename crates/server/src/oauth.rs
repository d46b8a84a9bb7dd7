//! OAUTHBEARER on the broker: validating a client's bearer token (a JWT, RFC 7519).
//!
//! A listener validates tokens one of Kafka's two ways, chosen by
//! `listener.name.<listener>.oauthbearer.sasl.server.callback.handler.class`:
//!
//! * unset (or Kafka's unsecured validator class): **unsecured** tokens, Kafka's default
//!   and meant for development. The token is not signed (`alg` is `none`); it carries an
//!   expiry and a principal claim, optionally a scope, checked against the options of the
//!   listener's JAAS config (`unsecuredValidator*`).
//! * `org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler`
//!   (or its older `...secured.` name): **signed** tokens, verified against the identity
//!   provider's keys (`sasl.oauthbearer.jwks.endpoint.url`, a `file:` read at startup or an
//!   `http(s)` URL fetched at startup and every `sasl.oauthbearer.jwks.endpoint.refresh.ms`),
//!   with the expiry, issuer and audience checked.
//!
//! A token that fails is answered with RFC 7628's error status (`invalid_token`, or
//! `insufficient_scope`); the session of one that passes ends when the token expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

/// The class names `oauthbearer.sasl.server.callback.handler.class` may take.
pub const UNSECURED_HANDLER: &str =
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";
pub const SECURED_HANDLERS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

/// How a listener validates tokens.
#[derive(Debug, Clone)]
pub enum Validator {
    Unsecured(UnsecuredOptions),
    Signed(Arc<SignedValidator>),
}

/// The unsecured validator's JAAS options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredOptions {
    /// `unsecuredValidatorPrincipalClaimName` (default `sub`).
    pub principal_claim: String,
    /// `unsecuredValidatorScopeClaimName` (default `scope`).
    pub scope_claim: String,
    /// `unsecuredValidatorRequiredScope`: space-separated scopes every token must have.
    pub required_scope: Vec<String>,
    /// `unsecuredValidatorAllowableClockSkewMs` (default 0).
    pub clock_skew_ms: i64,
}

impl Default for UnsecuredOptions {
    fn default() -> Self {
        UnsecuredOptions {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: Vec::new(),
            clock_skew_ms: 0,
        }
    }
}

/// A token that passed: who it names, and when it expires (epoch milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub principal: String,
    pub expires_ms: i64,
}

/// A token that failed: RFC 7628's error status, the scope it lacked, and why (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub status: &'static str,
    pub scope: Option<String>,
    pub reason: String,
}

impl Invalid {
    fn token(reason: impl Into<String>) -> Invalid {
        Invalid {
            status: "invalid_token",
            scope: None,
            reason: reason.into(),
        }
    }

    /// The server's error challenge (RFC 7628 section 3.2.2), as Kafka writes it.
    pub fn challenge(&self) -> String {
        match &self.scope {
            Some(s) => format!("{{\"status\":\"{}\", \"scope\":\"{s}\"}}", self.status),
            None => format!("{{\"status\":\"{}\"}}", self.status),
        }
    }
}

impl Validator {
    /// Checks `token` at `now_ms` (epoch milliseconds).
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<Validated, Invalid> {
        match self {
            Validator::Unsecured(o) => validate_unsecured(o, token, now_ms),
            Validator::Signed(v) => v.validate(token, now_ms),
        }
    }
}

// ---------------------------------------------------------------------------------------
// JWT pieces

/// Base64url as JWTs use it; standard Base64 and padding are accepted too.
fn b64_decode(part: &str) -> Option<Vec<u8>> {
    let trimmed = part.trim_end_matches('=');
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std = base64::engine::general_purpose::STANDARD_NO_PAD;
    url.decode(trimmed).or_else(|_| std.decode(trimmed)).ok()
}

fn json_object(part: &str, what: &str) -> Result<serde_json::Map<String, Value>, Invalid> {
    let bytes =
        b64_decode(part).ok_or_else(|| Invalid::token(format!("the {what} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Invalid::token(format!("the {what} is not a JSON object"))),
    }
}

/// A NumericDate claim (seconds, possibly fractional) in milliseconds.
fn date_ms(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Option<i64>, Invalid> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s.is_finite() && s.abs() < 9.0e15 => Ok(Some((s * 1000.0).round() as i64)),
            _ => Err(Invalid::token(format!("claim {name} is out of range"))),
        },
        Some(_) => Err(Invalid::token(format!("claim {name} is not a number"))),
    }
}

fn principal_of(claims: &serde_json::Map<String, Value>, name: &str) -> Result<String, Invalid> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(Invalid::token(format!("claim {name} is blank"))),
        Some(_) => Err(Invalid::token(format!("claim {name} is not a string"))),
        None => Err(Invalid::token(format!("no {name} claim"))),
    }
}

/// A scope claim's items: a string is one item, a list gives its items.
fn scope_of(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<String>, Invalid> {
    match claims.get(name) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.trim().to_string()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(Invalid::token(format!(
                    "claim {name} has an item that is not a non-blank string"
                ))),
            })
            .collect(),
        Some(_) => Err(Invalid::token(format!(
            "claim {name} is neither a string nor a list"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Unsecured tokens

fn validate_unsecured(
    o: &UnsecuredOptions,
    token: &str,
    now_ms: i64,
) -> Result<Validated, Invalid> {
    if token.contains("..") {
        return Err(Invalid::token("the token has an empty header or payload"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(Invalid::token("the token does not have three parts"));
    };
    let header = json_object(header, "header")?;
    if header.get("alg").and_then(Value::as_str) != Some("none") {
        return Err(Invalid::token("an unsecured token's alg must be none"));
    }
    if !signature.is_empty() {
        return Err(Invalid::token("an unsecured token must not be signed"));
    }
    let claims = json_object(payload, "payload")?;
    let exp = date_ms(&claims, "exp")?.ok_or_else(|| Invalid::token("no exp claim"))?;
    let principal = principal_of(&claims, &o.principal_claim)?;
    let iat = date_ms(&claims, "iat")?;
    let scope = scope_of(&claims, &o.scope_claim)?;
    if let Some(iat) = iat {
        if iat > now_ms.saturating_add(o.clock_skew_ms) {
            return Err(Invalid::token("the token was issued in the future (iat)"));
        }
        if exp <= iat {
            return Err(Invalid::token("the token expires before it was issued"));
        }
    }
    if now_ms.saturating_sub(o.clock_skew_ms) >= exp {
        return Err(Invalid::token("the token has expired"));
    }
    if let Some(missing) = o.required_scope.iter().find(|s| !scope.contains(s)) {
        return Err(Invalid {
            status: "insufficient_scope",
            scope: Some(format!("[{}]", o.required_scope.join(", "))),
            reason: format!("the token's scope lacks {missing}"),
        });
    }
    Ok(Validated {
        principal,
        expires_ms: exp,
    })
}

// ---------------------------------------------------------------------------------------
// Signed tokens

/// Where a signed validator's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS file, read once at startup.
    File(std::path::PathBuf),
    /// A JWKS URL, fetched at startup and refreshed.
    Url(String),
}

/// The settings of the signed validator (Kafka's `sasl.oauthbearer.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSettings {
    pub source: KeySource,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
    pub refresh_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms` and `.max.ms`.
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// `sasl.oauthbearer.expected.audience`: one of them must be in `aud`; when unset, a
    /// token must carry no `aud`.
    pub audience: Option<Vec<String>>,
    /// `sasl.oauthbearer.expected.issuer`.
    pub issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name`, `sasl.oauthbearer.scope.claim.name`.
    pub sub_claim: String,
    pub scope_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds`.
    pub clock_skew_s: i64,
    /// The certificates an https JWKS URL is checked against (PEM, from the `ssl.*`
    /// options of the listener's OAUTHBEARER JAAS config); the operating system's when
    /// `None`.
    pub trust_pem: Option<Vec<u8>>,
}

/// One verification key of a JWKS.
#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    /// The JWK's `alg`, when it names one.
    alg: Option<String>,
    key: KeyMaterial,
}

#[derive(Clone)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (0x04 || x || y) and its curve.
    Ec {
        curve: &'static str,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros.min(v.len().saturating_sub(1)));
    v
}

/// Parses a JWKS document: the signature keys it holds that krust can verify with
/// (others are skipped, as a JWKS may carry encryption keys or unknown types). Shared
/// secrets (`oct` keys, at least 32 bytes) are taken only when `secrets` is set.
fn parse_jwks(bytes: &[u8], secrets: bool) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys {
        if k.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let field = |name: &str| k.get(name).and_then(Value::as_str).and_then(b64_decode);
        let material = match k.get("kty").and_then(Value::as_str) {
            Some("RSA") => match (field("n"), field("e")) {
                // Some providers write the modulus with a leading zero byte; ring wants it
                // without.
                (Some(n), Some(e)) => KeyMaterial::Rsa {
                    n: strip_zeros(n),
                    e: strip_zeros(e),
                },
                _ => continue,
            },
            Some("EC") => {
                let curve = match k.get("crv").and_then(Value::as_str) {
                    Some("P-256") => "P-256",
                    Some("P-384") => "P-384",
                    _ => continue,
                };
                let size = if curve == "P-256" { 32 } else { 48 };
                match (field("x"), field("y")) {
                    (Some(x), Some(y)) if x.len() == size && y.len() == size => {
                        let mut point = vec![4];
                        point.extend_from_slice(&x);
                        point.extend_from_slice(&y);
                        KeyMaterial::Ec { curve, point }
                    }
                    _ => continue,
                }
            }
            Some("OKP") if k.get("crv").and_then(Value::as_str) == Some("Ed25519") => {
                match field("x") {
                    Some(x) if x.len() == 32 => KeyMaterial::Ed25519(x),
                    _ => continue,
                }
            }
            // A shared secret is only taken from a file: a JWKS URL is public, and anyone
            // reading it could sign tokens with such a key.
            Some("oct") if secrets => match field("k") {
                Some(secret) if secret.len() >= 32 => KeyMaterial::Hmac(secret),
                _ => continue,
            },
            _ => continue,
        };
        out.push(Jwk {
            kid: k.get("kid").and_then(Value::as_str).map(str::to_string),
            alg: k.get("alg").and_then(Value::as_str).map(str::to_string),
            key: material,
        });
    }
    Ok(out)
}

/// Whether `key` verifies `signature` over `message` with JWS algorithm `alg`. `None`: the
/// key is not of `alg`'s type.
fn verify(alg: &str, key: &KeyMaterial, message: &[u8], signature: &[u8]) -> Option<bool> {
    use ring::signature as sig;
    let ok = match (alg, key) {
        ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512", KeyMaterial::Rsa { n, e }) => {
            let params: &sig::RsaParameters = match alg {
                "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &sig::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &sig::RSA_PSS_2048_8192_SHA256,
                "PS384" => &sig::RSA_PSS_2048_8192_SHA384,
                _ => &sig::RSA_PSS_2048_8192_SHA512,
            };
            sig::RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok()
        }
        (
            "ES256",
            KeyMaterial::Ec {
                curve: "P-256",
                point,
            },
        ) => sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
            .verify(message, signature)
            .is_ok(),
        (
            "ES384",
            KeyMaterial::Ec {
                curve: "P-384",
                point,
            },
        ) => sig::UnparsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
            .verify(message, signature)
            .is_ok(),
        ("EdDSA", KeyMaterial::Ed25519(x)) => sig::UnparsedPublicKey::new(&sig::ED25519, x)
            .verify(message, signature)
            .is_ok(),
        ("HS256" | "HS384" | "HS512", KeyMaterial::Hmac(secret)) => {
            let (algorithm, min_len) = match alg {
                "HS256" => (ring::hmac::HMAC_SHA256, 32),
                "HS384" => (ring::hmac::HMAC_SHA384, 48),
                _ => (ring::hmac::HMAC_SHA512, 64),
            };
            // A key shorter than the hash is refused, as RFC 7518 asks.
            if secret.len() < min_len {
                return Some(false);
            }
            ring::hmac::verify(&ring::hmac::Key::new(algorithm, secret), message, signature).is_ok()
        }
        _ => return None,
    };
    Some(ok)
}

/// The signed validator: its settings and the keys last loaded.
pub struct SignedValidator {
    pub settings: SignedSettings,
    keys: RwLock<Arc<Vec<Jwk>>>,
    /// When a refresh was last asked for each unknown key id (at most one a minute each).
    unknown_kids: Mutex<HashMap<String, Instant>>,
    /// Wakes the refresher early, for an unknown key id.
    refresh_now: tokio::sync::Notify,
}

impl std::fmt::Debug for SignedValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedValidator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SignedValidator {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
    }
}

/// How long an HTTP fetch of the keys may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one refresh a minute for the same unknown key id, as Kafka.
const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(60);

impl SignedValidator {
    /// A validator whose keys are read now when they are in a file (an error if it cannot
    /// be read or holds no key), and by [`SignedValidator::load`] when they are at a URL.
    pub fn new(settings: SignedSettings) -> Result<SignedValidator, String> {
        let keys = match &settings.source {
            KeySource::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read the JWKS file {}: {e}", path.display()))?;
                let keys = parse_jwks(&bytes, true)
                    .map_err(|e| format!("the JWKS file {}: {e}", path.display()))?;
                if keys.is_empty() {
                    return Err(format!(
                        "the JWKS file {} holds no signature key krust can use (RSA, EC P-256 \
                         or P-384, Ed25519, oct)",
                        path.display()
                    ));
                }
                keys
            }
            KeySource::Url(_) => Vec::new(),
        };
        Ok(SignedValidator {
            settings,
            keys: RwLock::new(Arc::new(keys)),
            unknown_kids: Mutex::new(HashMap::new()),
            refresh_now: tokio::sync::Notify::new(),
        })
    }

    fn keys(&self) -> Arc<Vec<Jwk>> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Fetches the keys of a URL source (nothing for a file).
    pub async fn load(&self) -> Result<(), String> {
        let KeySource::Url(url) = &self.settings.source else {
            return Ok(());
        };
        let tls = match &self.settings.trust_pem {
            Some(pem) => Some(krust_client::tls::client_config(Some(pem), None)?),
            None => None,
        };
        let resp = krust_client::http::request("GET", url, &[], None, tls, FETCH_TIMEOUT).await?;
        if resp.status != 200 {
            return Err(format!("{url} answered HTTP {}", resp.status));
        }
        let keys = parse_jwks(&resp.body, false).map_err(|e| format!("the JWKS at {url}: {e}"))?;
        if keys.is_empty() {
            return Err(format!(
                "the JWKS at {url} holds no signature key krust can use (RSA, EC P-256 or \
                 P-384, Ed25519)"
            ));
        }
        tracing::debug!(%url, keys = keys.len(), "loaded the OAUTHBEARER verification keys");
        if let Ok(mut k) = self.keys.write() {
            *k = Arc::new(keys);
        }
        Ok(())
    }

    /// Refreshes a URL source's keys every `refresh_ms`, and soon after a token names a key
    /// id they lack, until `shutdown`. Failed fetches are retried with backoff; the keys
    /// last loaded stay in use meanwhile.
    pub async fn refresh(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        if !matches!(self.settings.source, KeySource::Url(_)) {
            return;
        }
        let period = Duration::from_millis(self.settings.refresh_ms.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = self.refresh_now.notified() => {}
                _ = shutdown.changed() => return,
            }
            let mut backoff = Duration::from_millis(self.settings.retry_backoff_ms.max(1));
            let give_up =
                Instant::now() + Duration::from_millis(self.settings.retry_backoff_max_ms);
            loop {
                let loaded = tokio::select! {
                    r = self.load() => r,
                    _ = shutdown.changed() => return,
                };
                match loaded {
                    Ok(()) => break,
                    Err(e) if Instant::now() + backoff > give_up => {
                        tracing::warn!("cannot refresh the OAUTHBEARER keys: {e}");
                        break;
                    }
                    Err(_) => {
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return,
                        }
                        backoff = backoff.saturating_mul(2);
                    }
                }
            }
        }
    }

    fn ask_refresh(&self, kid: &str) {
        if !matches!(self.settings.source, KeySource::Url(_)) || kid.len() > 1000 {
            return;
        }
        let Ok(mut asked) = self.unknown_kids.lock() else {
            return;
        };
        let now = Instant::now();
        if asked
            .get(kid)
            .is_some_and(|t| now.duration_since(*t) < UNKNOWN_KID_INTERVAL)
        {
            return;
        }
        if asked.len() >= 16 {
            asked.retain(|_, t| now.duration_since(*t) < UNKNOWN_KID_INTERVAL);
        }
        if asked.len() < 16 {
            asked.insert(kid.to_string(), now);
            self.refresh_now.notify_one();
        }
    }

    fn validate(&self, token: &str, now_ms: i64) -> Result<Validated, Invalid> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, payload_b64, signature_b64] = parts[..] else {
            return Err(Invalid::token("the token does not have three parts"));
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Invalid::token("the token has an empty part"));
        }
        let header = json_object(header_b64, "header")?;
        if header.contains_key("crit") {
            return Err(Invalid::token(
                "the token has critical header extensions (crit), none of which krust knows",
            ));
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
        if alg == "none" {
            return Err(Invalid::token("the token is not signed"));
        }
        let signature = b64_decode(signature_b64)
            .ok_or_else(|| Invalid::token("the signature is not base64url"))?;
        let kid = header.get("kid").and_then(Value::as_str);
        let keys = self.keys();
        let candidates: Vec<&Jwk> = keys
            .iter()
            .filter(|k| kid.is_none_or(|id| k.kid.as_deref() == Some(id)))
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
            .collect();
        if candidates.is_empty() {
            if let Some(id) = kid {
                self.ask_refresh(id);
                return Err(Invalid::token(format!("no key with kid {id} for {alg}")));
            }
            return Err(Invalid::token(format!("no key for {alg}")));
        }
        let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        let mut supported = false;
        let mut verified = false;
        for k in candidates {
            match verify(alg, &k.key, signed, &signature) {
                Some(true) => {
                    verified = true;
                    break;
                }
                Some(false) => supported = true,
                None => {}
            }
        }
        if !verified {
            return Err(Invalid::token(if supported {
                "the signature does not verify".to_string()
            } else {
                format!("no key of the token's kid verifies {alg} signatures")
            }));
        }
        let claims = json_object(payload_b64, "payload")?;
        let s = &self.settings;
        let skew = s.clock_skew_s.saturating_mul(1000);
        let exp = date_ms(&claims, "exp")?.ok_or_else(|| Invalid::token("no exp claim"))?;
        if exp < 0 {
            return Err(Invalid::token("claim exp is negative"));
        }
        if date_ms(&claims, "iat")?.is_none() {
            return Err(Invalid::token("no iat claim"));
        }
        if now_ms.saturating_sub(skew) >= exp {
            return Err(Invalid::token("the token has expired"));
        }
        if let Some(nbf) = date_ms(&claims, "nbf")? {
            if now_ms.saturating_add(skew) < nbf {
                return Err(Invalid::token("the token is not valid yet (nbf)"));
            }
        }
        if let Some(issuer) = &s.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(Invalid::token(format!("the issuer is not {issuer}")));
            }
        }
        let aud: Vec<&str> = match claims.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(Invalid::token("claim aud is not a string or a list")),
        };
        match &s.audience {
            Some(expected) if !aud.iter().any(|a| expected.iter().any(|e| e == a)) => {
                return Err(Invalid::token(format!(
                    "the audience {aud:?} is none of {expected:?}"
                )))
            }
            None if !aud.is_empty() => {
                return Err(Invalid::token(
                    "the token has an audience (aud) but sasl.oauthbearer.expected.audience \
                     is not set",
                ))
            }
            _ => {}
        }
        let scope = scope_of(&claims, &s.scope_claim)?;
        if scope.iter().any(String::is_empty) {
            return Err(Invalid::token("the scope has a blank item"));
        }
        if scope
            .iter()
            .enumerate()
            .any(|(i, a)| scope[..i].contains(a))
        {
            return Err(Invalid::token("the scope names an item twice"));
        }
        let principal = principal_of(&claims, &s.sub_claim)?.trim().to_string();
        Ok(Validated {
            principal,
            expires_ms: exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    fn unsecured(claims: &str) -> String {
        format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes()))
    }

    #[test]
    fn unsecured_tokens() {
        let v = Validator::Unsecured(UnsecuredOptions::default());
        let ok = unsecured(r#"{"sub":"alice","iat":1699999999.5,"exp":1700000060}"#);
        assert_eq!(
            v.validate(&ok, NOW),
            Ok(Validated {
                principal: "alice".into(),
                expires_ms: 1_700_000_060_000
            })
        );
        for (claims, why) in [
            (r#"{"sub":"alice","exp":1700000000}"#, "expired"),
            (r#"{"sub":"alice"}"#, "exp"),
            (r#"{"exp":1700000060}"#, "sub"),
            (r#"{"sub":" ","exp":1700000060}"#, "blank"),
            (r#"{"sub":"a","exp":1700000060,"iat":1700000001}"#, "future"),
            (r#"{"sub":"a","exp":"soon"}"#, "number"),
            (r#"[1]"#, "object"),
        ] {
            let e = v.validate(&unsecured(claims), NOW).expect_err(claims);
            assert_eq!(e.status, "invalid_token");
            assert!(e.reason.contains(why), "{claims}: {}", e.reason);
        }
        let signed = format!("{}sig", ok);
        assert!(v.validate(&signed, NOW).is_err());
        let rs = format!(
            "{}.{}.",
            b64(br#"{"alg":"RS256"}"#),
            b64(br#"{"sub":"a","exp":1700000060}"#)
        );
        assert!(v.validate(&rs, NOW).is_err());
        for bad in ["", "a.b", "a..", "!!.??.", "a.b.c.d"] {
            assert!(v.validate(bad, NOW).is_err(), "{bad}");
        }

        let scoped = Validator::Unsecured(UnsecuredOptions {
            required_scope: vec!["read".into(), "write".into()],
            clock_skew_ms: 5000,
            ..Default::default()
        });
        let e = scoped
            .validate(
                &unsecured(r#"{"sub":"a","exp":1700000060,"scope":["read"]}"#),
                NOW,
            )
            .expect_err("lacks write");
        assert_eq!(e.status, "insufficient_scope");
        assert_eq!(
            e.challenge(),
            r#"{"status":"insufficient_scope", "scope":"[read, write]"}"#
        );
        let both = unsecured(r#"{"sub":"a","exp":1699999998,"scope":["write","read"]}"#);
        assert!(scoped.validate(&both, NOW).is_ok(), "within the clock skew");
    }

    fn es256_key() -> (ring::signature::EcdsaKeyPair, String) {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");
        let point = pair.public_key().as_ref();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","x":"{}","y":"{}"}},{{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}}]}}"#,
            b64(&point[1..33]),
            b64(&point[33..65])
        );
        (pair, jwks)
    }

    fn sign(pair: &ring::signature::EcdsaKeyPair, kid: &str, claims: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        let head = format!(r#"{{"alg":"ES256","kid":"{kid}","typ":"JWT"}}"#);
        let input = format!("{}.{}", b64(head.as_bytes()), b64(claims.as_bytes()));
        let sig = pair.sign(&rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", b64(sig.as_ref()))
    }

    #[test]
    fn signed_tokens() {
        let (pair, jwks) = es256_key();
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks).expect("write");
        let settings = SignedSettings {
            source: KeySource::File(path),
            refresh_ms: 3_600_000,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 10_000,
            audience: Some(vec!["kafka".into()]),
            issuer: Some("https://idp".into()),
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_s: 30,
            trust_pem: None,
        };
        let v = Validator::Signed(Arc::new(
            SignedValidator::new(settings.clone()).expect("keys"),
        ));
        let good = r#"{"sub":"svc","iss":"https://idp","aud":["kafka","x"],"iat":1699999990,"exp":1700000100}"#;
        assert_eq!(
            v.validate(&sign(&pair, "k1", good), NOW)
                .map(|t| t.principal),
            Ok("svc".into())
        );
        // Within the 30 s skew.
        let late = r#"{"sub":"svc","iss":"https://idp","aud":"kafka","iat":1,"exp":1699999980}"#;
        assert!(v.validate(&sign(&pair, "k1", late), NOW).is_ok());
        for (kid, claims, why) in [
            ("k2", good, "kid k2"),
            (
                "k1",
                r#"{"sub":"svc","iss":"https://idp","aud":"kafka","iat":1,"exp":1699999900}"#,
                "expired",
            ),
            (
                "k1",
                r#"{"sub":"svc","iss":"https://other","aud":"kafka","iat":1,"exp":1700000100}"#,
                "issuer",
            ),
            (
                "k1",
                r#"{"sub":"svc","iss":"https://idp","aud":"web","iat":1,"exp":1700000100}"#,
                "audience",
            ),
            (
                "k1",
                r#"{"sub":"svc","iss":"https://idp","aud":"kafka","exp":1700000100}"#,
                "iat",
            ),
            (
                "k1",
                r#"{"iss":"https://idp","aud":"kafka","iat":1,"exp":1700000100}"#,
                "sub",
            ),
            (
                "k1",
                r#"{"sub":"svc","iss":"https://idp","aud":"kafka","iat":1,"exp":1700000100,"nbf":1700000200}"#,
                "nbf",
            ),
        ] {
            let e = v
                .validate(&sign(&pair, kid, claims), NOW)
                .expect_err(claims);
            assert!(e.reason.contains(why), "{claims}: {}", e.reason);
            assert_eq!(e.challenge(), r#"{"status":"invalid_token"}"#);
        }
        // A signature made by another key, and a payload changed after signing.
        let (other, _) = es256_key();
        let e = v
            .validate(&sign(&other, "k1", good), NOW)
            .expect_err("other key");
        assert!(e.reason.contains("does not verify"), "{}", e.reason);
        let token = sign(&pair, "k1", good);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = b64(good.replace("svc", "admin").as_bytes());
        assert!(v.validate(&parts.join("."), NOW).is_err());
        // Unsigned tokens are refused.
        assert!(v.validate(&unsecured(good), NOW).is_err());

        // Without an expected audience, a token carrying one is refused.
        let open = SignedValidator::new(SignedSettings {
            audience: None,
            issuer: None,
            ..settings.clone()
        })
        .expect("keys");
        let e = open
            .validate(&sign(&pair, "k1", good), NOW)
            .expect_err("aud");
        assert!(e.reason.contains("expected.audience"), "{}", e.reason);
        let no_aud = r#"{"sub":"svc","iat":1,"exp":1700000100}"#;
        assert!(open.validate(&sign(&pair, "k1", no_aud), NOW).is_ok());

        // A file without usable keys is refused at startup.
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, r#"{"keys":[]}"#).expect("write");
        let e = SignedValidator::new(SignedSettings {
            source: KeySource::File(empty),
            ..settings
        })
        .expect_err("no keys");
        assert!(e.contains("no signature key"), "{e}");
    }

    #[test]
    fn hmac_and_jwks_parsing() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","k":"{}","alg":"HS256"}},{{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}},{{"kty":"RSA"}}]}}"#,
            b64(secret)
        );
        let keys = parse_jwks(doc.as_bytes(), true).expect("jwks");
        assert_eq!(keys.len(), 1);
        // A JWKS fetched from a URL gives no shared secrets.
        assert!(parse_jwks(doc.as_bytes(), false).expect("jwks").is_empty());
        let input = b"a.b";
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            input,
        );
        assert_eq!(
            verify("HS256", &keys[0].key, input, tag.as_ref()),
            Some(true)
        );
        assert_eq!(
            verify("HS256", &keys[0].key, b"a.c", tag.as_ref()),
            Some(false)
        );
        assert_eq!(verify("ES256", &keys[0].key, input, tag.as_ref()), None);
        // Shorter than HS384's hash: refused.
        let tag384 = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA384, secret),
            input,
        );
        assert_eq!(
            verify("HS384", &keys[0].key, input, tag384.as_ref()),
            Some(false)
        );
        for bad in [&b"nope"[..], b"{}", b"{\"keys\":3}"] {
            assert!(parse_jwks(bad, true).is_err());
        }
    }

    #[test]
    fn rsa_ec_and_eddsa_signatures() {
        use ring::signature::{self as sig, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let input = b"header.payload";
        // RSA, from a test key; its modulus written with a leading zero, as some providers do.
        let rsa = sig::RsaKeyPair::from_der(include_bytes!("../testdata/oauth-test-rsa2048.der"))
            .expect("rsa key");
        let components: sig::RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
        let (n, e) = (components.n, components.e);
        let mut padded = vec![0];
        padded.extend_from_slice(&n);
        let doc = format!(
            r#"{{"keys":[{{"kty":"RSA","kid":"r","n":"{}","e":"{}"}}]}}"#,
            b64(&padded),
            b64(&e)
        );
        let keys = parse_jwks(doc.as_bytes(), false).expect("jwks");
        for (alg, encoding) in [
            ("RS256", &sig::RSA_PKCS1_SHA256 as &dyn sig::RsaEncoding),
            ("RS512", &sig::RSA_PKCS1_SHA512),
            ("PS256", &sig::RSA_PSS_SHA256),
            ("PS384", &sig::RSA_PSS_SHA384),
        ] {
            let mut signature = vec![0; rsa.public().modulus_len()];
            rsa.sign(encoding, &rng, input, &mut signature)
                .expect("sign");
            assert_eq!(
                verify(alg, &keys[0].key, input, &signature),
                Some(true),
                "{alg}"
            );
            assert_eq!(
                verify(alg, &keys[0].key, b"other", &signature),
                Some(false),
                "{alg}"
            );
        }
        assert_eq!(verify("ES256", &keys[0].key, input, &[0; 64]), None);

        // ES384.
        let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .expect("key");
        let ec = sig::EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("key");
        let point = ec.public_key().as_ref();
        let doc = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-384","x":"{}","y":"{}"}}]}}"#,
            b64(&point[1..49]),
            b64(&point[49..97])
        );
        let keys = parse_jwks(doc.as_bytes(), false).expect("jwks");
        let signature = ec.sign(&rng, input).expect("sign");
        assert_eq!(
            verify("ES384", &keys[0].key, input, signature.as_ref()),
            Some(true)
        );
        assert_eq!(
            verify("ES256", &keys[0].key, input, signature.as_ref()),
            None
        );

        // EdDSA (Ed25519).
        let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let ed = sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let doc = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{}"}}]}}"#,
            b64(ed.public_key().as_ref())
        );
        let keys = parse_jwks(doc.as_bytes(), false).expect("jwks");
        let signature = ed.sign(input);
        assert_eq!(
            verify("EdDSA", &keys[0].key, input, signature.as_ref()),
            Some(true)
        );
        assert_eq!(
            verify("EdDSA", &keys[0].key, b"x", signature.as_ref()),
            Some(false)
        );
    }

    #[test]
    fn signed_token_details() {
        let (pair, jwks) = es256_key();
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks).expect("write");
        let v = SignedValidator::new(SignedSettings {
            source: KeySource::File(path),
            refresh_ms: 3_600_000,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 10_000,
            audience: None,
            issuer: None,
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_s: 0,
            trust_pem: None,
        })
        .expect("keys");
        let rng = ring::rand::SystemRandom::new();
        let signed = |head: &str, claims: &str| {
            let input = format!("{}.{}", b64(head.as_bytes()), b64(claims.as_bytes()));
            let sig = pair.sign(&rng, input.as_bytes()).expect("sign");
            format!("{input}.{}", b64(sig.as_ref()))
        };
        // No kid: any key of the algorithm may verify it. The principal is trimmed.
        let claims = r#"{"sub":" svc ","iat":1,"exp":1700000100,"scope":["a","b"]}"#;
        assert_eq!(
            v.validate(&signed(r#"{"alg":"ES256"}"#, claims), NOW)
                .map(|t| t.principal),
            Ok("svc".to_string())
        );
        for (head, claims, why) in [
            (r#"{"alg":"ES256","crit":["x"]}"#, claims, "crit"),
            (
                r#"{"alg":"ES256"}"#,
                r#"{"sub":"s","iat":1,"exp":1700000100,"scope":["a","a"]}"#,
                "twice",
            ),
            (
                r#"{"alg":"ES256"}"#,
                r#"{"sub":"s","iat":1,"exp":1700000000}"#,
                "expired",
            ),
            (r#"{"alg":"HS256"}"#, claims, "no key"),
        ] {
            let e = v.validate(&signed(head, claims), NOW).expect_err(why);
            assert!(e.reason.contains(why), "{why}: {}", e.reason);
        }
    }
}
