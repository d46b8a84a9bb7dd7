//! The Kafka wire protocol as krust speaks it.
//!
//! This crate is the only place that knows how bytes on a Kafka socket are laid out:
//! size-prefixed frames, request and response headers (flexible and not), the table of
//! API versions krust serves, and Kafka's error codes. Message bodies are encoded and
//! decoded by the `kafka-protocol` crate; this crate wraps it so the rest of krust never
//! reasons about header versions.
//!
//! It does no I/O: callers hand it buffers. It never panics on input from the network:
//! every malformed frame is a [`FrameError`].

pub mod batch_layout;
pub mod error;
pub mod fetch;
pub mod frame;
pub mod produce_scan;
pub mod record_keys;
pub mod record_times;
pub mod records;
pub mod sasl;
pub mod versions;

pub use error::ErrorCode;
pub use fetch::encode_fetch_response_split;
pub use frame::{
    decode_request_header, encode_response, encode_response_with, take_frame, FrameError,
    RequestHeaderInfo,
};
pub use kafka_protocol;
pub use produce_scan::produce_entries;
pub use versions::{ApiRange, Listener, SUPPORTED_APIS};
