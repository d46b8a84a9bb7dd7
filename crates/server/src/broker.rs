//! The node's shared state and the operations handlers build on.
//!
//! Controller operations go through [`Broker::control`]: take the controller lock, decide
//! against the current image (pure code in `krust_metadata::controller`), commit the
//! records, then bring the hosted partitions in line with the new image. Everything a
//! handler reads (topics, partitions, configs) comes from the image or the partition logs.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use krust_metadata::{MetadataImage, MetadataRecord};
use krust_storage::{LogConfig, LogManager, SharedLog};
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::ServerConfig;
use crate::groups::GroupManager;
use crate::metadata_log::MetadataLog;
use crate::partition::{Partition, Partitions};
use crate::topic_config;

/// Log settings for a topic: its overrides in `image` over the broker's defaults.
///
/// Time and size retention delete segments only when `cleanup.policy` holds `delete`, as
/// in Kafka; with `compact`, the log cleaner (`crate::cleaner`) compacts the topic.
pub fn log_config_for(config: &ServerConfig, image: &MetadataImage, topic: &str) -> LogConfig {
    let e = topic_config::effective(&image.topic_configs(topic), config);
    let (retention_ms, retention_bytes) = if e.cleanup_policy_delete {
        (e.retention_ms, e.retention_bytes)
    } else {
        (-1, -1)
    };
    // A compacted log rolls at max.compaction.lag.ms at the latest, as in Kafka, so that its
    // records can be cleaned within that lag (the active segment never is).
    let segment_ms = if e.cleanup_policy_compact {
        e.segment_ms.min(e.max_compaction_lag_ms)
    } else {
        e.segment_ms
    };
    LogConfig {
        segment_bytes: e.segment_bytes,
        segment_ms,
        retention_ms,
        retention_bytes,
        index_interval_bytes: e.index_interval_bytes,
        max_message_bytes: e.max_message_bytes,
        message_timestamp_type_log_append: e.message_timestamp_type_log_append,
        message_timestamp_before_max_ms: e.message_timestamp_before_max_ms,
        message_timestamp_after_max_ms: e.message_timestamp_after_max_ms,
        flush_interval_messages: e.flush_interval_messages,
        flush_interval_ms: e.flush_interval_ms,
        fill_ahead: true,
        compact: e.cleanup_policy_compact,
    }
}

