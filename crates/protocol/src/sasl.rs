//! The SASL mechanisms krust speaks, on both ends of a connection: PLAIN (RFC 4616),
//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677) and OAUTHBEARER's messages
//! (RFC 7628), as Kafka uses them, plus the JAAS option syntax Kafka's `sasl.jaas.config`
//! settings are written in.
//!
//! Nothing here does I/O. Every message from the other side is checked: a malformed one is
//! an [`SaslError`], never a panic.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Kafka's lower bound on SCRAM iterations (`ScramMechanism.minIterations`, 4096 for both).
pub const SCRAM_MIN_ITERATIONS: i32 = 4096;
/// The most iterations a SCRAM credential may be stored with (Kafka's bound on
/// AlterUserScramCredentials).
pub const SCRAM_MAX_ITERATIONS: i32 = 16384;

/// A failed exchange, with the reason given to the other side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SaslError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(msg.into()))
}

/// A SASL mechanism krust implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];

    /// The IANA name, as in `sasl.enabled.mechanisms`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` type (1 = SHA-256, 2 = SHA-512) of a SCRAM mechanism.
    pub fn scram_type(self) -> Option<i8> {
        match self {
            Mechanism::Plain | Mechanism::OAuthBearer => None,
            Mechanism::ScramSha256 => Some(1),
            Mechanism::ScramSha512 => Some(2),
        }
    }

    pub fn from_scram_type(t: i8) -> Option<Mechanism> {
        match t {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    /// The name of the login module Kafka's `sasl.jaas.config` names for it.
    pub fn login_module(self) -> &'static str {
        match self {
            Mechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
            Mechanism::OAuthBearer => {
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            }
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------
// PLAIN

/// The one message of a PLAIN exchange: `authzid NUL user NUL password`, authzid empty.
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(2 + user.len() + password.len());
    m.push(0);
    m.extend_from_slice(user.as_bytes());
    m.push(0);
    m.extend_from_slice(password.as_bytes());
    m
}

/// The user and password of a PLAIN message. An authorization id other than the user
/// itself is refused, as Kafka refuses it.
pub fn parse_plain(msg: &[u8]) -> Result<(String, String), SaslError> {
    let msg = std::str::from_utf8(msg)
        .or_else(|_| fail("Authentication failed: the PLAIN message is not UTF-8"))?;
    let mut parts = msg.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return fail("Authentication failed: the PLAIN message must have 3 parts separated by NUL");
    };
    if user.is_empty() {
        return fail("Authentication failed: username not specified");
    }
    if password.is_empty() {
        return fail("Authentication failed: password not specified");
    }
    if !authzid.is_empty() && authzid != user {
        return fail(
            "Authentication failed: Client requested an authorization id that is different from username",
        );
    }
    Ok((user.to_string(), password.to_string()))
}

// ---------------------------------------------------------------------------------------
// OAUTHBEARER (RFC 7628)

/// A client's OAUTHBEARER message: its bearer token, the authorization id it asks for
/// (empty: the token's principal) and its extensions (RFC 7628 section 3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthBearerResponse {
    pub authzid: String,
    pub token: String,
    pub extensions: Vec<(String, String)>,
}

/// The client's message: `n,[a=authzid],` then `\x01`, `key=value\x01` pairs with
/// `auth=Bearer <token>` among them, and a final `\x01`.
pub fn oauth_bearer_message(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let mut m = format!("n,,\x01auth=Bearer {token}\x01");
    for (k, v) in extensions {
        m.push_str(&format!("{k}={v}\x01"));
    }
    m.push('\x01');
    m.into_bytes()
}

fn oauth_key_ok(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic())
}

