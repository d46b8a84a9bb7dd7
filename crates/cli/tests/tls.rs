//! TLS listeners (SSL and SASL_SSL) with PEM keystores: real clients verify the broker's
//! certificate and talk through it, krust's tools and its brokers too; what is not TLS, or
//! trusts another authority, is refused without harm.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use krust_testkit::cli::{run, stderr, stdout};
use krust_testkit::Cluster;

/// A test certificate authority and a broker certificate it signed for `localhost` and
/// 127.0.0.1, as PEM files: (ca.pem, broker.pem with key and chain).
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("broker key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
        .expect("broker params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("broker cert");
    let ca_path = dir.join(format!("{name}-ca.pem"));
    let keystore = dir.join(format!("{name}-broker.pem"));
    std::fs::write(&ca_path, ca.pem()).expect("write CA");
    std::fs::write(
        &keystore,
        format!("{}{}{}", key.serialize_pem(), cert.pem(), ca.pem()),
    )
    .expect("write keystore");
    (ca_path, keystore)
}

fn tls_settings(ca: &Path, keystore: &Path) -> Vec<String> {
    vec![
        "ssl.keystore.type=PEM".into(),
        format!("ssl.keystore.location={}", keystore.display()),
        "ssl.truststore.type=PEM".into(),
        format!("ssl.truststore.location={}", ca.display()),
    ]
}

fn client_config(dir: &Path, name: &str, lines: &[String]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write client config");
    path.display().to_string()
}

fn python(args: &[&str]) -> String {
    let out = Command::new(krust_testkit::python::python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/tls.py"))
        .args(args)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python clients failed\nstdout:\n{text}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn an_ssl_listener_serves_verified_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, keystore) = certificates(dir.path(), "good");
    let settings = tls_settings(&ca, &keystore);
    let extra: Vec<&str> = settings.iter().map(String::as_str).collect();
    let node = Node::start_listener(BIN, "SSL", &extra);
    let b = node.bootstrap();

    // confluent-kafka and kafka-python, verifying the broker against the CA.
    let out = python(&[&b, &ca.display().to_string(), "SSL"]);
    assert!(out.contains("confluent-kafka tls: ok") && out.contains("kafka-python tls: ok"));

    // krust's own tools.
    let cfg = client_config(
        dir.path(),
        "ssl.properties",
        &[
            "security.protocol=SSL".into(),
            format!("ssl.truststore.location={}", ca.display()),
        ],
    );
    let o = run(
        BIN,
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--command-config",
            &cfg,
            "--list",
        ],
    );
    assert!(stdout(&o).lines().any(|l| l == "tls"), "{}", stderr(&o));
    let o = run(
        BIN,
        &[
            "console-consumer",
            "--bootstrap-server",
            &b,
            "--command-config",
            &cfg,
            "--topic",
            "tls",
            "--from-beginning",
            "--max-messages",
            "25",
        ],
    );
    assert_eq!(stdout(&o).lines().count(), 25, "{}", stderr(&o));

    // A client trusting another authority refuses the broker.
    let (other_ca, _) = certificates(dir.path(), "other");
    let bad = client_config(
        dir.path(),
        "other.properties",
        &[
            "security.protocol=SSL".into(),
            format!("ssl.truststore.location={}", other_ca.display()),
        ],
    );
    let o = run(
        BIN,
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--command-config",
            &bad,
            "--list",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).to_lowercase().contains("certificate"),
        "{}",
        stderr(&o)
    );

    // A client speaking plain Kafka to the TLS port is cut off; the node goes on.
    let mut s = TcpStream::connect(node.client_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(&frame(
        kafka_protocol::messages::ApiKey::ApiVersions,
        3,
        1,
        &kafka_protocol::messages::ApiVersionsRequest::default(),
    ))
    .expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    // Whatever came back is a TLS alert, never a Kafka answer.
    assert!(n == 0 || buf[0] == 0x15, "{:?}", &buf[..n]);
    let o = run(
        BIN,
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--command-config",
            &cfg,
            "--list",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_sasl_ssl_cluster_replicates_over_tls() {
    // Three brokers whose only client and inter-broker listener is SASL_SSL: clients and
    // the brokers' own fetches are encrypted and authenticated.
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, keystore) = certificates(dir.path(), "cluster");
    let mut settings = tls_settings(&ca, &keystore);
    settings.extend([
        "sasl.enabled.mechanisms=PLAIN".to_string(),
        "sasl.mechanism.inter.broker.protocol=PLAIN".into(),
        "listener.name.sasl_ssl.plain.sasl.jaas.config=\
         org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\";"
            .into(),
        "default.replication.factor=3".into(),
        "min.insync.replicas=3".into(),
    ]);
    let extra: Vec<&str> = settings.iter().map(String::as_str).collect();
    let cluster = Cluster::start_listener(BIN, 3, "SASL_SSL", &extra, &[]);
    let b = cluster.bootstrap();
    let cfg = client_config(
        dir.path(),
        "admin.properties",
        &[
            "security.protocol=SASL_SSL".into(),
            format!("ssl.truststore.location={}", ca.display()),
            "sasl.mechanism=PLAIN".into(),
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
             required username=\"admin\" password=\"admin-secret\";"
                .into(),
        ],
    );
    let o = run(
        BIN,
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--command-config",
            &cfg,
            "--create",
            "--topic",
            "r3",
            "--partitions",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // acks=all with min.insync.replicas=3: every record reached both followers, which
    // fetched it over SASL_SSL.
    let records: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    krust_testkit::cli::console_produce(
        BIN,
        &b,
        "r3",
        &records,
        &["--command-config", &cfg, "--producer-property", "acks=all"],
    );
    let o = run(
        BIN,
        &[
            "console-consumer",
            "--bootstrap-server",
            &b,
            "--command-config",
            &cfg,
            "--topic",
            "r3",
            "--from-beginning",
            "--max-messages",
            "50",
        ],
    );
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        records,
        "{}",
        stderr(&o)
    );
    let out = python(&[
        &b,
        &ca.display().to_string(),
        "SASL_SSL",
        "admin",
        "admin-secret",
    ]);
    assert!(out.contains("kafka-python tls: ok"), "{out}");
    for n in &cluster.nodes {
        assert!(!n.log().contains("TLS handshake failed"), "{}", n.log());
    }
}
