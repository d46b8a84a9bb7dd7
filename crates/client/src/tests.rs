//! Framing against an in-process fake broker that answers canned responses.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeClusterRequest, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable, Message, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the fake broker does with one request: the raw response frame (without the size
/// prefix), or `None` to stay silent.
type Handler = Arc<dyn Fn(&RequestHeader, Bytes) -> Option<Vec<u8>> + Send + Sync>;

/// Headers of every request the fake broker received.
type Seen = Arc<Mutex<Vec<RequestHeader>>>;

/// The next request on `sock`: its header and body; `None` once the client is gone.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(RequestHeader, Bytes)> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len).await.ok()?;
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    sock.read_exact(&mut buf).await.ok()?;
    let mut body = Bytes::from(buf);
    let header = decode_request_header_from_buffer(&mut body).expect("header");
    Some((header, body))
}

async fn fake_broker(handler: Handler) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let handler = handler.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                while let Some((header, body)) = read_request(&mut sock).await {
                    seen.lock().expect("lock").push(header.clone());
                    if let Some(resp) = handler(&header, body) {
                        let mut out = Vec::new();
                        out.put_i32(resp.len() as i32);
                        out.extend_from_slice(&resp);
                        if sock.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn response<T: Encodable>(
    correlation: i32,
    header_version: i16,
    body: &T,
    version: i16,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut buf, header_version)
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode body");
    buf.to_vec()
}

fn versions(apis: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        apis.iter()
            .map(|(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

fn metadata_body() -> MetadataResponse {
    MetadataResponse::default()
        .with_cluster_id(Some(StrBytes::from_static_str("fake-cluster")))
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(7))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(1)])
}

/// A broker serving ApiVersions 0..=3 and Metadata 0..=`metadata_max`.
fn standard_handler(metadata_max: i16) -> Handler {
    Arc::new(move |h, _body| {
        let key = ApiKey::try_from(h.request_api_key).ok()?;
        match key {
            ApiKey::ApiVersions => Some(response(
                h.correlation_id,
                0,
                &versions(&[
                    (ApiKey::ApiVersions, 0, 3),
                    (ApiKey::Metadata, 0, metadata_max),
                ]),
                h.request_api_version,
            )),
            ApiKey::Metadata => Some(response(
                h.correlation_id,
                ApiKey::Metadata.response_header_version(h.request_api_version),
                &metadata_body(),
                h.request_api_version,
            )),
            _ => None,
        }
    })
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn negotiates_versions_and_frames_requests() {
    let (addr, seen) = fake_broker(standard_handler(9)).await;
    let mut conn = Connection::connect(&addr, "test-client", T)
        .await
        .expect("connect");
    assert_eq!(conn.broker_versions(ApiKey::Metadata), Some((0, 9)));
    assert_eq!(conn.version_for::<MetadataRequest>().expect("version"), 9);
    let resp = conn
        .send(&MetadataRequest::default())
        .await
        .expect("metadata");
    assert_eq!(resp.cluster_id.as_deref(), Some("fake-cluster"));
    assert_eq!(resp.brokers[0].node_id.0, 7);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].request_api_key, ApiKey::ApiVersions as i16);
    assert_eq!(seen[0].request_api_version, 3);
    assert_eq!(seen[1].request_api_key, ApiKey::Metadata as i16);
    assert_eq!(seen[1].request_api_version, 9);
    assert_eq!(seen[1].client_id.as_deref(), Some("test-client"));
    assert_ne!(seen[0].correlation_id, seen[1].correlation_id);
}

#[tokio::test]
async fn uses_the_client_maximum_when_the_broker_is_newer() {
    let (addr, seen) = fake_broker(standard_handler(i16::MAX)).await;
    let mut conn = Connection::connect(&addr, "c", T).await.expect("connect");
    conn.send(&MetadataRequest::default())
        .await
        .expect("metadata");
    let v = seen.lock().expect("lock")[1].request_api_version;
    assert_eq!(v, MetadataRequest::VERSIONS.max);
}

