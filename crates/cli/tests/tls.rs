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

/// A test certificate authority.
struct Authority {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    pem: PathBuf,
}

impl Authority {
    fn new(dir: &Path, name: &str) -> Authority {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).expect("CA");
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, cert.pem()).expect("write CA");
        Authority { cert, key, pem }
    }

    /// A certificate it signs for `names`, with its key and chain in one PEM file.
    fn issue(&self, dir: &Path, file: &str, names: &[&str]) -> PathBuf {
        self.issue_to(dir, file, names, None)
    }

    /// As [`Authority::issue`], for subject `CN=<cn>,O=krust` when `cn` is given.
    fn issue_to(&self, dir: &Path, file: &str, names: &[&str], cn: Option<&str>) -> PathBuf {
        let key = rcgen::KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        if let Some(cn) = cn {
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::OrganizationName, "krust");
            dn.push(rcgen::DnType::CommonName, cn);
            params.distinguished_name = dn;
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("cert");
        let path = dir.join(file);
        std::fs::write(
            &path,
            format!("{}{}{}", key.serialize_pem(), cert.pem(), self.cert.pem()),
        )
        .expect("write keystore");
        path
    }
}

/// A test certificate authority and a broker certificate it signed for `localhost` and
/// 127.0.0.1, as PEM files: (ca.pem, broker.pem with key and chain).
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ca = Authority::new(dir, name);
    let keystore = ca.issue(
        dir,
        &format!("{name}-broker.pem"),
        &["localhost", "127.0.0.1"],
    );
    (ca.pem, keystore)
}

fn tls_settings(ca: &Path, keystore: &Path) -> Vec<String> {
    vec![
        "ssl.keystore.type=PEM".into(),
        format!("ssl.keystore.location={}", keystore.display()),
        "ssl.truststore.type=PEM".into(),
        format!("ssl.truststore.location={}", ca.display()),
    ]
}

