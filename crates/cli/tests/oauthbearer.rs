//! SASL/OAUTHBEARER: unsecured tokens (Kafka's default validator) and signed tokens checked
//! against an identity provider's keys fetched over HTTP, with confluent-kafka (librdkafka's
//! unsecured tokens, and signed ones from a callback), kafka-python, krust's tools
//! (unsecured login, a token file, a token endpoint) and raw requests for the protocol's
//! error challenge and session lifetimes.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use krust_testkit::cli::{run, stderr, stdout};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

const MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unsecured_token(claims: &str) -> String {
    format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes()))
}

/// SaslHandshake and one SaslAuthenticate (v2) with `token` on a raw connection.
fn login(s: &mut TcpStream, token: &str) -> SaslAuthenticateResponse {
    let hs = call(
        s,
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")),
    )
    .expect("handshake");
    assert_eq!(hs.error_code, 0);
    let msg = format!("n,,\x01auth=Bearer {token}\x01\x01");
    call(
        s,
        2,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(msg)),
    )
    .expect("authenticate")
}

/// Authenticates a fresh connection with `token`: the session lifetime, or the broker's
/// error challenge after it failed the exchange (and closed the connection).
fn try_token(node: &Node, token: &str) -> Result<i64, String> {
    let mut s = connect(node);
    let r = login(&mut s, token);
    if r.error_code == 0 && r.auth_bytes.is_empty() {
        return Ok(r.session_lifetime_ms);
    }
    assert_eq!(
        r.error_code, 0,
        "a refused token is answered with a challenge"
    );
    let challenge = String::from_utf8_lossy(&r.auth_bytes).to_string();
    let ack = call(
        &mut s,
        3,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(&[1])),
    )
    .expect("failure");
    assert_eq!(ack.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert_eq!(ack.error_message.as_deref(), Some(challenge.as_str()));
    assert!(closed(&mut s));
    Err(challenge)
}

fn command_config(dir: &std::path::Path, name: &str, lines: &[&str]) -> String {
    let path = dir.join(name);
    let mut text = "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n".to_string();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write command config");
    path.display().to_string()
}

fn list_topics(node: &Node, config: &str) -> std::process::Output {
    run(
        BIN,
        &[
            "topics",
            "--bootstrap-server",
            &node.bootstrap(),
            "--command-config",
            config,
            "--list",
        ],
    )
}

/// Runs `tests/python/oauthbearer.py` against `node` with `args`; its stdout.
fn python(node: &Node, args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/oauthbearer.py");
    let out = std::process::Command::new(krust_testkit::python::python())
        .arg(script)
        .arg(node.bootstrap())
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "oauthbearer.py {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    stdout
}

