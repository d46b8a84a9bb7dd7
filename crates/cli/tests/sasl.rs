//! SASL authentication on SASL_PLAINTEXT listeners: PLAIN and SCRAM with real clients
//! (librdkafka, kafka-python, confluent-kafka, aiokafka, krust's tools), sessions that
//! expire without re-authentication, the protocol's refusals, and clusters whose brokers
//! authenticate to each other (SCRAM, and OAUTHBEARER with tokens that expire).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use krust_testkit::cli::{run, stderr, stdout};
use krust_testkit::Cluster;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const ADMIN_PASSWORD: &str = "admin-secret";
const JAAS: &str = "listener.name.sasl_plaintext.plain.sasl.jaas.config=\
    org.apache.kafka.common.security.plain.PlainLoginModule required \
    username=\"admin\" password=\"admin-secret\" \
    user_admin=\"admin-secret\" user_alice=\"alice-secret\";";

fn settings<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        JAAS,
    ];
    v.extend_from_slice(extra);
    v
}

fn start_sasl(extra: &[&str]) -> Node {
    Node::start_listener(BIN, "SASL_PLAINTEXT", &settings(extra))
}

/// An rdkafka config authenticating with PLAIN.
fn rd(bootstrap: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", password);
    c
}

/// A `--command-config` file for krust's tools.
fn command_config(
    dir: &std::path::Path,
    name: &str,
    mechanism: &str,
    user: &str,
    pw: &str,
) -> String {
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n\
             sasl.jaas.config={module} required username=\"{user}\" password=\"{pw}\";\n"
        ),
    )
    .expect("write command config");
    path.display().to_string()
}

