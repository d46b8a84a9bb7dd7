//! The broker lifecycle (KIP-631): the active controller's side (sessions, fencing,
//! bootstrap records) and every broker's side (registration, heartbeats, controlled
//! shutdown).
//!
//! A broker registers with the active controller (a `RegisterBrokerRecord`, fenced, whose
//! offset becomes the broker epoch), then heartbeats every `broker.heartbeat.interval.ms`.
//! Once its metadata has caught up with its own registration, the controller unfences it;
//! from then on it is among the live brokers that replicas are placed on and that Metadata
//! lists. A broker whose heartbeats stop for `broker.session.timeout.ms` is fenced; one
//! that shuts down asks to be fenced first. Sessions live in the active controller's
//! memory only: a new active controller starts every registered broker with a fresh
//! session, as Kafka's does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::*;
use krust_metadata::controller::{
    self, BrokerErrorCode, BrokerRegistrationInput, HeartbeatOutcome,
};
use krust_metadata::{BrokerEndpoint, MetadataImage, MetadataRecord, METADATA_VERSION_LEVEL};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::broker::{local_hostname, Broker};
use crate::config::SecurityProtocol;
use crate::forward::Route;
use crate::handlers::sb;
use crate::metadata_log::CommitError;

/// How often the active controller checks sessions.
const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Retry interval of a registration or heartbeat that failed.
const RETRY_INTERVAL: Duration = Duration::from_millis(100);
/// Heartbeat interval while registered but still fenced (catching up with the metadata
/// log), so that a starting broker is unfenced as soon as it may be...
const FENCED_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(10);
/// ...for this long after registering; after that (a slow catch-up, or a broker fenced
/// later) every `RETRY_INTERVAL`, so that fenced brokers of a loaded cluster do not add
/// to the load that fenced them.
const EAGER_HEARTBEAT_WINDOW: Duration = Duration::from_secs(1);
/// How long a shutting-down broker waits for the controller to fence it.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Session {
    deadline: Instant,
    /// The offset of the broker's latest registration record: once its metadata reaches
    /// it, the broker may be unfenced.
    registration_offset: i64,
    /// Whether this controller has heard from the broker (a registration or a heartbeat)
    /// since it became active; false for a session it only presumes from the image.
    heard: bool,
}

/// The active controller's view of broker sessions.
#[derive(Debug, Default)]
pub struct ControllerState {
    sessions: Mutex<HashMap<i32, Session>>,
    /// The quorum epoch these sessions belong to (the term this node became active in).
    term: Mutex<Option<i32>>,
}

impl ControllerState {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the sessions of term `epoch` ([`ControllerState::reset`]) unless they are
    /// started already: whichever comes first after this node becomes active, the periodic
    /// check or a broker's registration or heartbeat, so that none is judged against an
    /// earlier term's sessions (or none at all).
    fn begin_term(&self, epoch: i32, image: &MetadataImage, deadline: Instant) {
        let mut term = self.term.lock().unwrap_or_else(|e| e.into_inner());
        if *term != Some(epoch) {
            *term = Some(epoch);
            self.reset(image, deadline);
        }
    }

    /// Gives every registered, unfenced broker a fresh session (a new active controller). A
    /// fenced broker has no session: it may register again at once, as in Kafka.
    fn reset(&self, image: &MetadataImage, deadline: Instant) {
        let mut sessions = self.sessions();
        sessions.clear();
        for b in image.brokers.values().filter(|b| !b.fenced) {
            sessions.insert(
                b.id,
                Session {
                    deadline,
                    registration_offset: b.epoch,
                    heard: false,
                },
            );
        }
    }

    /// Removes and returns the brokers whose sessions ran out.
    fn take_expired(&self, now: Instant) -> Vec<i32> {
        let mut sessions = self.sessions();
        let expired: Vec<i32> = sessions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            sessions.remove(id);
        }
        expired
    }
}