fn oauth_value_ok(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Whether an extension's name and value follow RFC 7628 (a name of letters, a value of
/// printable characters and spaces), and the name is not the reserved `auth`.
pub fn oauth_extension_ok(k: &str, v: &str) -> bool {
    k != "auth" && oauth_key_ok(k) && oauth_value_ok(v)
}

/// Parses a client's OAUTHBEARER message as Kafka does: a GS2 header `n,` with an optional
/// `a=` authorization id, the `auth` pair with scheme `Bearer` (any case) and a token of
/// base64url/JWT characters, and extensions whose names are letters.
pub fn parse_oauth_bearer(msg: &[u8]) -> Result<OAuthBearerResponse, SaslError> {
    const BAD: &str = "Invalid OAUTHBEARER client first message";
    let msg = std::str::from_utf8(msg).or_else(|_| fail(BAD))?;
    let rest = msg
        .strip_prefix("n,")
        .ok_or_else(|| SaslError(BAD.into()))?;
    let (authzid, rest) = rest.split_once(',').ok_or_else(|| SaslError(BAD.into()))?;
    let authzid = match authzid {
        "" => String::new(),
        a => {
            let name = a.strip_prefix("a=").ok_or_else(|| SaslError(BAD.into()))?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| (0x01..=0x7f).contains(&b) && b != b',')
            {
                return fail(BAD);
            }
            name.to_string()
        }
    };
    let body = rest
        .strip_prefix('\x01')
        .and_then(|r| r.strip_suffix('\x01'))
        .ok_or_else(|| SaslError(BAD.into()))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !body.is_empty() {
        let body = body
            .strip_suffix('\x01')
            .ok_or_else(|| SaslError(BAD.into()))?;
        for kv in body.split('\x01') {
            let (k, v) = kv.split_once('=').ok_or_else(|| SaslError(BAD.into()))?;
            if !oauth_key_ok(k) || !oauth_value_ok(v) {
                return fail(BAD);
            }
            // A repeated key keeps its last value, as in Kafka.
            pairs.retain(|(old, _)| old != k);
            pairs.push((k.to_string(), v.to_string()));
        }
    }
    let auth = pairs
        .iter()
        .position(|(k, _)| k == "auth")
        .map(|i| pairs.remove(i).1)
        .ok_or_else(|| SaslError(format!("{BAD}: 'auth' not specified")))?;
    let invalid_auth = || SaslError(format!("{BAD}: invalid 'auth' format"));
    let (scheme, token) = auth.split_once(' ').ok_or_else(invalid_auth)?;
    let token = token.trim_start_matches(' ');
    let body_len = token.trim_end_matches('=').len();
    let token_ok = body_len > 0
        && token[..body_len]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/.".contains(&b));
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || !token_ok
    {
        return Err(invalid_auth());
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return fail(format!("{BAD}: invalid scheme in 'auth': {scheme}"));
    }
    Ok(OAuthBearerResponse {
        authzid,
        token: token.to_string(),
        extensions: pairs,
    })
}

// ---------------------------------------------------------------------------------------
// SCRAM arithmetic

/// What a server keeps of a SCRAM password (RFC 5802 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

