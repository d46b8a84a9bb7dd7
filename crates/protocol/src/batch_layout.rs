//! Where a v2 record batch keeps its header fields (byte offsets from the batch's start),
//! and its attribute bits: for the code here that reads or patches batches without the
//! `kafka-protocol` codec.

/// BaseOffset (i64), Length (i32) and PartitionLeaderEpoch (i32) come first.
pub const LENGTH_AT: usize = 8;
pub const MAGIC_AT: usize = 16;
/// CRC-32C (u32) of everything from the attributes on.
pub const CRC_AT: usize = 17;
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub const BASE_TIMESTAMP_AT: usize = 27;
pub const MAX_TIMESTAMP_AT: usize = 35;
pub const PRODUCER_ID_AT: usize = 43;
pub const PRODUCER_EPOCH_AT: usize = 51;
pub const BASE_SEQUENCE_AT: usize = 53;
pub const COUNT_AT: usize = 57;
/// The header, up to the first record.
pub const HEADER_LEN: usize = 61;

/// Attribute bits 0-2 (in the attributes' low byte): the compression codec.
pub const CODEC_MASK: u8 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime.
pub const LOG_APPEND_TIME_BIT: u8 = 0x08;
/// Attribute bit 6: BaseTimestamp holds the batch's delete horizon (KIP-534).
pub const DELETE_HORIZON_BIT: u8 = 0x40;