/// Adds the partition leadership changes that follow from `records` changing whether
/// `broker_id` is live: a broker that stops being live (fenced, shut down, re-registered)
/// leaves the ISRs and hands its leaderships to in-sync replicas; one that becomes live
/// again takes back partitions left without a leader.
fn with_leadership_changes(
    broker: &Broker,
    image: &MetadataImage,
    mut records: Vec<MetadataRecord>,
    broker_id: i32,
) -> Vec<MetadataRecord> {
    if records.is_empty() {
        return records;
    }
    let mut staged = image.clone();
    for r in &records {
        let _ = staged.apply(staged.offset + 1, r);
    }
    let (was, is) = (image.is_live(broker_id), staged.is_live(broker_id));
    let unclean = |topic: &str| broker.unclean_allowed(image, topic);
    if was && !is {
        records.extend(controller::fence_broker_partitions(
            &staged, broker_id, unclean,
        ));
    } else if !was && is {
        records.extend(controller::unfence_broker_partitions(&staged, broker_id));
    }
    records
}

/// The records that start a cluster's metadata, if the image lacks them.
fn bootstrap_records(broker: &Broker, image: &MetadataImage) -> Vec<MetadataRecord> {
    if image.features.contains_key("metadata.version") {
        return Vec::new();
    }
    let mut records = vec![MetadataRecord::FeatureLevel {
        name: "metadata.version".into(),
        level: METADATA_VERSION_LEVEL,
    }];
    records.extend(broker.bootstrap.iter().cloned());
    records
}

