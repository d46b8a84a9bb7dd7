//! Authorization with ACLs (StandardAuthorizer): `krust acls` adds, lists and removes
//! them; librdkafka, Python clients and krust's tools are allowed and refused by them;
//! super users, DENY, prefixed patterns and `allow.everyone.if.no.acl.found`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use krust_testkit::cli::{run, stderr, stdout};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const JAAS: &str = "listener.name.sasl_plaintext.plain.sasl.jaas.config=\
    org.apache.kafka.common.security.plain.PlainLoginModule required \
    username=\"admin\" password=\"admin-secret\" \
    user_admin=\"admin-secret\" user_alice=\"alice-secret\" user_bob=\"bob-secret\";";

fn start_secured(extra: &[&str]) -> Node {
    let mut settings = vec![
        "sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        JAAS,
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
    ];
    settings.extend_from_slice(extra);
    Node::start_listener(BIN, "SASL_PLAINTEXT", &settings)
}

fn rd(bootstrap: &str, user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-secret"));
    c
}

/// A `--command-config` file for `user`.
fn login(dir: &std::path::Path, user: &str) -> String {
    let path = dir.join(format!("{user}.properties"));
    std::fs::write(
        &path,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.username={user}\nsasl.password={user}-secret\n"
        ),
    )
    .expect("write command config");
    path.display().to_string()
}

/// Runs a krust tool against `node` as the user of `cfg`.
fn tool(node: &Node, cfg: &str, args: &[&str]) -> std::process::Output {
    let b = node.bootstrap();
    let mut full = vec![args[0], "--bootstrap-server", &b, "--command-config", cfg];
    full.extend_from_slice(&args[1..]);
    run(BIN, &full)
}

/// Produces one record as `user`; the delivery error's text, if any.
async fn produce(bootstrap: &str, user: &str, topic: &str, idempotent: bool) -> Option<String> {
    let p: FutureProducer = rd(bootstrap, user)
        .set("linger.ms", "0")
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        )
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    p.send(
        FutureRecord::<(), _>::to(topic).payload("v").partition(0),
        Duration::from_secs(10),
    )
    .await
    .err()
    .map(|(e, _)| format!("{e:?}"))
}

