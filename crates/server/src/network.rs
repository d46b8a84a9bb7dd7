//! Listeners and connections.
//!
//! Each connection reads whole frames into one buffer and handles requests one at a time
//! in arrival order; responses always leave in request order, through an [`Outbound`]
//! queue that is flushed once no further request is already waiting (or once it holds
//! 1 MiB). One overlap is allowed: an acks=all Produce that is appended and only waits for
//! the in-sync replicas does not hold back the Produce requests behind it (up to
//! [`MAX_PENDING_RESPONSES`]), which are appended meanwhile and answered after it. (Kafka
//! mutes a connection until its response is sent, so a producer's pipelined requests to
//! one partition replicate one at a time there.) Any other request waits until the
//! answers before it are out, and whatever ends a connection (a request that closes it,
//! the client's half-close, shutdown), the answers owed for requests already handled are
//! still sent first. A framing error closes the connection after logging why; it never
//! affects other connections.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;
use krust_protocol::{take_frame, Listener};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::dispatch::{dispatch, Deferred, Outcome};
use crate::outbound::{ConnStream, Outbound};

/// How long a client on a TLS listener has for its handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Flush the write buffer once it holds this much even if more requests are queued.
const WRITE_BUFFER_FLUSH_BYTES: u64 = 1024 * 1024;
/// Requests whose responses may wait at once on one connection (acks=all Produce
/// requests pipelined behind each other); Kafka's clients send at most 5 by default.
const MAX_PENDING_RESPONSES: usize = 32;
/// With `queued.max.request.bytes`, how far past the reserved frame a read may go (the
/// next frame's size prefix, or small frames whole).
const READ_AHEAD: usize = 4096;

/// `max.connections` and `max.connections.per.ip` (with its overrides), over the client
/// listeners together, as Kafka's connection quotas. The controller listener is not
/// counted: the quorum's connections never wait for clients'. Addresses are counted in
/// their canonical form (an IPv4 client of a dual-stack listener as IPv4). With several
/// client listeners, up to one connection per listener may be accepted past
/// `max.connections` at once (each waits for a place, then accepts).
pub struct ConnectionQuotas {
    max_total: usize,
    per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    /// `listener.name.<listener>.max.connections`.
    per_listener: HashMap<String, usize>,
    /// Connections open.
    open: std::sync::Mutex<OpenConnections>,
    freed: tokio::sync::Notify,
}

/// Connections open, in all, per address and per listener.
#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_listener: HashMap<Arc<str>, usize>,
}

/// One counted connection; dropping it gives its place back.
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
    listener: Arc<str>,
}

