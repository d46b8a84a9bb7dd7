//! More independent clients: kafka-python and aiokafka (pure Python, each with its own
//! protocol code) and confluent-kafka, from a venv under target/ that the test creates.

mod common;

use std::process::Command;

use common::*;

/// Runs `tests/python/<script>` against `node`; its stdout, once it exited successfully.
fn run_script(node: &Node, script: &str) -> String {
    let python = krust_testkit::python::python();
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(path)
        .arg(node.bootstrap())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nnode log:\n{}",
        node.log()
    );
    stdout
}

#[test]
fn kafka_python_and_confluent_kafka_work() {
    let node = start(&["log.cleaner.backoff.ms=100"]);
    let stdout = run_script(&node, "clients.py");
    assert!(stdout.contains("kafka-python: ok"));
    assert!(stdout.contains("confluent-kafka: ok"));
    assert!(stdout.contains("aiokafka: ok"));
    assert!(stdout.contains("large fetches: ok"));
    assert!(stdout.contains("compacted: ok"));
    assert!(stdout.contains("transactions: ok"));
}

/// confluent-kafka (a newer librdkafka than the rdkafka crate's) with
/// `group.protocol=consumer`, and its admin API describing the group.
#[test]
fn confluent_kafka_uses_the_consumer_group_protocol() {
    let node = start(&[
        "group.consumer.min.heartbeat.interval.ms=500",
        "group.consumer.heartbeat.interval.ms=500",
    ]);
    let stdout = run_script(&node, "consumer_protocol.py");
    assert!(stdout.contains("consumer protocol: ok"), "{stdout}");
    assert!(stdout.contains("mixed protocols: ok"), "{stdout}");
}
