//! Prometheus metrics, served as text at `/metrics` on `http.listener`.
//!
//! Counters are plain atomics updated on the request path; everything that is state (log
//! offsets, partition counts, group lag) is read when scraped. Names follow Kafka's JMX
//! names translated the usual way (`kafka_server_brokertopicmetrics_bytesin_total`, ...).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::groups::OFFSETS_TOPIC;

/// Latency histogram bucket bounds, in milliseconds.
const LATENCY_BUCKETS_MS: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 500.0, 1000.0];
/// Highest API key tracked.
const API_KEYS_MAX: usize = 128;
/// Largest HTTP request head read.
const HTTP_REQUEST_BYTES_MAX: usize = 8192;

#[derive(Default)]
struct ApiStats {
    count: AtomicU64,
    latency_us_sum: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
}

#[derive(Default)]
struct TopicStats {
    bytes_in: AtomicU64,
    messages_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// The node's counters.
pub struct Metrics {
    apis: Vec<ApiStats>,
    topics: Mutex<HashMap<String, Arc<TopicStats>>>,
    connections_opened: AtomicU64,
    connections_closed: AtomicU64,
    /// ISR changes this node asked for as leader and the controller accepted.
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// The log cleaner ([`crate::cleaner`]): how long its last cleaning took (µs), what it
    /// wrote over what it read (per mille), the largest dirty ratio among the compacted
    /// logs when it last looked (per mille), and the logs left alone after a failed
    /// cleaning.
    pub cleaner_last_clean_us: AtomicU64,
    pub cleaner_recopy_permille: AtomicU64,
    pub cleaner_max_dirty_permille: AtomicU64,
    pub cleaner_uncleanable: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            apis: (0..API_KEYS_MAX).map(|_| ApiStats::default()).collect(),
            topics: Mutex::new(HashMap::new()),
            connections_opened: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            cleaner_last_clean_us: AtomicU64::new(0),
            cleaner_recopy_permille: AtomicU64::new(0),
            cleaner_max_dirty_permille: AtomicU64::new(0),
            cleaner_uncleanable: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one handled request and its latency.
    pub fn record_request(&self, key: ApiKey, elapsed: Duration) {
        let Some(s) = self.apis.get(key as usize) else {
            return;
        };
        s.count.fetch_add(1, Ordering::Relaxed);
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        s.latency_us_sum.fetch_add(us, Ordering::Relaxed);
        let ms = us as f64 / 1000.0;
        if let Some(i) = LATENCY_BUCKETS_MS.iter().position(|b| ms <= *b) {
            s.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn topic(&self, topic: &str) -> Arc<TopicStats> {
        let mut t = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = t.get(topic) {
            return s.clone();
        }
        t.entry(topic.to_string()).or_default().clone()
    }

    /// Bytes and records appended to a topic.
    pub fn record_produce(&self, topic: &str, bytes: usize, messages: u64) {
        let s = self.topic(topic);
        s.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        s.messages_in.fetch_add(messages, Ordering::Relaxed);
    }

    /// Bytes sent to consumers from a topic.
    pub fn record_fetch(&self, topic: &str, bytes: usize) {
        if bytes > 0 {
            self.topic(topic)
                .bytes_out
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    pub fn connection_opened(&self) {
        self.connections_opened.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Renders every metric in the Prometheus text format.
pub async fn render(broker: &Broker) -> String {
    let m = &broker.metrics;
    let mut out = String::with_capacity(16 * 1024);
    let node = broker.node_id;

    help(
        &mut out,
        "kafka_network_requestmetrics_requests_total",
        "counter",
        "Requests handled, by API.",
    );
    for (key, s) in m.apis.iter().enumerate() {
        let n = s.count.load(Ordering::Relaxed);
        if n > 0 {
            let name = api_name(key);
            let _ = writeln!(
                out,
                "kafka_network_requestmetrics_requests_total{{request=\"{name}\"}} {n}"
            );
        }
    }
    help(
        &mut out,
        "kafka_network_requestmetrics_totaltimems",
        "histogram",
        "Time to handle a request, by API, in milliseconds.",
    );
    for (key, s) in m.apis.iter().enumerate() {
        let n = s.count.load(Ordering::Relaxed);
        if n == 0 {
            continue;
        }
        let name = api_name(key);
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += s.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "kafka_network_requestmetrics_totaltimems_bucket{{request=\"{name}\",le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "kafka_network_requestmetrics_totaltimems_bucket{{request=\"{name}\",le=\"+Inf\"}} {n}"
        );
        let sum_ms = s.latency_us_sum.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "kafka_network_requestmetrics_totaltimems_sum{{request=\"{name}\"}} {sum_ms}"
        );
        let _ = writeln!(
            out,
            "kafka_network_requestmetrics_totaltimems_count{{request=\"{name}\"}} {n}"
        );
    }

    let opened = m.connections_opened.load(Ordering::Relaxed);
    let closed = m.connections_closed.load(Ordering::Relaxed);
    help(
        &mut out,
        "kafka_server_socket_server_metrics_connection_count",
        "gauge",
        "Open client connections.",
    );
    let _ = writeln!(
        out,
        "kafka_server_socket_server_metrics_connection_count {}",
        opened.saturating_sub(closed)
    );

    let topics: Vec<(String, Arc<TopicStats>)> = m
        .topics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (metric, doc, get) in [
        (
            "kafka_server_brokertopicmetrics_bytesin_total",
            "Bytes appended, by topic.",
            0,
        ),
        (
            "kafka_server_brokertopicmetrics_messagesin_total",
            "Records appended, by topic.",
            1,
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout_total",
            "Bytes sent to consumers, by topic.",
            2,
        ),
    ] {
        help(&mut out, metric, "counter", doc);
        for (t, s) in &topics {
            let v = match get {
                0 => s.bytes_in.load(Ordering::Relaxed),
                1 => s.messages_in.load(Ordering::Relaxed),
                _ => s.bytes_out.load(Ordering::Relaxed),
            };
            let _ = writeln!(out, "{metric}{{topic=\"{}\"}} {v}", escape(t));
        }
    }

    let partitions = broker.partitions.all();
    let image = broker.image();
    let mut leaders = 0;
    let mut under_replicated = 0;
    let mut offline = 0;
    for t in image.topics.values() {
        for p in t.partitions.values() {
            if p.leader == node {
                leaders += 1;
                if p.isr.len() < p.replicas.len() {
                    under_replicated += 1;
                }
            }
            if p.leader < 0 {
                offline += 1;
            }
        }
    }
    let m = &broker.metrics;
    let load = |a: &AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    gauge_f64(
        &mut out,
        "kafka_log_logcleaner_max_clean_time_secs",
        "Seconds the log cleaner's last cleaning took.",
        load(&m.cleaner_last_clean_us) as f64 / 1e6,
    );
    gauge_f64(
        &mut out,
        "kafka_log_logcleaner_cleaner_recopy_percent",
        "Bytes the last cleaning wrote, in percent of those it cleaned.",
        load(&m.cleaner_recopy_permille) as f64 / 10.0,
    );
    gauge_f64(
        &mut out,
        "kafka_log_logcleanermanager_max_dirty_percent",
        "The largest dirty ratio among the compacted logs when the cleaner last looked, in percent.",
        load(&m.cleaner_max_dirty_permille) as f64 / 10.0,
    );
    gauge_i64(
        &mut out,
        "kafka_log_logcleanermanager_uncleanable_partitions_count",
        "Compacted logs the cleaner leaves alone for a while after their cleaning failed.",
        i64::try_from(load(&m.cleaner_uncleanable)).unwrap_or(i64::MAX),
    );
    if let Some(pool) = &broker.request_pool {
        gauge_i64(
            &mut out,
            "kafka_network_socketserver_memorypoolavailable",
            "Bytes of queued.max.request.bytes not reserved by requests read and not yet handled.",
            pool.available() as i64,
        );
        gauge_i64(
            &mut out,
            "kafka_network_socketserver_memorypoolused",
            "Bytes of queued.max.request.bytes reserved by requests read and not yet handled.",
            (pool.capacity() - pool.available()) as i64,
        );
    }
    gauge(
        &mut out,
        "kafka_server_replicamanager_partitioncount",
        "Partitions hosted on this node.",
        partitions.len(),
    );
    gauge(
        &mut out,
        "kafka_server_replicamanager_leadercount",
        "Partitions this node leads.",
        leaders,
    );
    gauge(
        &mut out,
        "kafka_server_replicamanager_underreplicatedpartitions",
        "Led partitions whose ISR is smaller than their replica set.",
        under_replicated,
    );
    gauge(
        &mut out,
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        "Partitions without a leader.",
        offline,
    );
    gauge(
        &mut out,
        "kafka_controller_kafkacontroller_globaltopiccount",
        "Topics in the cluster.",
        image.topics.len(),
    );
    gauge(
        &mut out,
        "kafka_controller_kafkacontroller_globalpartitioncount",
        "Partitions in the cluster.",
        image
            .topics
            .values()
            .map(|t| t.partitions.len())
            .sum::<usize>(),
    );
    help(
        &mut out,
        "kafka_server_replicamanager_isrshrinks_total",
        "counter",
        "ISR shrinks on partitions led here.",
    );
    let _ = writeln!(
        out,
        "kafka_server_replicamanager_isrshrinks_total {}",
        broker.metrics.isr_shrinks.load(Ordering::Relaxed)
    );
    help(
        &mut out,
        "kafka_server_replicamanager_isrexpands_total",
        "counter",
        "ISR expansions on partitions led here.",
    );
    let _ = writeln!(
        out,
        "kafka_server_replicamanager_isrexpands_total {}",
        broker.metrics.isr_expands.load(Ordering::Relaxed)
    );
    let live = broker.live_brokers();
    gauge(
        &mut out,
        "kafka_controller_kafkacontroller_activebrokercount",
        "Registered, unfenced brokers.",
        live.len(),
    );
    gauge(
        &mut out,
        "kafka_controller_kafkacontroller_fencedbrokercount",
        "Registered, fenced brokers.",
        image.brokers.len().saturating_sub(live.len()),
    );

    let quorum = broker.quorum_status();
    let own_end = quorum
        .voters
        .iter()
        .chain(&quorum.observers)
        .find(|r| r.node_id == node)
        .map_or(-1, |r| r.log_end_offset);
    gauge_i64(
        &mut out,
        "kafka_server_raft_metrics_current_leader",
        "Id of the metadata quorum leader.",
        i64::from(quorum.leader_id),
    );
    gauge_i64(
        &mut out,
        "kafka_server_raft_metrics_current_epoch",
        "Leader epoch of the metadata quorum.",
        i64::from(quorum.leader_epoch),
    );
    gauge_i64(
        &mut out,
        "kafka_server_raft_metrics_high_watermark",
        "Committed end of the metadata log.",
        quorum.high_watermark,
    );
    gauge_i64(
        &mut out,
        "kafka_server_raft_metrics_log_end_offset",
        "End of the metadata log on this node.",
        own_end,
    );

    help(
        &mut out,
        "kafka_log_log_logendoffset",
        "gauge",
        "Log end offset, by partition.",
    );
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut rows = Vec::new();
    for p in &partitions {
        let log = p.read_log();
        let end = log.log_end_offset();
        ends.insert((p.topic.clone(), p.index), p.high_watermark());
        rows.push((
            p.topic.clone(),
            p.index,
            end,
            log.log_start_offset(),
            log.size_bytes(),
        ));
    }
    rows.sort();
    for (t, i, end, _, _) in &rows {
        let _ = writeln!(
            out,
            "kafka_log_log_logendoffset{{topic=\"{}\",partition=\"{i}\"}} {end}",
            escape(t)
        );
    }
    help(
        &mut out,
        "kafka_log_log_logstartoffset",
        "gauge",
        "Log start offset, by partition.",
    );
    for (t, i, _, start, _) in &rows {
        let _ = writeln!(
            out,
            "kafka_log_log_logstartoffset{{topic=\"{}\",partition=\"{i}\"}} {start}",
            escape(t)
        );
    }
    help(
        &mut out,
        "kafka_log_log_size",
        "gauge",
        "Bytes on disk, by partition.",
    );
    for (t, i, _, _, size) in &rows {
        let _ = writeln!(
            out,
            "kafka_log_log_size{{topic=\"{}\",partition=\"{i}\"}} {size}",
            escape(t)
        );
    }

    help(
        &mut out,
        "kafka_consumergroup_lag",
        "gauge",
        "High watermark minus committed offset, by group and partition.",
    );
    if image.topic(OFFSETS_TOPIC).is_some() {
        for shard in broker.group_shards_all().await {
            let lags = shard
                .read(|c| {
                    let mut v = Vec::new();
                    for g in c.group_ids() {
                        let r = c.fetch_offsets(&krust_group::OffsetFetchRequest {
                            group_id: g.clone(),
                            topics: None,
                            member: None,
                        });
                        for (t, parts) in r.topics {
                            for p in parts.into_iter().filter(|p| p.offset >= 0) {
                                v.push((g.clone(), t.clone(), p.partition, p.offset));
                            }
                        }
                    }
                    v
                })
                .await;
            for (g, t, p, committed) in lags {
                if let Some(end) = ends.get(&(t.clone(), p)) {
                    let lag = (end - committed).max(0);
                    let _ = writeln!(
                        out,
                        "kafka_consumergroup_lag{{group=\"{}\",topic=\"{}\",partition=\"{p}\"}} {lag}",
                        escape(&g),
                        escape(&t)
                    );
                }
            }
        }
    }
    out
}

fn help(out: &mut String, name: &str, kind: &str, doc: &str) {
    let _ = writeln!(out, "# HELP {name} {doc}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, doc: &str, value: usize) {
    help(out, name, "gauge", doc);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge_f64(out: &mut String, name: &str, doc: &str, value: f64) {
    help(out, name, "gauge", doc);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge_i64(out: &mut String, name: &str, doc: &str, value: i64) {
    help(out, name, "gauge", doc);
    let _ = writeln!(out, "{name} {value}");
}

fn api_name(key: usize) -> String {
    i16::try_from(key)
        .ok()
        .and_then(|k| ApiKey::try_from(k).ok())
        .map_or_else(|| key.to_string(), |k| format!("{k:?}"))
}

/// Escapes a Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `/metrics` on `addr`. A port already in use is logged and skipped: metrics are
/// never a reason for a node not to start.
pub async fn serve(broker: Arc<Broker>, addr: String, mut shutdown: watch::Receiver<bool>) {
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "metrics endpoint disabled: cannot listen (set http.listener to another address)");
            return;
        }
    };
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or(addr), "metrics at http://<addr>/metrics");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let broker = broker.clone();
                tokio::spawn(async move { let _ = http_connection(broker, stream).await; });
            }
            _ = shutdown.changed() => break,
        }
    }
}

async fn http_connection(
    broker: Arc<Broker>,
    mut stream: tokio::net::TcpStream,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < HTTP_REQUEST_BYTES_MAX {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    if tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_err()
    {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".to_string(),
        )
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(&broker).await,
        )
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
