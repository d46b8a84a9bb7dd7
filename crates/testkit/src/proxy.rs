//! A TCP proxy that can cut every connection through it, to inject network failures
//! between a client and a node.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Forwards connections from its own port to `target` until dropped.
pub struct Proxy {
    pub port: u16,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    cuts: Arc<AtomicU64>,
    /// While set, connections are refused (accepted and closed at once).
    blocked: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts forwarding `127.0.0.1:<port>` to `target`; port 0 takes a free port (then
    /// read [`Proxy::port`]), which no other process can take before the proxy has it.
    pub fn start(port: u16, target: SocketAddr) -> Proxy {
        Proxy::start_cutting(port, target, 0, 0)
    }

    /// Like [`Proxy::start`], but each of the first `connections_to_cut` connections is cut
    /// after about `bytes_per_connection` bytes from client to server (varying per
    /// connection), in the middle of whatever request is passing.
    pub fn start_cutting(
        port: u16,
        target: SocketAddr,
        connections_to_cut: u64,
        bytes_per_connection: usize,
    ) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        let blocked = Arc::new(AtomicBool::new(false));
        let blocked_in_thread = blocked.clone();
        let cuts = Arc::new(AtomicU64::new(0));
        let cuts_in_thread = cuts.clone();
        thread::spawn(move || {
            let mut accepted = 0u64;
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if blocked_in_thread.load(Ordering::Relaxed) {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        if let (Ok(c1), Ok(s1)) = (client.try_clone(), server.try_clone()) {
                            let mut list = c.lock().unwrap_or_else(|e| e.into_inner());
                            list.push(c1);
                            list.push(s1);
                        }
                        accepted += 1;
                        let budget = (accepted <= connections_to_cut).then(|| {
                            bytes_per_connection / 2
                                + (accepted as usize * 7919) % bytes_per_connection.max(1)
                        });
                        pump(
                            client.try_clone(),
                            server.try_clone(),
                            budget,
                            Some(cuts_in_thread.clone()),
                        );
                        pump(server.try_clone(), client.try_clone(), None, None);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            port,
            conns,
            stop,
            cuts,
            blocked,
        }
    }

    /// Blocks the link (cutting open connections and refusing new ones) or opens it again.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
        if blocked {
            self.cut_all();
        }
    }

    /// Cuts every open connection (both directions), mid-request or not.
    pub fn cut_all(&self) {
        let mut list = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for s in list.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.cuts.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times connections were cut.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut_all();
    }
}

fn pump(
    from: std::io::Result<TcpStream>,
    to: std::io::Result<TcpStream>,
    budget: Option<usize>,
    cuts: Option<Arc<AtomicU64>>,
) {
    let (Ok(mut from), Ok(mut to)) = (from, to) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut forwarded = 0usize;
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let (n, cut) = match budget {
                        Some(b) if forwarded + n >= b => (b.saturating_sub(forwarded), true),
                        _ => (n, false),
                    };
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    forwarded += n;
                    if cut {
                        if let Some(c) = &cuts {
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
