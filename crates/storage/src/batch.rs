//! Record batch (magic v2) header view.
//!
//! Layout (big-endian), offsets in bytes from the start of the batch:
//!
//! | off | field                |
//! |-----|----------------------|
//! | 0   | BaseOffset i64       |
//! | 8   | Length i32 (bytes after this field) |
//! | 12  | PartitionLeaderEpoch i32 (not covered by the CRC) |
//! | 16  | Magic i8 = 2         |
//! | 17  | CRC u32, CRC-32C over bytes 21..end |
//! | 21  | Attributes i16       |
//! | 23  | LastOffsetDelta i32  |
//! | 27  | BaseTimestamp i64    |
//! | 35  | MaxTimestamp i64     |
//! | 43  | ProducerId i64       |
//! | 51  | ProducerEpoch i16    |
//! | 53  | BaseSequence i32     |
//! | 57  | RecordsCount i32     |
//! | 61  | records...           |
//!
//! Nothing here decodes or decompresses records: [`RecordBatch`] borrows a whole batch,
//! [`BatchHeader`] is an owned copy of the 61 header bytes that can be patched (base offset,
//! leader epoch, LogAppendTime) before being written in front of the untouched record bytes.

use crate::error::{Result, StorageError};

/// Size of the v2 batch header, up to the first record.
pub const HEADER_LEN: usize = 61;
/// Size of the BaseOffset + Length prefix that the Length field does not count.
pub const LOG_OVERHEAD: usize = 12;
/// Smallest legal value of the Length field (`HEADER_LEN - LOG_OVERHEAD`).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// The only supported magic value.
pub const MAGIC_V2: i8 = 2;
/// Timestamp value meaning "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;

/// Byte offset of BaseOffset.
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Byte offset of Length.
pub const LENGTH_OFFSET: usize = 8;
/// Byte offset of PartitionLeaderEpoch.
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Byte offset of Magic.
pub const MAGIC_OFFSET: usize = 16;
/// Byte offset of CRC.
pub const CRC_OFFSET: usize = 17;
/// Byte offset of Attributes (the CRC covers everything from here on).
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Byte offset of LastOffsetDelta.
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Byte offset of BaseTimestamp.
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Byte offset of MaxTimestamp.
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Byte offset of ProducerId.
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Byte offset of ProducerEpoch.
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Byte offset of BaseSequence.
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Byte offset of RecordsCount.
pub const RECORDS_COUNT_OFFSET: usize = 57;

/// Attributes mask of the compression codec.
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attributes bit: timestamp type is LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attributes bit: transactional batch.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attributes bit: control batch.
pub const CONTROL_BIT: i16 = 0x20;
/// Attributes bit: BaseTimestamp holds the delete horizon (KIP-534).
pub const DELETE_HORIZON_BIT: i16 = 0x40;

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The codec for attribute bits `code` (0..=4), `None` for undefined codes.
    pub fn from_code(code: u8) -> Option<Compression> {
        Some(match code {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }
}

/// Timestamp type of a batch (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Timestamps were set by the producer.
    CreateTime,
    /// Timestamps were set by the broker on append.
    LogAppendTime,
}