impl Broker {
    /// Whether a topic's `unclean.leader.election.enable` (or the broker default) is on.
    pub fn unclean_allowed(&self, image: &MetadataImage, topic: &str) -> bool {
        image
            .topic_config(topic, "unclean.leader.election.enable")
            .map_or(self.config.unclean_leader_election_enable, |v| v == "true")
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.config.broker_session_timeout_ms.max(1) as u64)
    }

    /// Starts the broker sessions of quorum epoch `epoch` if not started yet.
    fn begin_controller_term(&self, epoch: i32) {
        self.controller.begin_term(
            epoch,
            &self.image(),
            Instant::now() + self.session_timeout(),
        );
    }

    /// The epoch this node is the active controller in, with its sessions started; else
    /// NOT_CONTROLLER.
    fn controller_term(&self) -> anyhow::Result<i32> {
        let epoch = self
            .metadata
            .active_epoch()
            .ok_or(CommitError::NotController)?;
        self.begin_controller_term(epoch);
        Ok(epoch)
    }

    /// Registers a broker (active controller only). The inner error is a Kafka error code
    /// and message for the broker.
    pub async fn register_broker(
        &self,
        input: &BrokerRegistrationInput,
    ) -> anyhow::Result<Result<i64, (i16, String)>> {
        self.controller_term()?;
        let id = input.broker_id;
        let now = Instant::now();
        // A fenced broker holds no valid session (it shut down or timed out), so a new
        // incarnation may replace it. So may this node's own broker, registering from this
        // process with the listeners the old registration has, while that registration's
        // session is only presumed (nothing heard from it since this controller, as new as
        // this process, became active): the old one is taken for this node's previous
        // process, killed without being fenced.
        let image = self.image();
        let own = id == self.node_id
            && input.incarnation_id == self.incarnation
            && image
                .broker(id)
                .is_some_and(|b| same_listeners(&b.endpoints, &input.listeners));
        let alive = self
            .controller
            .sessions()
            .get(&id)
            .is_some_and(|s| s.deadline > now && (s.heard || !own))
            && image.broker(id).is_some_and(|b| !b.fenced);
        let cluster_id = self.cluster_id.clone();
        let metadata = self.metadata.clone();
        let outcome = self
            .control(|image| {
                let mut records = bootstrap_records(self, image);
                let mut staged = image.clone();
                let next = metadata.log_end_offset() + records.len() as i64;
                for r in &records {
                    let _ = staged.apply(next - 1, r);
                }
                match controller::register_broker(&staged, &cluster_id, input, alive, next) {
                    Ok((more, epoch)) => {
                        let offset = (!more.is_empty()).then_some(next);
                        records.extend(with_leadership_changes(self, &staged, more, id));
                        (records, Ok((epoch, offset)))
                    }
                    Err((code, message)) => (Vec::new(), Err((code.code(), message))),
                }
            })
            .await?;
        Ok(outcome.map(|(epoch, offset)| {
            let mut sessions = self.controller.sessions();
            let previous = sessions.get(&id).map(|s| s.registration_offset);
            sessions.insert(
                id,
                Session {
                    deadline: Instant::now() + self.session_timeout(),
                    registration_offset: offset.or(previous).unwrap_or(epoch),
                    heard: true,
                },
            );
            info!(broker = id, epoch, "broker registered");
            epoch
        }))
    }

    /// A broker's heartbeat (active controller only): renews its session, unfences it once
    /// caught up, fences it when it asks to shut down.
    pub async fn broker_heartbeat(
        &self,
        id: i32,
        epoch: i64,
        metadata_offset: i64,
        want_fence: bool,
        want_shut_down: bool,
    ) -> anyhow::Result<Result<HeartbeatOutcome, i16>> {
        self.controller_term()?;
        let registration_offset = {
            let mut sessions = self.controller.sessions();
            let deadline = Instant::now() + self.session_timeout();
            let image = self.image();
            match image.broker(id) {
                Some(b) if b.epoch == epoch => {
                    let s = sessions.entry(id).or_insert(Session {
                        deadline,
                        registration_offset: b.epoch,
                        heard: true,
                    });
                    s.deadline = deadline;
                    s.heard = true;
                    s.registration_offset
                }
                _ => epoch,
            }
        };
        let outcome = self
            .control(|image| {
                match controller::broker_heartbeat(
                    image,
                    id,
                    epoch,
                    metadata_offset,
                    want_fence,
                    want_shut_down,
                    registration_offset,
                ) {
                    Ok((records, outcome)) => (
                        with_leadership_changes(self, image, records, id),
                        Ok(outcome),
                    ),
                    Err(code) => (Vec::new(), Err(code)),
                }
            })
            .await?;
        if let Err(code) = &outcome {
            if *code == BrokerErrorCode::BrokerIdNotRegistered {
                self.controller.sessions().remove(&id);
            }
        }
        if let Ok(o) = &outcome {
            if want_shut_down && o.should_shut_down {
                info!(broker = id, "broker fenced for shutdown");
            }
        }
        Ok(outcome.map_err(|c| c.code()))
    }

    /// Reserves a block of producer ids (active controller only).
    pub async fn allocate_producer_id_block(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> anyhow::Result<(i64, i32)> {
        self.control(|image| {
            let start = image.next_producer_id;
            let end = start + crate::broker::PRODUCER_ID_BLOCK;
            (
                vec![MetadataRecord::ProducerIds {
                    broker_id,
                    broker_epoch,
                    next_producer_id: end,
                }],
                (start, crate::broker::PRODUCER_ID_BLOCK as i32),
            )
        })
        .await
    }

    /// This broker's registration request.
    fn registration_request(&self, incarnation: Uuid) -> BrokerRegistrationRequest {
        let listeners = self
            .config
            .advertised_broker_listeners()
            .into_iter()
            .map(|l| {
                Listener::default()
                    .with_name(sb(l.name.clone()))
                    .with_host(sb(if l.host.is_empty() {
                        local_hostname()
                    } else {
                        l.host.clone()
                    }))
                    .with_port(l.port)
                    .with_security_protocol(security_protocol_id(l.security_protocol))
            })
            .collect();
        BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(self.node_id))
            .with_cluster_id(sb(self.cluster_id.clone()))
            .with_incarnation_id(incarnation)
            .with_listeners(listeners)
            .with_features(crate::handlers::controller::supported_features())
            .with_rack(self.config.broker_rack.clone().map(sb))
            .with_previous_broker_epoch(-1)
    }

    async fn send_registration(&self, incarnation: Uuid) -> anyhow::Result<i64> {
        let req = self.registration_request(incarnation);
        let resp = match self.forward(&req, None).await? {
            Route::Local => crate::handlers::controller::broker_registration(self, req, 0).await,
            Route::Remote(r) => r,
        };
        if resp.error_code != 0 {
            anyhow::bail!(
                "broker registration refused: {}",
                krust_client::error_description(resp.error_code)
            );
        }
        Ok(resp.broker_epoch)
    }

    async fn send_heartbeat(
        &self,
        epoch: i64,
        want_shut_down: bool,
    ) -> anyhow::Result<BrokerHeartbeatResponse> {
        let req = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(self.node_id))
            .with_broker_epoch(epoch)
            .with_current_metadata_offset(self.metadata.applied_offset() - 1)
            .with_want_fence(!self.metadata.is_ready())
            .with_want_shut_down(want_shut_down);
        Ok(match self.forward(&req, None).await? {
            Route::Local => crate::handlers::controller::broker_heartbeat(self, req, 0).await,
            Route::Remote(r) => r,
        })
    }

    /// Asks the active controller to fence this broker before it stops (controlled
    /// shutdown), waiting at most a few seconds.
    pub async fn controlled_shutdown(&self) {
        let epoch = self.broker_epoch.load(Ordering::Relaxed);
        // Without a registration or a known active controller there is nobody to ask.
        if epoch < 0 || self.metadata.leader().is_none() {
            return;
        }
        match tokio::time::timeout(
            CONTROLLED_SHUTDOWN_TIMEOUT,
            self.send_heartbeat(epoch, true),
        )
        .await
        {
            Ok(Ok(r)) if r.error_code == 0 => {
                info!("the controller fenced this broker for shutdown")
            }
            Ok(Ok(r)) => warn!(
                error = %krust_client::error_description(r.error_code),
                "controlled shutdown refused"
            ),
            Ok(Err(e)) => warn!(error = %e, "controlled shutdown failed"),
            Err(_) => warn!("controlled shutdown timed out"),
        }
    }
}

