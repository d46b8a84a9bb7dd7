//! Broker / controller configuration: `server.properties` parsing, Kafka's key names and
//! defaults, and the KRaft validation rules (`KafkaConfig.validateValues`).
//!
//! Keys krust implements become typed fields of [`ServerConfig`]. Known Kafka broker keys that
//! krust does not act on are accepted (and logged once); anything else is a startup error, so a
//! typo does not silently fall back to a default.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::topic_config::{
    self, canonical, parse_bool, split_list, ConfigEntryDesc, ConfigType, SOURCE_DEFAULT_CONFIG,
    SOURCE_STATIC_BROKER_CONFIG,
};

/// A configuration problem; the message names the key and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

fn invalid(key: &str, value: &str, reason: impl fmt::Display) -> ConfigError {
    err(format!(
        "Invalid value {value} for configuration {key}: {reason}"
    ))
}

/// The settings used when krust starts without a config file: one combined node that is
/// its own single-voter quorum. Command-line overrides apply on top.
pub const SINGLE_NODE_DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    ("listeners", "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093"),
    (
        "advertised.listeners",
        "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
    ),
    ("controller.listener.names", "CONTROLLER"),
    ("inter.broker.listener.name", "PLAINTEXT"),
    (
        "listener.security.protocol.map",
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
    ),
    ("controller.quorum.voters", "1@localhost:9093"),
    ("log.dirs", "/tmp/krust-logs"),
    ("offsets.topic.replication.factor", "1"),
    ("transaction.state.log.replication.factor", "1"),
    ("transaction.state.log.min.isr", "1"),
];

/// Kafka broker keys krust accepts but does not act on (besides the prefixes in
/// [`ACCEPTED_UNUSED_PREFIXES`]).
pub const ACCEPTED_UNUSED_KEYS: &[&str] = &[
    "alter.config.policy.class.name",
    "alter.log.dirs.replication.quota.window.num",
    "alter.log.dirs.replication.quota.window.size.seconds",
    "auto.include.jmx.reporter",
    "background.threads",
    "client.quota.callback.class",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "config.providers",
    "controlled.shutdown.enable",
    "controller.quorum.append.linger.ms",
    "controller.quorum.election.backoff.max.ms",
    "controller.quorum.retry.backoff.ms",
    "controller.quota.window.num",
    "controller.quota.window.size.seconds",
    "create.topic.policy.class.name",
    "delete.records.purgatory.purge.interval.requests",
    "early.start.listeners",
    "eligible.leader.replicas.enable",
    "fetch.max.bytes",
    "fetch.purgatory.purge.interval.requests",
    "group.max.size",
    "initial.broker.registration.timeout.ms",
    "inter.broker.protocol.version",
    "kafka.metrics.polling.interval.secs",
    "kafka.metrics.reporters",
    "leader.imbalance.per.broker.percentage",
    "log.dir.failure.timeout.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "log.flush.start.offset.checkpoint.interval.ms",
    "log.local.retention.bytes",
    "log.local.retention.ms",
    "log.message.downconversion.enable",
    "log.message.format.version",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.preallocate",
    "log.roll.jitter.hours",
    "log.roll.jitter.ms",
    "log.segment.delete.delay.ms",
    "max.connection.creation.rate",
    "max.incremental.fetch.session.cache.slots",
    "max.request.partition.size.limit",
    "metadata.log.segment.bytes",
    "metadata.log.segment.ms",
    "metadata.max.idle.interval.ms",
    "metadata.max.retention.bytes",
    "metadata.max.retention.ms",
    "metric.reporters",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.alter.log.dirs.threads",
    "num.replica.fetchers",
    "offset.metadata.max.bytes",
    "offsets.commit.timeout.ms",
    "offsets.load.buffer.size",
    "offsets.retention.check.interval.ms",
    "offsets.topic.compression.codec",
    "principal.builder.class",
    "producer.id.expiration.check.interval.ms",
    "producer.id.expiration.ms",
    "producer.purgatory.purge.interval.requests",
    "queued.max.requests",
    "replica.fetch.min.bytes",
    "replica.high.watermark.checkpoint.interval.ms",
    "replica.selector.class",
    "replica.socket.receive.buffer.bytes",
    "replica.socket.timeout.ms",
    "replication.quota.window.num",
    "replication.quota.window.size.seconds",
    "reserved.broker.max.id",
    "security.inter.broker.protocol",
    "security.providers",
    "server.max.startup.time.ms",
    "socket.connection.setup.timeout.max.ms",
    "socket.connection.setup.timeout.ms",
    "socket.listen.backlog.size",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "telemetry.max.bytes",
    "transaction.state.log.load.buffer.size",
    "unstable.api.versions.enable",
    "unstable.feature.versions.enable",
];

/// Families of Kafka broker keys krust accepts but does not act on.
pub const ACCEPTED_UNUSED_PREFIXES: &[&str] = &[
    "delegation.token.",
    "group.consumer.",
    "group.coordinator.",
    "group.share.",
    "group.streams.",
    "listener.name.",
    "log.cleaner.",
    "metrics.",
    "password.encoder.",
    "remote.log.",
    "sasl.",
    "share.",
    "ssl.",
    "zookeeper.",
];

const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
const LONG_MAX: &str = "9223372036854775807";
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

struct BrokerKeyDef {
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    doc: &'static str,
}

const fn key(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    doc: &'static str,
) -> BrokerKeyDef {
    BrokerKeyDef {
        name,
        ty,
        default,
        doc,
    }
}

use ConfigType as T;

/// Every broker key krust implements, sorted by name.
const BROKER_KEYS: &[BrokerKeyDef] = &[
    key(
        "advertised.listeners",
        T::String,
        None,
        "Listeners published to clients and other nodes; defaults to listeners.",
    ),
    key(
        "allow.everyone.if.no.acl.found",
        T::Boolean,
        Some("false"),
        "With the authorizer on: whether a resource that no ACL names is open to everyone.",
    ),
    key(
        "authorizer.class.name",
        T::String,
        Some(""),
        "The authorizer: empty (none, everything allowed) or \
         org.apache.kafka.metadata.authorizer.StandardAuthorizer (ACLs kept in the metadata log).",
    ),
    key(
        "auto.create.topics.enable",
        T::Boolean,
        Some("true"),
        "Create a topic when a client asks for metadata of one that does not exist.",
    ),
    key(
        "auto.leader.rebalance.enable",
        T::Boolean,
        Some("true"),
        "Whether the active controller moves leadership back to preferred replicas periodically.",
    ),
    key(
        "broker.heartbeat.interval.ms",
        T::Int,
        Some("2000"),
        "How often a broker heartbeats to the active controller.",
    ),
    key(
        "broker.id",
        T::Int,
        Some("-1"),
        "Legacy name of node.id; must equal it when both are set.",
    ),
    key(
        "broker.rack",
        T::String,
        None,
        "Rack of this broker, used for rack-aware replica placement.",
    ),
    key(
        "broker.session.timeout.ms",
        T::Int,
        Some("9000"),
        "A broker without a heartbeat for this long is fenced by the controller.",
    ),
    key(
        "connection.failed.authentication.delay.ms",
        T::Int,
        Some("100"),
        "How long a failed SASL authentication waits before its answer, after which the \
         connection is closed.",
    ),
    key(
        "connections.max.idle.ms",
        T::Long,
        Some("600000"),
        "A client connection with no bytes read or written for this long, and no answer \
         owed, is closed (negative: never).",
    ),
    key(
        "connections.max.reauth.ms",
        T::Long,
        Some("0"),
        "With a positive value, a SASL session lasts this long: a client must \
         re-authenticate before it ends, or its connection is closed (KIP-368). 0: sessions \
         never end.",
    ),
    key(
        "controller.listener.names",
        T::String,
        None,
        "Names of the listeners the controllers use.",
    ),
    key(
        "controller.quorum.bootstrap.servers",
        T::List,
        Some(""),
        "host:port list used to find the controller quorum (dynamic quorum).",
    ),
    key(
        "controller.quorum.election.timeout.ms",
        T::Int,
        Some("1000"),
        "Base timeout before a candidate starts a new election.",
    ),
    key(
        "controller.quorum.fetch.timeout.ms",
        T::Int,
        Some("2000"),
        "A follower that cannot fetch from the leader for this long starts an election.",
    ),
    key(
        "controller.quorum.request.timeout.ms",
        T::Int,
        Some("2000"),
        "Timeout of a request between quorum members.",
    ),
    key(
        "controller.quorum.voters",
        T::List,
        Some(""),
        "Static quorum: id@host:port of every voting controller.",
    ),
    key(
        "default.replication.factor",
        T::Int,
        Some("1"),
        "Replication factor of automatically created topics and of CreateTopics with -1.",
    ),
    key(
        "delete.topic.enable",
        T::Boolean,
        Some("true"),
        "Whether DeleteTopics is allowed.",
    ),
    key(
        "group.consumer.assignors",
        T::List,
        Some("uniform,range"),
        "Server-side assignors of consumer-protocol groups (uniform, range), the default first.",
    ),
    key(
        "group.consumer.heartbeat.interval.ms",
        T::Int,
        Some("5000"),
        "How often consumer-protocol members heartbeat.",
    ),
    key(
        "group.consumer.max.heartbeat.interval.ms",
        T::Int,
        Some("15000"),
        "Largest group.consumer.heartbeat.interval.ms allowed.",
    ),
    key(
        "group.consumer.max.session.timeout.ms",
        T::Int,
        Some("60000"),
        "Largest group.consumer.session.timeout.ms allowed.",
    ),
    key(
        "group.consumer.max.size",
        T::Int,
        Some("2147483647"),
        "Most members of one consumer-protocol group.",
    ),
    key(
        "group.consumer.migration.policy",
        T::String,
        Some("bidirectional"),
        "Whether groups with members move between the classic and consumer protocols: bidirectional, upgrade, downgrade or disabled.",
    ),
    key(
        "group.consumer.min.heartbeat.interval.ms",
        T::Int,
        Some("5000"),
        "Smallest group.consumer.heartbeat.interval.ms allowed.",
    ),
    key(
        "group.consumer.min.session.timeout.ms",
        T::Int,
        Some("45000"),
        "Smallest group.consumer.session.timeout.ms allowed.",
    ),
    key(
        "group.consumer.session.timeout.ms",
        T::Int,
        Some("45000"),
        "How long a consumer-protocol member lives without a heartbeat.",
    ),
    key(
        "group.coordinator.rebalance.protocols",
        T::List,
        Some("classic,consumer"),
        "Group protocols served: classic, and consumer (KIP-848).",
    ),
    key(
        "group.initial.rebalance.delay.ms",
        T::Int,
        Some("3000"),
        "How long a new classic group waits for more members before its first rebalance.",
    ),
    key(
        "group.max.session.timeout.ms",
        T::Int,
        Some("1800000"),
        "Largest session timeout a consumer may ask for.",
    ),
    key(
        "group.min.session.timeout.ms",
        T::Int,
        Some("6000"),
        "Smallest session timeout a consumer may ask for.",
    ),
    key(
        "http.listener",
        T::String,
        Some("http://localhost:9644"),
        "krust: [http://]host:port of the HTTP endpoint serving Prometheus metrics at /metrics; empty disables it. If the port is taken the node starts without it and logs a warning.",
    ),
    key(
        "inter.broker.listener.name",
        T::String,
        None,
        "Listener brokers use to talk to each other; defaults to PLAINTEXT.",
    ),
    key(
        "leader.imbalance.check.interval.seconds",
        T::Long,
        Some("300"),
        "How often the active controller moves leadership back to preferred replicas.",
    ),
    key(
        "listener.security.protocol.map",
        T::String,
        Some(DEFAULT_PROTOCOL_MAP),
        "Security protocol of each listener name (krust supports PLAINTEXT and SASL_PLAINTEXT).",
    ),
    key(
        "listeners",
        T::String,
        Some("PLAINTEXT://:9092"),
        "NAME://host:port addresses to bind; an empty host binds all interfaces.",
    ),
    key(
        "log.cleaner.backoff.ms",
        T::Long,
        Some("15000"),
        "How long a log cleaner sleeps when no log needs compacting.",
    ),
    key(
        "log.cleaner.dedupe.buffer.size",
        T::Long,
        Some("134217728"),
        "Memory for the log cleaners' offset maps, shared by the cleaner threads.",
    ),
    key(
        "log.cleaner.enable",
        T::Boolean,
        Some("true"),
        "Whether topics with cleanup.policy=compact are compacted.",
    ),
    key(
        "log.cleaner.io.max.bytes.per.second",
        T::Double,
        Some("1.7976931348623157E308"),
        "Bytes a second the log cleaners read and write together, at most.",
    ),
    key(
        "log.cleaner.threads",
        T::Int,
        Some("1"),
        "Threads compacting logs.",
    ),
    key(
        "log.cleanup.policy",
        T::List,
        Some("delete"),
        "Default cleanup policy of topics: delete and/or compact.",
    ),
    key(
        "log.dir",
        T::String,
        Some("/tmp/kafka-logs"),
        "Data directory, used when log.dirs is not set.",
    ),
    key(
        "log.dirs",
        T::String,
        None,
        "Comma-separated data directories.",
    ),
    key(
        "log.flush.interval.messages",
        T::Long,
        Some(LONG_MAX),
        "Messages appended to a partition before it is fsynced.",
    ),
    key(
        "log.flush.interval.ms",
        T::Long,
        None,
        "Age of unflushed data that forces an fsync; unset means log.flush.scheduler.interval.ms.",
    ),
    key(
        "log.flush.scheduler.interval.ms",
        T::Long,
        Some(LONG_MAX),
        "How often the time-based flush is checked.",
    ),
    key(
        "log.index.interval.bytes",
        T::Int,
        Some("4096"),
        "Bytes appended between two offset-index entries.",
    ),
    key(
        "log.index.size.max.bytes",
        T::Int,
        Some("10485760"),
        "Maximum size of a segment's offset and time indexes.",
    ),
    key(
        "log.message.timestamp.type",
        T::String,
        Some("CreateTime"),
        "Default timestamp type of topics: CreateTime or LogAppendTime.",
    ),
    key(
        "log.retention.bytes",
        T::Long,
        Some("-1"),
        "Default size limit of a partition (-1: none).",
    ),
    key(
        "log.retention.check.interval.ms",
        T::Long,
        Some("300000"),
        "How often retention is enforced.",
    ),
    key(
        "log.retention.hours",
        T::Int,
        Some("168"),
        "Default retention in hours; overridden by log.retention.minutes and log.retention.ms.",
    ),
    key(
        "log.retention.minutes",
        T::Int,
        None,
        "Default retention in minutes; overridden by log.retention.ms.",
    ),
    key(
        "log.retention.ms",
        T::Long,
        None,
        "Default retention in milliseconds (-1: forever).",
    ),
    key(
        "log.roll.hours",
        T::Int,
        Some("168"),
        "Default age in hours at which a segment is rolled; overridden by log.roll.ms.",
    ),
    key(
        "log.roll.ms",
        T::Long,
        None,
        "Default age in milliseconds at which a segment is rolled.",
    ),
    key(
        "log.segment.bytes",
        T::Int,
        Some("1073741824"),
        "Default size at which a segment is rolled.",
    ),
    key(
        "max.connections",
        T::Int,
        Some("2147483647"),
        "Most client connections open at once over the broker listeners; more wait to be accepted.",
    ),
    key(
        "max.connections.per.ip",
        T::Int,
        Some("2147483647"),
        "Most client connections from one address; more are closed at once.",
    ),
    key(
        "max.connections.per.ip.overrides",
        T::String,
        Some(""),
        "Per-address exceptions to max.connections.per.ip: host or IP:count, comma separated.",
    ),
    key(
        "message.max.bytes",
        T::Int,
        Some("1048588"),
        "Largest record batch a topic accepts by default.",
    ),
    key(
        "metadata.log.dir",
        T::String,
        None,
        "Directory of the cluster metadata log; defaults to the first log dir.",
    ),
    key(
        "metadata.log.max.record.bytes.between.snapshots",
        T::Long,
        Some("20971520"),
        "Bytes of metadata records after which the metadata image is written as a snapshot and the log before it can go.",
    ),
    key(
        "metadata.log.max.snapshot.interval.ms",
        T::Long,
        Some("3600000"),
        "Longest time between metadata snapshots while records keep arriving (0 disables the time trigger).",
    ),
    key(
        "min.insync.replicas",
        T::Int,
        Some("1"),
        "Default number of replicas that must acknowledge an acks=all write.",
    ),
    key(
        "node.id",
        T::Int,
        Some("-1"),
        "Id of this node in the cluster and in the controller quorum.",
    ),
    key(
        "num.partitions",
        T::Int,
        Some("1"),
        "Partition count of automatically created topics.",
    ),
    key(
        "offsets.retention.minutes",
        T::Int,
        Some("10080"),
        "How long committed offsets of an empty group are kept.",
    ),
    key(
        "offsets.topic.num.partitions",
        T::Int,
        Some("50"),
        "Partition count of __consumer_offsets.",
    ),
    key(
        "offsets.topic.replication.factor",
        T::Short,
        Some("3"),
        "Replication factor of __consumer_offsets.",
    ),
    key(
        "offsets.topic.segment.bytes",
        T::Int,
        Some("104857600"),
        "Segment size of __consumer_offsets; also how much a partition of it may grow before it is compacted.",
    ),
    key(
        "process.roles",
        T::List,
        Some(""),
        "Roles of this node: broker, controller, or both.",
    ),
    key(
        "queued.max.request.bytes",
        T::Long,
        Some("-1"),
        "Bytes of requests read and not yet handled, over all connections, before no more \
         are read (-1: no limit).",
    ),
    key(
        "quota.window.num",
        T::Int,
        Some("11"),
        "How many windows a client's byte rate is measured over, for its quotas.",
    ),
    key(
        "quota.window.size.seconds",
        T::Int,
        Some("1"),
        "How long each window of a client's measured byte rate is.",
    ),
    key(
        "replica.fetch.backoff.ms",
        T::Int,
        Some("1000"),
        "Pause after a follower fetch fails.",
    ),
    key(
        "replica.fetch.max.bytes",
        T::Int,
        Some("1048576"),
        "Bytes per partition a follower asks for in one fetch.",
    ),
    key(
        "replica.fetch.response.max.bytes",
        T::Int,
        Some("10485760"),
        "Bytes a follower asks for in one fetch response.",
    ),
    key(
        "replica.fetch.wait.max.ms",
        T::Int,
        Some("500"),
        "How long a follower's fetch waits at the leader for new data.",
    ),
    key(
        "replica.lag.time.max.ms",
        T::Long,
        Some("30000"),
        "A follower that has not caught up for this long leaves the ISR.",
    ),
    key(
        "sasl.enabled.mechanisms",
        T::List,
        Some("GSSAPI"),
        "SASL mechanisms of SASL_PLAINTEXT listeners (listener.name.<listener>.sasl.enabled.mechanisms \
         overrides it for one): PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER.",
    ),
    key(
        "sasl.mechanism.controller.protocol",
        T::String,
        Some("GSSAPI"),
        "The SASL mechanism nodes authenticate with to the controllers when the controller \
         listener is SASL_PLAINTEXT or SASL_SSL: PLAIN or OAUTHBEARER.",
    ),
    key(
        "sasl.mechanism.inter.broker.protocol",
        T::String,
        Some("GSSAPI"),
        "The SASL mechanism brokers authenticate with to each other when the inter-broker \
         listener is SASL_PLAINTEXT.",
    ),
    key(
        "sasl.oauthbearer.clock.skew.seconds",
        T::Int,
        Some("30"),
        "OAUTHBEARER signed tokens: how far the token's times may be off this node's clock.",
    ),
    key(
        "sasl.oauthbearer.expected.audience",
        T::List,
        None,
        "OAUTHBEARER signed tokens: audiences of which a token's aud must hold one; unset, a \
         token must carry no aud.",
    ),
    key(
        "sasl.oauthbearer.expected.issuer",
        T::String,
        None,
        "OAUTHBEARER signed tokens: the iss a token must carry.",
    ),
    key(
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        T::Long,
        Some("3600000"),
        "OAUTHBEARER signed tokens: how often the keys at an http(s) JWKS URL are fetched again.",
    ),
    key(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        T::Long,
        Some("10000"),
        "OAUTHBEARER signed tokens: how long a failed fetch of the keys is retried.",
    ),
    key(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        T::Long,
        Some("100"),
        "OAUTHBEARER signed tokens: the first wait before a failed fetch of the keys is retried \
         (doubling after each).",
    ),
    key(
        "sasl.oauthbearer.jwks.endpoint.url",
        T::String,
        None,
        "OAUTHBEARER signed tokens: the identity provider's keys (JWKS), an https:// or http:// \
         URL fetched at startup and refreshed, or a file: read at startup.",
    ),
    key(
        "sasl.oauthbearer.scope.claim.name",
        T::String,
        Some("scope"),
        "OAUTHBEARER signed tokens: the claim holding the token's scope.",
    ),
    key(
        "sasl.oauthbearer.sub.claim.name",
        T::String,
        Some("sub"),
        "OAUTHBEARER signed tokens: the claim naming the token's principal.",
    ),
    key(
        "sasl.oauthbearer.token.endpoint.url",
        T::String,
        None,
        "OAUTHBEARER between brokers: where a broker gets its token, an http(s) token endpoint \
         (client credentials from the JAAS config's clientId and clientSecret) or a file:.",
    ),
    key(
        "sasl.server.max.receive.size",
        T::Int,
        Some("524288"),
        "The largest request accepted on a SASL listener before the client is authenticated.",
    ),
    key(
        "socket.request.max.bytes",
        T::Int,
        Some("104857600"),
        "Largest request the server accepts.",
    ),
    key(
        "super.users",
        T::String,
        Some(""),
        "Principals the authorizer allows everything, separated by semicolons \
         (User:admin;User:broker).",
    ),
    key(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        T::Int,
        Some("10000"),
        "How often the transaction coordinator aborts transactions past their timeout.",
    ),
    key(
        "transaction.max.timeout.ms",
        T::Int,
        Some("900000"),
        "Largest transaction timeout a producer may ask for.",
    ),
    key(
        "transaction.partition.verification.enable",
        T::Boolean,
        Some("true"),
        "Whether a transactional batch opening its transaction in a partition is first verified with the transaction coordinator.",
    ),
    key(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        T::Int,
        Some("3600000"),
        "How often the transaction coordinator forgets expired transactional ids.",
    ),
    key(
        "transaction.state.log.min.isr",
        T::Int,
        Some("2"),
        "min.insync.replicas of __transaction_state.",
    ),
    key(
        "transaction.state.log.num.partitions",
        T::Int,
        Some("50"),
        "Partition count of __transaction_state.",
    ),
    key(
        "transaction.state.log.replication.factor",
        T::Short,
        Some("3"),
        "Replication factor of __transaction_state.",
    ),
    key(
        "transaction.state.log.segment.bytes",
        T::Int,
        Some("104857600"),
        "segment.bytes of __transaction_state.",
    ),
    key(
        "transactional.id.expiration.ms",
        T::Int,
        Some("604800000"),
        "How long a transactional id with no transaction open is kept after its last use.",
    ),
    key(
        "unclean.leader.election.enable",
        T::Boolean,
        Some("false"),
        "Whether an out-of-sync replica may become leader, at the risk of data loss.",
    ),
];

