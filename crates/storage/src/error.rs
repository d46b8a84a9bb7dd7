//! The storage error type.
//!
//! Every way a caller's input can be rejected has its own variant so the server can map it to the
//! right Kafka error code ([`StorageError::kafka_error_code`] gives the usual mapping).

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Kafka error code numbers used by [`StorageError::kafka_error_code`].
pub mod codes {
    /// UNKNOWN_SERVER_ERROR
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    /// OFFSET_OUT_OF_RANGE
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// CORRUPT_MESSAGE
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// MESSAGE_TOO_LARGE
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    /// RECORD_LIST_TOO_LARGE
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    /// INVALID_TOPIC_EXCEPTION
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// NOT_LEADER_OR_FOLLOWER
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    /// KAFKA_STORAGE_ERROR
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// INVALID_RECORD
    pub const INVALID_RECORD: i16 = 87;
    /// INVALID_TIMESTAMP
    pub const INVALID_TIMESTAMP: i16 = 32;
}

/// Errors returned by the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The batch's magic byte is not 2 (CORRUPT_MESSAGE).
    #[error("unsupported record batch magic {magic} (only v2 is accepted)")]
    InvalidMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// The batch's Length field is below the v2 minimum of 49 (CORRUPT_MESSAGE).
    #[error("record batch length {length} is below the minimum of 49")]
    InvalidBatchLength {
        /// The Length field found.
        length: i32,
    },
    /// The buffer ends inside a batch, or has trailing bytes too short to be a batch
    /// (CORRUPT_MESSAGE).
    #[error("truncated record batch: needs {needed} bytes, {available} available")]
    TruncatedBatch {
        /// Bytes the batch claims to need (from its position).
        needed: usize,
        /// Bytes left in the buffer (from its position).
        available: usize,
    },
    /// The stored CRC does not match the CRC-32C of the batch (CORRUPT_MESSAGE).
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC computed over bytes 21..end.
        computed: u32,
    },
    /// The compression codec bits hold a value Kafka does not define (CORRUPT_MESSAGE).
    #[error("unknown compression codec {codec}")]
    InvalidCompression {
        /// The codec bits (attributes & 7).
        codec: u8,
    },
    /// RecordsCount is not positive or does not equal LastOffsetDelta + 1 (INVALID_RECORD).
    #[error("invalid record count {records_count} with last offset delta {last_offset_delta}")]
    InvalidRecordCount {
        /// RecordsCount field.
        records_count: i32,
        /// LastOffsetDelta field.
        last_offset_delta: i32,
    },
    /// A client tried to produce a control batch (INVALID_RECORD).
    #[error("clients may not produce control batches")]
    ControlBatchNotAllowed,
    /// A batch with a producer id has a negative base sequence (INVALID_RECORD).
    #[error("producer id {producer_id} with invalid base sequence {base_sequence}")]
    InvalidProducerSequence {
        /// ProducerId field.
        producer_id: i64,
        /// BaseSequence field.
        base_sequence: i32,
    },
    /// A batch (including its 12-byte offset+length prefix) exceeds max.message.bytes
    /// (MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// Size of the batch in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The appended batches together exceed the segment size (RECORD_LIST_TOO_LARGE).
    #[error("append of {size} bytes exceeds the segment size of {segment_bytes}")]
    RecordListTooLarge {
        /// Size of the append in bytes.
        size: usize,
        /// The configured segment size.
        segment_bytes: u64,
    },
    /// A replicated append's offsets are below the log end or not increasing.
    #[error("batch base offset {base_offset} is below the expected minimum {expected_min}")]
    UnexpectedAppendOffset {
        /// Base offset of the offending batch.
        base_offset: i64,
        /// Smallest acceptable base offset.
        expected_min: i64,
    },
    /// A batch's offsets overflow i64 or a segment's 32-bit relative offsets.
    #[error(
        "record batch offsets overflow: base {base_offset}, last offset delta {last_offset_delta}"
    )]
    OffsetOverflow {
        /// Base offset of the batch.
        base_offset: i64,
        /// LastOffsetDelta of the batch.
        last_offset_delta: i32,
    },
    /// The requested offset is outside `[log_start_offset, log_end_offset]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Current log start offset.
        log_start_offset: i64,
        /// Current log end offset.
        log_end_offset: i64,
    },
    /// Data on disk is not a valid log (KAFKA_STORAGE_ERROR).
    #[error("corrupt log {path} at position {position}: {reason}")]
    CorruptLog {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the problem.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint file cannot be parsed (KAFKA_STORAGE_ERROR).
    #[error("corrupt checkpoint file {path} at line {line}: {reason}")]
    CorruptCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A topic name or partition number that cannot name a partition directory
    /// (INVALID_TOPIC_EXCEPTION).
    #[error("invalid topic partition: {0}")]
    InvalidTopicPartition(String),
    /// A caller passed an argument that makes no sense (e.g. a negative offset).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A CreateTime timestamp outside what `message.timestamp.before.max.ms` and
    /// `message.timestamp.after.max.ms` allow around now (INVALID_TIMESTAMP).
    #[error(
        "Timestamp {timestamp} of a record is out of range. The timestamp should be within \
         [{earliest}, {latest}]"
    )]
    InvalidTimestamp {
        /// The offending timestamp.
        timestamp: i64,
        /// The earliest allowed.
        earliest: i64,
        /// The latest allowed.
        latest: i64,
    },
    /// The log was deleted or closed; it accepts no more operations.
    #[error("log {0} has been deleted or closed")]
    LogClosed(PathBuf),
    /// An I/O error (KAFKA_STORAGE_ERROR).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl StorageError {
    /// The Kafka error code a broker would normally answer with for this error.
    pub fn kafka_error_code(&self) -> i16 {
        use StorageError::*;
        match self {
            InvalidMagic { .. }
            | InvalidBatchLength { .. }
            | TruncatedBatch { .. }
            | CrcMismatch { .. }
            | InvalidCompression { .. } => codes::CORRUPT_MESSAGE,
            InvalidRecordCount { .. }
            | ControlBatchNotAllowed
            | InvalidProducerSequence { .. }
            | UnexpectedAppendOffset { .. }
            | OffsetOverflow { .. } => codes::INVALID_RECORD,
            MessageTooLarge { .. } => codes::MESSAGE_TOO_LARGE,
            RecordListTooLarge { .. } => codes::RECORD_LIST_TOO_LARGE,
            OffsetOutOfRange { .. } => codes::OFFSET_OUT_OF_RANGE,
            CorruptLog { .. } | CorruptCheckpoint { .. } | Io(_) => codes::KAFKA_STORAGE_ERROR,
            InvalidTopicPartition(_) => codes::INVALID_TOPIC_EXCEPTION,
            LogClosed(_) => codes::NOT_LEADER_OR_FOLLOWER,
            InvalidArgument(_) => codes::UNKNOWN_SERVER_ERROR,
            InvalidTimestamp { .. } => codes::INVALID_TIMESTAMP,
        }
    }
}
