//! `krust dev-cluster`: three nodes started as children of one process, used with the
//! tools (create a topic, produce, consume, describe the quorum), stopped with SIGTERM
//! (every node gone, exit 0), started again from the same directory with the data intact;
//! and a clear refusal, before anything starts, when a port is taken.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use krust_testkit::cli::{create_topic, run, stderr, stdout};
use krust_testkit::wait_for;

const BIN: &str = env!("CARGO_BIN_EXE_krust");
const NODES: u16 = 3;

/// A base port with `2 * NODES` consecutive free ports above it, below the ephemeral range
/// so that other tests' `free_port()` picks do not land on it.
fn free_base_port(attempt: u32) -> u16 {
    let seed = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(attempt * 104_729);
    for i in 0..2000u32 {
        let base = 20_000 + ((seed.wrapping_add(i * 37)) % 6000) as u16 * 2;
        let all_free =
            (base..base + 2 * NODES).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free port range found");
}

/// A running `krust dev-cluster`, its stdout lines arriving on a channel. Killed (with its
/// nodes) if the test fails before stopping it.
struct DevCluster {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    node_pids: Vec<u32>,
    stderr_path: PathBuf,
}

impl DevCluster {
    /// Starts `krust dev-cluster` on free ports; retries on another range if a port was
    /// taken in between.
    fn start(dir: &Path) -> (DevCluster, u16) {
        for attempt in 0..5 {
            let base = free_base_port(attempt);
            let mut dc = DevCluster::spawn(dir, base);
            match dc.wait_ready() {
                Ok(()) => return (dc, base),
                Err(text) if text.contains("ports in use") => continue,
                Err(text) => panic!("dev-cluster did not become ready:\n{text}"),
            }
        }
        panic!("could not find free ports for dev-cluster");
    }

    fn spawn(dir: &Path, base: u16) -> DevCluster {
        let stderr_path = dir.with_extension("stderr");
        let err = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(BIN)
            .args([
                "dev-cluster",
                "--nodes",
                &NODES.to_string(),
                "--base-port",
                &base.to_string(),
                "--dir",
                &dir.display().to_string(),
                // No metrics listeners: tests share the machine.
                "--override",
                "http.listener=",
            ])
            .env("KRUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("start krust dev-cluster");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        DevCluster {
            child,
            lines: rx,
            seen: Vec::new(),
            node_pids: Vec::new(),
            stderr_path,
        }
    }

    fn output_so_far(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.seen.join("\n"),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    /// Reads stdout until the end of the ready block; `Err` with the output if the process exits first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    // "  node 1: client localhost:P  controller localhost:C  pid N  log ..."
                    if line.trim_start().starts_with("node ") {
                        if let Some(pid) = line
                            .split("  ")
                            .find_map(|f| f.trim().strip_prefix("pid "))
                            .and_then(|p| p.parse().ok())
                        {
                            self.node_pids.push(pid);
                        }
                    }
                    // The last line of the ready block, after "Cluster ready in ...".
                    let ready = line.starts_with("Ctrl-C (or SIGTERM");
                    self.seen.push(line);
                    if ready {
                        return Ok(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    return Err(self.output_so_far());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("timed out\n{}", self.output_so_far()));
            }
        }
    }

    /// SIGTERM, then waits for the exit; returns the status and the whole output.
    fn terminate(&mut self) -> (ExitStatus, String) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
        let status = wait_for("dev-cluster to exit", Duration::from_secs(90), || {
            self.child.try_wait().expect("try_wait")
        });
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            self.seen.push(line);
        }
        (status, self.output_so_far())
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in &self.node_pids {
            if is_alive(*pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Whether a process with this pid exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
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

fn bootstrap(base: u16) -> String {
    (0..NODES)
        .map(|i| format!("localhost:{}", base + 2 * i))
        .collect::<Vec<_>>()
        .join(",")
}

fn controllers(base: u16) -> String {
    (0..NODES)
        .map(|i| format!("localhost:{}", base + 2 * i + 1))
        .collect::<Vec<_>>()
        .join(",")
}

fn consume(bs: &str, topic: &str, n: usize) -> Vec<String> {
    krust_testkit::cli::console_consume(BIN, bs, topic, n)
}

/// Waits until `broker`'s own metadata shows a leader for each of the topic's 3 partitions.
fn wait_for_leaders(broker: &str, topic: &str) {
    wait_for("the topic's leaders", Duration::from_secs(30), || {
        let o = run(
            BIN,
            &[
                "topics",
                "--bootstrap-server",
                broker,
                "--describe",
                "--topic",
                topic,
            ],
        );
        let text = stdout(&o);
        (o.status.success()
            && text.matches("Leader: ").count() == 3
            && !text.contains("Leader: none"))
        .then_some(())
    });
}

fn assert_stopped_cleanly(dc: &mut DevCluster) {
    let pids = dc.node_pids.clone();
    assert_eq!(pids.len(), NODES as usize, "{}", dc.output_so_far());
    let (status, text) = dc.terminate();
    assert!(
        status.success(),
        "dev-cluster exited with {status}:\n{text}"
    );
    assert!(text.contains("Every node stopped."), "{text}");
    for pid in pids {
        assert!(!is_alive(pid), "node process {pid} still runs:\n{text}");
    }
}

#[test]
fn dev_cluster_serves_stops_cleanly_and_restarts_with_its_data() {
    let temp = tempfile::Builder::new()
        .prefix("krust-dev-cluster-test-")
        .tempdir()
        .expect("temp dir");
    let dir = temp.path().join("cluster");

    let (mut dc, base) = DevCluster::start(&dir);
    let out = dc.seen.join("\n");
    let bs = bootstrap(base);
    let ctl = controllers(base);
    assert!(
        out.contains(&format!("bootstrap servers:     {bs}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("bootstrap controllers: {ctl}")),
        "{out}"
    );
    assert!(
        out.contains("metadata-quorum --bootstrap-controller"),
        "{out}"
    );
    assert!(out.contains("Formatting a new cluster"), "{out}");
    for n in 1..=NODES {
        assert!(dir.join(format!("node-{n}.log")).is_file());
        assert!(dir.join(format!("node-{n}/meta.properties")).is_file());
    }

    create_topic(BIN, &bs, "dev", "3");
    // Each node's metadata catches up on its own.
    for node in bs.split(',') {
        wait_for_leaders(node, "dev");
    }
    let records: Vec<String> = (0..9).map(|i| format!("record-{i}")).collect();
    let o = krust_stdin(
        &[
            "console-producer",
            "--bootstrap-server",
            &bs,
            "--topic",
            "dev",
            "--producer-property",
            "acks=all",
            "--message-send-max-retries",
            "20",
        ],
        &format!("{}\n", records.join("\n")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(consume(&bs, "dev", records.len()), records);

    let o = run(
        BIN,
        &[
            "metadata-quorum",
            "--bootstrap-controller",
            &ctl,
            "describe",
            "--status",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let status = stdout(&o);
    let voters = status
        .lines()
        .find(|l| l.starts_with("CurrentVoters:"))
        .expect("voters line");
    assert_eq!(voters.matches("\"id\":").count(), 3, "{status}");
    let leader: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("LeaderId:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("leader id");
    assert!((1..=3).contains(&leader), "{status}");

    assert_stopped_cleanly(&mut dc);
    drop(dc);

    // Again from the same directory: no reformat, the topic and its records are there.
    let (mut dc, base) = DevCluster::start(&dir);
    let out = dc.seen.join("\n");
    assert!(out.contains("Reusing cluster"), "{out}");
    assert!(!out.contains("Formatting"), "{out}");
    let bs = bootstrap(base);
    for node in bs.split(',') {
        wait_for_leaders(node, "dev");
    }
    assert_eq!(consume(&bs, "dev", records.len()), records);
    assert_stopped_cleanly(&mut dc);
}

#[test]
fn dev_cluster_refuses_ports_in_use_before_starting_anything() {
    let temp = tempfile::Builder::new()
        .prefix("krust-dev-cluster-test-")
        .tempdir()
        .expect("temp dir");
    let dir = temp.path().join("cluster");
    // Hold node 2's controller port.
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let held = holder.local_addr().expect("addr").port();
    let base = held - 3;
    let o = run(
        BIN,
        &[
            "dev-cluster",
            "--base-port",
            &base.to_string(),
            "--dir",
            &dir.display().to_string(),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("ports in use"), "{err}");
    assert!(
        err.contains(&format!("{held} (node 2 controller listener)")),
        "{err}"
    );
    // Nothing was formatted or started.
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "{entries:?}");
}