fn broker_key_def(name: &str) -> Option<&'static BrokerKeyDef> {
    BROKER_KEYS.iter().find(|d| d.name == name)
}

/// `Some(default)` if `name` is a broker key krust implements (the default may be null).
pub fn broker_key_default(name: &str) -> Option<Option<&'static str>> {
    broker_key_def(name).map(|d| d.default)
}

/// The names of every broker key krust implements, sorted.
pub fn implemented_broker_keys() -> impl Iterator<Item = &'static str> {
    BROKER_KEYS.iter().map(|d| d.name)
}

/// Whether `name` is accepted in `server.properties` (implemented or accepted-unused).
pub fn is_known_broker_key(name: &str) -> bool {
    broker_key_def(name).is_some() || is_accepted_unused(name)
}

fn is_accepted_unused(name: &str) -> bool {
    ACCEPTED_UNUSED_KEYS.contains(&name)
        || ACCEPTED_UNUSED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A node's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessRole {
    Broker,
    Controller,
}

/// Kafka's `SecurityProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses a protocol name, case-insensitively.
    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The id used on the wire (BrokerRegistration, DescribeCluster...).
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `log.message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// One `NAME://host:port` endpoint. `host` is empty for "all interfaces".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased listener name, e.g. `PLAINTEXT`, `CONTROLLER`.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: SecurityProtocol,
}

impl Listener {
    /// The socket address to bind (`0.0.0.0:port` for an empty host).
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            self.host.as_str()
        };
        join_host_port(host, self.port)
    }

    /// The host to publish: the configured host, or this machine's host name if empty.
    pub fn advertised_host(&self) -> String {
        if self.host.is_empty() {
            local_hostname()
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// `host:port` of a bootstrap server or of the HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_host_port(&self.host, self.port))
    }
}

/// One entry of `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for QuorumVoter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, join_host_port(&self.host, self.port))
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The typed configuration of a node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub node_id: i32,
    pub process_roles: Vec<ProcessRole>,
    /// Listeners to bind, in configured order.
    pub listeners: Vec<Listener>,
    /// The effective advertised listeners: `advertised.listeners` (or `listeners` when unset),
    /// plus any controller listener of `listeners` that `advertised.listeners` leaves out.
    pub advertised_listeners: Vec<Listener>,
    /// Upper-cased; the first one is used to reach the controllers.
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: String,
    /// The effective map (controller listener names default to PLAINTEXT when the map is
    /// not set explicitly, like Kafka).
    pub listener_security_protocol_map: IndexMap<String, SecurityProtocol>,
    pub controller_quorum_voters: Vec<QuorumVoter>,
    pub controller_quorum_bootstrap_servers: Vec<HostPort>,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: Option<PathBuf>,
    pub metadata_log_max_record_bytes_between_snapshots: i64,
    pub metadata_log_max_snapshot_interval_ms: i64,
    pub num_partitions: i32,
    /// Kafka's type is INT; krust keeps it as the wire's INT16 (1..=32767).
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub log_segment_bytes: i32,
    /// Effective: `log.roll.ms`, else `log.roll.hours`.
    pub log_roll_ms: i64,
    /// Effective: ms > minutes > hours; any negative value is -1 (unlimited).
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: i64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_threads: i32,
    pub log_cleaner_dedupe_buffer_size: i64,
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.io.max.bytes.per.second`; `None` when unlimited (Kafka's default, the
    /// largest double).
    pub log_cleaner_io_max_bytes_per_second: Option<f64>,
    pub log_index_interval_bytes: i32,
    pub log_index_size_max_bytes: i32,
    pub log_flush_interval_messages: i64,
    /// `None` when unset: time-based flushing then follows `log_flush_scheduler_interval_ms`.
    pub log_flush_interval_ms: Option<i64>,
    pub log_flush_scheduler_interval_ms: i64,
    pub log_message_timestamp_type: TimestampType,
    /// `delete` and/or `compact`.
    pub log_cleanup_policy: Vec<String>,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: i32,
    /// `queued.max.request.bytes`; None (-1, 0): no limit.
    pub queued_max_request_bytes: Option<u64>,
    /// `connections.max.idle.ms`; None (negative): never.
    pub connections_max_idle_ms: Option<u64>,
    /// `max.connections`: client connections open at once over the broker listeners.
    pub max_connections: u32,
    /// `max.connections.per.ip`, and its overrides by address (host names resolved at
    /// startup).
    pub max_connections_per_ip: u32,
    pub max_connections_per_ip_overrides: std::collections::HashMap<std::net::IpAddr, u32>,
    /// `listener.name.<listener>.max.connections`, by listener name.
    pub listener_max_connections: std::collections::HashMap<String, u32>,
    /// Authentication: SASL_PLAINTEXT and SASL_SSL listeners, sessions, the inter-broker
    /// credentials.
    pub sasl: crate::sasl::SaslSettings,
    /// The TLS identity of each SSL or SASL_SSL listener, by name.
    pub tls_listeners: std::collections::HashMap<String, std::sync::Arc<rustls::ServerConfig>>,
    /// How this broker reaches other brokers' inter-broker listener: TLS (trusting
    /// `ssl.truststore.*`) and SASL as that listener needs.
    pub inter_broker_security: krust_client::Security,
    /// How this node reaches the controllers' listener: TLS and SASL as its security
    /// protocol needs (`listener.name.<controller>.ssl.*`, `sasl.mechanism.controller.protocol`).
    pub controller_security: krust_client::Security,
    /// The authorizer (`authorizer.class.name`): None allows everything.
    pub authorizer: Option<std::sync::Arc<krust_metadata::acl::AuthorizerSettings>>,
    /// `quota.window.num` and `quota.window.size.seconds`: how client byte rates are
    /// measured for their quotas.
    pub quota_window_num: u32,
    pub quota_window_size_seconds: u32,
    /// `ssl.principal.mapping.rules` of each SSL listener, by name.
    pub ssl_principal_rules:
        std::collections::HashMap<String, std::sync::Arc<crate::principal::MappingRules>>,
    pub min_insync_replicas: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: i32,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_segment_bytes: i32,
    pub transaction_max_timeout_ms: i32,
    pub transaction_partition_verification_enable: bool,
    pub transactional_id_expiration_ms: i32,
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i32,
    pub transaction_remove_expired_transaction_cleanup_interval_ms: i32,
    pub broker_rack: Option<String>,
    pub unclean_leader_election_enable: bool,
    pub replica_lag_time_max_ms: i64,
    /// `auto.leader.rebalance.enable`: the active controller moves leadership back to
    /// preferred replicas every `leader.imbalance.check.interval.seconds`.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: i64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch may wait at the leader.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed follower fetch.
    pub replica_fetch_backoff_ms: i32,
    /// `replica.fetch.max.bytes`: per partition in a follower's fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per follower fetch response.
    pub replica_fetch_response_max_bytes: i32,
    pub broker_heartbeat_interval_ms: i32,
    pub broker_session_timeout_ms: i32,
    pub controller_quorum_election_timeout_ms: i32,
    pub controller_quorum_fetch_timeout_ms: i32,
    pub controller_quorum_request_timeout_ms: i32,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Whether `group.coordinator.rebalance.protocols` holds `consumer` (KIP-848).
    pub consumer_group_protocol: bool,
    /// The `group.consumer.*` settings.
    pub consumer_groups: krust_group::consumer::ConsumerGroupConfig,
    /// The bounds of a group's own session timeout and heartbeat interval.
    pub consumer_group_bounds: ConsumerGroupBounds,
    pub offsets_retention_minutes: i32,
    /// krust's HTTP endpoint (metrics, health); `None` = disabled.
    pub http_listener: Option<HostPort>,
    explicit: BTreeMap<String, String>,
    unused_keys: Vec<String>,
}

/// Typed access to the raw key/value map, with Kafka-style errors.
struct Raw<'a> {
    map: &'a BTreeMap<String, String>,
}

impl Raw<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A listener's own value of `setting` (`listener.name.<listener>.<setting>`, the
    /// listener name in any case), with the key as written.
    fn listener_value(&self, listener: &str, setting: &str) -> Option<(&str, &str)> {
        let prefixed = format!("listener.name.{}.{setting}", listener.to_ascii_lowercase());
        self.map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&prefixed))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Refuses a listener's key (one `is_key` picks) naming a listener `listeners` lacks.
    fn check_listener_keys(
        &self,
        listeners: &[Listener],
        is_key: impl Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        for k in self.map.keys().filter(|k| is_key(k)) {
            let Some((l, _)) = k
                .strip_prefix("listener.name.")
                .and_then(|r| r.split_once('.'))
            else {
                continue;
            };
            if !listeners.iter().any(|x| x.name.eq_ignore_ascii_case(l)) {
                return Err(err(format!("{k}: {l} is not a listener of listeners")));
            }
        }
        Ok(())
    }

    fn number<N: std::str::FromStr + Into<i64> + Copy>(
        &self,
        key: &str,
        ty: ConfigType,
        default: Option<N>,
        min: i64,
        max: i64,
    ) -> Result<Option<N>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let n: N = v
            .parse()
            .map_err(|_| invalid(key, v, format!("Not a number of type {}", ty.name())))?;
        let wide: i64 = n.into();
        if wide < min {
            return Err(invalid(key, v, format!("Value must be at least {min}")));
        }
        if wide > max {
            return Err(invalid(key, v, format!("Value must be no more than {max}")));
        }
        Ok(Some(n))
    }

    fn int(&self, key: &str, default: i32, min: i64) -> Result<i32, ConfigError> {
        Ok(self
            .number(key, T::Int, Some(default), min, i64::MAX)?
            .unwrap_or(default))
    }

    fn opt_int(&self, key: &str, min: i64) -> Result<Option<i32>, ConfigError> {
        self.number::<i32>(key, T::Int, None, min, i64::MAX)
    }

    fn short(&self, key: &str, default: i16, min: i64) -> Result<i16, ConfigError> {
        Ok(self
            .number(key, T::Short, Some(default), min, i64::MAX)?
            .unwrap_or(default))
    }

    fn long(&self, key: &str, default: i64, min: i64) -> Result<i64, ConfigError> {
        Ok(self
            .number(key, T::Long, Some(default), min, i64::MAX)?
            .unwrap_or(default))
    }

    fn opt_long(&self, key: &str, min: i64) -> Result<Option<i64>, ConfigError> {
        self.number::<i64>(key, T::Long, None, min, i64::MAX)
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_bool(v)
                .ok_or_else(|| invalid(key, v, "Expected value to be either true or false")),
        }
    }

    fn one_of(&self, key: &str, default: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        let v = self.get(key).unwrap_or(default);
        if allowed.contains(&v) {
            Ok(v.to_string())
        } else {
            Err(invalid(
                key,
                v,
                format!("String must be one of: {}", allowed.join(", ")),
            ))
        }
    }
}

/// `group.consumer.min/max.session.timeout.ms` and `...heartbeat.interval.ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupBounds {
    /// (min, max) session timeout.
    pub session: (i32, i32),
    /// (min, max) heartbeat interval.
    pub heartbeat: (i32, i32),
}

/// Whether the consumer protocol is on, its settings, and a group's own settings' bounds.
type ConsumerGroupSettings = (
    bool,
    krust_group::consumer::ConsumerGroupConfig,
    ConsumerGroupBounds,
);

/// `group.coordinator.rebalance.protocols` and the `group.consumer.*` settings, checked as
/// Kafka checks them.
fn consumer_group_settings(raw: &Raw<'_>) -> Result<ConsumerGroupSettings, ConfigError> {
    const PROTOCOLS: &str = "group.coordinator.rebalance.protocols";
    let protocols = raw.get(PROTOCOLS).unwrap_or("classic,consumer");
    let mut consumer = false;
    let mut classic = false;
    for p in protocols
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match p.to_ascii_lowercase().as_str() {
            "classic" => classic = true,
            "consumer" => consumer = true,
            "share" | "streams" => {
                return Err(invalid(
                    PROTOCOLS,
                    protocols,
                    format!("krust does not implement {p} groups"),
                ))
            }
            _ => {
                return Err(invalid(
                    PROTOCOLS,
                    protocols,
                    format!("Invalid rebalance protocol {p}: expected classic or consumer"),
                ))
            }
        }
    }
    if !classic {
        return Err(invalid(
            PROTOCOLS,
            protocols,
            "The classic rebalance protocol cannot be disabled",
        ));
    }
    const ASSIGNORS: &str = "group.consumer.assignors";
    let list = raw.get(ASSIGNORS).unwrap_or("uniform,range");
    let mut assignors = Vec::new();
    for a in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let name = match a {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            other => {
                return Err(invalid(
                    ASSIGNORS,
                    list,
                    format!("{other}: krust's assignors are uniform and range (custom assignors are not supported)"),
                ))
            }
        };
        if !assignors.iter().any(|x| x == name) {
            assignors.push(name.to_string());
        }
    }
    if assignors.is_empty() {
        return Err(invalid(ASSIGNORS, list, "At least one assignor is needed"));
    }
    let bounded = |key: &str,
                   default: i32,
                   min_key: &str,
                   min_default: i32,
                   max_key: &str,
                   max_default: i32|
     -> Result<(i32, (i32, i32)), ConfigError> {
        let min = raw.int(min_key, min_default, 1)?;
        let max = raw.int(max_key, max_default, 1)?;
        let v = raw.int(key, default, 1)?;
        if v < min {
            return Err(invalid(
                key,
                &v.to_string(),
                format!("{key} must be greater than or equal to {min_key}"),
            ));
        }
        if v > max {
            return Err(invalid(
                key,
                &v.to_string(),
                format!("{key} must be less than or equal to {max_key}"),
            ));
        }
        Ok((v, (min, max)))
    };
    let (session_timeout_ms, session_bounds) = bounded(
        "group.consumer.session.timeout.ms",
        45_000,
        "group.consumer.min.session.timeout.ms",
        45_000,
        "group.consumer.max.session.timeout.ms",
        60_000,
    )?;
    let (heartbeat_interval_ms, heartbeat_bounds) = bounded(
        "group.consumer.heartbeat.interval.ms",
        5_000,
        "group.consumer.min.heartbeat.interval.ms",
        5_000,
        "group.consumer.max.heartbeat.interval.ms",
        15_000,
    )?;
    if heartbeat_interval_ms >= session_timeout_ms {
        return Err(invalid(
            "group.consumer.heartbeat.interval.ms",
            &heartbeat_interval_ms.to_string(),
            "group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms",
        ));
    }
    const MIGRATION: &str = "group.consumer.migration.policy";
    let migration = match raw.get(MIGRATION) {
        None => krust_group::consumer::MigrationPolicy::Bidirectional,
        Some(v) => krust_group::consumer::MigrationPolicy::parse(v).ok_or_else(|| {
            invalid(
                MIGRATION,
                v,
                "String must be one of (case insensitive): BIDIRECTIONAL, UPGRADE, DOWNGRADE, DISABLED",
            )
        })?,
    };
    let max_size = raw.int("group.consumer.max.size", i32::MAX, 1)?;
    Ok((
        consumer,
        krust_group::consumer::ConsumerGroupConfig {
            session_timeout_ms,
            heartbeat_interval_ms,
            max_size: (max_size < i32::MAX).then_some(max_size as usize),
            assignors,
            max_session_timeout_ms: session_bounds.1,
            migration,
        },
        ConsumerGroupBounds {
            session: session_bounds,
            heartbeat: heartbeat_bounds,
        },
    ))
}

/// Splits `host:port` (IPv6 hosts in brackets, or bare when the port is after the last `:`).
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        s.rsplit_once(':')?
    };
    let port: u16 = port.trim().parse().ok()?;
    if host.chars().any(char::is_whitespace) {
        return None;
    }
    Some((host.to_string(), port))
}

fn is_non_routable(host: &str) -> bool {
    host == "0.0.0.0" || host == "::" || host == "[::]"
}

/// Parses `NAME://host:port,...` into `(NAME, host, port)` triples.
fn parse_endpoints(key: &str, raw: &str) -> Result<Vec<(String, String, u16)>, ConfigError> {
    let mut out: Vec<(String, String, u16)> = Vec::new();
    for item in split_list(raw) {
        if item.is_empty() {
            continue;
        }
        let parsed = item.split_once("://").and_then(|(name, rest)| {
            let name = name.trim();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ':') {
                return None;
            }
            let (host, port) = split_host_port(rest)?;
            Some((name.to_ascii_uppercase(), host, port))
        });
        let Some(ep) = parsed else {
            return Err(invalid(
                key,
                raw,
                format!(
                    "'{item}' is not a listener of the form NAME://host:port \
                     (leave the host empty to bind all interfaces)"
                ),
            ));
        };
        if out.iter().any(|(n, _, _)| *n == ep.0) {
            return Err(invalid(
                key,
                raw,
                format!(
                    "Each listener must have a different name; {} appears twice",
                    ep.0
                ),
            ));
        }
        out.push(ep);
    }
    Ok(out)
}

fn parse_protocol_map(raw: &str) -> Result<IndexMap<String, SecurityProtocol>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    let mut map = IndexMap::new();
    for item in split_list(raw) {
        if item.is_empty() {
            continue;
        }
        let Some((name, proto)) = item.split_once(':') else {
            return Err(invalid(
                KEY,
                raw,
                format!("entry '{item}' must have the form LISTENER_NAME:SECURITY_PROTOCOL"),
            ));
        };
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(invalid(
                KEY,
                raw,
                format!("entry '{item}' has an empty listener name"),
            ));
        }
        let Some(p) = SecurityProtocol::parse(proto) else {
            return Err(invalid(
                KEY,
                raw,
                format!(
                    "unknown security protocol '{}' in entry '{item}' \
                     (expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)",
                    proto.trim()
                ),
            ));
        };
        map.insert(name, p);
    }
    Ok(map)
}

