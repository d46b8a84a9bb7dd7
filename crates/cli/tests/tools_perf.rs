//! producer-perf-test and consumer-perf-test against a real node: Kafka's summary layouts,
//! every record written and read back, and Kafka's argument errors.

use krust_testkit::cli::{stderr, stdout};
use std::process::Output;
use std::time::Duration;

use krust_testkit::{wait_for, Cluster, Node};

const BIN: &str = env!("CARGO_BIN_EXE_krust");

fn krust(args: &[&str]) -> Output {
    krust_testkit::cli::run(BIN, args)
}

/// Splits `text` at the literal pieces of `layout`, where `{}` marks a field; returns the
/// fields, or None if the text does not have the layout.
fn fields(text: &str, layout: &str) -> Option<Vec<String>> {
    let pieces: Vec<&str> = layout.split("{}").collect();
    let mut rest = text.strip_prefix(pieces[0])?;
    let mut out = Vec::new();
    for (i, lit) in pieces.iter().enumerate().skip(1) {
        let end = if lit.is_empty() && i == pieces.len() - 1 {
            rest.len()
        } else {
            rest.find(lit)?
        };
        out.push(rest[..end].to_string());
        rest = &rest[end + lit.len()..];
    }
    rest.is_empty().then_some(out)
}

/// `krust consumer-perf-test --bootstrap-server <bs>` with `args`.
fn consumer_perf(bs: &str, args: &[&str]) -> Output {
    let mut all = vec!["consumer-perf-test", "--bootstrap-server", bs];
    all.extend_from_slice(args);
    krust(&all)
}

fn decimals(s: &str) -> Option<usize> {
    s.parse::<f64>().ok()?;
    Some(s.split_once('.').map_or(0, |(_, d)| d.len()))
}

const FINAL: &str = "{} records sent, {} records/sec ({} MB/sec), {} ms avg latency, {} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.";

