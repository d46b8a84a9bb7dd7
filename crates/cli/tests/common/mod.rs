//! Shared helpers for the end-to-end tests: rdkafka clients pointed at a test node.
#![allow(dead_code, unused_imports)]

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::Compression;
use krust_protocol::records::{encode_batch, NewRecord};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub use krust_testkit::{wait_for, Node};

pub const BIN: &str = env!("CARGO_BIN_EXE_krust");

pub fn start(extra: &[&str]) -> Node {
    Node::start(BIN, extra)
}

pub fn admin(node: &Node) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .create()
        .expect("admin client")
}

pub fn producer(node: &Node, acks: &str, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        .set("acks", acks)
        .set("compression.codec", codec)
        .set("linger.ms", "5")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Sends one record to `topic`-`partition` and waits for its acknowledgement; panics if
/// delivery fails.
pub async fn send_to(p: &FutureProducer, topic: &str, partition: i32, value: &str) -> Delivery {
    p.send(
        FutureRecord::<(), _>::to(topic)
            .payload(value)
            .partition(partition),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("delivery to {topic}-{partition}: {e:?}"))
}

pub fn consumer(node: &Node) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", node.bootstrap())
        // librdkafka needs a group id to assign partitions, even without joining a group.
        .set("group.id", "krust-test-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

pub async fn create_topic(node: &Node, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(node);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e:?}"));
    }
}

/// A consumed record: offset, key, value, timestamp, headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Reads `count` records from one partition starting at `from`, by assignment.
pub fn consume(
    node: &Node,
    topic: &str,
    partition: i32,
    from: Offset,
    count: usize,
    timeout: Duration,
) -> Vec<Got> {
    let c = consumer(node);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, from)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count} from {topic}-{partition}",
            out.len()
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => panic!("consume error: {e:?}"),
            Some(Ok(m)) => out.push(Got {
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                timestamp: m.timestamp().to_millis(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
        }
    }
    out
}

/// Polls a consumer for a while and returns how many records arrived (for "nothing more" checks).
pub fn drain_count(
    node: &Node,
    topic: &str,
    partition: i32,
    from: Offset,
    window: Duration,
) -> usize {
    let c = consumer(node);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, from)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let end = Instant::now() + window;
    let mut n = 0;
    while Instant::now() < end {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(50)) {
            n += 1;
        }
    }
    n
}

pub fn watermarks(node: &Node, topic: &str, partition: i32) -> (i64, i64) {
    consumer(node)
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
}

/// One request frame: size, header v1/v2 (client id `test`), body.
/// A memory figure of process `pid` from /proc (`field` such as "VmRSS:"), in MiB; 0 if
/// it cannot be read.
pub fn status_mib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

pub fn frame<R: Encodable>(key: ApiKey, version: i16, corr: i32, body: &R) -> Vec<u8> {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).expect("body");
    frame_bytes(key, version, corr, &encoded)
}

/// Like [`frame`], with the body's bytes as given (malformed on purpose, say).
pub fn frame_bytes(key: ApiKey, version: i16, corr: i32, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("header");
    buf.extend_from_slice(body);
    let mut out = Vec::new();
    out.put_i32(buf.len() as i32);
    out.extend_from_slice(&buf);
    out
}

/// One response frame's body, after its header.
pub fn read_response(s: &mut TcpStream, header_version: i16) -> bytes::Bytes {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).expect("response body");
    let skip = if header_version >= 1 { 5 } else { 4 };
    bytes::Bytes::from(body).split_off(skip)
}

/// One v2 record batch without a producer, holding `values`.
pub fn batch(values: &[&str]) -> BytesMut {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord::value(bytes::Bytes::copy_from_slice(v.as_bytes())))
        .collect();
    let encoded = encode_batch(&records, 1, Compression::None).expect("batch");
    BytesMut::from(&encoded[..])
}