fn parse_voters(raw: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    const KEY: &str = "controller.quorum.voters";
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for item in split_list(raw) {
        if item.is_empty() {
            continue;
        }
        let parsed = item.split_once('@').and_then(|(id, addr)| {
            let id: i32 = id.trim().parse().ok().filter(|id| *id >= 0)?;
            let (host, port) = split_host_port(addr.trim())?;
            (!host.is_empty()).then_some(QuorumVoter { id, host, port })
        });
        let Some(v) = parsed else {
            return Err(invalid(
                KEY,
                raw,
                format!("entry '{item}' must have the form {{id}}@{{host}}:{{port}}, e.g. 1@localhost:9093"),
            ));
        };
        if is_non_routable(&v.host) {
            return Err(invalid(
                KEY,
                raw,
                format!(
                    "voter {} uses the non-routable address {}; use a host other nodes can reach",
                    v.id, v.host
                ),
            ));
        }
        if voters.iter().any(|o| o.id == v.id) {
            return Err(invalid(
                KEY,
                raw,
                format!("voter id {} appears more than once", v.id),
            ));
        }
        voters.push(v);
    }
    Ok(voters)
}

fn parse_host_ports(key: &str, raw: &str) -> Result<Vec<HostPort>, ConfigError> {
    let mut out = Vec::new();
    for item in split_list(raw) {
        if item.is_empty() {
            continue;
        }
        match split_host_port(&item) {
            Some((host, port)) if !host.is_empty() => out.push(HostPort { host, port }),
            _ => {
                return Err(invalid(
                    key,
                    raw,
                    format!("'{item}' is not of the form host:port"),
                ))
            }
        }
    }
    Ok(out)
}

fn names(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses the Java `.properties` format: `#`/`!` comment lines, `key=value`, `key: value` or
/// `key value`, backslash line continuation and escapes (`\t \n \r \f \uXXXX`, `\x` → `x`).
/// Keys and values are trimmed. Later duplicates are kept (the last one wins when applied).
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let lines = natural_lines(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i].trim_start_matches(is_prop_ws);
        i += 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let mut logical = line.to_string();
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            if i < lines.len() {
                logical.push_str(lines[i].trim_start_matches(is_prop_ws));
                i += 1;
            } else {
                break;
            }
        }
        out.push(split_key_value(&logical, line_no)?);
    }
    Ok(out)
}

fn is_prop_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

fn natural_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                out.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_key_value(logical: &str, line_no: usize) -> Result<(String, String), ConfigError> {
    let chars: Vec<char> = logical.chars().collect();
    let mut i = 0;
    let mut key_end = chars.len();
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i += 2;
            continue;
        }
        if c == '=' || c == ':' || is_prop_ws(c) {
            key_end = i;
            break;
        }
        i += 1;
    }
    let key_end = key_end.min(chars.len());
    let mut j = key_end;
    while j < chars.len() && is_prop_ws(chars[j]) {
        j += 1;
    }
    if j < chars.len() && (chars[j] == '=' || chars[j] == ':') {
        j += 1;
        while j < chars.len() && is_prop_ws(chars[j]) {
            j += 1;
        }
    }
    let key = unescape(&chars[..key_end], line_no)?;
    let value = unescape(&chars[j..], line_no)?;
    Ok((key.trim().to_string(), value))
}

/// Resolves escapes and drops trailing unescaped whitespace.
fn unescape(chars: &[char], line_no: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(chars.len());
    let mut keep = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            out.push(c);
            if !c.is_whitespace() {
                keep = out.len();
            }
            continue;
        }
        let Some(&e) = chars.get(i) else {
            break;
        };
        i += 1;
        let resolved = match e {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\u{c}',
            'u' => {
                let hex: String = chars
                    .get(i..i + 4)
                    .map(|h| h.iter().collect())
                    .unwrap_or_default();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        err(format!(
                            "line {line_no}: malformed \\uxxxx escape '\\u{hex}' in properties"
                        ))
                    })?;
                i += 4;
                code
            }
            other => other,
        };
        out.push(resolved);
        keep = out.len();
    }
    out.truncate(keep);
    Ok(out)
}

/// Decodes a config file: UTF-8, or ISO-8859-1 (Java's properties encoding) if not valid UTF-8.
fn decode_file(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|b| char::from(*b)).collect(),
    }
}

/// Parses one `key=value` command-line override.
pub fn parse_override(s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(err(format!(
            "Invalid config override '{s}': expected key=value, e.g. --override log.dirs=/data"
        ))),
    }
}

impl ServerConfig {
    /// Loads the config file (or, without one, [`SINGLE_NODE_DEFAULTS`]) and applies the
    /// `key=value` overrides on top.
    pub fn load(
        config_file: Option<&Path>,
        overrides: &[String],
    ) -> Result<ServerConfig, ConfigError> {
        let mut props: Vec<(String, String)> = match config_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                parse_properties(&decode_file(bytes))
                    .map_err(|e| err(format!("{}: {e}", path.display())))?
            }
            None => SINGLE_NODE_DEFAULTS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for o in overrides {
            props.push(parse_override(o)?);
        }
        let cfg = ServerConfig::from_properties(&props);
        match (config_file, cfg) {
            (Some(path), Err(ConfigError::Invalid(m))) => {
                Err(err(format!("{m} (in {} or its overrides)", path.display())))
            }
            (_, r) => r,
        }
    }

    /// Builds and validates a config from key/value pairs (later pairs win).
    pub fn from_properties(props: &[(String, String)]) -> Result<ServerConfig, ConfigError> {
        let mut explicit = BTreeMap::new();
        for (k, v) in props {
            explicit.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut unused_keys = Vec::new();
        for (k, v) in &explicit {
            if k == "zookeeper.connect" && !v.is_empty() {
                return Err(err(format!(
                    "ZooKeeper mode is not supported: remove zookeeper.connect={v} \
                     (krust runs in KRaft mode only)"
                )));
            }
            if k == "principal.builder.class"
                && !v.is_empty()
                && v
                    != "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder"
            {
                return Err(invalid(
                    k,
                    v,
                    "krust builds principals as Kafka's DefaultKafkaPrincipalBuilder does; \
                     other builders are not supported",
                ));
            }
            if k == "control.plane.listener.name" && !v.is_empty() {
                return Err(err(format!(
                    "control.plane.listener.name={v} is not supported in KRaft mode"
                )));
            }
            if broker_key_def(k).is_some()
                || listener_max_connections_key(k).is_some()
                || listener_sasl_key(k).is_some()
                || is_tls_key(k)
            {
                continue;
            }
            if is_accepted_unused(k) {
                match topic_config::validate_broker_synonym(k, v) {
                    Some(Err(e)) => return Err(err(e)),
                    // A topic setting's broker default (log.cleaner.min.cleanable.ratio...).
                    Some(Ok(_)) => {}
                    None => unused_keys.push(k.clone()),
                }
                continue;
            }
            return Err(err(format!(
                "Unknown configuration key '{k}' (value '{v}'): it is neither a krust setting \
                 nor a known Kafka broker setting; check the spelling"
            )));
        }
        for k in &unused_keys {
            tracing::info!("config {k} accepted, not used by krust");
        }
        let raw = Raw { map: &explicit };
        // What the config keeps of the keys holds no JAAS secrets (its debug form, say).
        let mut kept = explicit.clone();
        for (k, v) in kept.iter_mut() {
            if k == "sasl.jaas.config"
                || k.ends_with(".sasl.jaas.config")
                || k.ends_with("ssl.keystore.key")
                || k.ends_with("password")
            {
                *v = "[hidden]".to_string();
            }
        }
        build(&raw, kept, unused_keys)
    }

    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Broker)
    }

    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Controller)
    }

    fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }

    /// The first listener that is not a controller listener.
    pub fn broker_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| !self.is_controller_listener(&l.name))
    }

    /// All listeners that serve clients (not controller listeners).
    pub fn broker_listeners(&self) -> Vec<&Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.is_controller_listener(&l.name))
            .collect()
    }

    /// The bound listener named by the first `controller.listener.names` entry (controllers only).
    pub fn controller_listener(&self) -> Option<&Listener> {
        let first = self.controller_listener_names.first()?;
        self.listeners.iter().find(|l| &l.name == first)
    }

    /// The advertised inter-broker listener (else the first advertised broker listener).
    pub fn advertised_broker_listener(&self) -> Option<&Listener> {
        self.advertised_listeners
            .iter()
            .find(|l| l.name == self.inter_broker_listener_name)
            .or_else(|| self.advertised_broker_listeners().into_iter().next())
    }

    /// Every advertised listener that is not a controller listener, as brokers register them.
    pub fn advertised_broker_listeners(&self) -> Vec<&Listener> {
        self.advertised_listeners
            .iter()
            .filter(|l| !self.is_controller_listener(&l.name))
            .collect()
    }

    /// The advertised address of this node's controller listener.
    pub fn advertised_controller_listener(&self) -> Option<&Listener> {
        let first = self.controller_listener_names.first()?;
        self.advertised_listeners.iter().find(|l| &l.name == first)
    }

    /// The directory of `__cluster_metadata-0`: `metadata.log.dir`, else the first log dir.
    pub fn metadata_log_dir(&self) -> &Path {
        match &self.metadata_log_dir {
            Some(d) => d,
            None => self
                .log_dirs
                .first()
                .map(PathBuf::as_path)
                .unwrap_or_else(|| Path::new("/tmp/kafka-logs")),
        }
    }

    /// Log dirs plus the metadata dir if it is separate, without duplicates.
    pub fn all_log_dirs(&self) -> Vec<PathBuf> {
        let mut out = self.log_dirs.clone();
        let meta = self.metadata_log_dir().to_path_buf();
        if !out.contains(&meta) {
            out.push(meta);
        }
        out
    }

    /// Effective time-based flush interval (`i64::MAX`: never).
    pub fn effective_flush_interval_ms(&self) -> i64 {
        self.log_flush_interval_ms
            .unwrap_or(self.log_flush_scheduler_interval_ms)
    }

    /// The keys set explicitly (file, overrides or embedded defaults), trimmed.
    pub fn explicit(&self) -> &BTreeMap<String, String> {
        &self.explicit
    }

    /// Keys that were accepted but are not used by krust.
    pub fn unused_keys(&self) -> &[String] {
        &self.unused_keys
    }

    /// DescribeConfigs for the broker resource: every key krust implements.
    pub fn describe_broker_configs(&self) -> Vec<ConfigEntryDesc> {
        BROKER_KEYS
            .iter()
            .map(|def| {
                let value = match self.explicit.get(def.name) {
                    Some(v) => Some(canonical(def.ty, v)),
                    None => def.default.map(str::to_string),
                };
                let mut synonyms = Vec::new();
                for syn in broker_synonyms(def.name) {
                    if let Some(v) = self.explicit.get(*syn) {
                        let ty = broker_key_def(syn).map_or(def.ty, |d| d.ty);
                        synonyms.push((
                            syn.to_string(),
                            Some(canonical(ty, v)),
                            SOURCE_STATIC_BROKER_CONFIG,
                        ));
                    }
                    if let Some(d) = broker_key_def(syn).and_then(|d| d.default) {
                        synonyms.push((
                            syn.to_string(),
                            Some(d.to_string()),
                            SOURCE_DEFAULT_CONFIG,
                        ));
                    }
                }
                let source = synonyms.first().map_or(SOURCE_DEFAULT_CONFIG, |s| s.2);
                ConfigEntryDesc {
                    name: def.name.to_string(),
                    value,
                    source,
                    read_only: true,
                    sensitive: false,
                    config_type: def.ty.as_i8(),
                    documentation: Some(def.doc.to_string()),
                    synonyms,
                }
            })
            .collect()
    }
}

/// Broker keys that stand in for one another, most specific first (Kafka's broker synonyms).
fn broker_synonyms(name: &str) -> &'static [&'static str] {
    const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];
    const RETENTION: &[&str] = &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    const FLUSH: &[&str] = &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"];
    match name {
        "log.roll.ms" | "log.roll.hours" => ROLL,
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => RETENTION,
        "log.flush.interval.ms" => FLUSH,
        _ => BROKER_KEYS
            .iter()
            .find(|d| d.name == name)
            .map_or(&[], |d| std::slice::from_ref(&d.name)),
    }
}

/// The listener a `listener.name.<listener>.max.connections` key is about.
fn listener_max_connections_key(key: &str) -> Option<&str> {
    key.strip_prefix("listener.name.")?
        .strip_suffix(".max.connections")
        .filter(|l| !l.is_empty() && !l.contains('.'))
}

/// The listener (lower case, as Kafka writes it) and setting of a listener's SASL key:
/// `listener.name.<listener>.sasl.enabled.mechanisms` or
/// `listener.name.<listener>.<mechanism>.sasl.jaas.config`.
fn listener_sasl_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("listener.name.")?;
    let (listener, setting) = rest.split_once('.')?;
    let known = setting == "sasl.enabled.mechanisms"
        || setting == "oauthbearer.sasl.server.callback.handler.class"
        || setting
            .strip_prefix("oauthbearer.")
            .unwrap_or(setting)
            .starts_with("sasl.oauthbearer.")
        || setting
            .strip_suffix(".sasl.jaas.config")
            .is_some_and(|m| !m.is_empty() && !m.contains('.'));
    (known && !listener.is_empty()).then_some((listener, setting))
}

/// The TLS keys krust reads (also with a `listener.name.<listener>.` prefix).
const TLS_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.cipher.suites",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.truststore.password",
    "ssl.endpoint.identification.algorithm",
];

/// Whether `key` is one of [`TLS_KEYS`], bare or for one listener.
fn is_tls_key(key: &str) -> bool {
    let bare = key
        .strip_prefix("listener.name.")
        .and_then(|r| r.split_once('.'))
        .map_or(key, |(_, k)| k);
    TLS_KEYS.contains(&bare)
}

/// Kafka's KRaft authorizer, the one `authorizer.class.name` may name.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// `authorizer.class.name`, `super.users` and `allow.everyone.if.no.acl.found`.
fn authorizer_settings(
    raw: &Raw<'_>,
) -> Result<Option<std::sync::Arc<krust_metadata::acl::AuthorizerSettings>>, ConfigError> {
    let allow_if_no_acl = raw.boolean("allow.everyone.if.no.acl.found", false)?;
    let mut super_users = Vec::new();
    for p in raw.get("super.users").unwrap_or("").split(';') {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        if krust_metadata::acl::check_principal(p).is_err() {
            return Err(invalid(
                "super.users",
                raw.get("super.users").unwrap_or(""),
                format!("`{p}` is not a principal of the form Type:name (User:admin)"),
            ));
        }
        super_users.push(p.to_string());
    }
    match raw.get("authorizer.class.name").unwrap_or("") {
        "" => Ok(None),
        STANDARD_AUTHORIZER => Ok(Some(std::sync::Arc::new(
            krust_metadata::acl::AuthorizerSettings {
                super_users,
                allow_if_no_acl,
            },
        ))),
        v @ ("kafka.security.authorizer.AclAuthorizer" | "kafka.security.auth.SimpleAclAuthorizer") => {
            Err(invalid(
                "authorizer.class.name",
                v,
                format!("this authorizer keeps its ACLs in ZooKeeper; in KRaft mode use {STANDARD_AUTHORIZER}"),
            ))
        }
        v => Err(invalid(
            "authorizer.class.name",
            v,
            format!("krust's authorizer is {STANDARD_AUTHORIZER} (or none: empty)"),
        )),
    }
}

/// The TLS identity of each SSL and SASL_SSL listener (a PEM keystore), and the trust of
/// the inter-broker client when that listener is one of them.
#[allow(clippy::type_complexity)]
fn tls_settings(
    raw: &Raw,
    listeners: &[Listener],
    controller: &Listener,
    inter_broker_listener_name: &str,
    is_broker: bool,
) -> Result<
    (
        std::collections::HashMap<String, std::sync::Arc<rustls::ServerConfig>>,
        Option<std::sync::Arc<rustls::ClientConfig>>,
        Option<std::sync::Arc<rustls::ClientConfig>>,
    ),
    ConfigError,