#[tokio::test]
async fn falls_back_to_api_versions_v0() {
    let handler: Handler = Arc::new(|h, _| {
        if h.request_api_version >= 3 {
            // An old broker: v0 layout with UNSUPPORTED_VERSION.
            let body = ApiVersionsResponse::default().with_error_code(35);
            return Some(response(h.correlation_id, 0, &body, 0));
        }
        Some(response(
            h.correlation_id,
            0,
            &versions(&[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 0, 5)]),
            0,
        ))
    });
    let (addr, seen) = fake_broker(handler).await;
    let conn = Connection::connect(&addr, "c", T).await.expect("connect");
    assert_eq!(conn.broker_versions(ApiKey::Metadata), Some((0, 5)));
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].request_api_version, 0);
}

#[tokio::test]
async fn unsupported_api_is_an_error_without_a_round_trip() {
    let (addr, seen) = fake_broker(standard_handler(9)).await;
    let mut conn = Connection::connect(&addr, "c", T).await.expect("connect");
    let err = conn
        .send(&DescribeClusterRequest::default())
        .await
        .expect_err("unsupported");
    assert!(
        matches!(
            err,
            ClientError::UnsupportedApi {
                api: ApiKey::DescribeCluster,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn correlation_mismatch_is_a_protocol_error() {
    let handler: Handler = Arc::new(|h, _| {
        if h.request_api_key == ApiKey::ApiVersions as i16 {
            return Some(response(
                h.correlation_id,
                0,
                &versions(&[(ApiKey::Metadata, 0, 9)]),
                h.request_api_version,
            ));
        }
        Some(response(
            h.correlation_id + 100,
            1,
            &metadata_body(),
            h.request_api_version,
        ))
    });
    let (addr, _) = fake_broker(handler).await;
    let mut conn = Connection::connect(&addr, "c", T).await.expect("connect");
    let err = conn
        .send(&MetadataRequest::default())
        .await
        .expect_err("mismatch");
    assert!(
        matches!(err, ClientError::Protocol(ref m) if m.contains("correlation")),
        "{err}"
    );
}

#[tokio::test]
async fn silent_broker_times_out() {
    let handler: Handler = Arc::new(|h, _| {
        if h.request_api_key == ApiKey::ApiVersions as i16 {
            return Some(response(
                h.correlation_id,
                0,
                &versions(&[(ApiKey::Metadata, 0, 9)]),
                h.request_api_version,
            ));
        }
        None
    });
    let (addr, _) = fake_broker(handler).await;
    let mut conn = Connection::connect(&addr, "c", Duration::from_millis(200))
        .await
        .expect("connect");
    let started = Instant::now();
    let err = conn
        .send(&MetadataRequest::default())
        .await
        .expect_err("timeout");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A late answer could still arrive: the connection refuses further use.
    assert!(conn.is_broken());
    let err = conn
        .send(&MetadataRequest::default())
        .await
        .expect_err("broken");
    assert!(matches!(err, ClientError::Io { .. }), "{err}");
}

#[tokio::test]
async fn garbage_size_is_a_protocol_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        if let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 64];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(&(-5i32).to_be_bytes()).await;
            let _ = sock.flush().await;
            // Keep the socket open until the client gives up.
            let _ = sock.read(&mut buf).await;
        }
    });
    let err = Connection::connect(&addr, "c", T)
        .await
        .expect_err("garbage");
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
}