#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Generates the header-field accessors shared by [`RecordBatch`] and [`BatchHeader`]; both keep
/// at least [`HEADER_LEN`] bytes in `self.hdr()`.
macro_rules! header_accessors {
    () => {
        /// BaseOffset: offset of the first record.
        pub fn base_offset(&self) -> i64 {
            be_i64(self.hdr(), BASE_OFFSET_OFFSET)
        }
        /// Length: bytes of the batch after the Length field.
        pub fn length(&self) -> i32 {
            be_i32(self.hdr(), LENGTH_OFFSET)
        }
        /// PartitionLeaderEpoch.
        pub fn partition_leader_epoch(&self) -> i32 {
            be_i32(self.hdr(), PARTITION_LEADER_EPOCH_OFFSET)
        }
        /// Magic byte.
        pub fn magic(&self) -> i8 {
            self.hdr()[MAGIC_OFFSET] as i8
        }
        /// The stored CRC.
        pub fn crc(&self) -> u32 {
            be_i32(self.hdr(), CRC_OFFSET) as u32
        }
        /// Raw attributes.
        pub fn attributes(&self) -> i16 {
            be_i16(self.hdr(), ATTRIBUTES_OFFSET)
        }
        /// Raw compression codec bits (0..=7).
        pub fn compression_code(&self) -> u8 {
            (self.attributes() & COMPRESSION_MASK) as u8
        }
        /// Compression codec, `None` if the bits hold an undefined codec.
        pub fn compression(&self) -> Option<Compression> {
            Compression::from_code(self.compression_code())
        }
        /// Timestamp type.
        pub fn timestamp_type(&self) -> TimestampType {
            if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            }
        }
        /// Whether the transactional bit is set.
        pub fn is_transactional(&self) -> bool {
            self.attributes() & TRANSACTIONAL_BIT != 0
        }
        /// Whether the control bit is set.
        pub fn is_control(&self) -> bool {
            self.attributes() & CONTROL_BIT != 0
        }
        /// LastOffsetDelta.
        pub fn last_offset_delta(&self) -> i32 {
            be_i32(self.hdr(), LAST_OFFSET_DELTA_OFFSET)
        }
        /// BaseTimestamp.
        pub fn base_timestamp(&self) -> i64 {
            be_i64(self.hdr(), BASE_TIMESTAMP_OFFSET)
        }
        /// The delete horizon a log cleaner marked the batch with (attribute bit 6; then
        /// BaseTimestamp holds it, KIP-534), if any.
        pub fn delete_horizon_ms(&self) -> Option<i64> {
            (self.attributes() & DELETE_HORIZON_BIT != 0).then(|| self.base_timestamp())
        }
        /// MaxTimestamp.
        pub fn max_timestamp(&self) -> i64 {
            be_i64(self.hdr(), MAX_TIMESTAMP_OFFSET)
        }
        /// ProducerId (-1 if none).
        pub fn producer_id(&self) -> i64 {
            be_i64(self.hdr(), PRODUCER_ID_OFFSET)
        }
        /// ProducerEpoch.
        pub fn producer_epoch(&self) -> i16 {
            be_i16(self.hdr(), PRODUCER_EPOCH_OFFSET)
        }
        /// BaseSequence.
        pub fn base_sequence(&self) -> i32 {
            be_i32(self.hdr(), BASE_SEQUENCE_OFFSET)
        }
        /// RecordsCount.
        pub fn records_count(&self) -> i32 {
            be_i32(self.hdr(), RECORDS_COUNT_OFFSET)
        }
        /// Offset of the last record (`base_offset + last_offset_delta`, saturating).
        pub fn last_offset(&self) -> i64 {
            self.base_offset()
                .saturating_add(i64::from(self.last_offset_delta()))
        }
        /// Offset after the last record.
        pub fn next_offset(&self) -> i64 {
            self.last_offset().saturating_add(1)
        }
        /// Total size of the batch in bytes, including the 12-byte prefix (0 if Length < 0).
        pub fn size(&self) -> usize {
            usize::try_from(self.length()).map_or(0, |l| l + LOG_OVERHEAD)
        }
    };
}

/// A borrowed, framing-checked v2 record batch: `data` is exactly one whole batch.
///
/// Construction ([`RecordBatch::parse`], [`batches`]) checks the magic byte, the Length field and
/// that the batch fits in the buffer; it does not check the CRC (see [`RecordBatch::verify_crc`]).
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    data: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    #[inline]
    fn hdr(&self) -> &[u8] {
        self.data
    }

    header_accessors!();

    /// Parses the batch at the start of `buf`; returns it and the bytes after it.
    ///
    /// Errors: [`StorageError::TruncatedBatch`] if `buf` is shorter than the batch (or than the
    /// 12-byte prefix), [`StorageError::InvalidMagic`], [`StorageError::InvalidBatchLength`].
    pub fn parse(buf: &'a [u8]) -> Result<(RecordBatch<'a>, &'a [u8])> {
        let size = frame_size(buf)?;
        let (data, rest) = buf.split_at(size);
        Ok((RecordBatch { data }, rest))
    }

    /// The whole batch, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// The bytes after the 61-byte header (the records, possibly compressed).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.data[HEADER_LEN..]
    }

    /// An owned copy of the header.
    pub fn header(&self) -> BatchHeader {
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&self.data[..HEADER_LEN]);
        BatchHeader { bytes }
    }

    /// CRC-32C over bytes 21..end, as it should be stored in the CRC field.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.data[ATTRIBUTES_OFFSET..])
    }

    /// Checks the stored CRC: one pass of CRC-32C over bytes 21..end.
    pub fn verify_crc(&self) -> Result<()> {
        let computed = self.compute_crc();
        let stored = self.crc();
        if computed != stored {
            return Err(StorageError::CrcMismatch { stored, computed });
        }
        Ok(())
    }
}