> {
    // A broker that does not bind the controller listener still reaches it with its
    // settings (truststore, and the certificate it shows if it has one).
    let bound: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
    let listeners = &with_controller(listeners, controller)[..];
    // A listener's own value (`listener.name.<l>.<key>`) wins over the broker's.
    let get = |l: &str, key: &str| -> Option<(String, String)> {
        raw.listener_value(l, key)
            .or_else(|| {
                raw.map
                    .get_key_value(key)
                    .map(|(k, v)| (k.as_str(), v.as_str()))
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
    };
    let read_file = |key: &str, path: &str| {
        std::fs::read(path).map_err(|e| invalid(key, path, format!("cannot read it: {e}")))
    };
    raw.check_listener_keys(listeners, is_tls_key)?;
    let check_identification = |name: &str| -> Result<(), ConfigError> {
        match get(name, "ssl.endpoint.identification.algorithm") {
            Some((k, v)) if !v.eq_ignore_ascii_case("https") => Err(invalid(
                &k,
                &v,
                "krust always verifies that a node's certificate names it (https)",
            )),
            _ => Ok(()),
        }
    };
    let mut out = std::collections::HashMap::new();
    let mut inter_broker_tls = None;
    let mut controller_tls = None;
    for l in listeners {
        if !matches!(
            l.security_protocol,
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
        ) {
            continue;
        }
        let name = &l.name;
        let pem_only = |key: &str| -> Result<(), ConfigError> {
            match get(name, key) {
                Some((k, v)) if !v.eq_ignore_ascii_case("PEM") => Err(invalid(
                    &k,
                    &v,
                    "krust reads PEM stores only: set it to PEM",
                )),
                None => Err(err(format!(
                    "Listener {name} uses TLS: set {key}=PEM (krust reads PEM stores only)"
                ))),
                _ => Ok(()),
            }
        };
        if bound.contains(name) || get(name, "ssl.keystore.type").is_some() {
            pem_only("ssl.keystore.type")?;
        }
        for refused in ["ssl.key.password", "ssl.keystore.password"] {
            if let Some((k, v)) = get(name, refused).filter(|(_, v)| !v.is_empty()) {
                let _ = v;
                return Err(err(format!(
                    "{k} is set, but krust reads unencrypted PEM keys only: remove it and \
                     give the key unencrypted"
                )));
            }
        }
        // Client certificates: none (Kafka's default), requested or required.
        // On a SASL_SSL listener only its own value counts: clients authenticate with SASL
        // there, and the broker-wide value is for SSL listeners (KIP-684).
        let client_auth_value = if l.security_protocol == SecurityProtocol::SaslSsl {
            raw.listener_value(name, "ssl.client.auth")
                .map(|(k, v)| (k.to_string(), v.to_string()))
        } else {
            get(name, "ssl.client.auth")
        };
        let client_auth = match client_auth_value {
            None => None,
            Some((k, v)) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "none" => None,
                "requested" => Some(false),
                "required" => Some(true),
                _ => {
                    return Err(invalid(
                        &k,
                        &v,
                        "String must be one of: required, requested, none",
                    ))
                }
            },
        };
        let truststore = |purpose: &str| -> Result<Vec<u8>, ConfigError> {
            pem_only("ssl.truststore.type")?;
            match (
                get(name, "ssl.truststore.location"),
                get(name, "ssl.truststore.certificates"),
            ) {
                (Some((k, path)), None) => read_file(&k, &path),
                (None, Some((_, certs))) => Ok(certs.into_bytes()),
                _ => Err(err(format!(
                    "{purpose} on listener {name}: set ssl.truststore.location (a PEM file of \
                     the certificates to trust) or ssl.truststore.certificates"
                ))),
            }
        };
        if !bound.contains(name) {
            // The controller listener of a broker that does not bind it: only how to reach
            // it, with the broker's certificate when one is configured.
            check_identification(name)?;
            let trust = truststore("Nodes reach the controllers over TLS")?;
            let identity = match (
                get(name, "ssl.keystore.location"),
                get(name, "ssl.keystore.certificate.chain"),
                get(name, "ssl.keystore.key"),
            ) {
                (Some((k, path)), None, None) => {
                    let pem = read_file(&k, &path)?;
                    Some((pem.clone(), pem))
                }
                (None, Some((_, chain)), Some((_, key))) => {
                    Some((chain.into_bytes(), key.into_bytes()))
                }
                _ => None,
            };
            let client = krust_client::tls::client_config(
                Some(&trust),
                identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
            )
            .map_err(|e| err(format!("The TLS settings of listener {name}: {e}")))?;
            controller_tls = Some(client);
            continue;
        }
        let client_roots = match client_auth {
            None => None,
            Some(required) => Some((truststore("Client certificates are checked")?, required)),
        };
        if let Some((k, v)) = get(name, "ssl.cipher.suites").filter(|(_, v)| !v.trim().is_empty()) {
            return Err(invalid(
                &k,
                &v,
                "choosing cipher suites is not supported: krust uses rustls' safe defaults",
            ));
        }
        let (pk, protocols) = get(name, "ssl.enabled.protocols")
            .unwrap_or_else(|| ("ssl.enabled.protocols".into(), "TLSv1.2,TLSv1.3".into()));
        let (versions, left_out) =
            krust_client::tls::versions(&protocols).map_err(|e| invalid(&pk, &protocols, e))?;
        if !left_out.is_empty() {
            tracing::warn!(
                listener = %name,
                "{pk}: {} not offered (krust speaks TLSv1.2 and TLSv1.3)",
                left_out.join(", ")
            );
        }
        let (chain, key) = match (
            get(name, "ssl.keystore.location"),
            get(name, "ssl.keystore.certificate.chain"),
            get(name, "ssl.keystore.key"),
        ) {
            (Some((k, path)), None, None) => {
                let pem = read_file(&k, &path)?;
                (pem.clone(), pem)
            }
            (None, Some((_, chain)), Some((_, key))) => (chain.into_bytes(), key.into_bytes()),
            _ => {
                return Err(err(format!(
                    "Listener {name} uses TLS: set ssl.keystore.location (a PEM file with the \
                     private key and certificate chain), or ssl.keystore.certificate.chain and \
                     ssl.keystore.key"
                )))
            }
        };
        let roots = client_roots
            .as_ref()
            .map(|(pem, required)| (pem.as_slice(), *required));
        let config = krust_client::tls::server_config(&chain, &key, &versions, roots)
            .map_err(|e| err(format!("The TLS settings of listener {name}: {e}")))?;
        out.insert(name.clone(), config);

        if is_broker && name == inter_broker_listener_name {
            let trust = truststore("Brokers reach each other over TLS")?;
            check_identification(name)?;
            // A broker shows its own certificate to the others, as Kafka's does, which
            // listeners that check client certificates need.
            let client = krust_client::tls::client_config(Some(&trust), Some((&chain, &key)))
                .map_err(|e| err(format!("The TLS truststore of listener {name}: {e}")))?;
            inter_broker_tls = Some(client);
        }
        if *name == controller.name {
            check_identification(name)?;
            let trust = truststore("Nodes reach the controllers over TLS")?;
            let client = krust_client::tls::client_config(Some(&trust), Some((&chain, &key)))
                .map_err(|e| err(format!("The TLS truststore of listener {name}: {e}")))?;
            controller_tls = Some(client);
        }
    }
    Ok((out, inter_broker_tls, controller_tls))
}

/// The SASL settings of the SASL_PLAINTEXT listeners, checked: mechanisms krust
/// implements, a PLAIN listener's users, the inter-broker credentials.
fn sasl_settings(
    raw: &Raw,
    listeners: &[Listener],
    controller: &Listener,
    inter_broker_listener_name: &str,
    is_broker: bool,
) -> Result<crate::sasl::SaslSettings, ConfigError> {
    use krust_protocol::sasl::{parse_jaas, JaasConfig, Mechanism};
    let listener_key = |l: &str, setting: &str| raw.listener_value(l, setting);
    raw.check_listener_keys(&with_controller(listeners, controller), |k| {
        listener_sasl_key(k).is_some()
    })?;
    let jaas = |l: &str, m: Mechanism| -> Result<Option<JaasConfig>, ConfigError> {
        let setting = format!("{}.sasl.jaas.config", m.name().to_ascii_lowercase());
        let Some((key, v)) = listener_key(l, &setting) else {
            return Ok(None);
        };
        let j = parse_jaas(v).map_err(|e| invalid(key, "[hidden]", e))?;
        if j.login_module != m.login_module() {
            return Err(invalid(
                key,
                "[hidden]",
                format!("{m} needs the login module {}", m.login_module()),
            ));
        }
        Ok(Some(j))
    };
    // The credentials this node authenticates with on listener `lname`'s mechanism `m`
    // (the username and password of its JAAS config, or an OAUTHBEARER login).
    let credentials = |lname: &str,
                       m: Mechanism,
                       purpose: &str|
     -> Result<krust_client::SaslCredentials, ConfigError> {
        let jaas_key = format!(
            "listener.name.{}.{}.sasl.jaas.config",
            lname.to_ascii_lowercase(),
            m.name().to_ascii_lowercase()
        );
        let creds = if m == Mechanism::OAuthBearer {
            let j = jaas(lname, m)?;
            let options = j.map(|j| j.options).unwrap_or_default();
            let endpoint = [
                "oauthbearer.sasl.oauthbearer.token.endpoint.url",
                "sasl.oauthbearer.token.endpoint.url",
            ]
            .iter()
            .find_map(|s| listener_key(lname, s))
            .or_else(|| {
                raw.get("sasl.oauthbearer.token.endpoint.url")
                    .map(|v| ("sasl.oauthbearer.token.endpoint.url", v))
            });
            let login =
                krust_client::oauth::OAuthLogin::from_options(&options, endpoint.map(|(_, v)| v))
                    .map_err(|e| {
                    err(format!(
                        "{purpose} with OAUTHBEARER on listener {lname}: {jaas_key}: {e}"
                    ))
                })?;
            Some(krust_client::SaslCredentials {
                mechanism: m,
                username: String::new(),
                password: String::new(),
                oauth: Some(std::sync::Arc::new(login)),
            })
        } else {
            jaas(lname, m)?.and_then(|j| {
                Some(krust_client::SaslCredentials {
                    mechanism: m,
                    username: j.option("username")?.to_string(),
                    password: j.option("password")?.to_string(),
                    oauth: None,
                })
            })
        };
        creds.ok_or_else(|| {
            err(format!(
                "{purpose} with {m} on listener {lname}: {jaas_key} must give the username \
                 and password options they use"
            ))
        })
    };
    let mut settings = crate::sasl::SaslSettings {
        reauth_ms: u64::try_from(raw.long("connections.max.reauth.ms", 0, i64::MIN)?).unwrap_or(0),
        failed_auth_delay_ms: raw
            .int("connection.failed.authentication.delay.ms", 100, 0)?
            .unsigned_abs()
            .into(),
        max_receive_size: raw
            .int("sasl.server.max.receive.size", 524_288, 1)?
            .unsigned_abs() as usize,
        ..Default::default()
    };
    for l in listeners {
        if !matches!(
            l.security_protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        ) {
            continue;
        }

        let (key, list) = match listener_key(&l.name, "sasl.enabled.mechanisms") {
            Some(kv) => kv,
            None => (
                "sasl.enabled.mechanisms",
                raw.get("sasl.enabled.mechanisms").unwrap_or("GSSAPI"),
            ),
        };
        let mut mechanisms = Vec::new();
        for name in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let m = Mechanism::parse(name).ok_or_else(|| {
                invalid(
                    key,
                    list,
                    format!(
                        "SASL mechanism {name} of listener {} is not supported: krust implements \
                         PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER",
                        l.name
                    ),
                )
            })?;
            if !mechanisms.contains(&m) {
                mechanisms.push(m);
            }
        }
        if mechanisms.is_empty() {
            return Err(invalid(
                key,
                list,
                format!("listener {} enables no SASL mechanism", l.name),
            ));
        }
        let mut listener = crate::sasl::ListenerSasl {
            mechanisms: mechanisms.clone(),
            ..Default::default()
        };
        for &m in &mechanisms {
            let j = jaas(&l.name, m)?;
            if m == Mechanism::OAuthBearer {
                listener.oauth = Some(oauth_validator(raw, &l.name, j.as_ref())?);
            }
            if m == Mechanism::Plain {
                let key = format!(
                    "listener.name.{}.plain.sasl.jaas.config",
                    l.name.to_ascii_lowercase()
                );
                let Some(j) = j else {
                    return Err(err(format!(
                        "Listener {} enables PLAIN but has no {key}: set it to \
                         {} required user_<name>=\"<password>\" ...;",
                        l.name,
                        m.login_module()
                    )));
                };
                for (k, v) in &j.options {
                    if let Some(user) = k.strip_prefix("user_") {
                        listener.plain_users.insert(user.to_string(), v.clone());
                    }
                }
                if listener.plain_users.is_empty() {
                    return Err(invalid(
                        &key,
                        "[hidden]",
                        "PLAIN needs at least one user_<name>=\"<password>\" option",
                    ));
                }
            }
        }
        if is_broker && l.name == inter_broker_listener_name {
            let key = "sasl.mechanism.inter.broker.protocol";
            let name = raw.get(key).unwrap_or("GSSAPI");
            let m = Mechanism::parse(name)
                .filter(|m| mechanisms.contains(m))
                .ok_or_else(|| {
                    invalid(
                        key,
                        name,
                        format!(
                            "the inter-broker listener {} is SASL_PLAINTEXT, so \
                             sasl.mechanism.inter.broker.protocol must be one of its enabled \
                             mechanisms ({})",
                            l.name, list
                        ),
                    )
                })?;
            settings.inter_broker = Some(credentials(
                &l.name,
                m,
                "Brokers authenticate to each other",
            )?);
        }
        settings
            .listeners
            .insert(l.name.clone(), std::sync::Arc::new(listener));
    }
    // How this node authenticates to the controllers (the quorum's traffic, a broker's
    // registration and forwarded requests), when their listener is SASL.
    if matches!(
        controller.security_protocol,
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
    ) {
        let key = "sasl.mechanism.controller.protocol";
        let name = raw.get(key).unwrap_or("GSSAPI");
        let enabled = settings
            .listeners
            .get(&controller.name)
            .map(|l| l.mechanisms.clone());
        let m = Mechanism::parse(name)
            // SCRAM credentials live in the metadata the controllers are still agreeing on.
            .filter(|m| m.scram_type().is_none())
            .filter(|m| enabled.as_ref().is_none_or(|e| e.contains(m)))
            .ok_or_else(|| {
                invalid(
                    key,
                    name,
                    format!(
                        "the controller listener {} is {}, so sasl.mechanism.controller.protocol \
                         must be PLAIN or OAUTHBEARER{}",
                        controller.name,
                        controller.security_protocol,
                        if enabled.is_some() {
                            ", enabled on that listener"
                        } else {
                            ""
                        }
                    ),
                )
            })?;
        settings.controller = Some(credentials(
            &controller.name,
            m,
            "Nodes authenticate to the controllers",
        )?);
    }
    Ok(settings)
}

/// `listeners` and the controller listener, when this node does not bind it (a broker
/// reaching the controllers): the listeners whose `listener.name.<l>.` keys are accepted.
fn with_controller(listeners: &[Listener], controller: &Listener) -> Vec<Listener> {
    let mut all = listeners.to_vec();
    if !all.iter().any(|l| l.name == controller.name) {
        all.push(controller.clone());
    }
    all
}

/// How listener `l` validates OAUTHBEARER tokens, from
/// `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class` (Kafka's unsecured
/// validator when unset), the options of its OAUTHBEARER JAAS config, and the
/// `sasl.oauthbearer.*` settings (each looked up as
/// `listener.name.<l>.oauthbearer.<key>`, then `listener.name.<l>.<key>`, then `<key>`).
fn oauth_validator(
    raw: &Raw,
    l: &str,
    jaas: Option<&krust_protocol::sasl::JaasConfig>,
) -> Result<crate::oauth::Validator, ConfigError> {
    use crate::oauth::{
        KeySource, SignedSettings, SignedValidator, UnsecuredOptions, Validator, SECURED_HANDLERS,
        UNSECURED_HANDLER,
    };
    let setting = |name: &str| -> Option<(String, String)> {
        raw.listener_value(l, &format!("oauthbearer.{name}"))
            .or_else(|| raw.listener_value(l, name))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .or_else(|| raw.get(name).map(|v| (name.to_string(), v.to_string())))
    };
    let number = |name: &str, default: i64, min: i64| -> Result<i64, ConfigError> {
        match setting(name) {
            None => Ok(default),
            Some((k, v)) => match v.trim().parse::<i64>() {
                Ok(n) if n >= min => Ok(n),
                Ok(_) => Err(invalid(&k, &v, format!("Value must be at least {min}"))),
                Err(_) => Err(invalid(&k, &v, "Not a number of type LONG")),
            },
        }
    };
    if let Some((k, v)) = raw
        .listener_value(l, "sasl.server.callback.handler.class")
        .or_else(|| {
            raw.get("sasl.server.callback.handler.class")
                .map(|v| ("sasl.server.callback.handler.class", v))
        })
    {
        return Err(invalid(
            k,
            v,
            format!(
                "a server callback handler is set per listener and mechanism: \
                 listener.name.{}.oauthbearer.sasl.server.callback.handler.class",
                l.to_ascii_lowercase()
            ),
        ));
    }
    let handler = raw.listener_value(l, "oauthbearer.sasl.server.callback.handler.class");
    let secured = match handler {
        None => false,
        Some((_, v)) if v.trim() == UNSECURED_HANDLER => false,
        Some((_, v)) if SECURED_HANDLERS.contains(&v.trim()) => true,
        Some((k, v)) => {
            return Err(invalid(
                k,
                v,
                format!(
                    "krust validates OAUTHBEARER tokens with Kafka's unsecured validator \
                     ({UNSECURED_HANDLER}) or its JWKS validator ({})",
                    SECURED_HANDLERS[0]
                ),
            ))
        }
    };
    let option = |name: &str| jaas.and_then(|j| j.option(name));
    if !secured {
        // Settings for signed tokens on a listener that does not check signatures are a
        // mistake that would leave it open to any token: refused.
        for name in [
            "sasl.oauthbearer.jwks.endpoint.url",
            "sasl.oauthbearer.expected.audience",
            "sasl.oauthbearer.expected.issuer",
        ] {
            if let Some((k, v)) = setting(name) {
                return Err(invalid(
                    &k,
                    &v,
                    format!(
                        "listener {l} validates OAUTHBEARER tokens with Kafka's unsecured \
                         validator, which checks no signature: set \
                         listener.name.{}.oauthbearer.sasl.server.callback.handler.class={} \
                         for signed tokens",
                        l.to_ascii_lowercase(),
                        SECURED_HANDLERS[0]
                    ),
                ));
            }
        }
        tracing::warn!(
            listener = l,
            "OAUTHBEARER tokens on this listener are not signed and anyone may claim any \
             principal (Kafka's unsecured validator, for development): set \
             oauthbearer.sasl.server.callback.handler.class for signed tokens"
        );
        let mut o = UnsecuredOptions::default();
        let jaas_key = format!(
            "listener.name.{}.oauthbearer.sasl.jaas.config",
            l.to_ascii_lowercase()
        );
        if let Some(v) = option("unsecuredValidatorPrincipalClaimName") {
            o.principal_claim = v.trim().to_string();
        }
        if let Some(v) = option("unsecuredValidatorScopeClaimName") {
            o.scope_claim = v.trim().to_string();
        }
        if o.principal_claim.is_empty() || o.scope_claim.is_empty() {
            return Err(invalid(
                &jaas_key,
                "[hidden]",
                "a claim name option is blank",
            ));
        }
        if let Some(v) = option("unsecuredValidatorRequiredScope") {
            for item in v.split(' ').filter(|i| !i.is_empty()) {
                let ok = item
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
                if !ok {
                    return Err(invalid(
                        &jaas_key,
                        "[hidden]",
                        format!(
                            "unsecuredValidatorRequiredScope has an invalid scope item {item:?}"
                        ),
                    ));
                }
                o.required_scope.push(item.to_string());
            }
        }
        if let Some(v) = option("unsecuredValidatorAllowableClockSkewMs") {
            o.clock_skew_ms = v.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                invalid(
                    &jaas_key,
                    "[hidden]",
                    format!("unsecuredValidatorAllowableClockSkewMs must be an integer, 0 or more, not {v:?}"),
                )
            })?;
        }
        return Ok(Validator::Unsecured(o));
    }
    let url_key = "sasl.oauthbearer.jwks.endpoint.url";
    let Some((key, url)) = setting(url_key) else {
        return Err(err(format!(
            "Listener {l} validates OAUTHBEARER tokens with {}: set {url_key} (an https://, \
             http:// or file: URL of the identity provider's keys)",
            SECURED_HANDLERS[0]
        )));
    };
    let url = url.trim().to_string();
    let source = if let Some(path) = krust_client::http::file_url_path(&url) {
        if !path.starts_with('/') {
            return Err(invalid(&key, &url, "a file: URL needs an absolute path"));
        }
        KeySource::File(std::path::PathBuf::from(path))
    } else if url.starts_with("http://") || url.starts_with("https://") {
        krust_client::http::Url::parse(&url).map_err(|e| invalid(&key, &url, e))?;
        KeySource::Url(url.clone())
    } else {
        return Err(invalid(
            &key,
            &url,
            "the URL must be https://, http:// or file:",
        ));
    };
    let list = |name: &str| {
        setting(name).map(|(_, v)| {
            v.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
        })
    };
    let claim = |name: &str, default: &str| -> Result<String, ConfigError> {
        match setting(name) {
            None => Ok(default.to_string()),
            Some((k, v)) if v.trim().is_empty() => {
                Err(invalid(&k, &v, "a claim name cannot be blank"))
            }
            Some((_, v)) => Ok(v.trim().to_string()),
        }
    };
    let settings = SignedSettings {
        source,
        refresh_ms: number("sasl.oauthbearer.jwks.endpoint.refresh.ms", 3_600_000, 1)?
            .unsigned_abs(),
        retry_backoff_ms: number("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", 100, 0)?
            .unsigned_abs(),
        retry_backoff_max_ms: number(
            "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
            10_000,
            0,
        )?
        .unsigned_abs(),
        audience: list("sasl.oauthbearer.expected.audience"),
        issuer: setting("sasl.oauthbearer.expected.issuer")
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty()),
        sub_claim: claim("sasl.oauthbearer.sub.claim.name", "sub")?,
        scope_claim: claim("sasl.oauthbearer.scope.claim.name", "scope")?,
        clock_skew_s: number("sasl.oauthbearer.clock.skew.seconds", 30, 0)?,
        trust_pem: krust_client::oauth::jaas_truststore(jaas.map_or(&[][..], |j| &j.options))
            .map_err(|e| {
                err(format!(
                    "listener.name.{}.oauthbearer.sasl.jaas.config: {e}",
                    l.to_ascii_lowercase()
                ))
            })?,
    };
    let validator = SignedValidator::new(settings).map_err(|e| invalid(&key, &url, e))?;
    Ok(Validator::Signed(std::sync::Arc::new(validator)))
}

/// `max.connections.per.ip.overrides`: `host:count` or `ip:count` entries, comma
/// separated; a host name counts for every address it resolves to now.
fn parse_ip_overrides(
    v: &str,
) -> Result<std::collections::HashMap<std::net::IpAddr, u32>, ConfigError> {
    use std::net::ToSocketAddrs;
    let key = "max.connections.per.ip.overrides";
    let mut out = std::collections::HashMap::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| invalid(key, v, format!("{entry}: {why}"));
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:count"))?;
        let count: u32 = count
            .trim()
            .parse::<i32>()
            .ok()
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| bad("the count must be an integer, 0 or more"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip.to_canonical()],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
                .map(|a| a.ip().to_canonical())
                .collect(),
        };
        for ip in addrs {
            out.insert(ip, count);
        }
    }
    Ok(out)
}

