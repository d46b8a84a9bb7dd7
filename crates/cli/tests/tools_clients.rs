//! The data tools against a real node, run as subprocesses: console-producer piping lines,
//! console-consumer reading them back in Kafka's formatter layout, configs describe/alter,
//! get-offsets and delete-records.

use krust_testkit::cli::{stderr, stdout};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use krust_testkit::{wait_for, Node};

const BIN: &str = env!("CARGO_BIN_EXE_krust");

fn krust(args: &[&str]) -> Output {
    krust_testkit::cli::run(BIN, args)
}

fn krust_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn krust");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Kafka's default partitioner for the test keys with 3 partitions, computed from murmur2.
fn expected_partition(key: &str) -> i32 {
    // Same algorithm as Kafka's Utils.murmur2, written out here independently.
    let data = key.as_bytes();
    let m: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let n4 = data.len() / 4;
    for i in 0..n4 {
        let i4 = i * 4;
        let mut k = u32::from(data[i4])
            | (u32::from(data[i4 + 1]) << 8)
            | (u32::from(data[i4 + 2]) << 16)
            | (u32::from(data[i4 + 3]) << 24);
        k = k.wrapping_mul(m);
        k ^= k >> 24;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let tail = &data[n4 * 4..];
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    ((h as i32) & 0x7fff_ffff) % 3
}

#[test]
fn produce_then_consume_round_trip() {
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    create_topic(&node, "lines", "3");

    let keys = ["alpha", "beta", "gamma", "delta", "alpha", "epsilon"];
    let input: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k}:value-{i}\n"))
        .collect();
    let o = krust_stdin(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "lines",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--producer-property",
            "acks=all",
        ],
        &input,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");

    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "lines",
        "--from-beginning",
        "--max-messages",
        "6",
        "--timeout-ms",
        "20000",
        "--property",
        "print.key=true",
        "--property",
        "print.offset=true",
        "--property",
        "print.partition=true",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "Processed a total of 6 messages\n");
    let out = stdout(&o);
    let mut got: Vec<(i32, i64, String, String)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "{l}");
            (
                f[0].strip_prefix("Partition:")
                    .expect("Partition:")
                    .parse()
                    .expect("p"),
                f[1].strip_prefix("Offset:")
                    .expect("Offset:")
                    .parse()
                    .expect("o"),
                f[2].to_string(),
                f[3].to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(i32, String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (expected_partition(k), k.to_string(), format!("value-{i}")))
        .collect();
    want.sort_by_key(|w| w.0);
    // Per partition, records keep their input order and get offsets 0, 1, ...
    for p in 0..3 {
        let g: Vec<(i64, String, String)> = got
            .iter()
            .filter(|r| r.0 == p)
            .map(|r| (r.1, r.2.clone(), r.3.clone()))
            .collect();
        let w: Vec<(i64, String, String)> = want
            .iter()
            .filter(|r| r.0 == p)
            .enumerate()
            .map(|(i, r)| (i as i64, r.1.clone(), r.2.clone()))
            .collect();
        assert_eq!(g, w, "partition {p}:\n{out}");
    }

    // Offsets by partition, GetOffsetShell layout.
    let o = krust(&["get-offsets", "--bootstrap-server", &bs, "--topic", "lines"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: String = (0..3)
        .map(|p| {
            let n = want.iter().filter(|w| w.0 == p).count();
            format!("lines:{p}:{n}\n")
        })
        .collect();
    assert_eq!(stdout(&o), expected);
    let o = krust(&[
        "get-offsets",
        "--bootstrap-server",
        &bs,
        "--topic",
        "lines",
        "--partitions",
        "0,2",
        "--time",
        "-2",
    ]);
    assert_eq!(stdout(&o), "lines:0:0\nlines:2:0\n");

    // A single partition from an explicit offset, value only (Kafka's default layout).
    let p = expected_partition("alpha");
    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "lines",
        "--partition",
        &p.to_string(),
        "--offset",
        "1",
        "--timeout-ms",
        "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rest: Vec<String> = want
        .iter()
        .filter(|w| w.0 == p)
        .skip(1)
        .map(|w| format!("{}\n", w.2))
        .collect();
    assert_eq!(stdout(&o), rest.concat());
}

#[test]
fn compressed_bulk_produce_and_timeout_exit() {
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    create_topic(&node, "bulk", "2");
    let input: String = (0..5000).map(|i| format!("line-{i}\n")).collect();
    for codec in ["gzip", "snappy", "lz4", "zstd", "none"] {
        let o = krust_stdin(
            &[
                "console-producer",
                "--bootstrap-server",
                &bs,
                "--topic",
                "bulk",
                "--compression-codec",
                codec,
                "--batch-size",
                "1000",
            ],
            &input,
        );
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
    }
    let started = Instant::now();
    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "bulk",
        "--from-beginning",
        "--timeout-ms",
        "1500",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "Processed a total of 25000 messages\n");
    assert_eq!(stdout(&o).lines().count(), 25000);
    assert!(started.elapsed() < Duration::from_secs(30));

    // Without --from-beginning nothing old is printed; the idle timeout ends the run.
    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "bulk",
        "--timeout-ms",
        "500",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "Processed a total of 0 messages\n");

    // --include: a regular expression over topic names.
    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--include",
        "bul.*",
        "--from-beginning",
        "--max-messages",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);
    assert!(stdout(&o).lines().all(|l| l.starts_with("line-")));

    // A group and a fixed partition exclude each other, as in Kafka.
    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "bulk",
        "--group",
        "g1",
        "--partition",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Options group and partition cannot be specified together"),
        "{}",
        stderr(&o)
    );

    // A line without the key separator stops the producer with Kafka's message.
    let o = krust_stdin(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "bulk",
            "--property",
            "parse.key=true",
        ],
        "k\tv\nnokey\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No key separator found on line number 2: 'nokey'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn configs_describe_and_alter_round_trip() {
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    create_topic(&node, "conf", "1");
    let describe = || {
        krust(&[
            "configs",
            "--bootstrap-server",
            &bs,
            "--entity-type",
            "topics",
            "--entity-name",
            "conf",
            "--describe",
        ])
    };
    let o = describe();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Dynamic configs for topic conf are:\n");

    let o = krust(&[
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "topics",
        "--entity-name",
        "conf",
        "--alter",
        "--add-config",
        "retention.ms=86400000,cleanup.policy=[compact,delete]",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Completed updating config for topic conf.\n");

    let out = wait_for("altered configs", Duration::from_secs(20), || {
        let out = stdout(&describe());
        out.contains("retention.ms=86400000").then_some(out)
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Dynamic configs for topic conf are:");
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with(
            "  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete"
        ),
        "{out}"
    );
    assert!(
        lines[2].starts_with(
            "  retention.ms=86400000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=86400000"
        ),
        "{out}"
    );
    assert!(lines[2].ends_with('}'), "{out}");

    // topics --describe shows the overrides.
    let o = krust(&[
        "topics",
        "--bootstrap-server",
        &bs,
        "--describe",
        "--topic",
        "conf",
    ]);
    let first = stdout(&o).lines().next().unwrap_or_default().to_string();
    assert!(first.contains("cleanup.policy=compact,delete"), "{first}");
    assert!(first.contains("retention.ms=86400000"), "{first}");

    // Deleting a config that is not set fails as Kafka's does.
    let o = krust(&[
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "topics",
        "--entity-name",
        "conf",
        "--alter",
        "--delete-config",
        "segment.ms",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Invalid config(s): segment.ms"),
        "{}",
        stderr(&o)
    );

    let o = krust(&[
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "topics",
        "--entity-name",
        "conf",
        "--alter",
        "--delete-config",
        "retention.ms,cleanup.policy",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for("deleted configs", Duration::from_secs(20), || {
        (stdout(&describe()) == "Dynamic configs for topic conf are:\n").then_some(())
    });

    // --all lists every config, sorted by name.
    let o = krust(&[
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "topics",
        "--entity-name",
        "conf",
        "--describe",
        "--all",
    ]);
    let out = stdout(&o);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.trim_start().split('=').next().unwrap_or_default())
        .collect();
    assert!(
        out.starts_with("All configs for topic conf are:\n"),
        "{out}"
    );
    assert!(names.contains(&"retention.ms"), "{out}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // Brokers.
    let o = krust(&[
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "brokers",
        "--entity-name",
        "1",
        "--describe",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("Dynamic configs for broker 1 are:\n"));
    let o = krust(&[
        "configs",
        "--bootstrap-server",
        &bs,
        "--entity-type",
        "brokers",
        "--entity-name",
        "one",
        "--describe",
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn delete_records_moves_the_low_watermark() {
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    create_topic(&node, "trim", "1");
    let input: String = (0..10).map(|i| format!("r{i}\n")).collect();
    let o = krust_stdin(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "trim",
        ],
        &input,
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("offsets.json");
    std::fs::write(
        &file,
        r#"{"partitions":[{"topic":"trim","partition":0,"offset":3}],"version":1}"#,
    )
    .expect("write");
    let o = krust(&[
        "delete-records",
        "--bootstrap-server",
        &bs,
        "--offset-json-file",
        file.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "Executing records delete operation\nRecords delete operation completed:\npartition: trim-0\tlow_watermark: 3\n"
    );

    let o = krust(&[
        "get-offsets",
        "--bootstrap-server",
        &bs,
        "--topic",
        "trim",
        "--time",
        "earliest",
    ]);
    assert_eq!(stdout(&o), "trim:0:3\n");
    let o = krust(&[
        "get-offsets",
        "--bootstrap-server",
        &bs,
        "--topic",
        "trim",
        "--time",
        "-1",
    ]);
    assert_eq!(stdout(&o), "trim:0:10\n");

    let o = krust(&[
        "console-consumer",
        "--bootstrap-server",
        &bs,
        "--topic",
        "trim",
        "--from-beginning",
        "--max-messages",
        "7",
        "--timeout-ms",
        "20000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want: String = (3..10).map(|i| format!("r{i}\n")).collect();
    assert_eq!(stdout(&o), want);

    // A partition that does not exist: reported per partition, exit 1.
    std::fs::write(
        &file,
        r#"{"partitions":[{"topic":"trim","partition":7,"offset":1}],"version":1}"#,
    )
    .expect("write");
    let o = krust(&[
        "delete-records",
        "--bootstrap-server",
        &bs,
        "--offset-json-file",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o)
            .contains("partition: trim-7\terror: This server does not host this topic-partition."),
        "{}",
        stdout(&o)
    );

    // Malformed JSON.
    std::fs::write(&file, "{\"partitions\":[").expect("write");
    let o = krust(&[
        "delete-records",
        "--bootstrap-server",
        &bs,
        "--offset-json-file",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn headers_round_trip_and_sigterm_ends_the_consumer() {
    use std::io::{BufRead, BufReader};
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    create_topic(&node, "hdrs", "1");
    let o = krust_stdin(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "hdrs",
            "--property",
            "parse.headers=true",
            "--property",
            "parse.key=true",
            "--sync",
        ],
        "h1:a,h2:b\tk1\tv1\n\tk2\tv2\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // A consumer without limits: it runs until SIGTERM, then reports the count and exits 0.
    let mut child = Command::new(BIN)
        .args([
            "console-consumer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "hdrs",
            "--from-beginning",
            "--property",
            "print.headers=true",
            "--property",
            "print.key=true",
            "--property",
            "print.timestamp=true",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consumer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(lines.next().expect("a line").expect("utf-8"));
    }
    for (line, (headers, key, value)) in got
        .iter()
        .zip([("h1:a,h2:b", "k1", "v1"), ("NO_HEADERS", "k2", "v2")])
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line}");
        let ts: i64 = f[0]
            .strip_prefix("CreateTime:")
            .expect("CreateTime:")
            .parse()
            .expect("timestamp");
        assert!(ts > 1_600_000_000_000, "{line}");
        assert_eq!(&f[1..], &[headers, key, value], "{line}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "consumer ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(err, "Processed a total of 2 messages\n");
}

fn create_topic(node: &Node, topic: &str, partitions: &str) {
    krust_testkit::cli::create_topic(BIN, &node.bootstrap(), topic, partitions);
}
