//! Running the `krust` binary's tools from tests.

use std::process::{Command, Output};
use std::time::Duration;

/// Runs `bin` with `args` and collects its output.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().expect("run krust")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Creates a topic with `krust topics` and waits until it has leaders.
pub fn create_topic(bin: &str, bootstrap: &str, topic: &str, partitions: &str) {
    let o = run(
        bin,
        &[
            "topics",
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            topic,
            "--partitions",
            partitions,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    crate::wait_for("topic in metadata", Duration::from_secs(20), || {
        let o = run(
            bin,
            &[
                "topics",
                "--bootstrap-server",
                bootstrap,
                "--describe",
                "--topic",
                topic,
            ],
        );
        (o.status.success() && stdout(&o).contains("Leader: 1")).then_some(())
    });
}

/// One partition of `krust topics --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    /// -1 when the partition has no leader ("Leader: none").
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Partition → row from `krust topics --describe --topic <topic>`, if the command worked.
pub fn describe_topic(
    bin: &str,
    bootstrap: &str,
    topic: &str,
) -> Option<std::collections::BTreeMap<i32, PartitionRow>> {
    let o = run(
        bin,
        &[
            "topics",
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--topic",
            topic,
        ],
    );
    if !o.status.success() {
        return None;
    }
    let ids = |v: String| -> Vec<i32> {
        v.split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    let mut out = std::collections::BTreeMap::new();
    for line in stdout(&o).lines().filter(|l| l.contains("Partition: ")) {
        let field = |name: &str| {
            line.split('\t')
                .find_map(|f| f.trim().strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let p: i32 = field("Partition:")?.parse().ok()?;
        let leader = match field("Leader:")?.as_str() {
            "none" => -1,
            l => l.parse().ok()?,
        };
        out.insert(
            p,
            PartitionRow {
                leader,
                replicas: ids(field("Replicas:")?),
                isr: ids(field("Isr:")?),
            },
        );
    }
    Some(out)
}

/// `krust metadata-quorum <flag> <addrs> describe --status` as label → value, if the
/// command worked (`flag`: `--bootstrap-server` or `--bootstrap-controller`).
pub fn quorum_status(
    bin: &str,
    flag: &str,
    addrs: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let o = run(
        bin,
        &["metadata-quorum", flag, addrs, "describe", "--status"],
    );
    if !o.status.success() {
        return None;
    }
    Some(
        stdout(&o)
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// `krust topics --create --topic <topic>` with further arguments; panics if it fails.
pub fn create_topic_with(bin: &str, bootstrap: &str, topic: &str, args: &[&str]) {
    let mut all = vec![
        "topics",
        "--bootstrap-server",
        bootstrap,
        "--create",
        "--topic",
        topic,
    ];
    all.extend_from_slice(args);
    let o = run(bin, &all);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// Waits until every broker of `bootstrap` knows `topic` and every partition's leader
/// serves it (each broker's metadata catches up on its own, a moment after the controller
/// committed the topic): `get-offsets` through each answers without errors.
pub fn wait_topic_served(bin: &str, bootstrap: &str, topic: &str) {
    for broker in bootstrap.split(',') {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let o = run(
                bin,
                &[
                    "get-offsets",
                    "--bootstrap-server",
                    broker,
                    "--topic",
                    topic,
                ],
            );
            if o.status.success() && stderr(&o).trim().is_empty() && !stdout(&o).is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                let described = run(
                    bin,
                    &[
                        "topics",
                        "--bootstrap-server",
                        broker,
                        "--describe",
                        "--topic",
                        topic,
                    ],
                );
                panic!(
                    "timed out after 30s waiting for {topic} to be served through {broker}: \
                     get-offsets said {:?} / {:?}; describe said {:?} / {:?}",
                    stdout(&o),
                    stderr(&o),
                    stdout(&described),
                    stderr(&described)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `krust producer-perf-test` unthrottled: `records` records of `record_size` bytes to
/// `topic`, with `bootstrap.servers` and `props` as producer properties.
pub fn producer_perf(
    bin: &str,
    bootstrap: &str,
    topic: &str,
    records: u64,
    record_size: usize,
    props: &[&str],
) -> Output {
    let n = records.to_string();
    let size = record_size.to_string();
    let servers = format!("bootstrap.servers={bootstrap}");
    let mut args = vec![
        "producer-perf-test",
        "--topic",
        topic,
        "--num-records",
        &n,
        "--record-size",
        &size,
        "--throughput",
        "-1",
        "--producer-props",
        &servers,
    ];
    args.extend_from_slice(props);
    run(bin, &args)
}

/// Produces `records` (one per line) with `krust console-producer` plus `args`; panics if
/// it fails.
pub fn console_produce(bin: &str, bootstrap: &str, topic: &str, records: &[String], args: &[&str]) {
    use std::io::Write;
    let mut child = std::process::Command::new(bin)
        .args([
            "console-producer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start console-producer");
    let input: String = records.iter().map(|r| format!("{r}\n")).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write records");
    let o = child.wait_with_output().expect("console-producer");
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Reads `n` records of `topic` from the beginning with `krust console-consumer`, sorted.
pub fn console_consume(bin: &str, bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    let o = run(
        bin,
        &[
            "console-consumer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &n.to_string(),
            "--timeout-ms",
            "20000",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut got: Vec<String> = stdout(&o).lines().map(String::from).collect();
    got.sort();
    got
}

/// The end offsets of a topic's partitions summed, through `krust get-offsets`; `None` if
/// it fails or reports an error.
pub fn total_records(bin: &str, bootstrap: &str, topic: &str) -> Option<i64> {
    let o = run(
        bin,
        &[
            "get-offsets",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
        ],
    );
    if !o.status.success() || !stderr(&o).is_empty() {
        return None;
    }
    Some(
        stdout(&o)
            .lines()
            .filter_map(|l| l.rsplit(':').next()?.trim().parse::<i64>().ok())
            .sum(),
    )
}