/// Checks the framing of the batch at the start of `buf` and returns its total size.
fn frame_size(buf: &[u8]) -> Result<usize> {
    if buf.len() < LOG_OVERHEAD {
        return Err(StorageError::TruncatedBatch {
            needed: LOG_OVERHEAD,
            available: buf.len(),
        });
    }
    if buf.len() > MAGIC_OFFSET {
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(StorageError::InvalidMagic { magic });
        }
    }
    let length = be_i32(buf, LENGTH_OFFSET);
    if length < MIN_BATCH_LENGTH {
        return Err(StorageError::InvalidBatchLength { length });
    }
    // length >= 49 > 0, so the conversion cannot fail on any platform with >= 32-bit usize.
    let size = usize::try_from(length)
        .map_err(|_| StorageError::InvalidBatchLength { length })?
        .saturating_add(LOG_OVERHEAD);
    if size > buf.len() {
        return Err(StorageError::TruncatedBatch {
            needed: size,
            available: buf.len(),
        });
    }
    Ok(size)
}

/// Iterator over the batches of a buffer of concatenated batches; see [`batches`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    rest: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Byte position (in the original buffer) of the next batch to be returned.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<RecordBatch<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match RecordBatch::parse(self.rest) {
            Ok((batch, rest)) => {
                self.rest = rest;
                self.position += batch.data.len();
                Some(Ok(batch))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterates over the concatenated batches in `buf`, checking framing only. A framing error is
/// yielded once and ends the iteration; trailing bytes that cannot hold a batch are an error.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        rest: buf,
        position: 0,
        failed: false,
    }
}

/// Validates one batch as sent by a producer, without decompressing anything.
///
/// Checks, in order: size <= `max_message_bytes` (whole batch, prefix included), CRC, the
/// compression codec is defined, RecordsCount > 0 and == LastOffsetDelta + 1, not a control
/// batch, and a producer id >= 0 comes with a base sequence >= 0.
pub fn validate_client_batch(batch: &RecordBatch<'_>, max_message_bytes: usize) -> Result<()> {
    let size = batch.size();
    if size > max_message_bytes {
        return Err(StorageError::MessageTooLarge {
            size,
            max: max_message_bytes,
        });
    }
    validate_coordinator_batch(batch)?;
    if batch.is_control() {
        return Err(StorageError::ControlBatchNotAllowed);
    }
    if batch.producer_id() >= 0 && batch.base_sequence() < 0 {
        return Err(StorageError::InvalidProducerSequence {
            producer_id: batch.producer_id(),
            base_sequence: batch.base_sequence(),
        });
    }
    Ok(())
}

/// Validates one batch written by a coordinator of this node on a producer's behalf: a
/// transaction's marker (a control batch) or a transaction's offset commits (which carry
/// the producer's id and epoch but no sequence). Checks the CRC, the codec and the record
/// count, as for a producer's batch (whose further checks follow these).
pub fn validate_coordinator_batch(batch: &RecordBatch<'_>) -> Result<()> {
    batch.verify_crc()?;
    if batch.compression().is_none() {
        return Err(StorageError::InvalidCompression {
            codec: batch.compression_code(),
        });
    }
    let records_count = batch.records_count();
    let last_offset_delta = batch.last_offset_delta();
    if records_count <= 0 || i64::from(last_offset_delta) + 1 != i64::from(records_count) {
        return Err(StorageError::InvalidRecordCount {
            records_count,
            last_offset_delta,
        });
    }
    Ok(())
}