/// Whether two registrations name the same listeners, in any order.
fn same_listeners(a: &[BrokerEndpoint], b: &[BrokerEndpoint]) -> bool {
    a.len() == b.len() && a.iter().all(|e| b.contains(e))
}

fn security_protocol_id(p: SecurityProtocol) -> i16 {
    match p {
        SecurityProtocol::Plaintext => 0,
        SecurityProtocol::Ssl => 1,
        SecurityProtocol::SaslPlaintext => 2,
        SecurityProtocol::SaslSsl => 3,
    }
}

/// The broker epoch of this node's registration (-1 before it registered).
#[derive(Debug)]
pub struct BrokerEpoch(AtomicI64);

impl Default for BrokerEpoch {
    fn default() -> Self {
        BrokerEpoch(AtomicI64::new(-1))
    }
}

impl std::ops::Deref for BrokerEpoch {
    type Target = AtomicI64;
    fn deref(&self) -> &AtomicI64 {
        &self.0
    }
}

/// The active controller's duties: bootstrap records for a new cluster, fresh sessions
/// when it takes over, fencing brokers whose sessions ran out.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut active_epoch = None;
    let mut rebalance = tokio::time::interval(Duration::from_secs(
        broker.config.leader_imbalance_check_interval_seconds.max(1) as u64,
    ));
    rebalance.tick().await;
    let mut tick = tokio::time::interval(SESSION_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut rebalance_now = false;
        tokio::select! {
            _ = tick.tick() => {}
            _ = rebalance.tick() => rebalance_now = broker.config.auto_leader_rebalance_enable,
            _ = shutdown.changed() => break,
        }
        let Some(epoch) = broker.metadata.active_epoch() else {
            active_epoch = None;
            continue;
        };
        if active_epoch != Some(epoch) {
            active_epoch = Some(epoch);
            info!(epoch, "this node is the active controller");
            broker.begin_controller_term(epoch);
            if let Err(e) = broker
                .control(|image| (bootstrap_records(&broker, image), ()))
                .await
            {
                warn!(error = %e, "could not write the cluster's bootstrap records");
                active_epoch = None;
                continue;
            }
        }
        if rebalance_now {
            // Leadership back to the preferred replicas (the first of each replica list)
            // where they are live and in sync.
            let moved = broker
                .control(|image| {
                    let (records, _) =
                        controller::elect_leaders(image, controller::ElectionType::Preferred, None);
                    let n = records.len();
                    (records, n)
                })
                .await;
            match moved {
                Ok(n) if n > 0 => info!(
                    partitions = n,
                    "moved leadership back to preferred replicas"
                ),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "preferred leader election failed"),
            }
        }
        for id in broker.controller.take_expired(Instant::now()) {
            let result = broker
                .control(|image| {
                    let records = controller::fence_broker(image, id);
                    let fenced = !records.is_empty();
                    (with_leadership_changes(&broker, image, records, id), fenced)
                })
                .await;
            match result {
                Ok(true) => info!(
                    broker = id,
                    "fenced broker: no heartbeat within broker.session.timeout.ms"
                ),
                Ok(false) => {}
                Err(e) => warn!(broker = id, error = %e, "could not fence broker"),
            }
        }
    }
}