/// Sends `count` seeded mutations of `seeds` (request frames without their size: flipped
/// bits, boundary integers, cut or inserted bytes, the API key and version kept) to `addr`,
/// each on its own connection: every one gets an answer or a closed connection, and the
/// node keeps serving its client listener within bounded memory.
pub fn mutated_requests_neither_crash_nor_bloat(
    node: &Node,
    addr: std::net::SocketAddr,
    seeds: &[Vec<u8>],
    count: usize,
) {
    use rand::{Rng, SeedableRng};
    use std::io::Write;
    const BOUNDARY: [u32; 12] = [
        0,
        1,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        10_001,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let rss_mib = |pid: u32| status_mib(pid, "VmRSS:");
    let pid = node.pid().expect("pid");
    for i in 0..count {
        let mut b = seeds[rng.random_range(0..seeds.len())].clone();
        for _ in 0..rng.random_range(1..=4) {
            // Past the API key and version (4 bytes).
            let at = rng.random_range(4..b.len().max(5));
            match rng.random_range(0..5) {
                0 if at < b.len() => b[at] ^= 1 << rng.random_range(0..8),
                1 if at + 4 <= b.len() => {
                    let v = BOUNDARY[rng.random_range(0..BOUNDARY.len())];
                    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
                }
                2 if at + 2 <= b.len() => {
                    let v = BOUNDARY[rng.random_range(0..BOUNDARY.len())] as u16;
                    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
                3 => {
                    let end = (at + rng.random_range(1..8)).min(b.len());
                    b.drain(at.min(end)..end);
                }
                _ => {
                    let at = at.min(b.len());
                    let junk: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                    b.splice(at..at, junk);
                }
            }
        }
        let mut frame = (b.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&b);
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let _ = s.write_all(&frame);
        let mut sink = [0u8; 4096];
        let _ = s.read(&mut sink);
        if i % 250 == 249 || i + 1 == count {
            assert!(
                krust_testkit::api_versions_ok(node.client_addr()),
                "the node stopped serving after mutation {i} of {:?}",
                &b[..b.len().min(64)]
            );
            let rss = rss_mib(pid);
            assert!(rss < 1024, "the node holds {rss} MiB after mutation {i}");
        }
    }
}

/// A thread that runs until told to stop (a client polled on its own thread): stopping or
/// dropping it sets the flag and joins the thread.
pub struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Runs `step` again and again until stopped; what it owns (a client) is dropped on
    /// the thread before stopping returns.
    pub fn spawn(mut step: impl FnMut() + Send + 'static) -> Background {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                step();
            }
        });
        Background {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the thread and waits for it; a panic on it fails the caller.
    pub fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("background thread");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Sends one request frame and reads the answer; `None` once the broker closed.
pub fn call<R: kafka_protocol::protocol::Request>(
    s: &mut TcpStream,
    corr: i32,
    version: i16,
    req: &R,
) -> Option<R::Response> {
    let key = kafka_protocol::messages::ApiKey::try_from(R::KEY).expect("key");
    std::io::Write::write_all(s, &frame(key, version, corr, req)).ok()?;
    let mut size = [0u8; 4];
    std::io::Read::read_exact(s, &mut size).ok()?;
    let mut data = vec![0u8; i32::from_be_bytes(size) as usize];
    std::io::Read::read_exact(s, &mut data).ok()?;
    let header =
        if <R::Response as kafka_protocol::protocol::HeaderVersion>::header_version(version) >= 1 {
            5
        } else {
            4
        };
    let mut body = bytes::Bytes::from(data).split_off(header);
    Some(
        <R::Response as kafka_protocol::protocol::Decodable>::decode(&mut body, version)
            .expect("response"),
    )
}

pub fn connect(node: &Node) -> TcpStream {
    connect_to(node.client_addr())
}

/// A raw connection to `addr`, reads timing out after 10 s.
pub fn connect_to(addr: impl std::net::ToSocketAddrs) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Whether the broker closed the connection (reads end, or it was reset) within the
/// socket's read timeout; a timeout, or bytes, mean it is still open.
pub fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match std::io::Read::read(s, &mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}
