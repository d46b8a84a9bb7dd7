//! `krust dev-cluster`: a local cluster of N combined nodes (broker and controller, all of
//! them voters of the metadata quorum) run as child processes of this one, for development.
//!
//! Node `i` (1-based) listens on `localhost:base+2(i-1)` for clients and on the next port
//! for the quorum. The data directory holds `node-<i>.properties` (rewritten on every
//! start), `node-<i>/` (its `log.dirs`, formatted on the first start) and `node-<i>.log`
//! (its output, appended). A rerun with the same `--dir` starts the same cluster again.
//!
//! Children run in their own process group, so a Ctrl-C in the terminal reaches only this
//! process, which then stops every node with SIGTERM and waits for each to exit. If a node
//! exits on its own, the others are stopped and the exit code is 1.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use krust_server::config::ServerConfig;
use krust_server::meta_properties::{random_uuid, MetaProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::common;

/// How long the nodes get to serve after they are started.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a node gets to exit after SIGTERM before it is killed. The last node of a
/// stopping cluster has no quorum left, and a broker heartbeat in flight then holds its
/// shutdown until the request times out (30s).
const STOP_DEADLINE: Duration = Duration::from_secs(60);
/// After this long, say which nodes are still stopping.
const STOP_PATIENCE: Duration = Duration::from_secs(5);
/// Node `i` serves metrics on this port + i - 1 (unless `http.listener` is overridden).
const METRICS_BASE_PORT: u16 = 9644;
/// Keys dev-cluster sets per node, which an `--override` (applied to every node) may not.
const PER_NODE_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
    "log.dir",
    "metadata.log.dir",
];
/// Log lines of a failed node shown on the terminal.
const LOG_TAIL_LINES: usize = 20;

#[derive(Parser, Debug)]
#[command(
    name = "krust dev-cluster",
    about = "Run a local cluster of combined nodes (broker + controller) as child processes.",
    long_about = "Run a local cluster of combined nodes (broker + controller) as child processes.\n\n\
        Node i listens on localhost:<base-port + 2(i-1)> for clients and on the next port for \
        the metadata quorum (9092/9093, 9094/9095, 9096/9097 by default). The first start \
        formats every node with a new cluster id; a rerun with the same --dir reuses the data. \
        Ctrl-C or SIGTERM stops every node.",
    disable_version_flag = true
)]
struct Args {
    /// Number of nodes, each a broker and a voter of the metadata quorum.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Directory for the nodes' data, configs and logs (default: a new directory under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Client port of node 1; node i uses base+2(i-1) (client) and base+2(i-1)+1 (controller).
    #[arg(long = "base-port", default_value_t = 9092)]
    base_port: u16,
    /// Override a server config key on every node: --override key=value (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// One node of the cluster: where it listens and where its files are.
struct NodeSpec {
    id: u16,
    client_port: u16,
    controller_port: u16,
    data_dir: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
}

impl NodeSpec {
    fn client(&self) -> String {
        format!("localhost:{}", self.client_port)
    }