/// Control record type of a transaction's abort marker.
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// Control record type of a transaction's commit marker.
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// A transaction marker: what a control batch's one record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// Commit (true) or abort.
    pub commit: bool,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// The transaction marker `batch` holds, if it is one: a transactional control batch whose
/// first record's key is (version, type ABORT or COMMIT) and whose value is (version,
/// coordinator epoch). Other control batches (the metadata log's) and unreadable ones are
/// `None`. Markers are never compressed.
pub fn txn_marker(batch: &RecordBatch<'_>) -> Option<TxnMarker> {
    if !batch.is_control() || !batch.is_transactional() || batch.compression_code() != 0 {
        return None;
    }
    let mut r = batch.records_bytes();
    let _len = read_varint(&mut r)?;
    let _attributes = take(&mut r, 1)?;
    let _timestamp_delta = read_varint(&mut r)?;
    let _offset_delta = read_varint(&mut r)?;
    let key_len = usize::try_from(read_varint(&mut r)?).ok()?;
    let key = take(&mut r, key_len)?;
    if key.len() < 4 {
        return None;
    }
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let commit = match kind {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        _ => return None,
    };
    let value_len = usize::try_from(read_varint(&mut r)?).ok()?;
    let value = take(&mut r, value_len)?;
    let coordinator_epoch = if value.len() >= 6 {
        i32::from_be_bytes([value[2], value[3], value[4], value[5]])
    } else {
        -1
    };
    Some(TxnMarker {
        commit,
        coordinator_epoch,
    })
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (a, b) = r.split_at(n);
    *r = b;
    Some(a)
}

/// A zig-zag varint of at most 10 bytes.
fn read_varint(r: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = *take(r, 1)?.first()?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// An owned copy of a batch's 61-byte header, patchable before it is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    bytes: [u8; HEADER_LEN],
}

impl BatchHeader {
    #[inline]
    fn hdr(&self) -> &[u8] {
        &self.bytes
    }

    header_accessors!();

    /// Copies the first 61 bytes of `buf`. Checks only the length, not the content.
    pub fn from_slice(buf: &[u8]) -> Result<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return Err(StorageError::TruncatedBatch {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let mut bytes = [0u8; HEADER_LEN];
        bytes.copy_from_slice(&buf[..HEADER_LEN]);
        Ok(BatchHeader { bytes })
    }

    /// Wraps 61 header bytes.
    pub fn from_bytes(bytes: [u8; HEADER_LEN]) -> BatchHeader {
        BatchHeader { bytes }
    }

    /// The header bytes.
    pub fn as_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.bytes
    }

    /// Sets BaseOffset (not covered by the CRC).
    pub fn set_base_offset(&mut self, base_offset: i64) {
        self.bytes[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8]
            .copy_from_slice(&base_offset.to_be_bytes());
    }

    /// Sets PartitionLeaderEpoch (not covered by the CRC).
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.bytes[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
            .copy_from_slice(&epoch.to_be_bytes());
    }

    /// Sets BaseOffset and PartitionLeaderEpoch, the two fields a leader rewrites; the CRC stays
    /// valid.
    pub fn patch_offset_and_epoch(&mut self, base_offset: i64, partition_leader_epoch: i32) {
        self.set_base_offset(base_offset);
        self.set_partition_leader_epoch(partition_leader_epoch);
    }