/// The group coordinator's settings from the broker config.
fn group_config(config: &ServerConfig) -> krust_group::GroupConfig {
    krust_group::GroupConfig {
        initial_rebalance_delay_ms: i64::from(config.group_initial_rebalance_delay_ms),
        min_session_timeout_ms: config.group_min_session_timeout_ms,
        max_session_timeout_ms: config.group_max_session_timeout_ms,
        max_size: None,
        consumer: config.consumer_groups.clone(),
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct Broker {
    /// Client byte-rate quotas: the measured rates.
    pub quotas: crate::quota::QuotaManager,
    /// Records `krust storage format` left for the first active controller to write with
    /// the cluster's first ones (`--add-scram`).
    pub bootstrap: Vec<MetadataRecord>,
    pub config: ServerConfig,
    pub cluster_id: String,
    pub node_id: i32,
    pub metadata: Arc<MetadataLog>,
    pub logs: LogManager,
    pub partitions: Partitions,
    pub groups: GroupManager,
    /// The transaction coordinators of the `__transaction_state` partitions led here.
    pub txns: crate::txn::TxnManager,
    pub metrics: crate::metrics::Metrics,
    /// The memory budget of the requests being handled.
    pub admission: crate::admission::Admission,
    /// `queued.max.request.bytes`, when set.
    pub request_pool: Option<crate::admission::RequestPool>,
    /// `max.connections` and `max.connections.per.ip`.
    pub connection_quotas: Arc<crate::network::ConnectionQuotas>,
    controller_lock: tokio::sync::Mutex<()>,
    /// Serializes [`Broker::reconcile`] between the commit path and the image watcher, and
    /// holds what the last successful one applied.
    reconcile_lock: std::sync::Mutex<Reconciled>,
    /// The connections requests are forwarded over to the active controller, one per
    /// [`crate::forward::Channel`].
    pub(crate) forward_connections:
        [tokio::sync::Mutex<Option<krust_client::Connection>>; crate::forward::CHANNELS],
    /// The active controller's view of the brokers' sessions.
    pub controller: crate::controller::ControllerState,
    /// Whether this node's broker is fenced (true until the controller unfences it).
    pub(crate) fenced: tokio::sync::watch::Sender<bool>,
    /// This broker's registration epoch.
    pub(crate) broker_epoch: crate::controller::BrokerEpoch,
    /// This process's broker incarnation: the id it registers with, new at every start.
    pub(crate) incarnation: Uuid,
    /// Follower fetchers, one per leader this node follows partitions of.
    pub replication: crate::replication::ReplicaManager,
    placement_counter: AtomicUsize,
    /// The reserved block of producer ids: (next to hand out, end exclusive).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
}

/// How long the active controller waits for the quorum to commit a decision.
pub const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The Kafka error for a failed controller operation.
pub fn control_error_code(e: &anyhow::Error) -> krust_protocol::ErrorCode {
    use crate::metadata_log::CommitError;
    match e.downcast_ref::<CommitError>() {
        Some(CommitError::NotController) => krust_protocol::ErrorCode::NotController,
        Some(CommitError::Timeout(_)) => krust_protocol::ErrorCode::RequestTimedOut,
        _ => krust_protocol::ErrorCode::UnknownServerError,
    }
}

/// Producer ids reserved per ProducerIdsRecord.
pub(crate) const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    pub fn new(
        config: ServerConfig,
        cluster_id: String,
        metadata: Arc<MetadataLog>,
        logs: LogManager,
    ) -> Broker {
        let quotas = crate::quota::QuotaManager::new(
            config.quota_window_num,
            config.quota_window_size_seconds,
        );
        Broker {
            groups: GroupManager::new(group_config(&config)),
            txns: crate::txn::TxnManager::default(),
            metrics: crate::metrics::Metrics::default(),
            admission: crate::admission::Admission::for_this_machine(),
            request_pool: config
                .queued_max_request_bytes
                .map(crate::admission::RequestPool::new),
            connection_quotas: Arc::new(crate::network::ConnectionQuotas::new(&config)),
            node_id: config.node_id,
            config,
            cluster_id,
            metadata,
            logs,
            partitions: Partitions::default(),
            controller_lock: tokio::sync::Mutex::new(()),
            reconcile_lock: std::sync::Mutex::new(Reconciled::default()),
            forward_connections: Default::default(),
            controller: crate::controller::ControllerState::default(),
            fenced: tokio::sync::watch::Sender::new(true),
            broker_epoch: Default::default(),
            incarnation: Uuid::new_v4(),
            replication: Default::default(),
            placement_counter: AtomicUsize::new(rand::random::<u16>() as usize),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            bootstrap: Vec::new(),
            quotas,
        }
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.metadata.image()
    }

    /// Brokers that can take replicas: registered and not fenced.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.image().live_brokers()
    }

    /// Validates, places and (unless `validate_only`) commits new topics. On a node that
    /// is not the active controller the request is forwarded there.
    pub async fn create_topics(
        &self,
        topics: &[krust_metadata::controller::NewTopic],
        validate_only: bool,
        validate_config: fn(&str, Option<&str>) -> Result<(), String>,
    ) -> anyhow::Result<Vec<krust_metadata::controller::CreatedTopic>> {
        if !self.metadata.is_active() {
            return self.forward_create_topics(topics, validate_only).await;
        }
        let start = self.placement_start();
        let (partitions, replication) = (
            self.config.num_partitions,
            self.config.default_replication_factor,
        );
        self.control(|image| {
            let live = image.live_brokers();
            let cluster = krust_metadata::controller::Cluster {
                image,
                live_brokers: &live,
                default_num_partitions: partitions,
                default_replication_factor: replication,
            };
            let (records, results) = krust_metadata::controller::create_topics(
                &cluster,
                topics,
                &validate_config,
                &mut Uuid::new_v4,
                start,
            );
            (if validate_only { Vec::new() } else { records }, results)
        })
        .await
    }

    /// CreateTopics through the active controller, for this node's own needs (automatic
    /// topic creation, the offsets topic).
    async fn forward_create_topics(
        &self,
        topics: &[krust_metadata::controller::NewTopic],
        validate_only: bool,
    ) -> anyhow::Result<Vec<krust_metadata::controller::CreatedTopic>> {
        use kafka_protocol::messages::create_topics_request::{
            CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
        };
        use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};
        use krust_metadata::controller::{CreatedTopic, ItemResult};
        let sb = |s: &str| kafka_protocol::protocol::StrBytes::from_string(s.to_string());
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(TopicName(sb(&t.name)))
                            .with_num_partitions(t.num_partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_assignments(
                                t.assignments
                                    .iter()
                                    .map(|(p, brokers)| {
                                        CreatableReplicaAssignment::default()
                                            .with_partition_index(*p)
                                            .with_broker_ids(
                                                brokers.iter().map(|b| BrokerId(*b)).collect(),
                                            )
                                    })
                                    .collect(),
                            )
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(sb(k))
                                            .with_value(v.as_deref().map(sb))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = match self.forward(&req, None).await? {
            crate::forward::Route::Remote(r) => r,
            crate::forward::Route::Local => {
                return Box::pin(self.create_topics(
                    topics,
                    validate_only,
                    crate::handlers::validate_topic_config,
                ))
                .await
            }
        };
        self.wait_caught_up(std::time::Duration::from_secs(5)).await;
        Ok(resp
            .topics
            .iter()
            .map(|t| CreatedTopic {
                name: t.name.to_string(),
                result: match krust_protocol::ErrorCode::from_code(t.error_code) {
                    Some(krust_protocol::ErrorCode::None) => ItemResult::ok(),
                    code => ItemResult::err(
                        code.unwrap_or(krust_protocol::ErrorCode::UnknownServerError),
                        t.error_message.as_ref().map_or_else(
                            || krust_client::error_description(t.error_code),
                            |m| m.to_string(),
                        ),
                    ),
                },
                topic_id: t.topic_id,
                num_partitions: t.num_partitions,
                replication_factor: t.replication_factor,
            })
            .collect())
    }

    /// Hands out a producer id never used before in this cluster, reserving a new block
    /// from the active controller when the current one is used up.
    pub async fn allocate_producer_id(&self) -> anyhow::Result<i64> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let epoch = self.broker_epoch.load(Ordering::Relaxed);
            let req = kafka_protocol::messages::AllocateProducerIdsRequest::default()
                .with_broker_id(kafka_protocol::messages::BrokerId(self.node_id))
                .with_broker_epoch(epoch);
            let (start, len) = match self.forward(&req, None).await? {
                crate::forward::Route::Local => {
                    self.allocate_producer_id_block(self.node_id, epoch).await?
                }
                crate::forward::Route::Remote(r) => {
                    if r.error_code != 0 {
                        anyhow::bail!(
                            "the controller did not allocate producer ids: {}",
                            krust_client::error_description(r.error_code)
                        );
                    }
                    (r.producer_id_start.0, r.producer_id_len)
                }
            };
            *block = (start, start + i64::from(len));
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// A starting point for round-robin replica placement, different on each call.
    pub fn placement_start(&self) -> usize {
        self.placement_counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a controller decision and commits its records. `decide` sees the current image
    /// and returns the records to write plus a value for the caller. Decisions are
    /// serialized, so each one sees every earlier one's records.
    pub async fn control<T>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, T),
    ) -> anyhow::Result<T> {
        let guard = self.controller_lock.lock().await;
        let image = self.image();
        let (records, out) = decide(&image);
        if !records.is_empty() {
            self.metadata.commit(&records, COMMIT_TIMEOUT).await?;
            // The next decision sees these records already; bringing the hosted partitions
            // in line need not hold it up (heartbeats wait on this lock).
            drop(guard);
            blocking(|| self.reconcile());
        }
        Ok(out)
    }

    /// After a forwarded change: waits until this node's image has it (at most `timeout`).
    pub async fn wait_caught_up(&self, timeout: std::time::Duration) {
        self.metadata.sync_with_leader(timeout).await;
        blocking(|| self.reconcile());
    }

    /// Waits until the active controller has unfenced this node's broker.
    pub async fn wait_unfenced(&self) {
        let mut rx = self.fenced.subscribe();
        let _ = rx.wait_for(|fenced| !*fenced).await;
    }

    /// Log settings for a topic: its overrides over the broker's defaults.
    pub fn log_config(&self, image: &MetadataImage, topic: &str) -> LogConfig {
        log_config_for(&self.config, image, topic)
    }

    /// Makes the hosted partitions match the image: opens or creates the logs of
    /// partitions assigned here, deletes those of topics that are gone, applies config
    /// changes. Idempotent; runs after every commit and once at startup. Returns how
    /// many partitions it started or stopped hosting.
    ///
    /// A partition that cannot be brought in line (its log does not open, say) holds up
    /// no other: it is reported the first time, and every later pass tries it again.
    pub fn reconcile(&self) -> usize {
        // An image that has not caught up could lack topics whose logs are here: acting
        // on it would delete them.
        if !self.config.is_broker() || !self.metadata.is_ready() {
            return 0;
        }
        let mut changed = 0;
        let mut last = self
            .reconcile_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let image = self.image();
        let mut followed: std::collections::HashMap<i32, Vec<Arc<Partition>>> =
            std::collections::HashMap::new();
        let mut configs = std::collections::HashMap::new();
        let mut failed = std::collections::HashSet::new();
        for topic in image.topics.values() {
            let config = self.log_config(&image, &topic.name);
            let config_same = last.configs.get(&topic.name) == Some(&config);
            let before = last
                .image
                .as_ref()
                .and_then(|i| i.topics.get(&topic.name))
                .filter(|t| t.id == topic.id);
            // The very topic the last pass brought in line (images share unchanged topics),
            // with the same config and nothing to retry: its partitions are as that pass
            // left them, and only the follow list needs its followers.
            let unchanged = config_same
                && before.is_some_and(|b| Arc::ptr_eq(b, topic))
                && !last.failed.iter().any(|(t, _)| *t == topic.name);
            for (&index, p) in &topic.partitions {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                if unchanged {
                    if p.leader < 0 || p.leader == self.node_id {
                        continue;
                    }
                    if let Some(existing) = self
                        .partitions
                        .get(&topic.name, index)
                        .filter(|e| e.topic_id == topic.id)
                    {
                        followed.entry(p.leader).or_default().push(existing);
                        continue;
                    }
                }
                let key = (topic.name.clone(), index);
                let retry = last.failed.contains(&key);
                let partition = match self.partitions.get(&topic.name, index) {
                    Some(existing) if existing.topic_id == topic.id => {
                        // Nothing changed since the last pass: only the follow list needs
                        // the partition (with many partitions, most passes are like this).
                        if config_same
                            && !retry
                            && before.and_then(|t| t.partitions.get(&index)) == Some(p)
                        {
                            if p.leader >= 0 && p.leader != self.node_id {
                                followed.entry(p.leader).or_default().push(existing);
                            }
                            continue;
                        }
                        if !config_same {
                            existing.write_log().update_config(config.clone());
                        }
                        existing
                    }
                    stale => {
                        if stale.is_some() {
                            self.drop_partition(&topic.name, index);
                        } else if p.leader < 0 || p.leader == self.node_id {
                            // A log left unopened at startup stays so until it is used
                            // (`Broker::partition`) or its turn comes in the background;
                            // followers are opened now, their fetcher needs them.
                            if self.logs.is_deferred(&topic.name, index) {
                                continue;
                            }
                        }
                        match self.new_partition(&topic.name, index, topic.id, config.clone()) {
                            Ok(created) => {
                                self.partitions.insert(created.clone());
                                // A partition tried again reports itself (below).
                                if !retry {
                                    changed += 1;
                                }
                                created
                            }
                            Err(e) => {
                                if !retry {
                                    warn!(topic = %topic.name, partition = index, error = %e, "could not open or create the log of a partition assigned here; retrying");
                                }
                                failed.insert(key);
                                continue;
                            }
                        }
                    }
                };
                if let Err(e) = apply_leadership(&partition, p) {
                    if !retry {
                        warn!(topic = %topic.name, partition = index, error = %e, "could not apply a partition's new leadership; retrying");
                    }
                    failed.insert(key);
                    continue;
                }
                if retry {
                    info!(topic = %topic.name, partition = index, "the partition's log is in line with the metadata again");
                }
                if p.leader >= 0 && p.leader != self.node_id {
                    followed.entry(p.leader).or_default().push(partition);
                }
            }
            configs.insert(topic.name.clone(), config);
        }
        last.image = Some(image.clone());
        last.configs = configs;
        last.failed = failed;
        self.replication.follow(self, followed);
        let assigned = |topic: &str, index: i32| {
            image
                .topic(topic)
                .and_then(|t| t.partitions.get(&index))
                .is_some_and(|p| p.replicas.contains(&self.node_id))
        };
        for p in self.partitions.all() {
            if !assigned(&p.topic, p.index) {
                self.drop_partition(&p.topic, p.index);
                changed += 1;
            }
        }
        self.groups.retain_hosted(self);
        self.txns.retain_hosted(self);
        for tp in self
            .logs
            .partitions_where(|tp| !assigned(&tp.topic, tp.partition))
        {
            let (topic, index) = (tp.topic, tp.partition);
            info!(%topic, partition = index, "deleting the log of a partition no longer assigned here");
            if let Err(e) = self.logs.delete(&topic, index) {
                warn!(%topic, partition = index, error = %e, "could not delete partition log");
            }
        }
        changed
    }

    /// [`Broker::reconcile`], or with `only_if_behind` nothing when the last completed
    /// pass applied the current image already and left no partition to retry. Blocks
    /// while a pass is under way.
    pub fn reconcile_unless_current(&self, only_if_behind: bool) -> usize {
        if only_if_behind {
            let last = self
                .reconcile_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let applied = last.image.as_ref().map_or(-1, |i| i.offset);
            if applied == self.image().offset && last.failed.is_empty() {
                return 0;
            }
        }
        self.reconcile()
    }

    /// The hosted partition `topic`-`index`, opening its log first if it was left
    /// unopened at startup (as of the last reconciled image). `None` if this node does not
    /// host it.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        if let Some(p) = self.partitions.get(topic, index) {
            return Some(p);
        }
        // A log here without its partition: deferred, or being opened by another thread
        // right now (which holds the lock until the partition is in place).
        if !self.logs.contains(topic, index) {
            return None;
        }
        blocking(|| {
            let mut last = self
                .reconcile_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(p) = self.partitions.get(topic, index) {
                return Some(p);
            }
            let image = last.image.clone()?;
            let t = image.topic(topic)?;
            let p = t.partitions.get(&index)?;
            // Followers are reconcile's (their fetcher must know them).
            let leads_or_leaderless = p.leader < 0 || p.leader == self.node_id;
            if !p.replicas.contains(&self.node_id) || !leads_or_leaderless {
                return None;
            }
            let config = self.log_config(&image, topic);
            match self.open_deferred_partition(topic, index, t.id, p, config) {
                Ok(partition) => Some(partition),
                Err(e) => {
                    warn!(%topic, partition = index, error = %e, "could not open the partition's log");
                    // Every later pass tries it again (a pass skips a topic it saw unchanged
                    // unless something in it is to be retried).
                    last.failed.insert((topic.to_string(), index));
                    None
                }
            }
        })
    }

    /// Opens every log still left unopened since startup, one at a time, so that
    /// retention, flushes and metrics cover them too. Returns how many it opened; stops
    /// early once `stop` says so.
    pub fn open_deferred_partitions(&self, stop: impl Fn() -> bool) -> usize {
        let mut opened = 0;
        for tp in self.logs.deferred() {
            if stop() {
                break;
            }
            if self.partition(&tp.topic, tp.partition).is_some() {
                opened += 1;
            }
        }
        opened
    }

    fn open_deferred_partition(
        &self,
        topic: &str,
        index: i32,
        topic_id: Uuid,
        p: &krust_metadata::image::PartitionImage,
        config: LogConfig,
    ) -> anyhow::Result<Arc<Partition>> {
        let partition = self.new_partition(topic, index, topic_id, config)?;
        apply_leadership(&partition, p)?;
        self.partitions.insert(partition.clone());
        Ok(partition)
    }

    /// A hosted partition over its opened (or created) log, with no leadership yet.
    fn new_partition(
        &self,
        topic: &str,
        index: i32,
        topic_id: Uuid,
        config: LogConfig,
    ) -> anyhow::Result<Arc<Partition>> {
        let log = self.open_partition_log(topic, index, topic_id, config)?;
        Ok(Arc::new(Partition::new(
            topic.to_string(),
            index,
            topic_id,
            log,
            -1,
            self.node_id,
        )))
    }

    fn drop_partition(&self, topic: &str, index: i32) {
        if let Some(p) = self.partitions.remove(topic, index) {
            p.wake();
        }
        if let Err(e) = self.logs.delete(topic, index) {
            warn!(%topic, partition = index, error = %e, "could not delete partition log");
        }
    }

    /// Opens the partition's log, or creates it. A directory left by an earlier topic of the
    /// same name (its `partition.metadata` names another topic id) is deleted first.
    fn open_partition_log(
        &self,
        topic: &str,
        index: i32,
        topic_id: Uuid,
        config: LogConfig,
    ) -> anyhow::Result<SharedLog> {
        if let Some(log) = self.logs.open_deferred(topic, index, config.clone())? {
            let dir = log.read().dir().to_path_buf();
            match read_partition_metadata(&dir) {
                Some(id) if id != topic_id => {
                    info!(%topic, partition = index, "deleting the log of an earlier topic with the same name");
                    self.logs.delete(topic, index)?;
                }
                found => {
                    if found.is_none() {
                        write_partition_metadata(&dir, topic_id)?;
                    }
                    log.write().update_config(config);
                    return Ok(log);
                }
            }
        }
        let log = self.logs.create(topic, index, config)?;
        let dir = log.read().dir().to_path_buf();
        write_partition_metadata(&dir, topic_id)?;
        info!(%topic, partition = index, dir = %dir.display(), "created the log of a partition assigned here");
        Ok(log)
    }
}

