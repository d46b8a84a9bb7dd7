//! `krust topics` and `krust cluster-id` against a real node, run as subprocesses: output
//! layout as Kafka's tools print it, exit codes, errors, and the script-name aliases.

use krust_testkit::cli::{stderr, stdout};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use krust_testkit::{wait_for, Node};

const BIN: &str = env!("CARGO_BIN_EXE_krust");

fn krust(args: &[&str]) -> Output {
    krust_testkit::cli::run(BIN, args)
}

fn topics(node: &Node, args: &[&str]) -> Output {
    let bs = node.bootstrap();
    let mut all = vec!["topics", "--bootstrap-server", bs.as_str()];
    all.extend_from_slice(args);
    krust(&all)
}

/// Runs `args` until its stdout satisfies `ok` (metadata reaches the broker asynchronously).
fn topics_until(node: &Node, args: &[&str], ok: impl Fn(&str) -> bool) -> String {
    wait_for("topics output", Duration::from_secs(20), || {
        let o = topics(node, args);
        let out = stdout(&o);
        (o.status.success() && ok(&out)).then_some(out)
    })
}

#[test]
fn create_list_describe_alter_delete() {
    let node = Node::start(BIN, &[]);

    let o = topics(
        &node,
        &[
            "--create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=12345",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Created topic orders.\n");

    let o = topics(&node, &["--create", "--topic", "audit"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // --list: sorted, one per line.
    let out = topics_until(&node, &["--list"], |s| {
        s.contains("audit") && s.contains("orders")
    });
    assert_eq!(out, "audit\norders\n");
    let o = topics(&node, &["--list", "--exclude-internal"]);
    assert_eq!(stdout(&o), "audit\norders\n");
    // kafka-log-dirs: the partitions in the node's log directory, in Kafka's layout.
    let o = krust(&[
        "log-dirs",
        "--describe",
        "--bootstrap-server",
        &node.bootstrap(),
        "--topic-list",
        "orders",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "Querying brokers for log directories information",
            "Received log directory information from brokers 1"
        ]
    );
    let parts: Vec<String> = (0..3)
        .map(|p| {
            format!(
                "{{\"partition\":\"orders-{p}\",\"size\":0,\"offsetLag\":0,\"isFuture\":false}}"
            )
        })
        .collect();
    assert_eq!(
        lines[2],
        format!(
            "{{\"brokers\":[{{\"broker\":1,\"logDirs\":[{{\"partitions\":[{}],\"error\":null,\"logDir\":\"{}\"}}]}}],\"version\":1}}",
            parts.join(","),
            node.data_dir.display()
        )
    );
    let o = krust(&[
        "log-dirs",
        "--describe",
        "--bootstrap-server",
        &node.bootstrap(),
        "--broker-list",
        "7",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("The given brokers do not exist from --broker-list: 7"),
        "{}",
        stderr(&o)
    );
    // --topic is Kafka's include list: a regular expression matching whole names.
    let o = topics(&node, &["--list", "--topic", "ord.*"]);
    assert_eq!(stdout(&o), "orders\n");
    let o = topics(&node, &["--list", "--topic", "ord"]);
    assert_eq!(stdout(&o), "\n");

    // Existing topic: Kafka's message, exit 1; --if-not-exists makes it a no-op.
    let o = topics(&node, &["--create", "--topic", "orders"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "Error while executing topic command : Topic 'orders' already exists."
    );
    let o = topics(&node, &["--create", "--topic", "orders", "--if-not-exists"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");

    // --describe: Kafka 4.x layout.
    let out = topics_until(&node, &["--describe", "--topic", "orders"], |s| {
        s.lines().count() == 4
    });
    let lines: Vec<&str> = out.lines().collect();
    let head: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(head.len(), 5, "{out}");
    assert_eq!(head[0], "Topic: orders");
    let id = head[1].strip_prefix("TopicId: ").expect("TopicId");
    assert_eq!(id.len(), 22, "{id}");
    assert!(id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    assert_eq!(head[2], "PartitionCount: 3");
    assert_eq!(head[3], "ReplicationFactor: 1");
    assert!(head[4].starts_with("Configs: "), "{out}");
    assert!(head[4].contains("retention.ms=12345"), "{out}");
    for (p, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!(
                "\tTopic: orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr: "
            )
        );
    }

    // --describe without --topic: every topic, sorted.
    let o = topics(&node, &["--describe"]);
    let out = stdout(&o);
    let heads: Vec<&str> = out.lines().filter(|l| l.starts_with("Topic: ")).collect();
    assert!(heads[0].starts_with("Topic: audit\t"), "{out}");
    assert!(heads[1].starts_with("Topic: orders\t"), "{out}");

    // --alter --partitions.
    let o = topics(
        &node,
        &["--alter", "--topic", "orders", "--partitions", "5"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    topics_until(&node, &["--describe", "--topic", "orders"], |s| {
        s.contains("PartitionCount: 5") && s.lines().count() == 6
    });

    // Missing topic.
    let o = topics(&node, &["--describe", "--topic", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "Error while executing topic command : Topic 'nope' does not exist as expected"
    );
    let o = topics(&node, &["--delete", "--topic", "nope", "--if-exists"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // --delete.
    let o = topics(&node, &["--delete", "--topic", "audit"]);
    assert!(o.status.success(), "{}", stderr(&o));
    topics_until(&node, &["--list"], |s| s == "orders\n");
}

#[test]
fn bad_arguments_exit_1_with_one_line() {
    let node = Node::start(BIN, &[]);
    let o = topics(&node, &["--lst"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("Error"), "{err}");
    assert!(err.contains("--lst"), "{err}");

    let o = topics(&node, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "Error while executing topic command : Command must include exactly one action: --list, --describe, --create, --alter or --delete"
    );

    let o = topics(&node, &["--create", "--topic", "x", "--partitions", "0"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "Error while executing topic command : The partitions must be greater than 0"
    );

    let o = topics(&node, &["--create", "--topic", "x", "--config", "novalue"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Invalid topic config"),
        "{}",
        stderr(&o)
    );

    // --bootstrap-server is required.
    let o = krust(&["topics", "--list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--bootstrap-server"), "{}", stderr(&o));

    // --help is not an error.
    let o = krust(&["topics", "--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("--bootstrap-server"));
}

#[test]
fn unreachable_broker_fails_fast_with_a_clear_message() {
    // Nobody listens: connection refused.
    let port = krust_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let o = krust(&["topics", "--bootstrap-server", &addr, "--list"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("Error while executing topic command : Failed to connect to"),
        "{err}"
    );
    assert!(err.contains(&addr), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Something listens but never answers: the request timeout from --command-config applies.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("client.properties");
    std::fs::write(&config, "request.timeout.ms=500\nclient.id=tools-test\n").expect("write");
    let started = Instant::now();
    let o = krust(&[
        "topics",
        "--bootstrap-server",
        &addr,
        "--command-config",
        config.to_str().expect("utf-8 path"),
        "--list",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("Timed out after 500ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(silent);
}

#[test]
fn cluster_id_and_aliases() {
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    let o = krust(&["cluster-id", "--bootstrap-server", &bs]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let id = out
        .strip_prefix("Cluster ID: ")
        .expect("Cluster ID line")
        .trim_end();
    assert_eq!(id.len(), 22, "{out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let o = krust(&["install-aliases", dir.path().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in [
        "kafka-topics.sh",
        "kafka-topics",
        "kafka-console-producer.sh",
        "kafka-console-consumer.sh",
        "kafka-configs.sh",
        "kafka-get-offsets.sh",
        "kafka-delete-records.sh",
        "kafka-storage.sh",
        "kafka-server-start.sh",
        "kafka-cluster.sh",
    ] {
        assert!(
            dir.path().join(name).symlink_metadata().is_ok(),
            "missing {name}"
        );
    }

    let o = krust(&[
        "topics",
        "--bootstrap-server",
        &bs,
        "--create",
        "--topic",
        "via-alias",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = wait_for("alias list", Duration::from_secs(20), || {
        let o = Command::new(dir.path().join("kafka-topics.sh"))
            .args(["--bootstrap-server", &bs, "--list"])
            .output()
            .expect("run alias");
        let out = stdout(&o);
        (o.status.success() && out.contains("via-alias")).then_some(out)
    });
    assert_eq!(out, "via-alias\n");

    let o = Command::new(dir.path().join("kafka-cluster.sh"))
        .args(["cluster-id", "--bootstrap-server", &bs])
        .output()
        .expect("run alias");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("Cluster ID: {id}\n"));

    let o = Command::new(dir.path().join("kafka-storage.sh"))
        .arg("random-uuid")
        .output()
        .expect("run alias");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end().len(), 22);
}