#[test]
fn perf_tools_produce_and_consume_every_record() {
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    create_topic(&node, "perf", "3");

    let props = format!("bootstrap.servers={bs}");
    let o =
        krust_testkit::cli::producer_perf(BIN, &bs, "perf", 20000, 100, &["acks=1", "linger.ms=2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let last = out.lines().last().expect("a summary line");
    let f = fields(last, FINAL).unwrap_or_else(|| panic!("layout of {last:?}"));
    assert_eq!(f[0], "20000", "{last}");
    // Kafka's printf: %f records/sec, %.2f MB/sec and latencies, %d percentiles.
    assert_eq!(decimals(&f[1]), Some(6), "{last}");
    assert_eq!(decimals(&f[2]), Some(2), "{last}");
    assert_eq!(decimals(&f[3]), Some(2), "{last}");
    assert_eq!(decimals(&f[4]), Some(2), "{last}");
    let p: Vec<u64> = f[5..]
        .iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("percentile {s} in {last}"))
        })
        .collect();
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "{last}");
    let rate: f64 = f[1].parse().expect("rate");
    assert!(rate > 0.0, "{last}");

    // Every record is in the log: the end offsets add up to --num-records.
    let o = krust(&["get-offsets", "--bootstrap-server", &bs, "--topic", "perf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let total: i64 = stdout(&o)
        .lines()
        .map(|l| {
            l.rsplit(':')
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .expect("offset")
        })
        .sum();
    assert_eq!(total, 20000, "{}", stdout(&o));

    let o = consumer_perf(
        &bs,
        &[
            "--topic",
            "perf",
            "--group",
            "perf-group",
            "--messages",
            "20000",
            "--timeout",
            "20000",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec",
        "{out}"
    );
    let row: Vec<&str> = lines[1].split(", ").collect();
    assert_eq!(row.len(), 10, "{out}");
    assert_eq!(row[4], "20000", "{out}");
    // 20000 records of 100 bytes: 1.9073 MB .
    assert_eq!(row[2], "1.9073", "{out}");
    // yyyy-MM-dd HH:mm:ss:SSS
    assert_eq!(row[0].len(), 23, "{out}");
    assert_eq!(&row[0][4..5], "-", "{out}");
    // The group was new: joining waited out group.initial.rebalance.delay.ms (3000), which
    // is rebalance time, not fetch time.
    let rebalance: i64 = row[6].parse().expect("rebalance.time.ms");
    let fetch: i64 = row[7].parse().expect("fetch.time.ms");
    assert!(rebalance >= 3000, "{out}");
    // ... and the two add up to the run's time (end.time - start.time).
    let ms_of_day = |t: &str| -> i64 {
        let f: Vec<i64> = t[11..]
            .split(':')
            .map(|n| n.parse().expect("time field"))
            .collect();
        ((f[0] * 60 + f[1]) * 60 + f[2]) * 1000 + f[3]
    };
    let elapsed = (ms_of_day(row[1]) - ms_of_day(row[0])).rem_euclid(86_400_000);
    assert_eq!(rebalance + fetch, elapsed, "{out}");
    // The member left the group at the end.
    let o = krust(&[
        "consumer-groups",
        "--bootstrap-server",
        &bs,
        "--describe",
        "--group",
        "perf-group",
        "--state",
    ]);
    assert!(
        stdout(&o).lines().any(|l| l.contains(" Empty ")),
        "{}",
        stdout(&o)
    );

    // Throttled, acks=all, compressed, with metrics and percentiles to the microsecond.
    let o = krust(&[
        "producer-perf-test",
        "--topic",
        "perf",
        "--num-records",
        "1000",
        "--record-size",
        "10",
        "--throughput",
        "5000",
        "--producer-props",
        &props,
        "acks=all",
        "compression.type=gzip",
        "--print-metrics",
        "--precise-latency",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let summary = out
        .lines()
        .find_map(|l| fields(l, FINAL).filter(|f| f[0] == "1000"))
        .unwrap_or_else(|| panic!("no summary line: {out}"));
    for p in &summary[5..9] {
        let decimals = p.split_once('.').map(|(_, d)| d.len());
        assert_eq!(decimals, Some(3), "percentile {p} in {out}");
    }
    assert!(
        out.contains("producer-metrics:record-send-total:{client-id=perf-producer-client}"),
        "{out}"
    );

    // acks=0: no responses; the records still all arrive.
    let o = krust(&[
        "producer-perf-test",
        "--topic",
        "perf",
        "--num-records",
        "500",
        "--record-size",
        "10",
        "--throughput",
        "-1",
        "--producer-props",
        &props,
        "acks=0",
        "compression.type=lz4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| fields(l, FINAL).is_some_and(|f| f[0] == "500")),
        "{}",
        stdout(&o)
    );
    wait_for("all records in the log", Duration::from_secs(10), || {
        let o = krust(&["get-offsets", "--bootstrap-server", &bs, "--topic", "perf"]);
        let total: i64 = stdout(&o)
            .lines()
            .filter_map(|l| l.rsplit(':').next().and_then(|n| n.parse::<i64>().ok()))
            .sum();
        (total == 21500).then_some(())
    });

    // The same group again: it goes on from the offsets committed when the first run ended,
    // so it reads the 1500 records of 10 bytes produced since (0.0143 MB), not the first
    // 1500 records of 100 bytes.
    let o = consumer_perf(
        &bs,
        &[
            "--topic",
            "perf",
            "--group",
            "perf-group",
            "--messages",
            "1500",
            "--timeout",
            "20000",
            "--hide-header",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let row: Vec<&str> = out.lines().next().expect("row").split(", ").collect();
    assert_eq!((row[2], row[4]), ("0.0143", "1500"), "{out}");

    // All 21500 records, by an include list, with a large request (a new group: joining
    // takes 3 s of the 5 s): a timeout warning, still a summary row.
    let o = consumer_perf(
        &bs,
        &[
            "--include",
            "pe.f",
            "--messages",
            "50000",
            "--timeout",
            "5000",
            "--hide-header",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("WARNING: Exiting before consuming the expected number of messages: timeout (5000 ms) exceeded."), "{out}");
    let row: Vec<&str> = out.lines().nth(1).expect("row").split(", ").collect();
    assert_eq!(row[4], "21500", "{out}");
}

/// producer-perf-test's arguments for `records` records of `size` bytes, unthrottled, with
/// `--producer-props` and `props` unless `props` is `None`.
fn producer_args<'a>(records: &'a str, size: &'a str, props: Option<&[&'a str]>) -> Vec<&'a str> {
    let mut args = vec![
        "producer-perf-test",
        "--topic",
        "t",
        "--num-records",
        records,
        "--record-size",
        size,
        "--throughput",
        "-1",
    ];
    if let Some(props) = props {
        args.push("--producer-props");
        args.extend_from_slice(props);
    }
    args
}

/// producer-perf-test's arguments for 5 records of 1 byte, unthrottled, with `props`.
fn producer_props<'a>(props: &[&'a str]) -> Vec<&'a str> {
    producer_args("5", "1", Some(props))
}

#[test]
fn perf_tools_refuse_bad_arguments() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            producer_args("0", "1", Some(&["bootstrap.servers=x:1"])),
            "Error: --num-records should be greater than zero",
        ),
        (
            producer_args("5", "0", Some(&["bootstrap.servers=x:1"])),
            "Error: --record-size should be greater than zero",
        ),
        (
            producer_args("5", "1", None),
            "Error: Either --producer-props or --producer.config must be specified.",
        ),
        (producer_props(&["acks"]), "Error: Invalid property: acks"),
        (
            producer_props(&["acks=2", "bootstrap.servers=x:1"]),
            "Error: Invalid value 2 for configuration acks",
        ),
        (
            producer_props(&["acks=1", "enable.idempotence=true", "bootstrap.servers=x:1"]),
            "Error: enable.idempotence=true needs acks=all",
        ),
        (
            producer_props(&["enable.idempotence=yes", "bootstrap.servers=x:1"]),
            "Error: Invalid value yes for configuration enable.idempotence",
        ),
        (
            vec![
                "producer-perf-test",
                "--topic",
                "t",
                "--num-records",
                "five",
                "--record-size",
                "1",
                "--throughput",
                "-1",
            ],
            "Error: invalid value 'five' for '--num-records",
        ),
        (
            vec![
                "consumer-perf-test",
                "--bootstrap-server",
                "x:1",
                "--topic",
                "t",
            ],
            "Error: Missing required argument \"[messages]\"",
        ),
        (
            vec![
                "consumer-perf-test",
                "--bootstrap-server",
                "x:1",
                "--topic",
                "t",
                "--include",
                "t.*",
                "--messages",
                "5",
            ],
            "Error: Exactly one of the following arguments is required: [topic], [include]",
        ),
        (
            vec![
                "consumer-perf-test",
                "--bootstrap-server",
                "127.0.0.1:1",
                "--topic",
                "t",
                "--messages",
                "5",
                "--socket-buffer-size",
                "0",
            ],
            "Error: Invalid value 0 for configuration socket-buffer-size",
        ),
        (
            vec![
                "consumer-perf-test",
                "--bootstrap-server",
                "127.0.0.1:1",
                "--topic",
                "t",
                "--messages",
                "5",
            ],
            "Error: Failed to connect to 127.0.0.1:1",
        ),
    ];
    for (args, want) in &cases {
        let o = krust(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].starts_with(want), "{args:?}: {err}");
    }
}

