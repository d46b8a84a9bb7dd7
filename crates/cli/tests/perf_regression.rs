//! Throughput regression check: krust's produce and consume throughput on one node, each as a
//! ratio to this machine's loopback TCP bandwidth measured in the same run, must not fall far
//! below the ratios committed in `bench/baseline.properties`.
//!
//! The figures are ratios, not times, so a slower or faster machine moves both sides; the
//! check fails only when a ratio stays under `TOLERANCE` × its baseline in every one of
//! `ATTEMPTS` tries, so a noisy neighbour does not fail it. Baselines are kept per build
//! profile (the test suite runs debug binaries, `bench/run` release ones). To record new
//! baselines after a deliberate change, run this test with `KRUST_PERF_BASELINE_WRITE=1`
//! and commit the file.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use krust_testkit::cli::{stderr, stdout};
use krust_testkit::Node;

const BIN: &str = env!("CARGO_BIN_EXE_krust");

/// A ratio passes when it is at least this share of its baseline.
const TOLERANCE: f64 = 0.5;
/// Tries per workload before the check fails.
const ATTEMPTS: usize = 3;
/// Records of 1 KiB per produce run.
const RECORDS: u64 = 60_000;

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/baseline.properties")
}

/// `key = value` lines; `#` starts a comment line.
fn read_baseline() -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(baseline_path()).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn write_baseline(values: &BTreeMap<String, f64>) {
    let mut text = String::from(
        "# Throughput ratios to loopback TCP bandwidth measured by\n\
         # crates/cli/tests/perf_regression.rs (one node, 1 KiB records, one partition),\n\
         # per build profile (each the median of three tries when written). The test fails\n\
         # when a ratio stays below half its baseline in three tries.\n\
         # Rewrite with: KRUST_PERF_BASELINE_WRITE=1 cargo test -p krust --test perf_regression\n",
    );
    for (k, v) in values {
        text.push_str(&format!("{k} = {v:.4}\n"));
    }
    std::fs::write(baseline_path(), text).expect("write the baseline");
}

/// MiB/s between two threads over loopback TCP, 1 MiB writes for about half a second.
fn loopback_mib_per_sec() -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let buf = vec![7u8; 1 << 20];
        let start = Instant::now();
        while start.elapsed().as_millis() < 500 {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let (mut r, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let start = Instant::now();
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    sender.join().expect("sender");
    total as f64 / 1048576.0 / secs
}

/// The best of three loopback measurements.
fn loopback() -> f64 {
    (0..3).map(|_| loopback_mib_per_sec()).fold(0.0, f64::max)
}

/// Produces `RECORDS` 1 KiB records to a new one-partition topic with acks=1; then consumes
/// them. Returns (produce MiB/s, consume MiB/s) as the tools report them.
fn produce_and_consume(node: &Node, topic: &str) -> (f64, f64) {
    let bs = node.bootstrap();
    krust_testkit::cli::create_topic(BIN, &bs, topic, "1");
    krust_testkit::cli::wait_topic_served(BIN, &bs, topic);
    let props = format!("bootstrap.servers={bs}");
    let n = RECORDS.to_string();
    let o = krust_testkit::cli::run(
        BIN,
        &[
            "producer-perf-test",
            "--topic",
            topic,
            "--num-records",
            &n,
            "--record-size",
            "1024",
            "--throughput",
            "-1",
            "--producer-props",
            &props,
            "acks=1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let last = out.lines().last().unwrap_or_default();
    // "... records/sec (X MB/sec), ..."
    let produce: f64 = last
        .split_once(" records/sec (")
        .and_then(|(_, r)| r.split_once(" MB/sec"))
        .and_then(|(v, _)| v.parse().ok())
        .unwrap_or_else(|| panic!("no MB/sec in {last:?}"));
    let o = krust_testkit::cli::run(
        BIN,
        &[
            "consumer-perf-test",
            "--bootstrap-server",
            &bs,
            "--topic",
            topic,
            "--messages",
            &n,
            "--timeout",
            "30000",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let row: Vec<&str> = out.lines().nth(1).unwrap_or_default().split(", ").collect();
    assert_eq!(row.get(4).copied(), Some(n.as_str()), "{out}");
    let consume: f64 = row[3].parse().unwrap_or_else(|_| panic!("MB.sec in {out}"));
    (produce, consume)
}

#[test]
fn throughput_ratios_to_loopback_hold_their_baseline() {
    let node = Node::start(BIN, &[]);
    let baseline = read_baseline();
    let keys = [
        format!("{}.produce.acks1.ratio", profile()),
        format!("{}.consume.ratio", profile()),
    ];
    let write = std::env::var_os("KRUST_PERF_BASELINE_WRITE").is_some();
    let mut best = [0.0f64; 2];
    let mut all: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for attempt in 0..ATTEMPTS {
        let limit = loopback();
        let (p, c) = produce_and_consume(&node, &format!("regression-{attempt}"));
        let ratios = [p / limit, c / limit];
        eprintln!(
            "attempt {attempt}: loopback {limit:.0} MiB/s, produce {p:.1} MiB/s ({:.4}), \
             consume {c:.1} MiB/s ({:.4})",
            ratios[0], ratios[1]
        );
        for i in 0..2 {
            best[i] = best[i].max(ratios[i]);
            all[i].push(ratios[i]);
        }
        let passing = keys
            .iter()
            .zip(best)
            .all(|(k, r)| baseline.get(k).is_none_or(|b| r >= b * TOLERANCE));
        if passing && !write {
            break;
        }
    }
    if write {
        // The median of the tries: a typical figure, not a lucky one.
        let mut values = baseline.clone();
        for (k, mut rs) in keys.iter().zip(all) {
            rs.sort_by(f64::total_cmp);
            values.insert(k.clone(), rs[rs.len() / 2]);
        }
        write_baseline(&values);
        return;
    }
    for (k, r) in keys.iter().zip(best) {
        match baseline.get(k) {
            Some(b) => assert!(
                r >= b * TOLERANCE,
                "{k}: best ratio {r:.4} over {ATTEMPTS} tries is below {TOLERANCE} x the \
                 baseline {b:.4} ({})",
                baseline_path().display()
            ),
            None => eprintln!("{k}: no baseline yet (measured {r:.4})"),
        }
    }
}