    fn controller(&self) -> String {
        format!("localhost:{}", self.controller_port)
    }
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let args: Args = match common::parse_args("krust dev-cluster", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_cluster(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_cluster(args: Args) -> anyhow::Result<ExitCode> {
    let n = args.nodes;
    let last_port = u32::from(args.base_port) + 2 * u32::from(n) - 1;
    if args.base_port == 0 {
        bail!("--base-port must be a port number, not 0");
    }
    if last_port > u32::from(u16::MAX) {
        bail!(
            "--base-port {} with {n} nodes needs ports {}..={last_port}, past 65535",
            args.base_port,
            args.base_port
        );
    }
    for o in &args.overrides {
        let (key, _) = krust_server::config::parse_override(o)?;
        if PER_NODE_KEYS.contains(&key.as_str()) {
            bail!(
                "--override {key}=... would give every node the same {key}; dev-cluster sets \
                 it per node (use --base-port and --dir, or run `krust server` yourself)"
            );
        }
    }
    // Before anything is created: every port must be free.
    check_ports_free(args.base_port, n)?;
    let (dir, new_dir) = match &args.dir {
        Some(d) => (d.clone(), !d.exists()),
        None => (new_temp_dir()?, true),
    };
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let specs: Vec<NodeSpec> = (1..=n)
        .map(|id| {
            let client_port = args.base_port + 2 * (id - 1);
            NodeSpec {
                id,
                client_port,
                controller_port: client_port + 1,
                data_dir: dir.join(format!("node-{id}")),
                config_path: dir.join(format!("node-{id}.properties")),
                log_path: dir.join(format!("node-{id}.log")),
            }
        })
        .collect();

    check_node_count(&dir, n)?;
    println!(
        "Data directory: {}{}",
        dir.display(),
        if new_dir { " (new)" } else { "" }
    );

    // Configs first, then every node's config is loaded and validated before anything is
    // formatted or started.
    let voters = specs
        .iter()
        .map(|s| format!("{}@localhost:{}", s.id, s.controller_port))
        .collect::<Vec<_>>()
        .join(",");
    let mut configs = Vec::new();
    for s in &specs {
        let text = node_properties(s, &voters, n);
        fs::write(&s.config_path, text)
            .with_context(|| format!("cannot write {}", s.config_path.display()))?;
        let config = ServerConfig::load(Some(&s.config_path), &args.overrides)
            .with_context(|| format!("node {}", s.id))?;
        configs.push(config);
    }
    let cluster_id = format_nodes(&specs, &configs)?;

    // Signals are caught before any child exists, so none can be orphaned by one.
    let mut signals = Signals::new()?;
    let exe = std::env::current_exe().context("cannot find the krust binary")?;
    let mut nodes = Nodes::default();
    println!("Starting {n} node{}:", if n == 1 { "" } else { "s" });
    for s in &specs {
        let child = spawn_node(&exe, s, &args.overrides)?;
        println!(
            "  node {}: client {}  controller {}  pid {}  log {}",
            s.id,
            s.client(),
            s.controller(),
            child.id(),
            s.log_path.display()
        );
        nodes.children.push((s.id, child));
    }

    // Wait until every client listener answers ApiVersions.
    let started = Instant::now();
    let deadline = started + READY_DEADLINE;
    let mut ready = vec![false; specs.len()];
    loop {
        if let Some((id, status)) = nodes.first_exited() {
            report_death(&specs, id, status, "while starting");
            nodes.stop(&specs).await;
            return Ok(ExitCode::FAILURE);
        }
        for (i, s) in specs.iter().enumerate() {
            if !ready[i] && api_versions_ok(s.client_port).await {
                ready[i] = true;
            }
        }
        if ready.iter().all(|r| *r) {
            break;
        }
        if Instant::now() > deadline {
            let waiting: Vec<String> = specs
                .iter()
                .zip(&ready)
                .filter(|(_, r)| !**r)
                .map(|(s, _)| format!("node {} (log {})", s.id, s.log_path.display()))
                .collect();
            eprintln!(
                "Error: not serving after {}s: {}",
                READY_DEADLINE.as_secs(),
                waiting.join(", ")
            );
            nodes.stop(&specs).await;
            return Ok(ExitCode::FAILURE);
        }
        tokio::select! {
            sig = signals.recv() => {
                println!("{sig} received while starting; stopping every node");
                return Ok(nodes.stop(&specs).await);
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }

    print_ready(&specs, &cluster_id, &dir, started.elapsed(), &configs);

    loop {
        tokio::select! {
            sig = signals.recv() => {
                println!("{sig} received; stopping every node");
                return Ok(nodes.stop(&specs).await);
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Some((id, status)) = nodes.first_exited() {
                    report_death(&specs, id, status, "unexpectedly");
                    nodes.stop(&specs).await;
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
}

/// A new directory `/tmp/krust-dev-<random>`.
fn new_temp_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let suffix: u32 = rand::random();
        let dir = base.join(format!("krust-dev-{suffix:08x}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    bail!("cannot find a free directory name under {}", base.display())
}

/// Fails, naming every port, if any port a node needs is taken.
fn check_ports_free(base_port: u16, n: u16) -> anyhow::Result<()> {
    let mut busy = Vec::new();
    for id in 1..=n {
        let client = base_port + 2 * (id - 1);
        for (port, what) in [(client, "client"), (client + 1, "controller")] {
            if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                busy.push(format!("{port} (node {id} {what} listener): {e}"));
            }
        }
    }
    if !busy.is_empty() {
        bail!(
            "ports in use, nothing started: {}. Stop what listens there or choose another \
             --base-port",
            busy.join("; ")
        );
    }
    Ok(())
}

/// Refuses a directory that holds a cluster of a different size: its quorum would not match.
fn check_node_count(dir: &Path, n: u16) -> anyhow::Result<()> {
    let mut formatted = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("node-")
            .and_then(|i| i.parse::<u16>().ok())
        else {
            continue;
        };
        if MetaProperties::read_from_dir(&entry.path())?.is_some() {
            formatted.push(id);
        }
    }
    formatted.sort_unstable();
    if let Some(max) = formatted.last() {
        if *max > n {
            bail!(
                "{} holds a cluster of at least {max} nodes (node-{max}/ is formatted); rerun \
                 with --nodes {max} or choose another --dir",
                dir.display()
            );
        }
    }
    Ok(())
}

/// The `server.properties` of one node.
fn node_properties(s: &NodeSpec, voters: &str, nodes: u16) -> String {
    let listeners = format!(
        "PLAINTEXT://localhost:{},CONTROLLER://localhost:{}",
        s.client_port, s.controller_port
    );
    format!(
        "# Written by `krust dev-cluster` on every start; edit the command's --override \
         flags instead.\n\
         process.roles=broker,controller\n\
         node.id={id}\n\
         listeners={listeners}\n\
         advertised.listeners={listeners}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         controller.quorum.voters={voters}\n\
         log.dirs={dir}\n\
         http.listener=http://localhost:{metrics}\n{internal}",
        id = s.id,
        dir = s.data_dir.display(),
        metrics = METRICS_BASE_PORT.saturating_add(s.id - 1),
        internal = internal_topic_settings(nodes),
    )
}

/// Kafka's defaults want three brokers for the internal topics (replication factor 3);
/// a smaller cluster gets one replica per broker.
fn internal_topic_settings(nodes: u16) -> String {
    if nodes >= 3 {
        return String::new();
    }
    format!(
        "# Fewer than 3 brokers: internal topics get one replica per broker.\n\
         offsets.topic.replication.factor={nodes}\n\
         transaction.state.log.replication.factor={nodes}\n\
         transaction.state.log.min.isr=1\n"
    )
}

/// Formats the nodes not formatted yet, with the cluster id of those that are (or a new
/// one). Returns the cluster id.
fn format_nodes(specs: &[NodeSpec], configs: &[ServerConfig]) -> anyhow::Result<String> {
    let mut existing: Option<(u16, String)> = None;
    let mut unformatted = Vec::new();
    for (s, config) in specs.iter().zip(configs) {
        let mut any = false;
        for d in config.all_log_dirs() {
            if let Some(meta) = MetaProperties::read_from_dir(&d)? {
                any = true;
                match &existing {
                    Some((other, id)) if *id != meta.cluster_id => bail!(
                        "node {} belongs to cluster {} but node {other} to cluster {id}; \
                         choose another --dir",
                        s.id,
                        meta.cluster_id
                    ),
                    Some(_) => {}
                    None => existing = Some((s.id, meta.cluster_id.clone())),
                }
            }
        }
        if !any {
            unformatted.push(s.id);
        }
    }
    let cluster_id = match &existing {
        Some((_, id)) => {
            println!("Reusing cluster {id}");
            id.clone()
        }
        None => {
            let id = random_uuid();
            println!("Formatting a new cluster, id {id}");
            id
        }
    };
    for (s, config) in specs.iter().zip(configs) {
        // Also run on formatted nodes: it checks that all their directories agree.
        let lines = krust_server::format::format(config, &cluster_id, true, false, &[])
            .with_context(|| format!("cannot format node {}", s.id))?;
        if unformatted.contains(&s.id) {
            for line in lines {
                println!("  node {}: {line}", s.id);
            }
        }
    }
    Ok(cluster_id)
}

fn spawn_node(exe: &Path, s: &NodeSpec, overrides: &[String]) -> anyhow::Result<Child> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log_path)
        .with_context(|| format!("cannot open {}", s.log_path.display()))?;
    let _ = writeln!(
        log,
        "--- krust dev-cluster (pid {}): starting node {} ---",
        std::process::id(),
        s.id
    );
    let mut cmd = Command::new(exe);
    cmd.arg("server").arg("--config").arg(&s.config_path);
    for o in overrides {
        cmd.arg("--override").arg(o);
    }
    let child = cmd
        // Plain text in the log files.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a terminal's Ctrl-C or hangup reaches only dev-cluster,
        // which stops the nodes in order.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start node {}", s.id))?;
    Ok(child)
}

/// Sends ApiVersions v0 and checks that a well-formed answer comes back.
async fn api_versions_ok(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        // size 10, api key 18 (ApiVersions), version 0, correlation id 1, null client id
        let req: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
        s.write_all(&req).await?;
        let size = s.read_i32().await?;
        if size < 6 {
            return Ok::<bool, std::io::Error>(false);
        }
        let correlation = s.read_i32().await?;
        let error = s.read_i16().await?;
        Ok(correlation == 1 && error == 0)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

fn print_ready(
    specs: &[NodeSpec],
    cluster_id: &str,
    dir: &Path,
    took: Duration,
    configs: &[ServerConfig],
) {
    let bootstrap = specs
        .iter()
        .map(NodeSpec::client)
        .collect::<Vec<_>>()
        .join(",");
    let controllers = specs
        .iter()
        .map(NodeSpec::controller)
        .collect::<Vec<_>>()
        .join(",");
    let krust = program_name();
    let n = specs.len();
    println!(
        "Cluster ready in {:.1}s: {n} node{}, cluster id {cluster_id}",
        took.as_secs_f64(),
        if n == 1 { "" } else { "s" }
    );
    println!("  bootstrap servers:     {bootstrap}");
    println!("  bootstrap controllers: {controllers}");
    let metrics: Vec<String> = configs
        .iter()
        .filter_map(|c| c.http_listener.as_ref())
        .map(|h| format!("http://{h}/metrics"))
        .collect();
    if !metrics.is_empty() {
        println!("  metrics:               {}", metrics.join(" "));
    }
    println!("Try:");
    println!(
        "  {krust} topics --bootstrap-server {bootstrap} --create --topic demo --partitions {n}"
    );
    println!("  {krust} console-producer --bootstrap-server {bootstrap} --topic demo");
    println!(
        "  {krust} console-consumer --bootstrap-server {bootstrap} --topic demo --from-beginning"
    );
    println!("  {krust} metadata-quorum --bootstrap-controller {controllers} describe --status");
    println!(
        "Ctrl-C (or SIGTERM to pid {}) stops every node; rerun with --dir {} to start this \
         cluster again.",
        std::process::id(),
        dir.display()
    );
}

/// The name this binary was invoked by, for copy-pasteable example commands.
fn program_name() -> String {
    std::env::args()
        .next()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "krust".to_string())
}

fn report_death(specs: &[NodeSpec], id: u16, status: ExitStatus, when: &str) {
    let log = specs
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.log_path.clone())
        .unwrap_or_default();
    eprintln!(
        "Error: node {id} exited {when} ({status}); its log is {}",
        log.display()
    );
    let text = fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    if !tail.is_empty() {
        eprintln!("Last lines of node {id}'s log:");
        for l in tail {
            eprintln!("  {l}");
        }
    }
    eprintln!("Stopping the other nodes.");
}

/// SIGINT, SIGTERM and SIGHUP, each of which stops the cluster.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("cannot catch SIGHUP")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// The running node processes. Dropping it (an early return or a panic) kills any left.
#[derive(Default)]
struct Nodes {
    children: Vec<(u16, Child)>,
}

impl Nodes {
    /// A node that has exited, with its status; it is removed from the set.
    fn first_exited(&mut self) -> Option<(u16, ExitStatus)> {
        let i = self
            .children
            .iter_mut()
            .position(|(_, c)| matches!(c.try_wait(), Ok(Some(_))))?;
        let (id, mut child) = self.children.remove(i);
        let status = child.wait().ok()?;
        Some((id, status))
    }

    /// SIGTERM to every node, then waits for each to exit (SIGKILL after the deadline).
    /// Success if every node exited cleanly.
    async fn stop(&mut self, specs: &[NodeSpec]) -> ExitCode {
        for (_, c) in &mut self.children {
            terminate(c);
        }
        let started = Instant::now();
        let deadline = started + STOP_DEADLINE;
        let mut clean = true;
        let mut told = false;
        while !self.children.is_empty() {
            if !told && started.elapsed() > STOP_PATIENCE {
                told = true;
                let ids: Vec<String> = self.children.iter().map(|(id, _)| id.to_string()).collect();
                println!(
                    "  still stopping: node {} (up to {}s before it is killed)",
                    ids.join(", node "),
                    STOP_DEADLINE.as_secs()
                );
            }
            let mut i = 0;
            while i < self.children.len() {
                let (id, c) = &mut self.children[i];
                match c.try_wait() {
                    Ok(Some(status)) => {
                        if status.success() {
                            println!(
                                "  node {id} stopped ({:.1}s)",
                                started.elapsed().as_secs_f64()
                            );
                        } else {
                            clean = false;
                            let log = specs
                                .iter()
                                .find(|s| s.id == *id)
                                .map(|s| s.log_path.display().to_string())
                                .unwrap_or_default();
                            eprintln!("  node {id} stopped with {status}; see {log}");
                        }
                        self.children.remove(i);
                    }
                    Ok(None) if Instant::now() > deadline => {
                        clean = false;
                        eprintln!(
                            "  node {id} did not stop within {}s; killing it",
                            STOP_DEADLINE.as_secs()
                        );
                        let _ = c.kill();
                        let _ = c.wait();
                        self.children.remove(i);
                    }
                    Ok(None) => i += 1,
                    Err(e) => {
                        clean = false;
                        eprintln!("  node {id}: cannot wait for it: {e}");
                        self.children.remove(i);
                    }
                }
            }
            if !self.children.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if clean {
            println!("Every node stopped.");
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends SIGTERM (through `kill`, as this crate has no unsafe code); SIGKILL if that fails.
fn terminate(child: &mut Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        let _ = child.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u16, base: u16) -> NodeSpec {
        let client_port = base + 2 * (id - 1);
        NodeSpec {
            id,
            client_port,
            controller_port: client_port + 1,
            data_dir: PathBuf::from(format!("/d/node-{id}")),
            config_path: PathBuf::from(format!("/d/node-{id}.properties")),
            log_path: PathBuf::from(format!("/d/node-{id}.log")),
        }
    }

    #[test]
    fn node_properties_load_as_a_valid_config() {
        let voters = "1@localhost:9093,2@localhost:9095,3@localhost:9097";
        let text = node_properties(&spec(2, 9092), voters, 3);
        let dir = std::env::temp_dir().join(format!("krust-dev-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("node-2.properties");
        fs::write(&path, &text).expect("write");
        let c = ServerConfig::load(Some(&path), &[]).expect("valid config");
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(c.node_id, 2);
        assert_eq!(c.controller_quorum_voters.len(), 3);
        let l = c.broker_listener().expect("client listener");
        assert_eq!((l.host.as_str(), l.port), ("localhost", 9094));
        let l = c.controller_listener().expect("controller listener");
        assert_eq!(l.port, 9095);
        assert_eq!(c.all_log_dirs(), vec![PathBuf::from("/d/node-2")]);
        assert!(!text.contains("replication.factor"));
        let one = internal_topic_settings(1);
        assert!(
            one.contains("offsets.topic.replication.factor=1\n"),
            "{one}"
        );
    }

    #[test]
    fn args_have_the_documented_defaults() {
        let a = Args::try_parse_from(["krust dev-cluster"]).expect("parse");
        assert_eq!((a.nodes, a.base_port), (3, 9092));
        assert!(a.dir.is_none() && a.overrides.is_empty());
        let a = Args::try_parse_from([
            "krust dev-cluster",
            "--nodes",
            "5",
            "--base-port",
            "20000",
            "--override",
            "num.partitions=3",
        ])
        .expect("parse");
        assert_eq!((a.nodes, a.base_port), (5, 20000));
        assert_eq!(a.overrides, ["num.partitions=3"]);
        assert!(Args::try_parse_from(["krust dev-cluster", "--nodes", "0"]).is_err());
    }
}
