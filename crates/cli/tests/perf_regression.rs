//! Throughput regression check: krust's produce and consume on one node, each as a ratio to
//! this machine's loopback TCP bandwidth measured in the same run, must not fall far below the
//! ratios committed in `bench/baseline.properties`.
//!
//! Both sides are measured per CPU second, not per wall second: MiB moved divided by the CPU
//! time the processes doing it used (broker and tool; for loopback, one thread that both writes
//! and reads, so no wakeup between threads is in its cost). A neighbour
//! that takes the cores, or a hypervisor that steals them, stretches wall time but not CPU
//! time, so the ratio holds on a crowded machine; more work per MiB in krust lowers it. The
//! wall-time ratios are printed beside them. The check fails only when a ratio stays under
//! `TOLERANCE` × its baseline in every one of `ATTEMPTS` tries. Baselines are kept per build
//! profile (the test suite runs debug binaries, `bench/run` release ones). To record new
//! baselines after a deliberate change, run this test with `KRUST_PERF_BASELINE_WRITE=1` and
//! commit the file.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::time::Instant;

use krust_testkit::cli::{stderr, stdout};
use krust_testkit::Node;

const BIN: &str = env!("CARGO_BIN_EXE_krust");

/// A ratio passes when it is at least this share of its baseline.
const TOLERANCE: f64 = 0.5;
/// Tries per workload before the check fails.
const ATTEMPTS: usize = 3;
/// Records of 1 KiB per produce run.
const RECORDS: u64 = 200_000;

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
         # per build profile, in MiB per CPU second (each the median of three tries when\n\
         # written). The test fails when a ratio stays below half its baseline in three tries.\n\
         # Rewrite with: KRUST_PERF_BASELINE_WRITE=1 cargo test -p krust --test perf_regression\n",
    );
    for (k, v) in values {
        text.push_str(&format!("{k} = {v:.4}\n"));
    }
    std::fs::write(baseline_path(), text).expect("write the baseline");
}

/// Nanoseconds of CPU the live threads of process `pid` have used, by thread id.
fn thread_cpu_ns(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in dir.flatten() {
        if let Some(ns) = schedstat_ns(&task.path().join("schedstat")) {
            out.insert(task.file_name().to_string_lossy().into_owned(), ns);
        }
    }
    out
}

/// CPU seconds used by process `pid` since `before` was read: threads that started since
/// count from zero; a thread that ended since is left out (the broker's only ending threads
/// are blocking-pool threads that idled for seconds first).
fn process_cpu_since(pid: u32, before: &BTreeMap<String, u64>) -> f64 {
    let used: u64 = thread_cpu_ns(pid)
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    used as f64 / 1e9
}

/// CPU seconds of the children this process has waited for (the tools), from
/// `/proc/self/stat` (in clock ticks, 10 ms: the workloads are long enough for that).
fn waited_children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // After the command name in parentheses: the third field is the state; cutime and
    // cstime are the 16th and 17th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .expect("a clock tick count")
    };
    (ticks(16) + ticks(17)) / clock_ticks_per_sec()
}

/// `CLK_TCK`: 100 on Linux unless `getconf` says otherwise.
fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A throughput: MiB moved, wall seconds and CPU seconds it took.
#[derive(Clone, Copy, Debug)]
struct Rate {
    mib: f64,
    wall: f64,
    cpu: f64,
}

impl Rate {
    fn per_wall(&self) -> f64 {
        self.mib / self.wall
    }
    fn per_cpu(&self) -> f64 {
        self.mib / self.cpu
    }
}

/// Nanoseconds of CPU the calling thread has used.
fn this_thread_cpu_ns() -> u64 {
    schedstat_ns(std::path::Path::new("/proc/thread-self/schedstat"))
        .expect("/proc/thread-self/schedstat")
}

