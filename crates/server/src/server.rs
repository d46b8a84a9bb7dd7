//! Startup and shutdown of a node.
//!
//! Start: check the storage identity (formatting a fresh standalone node), replay the
//! metadata log, write the bootstrap records on first start, open the partition logs, bring
//! them in line with the image, then listen. Stop: stop accepting, close connections, flush
//! every log, write checkpoints and the clean-shutdown marker.

use std::sync::Arc;
use std::time::Duration;

use krust_protocol::Listener;
use krust_storage::LogManager;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::broker::{log_config_for, now_ms, Broker};
use crate::config::ServerConfig;
use crate::format::ensure_formatted;
use crate::metadata_log::{MetadataLog, QuorumConfig, SnapshotPolicy};
use crate::network;

/// How often recovery points and log start offsets are checkpointed.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// Kafka's producer.id.expiration.ms default: idle producers are forgotten after a day.
const PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;
/// How often group timers (sessions, rebalance deadlines) are checked.
const GROUP_TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Kafka's offsets.retention.check.interval.ms default.
const OFFSETS_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(600);
/// How often the flush policy and time-based segment rolls are checked.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_millis(1000);

/// A started node. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub broker: Arc<Broker>,
    /// Bound addresses of the listeners, by listener name.
    pub addresses: Vec<(String, std::net::SocketAddr)>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Held until shutdown completes.
    dir_locks: Vec<std::fs::File>,
}

/// The quorum settings of this node, from its config.
fn quorum_config(config: &ServerConfig) -> QuorumConfig {
    QuorumConfig {
        node_id: config.node_id,
        voters: config
            .controller_quorum_voters
            .iter()
            .map(|v| {
                let host = if v.host.contains(':') {
                    format!("[{}]", v.host)
                } else {
                    v.host.clone()
                };
                (v.id, format!("{host}:{}", v.port))
            })
            .collect(),
        election_timeout_ms: config.controller_quorum_election_timeout_ms.max(1) as u64,
        fetch_timeout_ms: config.controller_quorum_fetch_timeout_ms.max(1) as u64,
        request_timeout_ms: config.controller_quorum_request_timeout_ms.max(1) as u64,
        snapshots: SnapshotPolicy {
            max_record_bytes: config
                .metadata_log_max_record_bytes_between_snapshots
                .max(1) as u64,
            max_interval_ms: config.metadata_log_max_snapshot_interval_ms.max(0) as u64,
        },
        security: config.controller_security.clone(),
    }
}

/// How often startup reports that it is still waiting for the metadata quorum.
const QUORUM_WAIT_REPORT: Duration = Duration::from_secs(5);