/// Authenticates a raw connection with PLAIN at SaslAuthenticate v2; the session lifetime.
fn plain_login(s: &mut TcpStream, user: &str, password: &str) -> Option<SaslAuthenticateResponse> {
    let hs = call(
        s,
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )?;
    assert_eq!(hs.error_code, 0);
    let msg = format!("\0{user}\0{password}");
    call(
        s,
        2,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(msg.into_bytes())),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_and_scram_clients_authenticate() {
    let node = start_sasl(&["connection.failed.authentication.delay.ms=10"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let admin_cfg = command_config(
        dir.path(),
        "admin.properties",
        "PLAIN",
        "admin",
        ADMIN_PASSWORD,
    );

    // krust's own tools, as the admin over PLAIN: a topic, and a SCRAM user.
    let b = node.bootstrap();
    let o = run(
        BIN,
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--command-config",
            &admin_cfg,
            "--create",
            "--topic",
            "s",
            "--partitions",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(BIN, &["configs", "--bootstrap-server", &b, "--command-config", &admin_cfg,
        "--alter", "--entity-type", "users", "--entity-name", "bob",
        "--add-config", "SCRAM-SHA-256=[iterations=8192,password=bob-secret],SCRAM-SHA-512=[password=bob-secret]"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "Completed updating config for user bob.");
    let o = run(
        BIN,
        &[
            "configs",
            "--bootstrap-server",
            &b,
            "--command-config",
            &admin_cfg,
            "--describe",
            "--entity-type",
            "users",
        ],
    );
    assert_eq!(
        stdout(&o).trim(),
        "SCRAM credential configs for user-principal 'bob' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096"
    );
    // Kafka's bounds on iterations.
    let o = run(
        BIN,
        &[
            "configs",
            "--bootstrap-server",
            &b,
            "--command-config",
            &admin_cfg,
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "bob",
            "--add-config",
            "SCRAM-SHA-256=[iterations=100,password=x]",
        ],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("Too few iterations"),
        "{}",
        stderr(&o)
    );

    // The tools as bob, with each SCRAM mechanism; a wrong password, or none, fails.
    for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let cfg = command_config(dir.path(), "bob.properties", mech, "bob", "bob-secret");
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
        assert_eq!(stdout(&o).trim(), "s", "{mech}: {}", stderr(&o));
    }
    let cfg = command_config(dir.path(), "bad.properties", "SCRAM-SHA-256", "bob", "nope");
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
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("SASL authentication failed"),
        "{}",
        stderr(&o)
    );
    let o = run(BIN, &["topics", "--bootstrap-server", &b, "--list"]);
    assert!(!o.status.success());

    // The perf tool's pipelined connections authenticate too.
    let o = run(
        BIN,
        &[
            "producer-perf-test",
            "--topic",
            "s",
            "--num-records",
            "1000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer.config",
            &admin_cfg,
            "--producer-props",
            &format!("bootstrap.servers={b}"),
            "acks=1",
        ],
    );
    assert!(
        stdout(&o).contains("1000 records sent"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    // librdkafka over PLAIN: produce and consume as alice.
    let p: FutureProducer = rd(&b, "alice", "alice-secret")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..10 {
        p.send(
            FutureRecord::<(), _>::to("s")
                .payload(&format!("v{i}"))
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery as alice: {e:?}"));
    }
    let c: BaseConsumer = rd(&b, "alice", "alice-secret")
        .set("group.id", "sasl")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("s", 0, rdkafka::Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while got < 10 && Instant::now() < deadline {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(200)) {
            got += 1;
        }
    }
    assert_eq!(got, 10);
    // A wrong password: librdkafka cannot get metadata.
    let bad: BaseConsumer = rd(&b, "alice", "wrong").create().expect("consumer");
    assert!(bad.fetch_metadata(None, Duration::from_secs(3)).is_err());
    assert!(
        node.log().contains("authentication failed"),
        "{}",
        node.log()
    );

    // Python clients: SCRAM users made by confluent-kafka's admin API, then all three.
    let python = krust_testkit::python::python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sasl.py");
    let out = Command::new(python)
        .arg(script)
        .arg(node.bootstrap())
        .arg(ADMIN_PASSWORD)
        .output()
        .expect("run python");
    let out_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python clients failed\nstdout:\n{out_text}\nstderr:\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    for line in [
        "confluent-kafka admin: ok",
        "kafka-python scram: ok",
        "confluent-kafka scram: ok",
        "aiokafka plain: ok",
    ] {
        assert!(out_text.contains(line), "{out_text}");
    }
}

#[test]
fn the_protocol_refuses_what_comes_out_of_turn() {
    let node = start_sasl(&["connection.failed.authentication.delay.ms=0"]);

    // ApiVersions is served before authentication; anything else closes the connection.
    let mut s = connect(&node);
    let v = call(&mut s, 1, 3, &ApiVersionsRequest::default()).expect("api versions");
    assert!(v
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::SaslHandshake as i16));
    assert!(call(&mut s, 2, 12, &MetadataRequest::default()).is_none());

    // A mechanism the listener does not enable: UNSUPPORTED_SASL_MECHANISM, with the list.
    let mut s = connect(&node);
    let hs = call(
        &mut s,
        1,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
    )
    .expect("handshake");
    assert_eq!(hs.error_code, 33);
    let names: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    assert!(closed(&mut s));

    // SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE, then closed.
    let mut s = connect(&node);
    let r = call(
        &mut s,
        1,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0a\0b")),
    )
    .expect("answer");
    assert_eq!(r.error_code, 34);
    assert!(closed(&mut s));

    // A wrong password: SASL_AUTHENTICATION_FAILED with Kafka's message, then closed.
    let mut s = connect(&node);
    let r = plain_login(&mut s, "alice", "nope").expect("answer");
    assert_eq!(r.error_code, 58);
    assert_eq!(
        r.error_message.as_deref(),
        Some("Authentication failed: Invalid username or password")
    );
    assert!(closed(&mut s));

    // Before authentication, a request may not exceed sasl.server.max.receive.size.
    let mut s = connect(&node);
    let mut big = vec![0u8; 4];
    big[..4].copy_from_slice(&(600_000i32).to_be_bytes());
    s.write_all(&big).expect("write");
    assert!(closed(&mut s));

    // Once authenticated, requests are served; no session lifetime by default.
    let mut s = connect(&node);
    let r = plain_login(&mut s, "alice", "alice-secret").expect("answer");
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 0));
    let md = call(&mut s, 3, 12, &MetadataRequest::default()).expect("metadata");
    assert_eq!(md.brokers.len(), 1);
    // A second SaslAuthenticate out of turn is refused but the session goes on.
    let r = call(
        &mut s,
        4,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0a\0b")),
    )
    .expect("answer");
    assert_eq!(r.error_code, 34);
    assert!(call(&mut s, 5, 12, &MetadataRequest::default()).is_some());
    // So is a re-authentication when sessions do not end (connections.max.reauth.ms=0).
    let hs = call(
        &mut s,
        6,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .expect("answer");
    assert_eq!(hs.error_code, 34);
    // Credentials: made, then described by an empty list (every user), as in Kafka.
    let alter = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_static_str("dora"))
            .with_mechanism(2)
            .with_iterations(4096)
            .with_salt(Bytes::from_static(b"salt"))
            .with_salted_password(Bytes::from_static(&[1; 64])),
    ]);
    let r = call(&mut s, 7, 0, &alter).expect("alter");
    assert_eq!(r.results[0].error_code, 0);
    let r = call(
        &mut s,
        8,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![])),
    )
    .expect("describe");
    let users: Vec<&str> = r.results.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(users, ["dora"]);
    assert_eq!(r.results[0].credential_infos[0].mechanism, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_unless_renewed() {
    let node = start_sasl(&["connections.max.reauth.ms=1000"]);

    // A raw connection that never re-authenticates is closed at its first request after
    // the session ends; until then it is served.
    let mut s = connect(&node);
    let r = plain_login(&mut s, "alice", "alice-secret").expect("answer");
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 1000));
    let authenticated = Instant::now();
    let mut corr = 10;
    let ended = wait_for("the session to end", Duration::from_secs(20), || {
        corr += 1;
        match call(&mut s, corr, 12, &MetadataRequest::default()) {
            Some(_) => {
                std::thread::sleep(Duration::from_millis(100));
                None
            }
            None => Some(authenticated.elapsed()),
        }
    });
    assert!(ended >= Duration::from_millis(1000), "{ended:?}");

    // Re-authentication on the same connection (KIP-368) keeps it open.
    let mut s = connect(&node);
    plain_login(&mut s, "alice", "alice-secret").expect("login");
    let renewed = plain_login(&mut s, "alice", "alice-secret").expect("renewal");
    assert_eq!(renewed.error_code, 0);
    // As another user: refused, and closed.
    let other = plain_login(&mut s, "admin", ADMIN_PASSWORD).expect("answer");
    assert_eq!(other.error_code, 58);
    assert!(closed(&mut s));

    // librdkafka renews its sessions: a producer sending for several lifetimes loses
    // nothing, and the broker closed none of its connections for an ended session.
    let admin_ok = rd(&node.bootstrap(), "admin", ADMIN_PASSWORD)
        .create::<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>()
        .expect("admin");
    let topic =
        rdkafka::admin::NewTopic::new("renew", 1, rdkafka::admin::TopicReplication::Fixed(1));
    admin_ok
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .expect("create");
    let p: FutureProducer = rd(&node.bootstrap(), "alice", "alice-secret")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_millis(3500) {
        p.send(
            FutureRecord::<(), _>::to("renew").payload("x").partition(0),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery {sent}: {e:?}"));
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent > 20);
    let c: BaseConsumer = rd(&node.bootstrap(), "alice", "alice-secret")
        .create()
        .expect("consumer");
    let (_, high) = c
        .fetch_watermarks("renew", 0, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!(high, sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_authenticate_to_each_other() {
    // Replication, and the brokers' other requests to each other, over SASL_PLAINTEXT
    // with SCRAM-SHA-512, as a user the cluster was formatted with (`--add-scram`); their
    // sessions end every 2 s and are renewed.
    replicate_over_sasl(
        &[
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            JAAS,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=\
             org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"broker\" password=\"broker-secret\";",
            "connections.max.reauth.ms=2000",
        ],
        &[
            "--add-scram",
            "SCRAM-SHA-512=[name=broker,password=broker-secret,iterations=8192]",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_authenticate_to_each_other_with_tokens() {
    // The same with OAUTHBEARER between brokers: unsecured tokens that expire after 2 s, so
    // every inter-broker session ends with its token and is renewed with a new one.
    replicate_over_sasl(
        &[
            "sasl.enabled.mechanisms=PLAIN,OAUTHBEARER",
            "sasl.mechanism.inter.broker.protocol=OAUTHBEARER",
            JAAS,
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=\
             org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"broker\" unsecuredLoginLifetimeSeconds=\"2\";",
        ],
        &[],
    )
    .await;
}

/// Three brokers with `extra` settings (formatted with `format_args`) replicate a topic
/// with `min.insync.replicas=3` while clients produce to it with acks=all for 5 s, across
/// several of the brokers' sessions, and no broker logs an ended session or a failed
/// authentication.
async fn replicate_over_sasl(extra: &[&str], format_args: &[&str]) {
    let mut extra = extra.to_vec();
    extra.push("default.replication.factor=3");
    let mut cluster = Cluster::start_listener(BIN, 3, "SASL_PLAINTEXT", &extra, format_args);
    let b = cluster.bootstrap();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rd(&b, "admin", ADMIN_PASSWORD).create().expect("admin");
    let topic = rdkafka::admin::NewTopic::new("r3", 1, rdkafka::admin::TopicReplication::Fixed(3))
        .set("min.insync.replicas", "3");
    let res = admin
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .expect("create");
    assert!(res.iter().all(Result::is_ok), "{res:?}");
    let p: FutureProducer = rd(&b, "alice", "alice-secret")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    // acks=all with min.insync.replicas=3: every record is on all three brokers, through
    // followers that fetched it over authenticated connections, across several sessions.
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_millis(5000) || sent < 20 {
        p.send(
            FutureRecord::<(), _>::to("r3").payload("x").partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery {sent}: {e:?}"));
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in &mut cluster.nodes {
        let log = n.log();
        assert!(!log.contains("without re-authentication"), "{log}");
        assert!(!log.contains("authentication failed"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_listener_authenticates_and_authorizes() {
    // The quorum's traffic, the brokers' registrations, heartbeats and forwarded requests
    // go over a SASL_PLAINTEXT controller listener (PLAIN) as `User:admin`, a super user,
    // with an authorizer on: another user may authenticate there but not act as a node.
    let extra = [
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.plain.sasl.jaas.config=\
         org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"admin\" password=\"admin-secret\" \
         user_admin=\"admin-secret\" user_alice=\"alice-secret\";",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        // The client listener is PLAINTEXT: its clients and the brokers' replication there
        // are ANONYMOUS.
        "super.users=User:admin;User:ANONYMOUS",
        "default.replication.factor=3",
    ];
    let cluster = Cluster::start_listener(BIN, 3, "PLAINTEXT", &extra, &[]);
    let b = cluster.bootstrap();
    // A topic (created by the active controller, forwarded to it by whichever node got it)
    // replicated on all three, written with acks=all.
    let mut c = rdkafka::config::ClientConfig::new();
    c.set("bootstrap.servers", &b);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        c.create().expect("admin");
    let topic = rdkafka::admin::NewTopic::new("ctl", 1, rdkafka::admin::TopicReplication::Fixed(3))
        .set("min.insync.replicas", "3");
    let res = admin
        .create_topics([&topic], &rdkafka::admin::AdminOptions::new())
        .await
        .expect("create");
    assert!(res.iter().all(Result::is_ok), "{res:?}");
    let p: FutureProducer = c
        .clone()
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..10 {
        p.send(
            FutureRecord::<(), _>::to("ctl").payload("x").partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery {i}: {e:?}"));
    }

    // The quorum, described through the controller listener by krust's tool.
    let dir = tempfile::tempdir().expect("temp dir");
    let admin_cfg = command_config(
        dir.path(),
        "admin.properties",
        "PLAIN",
        "admin",
        ADMIN_PASSWORD,
    );
    let ctl = format!("127.0.0.1:{}", cluster.nodes[0].controller_port);
    let o = run(
        BIN,
        &[
            "metadata-quorum",
            "--bootstrap-controller",
            &ctl,
            "--command-config",
            &admin_cfg,
            "describe",
            "--status",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("CurrentVoters"), "{}", stdout(&o));

    let vote = VoteRequest::default();
    // Unauthenticated: closed.
    let connect_ctl = || connect_to(ctl.as_str());
    let mut s = connect_ctl();
    assert!(call(&mut s, 1, 2, &vote).is_none(), "served before SASL");
    // As alice: authenticated, but no node.
    let mut s = connect_ctl();
    let r = plain_login(&mut s, "alice", "alice-secret").expect("login");
    assert_eq!(r.error_code, 0);
    let r = call(&mut s, 5, 2, &vote).expect("answer");
    assert_eq!(r.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED");
    let hb = call(&mut s, 6, 1, &BrokerHeartbeatRequest::default()).expect("answer");
    assert_eq!(hb.error_code, 31, "a heartbeat from alice");
    // As admin: a node's request, answered on its merits.
    let mut s = connect_ctl();
    plain_login(&mut s, "admin", ADMIN_PASSWORD).expect("login");
    let r = call(&mut s, 5, 2, &vote).expect("answer");
    assert_ne!(r.error_code, 31);
    for n in &cluster.nodes {
        let log = n.log();
        assert!(!log.contains("authentication failed"), "{log}");
    }
}