/// A raw broker for one connection: answers ApiVersions (Metadata up to v9), written `chunk` bytes
/// at a time, then writes `then` (raw bytes) after the next request and closes.
async fn trickling_broker(chunk: usize, then: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut frames = 0;
        while let Some((h, _)) = read_request(&mut sock).await {
            if frames == 1 {
                let _ = sock.write_all(&then).await;
                return;
            }
            frames += 1;
            let resp = response(
                h.correlation_id,
                0,
                &versions(&[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 9)]),
                h.request_api_version,
            );
            let mut out = Vec::new();
            out.put_i32(resp.len() as i32);
            out.extend_from_slice(&resp);
            for piece in out.chunks(chunk) {
                if sock.write_all(piece).await.is_err() || sock.flush().await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_response_arriving_in_pieces_is_read_whole() {
    let addr = trickling_broker(3, Vec::new()).await;
    let conn = Connection::connect(&addr, "c", T).await.expect("connect");
    assert_eq!(conn.version_for::<MetadataRequest>().expect("metadata"), 9);
}

#[tokio::test]
async fn socket_buffers_are_set_before_connecting() {
    let (addr, _) = fake_broker(standard_handler(9)).await;
    let buffers = SocketBuffers {
        receive: Some(256 * 1024),
        send: Some(64 * 1024),
    };
    let mut conn = Connection::connect_with(&addr, "c", T, buffers)
        .await
        .expect("connect");
    conn.send(&MetadataRequest::default())
        .await
        .expect("metadata");
    let err = Connection::connect_with("no-such-host.invalid:9092", "c", T, buffers)
        .await
        .expect_err("unresolvable");
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn a_connection_closed_inside_a_response_is_an_error() {
    // Announces 100 bytes, sends 10, closes.
    let mut then = 100i32.to_be_bytes().to_vec();
    then.extend_from_slice(&[0u8; 10]);
    let addr = trickling_broker(1024, then).await;
    let mut conn = Connection::connect(&addr, "c", T).await.expect("connect");
    let err = conn
        .send(&MetadataRequest::default())
        .await
        .expect_err("cut off");
    assert!(err.to_string().contains("closed by the broker"), "{err}");
    assert!(conn.is_broken());
}

#[tokio::test]
async fn connect_failure_names_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let err = Connection::connect(&addr, "c", T)
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::Connect { .. }));
    assert!(err.to_string().contains(&addr), "{err}");
}

#[tokio::test]
async fn client_tries_each_bootstrap_server_and_learns_brokers() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let (addr, _) = fake_broker(standard_handler(9)).await;
    let mut client = Client::connect(&format!("{dead_addr},{addr}"), ClientConfig::default())
        .await
        .expect("client");
    client.metadata(None).await.expect("metadata");
    assert_eq!(
        client.brokers(),
        vec![BrokerInfo {
            node_id: 7,
            host: "127.0.0.1".into(),
            port: 1
        }]
    );
    // Node 7 listens on port 1: connecting fails with that address.
    let err = client.connection_to(7).await.expect_err("port 1");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    let err = client.connection_to(99).await.expect_err("unknown node");
    assert_eq!(err.code(), Some(8));
}

#[tokio::test]
async fn retry_repeats_retriable_errors_until_success() {
    let (addr, _) = fake_broker(standard_handler(9)).await;
    let mut client = Client::connect(&addr, ClientConfig::default())
        .await
        .expect("client");
    let attempts = Arc::new(Mutex::new(0));
    let a2 = attempts.clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = client
        .retry(deadline, Duration::from_millis(1), move |c| {
            let a2 = a2.clone();
            Box::pin(async move {
                let n = {
                    let mut n = a2.lock().expect("lock");
                    *n += 1;
                    *n
                };
                if n < 3 {
                    return Err(ClientError::broker(6, None)); // NOT_LEADER_OR_FOLLOWER
                }
                c.metadata(None).await.map(|m| m.brokers.len())
            })
        })
        .await
        .expect("retry");
    assert_eq!(v, 1);
    assert_eq!(*attempts.lock().expect("lock"), 3);
    let err = client
        .retry(deadline, Duration::from_millis(1), |_| {
            Box::pin(async { Err::<(), _>(ClientError::broker(36, None)) })
        })
        .await
        .expect_err("not retriable");
    assert_eq!(err.to_string(), "Topic with this name already exists.");
}

#[test]
fn broker_errors_use_the_broker_message_first() {
    let e = ClientError::broker(36, Some("Topic 'x' already exists."));
    assert_eq!(e.to_string(), "Topic 'x' already exists.");
    assert!(!e.is_retriable());
    assert!(ClientError::broker(3, None).is_retriable());
}