/// Gives a hosted partition the leadership in `p`. A replica that becomes leader starts
/// the new epoch at its log end (KIP-101): anything a follower has beyond it in an older
/// epoch is divergent.
fn apply_leadership(
    partition: &Partition,
    p: &krust_metadata::image::PartitionImage,
) -> anyhow::Result<()> {
    let became_leader = partition.update_leadership(
        p.leader,
        p.leader_epoch,
        &p.replicas,
        &p.isr,
        p.partition_epoch,
    );
    if partition.is_leader() {
        // Whenever the log lacks the epoch: also one a failed pass did not record.
        let mut log = partition.write_log();
        let latest = log.leader_epoch_cache().latest_epoch();
        if latest.is_none_or(|e| e < p.leader_epoch) {
            let end = log.log_end_offset();
            log.assign_leader_epoch(p.leader_epoch, end)?;
        }
    }
    if became_leader {
        info!(topic = %partition.topic, partition = partition.index, epoch = p.leader_epoch, "leading partition");
    }
    Ok(())
}

/// Runs `f`, which may block on a lock or disk I/O, without stalling the other tasks of a
/// multi-threaded runtime's worker (they move to another thread meanwhile).
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// What the last [`Broker::reconcile`] pass applied: partitions whose image and topic config
/// are unchanged since are skipped, unless that pass failed them.
#[derive(Default)]
struct Reconciled {
    image: Option<Arc<MetadataImage>>,
    configs: std::collections::HashMap<String, LogConfig>,
    /// Partitions that pass could not bring in line: the next one tries them again.
    failed: std::collections::HashSet<(String, i32)>,
}