/// The first field of a `schedstat` file: nanoseconds of CPU the task has used.
fn schedstat_ns(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// MiB/s between two threads over loopback TCP, 1 MiB writes for about half a second.
fn loopback_wall_once() -> f64 {
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

/// MiB per CPU second through loopback TCP, both ends in one thread: write up to 64 KiB
/// (never blocking), read what arrived, for 1 GiB. With no second thread to wake, the CPU
/// it takes is the kernel's work per byte, whoever else wants the cores.
fn loopback_cpu_once() -> f64 {
    const CHUNK: usize = 64 * 1024;
    const TOTAL: u64 = 1 << 30;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut w = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    w.set_nonblocking(true).expect("nonblocking");
    let (mut r, _) = listener.accept().expect("accept");
    let out = vec![7u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    let (mut written, mut read) = (0u64, 0u64);
    let before = this_thread_cpu_ns();
    while read < TOTAL {
        match w.write(&out) {
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("loopback write: {e}"),
        }
        // Only what was written is waited for, so this read never waits for long.
        if written > read {
            read += r.read(&mut buf).expect("loopback read") as u64;
        }
    }
    let cpu = (this_thread_cpu_ns() - before) as f64 / 1e9;
    read as f64 / 1048576.0 / cpu
}

/// The best of three loopback measurements by each measure: (MiB/s, MiB per CPU second).
fn loopback() -> (f64, f64) {
    let best = |f: fn() -> f64| (0..3).map(|_| f()).fold(0.0, f64::max);
    (best(loopback_wall_once), best(loopback_cpu_once))
}

/// Runs a perf tool and accounts its CPU and the broker's.
fn measured(node: &Node, mib: f64, tool: impl FnOnce() -> Output) -> (Output, Rate) {
    let pid = node.pid().expect("the node runs");
    let broker_before = thread_cpu_ns(pid);
    let tools_before = waited_children_cpu();
    let start = Instant::now();
    let o = tool();
    let wall = start.elapsed().as_secs_f64();
    let cpu = process_cpu_since(pid, &broker_before) + waited_children_cpu() - tools_before;
    assert!(o.status.success(), "{}", stderr(&o));
    (o, Rate { mib, wall, cpu })
}

/// Produces `RECORDS` 1 KiB records to a new one-partition topic with acks=1; then consumes
/// them. Returns the produce and the consume rate; their wall time is as the tools report it.
fn produce_and_consume(node: &Node, topic: &str) -> (Rate, Rate) {
    let bs = node.bootstrap();
    krust_testkit::cli::create_topic(BIN, &bs, topic, "1");
    krust_testkit::cli::wait_topic_served(BIN, &bs, topic);
    let n = RECORDS.to_string();
    let mib = RECORDS as f64 * 1024.0 / 1048576.0;
    let (o, mut produce) = measured(node, mib, || {
        krust_testkit::cli::producer_perf(BIN, &bs, topic, RECORDS, 1024, &["acks=1"])
    });
    let out = stdout(&o);
    let last = out.lines().last().unwrap_or_default();
    // "... records/sec (X MB/sec), ..."
    let per_sec: f64 = last
        .split_once(" records/sec (")
        .and_then(|(_, r)| r.split_once(" MB/sec"))
        .and_then(|(v, _)| v.parse().ok())
        .unwrap_or_else(|| panic!("no MB/sec in {last:?}"));
    produce.wall = mib / per_sec;
    let (o, mut consume) = measured(node, mib, || {
        krust_testkit::cli::run(
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
        )
    });
    let out = stdout(&o);
    let row: Vec<&str> = out.lines().nth(1).unwrap_or_default().split(", ").collect();
    assert_eq!(row.get(4).copied(), Some(n.as_str()), "{out}");
    let per_sec: f64 = row[8]
        .parse()
        .unwrap_or_else(|_| panic!("fetch.MB.sec in {out}"));
    consume.wall = mib / per_sec;
    (produce, consume)
}

#[test]
fn throughput_ratios_to_loopback_hold_their_baseline() {
    // consumer-perf-test joins a new group each time: no initial rebalance delay.
    let node = Node::start(BIN, &["group.initial.rebalance.delay.ms=0"]);
    let baseline = read_baseline();
    let keys = [
        format!("{}.produce.acks1.cpu_ratio", profile()),
        format!("{}.consume.cpu_ratio", profile()),
    ];
    let write = std::env::var_os("KRUST_PERF_BASELINE_WRITE").is_some();
    let mut best = [0.0f64; 2];
    let mut all: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for attempt in 0..ATTEMPTS {
        let (wall_limit, cpu_limit) = loopback();
        let (p, c) = produce_and_consume(&node, &format!("regression-{attempt}"));
        let ratios = [p.per_cpu() / cpu_limit, c.per_cpu() / cpu_limit];
        eprintln!(
            "attempt {attempt}: loopback {wall_limit:.0} MiB/s, {cpu_limit:.0} MiB per CPU s; \
             produce {:.1} MiB/s ({:.4}), {:.1} MiB per CPU s ({:.4}); \
             consume {:.1} MiB/s ({:.4}), {:.1} MiB per CPU s ({:.4})",
            p.per_wall(),
            p.per_wall() / wall_limit,
            p.per_cpu(),
            ratios[0],
            c.per_wall(),
            c.per_wall() / wall_limit,
            c.per_cpu(),
            ratios[1],
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