#[test]
fn unsecured_tokens_name_their_principal() {
    // Kafka's default validator, with a required scope; ACLs show whom a token names.
    let broker_jaas = format!(
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={MODULE} required \
         unsecuredLoginStringClaim_sub=\"broker\" unsecuredLoginListClaim_scope=\",kafka\" \
         unsecuredValidatorRequiredScope=\"kafka\";"
    );
    let node = Node::start_listener(
        BIN,
        "SASL_PLAINTEXT",
        &[
            "sasl.enabled.mechanisms=OAUTHBEARER",
            "sasl.mechanism.inter.broker.protocol=OAUTHBEARER",
            &broker_jaas,
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:alice;User:broker",
            "connection.failed.authentication.delay.ms=10",
        ],
    );

    // librdkafka's own unsecured tokens and kafka-python's: alice may do anything, bob
    // nothing, and a token without the scope is refused.
    let out = python(&node, &["unsecured"]);
    for line in [
        "confluent-kafka unsecured: ok",
        "confluent-kafka refusals: ok",
        "kafka-python unsecured: ok",
    ] {
        assert!(out.contains(line), "{out}");
    }

    // krust's tools, with Kafka's unsecured login options.
    let dir = tempfile::tempdir().expect("dir");
    let alice = command_config(
        dir.path(),
        "alice.properties",
        &[&format!(
            "sasl.jaas.config={MODULE} required unsecuredLoginStringClaim_sub=\"alice\" \
             unsecuredLoginListClaim_scope=\" kafka other\";"
        )],
    );
    let o = list_topics(&node, &alice);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).lines().any(|l| l == "py-unsecured"),
        "{}",
        stdout(&o)
    );
    let no_scope = command_config(
        dir.path(),
        "no-scope.properties",
        &[&format!(
            "sasl.jaas.config={MODULE} required unsecuredLoginStringClaim_sub=\"alice\";"
        )],
    );
    let o = list_topics(&node, &no_scope);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("insufficient_scope"), "{}", stderr(&o));

    // The protocol: a token's session ends when it expires; a refused token gets RFC 7628's
    // error challenge, then the failure.
    let exp = now_s() + 30;
    let lifetime = try_token(
        &node,
        &unsecured_token(&format!(r#"{{"sub":"alice","scope":"kafka","exp":{exp}}}"#)),
    )
    .expect("accepted");
    assert!((20_000..=30_000).contains(&lifetime), "{lifetime}");
    assert_eq!(
        try_token(
            &node,
            &unsecured_token(&format!(r#"{{"sub":"alice","exp":{exp}}}"#))
        ),
        Err(r#"{"status":"insufficient_scope", "scope":"[kafka]"}"#.to_string())
    );
    let past = now_s() - 60;
    assert_eq!(
        try_token(
            &node,
            &unsecured_token(&format!(
                r#"{{"sub":"alice","scope":"kafka","exp":{past}}}"#
            ))
        ),
        Err(r#"{"status":"invalid_token"}"#.to_string())
    );
    // A session ends with its token: the connection is served until the token expires,
    // then closed at its next request.
    let mut s = connect(&node);
    let exp_ms = (now_s() + 3) * 1000;
    let r = login(
        &mut s,
        &unsecured_token(&format!(
            r#"{{"sub":"alice","scope":"kafka","exp":{}}}"#,
            exp_ms / 1000
        )),
    );
    assert_eq!(r.error_code, 0);
    assert!(r.session_lifetime_ms > 0 && r.session_lifetime_ms <= 3000);
    let mut corr = 10;
    wait_for(
        "the token's session to end",
        Duration::from_secs(20),
        || {
            corr += 1;
            match call(&mut s, corr, 12, &MetadataRequest::default()) {
                Some(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                    None
                }
                None => Some(()),
            }
        },
    );
    let ended = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    assert!(
        ended >= u128::from(exp_ms),
        "closed before the token expired"
    );
    // An authorization id other than the token's principal is refused.
    let mut s = connect(&node);
    call(
        &mut s,
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")),
    )
    .expect("handshake");
    let msg = format!(
        "n,a=bob,\x01auth=Bearer {}\x01\x01",
        unsecured_token(&format!(r#"{{"sub":"alice","scope":"kafka","exp":{exp}}}"#))
    );
    let r = call(
        &mut s,
        2,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(msg)),
    )
    .expect("answer");
    assert_eq!(r.error_code, 58);
    assert!(
        r.error_message
            .as_deref()
            .is_some_and(|m| m.contains("(bob)")),
        "{r:?}"
    );
    assert!(closed(&mut s));
    // A malformed message fails at once, without a challenge.
    let mut s = connect(&node);
    call(
        &mut s,
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")),
    )
    .expect("handshake");
    let r = call(
        &mut s,
        2,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,auth=x")),
    )
    .expect("answer");
    assert_eq!(r.error_code, 58);
    assert!(closed(&mut s));
}

/// An ES256 key of the identity provider: its key pair and its JWK.
struct Key {
    pair: EcdsaKeyPair,
    kid: &'static str,
}

impl Key {
    fn new(kid: &'static str) -> Key {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");
        Key { pair, kid }
    }

    fn jwk(&self) -> String {
        let point = self.pair.public_key().as_ref();
        format!(
            r#"{{"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":"{}","x":"{}","y":"{}"}}"#,
            self.kid,
            b64(&point[1..33]),
            b64(&point[33..65])
        )
    }

    fn sign(&self, claims: &str) -> String {
        let head = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, self.kid);
        let input = format!("{}.{}", b64(head.as_bytes()), b64(claims.as_bytes()));
        let sig = self
            .pair
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// A token for `sub`, valid for `secs` from now.
    fn token(&self, sub: &str, secs: u64) -> String {
        let now = now_s();
        self.sign(&format!(
            r#"{{"sub":"{sub}","iss":"https://idp.test","aud":"kafka","iat":{now},"exp":{}}}"#,
            now + secs
        ))
    }
}

/// A tiny identity provider on loopback: the JWKS at `/jwks` and a client credentials
/// token endpoint at `/token` (client `krust`, secret `s3cret`), over https when given a
/// TLS setting.
struct Idp {
    addr: std::net::SocketAddr,
    https: bool,
    jwks: Arc<Mutex<String>>,
    token: Arc<Mutex<String>>,
    jwks_fetches: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Idp {
    fn start(jwks: String, tls: Option<Arc<rustls::ServerConfig>>) -> Idp {
        let https = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let jwks = Arc::new(Mutex::new(jwks));
        let token = Arc::new(Mutex::new(String::new()));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (j, t, f, st) = (
            jwks.clone(),
            token.clone(),
            jwks_fetches.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok((s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                match &tls {
                    None => serve(s, &j, &t, &f),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                            continue;
                        };
                        let mut stream = rustls::StreamOwned::new(conn, s);
                        serve(&mut stream, &j, &t, &f);
                        stream.conn.send_close_notify();
                        let _ = stream.flush();
                    }
                }
            }
        });
        Idp {
            addr,
            https,
            jwks,
            token,
            jwks_fetches,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A self-signed certificate for 127.0.0.1: the identity provider's TLS setting, and the
/// certificate (PEM) its clients trust.
fn idp_tls() -> (Arc<rustls::ServerConfig>, String) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(c.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![c.cert.der().clone()], key)
    .expect("server config");
    (Arc::new(config), c.cert.pem())
}

fn serve(
    mut s: impl Read + Write,
    jwks: &Mutex<String>,
    token: &Mutex<String>,
    fetches: &AtomicUsize,
) {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    // The head, then a body of Content-Length bytes.
    let (head, body) = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if req.len() >= end + 4 + len {
                break (
                    head,
                    String::from_utf8_lossy(&req[end + 4..end + 4 + len]).to_string(),
                );
            }
        }
    };
    let basic = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode("krust:s3cret")
    );
    let (status, body) = if head.starts_with("GET /jwks ") {
        fetches.fetch_add(1, Ordering::SeqCst);
        (200, jwks.lock().expect("jwks").clone())
    } else if head.starts_with("POST /token ")
        && head.lines().any(|l| l == basic)
        && body.starts_with("grant_type=client_credentials")
    {
        let t = token.lock().expect("token").clone();
        (
            200,
            format!(r#"{{"access_token":"{t}","token_type":"bearer","expires_in":300}}"#),
        )
    } else {
        (401, r#"{"error":"invalid_client"}"#.to_string())
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn signed_tokens_are_checked_against_the_providers_keys() {
    let k1 = Key::new("k1");
    let k2 = Key::new("k2");
    // The provider serves https with a certificate the broker and the tools trust through
    // the JAAS config's ssl.truststore.* options.
    let (tls, ca) = idp_tls();
    let idp = Idp::start(format!(r#"{{"keys":[{}]}}"#, k1.jwk()), Some(tls));
    *idp.token.lock().expect("token") = k1.token("svc-tool", 300);
    let dir = tempfile::tempdir().expect("dir");
    let ca_path = dir.path().join("idp-ca.pem");
    std::fs::write(&ca_path, ca).expect("write");
    let trust = format!(
        "ssl.truststore.type=\"PEM\" ssl.truststore.location=\"{}\"",
        ca_path.display()
    );
    // The brokers' own token, in a file (Kafka's file: token endpoint).
    let broker_token = dir.path().join("broker.token");
    std::fs::write(&broker_token, k1.token("broker", 3600)).expect("write");
    let settings = [
        "sasl.enabled.mechanisms=OAUTHBEARER".to_string(),
        "sasl.mechanism.inter.broker.protocol=OAUTHBEARER".to_string(),
        format!(
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config={MODULE} required {trust};"
        ),
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class=\
         org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
            .to_string(),
        format!(
            "listener.name.sasl_plaintext.sasl.oauthbearer.jwks.endpoint.url={}",
            idp.url("/jwks")
        ),
        "sasl.oauthbearer.expected.audience=kafka,other".to_string(),
        "sasl.oauthbearer.expected.issuer=https://idp.test".to_string(),
        format!(
            "sasl.oauthbearer.token.endpoint.url=file:{}",
            broker_token.display()
        ),
        "connection.failed.authentication.delay.ms=10".to_string(),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let node = Node::start_listener(BIN, "SASL_PLAINTEXT", &settings);
    assert!(
        idp.jwks_fetches.load(Ordering::SeqCst) >= 1,
        "fetched at startup"
    );

    // confluent-kafka and kafka-python with a token the provider signed; a forged one is
    // refused.
    let alice_token = dir.path().join("alice.token");
    std::fs::write(&alice_token, k1.token("alice", 600)).expect("write");
    let out = python(&node, &["signed", alice_token.to_str().expect("path")]);
    for line in [
        "confluent-kafka signed: ok",
        "confluent-kafka forged: ok",
        "kafka-python signed: ok",
    ] {
        assert!(out.contains(line), "{out}");
    }

    // krust's tools: a token endpoint (client credentials), and a token file.
    let endpoint = command_config(
        dir.path(),
        "endpoint.properties",
        &[
            &format!("sasl.oauthbearer.token.endpoint.url={}", idp.url("/token")),
            &format!("sasl.jaas.config={MODULE} required clientId=\"krust\" clientSecret=\"s3cret\" scope=\"kafka\" {trust};"),
        ],
    );
    let o = list_topics(&node, &endpoint);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).lines().any(|l| l == "py-signed"),
        "{}",
        stdout(&o)
    );
    let wrong_secret = command_config(
        dir.path(),
        "wrong.properties",
        &[
            &format!("sasl.oauthbearer.token.endpoint.url={}", idp.url("/token")),
            &format!(
                "sasl.jaas.config={MODULE} required clientId=\"krust\" clientSecret=\"nope\" {trust};"
            ),
        ],
    );
    let o = list_topics(&node, &wrong_secret);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("HTTP 401"), "{}", stderr(&o));
    let file = command_config(
        dir.path(),
        "file.properties",
        &[
            &format!(
                "sasl.oauthbearer.token.endpoint.url=file:{}",
                broker_token.display()
            ),
            &format!("sasl.jaas.config={MODULE} required ;"),
        ],
    );
    let o = list_topics(&node, &file);
    assert!(o.status.success(), "{}", stderr(&o));

    // What the validator refuses: an unsigned token, a foreign signature, another
    // audience or issuer, an expired token.
    let now = now_s();
    let invalid = Err(r#"{"status":"invalid_token"}"#.to_string());
    assert_eq!(
        try_token(
            &node,
            &unsecured_token(&format!(
                r#"{{"sub":"a","aud":"kafka","iss":"https://idp.test","iat":{now},"exp":{}}}"#,
                now + 60
            ))
        ),
        invalid
    );
    let forged = Key::new("k1");
    assert_eq!(try_token(&node, &forged.token("a", 60)), invalid);
    for claims in [
        format!(
            r#"{{"sub":"a","aud":"web","iss":"https://idp.test","iat":{now},"exp":{}}}"#,
            now + 60
        ),
        format!(
            r#"{{"sub":"a","aud":"kafka","iss":"https://evil","iat":{now},"exp":{}}}"#,
            now + 60
        ),
        format!(
            r#"{{"sub":"a","aud":"kafka","iss":"https://idp.test","iat":{},"exp":{}}}"#,
            now - 200,
            now - 100
        ),
    ] {
        assert_eq!(try_token(&node, &k1.sign(&claims)), invalid, "{claims}");
    }
    // A token's session lasts until it expires.
    let lifetime = try_token(&node, &k1.token("a", 40)).expect("accepted");
    assert!((30_000..=40_000).contains(&lifetime), "{lifetime}");

    // Key rotation: a token signed by a key the broker has not seen is refused, and makes
    // it fetch the keys again; once the provider publishes the key, such tokens pass.
    *idp.jwks.lock().expect("jwks") = format!(r#"{{"keys":[{},{}]}}"#, k1.jwk(), k2.jwk());
    let fetched = idp.jwks_fetches.load(Ordering::SeqCst);
    assert_eq!(try_token(&node, &k2.token("a", 60)), invalid);
    wait_for("the rotated key", Duration::from_secs(20), || {
        try_token(&node, &k2.token("a", 60)).ok()
    });
    assert!(idp.jwks_fetches.load(Ordering::SeqCst) > fetched);
}

#[test]
fn a_listener_without_its_keys_does_not_start() {
    // The keys' URL answers 401: the node refuses to start, and says why.
    let idp = Idp::start(String::new(), None);
    let url = idp.url("/missing");
    let dir = tempfile::tempdir().expect("dir");
    let (p1, p2) = (krust_testkit::free_port(), krust_testkit::free_port());
    let overrides = [
        format!("log.dirs={}", dir.path().join("d").display()),
        format!("listeners=SASL_PLAINTEXT://127.0.0.1:{p1},CONTROLLER://127.0.0.1:{p2}"),
        format!("advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{p1}"),
        format!("controller.quorum.voters=1@127.0.0.1:{p2}"),
        "inter.broker.listener.name=SASL_PLAINTEXT".to_string(),
        "http.listener=".to_string(),
        "sasl.enabled.mechanisms=OAUTHBEARER,PLAIN".to_string(),
        "sasl.mechanism.inter.broker.protocol=PLAIN".to_string(),
        "listener.name.sasl_plaintext.plain.sasl.jaas.config=\
         org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\" \
         password=\"b\" user_a=\"b\";"
            .to_string(),
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class=\
         org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
            .to_string(),
        format!("sasl.oauthbearer.jwks.endpoint.url={url}"),
    ];
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("server");
    for o in &overrides {
        cmd.args(["--override", o.as_str()]);
    }
    let log = dir.path().join("node.log");
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    // Stopped in any case: a node that started would otherwise run on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let status = status.expect("the node exits within 30 s");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success());
    assert!(
        text.contains("cannot load the OAUTHBEARER keys of listener SASL_PLAINTEXT")
            && text.contains("HTTP 401"),
        "{text}"
    );
}
