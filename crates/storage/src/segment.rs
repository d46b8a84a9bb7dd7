//! Segment file naming and sequential scanning of segment files (recovery and index rebuilds).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{
    BatchHeader, RecordBatch, HEADER_LEN, LENGTH_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2,
    MIN_BATCH_LENGTH,
};
use crate::index::IndexBuilder;

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// The file name of a segment file: base offset zero-padded to 20 digits plus `suffix`.
pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Path of a segment file in `dir`.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(segment_file_name(base_offset, suffix))
}

/// Parses `<20 digits><suffix>` into the base offset.
pub(crate) fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What is at a position of a segment file.
pub(crate) enum HeaderAt {
    /// The position is the end of the valid data.
    End,
    /// A batch whose framing (magic, length, fits in the file) is fine.
    Batch(BatchHeader),
    /// Not a valid batch: the reason.
    Bad(String),
}

/// Buffered positional reader over a segment file, for walking batch headers.
pub(crate) struct FileScanner<'a> {
    file: &'a File,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
}

impl<'a> FileScanner<'a> {
    /// Scans `file` up to byte `end`, reading `chunk` bytes at a time.
    pub fn new(file: &'a File, end: u64, chunk: usize) -> Self {
        FileScanner {
            file,
            end,
            buf: Vec::new(),
            buf_start: 0,
            chunk,
        }
    }

    /// Bytes `[pos, pos + len)`; the caller guarantees `pos + len <= end`.
    pub fn bytes_at(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || pos + len as u64 > buf_end {
            let remaining = usize::try_from(self.end.saturating_sub(pos)).unwrap_or(usize::MAX);
            let want = len.max(self.chunk).min(remaining);
            if want < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the segment",
                ));
            }
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(&self.buf[at..at + len])
    }

    /// The batch header at `pos`, with framing checked against the end of the data.
    pub fn header_at(&mut self, pos: u64) -> io::Result<HeaderAt> {
        if pos >= self.end {
            return Ok(HeaderAt::End);
        }
        let avail = self.end - pos;
        if avail < HEADER_LEN as u64 {
            return Ok(HeaderAt::Bad(format!(
                "partial batch header: {avail} bytes left"
            )));
        }
        let b = self.bytes_at(pos, HEADER_LEN)?;
        let magic = b[MAGIC_OFFSET] as i8;
        let length = i32::from_be_bytes([
            b[LENGTH_OFFSET],
            b[LENGTH_OFFSET + 1],
            b[LENGTH_OFFSET + 2],
            b[LENGTH_OFFSET + 3],
        ]);
        if magic != MAGIC_V2 {
            return Ok(HeaderAt::Bad(format!("bad magic {magic}")));
        }
        if length < MIN_BATCH_LENGTH {
            return Ok(HeaderAt::Bad(format!("bad batch length {length}")));
        }
        let size = length as u64 + LOG_OVERHEAD as u64;
        if size > avail {
            return Ok(HeaderAt::Bad(format!(
                "batch of {size} bytes extends past the end ({avail} bytes left)"
            )));
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(b);
        Ok(HeaderAt::Batch(BatchHeader::from_bytes(h)))
    }
}

/// Outcome of scanning a segment.
#[derive(Debug, Default)]
pub(crate) struct ScanResult {
    /// End of the last valid batch.
    pub valid_end: u64,
    /// Offset after the last valid batch, `None` if no batch was found.
    pub next_offset: Option<i64>,
    /// Position and reason of the first invalid batch, if any.
    pub error: Option<(u64, String)>,
    /// `(partition leader epoch, base offset)` each time the epoch changed (recovery only).
    pub epochs: Vec<(i32, i64)>,
}

/// Walks the batches of `file` from `start` to `end`, feeding `builder`. With `verify`, each
/// batch's CRC is checked too (whole batches are read). Stops at the first bad batch: bad
/// framing, CRC mismatch, offsets not increasing (below `min_offset` for the first), offsets that
/// do not fit the segment's 32-bit relative offsets.
pub(crate) fn scan(
    file: &File,
    start: u64,
    end: u64,
    builder: &mut IndexBuilder,
    verify: bool,
    min_offset: i64,
) -> io::Result<ScanResult> {
    let chunk = if verify { 1 << 20 } else { 64 << 10 };
    let mut sc = FileScanner::new(file, end, chunk);
    let mut res = ScanResult {
        valid_end: start,
        ..ScanResult::default()
    };
    let mut pos = start;
    let mut expected_min = min_offset;
    let mut last_epoch: Option<i32> = None;
    loop {
        let h = match sc.header_at(pos)? {
            HeaderAt::End => break,
            HeaderAt::Bad(reason) => {
                res.error = Some((pos, reason));
                break;
            }
            HeaderAt::Batch(h) => h,
        };
        let base = h.base_offset();
        let delta = h.last_offset_delta();
        let problem = if delta < 0 {
            Some(format!("negative last offset delta {delta}"))
        } else if base < expected_min {
            Some(format!(
                "offset {base} is below the expected {expected_min}"
            ))
        } else if base.checked_add(i64::from(delta)).is_none()
            || base - builder.base_offset + i64::from(delta) > i64::from(i32::MAX)
        {
            Some(format!("offsets of batch at {base} overflow the segment"))
        } else {
            None
        };
        if let Some(reason) = problem {
            res.error = Some((pos, reason));
            break;
        }
        let size = h.size();
        if verify {
            let bytes = sc.bytes_at(pos, size)?;
            let ok = RecordBatch::parse(bytes).and_then(|(b, _)| b.verify_crc());
            if let Err(e) = ok {
                res.error = Some((pos, e.to_string()));
                break;
            }
        }
        let last = base + i64::from(delta);
        builder.on_batch(pos, base, last, h.max_timestamp(), size as u64);
        let ple = h.partition_leader_epoch();
        if verify && ple >= 0 && last_epoch != Some(ple) {
            res.epochs.push((ple, base));
            last_epoch = Some(ple);
        }
        expected_min = last + 1;
        res.next_offset = Some(last + 1);
        pos += size as u64;
        res.valid_end = pos;
    }
    Ok(res)
}
