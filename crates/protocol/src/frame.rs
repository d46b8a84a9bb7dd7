//! Size-prefixed framing and request/response headers.
//!
//! A Kafka frame is an `int32` size followed by that many bytes. A request frame starts with
//! the request header: `int16 api_key, int16 api_version, int32 correlation_id,
//! nullable string client_id` and, from header v2 (flexible versions), a tagged-field
//! section. Response header v0 is just the correlation id; v1 adds tagged fields.
//! ApiVersions responses always use header v0, whatever the body version.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

/// Why a frame could not be taken or its header understood. Each one closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is negative")]
    NegativeSize { size: i32 },
    #[error("frame of {size} bytes is larger than socket.request.max.bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("request of {len} bytes is too short for a request header")]
    ShortHeader { len: usize },
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("malformed request header for API key {api_key} v{api_version}: {reason}")]
    BadHeader {
        api_key: i16,
        api_version: i16,
        reason: String,
    },
    #[error("could not encode response: {0}")]
    Encode(String),
}

/// Takes one whole frame (without its size prefix) off the front of `buf`, if it has arrived.
///
/// Checks the announced size before any of the body is buffered, so an oversized request is
/// refused without reading it.
pub fn take_frame(buf: &mut BytesMut, max_size: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    let size = size as usize;
    if size > max_size {
        return Err(FrameError::TooLarge {
            size,
            max: max_size,
        });
    }
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

/// What the dispatcher needs from a request header.
#[derive(Debug, Clone)]
pub struct RequestHeaderInfo {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// Reads the request header off the front of `frame`, leaving the body.
pub fn decode_request_header(frame: &mut Bytes) -> Result<RequestHeaderInfo, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::ShortHeader { len: frame.len() });
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    let header_version = api_key.request_header_version(api_version);
    let bad = |reason: &str| FrameError::BadHeader {
        api_key: raw_key,
        api_version,
        reason: reason.to_string(),
    };
    // Read here rather than by the message decoder, which would keep the header's tagged
    // fields (each a map entry of tens of bytes from three bytes on the wire) before the
    // request is admitted; the header defines none, so they are skipped.
    let mut at = 8;
    let mut client_id = None;
    if header_version >= 1 {
        let len = frame
            .get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("the client id is cut short"))?;
        at += 2;
        if len >= 0 {
            let bytes = frame
                .get(at..at + len as usize)
                .ok_or_else(|| bad("the client id is cut short"))?;
            let id = std::str::from_utf8(bytes).map_err(|_| bad("the client id is not UTF-8"))?;
            client_id = Some(id.to_string());
            at += len as usize;
        } else if len != -1 {
            return Err(bad("the client id has a negative length"));
        }
    }
    if header_version >= 2 {
        let uvarint = |at: &mut usize| -> Result<usize, FrameError> {
            let mut v: u64 = 0;
            for i in 0..5 {
                let b = *frame
                    .get(*at)
                    .ok_or_else(|| bad("the tagged fields are cut short"))?;
                *at += 1;
                v |= u64::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    return usize::try_from(v).map_err(|_| bad("a tagged field is too long"));
                }
            }
            Err(bad("a varint is longer than five bytes"))
        };
        let count = uvarint(&mut at)?;
        for _ in 0..count {
            uvarint(&mut at)?; // tag
            let size = uvarint(&mut at)?;
            at = at
                .checked_add(size)
                .filter(|&end| end <= frame.len())
                .ok_or_else(|| bad("a tagged field is cut short"))?;
        }
    }
    frame.advance(at);
    Ok(RequestHeaderInfo {
        api_key,
        api_version,
        correlation_id,
        client_id,
    })
}

/// Encodes a whole response frame (size prefix, header, body) into a new buffer.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::new();
    encode_response_with(&mut buf, correlation_id, version, body)?;
    Ok(buf.freeze())
}