    /// Stores `crc` in the CRC field.
    pub fn set_crc(&mut self, crc: u32) {
        self.bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Marks the batch as LogAppendTime with MaxTimestamp `timestamp` and recomputes the CRC
    /// over the patched header and `records` (the bytes after the header). The CRC continues
    /// from the header's into the records (no CRC combination, which costs more than a pass
    /// over a batch).
    pub fn set_log_append_time(&mut self, timestamp: i64, records: &[u8]) {
        let attrs = self.attributes() | TIMESTAMP_TYPE_BIT;
        self.bytes[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        self.bytes[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&timestamp.to_be_bytes());
        let head = crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..]);
        self.set_crc(crc32c::crc32c_append(head, records));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{simple_batch, BatchBuilder};

    #[test]
    fn parse_and_accessors() {
        let b = BatchBuilder::new(10)
            .partition_leader_epoch(3)
            .producer(7, 1, 5)
            .record(Some(b"k"), Some(b"v"), 1000)
            .record(None, Some(b"vv"), 1005)
            .build();
        let (batch, rest) = RecordBatch::parse(&b).expect("parse");
        assert!(rest.is_empty());
        assert_eq!(batch.base_offset(), 10);
        assert_eq!(batch.size(), b.len());
        assert_eq!(batch.partition_leader_epoch(), 3);
        assert_eq!(batch.magic(), 2);
        assert_eq!(batch.last_offset_delta(), 1);
        assert_eq!(batch.records_count(), 2);
        assert_eq!(batch.base_timestamp(), 1000);
        assert_eq!(batch.max_timestamp(), 1005);
        assert_eq!(batch.producer_id(), 7);
        assert_eq!(batch.producer_epoch(), 1);
        assert_eq!(batch.base_sequence(), 5);
        assert_eq!(batch.last_offset(), 11);
        assert_eq!(batch.compression(), Some(Compression::None));
        assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
        assert!(!batch.is_control() && !batch.is_transactional());
        assert_eq!(batch.compute_crc(), batch.crc());
        batch.verify_crc().expect("crc");
        assert_eq!(batch.header().base_offset(), 10);
    }

    #[test]
    fn iterate_and_framing_errors() {
        let mut buf = simple_batch(0, 2, 5).to_vec();
        buf.extend_from_slice(&simple_batch(2, 3, 5));
        let all: Vec<_> = batches(&buf).collect::<Result<_>>().expect("ok");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].base_offset(), 2);

        let mut trailing = buf.clone();
        trailing.extend_from_slice(&[0u8; 5]);
        let r: Result<Vec<_>> = batches(&trailing).collect();
        assert!(matches!(r, Err(StorageError::TruncatedBatch { .. })));

        let cut = &buf[..buf.len() - 1];
        let r: Result<Vec<_>> = batches(cut).collect();
        assert!(matches!(r, Err(StorageError::TruncatedBatch { .. })));

        let mut bad_magic = buf.clone();
        bad_magic[MAGIC_OFFSET] = 1;
        assert!(matches!(
            RecordBatch::parse(&bad_magic),
            Err(StorageError::InvalidMagic { magic: 1 })
        ));

        let mut bad_len = buf.clone();
        bad_len[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&48i32.to_be_bytes());
        assert!(matches!(
            RecordBatch::parse(&bad_len),
            Err(StorageError::InvalidBatchLength { length: 48 })
        ));
    }

    #[test]
    fn patch_keeps_crc_and_log_append_time_recomputes_it() {
        let b = simple_batch(0, 3, 100);
        let (batch, _) = RecordBatch::parse(&b).expect("parse");
        batch.verify_crc().expect("crc");
        let mut h = batch.header();
        h.patch_offset_and_epoch(42, 9);
        let mut patched = h.as_bytes().to_vec();
        patched.extend_from_slice(batch.records_bytes());
        let (p, _) = RecordBatch::parse(&patched).expect("parse");
        assert_eq!(p.base_offset(), 42);
        assert_eq!(p.partition_leader_epoch(), 9);
        p.verify_crc().expect("crc still valid");

        h.set_log_append_time(777, batch.records_bytes());
        let mut lat = h.as_bytes().to_vec();
        lat.extend_from_slice(batch.records_bytes());
        let (l, _) = RecordBatch::parse(&lat).expect("parse");
        assert_eq!(l.max_timestamp(), 777);
        assert_eq!(l.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(l.compute_crc(), l.crc());
        l.verify_crc().expect("valid crc");
    }

    #[test]
    fn client_validation() {
        let good = simple_batch(0, 2, 1);
        let (b, _) = RecordBatch::parse(&good).expect("parse");
        validate_client_batch(&b, 1 << 20).expect("valid");
        assert!(matches!(
            validate_client_batch(&b, good.len() - 1),
            Err(StorageError::MessageTooLarge { .. })
        ));
        validate_client_batch(&b, good.len()).expect("exact size fits");
    }
}