/// Starts a node with `config` and returns once it is serving.
///
/// The controller listener serves from the start (the quorum needs it to form); the
/// broker listener only once the metadata image has caught up with the quorum and this
/// node's broker is registered, so clients never see a stale or empty cluster.
pub async fn run(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let identity = ensure_formatted(&config)?;
    check_quorum_supported(&config)?;
    let dir_locks = lock_dirs(&config)?;
    if identity.formatted_now {
        println!(
            "Formatted a new standalone cluster with cluster id {}",
            identity.cluster_id
        );
    }
    info!(cluster_id = %identity.cluster_id, node_id = config.node_id, "storage identity verified");

    let quorum = quorum_config(&config);
    let metadata = Arc::new(MetadataLog::open(
        config.metadata_log_dir(),
        &identity.cluster_id,
        quorum,
        now_ms(),
    )?);

    let image = metadata.image();
    let config_for =
        |tp: &krust_storage::TopicPartition| log_config_for(&config, &image, &tp.topic);
    // After a clean shutdown, partition logs open when first used (or in the background
    // once the node serves), so a node with many partitions starts serving at once.
    let logs = LogManager::open_with(&config.log_dirs, &config_for, true, true, now_ms())
        .map_err(|e| anyhow::anyhow!("cannot open log directories: {e}"))?;
    drop(image);
    let bootstrap = crate::format::read_bootstrap(&config)?;
    let mut broker = Broker::new(config, identity.cluster_id, metadata, logs);
    broker.bootstrap = bootstrap;
    let broker = Arc::new(broker);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    broker.replication.start(&broker, shutdown_rx.clone());

    let mut tasks = Vec::new();
    // Listeners that verify OAUTHBEARER tokens against keys at a URL fetch them now: a
    // node that could not check a token does not start.
    for (name, l) in &broker.config.sasl.listeners {
        if let Some(crate::oauth::Validator::Signed(v)) = &l.oauth {
            v.load().await.map_err(|e| {
                anyhow::anyhow!("cannot load the OAUTHBEARER keys of listener {name}: {e}")
            })?;
            tasks.push(tokio::spawn(v.clone().refresh(shutdown_rx.clone())));
        }
    }
    let mut addresses = Vec::new();
    let controller_names = broker.config.controller_listener_names.clone();
    let mut broker_listeners = Vec::new();
    for l in broker.config.listeners.clone() {
        let kind = if controller_names.contains(&l.name) {
            Listener::Controller
        } else {
            Listener::Broker
        };
        let host = if l.host.is_empty() {
            "0.0.0.0"
        } else {
            l.host.as_str()
        };
        let listener = network::bind(&format!("{host}:{}", l.port)).await?;
        addresses.push((l.name.clone(), listener.local_addr()?));
        let name: Arc<str> = Arc::from(l.name.as_str());
        if kind == Listener::Controller {
            tasks.push(tokio::spawn(network::serve(
                broker.clone(),
                listener,
                kind,
                name,
                shutdown_rx.clone(),
            )));
        } else {
            broker_listeners.push((listener, name));
        }
    }
    tasks.push(broker.metadata.start(shutdown_rx.clone()));
    tasks.push(tokio::spawn(crate::controller::run(
        broker.clone(),
        shutdown_rx.clone(),
    )));

    let mut waited = tokio::time::interval(QUORUM_WAIT_REPORT);
    waited.tick().await;
    loop {
        tokio::select! {
            _ = broker.metadata.wait_ready() => break,
            _ = waited.tick() => info!(
                leader = ?broker.metadata.leader(),
                voters = ?broker.metadata.voter_ids(),
                "waiting for the metadata quorum to elect a leader and for this node to catch up"
            ),
        }
    }
    if broker.config.is_broker() {
        crate::broker::blocking(|| broker.reconcile());
        tasks.push(tokio::spawn(crate::controller::register_and_heartbeat(
            broker.clone(),
            shutdown_rx.clone(),
        )));
        broker.wait_unfenced().await;
        tasks.push(tokio::spawn(follow_image(
            broker.clone(),
            shutdown_rx.clone(),
        )));
        for (listener, name) in broker_listeners {
            tasks.push(tokio::spawn(network::serve(
                broker.clone(),
                listener,
                Listener::Broker,
                name,
                shutdown_rx.clone(),
            )));
        }
        let b = broker.clone();
        let stop = shutdown_rx.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let n = b.open_deferred_partitions(|| *stop.borrow());
            if n > 0 {
                info!(
                    partitions = n,
                    secs = started.elapsed().as_secs_f64(),
                    "opened the logs left unopened at startup"
                );
            }
        }));
    }
    tasks.push(tokio::spawn(housekeeping(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    tasks.extend(crate::cleaner::Cleaner::start(
        broker.clone(),
        shutdown_rx.clone(),
    ));
    if let Some(http) = broker.config.http_listener.clone() {
        let addr = format!("{}:{}", http.host, http.port);
        tasks.push(tokio::spawn(crate::metrics::serve(
            broker.clone(),
            addr,
            shutdown_rx.clone(),
        )));
    }
    info!(node_id = broker.node_id, "krust node started");
    Ok(RunningServer {
        broker,
        addresses,
        shutdown_tx,
        tasks,
        dir_locks,
    })
}

/// How often [`follow_image`] makes a pass with no change to trigger it.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a pass of [`follow_image`] may take before it is reported as slow.
const SLOW_RECONCILE: Duration = Duration::from_secs(10);

/// Brings the hosted partitions in line with every new image.
async fn follow_image(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut applied = broker.metadata.subscribe_applied();
    // Reconciling an image that has not caught up does nothing: the first pass waits for
    // it, then catches up with whatever was applied before the subscription.
    tokio::select! {
        _ = broker.metadata.wait_ready() => {}
        _ = shutdown.changed() => return,
    }
    let mut first = true;
    // Every change triggers a pass; a check now and then besides finds an image no pass
    // has applied, applies it and says so.
    let mut safety_net = tokio::time::interval(RECONCILE_INTERVAL);
    safety_net.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut triggered = true;
        if !first {
            tokio::select! {
                r = applied.changed() => if r.is_err() { break },
                _ = safety_net.tick() => triggered = false,
                _ = shutdown.changed() => break,
            }
        }
        first = false;
        let b = broker.clone();
        // On a blocking thread, as the pass itself: the check waits for a pass under way.
        let mut pass = tokio::task::spawn_blocking(move || {
            let n = b.reconcile_unless_current(!triggered);
            if n > 0 && !triggered {
                warn!(
                    partitions = n,
                    "hosted partitions were behind the metadata image; caught up"
                );
            }
        });
        let started = tokio::time::Instant::now();
        // A pass that does not end holds up every later change: say so.
        while tokio::time::timeout(SLOW_RECONCILE, &mut pass)
            .await
            .is_err()
        {
            warn!(
                secs = started.elapsed().as_secs(),
                "still applying a metadata change to the hosted partitions"
            );
        }
    }
}

/// Takes an exclusive lock on `.lock` in every log directory (and the metadata log
/// directory), held for the life of the process: two nodes writing one directory would
/// corrupt it. The operating system releases the locks if the process dies.
fn lock_dirs(config: &ServerConfig) -> anyhow::Result<Vec<std::fs::File>> {
    let mut dirs = config.all_log_dirs();
    let metadata = config.metadata_log_dir().to_path_buf();
    if !dirs.contains(&metadata) {
        dirs.push(metadata);
    }
    let mut locks = Vec::new();
    for dir in dirs {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => locks.push(file),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "Failed to acquire lock on file .lock in {}. A krust or Kafka instance in another process or thread is using this directory.",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
        }
    }
    Ok(locks)
}