/// Under idempotence, a batch refused for good (here: larger than the topic's
/// max.message.bytes) would leave a gap in the partition's sequence numbers. As Kafka's
/// producer does (KIP-360), the tool bumps its producer epoch and goes on: every other
/// record is written, once.
#[test]
fn an_idempotent_run_goes_on_after_a_batch_fails_for_good() {
    let node = Node::start(BIN, &[]);
    let bs = node.bootstrap();
    krust_testkit::cli::create_topic_with(
        BIN,
        &bs,
        "oversized",
        &["--partitions", "1", "--config", "max.message.bytes=1200"],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let payloads = dir.path().join("payloads");
    let small = "s".repeat(20);
    std::fs::write(&payloads, format!("{small}\n{}\n", "b".repeat(1500))).expect("payloads");
    let servers = format!("bootstrap.servers={bs}");
    let o = krust(&[
        "producer-perf-test",
        "--topic",
        "oversized",
        "--num-records",
        "300",
        "--payload-file",
        payloads.to_str().expect("utf-8 path"),
        "--throughput",
        "300",
        "--producer-props",
        &servers,
        "acks=all",
        "linger.ms=0",
    ]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        !o.status.success(),
        "some records cannot be written:\n{out}\n{err}"
    );
    let failed: i64 = err
        .lines()
        .find(|l| l.contains(" records could not be sent"))
        .and_then(|l| l.split(" records could not be sent").next())
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of failed records:\n{err}"));
    assert!((1..300).contains(&failed), "{failed} failed:\n{err}");
    assert!(err.contains("ERROR Error when sending "), "{err}");
    assert!(err.contains("anew under producer id"), "{err}");
    let written = krust_testkit::cli::total_records(BIN, &bs, "oversized").expect("offsets");
    assert_eq!(
        written,
        300 - failed,
        "every record but the refused ones, once:\n{err}"
    );
    let values = krust_testkit::cli::console_consume(BIN, &bs, "oversized", written as usize);
    assert!(values.iter().all(|v| *v == small), "only the small records");
}

fn create_topic(node: &Node, topic: &str, partitions: &str) {
    krust_testkit::cli::create_topic(BIN, &node.bootstrap(), topic, partitions);
}

/// One partition's leader is gone (its only replica's node stopped): consumer-perf-test
/// reads the other partitions to the end instead of waiting for it.
#[test]
fn consumer_perf_reads_the_partitions_that_have_a_leader() {
    let mut cluster = Cluster::start(
        BIN,
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
            "group.initial.rebalance.delay.ms=0",
            // The embedded default is 1: the new group's coordinator must survive the stop.
            "offsets.topic.replication.factor=3",
        ],
    );
    let bs = cluster.bootstrap();
    krust_testkit::cli::create_topic_with(
        BIN,
        &bs,
        "spread",
        &["--partitions", "3", "--replication-factor", "1"],
    );
    krust_testkit::cli::wait_topic_served(BIN, &bs, "spread");
    let o = krust_testkit::cli::producer_perf(BIN, &bs, "spread", 3000, 10, &["acks=all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A first group makes __consumer_offsets (three replicas) while all nodes are up.
    let o = consumer_perf(&bs, &["--topic", "spread", "--messages", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let rows = krust_testkit::cli::describe_topic(BIN, &bs, "spread").expect("describe");
    let (&lost, row) = rows.iter().next().expect("partition");
    let gone = row.leader;
    let o = krust(&[
        "get-offsets",
        "--bootstrap-server",
        &bs,
        "--topic",
        "spread",
    ]);
    let kept: i64 = stdout(&o)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (_, p, n) = (f.next()?, f.next()?.parse::<i32>().ok()?, f.next()?);
            (p != lost).then(|| n.parse::<i64>().ok()).flatten()
        })
        .sum();
    assert!(kept > 0, "{}", stdout(&o));
    cluster.node(gone).stop();
    let alive = cluster
        .nodes
        .iter()
        .filter(|n| n.node_id != gone)
        .map(|n| n.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    wait_for(
        "the partition without a leader",
        Duration::from_secs(30),
        || {
            let rows = krust_testkit::cli::describe_topic(BIN, &alive, "spread")?;
            (rows.get(&lost)?.leader == -1).then_some(())
        },
    );

    let n = kept.to_string();
    let o = consumer_perf(
        &alive,
        &[
            "--topic",
            "spread",
            "--messages",
            &n,
            "--timeout",
            "30000",
            "--hide-header",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("WARNING"), "{out}\n{}", stderr(&o));
    let row: Vec<&str> = out.lines().next().expect("row").split(", ").collect();
    assert_eq!(row[4], n, "{out}");
}
