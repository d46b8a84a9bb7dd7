//! A connection's pending response bytes: encoded responses in a buffer, and record sets
//! that go straight from segment files to the socket (sendfile), in order.
//!
//! Most responses are encoded into [`Outbound::buf`]. A Fetch response carries ranges of
//! segment files instead of copies of them ([`Outbound::push_files_at`]): the encoded bytes
//! before each range are sealed into a chunk first, so bytes leave in frame order.

use std::collections::VecDeque;
use std::io;

use bytes::{Bytes, BytesMut};
use krust_storage::FileSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Largest single sendfile call (Linux caps one call a little below 2 GiB).
const SENDFILE_MAX: u64 = 1 << 30;

enum Chunk {
    Bytes(Bytes),
    File(FileSlice),
}

/// Response bytes waiting to be written to one connection.
#[derive(Default)]
pub struct Outbound {
    /// Where responses are encoded; written after every queued chunk.
    pub buf: BytesMut,
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

    /// Seals `buf[..at]` into a chunk.
    fn seal(&mut self, at: usize) {
        if at > 0 {
            let b = self.buf.split_to(at).freeze();
            self.chunk_bytes += b.len() as u64;
            self.chunks.push_back(Chunk::Bytes(b));
        }
    }

    /// Queues file ranges to go after `buf[..at]` (which is sealed first) and before the
    /// rest of `buf`.
    pub fn push_files_at(&mut self, at: usize, slices: impl IntoIterator<Item = FileSlice>) {
        self.seal(at);
        for s in slices {
            self.chunk_bytes += s.len;
            self.chunks.push_back(Chunk::File(s));
        }
    }

    /// Writes everything queued, in order.
    pub async fn write_to(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        while let Some(chunk) = self.chunks.pop_front() {
            match chunk {
                Chunk::Bytes(b) => {
                    self.chunk_bytes -= b.len() as u64;
                    stream.write_all(&b).await?;
                }
                Chunk::File(s) => {
                    self.chunk_bytes -= s.len;
                    send_file(stream, &s).await?;
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
