//! Listeners and connections.
//!
//! Each connection reads whole frames into one buffer, handles requests one at a time in
//! arrival order (as Kafka does: a connection is muted while a request is in flight, so
//! responses leave in request order), and writes responses through an [`Outbound`] queue
//! that is flushed once no further request is already waiting (or once it holds 1 MiB). A framing error closes the connection after
//! logging why; it never affects other connections.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use krust_protocol::{take_frame, Listener};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::dispatch::{dispatch, Outcome};
use crate::outbound::Outbound;

/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Flush the write buffer once it holds this much even if more requests are queued.
const WRITE_BUFFER_FLUSH_BYTES: u64 = 1024 * 1024;

/// Accepts connections on `listener` until `shutdown` turns true.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    kind: Listener,
    name: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let broker = broker.clone();
                    let shutdown = shutdown.clone();
                    let name = name.clone();
                    tokio::spawn(async move {
                        connection(broker, stream, peer, kind, name, shutdown).await;
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

async fn connection(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    name: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_request = broker.config.socket_request_max_bytes as usize;
    let mut read_buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Outbound::default();
    debug!(%peer, ?kind, "connection opened");
    broker.metrics.connection_opened();
    'conn: loop {
        // Handle every whole frame already buffered before touching the socket again.
        loop {
            let frame = match take_frame(&mut read_buf, max_request) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: bad frame");
                    break 'conn;
                }
            };
            match dispatch(&broker, kind, &name, peer, frame, &mut out).await {
                Outcome::Continue => {}
                Outcome::Close(reason) => {
                    warn!(%peer, %reason, "closing connection");
                    let _ = out.write_to(&mut stream).await;
                    break 'conn;
                }
            }
            if out.len() >= WRITE_BUFFER_FLUSH_BYTES {
                if let Err(e) = out.write_to(&mut stream).await {
                    debug!(%peer, error = %e, "write failed");
                    break 'conn;
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = out.write_to(&mut stream).await {
                debug!(%peer, error = %e, "write failed");
                break;
            }
        }
        if read_buf.capacity() - read_buf.len() < READ_CHUNK / 4 {
            read_buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            n = stream.read_buf(&mut read_buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = shutdown.changed() => break,
        }
    }
    debug!(%peer, "connection closed");
    broker.metrics.connection_closed();
}

/// Binds a listener, with a message that names the address on failure.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    info!(addr = %l.local_addr()?, "listening");
    Ok(l)
}
