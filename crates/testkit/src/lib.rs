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

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A running (or stopped) krust node.
pub struct Node {
    binary: PathBuf,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub client_port: u16,
    pub controller_port: u16,
    pub extra: Vec<String>,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Node {
    /// Starts a single-node cluster with default settings plus `extra` overrides.
    pub fn start(binary: &str, extra: &[&str]) -> Node {
        let temp = tempfile::Builder::new()
            .prefix("krust-test-")
            .tempdir()
            .expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut node = Node {
            binary: PathBuf::from(binary),
            log_path: temp.path().join("node.log"),
            data_dir,
            _temp: Some(temp),
            client_port: free_port(),
            controller_port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        node.spawn();
        node
    }

    /// `host:port` of the client listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "server".to_string(),
            "--override".into(),
            format!(
                "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                self.client_port, self.controller_port
            ),
            "--override".into(),
            format!(
                "advertised.listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                self.client_port, self.controller_port
            ),
            "--override".into(),
            format!(
                "controller.quorum.voters=1@127.0.0.1:{}",
                self.controller_port
            ),
            "--override".into(),
            format!("log.dirs={}", self.data_dir.display()),
            // Tests that want metrics set their own port.
            "--override".into(),
            "http.listener=".into(),
        ];
        for e in &self.extra {
            a.push("--override".into());
            a.push(e.clone());
        }
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("node log file");
        let child = Command::new(&self.binary)
            .args(self.args())
            .env("KRUST_LOG", "info")
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start krust");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the client port answers an ApiVersions request.
    pub fn wait_ready(&mut self) {
        let addr = self.client_addr();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("krust exited during startup ({status}):\n{}", self.log());
                }
            }
            if api_versions_ok(addr) {
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
