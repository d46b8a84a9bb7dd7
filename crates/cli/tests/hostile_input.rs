//! Bad input from the network gets Kafka's error or a closed connection, never a crash and
//! never a change to stored data; other clients keep being served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

fn connect(node: &Node) -> TcpStream {
    let s = TcpStream::connect(node.client_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// True if the server closed the connection (read returns EOF or reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn produce(s: &mut TcpStream, topic: &str, records: bytes::Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    s.write_all(&frame(ApiKey::Produce, 8, 11, &req))
        .expect("send");
    let mut body = read_response(s, 0);
    let resp = ProduceResponse::decode(&mut body, 8).expect("decode");
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_truncated_and_oversized_frames_close_only_their_connection() {
    let node = start(&["socket.request.max.bytes=1048576"]);
    create_topic(&node, "safe", 1, &[]).await;

    // An HTTP request: its first four bytes read as a huge size.
    let mut s = connect(&node);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    assert!(closed(&mut s));

    // Negative size.
    let mut s = connect(&node);
    s.write_all(&(-7i32).to_be_bytes()).expect("write");
    assert!(closed(&mut s));

    // Announced size over socket.request.max.bytes: refused before the body is read.
    let mut s = connect(&node);
    s.write_all(&(200 * 1024 * 1024i32).to_be_bytes())
        .expect("write");
    assert!(closed(&mut s));

    // Unknown API key.
    let mut s = connect(&node);
    s.write_all(&[0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 5, 0xff, 0xff])
        .expect("write");
    assert!(closed(&mut s));

    // A Metadata request whose body stops half way.
    let mut s = connect(&node);
    let mut f = frame(
        ApiKey::Metadata,
        9,
        3,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    f.truncate(f.len() - 2);
    let new_len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&new_len.to_be_bytes());
    s.write_all(&f).expect("write");
    assert!(closed(&mut s));

    // A truncated frame followed by a hang-up.
    let mut s = connect(&node);
    s.write_all(&[0, 0, 0, 100, 0, 18, 0, 0]).expect("write");
    drop(s);

    // Unsupported ApiVersions version: v0 body with UNSUPPORTED_VERSION and the API list.
    let mut s = connect(&node);
    s.write_all(&frame(ApiKey::ApiVersions, 3, 9, &ApiVersionsRequest::default())[..])
        .expect("write");
    let _ = read_response(&mut s, 0);
    // A future client would frame a v99 request with header v2, as for v3.
    let mut raw = frame(ApiKey::ApiVersions, 3, 10, &ApiVersionsRequest::default());
    raw[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&raw).expect("write");
    let mut body = read_response(&mut s, 0);
    let resp = ApiVersionsResponse::decode(&mut body, 0).expect("v0 body");
    assert_eq!(resp.error_code, 35);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16));

    // Everyone else is still served, and the data is intact.
    assert!(krust_testkit::api_versions_ok(node.client_addr()));
    assert_eq!(watermarks(&node, "safe", 0), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_and_oversized_batches_are_refused_and_nothing_is_stored() {
    let node = start(&["message.max.bytes=2000"]);
    create_topic(&node, "guarded", 1, &[]).await;
    let mut s = connect(&node);

    let good = batch(&["a", "b"]);
    assert_eq!(produce(&mut s, "guarded", good.clone().freeze()), 0);

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x55;
    assert_eq!(
        produce(&mut s, "guarded", bad_crc.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );

    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    assert_eq!(
        produce(&mut s, "guarded", truncated.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );

    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert_eq!(
        produce(&mut s, "guarded", bad_magic.freeze()),
        2,
        "CORRUPT_MESSAGE"
    );

    let big = "z".repeat(3000);
    assert_eq!(
        produce(&mut s, "guarded", batch(&[&big]).freeze()),
        10,
        "MESSAGE_TOO_LARGE"
    );

    assert_eq!(
        produce(&mut s, "no-such-topic", good.clone().freeze()),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    assert_eq!(
        watermarks(&node, "guarded", 0),
        (0, 2),
        "only the good batch was stored"
    );
}