/// Appends a whole response frame (size prefix, header, body) to `buf`.
pub fn encode_response_with<R: Encodable + HeaderVersion>(
    buf: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<(), FrameError> {
    let header_version = R::header_version(version);
    let body_size = body
        .compute_size(version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let header_size = if header_version >= 1 { 5 } else { 4 };
    let size = header_size + body_size;
    let size_i32 =
        i32::try_from(size).map_err(|_| FrameError::Encode(format!("response of {size} bytes")))?;
    buf.reserve(4 + size);
    let start = buf.len();
    buf.put_i32(size_i32);
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0); // no tagged fields
    }
    if let Err(e) = body.encode(buf, version) {
        buf.truncate(start);
        return Err(FrameError::Encode(e.to_string()));
    }
    debug_assert_eq!(
        buf.len() - start,
        4 + size,
        "compute_size disagrees with encode"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, MetadataResponse, RequestHeader,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};

    #[test]
    fn header_tagged_fields_are_skipped_and_bad_headers_refused() {
        // ApiVersions v3 (header v2): null client id, two unknown tagged fields, then a body.
        let mut f = vec![
            0, 18, 0, 3, 0, 0, 0, 9, 0xff, 0xff, 2, 5, 1, 0xaa, 6, 2, 0xbb, 0xcc,
        ];
        f.extend_from_slice(b"body");
        let mut frame = Bytes::from(f.clone());
        let h = decode_request_header(&mut frame).expect("header");
        assert_eq!((h.correlation_id, h.client_id), (9, None));
        assert_eq!(&frame[..], b"body");
        // Cut inside the tagged fields, a count beyond the bytes, a cut or non-UTF-8
        // client id, a negative length other than -1.
        let bad: [&[u8]; 5] = [
            &f[..15],
            &[0, 18, 0, 3, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0x7f],
            &[0, 18, 0, 3, 0, 0, 0, 9, 0, 5, b'a'],
            &[0, 18, 0, 3, 0, 0, 0, 9, 0, 1, 0xff, 0],
            &[0, 18, 0, 3, 0, 0, 0, 9, 0xff, 0xfe, 0],
        ];
        for b in bad {
            let mut frame = Bytes::copy_from_slice(b);
            assert!(
                matches!(
                    decode_request_header(&mut frame),
                    Err(FrameError::BadHeader { .. })
                ),
                "{b:?}"
            );
        }
    }

    fn request_frame(key: i16, version: i16, corr: i32, header_version: i16) -> BytesMut {
        let mut body = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        header.encode(&mut body, header_version).expect("encode");
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("x"))
            .with_client_software_version(StrBytes::from_static_str("1"))
            .encode(&mut body, version)
            .expect("encode");
        let mut framed = BytesMut::new();
        framed.put_i32(body.len() as i32);
        framed.extend_from_slice(&body);
        framed
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let full = request_frame(18, 3, 7, 2);
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            assert!(take_frame(&mut b, 1 << 20).expect("ok").is_none());
        }
        let mut b = full.clone();
        let mut frame = take_frame(&mut b, 1 << 20).expect("ok").expect("frame");
        assert!(b.is_empty());
        let h = decode_request_header(&mut frame).expect("header");
        assert_eq!(h.api_key, ApiKey::ApiVersions);
        assert_eq!(h.api_version, 3);
        assert_eq!(h.correlation_id, 7);
        assert_eq!(h.client_id.as_deref(), Some("t"));
        let req = ApiVersionsRequest::decode(&mut frame, 3).expect("body");
        assert_eq!(req.client_software_name.as_str(), "x");
    }

    #[test]
    fn oversized_and_negative_frames_are_refused() {
        let mut b = BytesMut::new();
        b.put_i32(1000);
        assert!(matches!(
            take_frame(&mut b, 999),
            Err(FrameError::TooLarge { .. })
        ));
        let mut b = BytesMut::new();
        b.put_i32(-5);
        assert!(matches!(
            take_frame(&mut b, 999),
            Err(FrameError::NegativeSize { .. })
        ));
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        let mut short = Bytes::from_static(&[0, 18, 0]);
        assert!(decode_request_header(&mut short).is_err());
        let mut unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 9]);
        assert!(matches!(
            decode_request_header(&mut unknown),
            Err(FrameError::UnknownApiKey {
                correlation_id: 9,
                ..
            })
        ));
        // client id length claims more bytes than exist
        let mut truncated = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 50, b'a']);
        assert!(decode_request_header(&mut truncated).is_err());
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        let out = encode_response(5, 3, &ApiVersionsResponse::default()).expect("encode");
        let size = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(size + 4, out.len());
        assert_eq!(&out[4..8], &5i32.to_be_bytes());
        // v3 body starts with error code, not a tagged-field byte.
        assert_eq!(&out[8..10], &0i16.to_be_bytes());
    }

    #[test]
    fn flexible_response_has_tagged_header() {
        let out = encode_response(1, 9, &MetadataResponse::default()).expect("encode");
        assert_eq!(out[8], 0, "empty tagged-field section in header v1");
    }
}