/// Consumes `topic` in group `group` as `user` until `want` records or an error.
fn consume(
    bootstrap: &str,
    user: &str,
    topic: &str,
    group: &str,
    want: usize,
) -> Result<usize, String> {
    let c: BaseConsumer = rd(bootstrap, user)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < want && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => return Err(format!("{e:?}")),
            None => {}
        }
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread")]
async fn acls_decide_what_each_user_may_do() {
    let node = start_secured(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = login(dir.path(), "admin");
    let alice = login(dir.path(), "alice");
    let b = node.bootstrap();

    // The super user may do everything, with no ACL at all.
    for t in ["orders", "pay-in", "secret"] {
        let o = wait_for("topic created", Duration::from_secs(20), || {
            let o = tool(
                &node,
                &admin,
                &["topics", "--create", "--topic", t, "--partitions", "1"],
            );
            o.status.success().then_some(o)
        });
        assert!(stdout(&o).contains("Created topic"), "{}", stderr(&o));
    }
    assert!(produce(&b, "admin", "pay-in", false).await.is_none());

    // Alice has no ACL: she sees no topic and may write none.
    let o = tool(&node, &alice, &["topics", "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "");
    let e = produce(&b, "alice", "orders", false)
        .await
        .expect("refused");
    assert!(e.contains("TopicAuthorization"), "{e}");
    // An idempotent producer needs WRITE on some topic (or IDEMPOTENT_WRITE).
    let e = produce(&b, "alice", "orders", true).await.expect("refused");
    assert!(e.contains("Authorization"), "{e}");
    // Nor may she manage ACLs.
    let o = tool(&node, &alice, &["acls", "--list"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("CLUSTER_AUTHORIZATION_FAILED") || stderr(&o).contains("uthoriz"),
        "{}",
        stderr(&o)
    );

    // Producer rights on one topic; consumer rights on a prefix of topics and groups.
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            "orders",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`: \n \
         \t(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)\n\
         \t(principal=User:alice, host=*, operation=CREATE, permissionType=ALLOW)\n\
         \t(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW) \n\n"
    );
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--consumer",
            "--topic",
            "pay",
            "--group",
            "team-",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--list",
            "--topic",
            "pay",
            "--resource-pattern-type",
            "PREFIXED",
        ],
    );
    assert_eq!(
        stdout(&o),
        "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=pay, patternType=PREFIXED)`: \n \
         \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\
         \t(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW) \n\n",
        "{}",
        stderr(&o)
    );

    // ACLs that cannot be: refused, and nothing is stored.
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "IdempotentWrite",
            "--topic",
            "orders",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not valid for resource type TOPIC"),
        "{}",
        stderr(&o)
    );
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "alice",
            "--topic",
            "orders",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Could not parse principal"),
        "{}",
        stderr(&o)
    );
    let o = tool(&node, &admin, &["acls", "--list", "--topic", "orders"]);
    assert!(
        !stdout(&o).contains("IDEMPOTENT_WRITE") && !stdout(&o).contains("operation=ALL,"),
        "{}",
        stdout(&o)
    );

    // Now: orders and pay-in are hers to see, secret still is not.
    let o = wait_for("alice's topics", Duration::from_secs(10), || {
        let o = tool(&node, &alice, &["topics", "--list"]);
        (stdout(&o).trim() == "orders\npay-in").then_some(o)
    });
    assert!(o.status.success());
    assert!(produce(&b, "alice", "orders", false).await.is_none());
    assert!(produce(&b, "alice", "orders", true).await.is_none());
    let e = produce(&b, "alice", "secret", false)
        .await
        .expect("refused");
    assert!(e.contains("TopicAuthorization"), "{e}");
    assert_eq!(consume(&b, "alice", "pay-in", "team-a", 1), Ok(1));
    let e = consume(&b, "alice", "pay-in", "other", 1).expect_err("group refused");
    assert!(e.contains("GroupAuthorization"), "{e}");
    // Admin requests she has no right to.
    let o = tool(
        &node,
        &alice,
        &["topics", "--create", "--topic", "mine", "--partitions", "1"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Authorization failed"),
        "{}",
        stderr(&o)
    );
    let o = tool(
        &node,
        &alice,
        &[
            "configs",
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "secret",
        ],
    );
    assert!(!o.status.success(), "{}", stdout(&o));

    // A DENY wins over the ALLOW; removing it restores the right.
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--add",
            "--deny-principal",
            "User:alice",
            "--operation",
            "Write",
            "--topic",
            "orders",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let e = produce(&b, "alice", "orders", false)
        .await
        .expect("refused");
    assert!(e.contains("TopicAuthorization"), "{e}");
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--remove",
            "--force",
            "--deny-principal",
            "User:alice",
            "--operation",
            "write",
            "--topic",
            "orders",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(produce(&b, "alice", "orders", false).await.is_none());

    // Listing by principal, then removing every ACL of a resource.
    let o = tool(
        &node,
        &admin,
        &["acls", "--list", "--principal", "User:alice"],
    );
    let text = stdout(&o);
    assert!(
        text.starts_with("ACLs for principal `User:alice`\n"),
        "{text}"
    );
    assert!(
        text.contains("ResourcePattern(resourceType=GROUP, name=team-, patternType=PREFIXED)"),
        "{text}"
    );
    assert!(!text.contains("DENY"), "{text}");
    let o = tool(
        &node,
        &admin,
        &["acls", "--remove", "--force", "--topic", "orders"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tool(&node, &admin, &["acls", "--list", "--topic", "orders"]);
    assert_eq!(stdout(&o), "");
    let e = produce(&b, "alice", "orders", false)
        .await
        .expect("refused again");
    assert!(e.contains("TopicAuthorization"), "{e}");

    // Kafka's clients manage ACLs too.
    let python = krust_testkit::python::python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/acls.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&b)
        .output()
        .expect("run python");
    let out_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python clients failed\nstdout:\n{out_text}\nstderr:\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    for line in ["confluent-kafka acls: ok", "kafka-python refused: ok"] {
        assert!(out_text.contains(line), "{out_text}");
    }
    assert!(
        node.log().contains("authorization denied"),
        "{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn everyone_is_allowed_where_no_acl_names_the_resource() {
    let node = start_secured(&["allow.everyone.if.no.acl.found=true"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = login(dir.path(), "admin");
    let b = node.bootstrap();
    for t in ["open", "closed"] {
        let o = wait_for("topic created", Duration::from_secs(20), || {
            let o = tool(
                &node,
                &admin,
                &["topics", "--create", "--topic", t, "--partitions", "1"],
            );
            o.status.success().then_some(o)
        });
        assert!(o.status.success());
    }
    // One ACL on `closed`, for bob: it is closed to everyone else, alice included.
    let o = tool(
        &node,
        &admin,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Write",
            "--topic",
            "closed",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(produce(&b, "alice", "open", false).await.is_none());
    let e = produce(&b, "alice", "closed", false)
        .await
        .expect("refused");
    assert!(e.contains("TopicAuthorization"), "{e}");
    assert!(produce(&b, "bob", "closed", false).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_shares_its_acls_and_replicates_as_a_super_user() {
    // Brokers reach each other as admin (the listener's JAAS username), a super user:
    // followers fetch with CLUSTER_ACTION. ACLs made through any node reach every node.
    let extra = [
        "sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        JAAS,
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
        "default.replication.factor=3",
    ];
    let cluster = krust_testkit::Cluster::start_listener(BIN, 3, "SASL_PLAINTEXT", &extra, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = login(dir.path(), "admin");
    let alice = login(dir.path(), "alice");
    let first = &cluster.nodes[0];
    let o = wait_for("topic created", Duration::from_secs(30), || {
        let o = tool(
            first,
            &admin,
            &[
                "topics",
                "--create",
                "--topic",
                "r3",
                "--partitions",
                "1",
                "--config",
                "min.insync.replicas=3",
            ],
        );
        o.status.success().then_some(o)
    });
    assert!(o.status.success());
    // Through each node in turn (two of them forward to the active controller).
    for (i, op) in ["Write", "Describe", "Create"].iter().enumerate() {
        let o = tool(
            &cluster.nodes[i],
            &admin,
            &[
                "acls",
                "--add",
                "--allow-principal",
                "User:alice",
                "--operation",
                op,
                "--topic",
                "r3",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    for n in &cluster.nodes {
        wait_for("the ACLs on every node", Duration::from_secs(10), || {
            let o = tool(n, &admin, &["acls", "--list", "--topic", "r3"]);
            (stdout(&o).matches("principal=User:alice").count() == 3).then_some(())
        });
    }
    // acks=all with min.insync.replicas=3: every follower fetched it.
    let b = cluster.bootstrap();
    let p: FutureProducer = rd(&b, "alice")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    for i in 0..5 {
        p.send(
            FutureRecord::<(), _>::to("r3").payload("x").partition(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery {i}: {e:?}"));
    }
    // She may write but not read.
    let e = consume(&b, "alice", "r3", "g", 1).expect_err("read refused");
    assert!(e.contains("Authorization"), "{e}");
    let o = tool(
        first,
        &alice,
        &[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "r3",
        ],
    );
    assert!(!o.status.success());
    for n in &cluster.nodes {
        assert!(!n.log().contains("principal=User:admin"), "{}", n.log());
    }
}