fn hmac(mech: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    // Hmac accepts keys of any length, so new_from_slice cannot fail.
    match mech {
        Mechanism::ScramSha512 => {
            let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn hash(mech: Mechanism, data: &[u8]) -> Vec<u8> {
    match mech {
        Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// `Hi(password, salt, iterations)`: PBKDF2 with the mechanism's HMAC, one block.
pub fn salted_password(mech: Mechanism, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(mech, password, &block);
    let mut out = u.clone();
    for _ in 1..iterations.max(1) {
        u = hmac(mech, password, &u);
        out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
    }
    out
}

/// The stored and server keys of a salted password.
pub fn credential(
    mech: Mechanism,
    salted_password: &[u8],
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let client_key = hmac(mech, salted_password, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(mech, &client_key),
        server_key: hmac(mech, salted_password, b"Server Key"),
        iterations,
    }
}

/// A new random salt or nonce part, printable and free of commas.
pub fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    B64.encode(bytes)
}

/// A random salt for a new credential.
pub fn random_salt() -> Vec<u8> {
    let bytes: [u8; 32] = rand::random();
    bytes.to_vec()
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A SCRAM user name as sent (`=2C` for `,`, `=3D` for `=`).
fn encode_saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn decode_saslname(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return fail("Authentication failed: invalid user name encoding"),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `key=value` attributes of a SCRAM message, in order.
fn attributes(msg: &str) -> Result<Vec<(char, &str)>, SaslError> {
    msg.split(',')
        .map(|a| {
            let mut chars = a.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &a[2..])),
                _ => fail("Authentication failed: invalid SCRAM attribute"),
            }
        })
        .collect()
}

fn b64_decode(what: &str, v: &str) -> Result<Vec<u8>, SaslError> {
    B64.decode(v)
        .or_else(|_| fail(format!("Authentication failed: {what} is not base64")))
}

// ---------------------------------------------------------------------------------------
// SCRAM server

/// A server's side of one SCRAM exchange: client-first, then client-final.
#[derive(Debug)]
pub struct ScramServer {
    mech: Mechanism,
    state: ServerState,
}

#[derive(Debug)]
enum ServerState {
    Start,
    SentFirst {
        user: String,
        credential: ScramCredential,
        nonce: String,
        gs2_header: String,
        /// `client-first-bare "," server-first`, the start of the AuthMessage.
        auth_start: String,
    },
    Done,
}

impl ScramServer {
    pub fn new(mech: Mechanism) -> ScramServer {
        ScramServer {
            mech,
            state: ServerState::Start,
        }
    }

    /// Whether the client-first message was received (the next is client-final).
    pub fn started(&self) -> bool {
        !matches!(self.state, ServerState::Start)
    }

    /// Answers the client-first message with the server-first one. `lookup` gives the
    /// credential of a user of this mechanism, if it has one.
    pub fn first(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, ServerState::Start) {
            return fail("Authentication failed: unexpected client-first message");
        }
        self.state = ServerState::Done;
        let msg = std::str::from_utf8(msg)
            .or_else(|_| fail("Authentication failed: the SCRAM message is not UTF-8"))?;
        // gs2-header: cbind-flag "," [authzid] ","
        let mut parts = msg.splitn(3, ',');
        let (Some(flag), Some(authz), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return fail("Authentication failed: invalid SCRAM client-first message");
        };
        match flag {
            "n" | "y" => {}
            _ => return fail("Authentication failed: channel binding is not supported"),
        }
        let authzid = match authz {
            "" => None,
            a => match a.strip_prefix("a=") {
                Some(id) => Some(decode_saslname(id)?),
                None => return fail("Authentication failed: invalid SCRAM authorization id"),
            },
        };
        // `n=<user>,r=<nonce>`, then Kafka's extensions (`tokenauth=true` asks for a
        // delegation token, which krust does not issue). A mandatory extension (`m=`) would
        // come first and is refused with the rest.
        let mut parts = bare.splitn(3, ',');
        let (Some(name), Some(cnonce)) = (
            parts.next().and_then(|p| p.strip_prefix("n=")),
            parts.next().and_then(|p| p.strip_prefix("r=")),
        ) else {
            return fail("Authentication failed: invalid SCRAM client-first message");
        };
        let tokenauth = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .any(|e| e.split_once('=').map_or(e, |(k, _)| k) == "tokenauth");
        if tokenauth {
            return fail("Authentication failed: delegation tokens are not supported");
        }
        let user = decode_saslname(name)?;
        if user.is_empty() || cnonce.is_empty() {
            return fail("Authentication failed: invalid SCRAM client-first message");
        }
        if authzid.as_ref().is_some_and(|a| *a != user) {
            return fail(
                "Authentication failed: Client requested an authorization id that is different from username",
            );
        }
        let Some(credential) = lookup(&user) else {
            return fail("Authentication failed: Invalid user credentials");
        };
        let nonce = format!("{cnonce}{}", random_token());
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.state = ServerState::SentFirst {
            user,
            credential,
            nonce,
            gs2_header: format!("{flag},{authz},"),
            auth_start: format!("{bare},{server_first}"),
        };
        Ok(server_first.into_bytes())
    }

    /// Checks the client-final message's proof; on success, the server-final message and
    /// the authenticated user.
    pub fn finish(&mut self, msg: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        let ServerState::SentFirst {
            user,
            credential,
            nonce,
            gs2_header,
            auth_start,
        } = std::mem::replace(&mut self.state, ServerState::Done)
        else {
            return fail("Authentication failed: unexpected client-final message");
        };
        let msg = std::str::from_utf8(msg)
            .or_else(|_| fail("Authentication failed: the SCRAM message is not UTF-8"))?;
        let Some(i) = msg.rfind(",p=") else {
            return fail("Authentication failed: the SCRAM client-final message has no proof");
        };
        let without_proof = &msg[..i];
        let proof = b64_decode("the client proof", &msg[i + 3..])?;
        let attrs = attributes(without_proof)?;
        let (Some(('c', binding)), Some(('r', their_nonce))) =
            (attrs.first().copied(), attrs.get(1).copied())
        else {
            return fail("Authentication failed: invalid SCRAM client-final message");
        };
        if b64_decode("the channel binding", binding)? != gs2_header.as_bytes() {
            return fail("Authentication failed: channel binding does not match");
        }
        if their_nonce != nonce {
            return fail("Authentication failed: Invalid nonce");
        }
        let auth_message = format!("{auth_start},{without_proof}");
        let signature = hmac(self.mech, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return fail("Authentication failed: Invalid client credentials");
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&hash(self.mech, &client_key), &credential.stored_key) {
            return fail("Authentication failed: Invalid client credentials");
        }
        let server_signature = hmac(self.mech, &credential.server_key, auth_message.as_bytes());
        Ok((
            format!("v={}", B64.encode(server_signature)).into_bytes(),
            user,
        ))
    }
}

// ---------------------------------------------------------------------------------------
// SCRAM client

/// A client's side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramClient {
    mech: Mechanism,
    password: String,
    client_first_bare: String,
    cnonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mech: Mechanism, user: &str, password: &str) -> ScramClient {
        let cnonce = random_token();
        ScramClient {
            mech,
            password: password.to_string(),
            client_first_bare: format!("n={},r={cnonce}", encode_saslname(user)),
            cnonce,
            server_signature: None,
        }
    }

    pub fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message for the server-first one.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let server_first = std::str::from_utf8(server_first)
            .or_else(|_| fail("the SCRAM server-first message is not UTF-8"))?;
        let attrs = attributes(server_first)?;
        let (Some(('r', nonce)), Some(('s', salt)), Some(('i', iterations))) = (
            attrs.first().copied(),
            attrs.get(1).copied(),
            attrs.get(2).copied(),
        ) else {
            return fail(format!(
                "invalid SCRAM server-first message '{server_first}'"
            ));
        };
        if !nonce.starts_with(&self.cnonce) || nonce.len() == self.cnonce.len() {
            return fail("the server's SCRAM nonce does not extend the client's");
        }
        let salt = b64_decode("the salt", salt)?;
        let iterations: i32 = iterations
            .parse()
            .or_else(|_| fail("invalid SCRAM iteration count"))?;
        if iterations < SCRAM_MIN_ITERATIONS {
            return fail(format!(
                "the server asked for {iterations} SCRAM iterations, fewer than {SCRAM_MIN_ITERATIONS}"
            ));
        }
        let salted = salted_password(self.mech, self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = hmac(self.mech, &salted, b"Client Key");
        let stored_key = hash(self.mech, &client_key);
        let signature = hmac(self.mech, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(self.mech, &salted, b"Server Key");
        self.server_signature = Some(hmac(self.mech, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server knew the credential too.
    pub fn verify_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let text = String::from_utf8_lossy(server_final);
        if let Some(e) = text.strip_prefix("e=") {
            return fail(format!("the server refused the SCRAM exchange: {e}"));
        }
        let Some(v) = text.strip_prefix("v=") else {
            return fail("invalid SCRAM server-final message");
        };
        let got = b64_decode("the server signature", v)?;
        match &self.server_signature {
            Some(want) if constant_time_eq(want, &got) => Ok(()),
            _ => fail("the server's SCRAM signature is wrong"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// JAAS

/// One login module entry of a `sasl.jaas.config` value:
/// `<class> <flag> key=value ... ;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    pub options: Vec<(String, String)>,
}

impl JaasConfig {
    pub fn option(&self, key: &str) -> Option<&str> {
        jaas_option(&self.options, key)
    }
}

/// The value of option `key` among a JAAS entry's options.
pub fn jaas_option<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses a `sasl.jaas.config` value holding exactly one login module, as Kafka requires.
/// Values are words or double-quoted strings (`\"` and `\\` escaped).
pub fn parse_jaas(text: &str) -> Result<JaasConfig, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == ';' || c == '=' {
            chars.next();
            tokens.push((false, c.to_string()));
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted value".to_string()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e) => s.push(e),
                        None => return Err("unterminated quoted value".to_string()),
                    },
                    Some(ch) => s.push(ch),
                }
            }
            tokens.push((true, s));
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == ';' || ch == '=' || ch == '"' {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            tokens.push((false, s));
        }
    }
    let mut it = tokens.into_iter();
    let Some((false, login_module)) = it.next() else {
        return Err("expected a login module class name".to_string());
    };
    match it.next() {
        Some((false, f))
            if matches!(
                f.to_ascii_lowercase().as_str(),
                "required" | "requisite" | "sufficient" | "optional"
            ) => {}
        _ => {
            return Err(format!(
                "expected a control flag (required, requisite, sufficient or optional) after {login_module}"
            ))
        }
    }
    let mut options = Vec::new();
    loop {
        match it.next() {
            Some((false, t)) if t == ";" => break,
            Some((false, key)) if key != "=" => {
                match it.next() {
                    Some((false, eq)) if eq == "=" => {}
                    _ => return Err("expected '=' after an option name".to_string()),
                }
                match it.next() {
                    Some((quoted, v)) if quoted || (v != ";" && v != "=") => options.push((key, v)),
                    _ => return Err(format!("expected a value for option {key}")),
                }
            }
            None => return Err("the login module entry must end with ';'".to_string()),
            Some(_) => return Err("unexpected token in the options".to_string()),
        }
    }
    if it.next().is_some() {
        return Err("sasl.jaas.config must hold exactly one login module".to_string());
    }
    Ok(JaasConfig {
        login_module,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_rfc7677_example() {
        // RFC 7677 section 3: user "user", password "pencil".
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let mut client = ScramClient {
            mech: Mechanism::ScramSha256,
            password: "pencil".into(),
            client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            cnonce: "rOprNGfwEbeRWgbNEkqO".into(),
            server_signature: None,
        };
        assert_eq!(
            client.first_message(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec()
        );
        let client_final = client
            .final_message(server_first.as_bytes())
            .expect("client final");
        assert_eq!(
            String::from_utf8(client_final).expect("utf8"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("server signature");
        assert!(client.verify_final(b"v=AAAA").is_err());
        assert!(client.verify_final(b"e=invalid-proof").is_err());

        // The server side accepts the same proof from the stored credential.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = salted_password(Mechanism::ScramSha256, b"pencil", &salt, 4096);
        let cred = credential(Mechanism::ScramSha256, &salted, &salt, 4096);
        let mut server = ScramServer::new(Mechanism::ScramSha256);
        let first = server
            .first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", |u| {
                (u == "user").then(|| cred.clone())
            })
            .expect("first");
        let first = String::from_utf8(first).expect("utf8");
        assert!(first.starts_with("r=rOprNGfwEbeRWgbNEkqO"));
        assert!(first.ends_with(",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"));
    }

    #[test]
    fn scram_round_trip_both_mechanisms() {
        for mech in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let salt = random_salt();
            let salted = salted_password(mech, b"s3cret", &salt, 4096);
            let cred = credential(mech, &salted, &salt, 4096);
            let mut client = ScramClient::new(mech, "al,i=ce", "s3cret");
            let mut server = ScramServer::new(mech);
            let sf = server
                .first(&client.first_message(), |u| {
                    (u == "al,i=ce").then(|| cred.clone())
                })
                .expect("first");
            let cf = client.final_message(&sf).expect("client final");
            let (sfinal, user) = server.finish(&cf).expect("server final");
            assert_eq!(user, "al,i=ce");
            client.verify_final(&sfinal).expect("verified");

            // A wrong password fails at the server.
            let mut client = ScramClient::new(mech, "al,i=ce", "wrong");
            let mut server = ScramServer::new(mech);
            let sf = server
                .first(&client.first_message(), |_| Some(cred.clone()))
                .expect("first");
            let cf = client.final_message(&sf).expect("client final");
            assert!(server.finish(&cf).is_err());
        }
    }

    #[test]
    fn scram_server_refuses_bad_messages() {
        let cred = credential(Mechanism::ScramSha256, b"x", b"salt", 4096);
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=a,r=x",
            b"n,,r=x,n=a",
            b"n,,n=a",
            b"n,a=b,n=a,r=x",
            b"n,,n=a=,r=x",
            b"n,,n=a,r=x,tokenauth=true",
            b"n,,m=ext,n=a,r=x",
            b"\xff\xfe",
        ] {
            let mut s = ScramServer::new(Mechanism::ScramSha256);
            assert!(s.first(bad, |_| Some(cred.clone())).is_err(), "{bad:?}");
        }
        let mut s = ScramServer::new(Mechanism::ScramSha256);
        assert!(s.first(b"n,,n=nobody,r=abc", |_| None).is_err());
        // Other extensions are ignored.
        let mut s = ScramServer::new(Mechanism::ScramSha256);
        assert!(s
            .first(b"n,,n=a,r=abc,ext=1", |_| Some(cred.clone()))
            .is_ok());
        let mut s = ScramServer::new(Mechanism::ScramSha256);
        s.first(b"n,,n=a,r=abc", |_| Some(cred.clone()))
            .expect("first");
        for bad in [&b"c=biws,r=abc"[..], b"c=biws,r=wrong,p=AAAA", b"p=,"] {
            let mut s2 = ScramServer::new(Mechanism::ScramSha256);
            s2.first(b"n,,n=a,r=abc", |_| Some(cred.clone()))
                .expect("first");
            assert!(s2.finish(bad).is_err(), "{bad:?}");
        }
        // Out of order.
        assert!(ScramServer::new(Mechanism::ScramSha256)
            .finish(b"c=biws,r=abc,p=AAAA")
            .is_err());
    }

    #[test]
    fn plain_messages() {
        assert_eq!(
            parse_plain(&plain_message("alice", "pw")),
            Ok(("alice".into(), "pw".into()))
        );
        assert_eq!(
            parse_plain(b"alice\0alice\0pw"),
            Ok(("alice".into(), "pw".into()))
        );
        for bad in [
            &b"bob\0alice\0pw"[..],
            b"\0alice",
            b"\0\0pw",
            b"\0a\0",
            b"a\0b\0c\0d",
        ] {
            assert!(parse_plain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn jaas_values() {
        let j = parse_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret" user_admin="admin-secret"
               user_alice="a \"quoted\" one" plain=word;"#,
        )
        .expect("parses");
        assert_eq!(j.login_module, Mechanism::Plain.login_module());
        assert_eq!(j.option("username"), Some("admin"));
        assert_eq!(j.option("user_alice"), Some("a \"quoted\" one"));
        assert_eq!(j.option("plain"), Some("word"));
        for bad in [
            "",
            "Module",
            "Module required username=\"a\"",
            "Module maybe;",
            "Module required username;",
            "Module required username=;",
            "Module required username=\"a;",
            "Module required; Other required;",
        ] {
            assert!(parse_jaas(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_jaas("M optional;").map(|j| j.options.len()), Ok(0));
    }

    #[test]
    fn oauth_bearer_messages() {
        let ext = vec![("traceId".to_string(), "a b".to_string())];
        let m = oauth_bearer_message("eyJh.eyJz.", &ext);
        assert_eq!(m, b"n,,\x01auth=Bearer eyJh.eyJz.\x01traceId=a b\x01\x01");
        let r = parse_oauth_bearer(&m).expect("parses");
        assert_eq!(r.token, "eyJh.eyJz.");
        assert_eq!(r.authzid, "");
        assert_eq!(r.extensions, ext);
        let r = parse_oauth_bearer(b"n,a=alice,\x01auth=bearer  tok==\x01\x01").expect("parses");
        assert_eq!((r.authzid.as_str(), r.token.as_str()), ("alice", "tok=="));
        for bad in [
            &b""[..],
            b"y,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,auth=Bearer t\x01\x01",
            b"n,,\x01\x01",
            b"n,,\x01auth=Basic dXNlcg==\x01\x01",
            b"n,,\x01auth=Bearer t!\x01\x01",
            b"n,,\x01auth=Bearer t\x01k1=v\x01\x01",
            b"n,,\x01auth=Bearer t\x01k=\x01\x01",
            b"n,x=y,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer \xff\x01\x01",
        ] {
            assert!(parse_oauth_bearer(bad).is_err(), "{bad:?}");
        }
        assert!(oauth_extension_ok("k", "v"));
        assert!(!oauth_extension_ok("auth", "v"));
        assert!(!oauth_extension_ok("k_1", "v"));
    }
}
