//! Real krust nodes for tests.
//!
//! A [`Node`] is the real `krust` binary started as a child process on free loopback ports
//! with its own data directory. Tests wait on observable conditions (a port answering, a
//! predicate becoming true) with deadlines, never on fixed sleeps. Every process a test
//! starts is killed when its handle drops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod cli;
pub mod proxy;
pub mod python;

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port nobody listens on right now, never handed out before by this process.
///
/// Picked below Linux's ephemeral range (32768-60999 by default), where the kernel takes
/// the local ports of outgoing connections: a port from that range could be taken by some
/// client's connection between being picked here and being bound by a node (or while a
/// node restarts on it).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    static STATE: AtomicU64 = AtomicU64::new(0);
    const LOW: u64 = 20_000;
    const HIGH: u64 = 32_000;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        // splitmix64 over a per-process sequence.
        let mut z = seed.wrapping_add(STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let port = (LOW + z % (HIGH - LOW)) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A running (or stopped) krust node.
pub struct Node {
    binary: PathBuf,
    /// The log's length when the process last started: what it logs since is after it.
    log_start: usize,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub client_port: u16,
    pub controller_port: u16,
    pub extra: Vec<String>,
    child: Option<Child>,
    log_path: PathBuf,
    pub node_id: i32,
    /// `process.roles`.
    pub roles: String,
    /// `controller.quorum.voters`.
    pub voters: String,
    /// A second broker listener for the other brokers (`INTERNAL`, the inter-broker
    /// listener): the port it listens on and the port it is advertised at (a proxy).
    internal: Option<(u16, u16)>,
    /// The name of the client listener (`PLAINTEXT` unless started with
    /// [`Node::start_listener`]).
    client_listener: String,
    /// More arguments for `krust storage format`.
    format_args: Vec<String>,
}

impl Node {
    /// Starts a single-node cluster with default settings plus `extra` overrides.
    pub fn start(binary: &str, extra: &[&str]) -> Node {
        let mut node = Node::unstarted(binary, 1, "broker,controller", extra);
        node.voters = format!("1@127.0.0.1:{}", node.controller_port);
        node.spawn();
        node
    }

    /// A node on fresh ports and data, not started yet (its `voters` still to be set).
    fn unstarted(binary: &str, node_id: i32, roles: &str, extra: &[&str]) -> Node {
        let temp = tempfile::Builder::new()
            .prefix("krust-test-")
            .tempdir()
            .expect("temp dir");
        let data_dir = temp.path().join("data");
        Node {
            binary: PathBuf::from(binary),
            log_path: temp.path().join("node.log"),
            data_dir,
            _temp: Some(temp),
            client_port: free_port(),
            controller_port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            node_id,
            roles: roles.to_string(),
            voters: String::new(),
            internal: None,
            client_listener: "PLAINTEXT".into(),
            log_start: 0,
            format_args: Vec::new(),
        }
    }

    /// Like [`Node::start`], with the client listener named `listener` (so of that security
    /// protocol, e.g. `SASL_PLAINTEXT`), which is also the inter-broker listener.
    pub fn start_listener(binary: &str, listener: &str, extra: &[&str]) -> Node {
        let mut node = Node::unstarted(binary, 1, "broker,controller", extra);
        node.client_listener = listener.to_string();
        node.voters = format!("1@127.0.0.1:{}", node.controller_port);
        node.spawn();
        node
    }

    fn is_controller(&self) -> bool {
        self.roles.contains("controller")
    }

    fn is_broker(&self) -> bool {
        self.roles.contains("broker")
    }

    /// `host:port` of the controller listener.
    pub fn controller_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.controller_port)
    }

    /// The process id while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `host:port` of the client listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// The settings of this node as `--override` arguments.
    fn overrides(&self) -> Vec<String> {
        let mut listeners = Vec::new();
        let mut advertised = Vec::new();
        let client = &self.client_listener;
        if self.is_broker() {
            listeners.push(format!("{client}://127.0.0.1:{}", self.client_port));
            advertised.push(format!("{client}://127.0.0.1:{}", self.client_port));
            if let Some((port, proxy)) = self.internal {
                listeners.push(format!("INTERNAL://127.0.0.1:{port}"));
                advertised.push(format!("INTERNAL://127.0.0.1:{proxy}"));
            }
        }
        if self.is_controller() {
            listeners.push(format!("CONTROLLER://127.0.0.1:{}", self.controller_port));
            advertised.push(format!("CONTROLLER://127.0.0.1:{}", self.controller_port));
        }
        let (listeners, advertised) = (listeners.join(","), advertised.join(","));
        let mut a = vec![];
        if self.internal.is_none() && client != "PLAINTEXT" {
            a.extend([
                "--override".to_string(),
                format!("inter.broker.listener.name={client}"),
            ]);
        }
        if self.internal.is_some() {
            a.extend([
                "--override".to_string(),
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
                "--override".into(),
                "inter.broker.listener.name=INTERNAL".into(),
            ]);
        }
        a.extend([
            "--override".to_string(),
            format!("node.id={}", self.node_id),
            "--override".into(),
            format!("process.roles={}", self.roles),
            "--override".into(),
            "controller.listener.names=CONTROLLER".into(),
            "--override".into(),
            format!("listeners={listeners}"),
            "--override".into(),
            format!("advertised.listeners={advertised}"),
            "--override".into(),
            format!("controller.quorum.voters={}", self.voters),
            "--override".into(),
            format!("log.dirs={}", self.data_dir.display()),
            // Tests that want metrics set their own port.
            "--override".into(),
            "http.listener=".into(),
        ]);
        for e in &self.extra {
            a.push("--override".into());
            a.push(e.clone());
        }
        a
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec!["server".to_string()];
        a.extend(self.overrides());
        a
    }

    /// Formats the node's storage with `cluster_id` (`krust storage format`).
    fn format(&self, cluster_id: &str) {
        let empty = self.log_path.with_file_name("empty.properties");
        std::fs::write(&empty, "").expect("write an empty config");
        let mut args = vec![
            "storage".to_string(),
            "format".into(),
            "-t".into(),
            cluster_id.into(),
            "-c".into(),
            empty.display().to_string(),
        ];
        args.extend(self.overrides());
        args.extend(self.format_args.iter().cloned());
        let out = Command::new(&self.binary)
            .args(&args)
            .output()
            .expect("run krust storage format");
        assert!(
            out.status.success(),
            "krust storage format failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready();
    }

    fn spawn_process(&mut self) {
        self.log_start = self.log().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("node log file");
        let child = Command::new(&self.binary)
            .args(self.args())
            // `KRUST_TEST_LOG` sets the nodes' log filter (default `info`) when debugging.
            .env(
                "KRUST_LOG",
                std::env::var("KRUST_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start krust");
        self.child = Some(child);
    }

    /// Starts the node again on the same ports and data without waiting for it to serve
    /// (a quorum member cannot serve until a majority of voters runs).
    pub fn restart_nowait(&mut self) {
        assert!(
            self.child.is_none(),
            "stop or kill the node before restarting it"
        );
        self.spawn_process();
    }

    /// Waits until the client port (the controller port on a controller-only node) answers
    /// an ApiVersions request, or, where both listeners are TLS, until the node logs that it
    /// started.
    pub fn wait_ready(&mut self) {
        // A TLS client listener does not answer a plain ApiVersions: the node's controller
        // listener does, unless it is TLS too.
        let tls = self.client_listener.ends_with("SSL");
        let controller_tls = self.extra.iter().any(|e| {
            e.strip_prefix("listener.security.protocol.map=")
                .is_some_and(|m| m.contains("CONTROLLER:SSL") || m.contains("CONTROLLER:SASL_SSL"))
        });
        let addr = if self.is_broker() && !(tls && self.is_controller()) {
            self.client_addr()
        } else {
            SocketAddr::from(([127, 0, 0, 1], self.controller_port))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("krust exited during startup ({status}):\n{}", self.log());
                }
            }
            let ready = if controller_tls && (tls || !self.is_broker()) {
                self.log()
                    .get(self.log_start..)
                    .is_some_and(|l| l.contains("krust node started"))
            } else {
                api_versions_ok(addr)
            };
            if ready {
                return;
            }
            if Instant::now() > deadline {
                panic!("krust did not become ready:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's log output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the process (SIGSTOP): it holds its sockets but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }

    /// Starts the node again on the same ports and data.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "stop or kill the node before restarting it"
        );
        self.spawn();
    }

    /// The directory of one partition's log.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        // A failing test's nodes tell what they were doing: their logs end up beside the
        // failure (the data directory goes away with the node).
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_LINES_ON_FAILURE)..];
            eprintln!(
                "==== node {} ({}), last {} log lines\n{}",
                self.node_id,
                self.roles,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// How much of each node's log a failing test prints.
const LOG_LINES_ON_FAILURE: usize = 300;

/// Several nodes forming one cluster: one metadata quorum, one cluster id.
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// With [`Cluster::start_partitionable`]: `(from, to, proxy)`, the link node `from`
    /// uses to reach node `to`'s controller listener.
    links: Vec<(i32, i32, proxy::Proxy)>,
}