/// The quorum must be given by `controller.quorum.voters`: joining a dynamic quorum
/// through `controller.quorum.bootstrap.servers` alone (KIP-853) is refused with the reason.
fn check_quorum_supported(config: &ServerConfig) -> anyhow::Result<()> {
    if config.controller_quorum_voters.is_empty() {
        anyhow::bail!(
            "controller.quorum.voters is empty: krust needs the static voter set \
             (id@host:port of every controller); dynamic quorums through \
             controller.quorum.bootstrap.servers alone are not supported"
        );
    }
    Ok(())
}

/// Periodic work: flush policy, time-based rolls, retention, checkpoints.
async fn housekeeping(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let retention_every =
        Duration::from_millis(broker.config.log_retention_check_interval_ms.max(1) as u64);
    let mut flush_tick = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    let mut retention_tick = tokio::time::interval(retention_every);
    let mut checkpoint_tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    let mut group_tick = tokio::time::interval(GROUP_TICK_INTERVAL);
    group_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut offsets_expiry_tick = tokio::time::interval(OFFSETS_RETENTION_CHECK_INTERVAL);
    let mut txn_tick = tokio::time::interval(Duration::from_millis(
        broker
            .config
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            .max(1) as u64,
    ));
    txn_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut txn_expiry_tick = tokio::time::interval(Duration::from_millis(
        broker
            .config
            .transaction_remove_expired_transaction_cleanup_interval_ms
            .max(1) as u64,
    ));
    txn_expiry_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut isr_tick = tokio::time::interval(Duration::from_millis(
        (broker.config.replica_lag_time_max_ms / 2).max(1) as u64,
    ));
    loop {
        tokio::select! {
            _ = flush_tick.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = b.logs.flush_pass(now_ms()) {
                        warn!(error = %e, "flush pass failed");
                    }
                }).await;
            }
            _ = retention_tick.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    match b.logs.retention_pass(now_ms()) {
                        Ok(n) if n > 0 => info!(segments = n, "retention deleted segments"),
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "retention pass failed"),
                    }
                    for p in b.partitions.all() {
                        p.refresh_high_watermark();
                    }
                }).await;
            }
            _ = checkpoint_tick.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for p in b.partitions.all() {
                        p.expire_producers(now_ms(), PRODUCER_ID_EXPIRATION_MS);
                        if let Err(e) = p.snapshot_producer_state() {
                            warn!(topic = %p.topic, partition = p.index, error = %e, "producer state snapshot failed");
                        }
                    }
                    if let Err(e) = b.logs.checkpoint_all() {
                        warn!(error = %e, "checkpoint failed");
                    }
                }).await;
            }
            _ = group_tick.tick() => broker.group_tick(false).await,
            _ = isr_tick.tick() => broker.shrink_lagging_isrs().await,
            _ = offsets_expiry_tick.tick() => broker.group_tick(true).await,
            _ = txn_tick.tick() => broker.txn_tick(false).await,
            _ = txn_expiry_tick.tick() => broker.txn_tick(true).await,
            _ = shutdown.changed() => break,
        }
    }
}

impl RunningServer {
    /// The bound address of the first listener with this name.
    pub fn address(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.addresses
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// Stops listening, closes connections and shuts the logs down cleanly.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        info!("shutting down");
        if self.broker.config.is_broker() {
            self.broker.controlled_shutdown().await;
        }
        // A leaving leader hands over at once instead of letting the others time out.
        self.broker.metadata.resign();
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for p in self.broker.partitions.all() {
            p.wake();
        }
        let broker = self.broker;
        {
            let b = broker.clone();
            tokio::task::spawn_blocking(move || b.metadata.snapshot_now()).await?;
        }
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for p in broker.partitions.all() {
                if let Err(e) = p.snapshot_producer_state() {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "producer state snapshot failed");
                }
            }
            broker.logs.shutdown()?;
            Ok(())
        })
        .await??;
        drop(self.dir_locks);
        info!("shutdown complete");
        Ok(())
    }
}
