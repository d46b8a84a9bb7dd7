//! A connection's pending response bytes: encoded responses in a buffer, and record sets
//! that go straight from segment files to the socket (sendfile), in order.
//!
//! Most responses are encoded into [`Outbound::buf`]. A Fetch response is encoded without
//! its record sets, which are queued as chunks of their own ([`Outbound::push_at`]): the
//! encoded bytes before each are sealed into a chunk first, so bytes leave in frame order.
//! Runs of in-memory chunks go out in one vectored write; file ranges by sendfile. Over
//! TLS, file ranges are read into memory and encrypted (sendfile cannot encrypt).

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Bytes, BytesMut};
use krust_storage::FileSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// A connection's transport: TCP, or TLS over it.
pub enum ConnStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ConnStream {
    pub async fn read_buf<B: bytes::BufMut + ?Sized>(&mut self, buf: &mut B) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        match self {
            ConnStream::Plain(s) => s.read_buf(buf).await,
            ConnStream::Tls(s) => s.read_buf(buf).await,
        }
    }
}

/// File bytes read at a time to go out over TLS.
const COPY_PIECE: u64 = 256 * 1024;
/// Largest single sendfile call (Linux caps one call a little below 2 GiB).
const SENDFILE_MAX: u64 = 1 << 30;
/// At most this many buffers per vectored write (Linux's IOV_MAX is 1024).
const IOV_MAX: usize = 64;

/// Bytes to send: in memory, or a range of a segment file.
pub enum Chunk {
    Bytes(Bytes),
    File(FileSlice),
}

impl Chunk {
    fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File(s) => s.len,
        }
    }
}

/// Response bytes waiting to be written to one connection.
#[derive(Default)]
pub struct Outbound {
    /// Where responses are encoded; written after every queued chunk.
    pub buf: BytesMut,
    /// Set by a request over its client's quota: the connection reads nothing more for
    /// this long (KIP-219).
    pub throttle: Option<std::time::Duration>,
    chunks: VecDeque<Chunk>,
    chunk_bytes: u64,
}

impl Outbound {
    /// Bytes waiting, encoded or in files.
    pub fn len(&self) -> u64 {
        self.chunk_bytes + self.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `chunks` to go after `buf[..at]` (which is sealed into a chunk first) and
    /// before the rest of `buf`.
    pub fn push_at(&mut self, at: usize, chunks: impl IntoIterator<Item = Chunk>) {
        if at > 0 {
            let b = self.buf.split_to(at).freeze();
            self.chunk_bytes += b.len() as u64;
            self.chunks.push_back(Chunk::Bytes(b));
        }
        for c in chunks {
            if c.len() > 0 {
                self.chunk_bytes += c.len();
                self.chunks.push_back(c);
            }
        }
    }

    /// Writes everything queued to a connection, in order.
    pub async fn write_to(&mut self, stream: &mut ConnStream) -> io::Result<()> {
        match stream {
            ConnStream::Plain(s) => self.write_plain(s).await,
            ConnStream::Tls(s) => self.write_copied(s.as_mut()).await,
        }
    }

    /// Writes everything through `w`, file ranges read into memory first. Bytes are
    /// gathered into writes of up to [`COPY_PIECE`], so that small pieces (a fetch's
    /// per-partition headers) do not each become a TLS record of their own.
    async fn write_copied<W: tokio::io::AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
    ) -> io::Result<()> {
        let piece = COPY_PIECE as usize;
        let mut staged: Vec<u8> = Vec::with_capacity(piece.min(self.len() as usize));
        while let Some(chunk) = self.chunks.pop_front() {
            self.chunk_bytes -= chunk.len();
            match chunk {
                Chunk::Bytes(b) => {
                    staged.extend_from_slice(&b);
                    if staged.len() >= piece {
                        w.write_all(&staged).await?;
                        staged.clear();
                    }
                }
                Chunk::File(s) => {
                    let mut offset = s.position;
                    let end = s.position + s.len;
                    while offset < end {
                        let at = staged.len();
                        let want = ((end - offset) as usize).min(piece.saturating_sub(at).max(1));
                        staged.resize(at + want, 0);
                        let n = std::os::unix::fs::FileExt::read_at(
                            &*s.file,
                            &mut staged[at..],
                            offset,
                        )?;
                        staged.truncate(at + n);
                        if n == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "segment shrank while its records were being sent",
                            ));
                        }
                        offset += n as u64;
                        if staged.len() >= piece {
                            w.write_all(&staged).await?;
                            staged.clear();
                        }
                    }
                }
            }
        }
        staged.extend_from_slice(&self.buf);
        self.buf.clear();
        if !staged.is_empty() {
            w.write_all(&staged).await?;
        }
        w.flush().await
    }

    /// Writes everything queued to a plain TCP connection, in order.
    async fn write_plain(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        loop {
            match self.chunks.front() {
                None => break,
                Some(Chunk::File(_)) => {
                    if let Some(Chunk::File(s)) = self.chunks.pop_front() {
                        self.chunk_bytes -= s.len;
                        send_file(stream, &s).await?;
                    }
                }
                Some(Chunk::Bytes(_)) => {
                    // This run of in-memory chunks (and `buf`, if nothing else follows).
                    let mut run: Vec<Bytes> = Vec::new();
                    while run.len() < IOV_MAX {
                        match self.chunks.front() {
                            Some(Chunk::Bytes(_)) => {
                                if let Some(Chunk::Bytes(b)) = self.chunks.pop_front() {
                                    self.chunk_bytes -= b.len() as u64;
                                    run.push(b);
                                }
                            }
                            _ => break,
                        }
                    }
                    let with_buf = self.chunks.is_empty() && !self.buf.is_empty();
                    let mut slices: Vec<IoSlice<'_>> =
                        run.iter().map(|b| IoSlice::new(b)).collect();
                    if with_buf {
                        slices.push(IoSlice::new(&self.buf));
                    }
                    write_all_vectored(stream, &mut slices).await?;
                    if with_buf {
                        self.buf.clear();
                    }
                }
            }
        }
        if !self.buf.is_empty() {
            stream.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }
}

async fn write_all_vectored(
    stream: &mut TcpStream,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = stream.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Sends a file range with sendfile: page cache to socket, no copy through this process.
async fn send_file(stream: &TcpStream, slice: &FileSlice) -> io::Result<()> {
    let mut offset = slice.position;
    let end = slice.position + slice.len;
    while offset < end {
        stream.writable().await?;
        let want = (end - offset).min(SENDFILE_MAX) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &*slice.file, Some(&mut offset), want)
                .map_err(io::Error::from)
        });
        match sent {
            // The segment was truncated after the fetch read it: the frame cannot be
            // completed, so the connection must close (the client retries).
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shrank while its records were being sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