/// The answer to one step of the broker lifecycle.
enum Step {
    Registered(anyhow::Result<i64>),
    Heartbeat(anyhow::Result<BrokerHeartbeatResponse>),
}

/// This broker's side: register, then heartbeat until shutdown, re-registering when the
/// controller no longer knows the registration.
pub async fn register_and_heartbeat(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let incarnation = broker.incarnation;
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms.max(1) as u64);
    let mut epoch: Option<i64> = None;
    let mut registered_at = Instant::now();
    let mut last_complaint: Option<Instant> = None;
    let mut complain = |what: String| {
        if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
            warn!("{what}");
            last_complaint = Some(Instant::now());
        } else {
            debug!("{what}");
        }
    };
    loop {
        // A request the quorum cannot answer (it is gone) must not hold up shutdown.
        let step = async {
            match epoch {
                None => Step::Registered(broker.send_registration(incarnation).await),
                Some(e) => Step::Heartbeat(broker.send_heartbeat(e, false).await),
            }
        };
        let step = tokio::select! {
            s = step => s,
            _ = shutdown.changed() => break,
        };
        let mut ok = false;
        match step {
            Step::Registered(r) => match r {
                Ok(e) => {
                    epoch = Some(e);
                    registered_at = Instant::now();
                    broker.broker_epoch.store(e, Ordering::Relaxed);
                    // The first heartbeat goes at once: it is what unfences the broker.
                    continue;
                }
                Err(e) => complain(format!("{e:#}")),
            },
            Step::Heartbeat(r) => match r {
                Ok(r) if r.error_code == 0 => {
                    ok = true;
                    broker.fenced.send_if_modified(|f| {
                        let changed = *f != r.is_fenced;
                        if changed {
                            info!(fenced = r.is_fenced, "broker fencing changed");
                        }
                        *f = r.is_fenced;
                        changed
                    });
                }
                Ok(r) => {
                    complain(format!(
                        "broker heartbeat refused: {}",
                        krust_client::error_description(r.error_code)
                    ));
                    if r.error_code == BrokerErrorCode::StaleBrokerEpoch.code()
                        || r.error_code == BrokerErrorCode::BrokerIdNotRegistered.code()
                    {
                        epoch = None;
                        broker.broker_epoch.store(-1, Ordering::Relaxed);
                        broker.fenced.send_replace(true);
                    }
                }
                Err(e) => complain(format!("broker heartbeat failed: {e:#}")),
            },
        }
        let wait = if !ok {
            RETRY_INTERVAL
        } else if *broker.fenced.borrow() {
            if registered_at.elapsed() < EAGER_HEARTBEAT_WINDOW {
                FENCED_HEARTBEAT_INTERVAL.min(interval)
            } else {
                RETRY_INTERVAL.min(interval)
            }
        } else {
            interval
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
}