fn build(
    raw: &Raw<'_>,
    explicit: BTreeMap<String, String>,
    unused_keys: Vec<String>,
) -> Result<ServerConfig, ConfigError> {
    // --- identity and roles ---
    let node_id_set = raw.opt_int("node.id", i32::MIN as i64)?;
    let broker_id_set = raw.opt_int("broker.id", i32::MIN as i64)?;
    let node_id = match (node_id_set, broker_id_set) {
        (Some(n), Some(b)) if n != b => {
            return Err(err(format!(
            "You must set `node.id` to the same value as `broker.id` (node.id={n}, broker.id={b})"
        )))
        }
        (Some(n), _) => n,
        (None, Some(b)) => b,
        (None, None) => -1,
    };
    if node_id < 0 {
        let shown = explicit
            .get("node.id")
            .or_else(|| explicit.get("broker.id"))
            .cloned()
            .unwrap_or_else(|| "-1".to_string());
        if node_id_set.is_none() && broker_id_set.is_none() {
            return Err(err(
                "Missing required configuration `node.id`: set it to a non-negative integer \
                 identifying this node (it is also the broker id and the voter id)",
            ));
        }
        return Err(invalid("node.id", &shown, "Value must be at least 0"));
    }

    let roles_raw = raw.get("process.roles").unwrap_or("");
    let mut process_roles = Vec::new();
    for role in split_list(roles_raw) {
        let r = match role.as_str() {
            "broker" => ProcessRole::Broker,
            "controller" => ProcessRole::Controller,
            "" => continue,
            other => {
                return Err(invalid(
                    "process.roles",
                    roles_raw,
                    format!("Unknown process role '{other}' (only 'broker' and 'controller' are allowed roles)"),
                ))
            }
        };
        if process_roles.contains(&r) {
            return Err(invalid(
                "process.roles",
                roles_raw,
                "Duplicate role names found in `process.roles`",
            ));
        }
        process_roles.push(r);
    }
    if process_roles.is_empty() {
        return Err(err("krust runs in KRaft mode only: set process.roles (broker, controller, or broker,controller)"));
    }
    let is_broker = process_roles.contains(&ProcessRole::Broker);
    let is_controller = process_roles.contains(&ProcessRole::Controller);

    // --- scalar settings ---
    let num_partitions = raw.int("num.partitions", 1, 1)?;
    let default_replication_factor = raw
        .number::<i32>(
            "default.replication.factor",
            T::Int,
            Some(1),
            1,
            i64::from(i16::MAX),
        )?
        .and_then(|n| i16::try_from(n).ok())
        .unwrap_or(1);
    let auto_create_topics_enable = raw.boolean("auto.create.topics.enable", true)?;
    let delete_topic_enable = raw.boolean("delete.topic.enable", true)?;
    let log_segment_bytes = raw.int("log.segment.bytes", 1 << 30, 14)?;
    let log_roll_ms = match raw.opt_long("log.roll.ms", 1)? {
        Some(ms) => ms,
        None => i64::from(raw.int("log.roll.hours", 168, 1)?) * HOUR_MS,
    };
    // Parse all three so a malformed one is reported even when a more specific one is set.
    let retention_ms = raw.opt_long("log.retention.ms", i64::MIN)?;
    let retention_minutes = raw.opt_int("log.retention.minutes", i32::MIN as i64)?;
    let retention_hours = raw.int("log.retention.hours", 168, i32::MIN as i64)?;
    let log_retention_ms = {
        let ms = match (retention_ms, retention_minutes) {
            (Some(ms), _) => ms,
            (None, Some(min)) => i64::from(min) * MINUTE_MS,
            (None, None) => i64::from(retention_hours) * HOUR_MS,
        };
        if ms < 0 {
            -1
        } else {
            ms
        }
    };
    if log_retention_ms == 0 {
        return Err(err(
            "log.retention.ms must be unlimited (-1) or, equal or greater than 1 \
             (check log.retention.ms, log.retention.minutes and log.retention.hours)",
        ));
    }
    let log_retention_bytes = raw.long("log.retention.bytes", -1, i64::MIN)?;
    let log_retention_check_interval_ms =
        raw.long("log.retention.check.interval.ms", 300_000, 1)?;
    let log_cleaner_enable = raw.boolean("log.cleaner.enable", true)?;
    let log_cleaner_threads = raw.int("log.cleaner.threads", 1, 0)?;
    let log_cleaner_backoff_ms = raw.long("log.cleaner.backoff.ms", 15_000, 0)?;
    let log_cleaner_dedupe_buffer_size =
        raw.long("log.cleaner.dedupe.buffer.size", 134_217_728, 0)?;
    let log_cleaner_io_max_bytes_per_second = match raw.get("log.cleaner.io.max.bytes.per.second") {
        None => None,
        Some(v) => {
            let key = "log.cleaner.io.max.bytes.per.second";
            let d: f64 = v
                .trim()
                .parse()
                .map_err(|_| invalid(key, v, "Not a number of type DOUBLE"))?;
            if d.is_nan() || d <= 0.0 {
                return Err(invalid(key, v, "Value must be more than 0"));
            }
            (d < f64::MAX).then_some(d)
        }
    };
    // Kafka's floor: each thread's map must hold at least 1 MiB.
    if log_cleaner_enable
        && log_cleaner_threads > 0
        && log_cleaner_dedupe_buffer_size / i64::from(log_cleaner_threads) < 1 << 20
    {
        return Err(err(
            "log.cleaner.dedupe.buffer.size must be at least 1 MiB (1048576) per cleaner thread",
        ));
    }
    let log_index_interval_bytes = raw.int("log.index.interval.bytes", 4096, 0)?;
    let log_index_size_max_bytes = raw.int("log.index.size.max.bytes", 10 * 1024 * 1024, 4)?;
    let log_flush_interval_messages = raw.long("log.flush.interval.messages", i64::MAX, 1)?;
    let log_flush_interval_ms = raw.opt_long("log.flush.interval.ms", 0)?;
    let log_flush_scheduler_interval_ms =
        raw.long("log.flush.scheduler.interval.ms", i64::MAX, 0)?;
    let log_message_timestamp_type = match raw
        .one_of(
            "log.message.timestamp.type",
            "CreateTime",
            &["CreateTime", "LogAppendTime"],
        )?
        .as_str()
    {
        "LogAppendTime" => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    };
    let cleanup_raw = raw.get("log.cleanup.policy").unwrap_or("delete");
    let log_cleanup_policy = split_list(cleanup_raw);
    for p in &log_cleanup_policy {
        if p != "delete" && p != "compact" {
            return Err(invalid(
                "log.cleanup.policy",
                cleanup_raw,
                format!("'{p}' is not a cleanup policy; String must be one of: compact, delete"),
            ));
        }
    }
    let message_max_bytes = raw.int("message.max.bytes", 1_048_588, 0)?;
    let socket_request_max_bytes = raw.int("socket.request.max.bytes", 104_857_600, 1)?;
    let connections_max_idle_ms =
        u64::try_from(raw.long("connections.max.idle.ms", 600_000, i64::MIN)?).ok();
    let max_connections = raw.int("max.connections", i32::MAX, 0)?.unsigned_abs();
    let max_connections_per_ip = raw
        .int("max.connections.per.ip", i32::MAX, 0)?
        .unsigned_abs();
    let max_connections_per_ip_overrides =
        parse_ip_overrides(raw.get("max.connections.per.ip.overrides").unwrap_or(""))?;
    if max_connections_per_ip == 0 && max_connections_per_ip_overrides.is_empty() {
        return Err(err("max.connections.per.ip can be set to zero only if \
             max.connections.per.ip.overrides property is set"));
    }
    let queued_max_request_bytes = u64::try_from(raw.long("queued.max.request.bytes", -1, -1)?)
        .ok()
        .filter(|&b| b > 0);
    let min_insync_replicas = raw.int("min.insync.replicas", 1, 1)?;
    let offsets_topic_replication_factor = raw.short("offsets.topic.replication.factor", 3, 1)?;
    let offsets_topic_num_partitions = raw.int("offsets.topic.num.partitions", 50, 1)?;
    let offsets_topic_segment_bytes = raw.int("offsets.topic.segment.bytes", 104_857_600, 1)?;
    let transaction_state_log_replication_factor =
        raw.short("transaction.state.log.replication.factor", 3, 1)?;
    let transaction_state_log_min_isr = raw.int("transaction.state.log.min.isr", 2, 1)?;
    let transaction_state_log_num_partitions =
        raw.int("transaction.state.log.num.partitions", 50, 1)?;
    let transaction_state_log_segment_bytes =
        raw.int("transaction.state.log.segment.bytes", 104_857_600, 1)?;
    let transaction_max_timeout_ms = raw.int("transaction.max.timeout.ms", 900_000, 1)?;
    let transaction_partition_verification_enable =
        raw.boolean("transaction.partition.verification.enable", true)?;
    let transactional_id_expiration_ms =
        raw.int("transactional.id.expiration.ms", 604_800_000, 1)?;
    let transaction_abort_timed_out_transaction_cleanup_interval_ms = raw.int(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        10_000,
        1,
    )?;
    let transaction_remove_expired_transaction_cleanup_interval_ms = raw.int(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        3_600_000,
        1,
    )?;
    let broker_rack = raw.get("broker.rack").map(str::to_string);
    let unclean_leader_election_enable = raw.boolean("unclean.leader.election.enable", false)?;
    let replica_lag_time_max_ms = raw.long("replica.lag.time.max.ms", 30_000, 1)?;
    let broker_heartbeat_interval_ms = raw.int("broker.heartbeat.interval.ms", 2000, 1)?;
    let broker_session_timeout_ms = raw.int("broker.session.timeout.ms", 9000, 1)?;
    let controller_quorum_election_timeout_ms =
        raw.int("controller.quorum.election.timeout.ms", 1000, 1)?;
    let controller_quorum_fetch_timeout_ms =
        raw.int("controller.quorum.fetch.timeout.ms", 2000, 1)?;
    let controller_quorum_request_timeout_ms =
        raw.int("controller.quorum.request.timeout.ms", 2000, 1)?;
    let group_initial_rebalance_delay_ms = raw.int("group.initial.rebalance.delay.ms", 3000, 0)?;
    let group_min_session_timeout_ms = raw.int("group.min.session.timeout.ms", 6000, 1)?;
    let group_max_session_timeout_ms = raw.int("group.max.session.timeout.ms", 1_800_000, 1)?;
    if group_max_session_timeout_ms < group_min_session_timeout_ms {
        return Err(err(format!(
            "group.max.session.timeout.ms ({group_max_session_timeout_ms}) must be at least \
             group.min.session.timeout.ms ({group_min_session_timeout_ms})"
        )));
    }
    let (consumer_group_protocol, consumer_groups, consumer_group_bounds) =
        consumer_group_settings(raw)?;
    let offsets_retention_minutes = raw.int("offsets.retention.minutes", 10080, 1)?;

    let auto_leader_rebalance_enable = raw.boolean("auto.leader.rebalance.enable", true)?;
    let leader_imbalance_check_interval_seconds =
        raw.long("leader.imbalance.check.interval.seconds", 300, 1)?;
    // Follower fetching.
    let fetch_wait = raw.int("replica.fetch.wait.max.ms", 500, 0)?;
    let replica_fetch_backoff_ms = raw.int("replica.fetch.backoff.ms", 1000, 0)?;
    let replica_fetch_max_bytes = raw.int("replica.fetch.max.bytes", 1_048_576, 0)?;
    let replica_fetch_response_max_bytes =
        raw.int("replica.fetch.response.max.bytes", 10_485_760, 0)?;
    let socket_timeout = raw.int("replica.socket.timeout.ms", 30_000, i32::MIN as i64)?;
    if socket_timeout < fetch_wait && socket_timeout != -1 {
        return Err(err(format!(
            "replica.socket.timeout.ms ({socket_timeout}) should always be at least \
             replica.fetch.wait.max.ms ({fetch_wait}) to prevent unnecessary socket timeouts"
        )));
    }
    if i64::from(fetch_wait) > replica_lag_time_max_ms {
        return Err(err(format!(
            "replica.fetch.wait.max.ms ({fetch_wait}) should always be less than or equal to \
             replica.lag.time.max.ms ({replica_lag_time_max_ms}) to prevent frequent changes in ISR"
        )));
    }

    let http_listener = match raw.get("http.listener").unwrap_or("http://localhost:9644") {
        "" => None,
        v => {
            let addr = v.strip_prefix("http://").unwrap_or(v);
            let (host, port) = split_host_port(addr).ok_or_else(|| {
                invalid(
                    "http.listener",
                    v,
                    "expected host:port, e.g. localhost:8080 (empty disables it)",
                )
            })?;
            Some(HostPort { host, port })
        }
    };

    // --- listeners and security protocols ---
    let controller_listener_names: Vec<String> =
        split_list(raw.get("controller.listener.names").unwrap_or(""))
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.to_ascii_uppercase())
            .collect();
    if controller_listener_names.is_empty() {
        return Err(err(
            "controller.listener.names must contain at least one value when running in KRaft mode \
             (e.g. controller.listener.names=CONTROLLER)",
        ));
    }
    for (i, n) in controller_listener_names.iter().enumerate() {
        if controller_listener_names[..i].contains(n) {
            return Err(invalid(
                "controller.listener.names",
                raw.get("controller.listener.names").unwrap_or(""),
                format!("{n} appears more than once"),
            ));
        }
    }

    let protocol_map = match raw.get("listener.security.protocol.map") {
        Some(v) => parse_protocol_map(v)?,
        None => {
            // Like Kafka: without an explicit map, controller listeners default to PLAINTEXT
            // (or to the protocol of the same name).
            let mut m = parse_protocol_map(DEFAULT_PROTOCOL_MAP)?;
            for n in &controller_listener_names {
                if !m.contains_key(n) {
                    m.insert(
                        n.clone(),
                        SecurityProtocol::parse(n).unwrap_or(SecurityProtocol::Plaintext),
                    );
                }
            }
            m
        }
    };
    let protocol_of = |name: &str| -> Result<SecurityProtocol, ConfigError> {
        let p = protocol_map.get(name).copied().ok_or_else(|| {
            err(format!(
                "No security protocol defined for listener {name}: add {name}:PLAINTEXT to \
                 listener.security.protocol.map"
            ))
        })?;
        Ok(p)
    };

    let listeners_raw = raw.get("listeners").unwrap_or("PLAINTEXT://:9092");
    let mut listeners = Vec::new();
    for (name, host, port) in parse_endpoints("listeners", listeners_raw)? {
        let security_protocol = protocol_of(&name)?;
        listeners.push(Listener {
            name,
            host,
            port,
            security_protocol,
        });
    }
    for (i, a) in listeners.iter().enumerate() {
        for b in &listeners[..i] {
            if a.port != 0
                && a.port == b.port
                && (a.host == b.host || a.host.is_empty() || b.host.is_empty())
            {
                return Err(invalid(
                    "listeners",
                    listeners_raw,
                    format!(
                        "Each listener must have a different port; {} and {} both use {}",
                        b.name, a.name, a.port
                    ),
                ));
            }
        }
    }

    // `listener.name.<listener>.max.connections`, for a listener of `listeners`.
    let mut listener_max_connections = std::collections::HashMap::new();
    for (key, v) in raw.map.iter() {
        let Some(l) = listener_max_connections_key(key) else {
            continue;
        };
        let Some(listener) = listeners.iter().find(|x| x.name.eq_ignore_ascii_case(l)) else {
            return Err(invalid(
                key,
                v,
                format!("{l} is not a listener of listeners"),
            ));
        };
        let n = raw.int(key, i32::MAX, 0)?.unsigned_abs();
        listener_max_connections.insert(listener.name.clone(), n);
    }

    let advertised_raw = raw.get("advertised.listeners");
    let mut advertised_listeners = Vec::new();
    let mut explicitly_advertised: Vec<String> = Vec::new();
    if let Some(adv) = advertised_raw {
        let endpoints = parse_endpoints("advertised.listeners", adv)?;
        if endpoints
            .iter()
            .any(|(name, _, _)| !listeners.iter().any(|l| &l.name == name))
        {
            return Err(err(format!(
                "advertised.listeners listener names must be equal to or a subset of the ones \
                 defined in listeners. Found {}. The valid options based on the current \
                 configuration are {}",
                endpoints
                    .iter()
                    .map(|(n, _, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                names(&listeners)
            )));
        }
        for (name, host, port) in endpoints {
            explicitly_advertised.push(name.clone());
            let security_protocol = protocol_of(&name)?;
            advertised_listeners.push(Listener {
                name,
                host,
                port,
                security_protocol,
            });
        }
        // Controller listeners that are not advertised explicitly fall back to `listeners`.
        for l in &listeners {
            if controller_listener_names.contains(&l.name)
                && !advertised_listeners.iter().any(|a| a.name == l.name)
            {
                advertised_listeners.push(l.clone());
            }
        }
    } else {
        advertised_listeners = listeners.clone();
    }
    let is_ctrl_name = |n: &str| controller_listener_names.iter().any(|c| c == n);
    for a in &advertised_listeners {
        // Controller listeners taken over from `listeners` may bind 0.0.0.0; anything a
        // client or peer is told to connect to may not.
        let checked = !is_ctrl_name(&a.name) || explicitly_advertised.contains(&a.name);
        if checked && is_non_routable(&a.host) {
            return Err(err(format!(
                "advertised.listeners cannot use the nonroutable meta-address {}. Use a routable \
                 IP address (listener {}{}).",
                a.host,
                a.name,
                if advertised_raw.is_none() {
                    ", taken from listeners because advertised.listeners is not set"
                } else {
                    ""
                }
            )));
        }
    }

    let inter_broker_listener_name = match (
        raw.get("inter.broker.listener.name"),
        raw.get("security.inter.broker.protocol"),
    ) {
        (Some(_), Some(_)) => {
            return Err(err(
                "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.",
            ))
        }
        (Some(n), None) => n.trim().to_ascii_uppercase(),
        (None, Some(p)) => match SecurityProtocol::parse(p) {
            Some(p) => p.name().to_string(),
            None => {
                return Err(invalid(
                    "security.inter.broker.protocol",
                    p,
                    "String must be one of: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                ))
            }
        },
        (None, None) => "PLAINTEXT".to_string(),
    };

    // The listener this node reaches the controllers on (the first controller listener).
    let controller_listener = {
        let name = controller_listener_names
            .first()
            .cloned()
            .unwrap_or_else(|| "CONTROLLER".to_string());
        match listeners.iter().find(|l| l.name == name) {
            Some(l) => l.clone(),
            // (A controller whose listener is missing gets its own error below.)
            None => Listener {
                security_protocol: protocol_map
                    .get(&name)
                    .copied()
                    .unwrap_or(SecurityProtocol::Plaintext),
                name,
                host: String::new(),
                port: 0,
            },
        }
    };
    let sasl = sasl_settings(
        raw,
        &listeners,
        &controller_listener,
        &inter_broker_listener_name,
        is_broker,
    )?;
    let (tls_listeners, inter_broker_tls, controller_tls) = tls_settings(
        raw,
        &listeners,
        &controller_listener,
        &inter_broker_listener_name,
        is_broker,
    )?;
    let authorizer = authorizer_settings(raw)?;
    // `ssl.principal.mapping.rules` of each SSL listener (its own value, else the broker's).
    if let Some(text) = raw.get("ssl.principal.mapping.rules") {
        crate::principal::MappingRules::parse(text)
            .map_err(|e| invalid("ssl.principal.mapping.rules", text, e))?;
    }
    let mut ssl_principal_rules = std::collections::HashMap::new();
    for l in listeners
        .iter()
        .filter(|l| l.security_protocol == SecurityProtocol::Ssl)
    {
        let (key, text) = raw
            .listener_value(&l.name, "ssl.principal.mapping.rules")
            .or_else(|| {
                raw.get("ssl.principal.mapping.rules")
                    .map(|v| ("ssl.principal.mapping.rules", v))
            })
            .unwrap_or(("ssl.principal.mapping.rules", "DEFAULT"));
        let rules =
            crate::principal::MappingRules::parse(text).map_err(|e| invalid(key, text, e))?;
        ssl_principal_rules.insert(l.name.clone(), std::sync::Arc::new(rules));
    }
    let quota_window_num = raw.int("quota.window.num", 11, 1)? as u32;
    let quota_window_size_seconds = raw.int("quota.window.size.seconds", 1, 1)? as u32;
    // With an authorizer, the nodes' requests on a secured controller listener need
    // CLUSTER_ACTION, which only super users have before the quorum holds any ACL.
    if let (Some(a), true) = (
        &authorizer,
        controller_listener.security_protocol != SecurityProtocol::Plaintext,
    ) {
        let principal = match &sasl.controller {
            Some(c) if c.mechanism == krust_protocol::sasl::Mechanism::Plain => {
                Some(format!("User:{}", c.username))
            }
            Some(_) => None,
            None => {
                let required = raw
                    .listener_value(&controller_listener.name, "ssl.client.auth")
                    .map(|(_, v)| v)
                    .or_else(|| raw.get("ssl.client.auth"))
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("required"));
                (!required).then(|| "User:ANONYMOUS".to_string())
            }
        };
        if let Some(p) = principal.filter(|p| !a.super_users.contains(p)) {
            tracing::warn!(
                "this node reaches the controller listener {} as {p}, which is not in \
                 super.users: the controllers will refuse its requests \
                 (CLUSTER_AUTHORIZATION_FAILED) unless an ACL lets it CLUSTER_ACTION",
                controller_listener.name
            );
        }
    }
    if authorizer.is_some() && controller_listener.security_protocol == SecurityProtocol::Plaintext
    {
        // Requests on a PLAINTEXT controller listener are not authorized (it serves the
        // quorum, the brokers and requests other nodes forwarded after checking them): only
        // the cluster's nodes should reach it.
        for l in listeners
            .iter()
            .filter(|l| controller_listener_names.contains(&l.name))
            .filter(|l| matches!(l.host.as_str(), "" | "0.0.0.0" | "::" | "[::]"))
        {
            tracing::warn!(
                "controller listener {} binds every address ({}): its requests are neither \
                 authenticated nor authorized (it is PLAINTEXT), so keep port {} reachable only \
                 by the cluster's nodes",
                l.name,
                l.bind_address(),
                l.port
            );
        }
    }

    // --- quorum ---
    let controller_quorum_voters = parse_voters(raw.get("controller.quorum.voters").unwrap_or(""))?;
    let controller_quorum_bootstrap_servers = parse_host_ports(
        "controller.quorum.bootstrap.servers",
        raw.get("controller.quorum.bootstrap.servers").unwrap_or(""),
    )?;
    if controller_quorum_voters.is_empty() && controller_quorum_bootstrap_servers.is_empty() {
        return Err(err(
            "Missing quorum configuration: set controller.quorum.voters (static quorum, e.g. \
             1@localhost:9093) or controller.quorum.bootstrap.servers (dynamic quorum, e.g. \
             localhost:9093)",
        ));
    }
    let voters_str = raw.get("controller.quorum.voters").unwrap_or("");
    let in_voters = controller_quorum_voters.iter().any(|v| v.id == node_id);

    // --- role rules ---
    if is_controller {
        if !controller_quorum_voters.is_empty() && !in_voters {
            return Err(err(format!(
                "If process.roles contains the 'controller' role, the node id {node_id} must be \
                 included in the set of voters controller.quorum.voters={voters_str}"
            )));
        }
        for n in &controller_listener_names {
            if !listeners.iter().any(|l| &l.name == n) {
                return Err(err(format!(
                    "controller.listener.names must only contain values appearing in the \
                     'listeners' configuration when running the KRaft controller role: {n} is \
                     not in listeners={listeners_raw}"
                )));
            }
        }
        if !is_broker {
            if let Some(l) = listeners.iter().find(|l| !is_ctrl_name(&l.name)) {
                return Err(err(format!(
                    "The listeners config must only contain KRaft controller listeners from \
                     controller.listener.names when process.roles=controller: {} is not a \
                     controller listener",
                    l.name
                )));
            }
        }
    } else {
        if !controller_quorum_voters.is_empty() && in_voters {
            return Err(err(format!(
                "If process.roles contains just the 'broker' role, the node id {node_id} must \
                 not be included in the set of voters controller.quorum.voters={voters_str}"
            )));
        }
        if let Some(l) = listeners.iter().find(|l| is_ctrl_name(&l.name)) {
            return Err(err(format!(
                "The listeners config must not contain KRaft controller listeners from \
                 controller.listener.names when process.roles contains just the broker role: \
                 remove {} from listeners",
                l.name
            )));
        }
        // A broker-only node still needs a protocol to reach the controllers.
        if let Some(first) = controller_listener_names.first() {
            protocol_of(first)?;
        }
    }
    if is_broker {
        if is_ctrl_name(&inter_broker_listener_name) {
            return Err(err(format!(
                "inter.broker.listener.name={inter_broker_listener_name} must not be a \
                 controller listener (controller.listener.names)"
            )));
        }
        let advertised_broker: Vec<Listener> = advertised_listeners
            .iter()
            .filter(|l| !is_ctrl_name(&l.name))
            .cloned()
            .collect();
        if !advertised_broker
            .iter()
            .any(|l| l.name == inter_broker_listener_name)
        {
            return Err(err(format!(
                "inter.broker.listener.name must be a listener name defined in \
                 advertised.listeners. The valid options based on currently configured \
                 listeners are {} (inter.broker.listener.name={inter_broker_listener_name})",
                names(&advertised_broker)
            )));
        }
    }

    // --- directories ---
    let dirs_raw = raw
        .get("log.dirs")
        .or_else(|| raw.get("log.dir"))
        .unwrap_or("/tmp/kafka-logs");
    let mut log_dirs: Vec<PathBuf> = Vec::new();
    for d in split_list(dirs_raw) {
        if d.is_empty() {
            continue;
        }
        let p = PathBuf::from(d);
        if !log_dirs.contains(&p) {
            log_dirs.push(p);
        }
    }
    if log_dirs.is_empty() {
        return Err(err(format!(
            "At least one log directory must be defined via log.dirs or log.dir (got '{dirs_raw}')"
        )));
    }
    let metadata_log_max_record_bytes_between_snapshots = raw.long(
        "metadata.log.max.record.bytes.between.snapshots",
        20_971_520,
        1,
    )?;
    let metadata_log_max_snapshot_interval_ms =
        raw.long("metadata.log.max.snapshot.interval.ms", 3_600_000, 0)?;
    let metadata_log_dir = raw
        .get("metadata.log.dir")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);

    Ok(ServerConfig {
        node_id,
        process_roles,
        listeners,
        advertised_listeners,
        controller_listener_names,
        inter_broker_listener_name,
        listener_security_protocol_map: protocol_map,
        controller_quorum_voters,
        controller_quorum_bootstrap_servers,
        log_dirs,
        metadata_log_dir,
        metadata_log_max_record_bytes_between_snapshots,
        metadata_log_max_snapshot_interval_ms,
        num_partitions,
        default_replication_factor,
        auto_create_topics_enable,
        delete_topic_enable,
        log_segment_bytes,
        log_roll_ms,
        log_retention_ms,
        log_retention_bytes,
        log_retention_check_interval_ms,
        log_cleaner_enable,
        log_cleaner_threads,
        log_cleaner_dedupe_buffer_size,
        log_cleaner_backoff_ms,
        log_cleaner_io_max_bytes_per_second,
        log_index_interval_bytes,
        log_index_size_max_bytes,
        log_flush_interval_messages,
        log_flush_interval_ms,
        log_flush_scheduler_interval_ms,
        log_message_timestamp_type,
        log_cleanup_policy,
        message_max_bytes,
        socket_request_max_bytes,
        queued_max_request_bytes,
        connections_max_idle_ms,
        max_connections,
        max_connections_per_ip,
        max_connections_per_ip_overrides,
        listener_max_connections,
        inter_broker_security: krust_client::Security {
            tls: inter_broker_tls,
            sasl: sasl.inter_broker.clone(),
        },
        controller_security: krust_client::Security {
            tls: controller_tls,
            sasl: sasl.controller.clone(),
        },
        sasl,
        tls_listeners,
        authorizer,
        quota_window_num,
        quota_window_size_seconds,
        ssl_principal_rules,
        min_insync_replicas,
        offsets_topic_replication_factor,
        offsets_topic_num_partitions,
        offsets_topic_segment_bytes,
        transaction_state_log_replication_factor,
        transaction_state_log_min_isr,
        transaction_state_log_num_partitions,
        transaction_state_log_segment_bytes,
        transaction_max_timeout_ms,
        transaction_partition_verification_enable,
        transactional_id_expiration_ms,
        transaction_abort_timed_out_transaction_cleanup_interval_ms,
        transaction_remove_expired_transaction_cleanup_interval_ms,
        broker_rack,
        unclean_leader_election_enable,
        replica_lag_time_max_ms,
        replica_fetch_wait_max_ms: fetch_wait,
        auto_leader_rebalance_enable,
        leader_imbalance_check_interval_seconds,
        replica_fetch_backoff_ms,
        replica_fetch_max_bytes,
        replica_fetch_response_max_bytes,
        broker_heartbeat_interval_ms,
        broker_session_timeout_ms,
        controller_quorum_election_timeout_ms,
        controller_quorum_fetch_timeout_ms,
        controller_quorum_request_timeout_ms,
        group_initial_rebalance_delay_ms,
        group_min_session_timeout_ms,
        group_max_session_timeout_ms,
        consumer_group_protocol,
        consumer_groups,
        consumer_group_bounds,
        offsets_retention_minutes,
        http_listener,
        explicit,
        unused_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMBINED: &[(&str, &str)] = &[
        ("process.roles", "broker,controller"),
        ("node.id", "1"),
        ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        (
            "advertised.listeners",
            "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
        ),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("controller.quorum.voters", "1@localhost:9093"),
        ("log.dirs", "/tmp/kraft-combined-logs"),
    ];

    const BROKER: &[(&str, &str)] = &[
        ("process.roles", "broker"),
        ("node.id", "2"),
        ("listeners", "PLAINTEXT://localhost:9092"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@localhost:9093"),
        ("log.dirs", "/tmp/b"),
    ];

    const CONTROLLER: &[(&str, &str)] = &[
        ("process.roles", "controller"),
        ("node.id", "1"),
        ("listeners", "CONTROLLER://localhost:9093"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@localhost:9093"),
        ("log.dirs", "/tmp/c"),
    ];

    /// `base` with `changes` applied: `Some(v)` sets, `None` removes.
    fn build_with(
        base: &[(&str, &str)],
        changes: &[(&str, Option<&str>)],
    ) -> Result<ServerConfig, ConfigError> {
        let mut props: Vec<(String, String)> = base
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in changes {
            if let Some(v) = v {
                props.push((k.to_string(), v.to_string()));
            }
        }
        ServerConfig::from_properties(&props)
    }

    fn ok(base: &[(&str, &str)], changes: &[(&str, Option<&str>)]) -> ServerConfig {
        match build_with(base, changes) {
            Ok(c) => c,
            Err(e) => panic!("expected a valid config, got: {e}"),
        }
    }

    #[test]
    fn tls_listeners() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let keystore = dir.path().join("broker.pem");
        std::fs::write(&keystore, format!("{}{}", key.serialize_pem(), cert.pem())).expect("write");
        let trust = dir.path().join("ca.pem");
        std::fs::write(&trust, cert.pem()).expect("write");
        let (ks, ts) = (keystore.display().to_string(), trust.display().to_string());
        let base = [
            (
                "listeners",
                Some("PLAINTEXT://:9092,SSL://:9094,CONTROLLER://:9093"),
            ),
            ("advertised.listeners", None),
            ("ssl.keystore.type", Some("PEM")),
            ("ssl.keystore.location", Some(ks.as_str())),
        ];
        let c = ok(COMBINED, &base);
        assert!(c.tls_listeners.contains_key("SSL"));
        assert!(!c.tls_listeners.contains_key("PLAINTEXT"));
        assert!(c.inter_broker_security.tls.is_none());

        // The inter-broker listener on TLS needs what its client trusts.
        let mut inter = base.to_vec();
        inter.push(("inter.broker.listener.name", Some("SSL")));
        let e = fails(COMBINED, &inter);
        assert!(e.contains("ssl.truststore"), "{e}");
        inter.push(("ssl.truststore.type", Some("PEM")));
        inter.push(("ssl.truststore.location", Some(ts.as_str())));
        assert!(ok(COMBINED, &inter).inter_broker_security.tls.is_some());
        // A listener's own keystore wins over the broker's.
        let mut own = base.to_vec();
        own.push((
            "listener.name.ssl.ssl.keystore.location",
            Some("/nonexistent.pem"),
        ));
        assert!(fails(COMBINED, &own).contains("/nonexistent.pem"));

        let key_pem = key.serialize_pem();
        for (change, wanted) in [
            (("ssl.keystore.type", Some("JKS")), "PEM stores only"),
            (
                ("ssl.keystore.location", Some("/nonexistent.pem")),
                "cannot read it",
            ),
            (("ssl.keystore.location", Some(ts.as_str())), "private key"),
            (
                ("ssl.key.password", Some("secret")),
                "unencrypted PEM keys only",
            ),
            (
                ("ssl.client.auth", Some("required")),
                "ssl.truststore.type=PEM",
            ),
            (
                ("ssl.client.auth", Some("sometimes")),
                "required, requested, none",
            ),
            (
                ("ssl.cipher.suites", Some("TLS_AES_128_GCM_SHA256")),
                "cipher suites",
            ),
            (
                ("ssl.enabled.protocols", Some("TLSv1.1")),
                "no protocol krust speaks",
            ),
            (
                ("ssl.enabled.protocols", Some("TLSv9")),
                "unknown protocol TLSv9",
            ),
            (
                (
                    "listener.name.externl.ssl.keystore.location",
                    Some(ks.as_str()),
                ),
                "externl is not a listener",
            ),
            (
                ("ssl.keystore.key", Some(key_pem.as_str())),
                "ssl.keystore.location",
            ),
            (
                (
                    "listener.security.protocol.map",
                    Some("PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:SSL"),
                ),
                "Listener CONTROLLER uses TLS",
            ),
        ] {
            let mut changes = base.to_vec();
            changes.retain(|(k, _)| *k != change.0);
            changes.push(change);
            let e = fails(COMBINED, &changes);
            assert!(e.contains(wanted), "{change:?}: {e}");
            assert!(!e.contains("PRIVATE KEY") && !e.contains("secret"), "{e}");
        }
        // An SSL controller listener: the nodes reach it with its truststore, names checked.
        let ctl = [
            (
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"),
            ),
            ("ssl.keystore.type", Some("PEM")),
            ("ssl.keystore.location", Some(ks.as_str())),
            ("ssl.truststore.type", Some("PEM")),
            ("ssl.truststore.location", Some(ts.as_str())),
        ];
        let c = ok(COMBINED, &ctl);
        assert!(c.tls_listeners.contains_key("CONTROLLER"));
        assert!(c.controller_security.tls.is_some());
        let mut no_check = ctl.to_vec();
        no_check.push((
            "listener.name.controller.ssl.endpoint.identification.algorithm",
            Some(""),
        ));
        assert!(fails(COMBINED, &no_check).contains("https"));
        // A broker-only node needs only the truststore to reach it.
        let broker_ctl = [
            (
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"),
            ),
            ("listener.name.controller.ssl.truststore.type", Some("PEM")),
            (
                "listener.name.controller.ssl.truststore.location",
                Some(ts.as_str()),
            ),
        ];
        let c = ok(BROKER, &broker_ctl);
        assert!(c.controller_security.tls.is_some());
        assert!(!c.tls_listeners.contains_key("CONTROLLER"));

        // A broker-wide ssl.client.auth does not reach a SASL_SSL listener (KIP-684).
        let sasl_ssl = [
            (
                "listeners",
                Some("PLAINTEXT://:9092,SASL_SSL://:9094,CONTROLLER://:9093"),
            ),
            ("advertised.listeners", None),
            ("ssl.keystore.type", Some("PEM")),
            ("ssl.keystore.location", Some(ks.as_str())),
            ("sasl.enabled.mechanisms", Some("SCRAM-SHA-256")),
            ("ssl.client.auth", Some("required")),
        ];
        assert!(ok(COMBINED, &sasl_ssl)
            .tls_listeners
            .contains_key("SASL_SSL"));
        // Older versions in a hardened list are left out, as a JDK without them does.
        let mut legacy = base.to_vec();
        legacy.push(("ssl.enabled.protocols", Some("TLSv1.2,TLSv1.1,TLSv1")));
        assert!(ok(COMBINED, &legacy).tls_listeners.contains_key("SSL"));
        // Or given inline.
        let chain = cert.pem();
        let mut inline = base.to_vec();
        inline.retain(|(k, _)| *k != "ssl.keystore.location");
        inline.push(("ssl.keystore.certificate.chain", Some(chain.as_str())));
        inline.push(("ssl.keystore.key", Some(key_pem.as_str())));
        let c = ok(COMBINED, &inline);
        assert!(c.tls_listeners.contains_key("SSL"));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn sasl_listeners() {
        const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule \
            required username=\"admin\" password=\"pw\" user_admin=\"pw\" user_bob=\"b\";";
        let sasl = [
            (
                "listeners",
                Some("PLAINTEXT://:9092,SASL_PLAINTEXT://:9094,CONTROLLER://:9093"),
            ),
            ("advertised.listeners", None),
            ("sasl.enabled.mechanisms", Some("PLAIN,SCRAM-SHA-512")),
            (
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                Some(PLAIN_JAAS),
            ),
        ];
        let c = ok(COMBINED, &sasl);
        let l = &c.sasl.listeners["SASL_PLAINTEXT"];
        use krust_protocol::sasl::Mechanism;
        assert_eq!(l.mechanisms, [Mechanism::Plain, Mechanism::ScramSha512]);
        assert_eq!(l.plain_users.get("bob").map(String::as_str), Some("b"));
        assert!(!c.sasl.listeners.contains_key("PLAINTEXT"));
        assert!(c.sasl.inter_broker.is_none());
        assert_eq!(
            (
                c.sasl.reauth_ms,
                c.sasl.failed_auth_delay_ms,
                c.sasl.max_receive_size
            ),
            (0, 100, 524_288)
        );
        // Passwords stay out of the config's debug form.
        assert!(!format!("{c:?}").contains("user_bob"));
        assert!(!format!("{:?}", c.sasl).contains("\"b\""));

        // Brokers authenticating to each other on it.
        let mut inter = sasl.to_vec();
        inter.push(("inter.broker.listener.name", Some("SASL_PLAINTEXT")));
        let e = fails(COMBINED, &inter);
        assert!(e.contains("sasl.mechanism.inter.broker.protocol"), "{e}");
        inter.push(("sasl.mechanism.inter.broker.protocol", Some("PLAIN")));
        let creds = ok(COMBINED, &inter).sasl.inter_broker.expect("credentials");
        assert_eq!(
            (creds.mechanism, creds.username.as_str()),
            (Mechanism::Plain, "admin")
        );
        inter.pop();
        inter.push((
            "sasl.mechanism.inter.broker.protocol",
            Some("SCRAM-SHA-512"),
        ));
        let e = fails(COMBINED, &inter);
        assert!(e.contains("scram-sha-512.sasl.jaas.config"), "{e}");

        for (change, wanted) in [
            (("sasl.enabled.mechanisms", None), "GSSAPI"),
            (("sasl.enabled.mechanisms", Some("PLAIN,SCRAM-SHA-1")), "SCRAM-SHA-1"),
            (("sasl.enabled.mechanisms", Some(" , ")), "enables no SASL mechanism"),
            (
                ("listener.name.sasl_plaintext.plain.sasl.jaas.config", None),
                "has no listener.name.sasl_plaintext.plain.sasl.jaas.config",
            ),
            (
                (
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                    Some("org.apache.kafka.common.security.plain.PlainLoginModule required;"),
                ),
                "user_<name>",
            ),
            (
                (
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                    Some("Other required user_a=\"b\";"),
                ),
                "PlainLoginModule",
            ),
            (
                (
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                    Some("org.apache.kafka.common.security.plain.PlainLoginModule required user_a=;"),
                ),
                "expected a value",
            ),
            (
                ("listener.name.nope.plain.sasl.jaas.config", Some(PLAIN_JAAS)),
                "nope is not a listener",
            ),
            (
                ("listener.security.protocol.map", Some("PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT")),
                "listener.name.controller.plain.sasl.jaas.config",
            ),
            (("connection.failed.authentication.delay.ms", Some("-1")), "at least 0"),
            (("sasl.server.max.receive.size", Some("0")), "at least 1"),
        ] {
            let mut changes = sasl.to_vec();
            changes.retain(|(k, _)| *k != change.0);
            changes.push(change);
            let e = fails(COMBINED, &changes);
            assert!(e.contains(wanted), "{change:?}: {e}");
            // A JAAS value is never echoed in an error.
            assert!(!e.contains("user_admin"), "{e}");
        }
        // OAUTHBEARER: Kafka's unsecured validator by default, or signed tokens checked
        // against a JWKS; the sasl.oauthbearer.* keys per listener or for all.
        let mut oauth = sasl.to_vec();
        oauth.retain(|(k, _)| *k != "sasl.enabled.mechanisms");
        oauth.push(("sasl.enabled.mechanisms", Some("PLAIN,OAUTHBEARER")));
        let c = ok(COMBINED, &oauth);
        let v = c.sasl.listeners["SASL_PLAINTEXT"].oauth.clone();
        assert!(
            matches!(&v, Some(crate::oauth::Validator::Unsecured(o)) if *o == crate::oauth::UnsecuredOptions::default()),
            "{v:?}"
        );
        let dir = tempfile::tempdir().expect("dir");
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            r#"{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#,
        )
        .expect("write");
        let jwks_url = format!("file:{}", jwks.display());
        const HANDLER_KEY: &str =
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class";
        let mut signed = oauth.clone();
        signed.extend([
            (HANDLER_KEY, Some(crate::oauth::SECURED_HANDLERS[1])),
            (
                "listener.name.sasl_plaintext.sasl.oauthbearer.jwks.endpoint.url",
                Some(jwks_url.as_str()),
            ),
            ("sasl.oauthbearer.expected.audience", Some("a, b")),
            (
                "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.sub.claim.name",
                Some("client_id"),
            ),
        ]);
        let c = ok(COMBINED, &signed);
        match &c.sasl.listeners["SASL_PLAINTEXT"].oauth {
            Some(crate::oauth::Validator::Signed(v)) => {
                assert_eq!(
                    v.settings.audience,
                    Some(vec!["a".to_string(), "b".to_string()])
                );
                assert_eq!(v.settings.sub_claim, "client_id");
                assert_eq!(v.settings.clock_skew_s, 30);
                assert_eq!(
                    v.settings.source,
                    crate::oauth::KeySource::File(jwks.clone())
                );
            }
            other => panic!("{other:?}"),
        }
        for (change, wanted) in [
            ((HANDLER_KEY, Some("com.example.Mine")), "JWKS validator"),
            (
                (
                    "listener.name.sasl_plaintext.sasl.oauthbearer.jwks.endpoint.url",
                    None,
                ),
                "set sasl.oauthbearer.jwks.endpoint.url",
            ),
            (
                (
                    "listener.name.sasl_plaintext.sasl.oauthbearer.jwks.endpoint.url",
                    Some("ftp://idp/keys"),
                ),
                "https://, http:// or file:",
            ),
            (
                (
                    "listener.name.sasl_plaintext.sasl.oauthbearer.jwks.endpoint.url",
                    Some("file:/nonexistent/jwks"),
                ),
                "cannot read the JWKS file",
            ),
            (
                ("sasl.oauthbearer.clock.skew.seconds", Some("-1")),
                "at least 0",
            ),
            (
                ("sasl.oauthbearer.jwks.endpoint.refresh.ms", Some("0")),
                "at least 1",
            ),
        ] {
            let mut changes = signed.clone();
            changes.retain(|(k, _)| *k != change.0);
            if change.1.is_some() {
                changes.push(change);
            }
            let e = fails(COMBINED, &changes);
            assert!(e.contains(wanted), "{change:?}: {e}");
        }
        // Signed-token settings on a listener that checks no signature, or a handler set
        // without its mechanism: refused.
        for (extra, wanted) in [
            (
                (
                    "sasl.oauthbearer.jwks.endpoint.url",
                    Some(jwks_url.as_str()),
                ),
                "unsecured validator",
            ),
            (
                (
                    "listener.name.sasl_plaintext.sasl.oauthbearer.expected.issuer",
                    Some("x"),
                ),
                "unsecured validator",
            ),
            (
                (
                    "sasl.server.callback.handler.class",
                    Some(crate::oauth::SECURED_HANDLERS[0]),
                ),
                "per listener and mechanism",
            ),
        ] {
            let mut changes = oauth.clone();
            changes.push(extra);
            let e = fails(COMBINED, &changes);
            assert!(e.contains(wanted), "{extra:?}: {e}");
        }
        let mut scoped = oauth.clone();
        scoped.push((
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            Some(
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                  unsecuredValidatorRequiredScope=\"a\\\\b\";",
            ),
        ));
        let e = fails(COMBINED, &scoped);
        assert!(e.contains("invalid scope item"), "{e}");
        scoped.pop();
        scoped.push((
            "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
            Some("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                  unsecuredValidatorRequiredScope=\"read write\" unsecuredValidatorAllowableClockSkewMs=\"500\";"),
        ));
        match &ok(COMBINED, &scoped).sasl.listeners["SASL_PLAINTEXT"].oauth {
            Some(crate::oauth::Validator::Unsecured(o)) => {
                assert_eq!(o.required_scope, ["read", "write"]);
                assert_eq!(o.clock_skew_ms, 500);
            }
            other => panic!("{other:?}"),
        }

        // A SASL controller listener: the nodes authenticate to it with
        // sasl.mechanism.controller.protocol, PLAIN or OAUTHBEARER only.
        const CONTROLLER_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule \
            required username=\"node\" password=\"pw\" user_node=\"pw\";";
        let ctl = [
            (
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"),
            ),
            ("sasl.enabled.mechanisms", Some("PLAIN")),
            ("sasl.mechanism.controller.protocol", Some("PLAIN")),
            (
                "listener.name.controller.plain.sasl.jaas.config",
                Some(CONTROLLER_JAAS),
            ),
        ];
        let c = ok(COMBINED, &ctl);
        let creds = c
            .controller_security
            .sasl
            .clone()
            .expect("controller credentials");
        assert_eq!(
            (creds.mechanism, creds.username.as_str()),
            (Mechanism::Plain, "node")
        );
        assert_eq!(
            c.controller_listener().map(|l| l.security_protocol),
            Some(SecurityProtocol::SaslPlaintext)
        );
        assert!(c.sasl.listeners.contains_key("CONTROLLER"));
        for (change, wanted) in [
            (
                ("sasl.mechanism.controller.protocol", Some("SCRAM-SHA-512")),
                "PLAIN or OAUTHBEARER",
            ),
            (("sasl.mechanism.controller.protocol", None), "GSSAPI"),
        ] {
            let mut changes = ctl.to_vec();
            changes.retain(|(k, _)| *k != change.0);
            if change.1.is_some() {
                changes.push(change);
            }
            let e = fails(COMBINED, &changes);
            assert!(e.contains(wanted), "{change:?}: {e}");
        }
        // A broker-only node reaches such controllers with the controller listener's keys,
        // though it does not bind that listener.
        let c = ok(BROKER, &ctl);
        assert!(c.controller_security.sasl.is_some());
        assert!(!c.sasl.listeners.contains_key("CONTROLLER"));
        // A PLAINTEXT controller listener: no credentials.
        assert!(ok(COMBINED, &[]).controller_security.sasl.is_none());

        // The authorizer: none by default, StandardAuthorizer, nothing else.
        assert_eq!(ok(COMBINED, &[]).authorizer, None);
        let c = ok(
            COMBINED,
            &[
                ("authorizer.class.name", Some(STANDARD_AUTHORIZER)),
                ("super.users", Some("User:admin; User:CN=broker,O=krust")),
                ("allow.everyone.if.no.acl.found", Some("true")),
            ],
        );
        let a = c.authorizer.expect("authorizer");
        assert_eq!(a.super_users, ["User:admin", "User:CN=broker,O=krust"]);
        assert!(a.allow_if_no_acl);
        for (change, wanted) in [
            (
                (
                    "authorizer.class.name",
                    Some("kafka.security.authorizer.AclAuthorizer"),
                ),
                "ZooKeeper",
            ),
            (
                ("authorizer.class.name", Some("com.example.Mine")),
                "StandardAuthorizer",
            ),
            (("super.users", Some("admin")), "Type:name"),
            (
                ("ssl.principal.mapping.rules", Some("RULE:^CN=(.*$/$1/")),
                "Invalid rule pattern",
            ),
            (
                ("principal.builder.class", Some("com.example.Builder")),
                "DefaultKafkaPrincipalBuilder",
            ),
            (
                ("allow.everyone.if.no.acl.found", Some("yes")),
                "allow.everyone",
            ),
        ] {
            let e = fails(COMBINED, &[change]);
            assert!(e.contains(wanted), "{change:?}: {e}");
        }
        // The per-listener mechanisms win over sasl.enabled.mechanisms.
        let mut per_listener = sasl.to_vec();
        per_listener.push((
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
            Some("SCRAM-SHA-256"),
        ));
        let c = ok(COMBINED, &per_listener);
        assert_eq!(
            c.sasl.listeners["SASL_PLAINTEXT"].mechanisms,
            [Mechanism::ScramSha256]
        );
    }

    #[test]
    fn queued_max_request_bytes_bounds_the_request_pool_when_positive() {
        let pool = |v: &str| {
            ok(COMBINED, &[("queued.max.request.bytes", Some(v))]).queued_max_request_bytes
        };
        assert_eq!(pool("1048576"), Some(1_048_576));
        assert_eq!(pool("-1"), None);
        assert_eq!(pool("0"), None);
        assert!(fails(COMBINED, &[("queued.max.request.bytes", Some("-2"))])
            .contains("queued.max.request.bytes"));
        assert!(
            fails(COMBINED, &[("queued.max.request.bytes", Some("lots"))])
                .contains("queued.max.request.bytes")
        );
    }

    #[test]
    fn connections_max_idle_ms_is_never_when_negative() {
        let idle =
            |v: &str| ok(COMBINED, &[("connections.max.idle.ms", Some(v))]).connections_max_idle_ms;
        assert_eq!(idle("1000"), Some(1000));
        assert_eq!(idle("-1"), None);
        assert!(
            fails(COMBINED, &[("connections.max.idle.ms", Some("soon"))])
                .contains("connections.max.idle.ms")
        );
    }

    fn fails(base: &[(&str, &str)], changes: &[(&str, Option<&str>)]) -> String {
        match build_with(base, changes) {
            Ok(_) => panic!("expected {changes:?} to be rejected"),
            Err(e) => e.to_string(),
        }
    }

    fn pairs(v: Vec<(String, String)>) -> Vec<(String, String)> {
        v
    }

    #[test]
    fn properties_basic_forms() {
        let text = "# comment\n! also comment\n\n  a=1\nb : 2\nc 3\nd\ne=\nf = spaced value  \n";
        let p = parse_properties(text).expect("parse");
        assert_eq!(
            p,
            pairs(vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "3".into()),
                ("d".into(), "".into()),
                ("e".into(), "".into()),
                ("f".into(), "spaced value".into()),
            ])
        );
    }

    #[test]
    fn properties_continuation_and_escapes() {
        let text = "list=a,\\\n    b,\\\r\n  c\nkey\\=x=v\\=w\nuni=\\u0041\\t!\nsp=keep\\ \nbs=end\\\\\nnext=1\n# comment \\\nafter=2";
        let p = parse_properties(text).expect("parse");
        assert_eq!(
            p,
            pairs(vec![
                ("list".into(), "a,b,c".into()),
                ("key=x".into(), "v=w".into()),
                ("uni".into(), "A\t!".into()),
                ("sp".into(), "keep ".into()),
                ("bs".into(), "end\\".into()),
                ("next".into(), "1".into()),
                ("after".into(), "2".into()),
            ])
        );
        // Continuation at end of input, CR-only line endings.
        let p = parse_properties("a=1\\").expect("parse");
        assert_eq!(p, pairs(vec![("a".into(), "1".into())]));
        let p = parse_properties("a=1\rb=2").expect("parse");
        assert_eq!(p.len(), 2);
        let e = parse_properties("a=\\u00zz\n").expect_err("bad escape");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn no_file_uses_single_node_defaults() {
        let c = ServerConfig::load(None, &[]).expect("defaults");
        assert_eq!(c.node_id, 1);
        assert!(c.is_broker() && c.is_controller());
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.broker_listener().map(|l| l.port), Some(9092));
        assert_eq!(c.controller_listener().map(|l| l.port), Some(9093));
        assert_eq!(
            c.advertised_broker_listener().map(ToString::to_string),
            Some("PLAINTEXT://localhost:9092".to_string())
        );
        assert_eq!(
            c.advertised_controller_listener().map(|l| l.host.as_str()),
            Some("localhost")
        );
        assert_eq!(
            c.controller_quorum_voters,
            vec![QuorumVoter {
                id: 1,
                host: "localhost".into(),
                port: 9093
            }]
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/krust-logs")]);
        assert_eq!(c.metadata_log_dir(), Path::new("/tmp/krust-logs"));
        assert_eq!(c.offsets_topic_replication_factor, 1);
        assert_eq!(c.transaction_state_log_replication_factor, 1);
        assert_eq!(c.transaction_state_log_min_isr, 1);
        assert_eq!(c.transaction_state_log_num_partitions, 50);
        assert_eq!(c.transaction_max_timeout_ms, 900_000);
        assert_eq!(c.transactional_id_expiration_ms, 604_800_000);
        // Kafka defaults for everything else.
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.default_replication_factor, 1);
        assert!(c.auto_create_topics_enable && c.delete_topic_enable);
        assert_eq!(c.log_segment_bytes, 1 << 30);
        assert_eq!(c.log_roll_ms, 604_800_000);
        assert_eq!(c.log_retention_ms, 604_800_000);
        assert_eq!(c.log_retention_bytes, -1);
        assert_eq!(c.log_retention_check_interval_ms, 300_000);
        assert!(c.log_cleaner_enable);
        assert_eq!(c.log_cleaner_threads, 1);
        assert_eq!(c.log_cleaner_dedupe_buffer_size, 128 << 20);
        assert_eq!(c.log_cleaner_backoff_ms, 15_000);
        assert_eq!(c.log_index_interval_bytes, 4096);
        assert_eq!(c.log_index_size_max_bytes, 10 * 1024 * 1024);
        assert_eq!(c.log_flush_interval_messages, i64::MAX);
        assert_eq!(c.log_flush_interval_ms, None);
        assert_eq!(c.effective_flush_interval_ms(), i64::MAX);
        assert_eq!(c.log_message_timestamp_type, TimestampType::CreateTime);
        assert_eq!(c.log_cleanup_policy, vec!["delete".to_string()]);
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.queued_max_request_bytes, None);
        assert_eq!(c.connections_max_idle_ms, Some(600_000));
        assert_eq!(c.min_insync_replicas, 1);
        assert_eq!(c.offsets_topic_num_partitions, 50);
        assert_eq!(c.broker_rack, None);
        assert!(!c.unclean_leader_election_enable);
        assert_eq!(c.replica_lag_time_max_ms, 30_000);
        assert_eq!(c.broker_heartbeat_interval_ms, 2000);
        assert_eq!(c.broker_session_timeout_ms, 9000);
        assert_eq!(c.controller_quorum_election_timeout_ms, 1000);
        assert_eq!(c.controller_quorum_fetch_timeout_ms, 2000);
        assert_eq!(c.controller_quorum_request_timeout_ms, 2000);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
        assert_eq!(c.group_min_session_timeout_ms, 6000);
        assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
        assert_eq!(c.offsets_retention_minutes, 10080);
        assert_eq!(
            c.http_listener,
            Some(HostPort {
                host: "localhost".into(),
                port: 9644
            })
        );
        assert_eq!(c.explicit().len(), SINGLE_NODE_DEFAULTS.len());
    }

    #[test]
    fn file_and_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.properties");
        let text: String = COMBINED
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect::<String>()
            + "num.partitions=3\nnum.io.threads=8\n";
        std::fs::write(&path, text).expect("write");
        let c = ServerConfig::load(
            Some(&path),
            &["num.partitions=7".into(), "broker.rack = r1".into()],
        )
        .expect("load");
        assert_eq!(c.num_partitions, 7);
        assert_eq!(c.broker_rack.as_deref(), Some("r1"));
        assert_eq!(c.unused_keys(), &["num.io.threads".to_string()]);
        assert_eq!(
            c.explicit().get("num.partitions").map(String::as_str),
            Some("7")
        );
        // The sample file's listeners bind all interfaces.
        assert_eq!(
            c.broker_listener().map(Listener::bind_address),
            Some("0.0.0.0:9092".into())
        );
        // Without a listener.security.protocol.map, CONTROLLER maps to PLAINTEXT.
        assert_eq!(
            c.listener_security_protocol_map.get("CONTROLLER"),
            Some(&SecurityProtocol::Plaintext)
        );

        let e = ServerConfig::load(Some(&path), &["num.partitions".into()]).expect_err("malformed");
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = ServerConfig::load(Some(&dir.path().join("missing.properties")), &[])
            .expect_err("missing");
        assert!(matches!(e, ConfigError::Io { .. }));
        let e = ServerConfig::load(Some(&path), &["num.partitions=x".into()]).expect_err("bad");
        assert!(e.to_string().contains("server.properties"), "{e}");

        // A file without node.id is an error (no embedded defaults apply).
        std::fs::write(&path, "process.roles=broker,controller\n").expect("write");
        let e = ServerConfig::load(Some(&path), &[]).expect_err("no node.id");
        assert!(
            e.to_string()
                .contains("Missing required configuration `node.id`"),
            "{e}"
        );
        // Overrides apply on top of the embedded defaults too.
        let c = ServerConfig::load(
            None,
            &[
                "log.dirs=/data/a,/data/b".into(),
                "metadata.log.dir=/meta".into(),
            ],
        )
        .expect("load");
        assert_eq!(c.log_dirs.len(), 2);
        assert_eq!(c.metadata_log_dir(), Path::new("/meta"));
        assert_eq!(c.all_log_dirs().len(), 3);
    }

    #[test]
    fn node_id_and_roles() {
        assert!(fails(COMBINED, &[("node.id", Some("-3"))])
            .contains("Invalid value -3 for configuration node.id: Value must be at least 0"));
        assert!(fails(COMBINED, &[("node.id", None)]).contains("`node.id`"));
        assert!(fails(COMBINED, &[("node.id", Some("one"))])
            .contains("Invalid value one for configuration node.id: Not a number of type INT"));
        assert_eq!(
            ok(COMBINED, &[("node.id", None), ("broker.id", Some("1"))]).node_id,
            1
        );
        assert!(fails(COMBINED, &[("broker.id", Some("5"))]).contains("broker.id"));
        assert_eq!(
            fails(COMBINED, &[("process.roles", None)]),
            "krust runs in KRaft mode only: set process.roles (broker, controller, or broker,controller)"
        );
        assert!(fails(COMBINED, &[("process.roles", Some(""))]).contains("set process.roles"));
        assert!(fails(COMBINED, &[("process.roles", Some("broker,worker"))])
            .contains("Unknown process role 'worker'"));
        assert!(fails(COMBINED, &[("process.roles", Some("broker,broker"))]).contains("Duplicate"));
    }

    #[test]
    fn connection_limits() {
        let c = ok(COMBINED, &[]);
        assert_eq!(
            (c.max_connections, c.max_connections_per_ip),
            (i32::MAX as u32, i32::MAX as u32)
        );
        assert!(c.max_connections_per_ip_overrides.is_empty());
        let c = ok(
            COMBINED,
            &[
                ("max.connections", Some("100")),
                ("max.connections.per.ip", Some("0")),
                (
                    "max.connections.per.ip.overrides",
                    Some("127.0.0.1:5, [::1]:7 ,localhost:9"),
                ),
            ],
        );
        assert_eq!((c.max_connections, c.max_connections_per_ip), (100, 0));
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        // localhost resolves to 127.0.0.1 (and maybe ::1), later entries winning.
        assert_eq!(
            c.max_connections_per_ip_overrides.get(&ip("127.0.0.1")),
            Some(&9)
        );
        assert!(fails(COMBINED, &[("max.connections.per.ip", Some("0"))])
            .contains("only if max.connections.per.ip.overrides"));
        for bad in ["127.0.0.1", "127.0.0.1:x", "127.0.0.1:-1"] {
            let e = fails(COMBINED, &[("max.connections.per.ip.overrides", Some(bad))]);
            assert!(e.contains("max.connections.per.ip.overrides"), "{bad}: {e}");
        }
        assert!(fails(COMBINED, &[("max.connections", Some("-1"))]).contains("at least 0"));
        let c = ok(
            COMBINED,
            &[("listener.name.plaintext.max.connections", Some("3"))],
        );
        assert_eq!(c.listener_max_connections.get("PLAINTEXT"), Some(&3));
        assert!(c.unused_keys().is_empty(), "{:?}", c.unused_keys());
        let e = fails(
            COMBINED,
            &[("listener.name.nope.max.connections", Some("3"))],
        );
        assert!(e.contains("nope is not a listener"), "{e}");
        let e = fails(
            COMBINED,
            &[("listener.name.plaintext.max.connections", Some("x"))],
        );
        assert!(e.contains("listener.name.plaintext.max.connections"), "{e}");
    }

    #[test]
    fn log_cleaner_settings() {
        let c = ok(
            COMBINED,
            &[
                ("log.cleaner.enable", Some("false")),
                ("log.cleaner.threads", Some("2")),
                ("log.cleaner.backoff.ms", Some("100")),
                ("log.cleaner.min.cleanable.ratio", Some("0.1")),
            ],
        );
        assert!(!c.log_cleaner_enable);
        assert_eq!((c.log_cleaner_threads, c.log_cleaner_backoff_ms), (2, 100));
        assert_eq!(c.log_cleaner_io_max_bytes_per_second, None);
        let c = ok(
            COMBINED,
            &[("log.cleaner.io.max.bytes.per.second", Some("1e6"))],
        );
        assert_eq!(c.log_cleaner_io_max_bytes_per_second, Some(1e6));
        for bad in ["0", "-1", "fast", "NaN"] {
            let e = fails(
                COMBINED,
                &[("log.cleaner.io.max.bytes.per.second", Some(bad))],
            );
            assert!(
                e.contains("log.cleaner.io.max.bytes.per.second"),
                "{bad}: {e}"
            );
        }
        // A topic setting's broker default is used, not "accepted, unused".
        assert!(c.unused_keys().is_empty(), "{:?}", c.unused_keys());
        let e = fails(
            COMBINED,
            &[
                ("log.cleaner.threads", Some("4")),
                ("log.cleaner.dedupe.buffer.size", Some("2097152")),
            ],
        );
        assert!(e.contains("at least 1 MiB"), "{e}");
        assert!(fails(COMBINED, &[("log.cleaner.enable", Some("yes"))]).contains("true or false"));
        assert!(fails(COMBINED, &[("log.cleaner.threads", Some("-1"))]).contains("at least 0"));
    }

    #[test]
    fn consumer_group_settings_are_checked() {
        let c = ok(COMBINED, &[]);
        assert!(c.consumer_group_protocol);
        assert_eq!(c.consumer_groups.session_timeout_ms, 45_000);
        assert_eq!(c.consumer_groups.assignors, ["uniform", "range"]);
        let c = ok(
            COMBINED,
            &[
                ("group.coordinator.rebalance.protocols", Some("classic")),
                (
                    "group.consumer.assignors",
                    Some("org.apache.kafka.coordinator.group.assignor.RangeAssignor"),
                ),
                ("group.consumer.max.size", Some("10")),
            ],
        );
        assert!(!c.consumer_group_protocol);
        assert_eq!(c.consumer_groups.assignors, ["range"]);
        assert_eq!(c.consumer_groups.max_size, Some(10));
        for (k, v, why) in [
            (
                "group.coordinator.rebalance.protocols",
                "consumer",
                "cannot be disabled",
            ),
            (
                "group.coordinator.rebalance.protocols",
                "classic,share",
                "share groups",
            ),
            (
                "group.consumer.assignors",
                "com.example.Mine",
                "custom assignors",
            ),
            (
                "group.consumer.session.timeout.ms",
                "1000",
                "greater than or equal",
            ),
            (
                "group.consumer.heartbeat.interval.ms",
                "20000",
                "less than or equal",
            ),
            (
                "group.consumer.migration.policy",
                "sideways",
                "must be one of",
            ),
        ] {
            let e = fails(COMBINED, &[(k, Some(v))]);
            assert!(e.contains(why), "{k}={v}: {e}");
        }
        let e = fails(
            COMBINED,
            &[
                ("group.consumer.min.heartbeat.interval.ms", Some("1000")),
                ("group.consumer.max.session.timeout.ms", Some("100000")),
                ("group.consumer.heartbeat.interval.ms", Some("50000")),
                ("group.consumer.max.heartbeat.interval.ms", Some("60000")),
            ],
        );
        assert!(
            e.contains("less than group.consumer.session.timeout.ms"),
            "{e}"
        );
    }

    #[test]
    fn unknown_and_accepted_keys() {
        let e = fails(COMBINED, &[("num.partitons", Some("3"))]);
        assert!(e.contains("'num.partitons'") && e.contains("'3'"), "{e}");
        let c = ok(
            COMBINED,
            &[
                ("socket.send.buffer.bytes", Some("102400")),
                ("log.cleaner.io.buffer.size", Some("524288")),
                ("group.share.enable", Some("false")),
                ("zookeeper.connection.timeout.ms", Some("18000")),
            ],
        );
        assert_eq!(c.unused_keys().len(), 4);
        assert!(
            fails(COMBINED, &[("zookeeper.connect", Some("localhost:2181"))])
                .starts_with("ZooKeeper mode is not supported")
        );
        assert!(fails(
            COMBINED,
            &[("confluent.support.metrics.enable", Some("false"))]
        )
        .contains("Unknown configuration key"));
        assert!(fails(COMBINED, &[("control.plane.listener.name", Some("CP"))]).contains("KRaft"));
        // Accepted-unused topic synonyms are still validated.
        assert!(fails(COMBINED, &[("compression.type", Some("brotli"))])
            .contains("Invalid value brotli for configuration compression.type"));
        for k in ACCEPTED_UNUSED_KEYS {
            assert!(
                broker_key_def(k).is_none(),
                "{k} is both implemented and unused"
            );
        }
    }

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(
            fails(COMBINED, &[("num.partitions", Some("abc"))]),
            "Invalid value abc for configuration num.partitions: Not a number of type INT"
        );
        assert_eq!(
            fails(COMBINED, &[("num.partitions", Some("0"))]),
            "Invalid value 0 for configuration num.partitions: Value must be at least 1"
        );
        assert_eq!(
            fails(COMBINED, &[("offsets.topic.replication.factor", Some("40000"))]),
            "Invalid value 40000 for configuration offsets.topic.replication.factor: Not a number of type SHORT"
        );
        assert_eq!(
            fails(COMBINED, &[("log.retention.bytes", Some("1e9"))]),
            "Invalid value 1e9 for configuration log.retention.bytes: Not a number of type LONG"
        );
        assert_eq!(
            fails(COMBINED, &[("log.segment.bytes", Some("13"))]),
            "Invalid value 13 for configuration log.segment.bytes: Value must be at least 14"
        );
        assert_eq!(
            fails(COMBINED, &[("auto.create.topics.enable", Some("yes"))]),
            "Invalid value yes for configuration auto.create.topics.enable: Expected value to be either true or false"
        );
        assert!(
            !ok(COMBINED, &[("auto.create.topics.enable", Some("FALSE"))])
                .auto_create_topics_enable
        );
        assert!(
            fails(COMBINED, &[("log.message.timestamp.type", Some("Now"))])
                .contains("String must be one of: CreateTime, LogAppendTime")
        );
        assert_eq!(
            ok(
                COMBINED,
                &[("log.message.timestamp.type", Some("LogAppendTime"))]
            )
            .log_message_timestamp_type,
            TimestampType::LogAppendTime
        );
        assert!(fails(COMBINED, &[("log.cleanup.policy", Some("delete,purge"))]).contains("purge"));
        assert_eq!(
            ok(COMBINED, &[("log.cleanup.policy", Some("compact, delete"))]).log_cleanup_policy,
            vec!["compact".to_string(), "delete".to_string()]
        );
        assert!(fails(
            COMBINED,
            &[
                ("group.min.session.timeout.ms", Some("10")),
                ("group.max.session.timeout.ms", Some("5"))
            ]
        )
        .contains("group.max.session.timeout.ms"));
        assert!(
            fails(COMBINED, &[("replica.fetch.wait.max.ms", Some("40000"))])
                .contains("replica.socket.timeout.ms")
        );
        assert_eq!(
            ok(COMBINED, &[("http.listener", Some("localhost:8080"))]).http_listener,
            Some(HostPort {
                host: "localhost".into(),
                port: 8080
            })
        );
        assert!(fails(COMBINED, &[("http.listener", Some("8080"))]).contains("http.listener"));
    }

    #[test]
    fn retention_and_roll_precedence() {
        let r = |changes: &[(&str, Option<&str>)]| ok(COMBINED, changes).log_retention_ms;
        assert_eq!(r(&[]), 168 * HOUR_MS);
        assert_eq!(r(&[("log.retention.hours", Some("1"))]), HOUR_MS);
        assert_eq!(
            r(&[
                ("log.retention.hours", Some("1")),
                ("log.retention.minutes", Some("5"))
            ]),
            5 * MINUTE_MS
        );
        assert_eq!(
            r(&[
                ("log.retention.hours", Some("1")),
                ("log.retention.minutes", Some("5")),
                ("log.retention.ms", Some("1234"))
            ]),
            1234
        );
        assert_eq!(r(&[("log.retention.ms", Some("-1"))]), -1);
        assert_eq!(r(&[("log.retention.hours", Some("-1"))]), -1);
        assert!(fails(COMBINED, &[("log.retention.ms", Some("0"))]).contains("unlimited (-1)"));
        assert!(fails(
            COMBINED,
            &[
                ("log.retention.minutes", Some("x")),
                ("log.retention.ms", Some("5"))
            ]
        )
        .contains("log.retention.minutes"));
        assert_eq!(
            ok(COMBINED, &[("log.roll.hours", Some("2"))]).log_roll_ms,
            2 * HOUR_MS
        );
        assert_eq!(
            ok(
                COMBINED,
                &[("log.roll.hours", Some("2")), ("log.roll.ms", Some("99"))]
            )
            .log_roll_ms,
            99
        );
        assert_eq!(
            ok(COMBINED, &[("log.flush.interval.ms", Some("1000"))]).effective_flush_interval_ms(),
            1000
        );
    }

    #[test]
    fn controller_role_rules() {
        let e = fails(
            COMBINED,
            &[("controller.quorum.voters", Some("2@h2:9093,3@h3:9093"))],
        );
        assert!(
            e.contains("the node id 1 must be included in the set of voters"),
            "{e}"
        );
        let e = fails(COMBINED, &[("controller.listener.names", Some("CTRL"))]);
        assert!(
            e.contains("CTRL is not in listeners")
                || e.contains("No security protocol defined for listener"),
            "{e}"
        );
        let e = fails(
            COMBINED,
            &[
                ("controller.listener.names", Some("CTRL")),
                (
                    "listener.security.protocol.map",
                    Some("CTRL:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
                ),
            ],
        );
        assert!(
            e.contains(
                "controller.listener.names must only contain values appearing in the 'listeners'"
            ),
            "{e}"
        );
        assert!(fails(COMBINED, &[("controller.listener.names", None)])
            .contains("controller.listener.names must contain at least one value"));
        // Controller-only: only controller listeners.
        let c = ok(CONTROLLER, &[]);
        assert!(c.is_controller() && !c.is_broker());
        assert_eq!(c.broker_listener(), None);
        let e = fails(
            CONTROLLER,
            &[(
                "listeners",
                Some("CONTROLLER://localhost:9093,PLAINTEXT://localhost:9092"),
            )],
        );
        assert!(
            e.contains("must only contain KRaft controller listeners"),
            "{e}"
        );
        // Dynamic quorum: no voters list, so no membership check.
        let c = ok(
            CONTROLLER,
            &[
                ("controller.quorum.voters", None),
                (
                    "controller.quorum.bootstrap.servers",
                    Some("localhost:9093"),
                ),
            ],
        );
        assert_eq!(c.controller_quorum_bootstrap_servers[0].port, 9093);
        assert!(fails(CONTROLLER, &[("controller.quorum.voters", None)])
            .starts_with("Missing quorum configuration"));
    }

    #[test]
    fn broker_role_rules() {
        let c = ok(BROKER, &[]);
        assert!(c.is_broker() && !c.is_controller());
        assert_eq!(c.controller_listener(), None);
        assert_eq!(c.advertised_broker_listener().map(|l| l.port), Some(9092));
        let e = fails(BROKER, &[("node.id", Some("1"))]);
        assert!(
            e.contains("must not be included in the set of voters"),
            "{e}"
        );
        let e = fails(
            BROKER,
            &[(
                "listeners",
                Some("PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093"),
            )],
        );
        assert!(
            e.contains("must not contain KRaft controller listeners"),
            "{e}"
        );
        let e = fails(
            BROKER,
            &[
                ("listeners", Some("INTERNAL://localhost:9092")),
                (
                    "listener.security.protocol.map",
                    Some("INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"),
                ),
            ],
        );
        assert!(e.starts_with("inter.broker.listener.name must be a listener name defined in advertised.listeners"), "{e}");
        let c = ok(
            BROKER,
            &[
                ("listeners", Some("INTERNAL://localhost:9092")),
                (
                    "listener.security.protocol.map",
                    Some("INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"),
                ),
                ("inter.broker.listener.name", Some("internal")),
            ],
        );
        assert_eq!(c.inter_broker_listener_name, "INTERNAL");
        assert!(fails(
            BROKER,
            &[("inter.broker.listener.name", Some("CONTROLLER"))]
        )
        .contains("must not be a controller listener"));
        assert!(fails(
            BROKER,
            &[
                ("security.inter.broker.protocol", Some("PLAINTEXT")),
                ("inter.broker.listener.name", Some("PLAINTEXT"))
            ]
        )
        .starts_with("Only one of"));
        assert!(ok(
            BROKER,
            &[("security.inter.broker.protocol", Some("PLAINTEXT"))]
        )
        .is_broker());
    }

    #[test]
    fn listener_rules() {
        let e = fails(
            COMBINED,
            &[(
                "advertised.listeners",
                Some("PLAINTEXT://h:9092,EXTERNAL://h:9094"),
            )],
        );
        assert!(
            e.starts_with("advertised.listeners listener names must be equal to or a subset"),
            "{e}"
        );
        let e = fails(
            COMBINED,
            &[("advertised.listeners", Some("PLAINTEXT://0.0.0.0:9092"))],
        );
        assert!(e.contains("nonroutable meta-address 0.0.0.0"), "{e}");
        // listeners on 0.0.0.0 without advertised.listeners would advertise 0.0.0.0.
        let e = fails(
            COMBINED,
            &[
                (
                    "listeners",
                    Some("PLAINTEXT://0.0.0.0:9092,CONTROLLER://localhost:9093"),
                ),
                ("advertised.listeners", None),
            ],
        );
        assert!(e.contains("nonroutable"), "{e}");
        // ... but a controller listener bound to 0.0.0.0 and not advertised is fine.
        let c = ok(
            COMBINED,
            &[
                (
                    "listeners",
                    Some("PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093"),
                ),
                ("advertised.listeners", Some("PLAINTEXT://localhost:9092")),
            ],
        );
        assert_eq!(c.advertised_listeners.len(), 2);
        assert_eq!(
            c.advertised_controller_listener().map(|l| l.host.as_str()),
            Some("0.0.0.0")
        );
        // Advertised defaults to listeners.
        let c = ok(
            COMBINED,
            &[
                (
                    "listeners",
                    Some("PLAINTEXT://h1:9092,CONTROLLER://h1:9093"),
                ),
                ("advertised.listeners", None),
            ],
        );
        assert_eq!(c.advertised_listeners, c.listeners);
        // A TLS listener without its keystore is a clear error.
        let e = fails(
            COMBINED,
            &[(
                "listeners",
                Some("PLAINTEXT://:9092,CONTROLLER://:9093,SSL://:9094"),
            )],
        );
        assert!(
            e.contains("Listener SSL uses TLS: set ssl.keystore.type=PEM"),
            "{e}"
        );
        let e = fails(
            COMBINED,
            &[(
                "listener.security.protocol.map",
                Some("CONTROLLER:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT"),
            )],
        );
        assert!(e.contains("GSSAPI"), "{e}");
        let e = fails(
            COMBINED,
            &[(
                "listener.security.protocol.map",
                Some("PLAINTEXT:PLAINTEXT"),
            )],
        );
        assert!(
            e.starts_with("No security protocol defined for listener CONTROLLER"),
            "{e}"
        );
        assert!(fails(
            COMBINED,
            &[("listener.security.protocol.map", Some("CONTROLLER:TLS"))]
        )
        .contains("unknown security protocol 'TLS'"));
        assert!(fails(
            COMBINED,
            &[("listener.security.protocol.map", Some("CONTROLLER"))]
        )
        .contains("LISTENER_NAME:SECURITY_PROTOCOL"));
        // Malformed or duplicate listeners.
        for bad in [
            "PLAINTEXT:9092",
            "PLAINTEXT://host",
            "PLAINTEXT://host:99999",
            "://h:1",
        ] {
            let e = fails(COMBINED, &[("listeners", Some(bad))]);
            assert!(
                e.contains("Invalid value") && e.contains("listeners"),
                "{bad}: {e}"
            );
        }
        assert!(fails(
            COMBINED,
            &[("listeners", Some("PLAINTEXT://:9092,PLAINTEXT://:9093"))]
        )
        .contains("different name"));
        assert!(fails(
            COMBINED,
            &[("listeners", Some("PLAINTEXT://:9092,CONTROLLER://:9092"))]
        )
        .contains("different port"));
        // IPv6 and lower-case names.
        let c = ok(
            COMBINED,
            &[
                (
                    "listeners",
                    Some("plaintext://[::1]:9092,CONTROLLER://:9093"),
                ),
                ("advertised.listeners", Some("PLAINTEXT://[::1]:9092")),
            ],
        );
        assert_eq!(c.listeners[0].name, "PLAINTEXT");
        assert_eq!(c.listeners[0].host, "::1");
        assert_eq!(c.listeners[0].bind_address(), "[::1]:9092");
        assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://[::1]:9092");
    }

    #[test]
    fn voter_parsing() {
        let c = ok(
            COMBINED,
            &[(
                "controller.quorum.voters",
                Some("1@localhost:9093, 2@h2:9093,3@[::1]:9095"),
            )],
        );
        assert_eq!(c.controller_quorum_voters.len(), 3);
        assert_eq!(c.controller_quorum_voters[2].host, "::1");
        assert_eq!(c.controller_quorum_voters[1].to_string(), "2@h2:9093");
        for bad in ["1@localhost", "x@h:1", "1:h:9093", "-1@h:1", "1@:9093"] {
            let e = fails(COMBINED, &[("controller.quorum.voters", Some(bad))]);
            assert!(
                e.contains("controller.quorum.voters") && e.contains(bad),
                "{bad}: {e}"
            );
        }
        assert!(fails(
            COMBINED,
            &[("controller.quorum.voters", Some("1@0.0.0.0:9093"))]
        )
        .contains("non-routable"));
        assert!(fails(
            COMBINED,
            &[("controller.quorum.voters", Some("1@a:1,1@b:2"))]
        )
        .contains("more than once"));
        assert!(fails(
            COMBINED,
            &[("controller.quorum.bootstrap.servers", Some("nohost"))]
        )
        .contains("host:port"));
    }

    #[test]
    fn describe_broker() {
        let c = ok(
            COMBINED,
            &[
                ("log.retention.hours", Some("24")),
                ("num.partitions", Some(" 03")),
            ],
        );
        let all = c.describe_broker_configs();
        assert_eq!(all.len(), BROKER_KEYS.len());
        let get = |n: &str| {
            all.iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        let np = get("num.partitions");
        assert_eq!(np.value.as_deref(), Some("3"));
        assert_eq!(np.source, SOURCE_STATIC_BROKER_CONFIG);
        assert_eq!(np.config_type, 3);
        assert!(np.read_only && !np.sensitive);
        assert!(np.documentation.is_some());
        let seg = get("log.segment.bytes");
        assert_eq!(seg.value.as_deref(), Some("1073741824"));
        assert_eq!(seg.source, SOURCE_DEFAULT_CONFIG);
        let ms = get("log.retention.ms");
        assert_eq!(ms.value, None);
        assert_eq!(ms.config_type, 5);
        assert_eq!(ms.source, SOURCE_STATIC_BROKER_CONFIG);
        assert_eq!(
            ms.synonyms,
            vec![
                ("log.retention.hours".to_string(), Some("24".to_string()), 4),
                (
                    "log.retention.hours".to_string(),
                    Some("168".to_string()),
                    5
                ),
            ]
        );
        assert_eq!(
            get("process.roles").value.as_deref(),
            Some("broker,controller")
        );
        assert_eq!(get("process.roles").config_type, 7);
        assert_eq!(get("auto.create.topics.enable").config_type, 1);
        assert_eq!(get("offsets.topic.replication.factor").config_type, 4);
        assert_eq!(get("listeners").config_type, 2);
        assert_eq!(get("broker.rack").value, None);
        assert_eq!(get("broker.rack").source, SOURCE_DEFAULT_CONFIG);
        let names: Vec<&str> = implemented_broker_keys().collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
}