impl Cluster {
    /// Starts `n` combined nodes (broker and controller; node ids 1..=n, all voters) and
    /// waits until every one serves.
    pub fn start(binary: &str, n: usize, extra: &[&str]) -> Cluster {
        let roles = vec!["broker,controller"; n];
        Cluster::start_with_roles(binary, &roles, extra)
    }

    /// Like [`Cluster::start`], with each node's client listener named `listener` (see
    /// [`Node::start_listener`]), and `format_args` given to `krust storage format`.
    pub fn start_listener(
        binary: &str,
        n: usize,
        listener: &str,
        extra: &[&str],
        format_args: &[&str],
    ) -> Cluster {
        let mut nodes: Vec<Node> = (1..=n as i32)
            .map(|id| {
                let mut node = Node::unstarted(binary, id, "broker,controller", extra);
                node.client_listener = listener.to_string();
                node.format_args = format_args.iter().map(|a| a.to_string()).collect();
                node
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.node_id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        for n in &mut nodes {
            n.voters = voters.clone();
        }
        Cluster::launch(nodes, Vec::new())
    }

    /// Starts one node per entry of `roles` (`process.roles` of node ids 1, 2, ...); the
    /// nodes with the controller role are the voters.
    pub fn start_with_roles(binary: &str, roles: &[&str], extra: &[&str]) -> Cluster {
        let mut nodes: Vec<Node> = roles
            .iter()
            .enumerate()
            .map(|(i, r)| Node::unstarted(binary, i as i32 + 1, r, extra))
            .collect();
        let voters = nodes
            .iter()
            .filter(|n| n.is_controller())
            .map(|n| format!("{}@127.0.0.1:{}", n.node_id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        for n in &mut nodes {
            n.voters = voters.clone();
        }
        Cluster::launch(nodes, Vec::new())
    }

    /// Like [`Cluster::start`], but every node reaches every other node's controller
    /// listener through its own proxy, so that a node can be cut off from the others
    /// ([`Cluster::isolate`]) while clients still reach it.
    pub fn start_partitionable(binary: &str, n: usize, extra: &[&str]) -> Cluster {
        let mut nodes: Vec<Node> = (1..=n as i32)
            .map(|id| Node::unstarted(binary, id, "broker,controller", extra))
            .collect();
        let mut links = Vec::new();
        for from in 1..=n as i32 {
            let mut voters = Vec::new();
            for to in &nodes {
                let port = if to.node_id == from {
                    to.controller_port
                } else {
                    let target = SocketAddr::from(([127, 0, 0, 1], to.controller_port));
                    let p = proxy::Proxy::start(0, target);
                    let port = p.port;
                    links.push((from, to.node_id, p));
                    port
                };
                voters.push(format!("{}@127.0.0.1:{port}", to.node_id));
            }
            nodes[from as usize - 1].voters = voters.join(",");
        }
        Cluster::launch(nodes, links)
    }

    /// One controller (node 1) and `brokers` brokers (nodes 2, 3, ...), where each broker
    /// reaches the controller, and is reached by the other brokers (replication), through
    /// its own proxies; clients reach every broker directly. [`Cluster::isolate`] then cuts
    /// a broker off from the cluster while clients can still talk to it.
    pub fn start_isolatable_brokers(binary: &str, brokers: usize, extra: &[&str]) -> Cluster {
        let mut nodes = vec![Node::unstarted(binary, 1, "controller", extra)];
        nodes[0].voters = format!("1@127.0.0.1:{}", nodes[0].controller_port);
        let controller = SocketAddr::from(([127, 0, 0, 1], nodes[0].controller_port));
        let mut links = Vec::new();
        for id in 2..=brokers as i32 + 1 {
            let mut n = Node::unstarted(binary, id, "broker", extra);
            let to_controller = proxy::Proxy::start(0, controller);
            n.voters = format!("1@127.0.0.1:{}", to_controller.port);
            links.push((id, 1, to_controller));
            let internal = free_port();
            let to_internal = proxy::Proxy::start(0, SocketAddr::from(([127, 0, 0, 1], internal)));
            n.internal = Some((internal, to_internal.port));
            links.push((0, id, to_internal));
            nodes.push(n);
        }
        Cluster::launch(nodes, links)
    }

    fn launch(mut nodes: Vec<Node>, links: Vec<(i32, i32, proxy::Proxy)>) -> Cluster {
        let cluster_id = "MkU3OEVBNTcwNTJENDM2Qg";
        for n in &mut nodes {
            n.format(cluster_id);
        }
        for n in &mut nodes {
            n.spawn_process();
        }
        for n in &mut nodes {
            n.wait_ready();
        }
        Cluster { nodes, links }
    }

    /// Cuts node `id` off from the other nodes (both directions) or, with `false`,
    /// connects it again. Needs [`Cluster::start_partitionable`].
    pub fn isolate(&self, id: i32, isolated: bool) {
        assert!(
            !self.links.is_empty(),
            "start the cluster with start_partitionable"
        );
        for (from, to, p) in &self.links {
            if *from == id || *to == id {
                p.set_blocked(isolated);
            }
        }
    }

    /// The node with this id.
    pub fn node(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.node_id == id)
            .expect("no node with that id")
    }

    /// Bootstrap servers of every broker.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_broker())
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Controller listener addresses of every controller.
    pub fn controller_bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_controller())
            .map(Node::controller_bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Sends ApiVersions v0 on a fresh connection and checks an answer comes back.
pub fn api_versions_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // size, api key 18, version 0, correlation 1, client id null
    let req: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    if s.write_all(&req).is_err() {
        return false;
    }
    let mut size = [0u8; 4];
    if s.read_exact(&mut size).is_err() {
        return false;
    }
    let n = i32::from_be_bytes(size);
    if n <= 4 {
        return false;
    }
    let mut body = vec![0u8; n as usize];
    s.read_exact(&mut body).is_ok() && body[..4] == [0, 0, 0, 1]
}

/// The workspace's target directory (for the Python venv and other test tools).
pub fn target_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.join("../../target")
}
