//! Consumer groups end to end, with the real binary against a real node: console-consumer
//! as a group member (committed offsets resumed, range assignment split between two
//! processes, commit and LeaveGroup on exit) and consumer-groups (list, describe views,
//! reset-offsets, delete, delete-offsets) in Kafka's layouts and messages.

use krust_testkit::cli::{stderr, stdout};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use krust_testkit::{wait_for, Node};

const BIN: &str = env!("CARGO_BIN_EXE_krust");

fn krust(args: &[&str]) -> Output {
    krust_testkit::cli::run(BIN, args)
}

fn start_node() -> Node {
    Node::start(BIN, &["group.initial.rebalance.delay.ms=0"])
}

/// Produces `key:value` lines (keyed, so they spread over the partitions).
fn produce(bs: &str, topic: &str, lines: &[String]) {
    let mut child = Command::new(BIN)
        .args([
            "console-producer",
            "--bootstrap-server",
            bs,
            "--topic",
            topic,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn producer");
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", stderr(&o));
}

fn groups(bs: &str, args: &[&str]) -> Output {
    let mut all = vec!["consumer-groups", "--bootstrap-server", bs];
    all.extend_from_slice(args);
    krust(&all)
}

/// The data rows of the offsets view: (topic, partition) -> (current, log end, lag, consumer).
fn offset_rows(out: &str, group: &str) -> BTreeMap<(String, i32), Vec<String>> {
    out.lines()
        .filter(|l| l.starts_with(&format!("{group} ")))
        .map(|l| {
            let f: Vec<String> = l.split_whitespace().map(String::from).collect();
            (
                (f[1].clone(), f[2].parse().expect("partition")),
                f[3..].to_vec(),
            )
        })
        .collect()
}

fn lines_of(o: &Output) -> BTreeSet<String> {
    stdout(o).lines().map(String::from).collect()
}

fn consume(bs: &str, topic: &str, group: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "console-consumer",
        "--bootstrap-server",
        bs,
        "--topic",
        topic,
        "--group",
        group,
    ];
    args.extend_from_slice(extra);
    let o = krust(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[test]
fn group_offsets_are_committed_resumed_reset_and_deleted() {
    let node = start_node();
    let bs = node.bootstrap();
    create_topic(&bs, "events", "3");
    let first: Vec<String> = (0..6).map(|i| format!("k{i}:v{i}")).collect();
    produce(&bs, "events", &first);

    let o = consume(
        &bs,
        "events",
        "g",
        &["--from-beginning", "--max-messages", "6"],
    );
    let expected: BTreeSet<String> = (0..6).map(|i| format!("v{i}")).collect();
    assert_eq!(lines_of(&o), expected);
    assert!(stderr(&o).contains("Processed a total of 6 messages"));

    // Everything read is committed: CURRENT-OFFSET = LOG-END-OFFSET, LAG 0, no member.
    let o = groups(&bs, &["--describe", "--group", "g"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID\n"
        ),
        "{out}"
    );
    assert!(
        stderr(&o).contains("Consumer group 'g' has no active members."),
        "{}",
        stderr(&o)
    );
    let rows = offset_rows(&out, "g");
    assert_eq!(rows.len(), 3, "{out}");
    let mut total = 0;
    for r in rows.values() {
        assert_eq!(r[0], r[1], "{out}");
        assert_eq!(r[2], "0", "{out}");
        assert_eq!(r[3], "-", "{out}");
        total += r[0].parse::<i64>().expect("offset");
    }
    assert_eq!(total, 6);

    let o = groups(&bs, &["--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).lines().any(|l| l == "g"), "{}", stdout(&o));
    // The same through the Kafka script name.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = krust(&["install-aliases", dir.path().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new(dir.path().join("kafka-consumer-groups.sh"))
        .args(["--bootstrap-server", &bs, "--list"])
        .output()
        .expect("run alias");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).lines().any(|l| l == "g"), "{}", stdout(&o));
    let o = groups(&bs, &["--list", "--state"]);
    assert!(stdout(&o).starts_with("GROUP                     STATE"));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["g", "Empty"]),
        "{}",
        stdout(&o)
    );
    let o = groups(&bs, &["--describe", "--group", "g", "--state"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ASSIGNMENT-STRATEGY"), "{}", stdout(&o));
    assert!(stdout(&o).contains(" Empty "), "{}", stdout(&o));

    // A second run in the group reads only the new records.
    let second: Vec<String> = (6..9).map(|i| format!("k{i}:v{i}")).collect();
    produce(&bs, "events", &second);
    let o = consume(&bs, "events", "g", &["--max-messages", "3"]);
    let expected_new: BTreeSet<String> = (6..9).map(|i| format!("v{i}")).collect();
    assert_eq!(lines_of(&o), expected_new);
    // And a third finds nothing left (the exit committed).
    let o = consume(&bs, "events", "g", &["--timeout-ms", "1500"]);
    assert!(lines_of(&o).is_empty(), "{}", stdout(&o));

    // Dry run: the plan, nothing changes.
    let o = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "events",
            "--to-earliest",
            "--dry-run",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("GROUP           TOPIC           PARTITION  NEW-OFFSET\n"));
    for p in 0..3 {
        assert!(
            out.contains(&format!("g               events          {p}          0\n")),
            "{out}"
        );
    }
    let o = groups(&bs, &["--describe", "--group", "g"]);
    let total: i64 = offset_rows(&stdout(&o), "g")
        .values()
        .map(|r| r[0].parse::<i64>().expect("offset"))
        .sum();
    assert_eq!(total, 9);

    // Execute: back to the start, and a new run reads everything again.
    let o = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = groups(&bs, &["--describe", "--group", "g"]);
    for r in offset_rows(&stdout(&o), "g").values() {
        assert_eq!(r[0], "0");
        assert_eq!(r[2], r[1]);
    }
    let o = consume(&bs, "events", "g", &["--max-messages", "9"]);
    let all: BTreeSet<String> = (0..9).map(|i| format!("v{i}")).collect();
    assert_eq!(lines_of(&o), all);

    // Shift back by one on one partition, to a given offset on all.
    let o = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "events:0",
            "--shift-by",
            "-100",
            "--execute",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("g               events          0          0\n"),
        "{}",
        stdout(&o)
    );
    let o = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--to-datetime",
            "2000-01-01T00:00:00.000",
            "--dry-run",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| l.starts_with("g ") && l.ends_with(" 0"))
            .count(),
        3,
        "{}",
        stdout(&o)
    );

    // Unknown group: Kafka's message, exit 1.
    let o = groups(&bs, &["--describe", "--group", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "Error: Consumer group 'nope' does not exist."
    );

    // Delete one topic's offsets, then the (empty) group.
    let o = groups(
        &bs,
        &["--delete-offsets", "--group", "g", "--topic", "events"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Request succeeded for deleting offsets from group g."),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("events          0          Successful"));
    let o = groups(&bs, &["--delete", "--group", "g"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim_end(),
        "Deletion of requested consumer groups ('g') was successful."
    );
    let o = groups(&bs, &["--list"]);
    assert!(!stdout(&o).lines().any(|l| l == "g"), "{}", stdout(&o));
}

/// A console-consumer running in the background, its stdout lines collected.
struct Background {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Background {
    fn start(bs: &str, topic: &str, group: &str) -> Background {
        let mut child = Command::new(BIN)
            .args([
                "console-consumer",
                "--bootstrap-server",
                bs,
                "--topic",
                topic,
                "--group",
                group,
                "--from-beginning",
                "--property",
                "print.partition=true",
                "--consumer-property",
                "heartbeat.interval.ms=300",
                "--consumer-property",
                "auto.commit.interval.ms=500",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn consumer");
        let out = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                sink.lock().expect("lock").push(l);
            }
        });
        Background {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// SIGTERM, then wait for a clean exit; returns stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let st = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(st.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "consumer did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert!(status.success(), "{err}");
        err
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The #PARTITIONS column of each member row of `--describe --members`.
fn member_partitions(bs: &str, group: &str) -> Vec<String> {
    let o = groups(bs, &["--describe", "--group", group, "--members"]);
    stdout(&o)
        .lines()
        .filter(|l| l.starts_with(&format!("{group} ")))
        .map(|l| l.split_whitespace().nth(4).unwrap_or("").to_string())
        .collect()
}

#[test]
fn two_members_split_the_partitions_and_an_active_group_is_protected() {
    let node = start_node();
    let bs = node.bootstrap();
    create_topic(&bs, "split", "4");

    let a = Background::start(&bs, "split", "gs");
    let b = Background::start(&bs, "split", "gs");
    wait_for(
        "two members with 2 partitions each",
        Duration::from_secs(60),
        || {
            let o = groups(&bs, &["--describe", "--group", "gs", "--state"]);
            let stable = stdout(&o).contains(" Stable ");
            (stable && member_partitions(&bs, "gs") == ["2", "2"]).then_some(())
        },
    );
    let o = groups(
        &bs,
        &["--describe", "--group", "gs", "--members", "--verbose"],
    );
    assert!(stdout(&o).contains("CURRENT-ASSIGNMENT"), "{}", stdout(&o));
    assert!(stdout(&o).contains("split:0,1"), "{}", stdout(&o));
    assert!(stdout(&o).contains("split:2,3"), "{}", stdout(&o));

    // An active group can be neither deleted nor reset.
    let o = groups(&bs, &["--delete", "--group", "gs"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Error: Deletion of some consumer groups failed:"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("* Group 'gs' could not be deleted due to: org.apache.kafka.common.errors.GroupNotEmptyException: The group is not empty."),
        "{}",
        stderr(&o)
    );
    let o = groups(
        &bs,
        &[
            "--reset-offsets",
            "--group",
            "gs",
            "--all-topics",
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Assignments can only be reset if the group 'gs' is inactive, but the current state is Stable."),
        "{}",
        stderr(&o)
    );

    let records: Vec<String> = (0..40).map(|i| format!("key{i}:value{i}")).collect();
    produce(&bs, "split", &records);
    wait_for("all records consumed", Duration::from_secs(60), || {
        (a.lines().len() + b.lines().len() >= 40).then_some(())
    });
    // The offsets view names the owning member of each partition.
    let o = groups(&bs, &["--describe", "--group", "gs"]);
    let rows = offset_rows(&stdout(&o), "gs");
    assert_eq!(rows.len(), 4, "{}", stdout(&o));
    assert!(rows.values().all(|r| r[3] != "-"), "{}", stdout(&o));

    let (la, lb) = (a.lines(), b.lines());
    let parse = |lines: &[String]| -> (BTreeSet<i32>, Vec<String>) {
        let mut parts = BTreeSet::new();
        let mut values = Vec::new();
        for l in lines {
            let (p, v) = l.split_once('\t').expect("partition\tvalue");
            parts.insert(p.trim_start_matches("Partition:").parse().expect("p"));
            values.push(v.to_string());
        }
        (parts, values)
    };
    let (pa, va) = parse(&la);
    let (pb, vb) = parse(&lb);
    assert!(pa.is_disjoint(&pb), "{pa:?} {pb:?}");
    let mut all: Vec<String> = va.into_iter().chain(vb).collect();
    all.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("value{i}")).collect();
    expected.sort();
    assert_eq!(all, expected);

    // One member leaves (SIGTERM: commit, LeaveGroup): the other takes over every
    // partition from the committed offsets, reading each new record once.
    let err_a = a.stop();
    assert!(err_a.contains("Processed a total of"), "{err_a}");
    wait_for(
        "one member with 4 partitions",
        Duration::from_secs(60),
        || (member_partitions(&bs, "gs") == ["4"]).then_some(()),
    );
    let more: Vec<String> = (40..60).map(|i| format!("key{i}:value{i}")).collect();
    produce(&bs, "split", &more);
    wait_for("the new records consumed", Duration::from_secs(60), || {
        (b.lines().len() >= lb.len() + 20).then_some(())
    });
    let lb2 = b.lines();
    let err_b = b.stop();
    assert!(err_b.contains("Processed a total of"), "{err_b}");
    let (pnew, mut vnew) = parse(&lb2[lb.len()..]);
    vnew.sort();
    let mut expected: Vec<String> = (40..60).map(|i| format!("value{i}")).collect();
    expected.sort();
    assert_eq!(vnew, expected);
    assert_eq!(pnew, (0..4).collect::<BTreeSet<i32>>());

    // Both left the group on SIGTERM: it is empty at once, its offsets committed, and it
    // can be deleted.
    let o = groups(&bs, &["--describe", "--group", "gs", "--state"]);
    assert!(stdout(&o).contains(" Empty "), "{}", stdout(&o));
    let o = groups(&bs, &["--describe", "--group", "gs"]);
    let rows = offset_rows(&stdout(&o), "gs");
    assert_eq!(rows.len(), 4);
    assert!(rows.values().all(|r| r[2] == "0"), "{}", stdout(&o));
    let o = groups(&bs, &["--delete", "--group", "gs"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("('gs') was successful."));
}

#[test]
fn bad_arguments_exit_1() {
    let bs = "localhost:1";
    for args in [
        vec![],
        vec!["--list", "--describe"],
        vec!["--describe"],
        vec!["--describe", "--group", "g", "--members", "--state"],
        vec!["--reset-offsets", "--group", "g", "--all-topics"],
        vec!["--reset-offsets", "--group", "g", "--to-earliest"],
        vec![
            "--reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--to-earliest",
            "--to-latest",
        ],
        vec![
            "--reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--to-earliest",
            "--dry-run",
            "--execute",
        ],
        vec![
            "--reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--by-duration",
            "yesterday",
        ],
        vec!["--delete-offsets", "--group", "g"],
        vec!["--delete", "--group", "g", "--topic", "t"],
        vec!["--list", "--no-such-flag"],
    ] {
        let o = groups(bs, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("Error: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let o = groups(bs, &["--list", "--describe"]);
    assert!(stderr(&o).contains("Command must include exactly one action"));

    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        bs,
        "--topic",
        "t",
        "--group",
        "g",
        "--partition",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("Error: "), "{}", stderr(&o));

    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        bs,
        "--topic",
        "t",
        "--group",
        "g",
        "--from-beginning",
        "--consumer-property",
        "auto.offset.reset=latest",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "Error: Can't simultaneously specify --from-beginning and 'auto.offset.reset=latest', exiting."
    );
    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        bs,
        "--topic",
        "t",
        "--group",
        "a",
        "--consumer-property",
        "group.id=b",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("do not match. Detected group ids: 'a', 'b'"),
        "{}",
        stderr(&o)
    );
}

fn create_topic(bs: &str, topic: &str, partitions: &str) {
    krust_testkit::cli::create_topic(BIN, bs, topic, partitions);
}