impl ConnectionQuotas {
    pub fn new(config: &crate::config::ServerConfig) -> ConnectionQuotas {
        let n = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        ConnectionQuotas {
            max_total: n(config.max_connections),
            per_ip: n(config.max_connections_per_ip),
            overrides: config
                .max_connections_per_ip_overrides
                .iter()
                .map(|(ip, c)| (*ip, n(*c)))
                .collect(),
            per_listener: config
                .listener_max_connections
                .iter()
                .map(|(l, c)| (l.clone(), n(*c)))
                .collect(),
            open: Default::default(),
            freed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OpenConnections> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Returns once fewer than `max.connections` are open (not asked of a `protected`
    /// listener) and fewer than the listener's own `max.connections`: as Kafka's acceptor,
    /// a listener accepts nothing more until then (new connections wait in the kernel's
    /// backlog).
    async fn slot_free(&self, listener: &str, protected: bool) {
        let limit = self
            .per_listener
            .get(listener)
            .copied()
            .unwrap_or(usize::MAX);
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let open = self.lock();
                let on_listener = open.per_listener.get(listener).copied().unwrap_or(0);
                if (protected || open.total < self.max_total) && on_listener < limit {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Counts a new connection from `ip` on `listener`; `None` when that address has its
    /// `max.connections.per.ip` (or override) open already.
    fn admit(self: &Arc<Self>, ip: IpAddr, listener: &Arc<str>) -> Option<ConnectionSlot> {
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.per_ip);
        let mut open = self.lock();
        let n = open.per_ip.entry(ip).or_default();
        if *n >= limit {
            if *n == 0 {
                open.per_ip.remove(&ip);
            }
            return None;
        }
        *n += 1;
        open.total += 1;
        *open.per_listener.entry(listener.clone()).or_default() += 1;
        Some(ConnectionSlot {
            quotas: self.clone(),
            ip,
            listener: listener.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        {
            let mut open = self.quotas.lock();
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.per_ip.remove(&self.ip);
                }
            }
            if let Some(n) = open.per_listener.get_mut(&self.listener) {
                *n = n.saturating_sub(1);
            }
        }
        self.quotas.freed.notify_waiters();
    }
}

/// Accepts connections on `listener` until `shutdown` turns true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    kind: Listener,
    name: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let quotas = match kind {
        Listener::Broker => Some(broker.connection_quotas.clone()),
        Listener::Controller => None,
    };
    // As in Kafka, the inter-broker listener, when there are others, never waits for a
    // place in max.connections (only in its own listener's limit): clients filling it
    // elsewhere must not cut replication off.
    let client_listeners = broker
        .config
        .listeners
        .iter()
        .filter(|l| !broker.config.controller_listener_names.contains(&l.name))
        .count();
    let protected = client_listeners > 1 && *name == *broker.config.inter_broker_listener_name;
    loop {
        if let Some(q) = &quotas {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = q.slot_free(&name, protected) => {}
            }
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let slot = match &quotas {
                        None => None,
                        Some(q) => match q.admit(peer.ip().to_canonical(), &name) {
                            Some(slot) => Some(slot),
                            None => {
                                info!(%peer, "closing a new connection: its address has max.connections.per.ip open already");
                                drop(stream);
                                continue;
                            }
                        },
                    };
                    let _ = stream.set_nodelay(true);
                    let broker = broker.clone();
                    let shutdown = shutdown.clone();
                    let name = name.clone();
                    let tls = broker.config.tls_listeners.get(&*name).cloned();
                    tokio::spawn(async move {
                        let stream = match tls {
                            None => ConnStream::Plain(stream),
                            Some(config) => {
                                let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                                    Ok(Ok(s)) => ConnStream::Tls(Box::new(s)),
                                    // Closed before saying anything: a port probe, not a
                                    // failed handshake.
                                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                        debug!(%peer, "a connection closed before its TLS handshake");
                                        return;
                                    }
                                    Ok(Err(e)) => {
                                        info!(%peer, error = %e, "closing a connection: TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        debug!(%peer, "closing a connection: no TLS handshake in time");
                                        return;
                                    }
                                }
                            }
                        };
                        connection(broker, stream, peer, kind, name, shutdown).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// Whether a connection reads nothing now: its throttle time is running, or a throttled
/// answer is not out yet (KIP-219).
fn is_muted(muted_until: Option<tokio::time::Instant>, pending: &VecDeque<Deferred>) -> bool {
    muted_until.is_some() || pending.iter().any(|d| d.throttled)
}

async fn connection(
    broker: Arc<Broker>,
    mut stream: ConnStream,
    peer: SocketAddr,
    kind: Listener,
    name: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let socket_max = broker.config.socket_request_max_bytes as usize;
    // SASL listeners: authentication first, with smaller frames until it is done.
    let mut auth = crate::sasl::ConnAuth::new(&broker, &name);
    // A client certificate names the connection's principal; one whose subject cannot be
    // read ends it (it must not pass for ANONYMOUS, as Kafka fails such a client too).
    if let ConnStream::Tls(tls) = &stream {
        if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            let Some(subject) = crate::principal::certificate_subject(cert) else {
                info!(%peer, "closing a connection: its client certificate's subject cannot be read");
                return;
            };
            // `ssl.principal.mapping.rules` (SSL listeners): no rule applying, no principal.
            match broker.config.ssl_principal_rules.get(&*name) {
                None => auth.set_certificate_principal(format!("User:{subject}")),
                Some(rules) => match rules.apply(&subject) {
                    Some(p) => auth.set_certificate_principal(format!("User:{p}")),
                    None => {
                        info!(%peer, %subject, "closing a connection: no ssl.principal.mapping.rules rule applies to its certificate");
                        return;
                    }
                },
            }
        }
    }
    let mut read_buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Outbound::default();
    // Responses not yet in `out`, in request order: the first is an acks=all Produce
    // waiting for the in-sync replicas; any later one waits behind it.
    let mut pending: VecDeque<Deferred> = VecDeque::new();
    debug!(%peer, ?kind, "connection opened");
    broker.metrics.connection_opened();
    // Whether the answers still owed can be written when the connection ends.
    let mut writable = true;
    // `queued.max.request.bytes`: the reservation for the frame at the head of the buffer.
    // Client listeners only: the quorum's traffic is never held back by clients' (Kafka's
    // controller has a socket server, and a pool, of its own).
    let pool = match kind {
        Listener::Broker => broker.request_pool.as_ref(),
        Listener::Controller => None,
    };
    let mut reserved: Option<tokio::sync::OwnedSemaphorePermit> = None;
    // `connections.max.idle.ms` (client listeners): closed once nothing was read or written
    // for that long while no answer is owed.
    let idle = match kind {
        Listener::Broker => broker
            .config
            .connections_max_idle_ms
            .map(std::time::Duration::from_millis),
        Listener::Controller => None,
    };
    let mut last_active = tokio::time::Instant::now();
    // A request over its client's quota mutes the connection until then (KIP-219).
    let mut muted_until: Option<tokio::time::Instant> = None;
    'conn: loop {
        // Handle every whole frame already buffered before touching the socket again;
        // behind a waiting response, only further Produce requests (up to a limit).
        loop {
            let max_request = auth.frame_limit(&broker, socket_max);
            if is_muted(muted_until, &pending) {
                break;
            }
            if !pending.is_empty()
                && (pending.len() >= MAX_PENDING_RESPONSES || !next_is_produce(&read_buf))
            {
                break;
            }
            if let (Some(pool), None) = (pool, &reserved) {
                if let Some(size) = next_frame_size(&read_buf, max_request) {
                    match pool.try_reserve(size) {
                        Some(r) => reserved = Some(r),
                        None => break, // waited for below, reading nothing meanwhile
                    }
                }
            }
            let frame = match take_frame(&mut read_buf, max_request) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: bad frame");
                    break 'conn;
                }
            };
            // Given back once the request is handled.
            let _reserved = reserved.take();
            // Handling it counts as activity, whatever it writes.
            if idle.is_some() {
                last_active = tokio::time::Instant::now();
            }
            let queued = !pending.is_empty();
            let mut behind = Outbound::default();
            let target = if queued { &mut behind } else { &mut out };
            let outcome = dispatch(&broker, kind, &name, peer, frame, target, &mut auth).await;
            if let Some(t) = target.throttle.take() {
                // As long as the throttle time the client is told (at most i32::MAX ms).
                let t = t.min(std::time::Duration::from_millis(i32::MAX as u64));
                muted_until = Some(tokio::time::Instant::now() + t);
            }
            match outcome {
                Outcome::Continue => {}
                Outcome::Defer(d) => pending.push_back(d),
                Outcome::Close(reason) => {
                    warn!(%peer, %reason, "closing connection");
                    break 'conn;
                }
            }
            if queued && !behind.is_empty() {
                // A Produce answer (already counted): encoded bytes, never file ranges.
                let bytes = behind.buf.split();
                pending.push_back(Deferred {
                    response: Box::pin(std::future::ready(Ok(bytes))),
                    api: None,
                    started: Instant::now(),
                    throttled: false,
                });
            }
            if out.len() >= WRITE_BUFFER_FLUSH_BYTES {
                if let Err(e) = out.write_to(&mut stream).await {
                    debug!(%peer, error = %e, "write failed");
                    writable = false;
                    break 'conn;
                }
                last_active = tokio::time::Instant::now();
            }
        }
        if !out.is_empty() {
            if let Err(e) = out.write_to(&mut stream).await {
                debug!(%peer, error = %e, "write failed");
                writable = false;
                break;
            }
            last_active = tokio::time::Instant::now();
        }
        let max_request = auth.frame_limit(&broker, socket_max);
        if read_buf.capacity() - read_buf.len() < READ_CHUNK / 4 {
            read_buf.reserve(READ_CHUNK);
        }
        // Behind a waiting response, only further Produce requests are handled.
        let blocked = !pending.is_empty()
            && (pending.len() >= MAX_PENDING_RESPONSES || !next_is_produce(&read_buf));
        // A frame whose size is read but not reserved: nothing more is read until it is, and
        // the pool is waited for only once the frame can be handled (not while it is held
        // behind a waiting response, so that it holds no share meanwhile).
        let next_size = pool.and_then(|_| next_frame_size(&read_buf, max_request));
        let unreserved = next_size.filter(|_| reserved.is_none());
        // A muted connection reserves nothing: it holds no share while it waits.
        let muted = is_muted(muted_until, &pending);
        let to_reserve = unreserved.filter(|_| !blocked && !muted);
        // With a pool, read no further than the reserved frame (and a little of the next
        // one's start); behind a waiting response, only what completes the next frame.
        let read_limit = pool.map(|_| {
            let rest = match (&reserved, next_size) {
                (Some(_), Some(size)) => (4 + size).saturating_sub(read_buf.len()),
                _ => 0,
            };
            rest + READ_AHEAD
        });
        let may_read = !muted
            && unreserved.is_none()
            && (pending.is_empty() || !frame_complete(&read_buf, max_request));
        tokio::select! {
            // Progress first; the idle close only when nothing else is ready.
            biased;
            _ = shutdown.changed() => break,
            _ = async {
                match muted_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                muted_until = None;
                continue;
            }
            done = async {
                match pending.front_mut() {
                    Some(d) => (&mut d.response).await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(d) = pending.pop_front() else { continue };
                if !finish(&broker, &d, done, &mut out) {
                    pending.clear();
                    break;
                }
                // Answers already complete behind it leave in the same write.
                while let Some(d) = pending.front_mut() {
                    let Some(done) = ready_now(&mut d.response) else { break };
                    let Some(d) = pending.pop_front() else { break };
                    if !finish(&broker, &d, done, &mut out) {
                        pending.clear();
                        break 'conn;
                    }
                }
            }
            r = async {
                match (pool, to_reserve) {
                    (Some(pool), Some(size)) => pool.reserve(size).await,
                    _ => std::future::pending().await,
                }
            }, if to_reserve.is_some() => reserved = r,
            n = async {
                match read_limit {
                    Some(limit) => stream.read_buf(&mut (&mut read_buf).limit(limit)).await,
                    None => stream.read_buf(&mut read_buf).await,
                }
            }, if may_read => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => last_active = tokio::time::Instant::now(),
            },
            // Not while the node itself holds the connection back (waiting for the pool).
            _ = async {
                match idle {
                    Some(d) => tokio::time::sleep_until(last_active + d).await,
                    None => std::future::pending().await,
                }
            }, if idle.is_some() && pending.is_empty() && unreserved.is_none() => {
                debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                break;
            }
        }
    }
    // Requests behind a waiting answer were appended: their answers are owed, in order,
    // whatever ends the connection (a request that closes it, the client's half-close,
    // shutdown).
    if writable {
        while let Some(mut d) = pending.pop_front() {
            let done = (&mut d.response).await;
            if !finish(&broker, &d, done, &mut out) {
                break;
            }
        }
        let _ = out.write_to(&mut stream).await;
    }
    debug!(%peer, "connection closed");
    broker.metrics.connection_closed();
}

/// Queues a deferred response that is ready on `out` and counts it; false if it could not
/// be encoded (the connection closes).
fn finish(
    broker: &Broker,
    d: &Deferred,
    done: Result<BytesMut, String>,
    out: &mut Outbound,
) -> bool {
    if let Some(api) = d.api {
        broker.metrics.record_request(api, d.started.elapsed());
    }
    match done {
        Ok(bytes) => {
            out.buf.extend_from_slice(&bytes);
            true
        }
        Err(reason) => {
            warn!(reason = %reason, "closing connection: a response could not be encoded");
            false
        }
    }
}

/// The output of `f` if it is ready without waiting.
fn ready_now<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Whether the next buffered frame is a Produce request (its api key is the first field
/// after the size).
fn next_is_produce(buf: &[u8]) -> bool {
    buf.len() >= 6 && i16::from_be_bytes([buf[4], buf[5]]) == ApiKey::Produce as i16
}

/// The size of the next frame, once its size prefix is buffered and it is one that will be
/// read (not negative, not over `max_request`).
fn next_frame_size(buf: &[u8], max_request: usize) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    usize::try_from(i32::from_be_bytes(prefix))
        .ok()
        .filter(|&size| size <= max_request)
}

/// Whether a whole frame is buffered, or its size is already known to be refused (so
/// reading on would only buffer a frame that will never be handled).
fn frame_complete(buf: &[u8], max_request: usize) -> bool {
    if buf.len() < 4 {
        return false;
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    size < 0 || size as usize > max_request || buf.len() - 4 >= size as usize
}

/// Binds a listener, with a message that names the address on failure.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    info!(addr = %l.local_addr()?, "listening");
    Ok(l)
}