/// Reads the topic id from a partition directory's `partition.metadata`.
fn read_partition_metadata(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join("partition.metadata")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("topic_id:"))?;
    crate::meta_properties::parse_uuid(line.trim())
        .ok()
        .map(Uuid::from_bytes)
}

/// Writes `partition.metadata` (Kafka's format: `version: 0`, `topic_id: <id>`).
fn write_partition_metadata(dir: &Path, topic_id: Uuid) -> std::io::Result<()> {
    let path = dir.join("partition.metadata");
    let text = format!(
        "version: 0\ntopic_id: {}\n",
        crate::meta_properties::uuid_to_string(&topic_id)
    );
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = dir.join("partition.metadata.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

impl Broker {
    /// Host and port clients should use to reach this node's broker listener.
    pub fn advertised_endpoint(&self) -> (String, i32) {
        match self.config.advertised_broker_listener() {
            Some(l) if !l.host.is_empty() => (l.host.clone(), l.port as i32),
            Some(l) => (local_hostname(), l.port as i32),
            None => ("localhost".to_string(), 9092),
        }
    }
}

pub(crate) fn local_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Broker {
    /// Host and port of this node's first controller listener, if it is a controller.
    pub fn advertised_controller_endpoint(&self) -> Option<(String, i32)> {
        let l = self.config.controller_listener()?;
        let host = if l.host.is_empty() {
            local_hostname()
        } else {
            l.host.clone()
        };
        Some((host, l.port as i32))
    }
}