/// `metadata-quorum describe --status` through the controller listener at `port`.
fn quorum_status(port: u16, config: &str) -> std::process::Output {
    let controller = format!("127.0.0.1:{port}");
    run(
        BIN,
        &[
            "metadata-quorum",
            "--bootstrap-controller",
            &controller,
            "--command-config",
            config,
            "describe",
            "--status",
        ],
    )
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

    // krust's own tools.
    let cfg = client_config(
        dir.path(),
        "ssl.properties",
        &[
            "security.protocol=SSL".into(),
            format!("ssl.truststore.location={}", ca.display()),
        ],
    );
    // The broker listener serves once the node has registered.
    wait_for("the TLS listener to serve", Duration::from_secs(30), || {
        run(
            BIN,
            &[
                "topics",
                "--bootstrap-server",
                &b,
                "--command-config",
                &cfg,
                "--list",
            ],
        )
        .status
        .success()
        .then_some(())
    });
    // confluent-kafka and kafka-python, verifying the broker against the CA.
    let out = python(&[&b, &ca.display().to_string(), "SSL"]);
    assert!(out.contains("confluent-kafka tls: ok") && out.contains("kafka-python tls: ok"));

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

    // A request larger than the socket buffers goes out whole through TLS.
    let big = "x".repeat(900_000);
    krust_testkit::cli::console_produce(
        BIN,
        &b,
        "tls",
        std::slice::from_ref(&big),
        &["--command-config", &cfg],
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
            "tls",
            "--from-beginning",
            "--max-messages",
            "26",
        ],
    );
    assert_eq!(
        stdout(&o).lines().last().map(str::len),
        Some(900_000),
        "{}",
        stderr(&o)
    );

    // The perf tool's own pipelined connections go through TLS too.
    let o = run(
        BIN,
        &[
            "producer-perf-test",
            "--topic",
            "tls",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer.config",
            &cfg,
            "--producer-props",
            &format!("bootstrap.servers={b}"),
            "acks=all",
        ],
    );
    assert!(
        stdout(&o).contains("2000 records sent"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

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
    // the brokers' own fetches are encrypted and authenticated. Their controller listener
    // is SSL with client certificates required: the quorum's traffic, registrations and
    // forwarded requests go over mutual TLS.
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, keystore) = certificates(dir.path(), "cluster");
    let mut settings = tls_settings(&ca, &keystore);
    settings.extend([
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL".to_string(),
        "listener.name.controller.ssl.client.auth=required".to_string(),
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
    // Once all three brokers have registered.
    wait_for("a topic on three brokers", Duration::from_secs(30), || {
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
        o.status.success().then_some(())
    });
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
    // The quorum, through the controller listener, with a client certificate.
    let ctl_cfg = client_config(
        dir.path(),
        "controller.properties",
        &[
            "security.protocol=SSL".into(),
            format!("ssl.truststore.location={}", ca.display()),
            "ssl.keystore.type=PEM".into(),
            format!("ssl.keystore.location={}", keystore.display()),
        ],
    );
    let q = quorum_status(cluster.nodes[0].controller_port, &ctl_cfg);
    assert!(stdout(&q).contains("CurrentVoters"), "{}", stderr(&q));
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
    // Without a client certificate the controller listener lets nothing through (checked
    // last: its handshake fails, which the nodes log).
    let no_cert = client_config(
        dir.path(),
        "no-cert.properties",
        &[
            "security.protocol=SSL".into(),
            format!("ssl.truststore.location={}", ca.display()),
        ],
    );
    let q = quorum_status(cluster.nodes[0].controller_port, &no_cert);
    assert!(!q.status.success(), "{}", stdout(&q));
}

#[test]
fn required_client_certificates_keep_strangers_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new(dir.path(), "mtls");
    let keystore = ca.issue(dir.path(), "broker.pem", &["localhost", "127.0.0.1"]);
    let client = ca.issue(dir.path(), "client.pem", &["client"]);
    let stranger = Authority::new(dir.path(), "stranger").issue(dir.path(), "s.pem", &["s"]);
    let mut settings = tls_settings(&ca.pem, &keystore);
    settings.push("ssl.client.auth=required".into());
    let extra: Vec<&str> = settings.iter().map(String::as_str).collect();
    let node = Node::start_listener(BIN, "SSL", &extra);
    let b = node.bootstrap();
    let config = |name: &str, cert: Option<&Path>| {
        let mut lines = vec![
            "security.protocol=SSL".to_string(),
            format!("ssl.truststore.location={}", ca.pem.display()),
        ];
        if let Some(c) = cert {
            lines.push("ssl.keystore.type=PEM".into());
            lines.push(format!("ssl.keystore.location={}", c.display()));
        }
        client_config(dir.path(), name, &lines)
    };
    // With a certificate the CA signed: served (once the node has registered).
    let good = config("good.properties", Some(&client));
    wait_for("the TLS listener to serve", Duration::from_secs(30), || {
        let o = run(
            BIN,
            &[
                "topics",
                "--bootstrap-server",
                &b,
                "--command-config",
                &good,
                "--create",
                "--topic",
                "m",
                "--partitions",
                "1",
            ],
        );
        o.status.success().then_some(())
    });
    // Without one, or with one another authority signed: refused.
    for (name, cert) in [
        ("none.properties", None),
        ("stranger.properties", Some(stranger.as_path())),
    ] {
        let cfg = config(name, cert);
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
        assert!(!o.status.success(), "{name}: {}", stdout(&o));
    }
    // librdkafka's settings for the same (confluent-kafka).
    let script = format!(
        "from confluent_kafka.admin import AdminClient\n\
         a = AdminClient({{'bootstrap.servers': '{b}', 'security.protocol': 'SSL', \
         'ssl.ca.location': '{ca}', 'ssl.certificate.location': '{c}', \
         'ssl.key.location': '{c}'}})\n\
         assert 'm' in a.list_topics(timeout=20).topics\n",
        ca = ca.pem.display(),
        c = client.display()
    );
    let out = Command::new(krust_testkit::python::python())
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn certificate_subjects_are_principals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Authority::new(dir.path(), "names");
    let keystore = ca.issue_to(
        dir.path(),
        "broker.pem",
        &["localhost", "127.0.0.1"],
        Some("broker"),
    );
    let app = ca.issue_to(dir.path(), "app.pem", &["app"], Some("app"));
    let other = ca.issue_to(dir.path(), "other.pem", &["other"], Some("other"));
    let mut settings = tls_settings(&ca.pem, &keystore);
    settings.extend([
        "ssl.client.auth=required".to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        // The broker's own subject (RFC 2253: last name first) is the super user; app's
        // is mapped to its common name.
        "super.users=User:CN=broker,O=krust".into(),
        "ssl.principal.mapping.rules=RULE:^CN=(app),O=krust$/$1/, DEFAULT".into(),
    ]);
    let extra: Vec<&str> = settings.iter().map(String::as_str).collect();
    let node = Node::start_listener(BIN, "SSL", &extra);
    let b = node.bootstrap();
    let config = |name: &str, cert: &Path| {
        client_config(
            dir.path(),
            name,
            &[
                "security.protocol=SSL".to_string(),
                format!("ssl.truststore.location={}", ca.pem.display()),
                "ssl.keystore.type=PEM".into(),
                format!("ssl.keystore.location={}", cert.display()),
            ],
        )
    };
    let admin = config("admin.properties", &keystore);
    let app = config("app.properties", &app);
    let other = config("other.properties", &other);
    let tool = |cfg: &str, args: &[&str]| {
        let mut full = vec![args[0], "--bootstrap-server", &b, "--command-config", cfg];
        full.extend_from_slice(&args[1..]);
        run(BIN, &full)
    };
    wait_for("the TLS listener to serve", Duration::from_secs(30), || {
        let o = tool(
            &admin,
            &["topics", "--create", "--topic", "m", "--partitions", "1"],
        );
        o.status.success().then_some(())
    });
    let o = tool(
        &admin,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:app",
            "--producer",
            "--topic",
            "m",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tool(&app, &["topics", "--list"]);
    assert_eq!(stdout(&o).trim(), "m", "{}", stderr(&o));
    let o = tool(&other, &["topics", "--list"]);
    assert_eq!(stdout(&o).trim(), "", "{}", stderr(&o));
    let o = tool(&other, &["topics", "--describe", "--topic", "m"]);
    assert!(!o.status.success(), "{}", stdout(&o));
}
