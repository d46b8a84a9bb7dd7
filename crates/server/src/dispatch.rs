//! Request dispatch: header, version check, decode, handler, encode.
//!
//! The version table in `krust_protocol::versions` decides what is served. An ApiVersions
//! request of a version krust does not know is answered, as Kafka does, with a v0 body
//! carrying UNSUPPORTED_VERSION and the full API list so the client can retry lower. Any
//! other unknown API, unsupported version or undecodable body closes the connection, which
//! is also what Kafka does.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use krust_protocol::versions::supported;
use krust_protocol::{decode_request_header, encode_response_with, ErrorCode, Listener};
use tokio::sync::OwnedSemaphorePermit;

use crate::authz::{self, Gate, Post};
use crate::broker::Broker;
use crate::handlers;
use crate::outbound::Outbound;
use crate::raft_wire::{WireRequest, WireResponse};

/// What the connection does after a request.
pub enum Outcome {
    Continue,
    Close(String),
    /// The response comes later (an acks=all Produce waiting for the in-sync replicas);
    /// the connection queues every later response behind it.
    Defer(Deferred),
}

/// A response that is not ready yet: its encoded bytes, or why to close the connection.
pub struct Deferred {
    pub response: Pin<Box<dyn Future<Output = Result<BytesMut, String>> + Send>>,
    /// The request's API, for the request metrics (None: already counted).
    pub api: Option<ApiKey>,
    /// When the request arrived, for the request latency metric.
    pub started: Instant,
    /// Its request went over its client's quota: the connection reads nothing more until
    /// the answer is out (and the throttle time over), as Kafka mutes it.
    pub throttled: bool,
}

fn encode<R: Encodable + HeaderVersion>(
    out: &mut Outbound,
    correlation_id: i32,
    version: i16,
    resp: &R,
) -> Outcome {
    match encode_response_with(&mut out.buf, correlation_id, version, resp) {
        Ok(()) => Outcome::Continue,
        Err(e) => Outcome::Close(e.to_string()),
    }
}

/// After a forwarded change succeeded: give this node's image a moment to catch up, so
/// that the client's next request here sees the change (clients retry anyway).
async fn after_forward(broker: &Broker, key: ApiKey) {
    if matches!(
        key,
        ApiKey::CreateTopics | ApiKey::DeleteTopics | ApiKey::CreatePartitions
    ) {
        broker
            .wait_caught_up(std::time::Duration::from_secs(5))
            .await;
    }
}

fn encode_wire(
    out: &mut Outbound,
    correlation_id: i32,
    version: i16,
    resp: &WireResponse,
) -> Outcome {
    match resp {
        WireResponse::Vote(r) => encode(out, correlation_id, version, r),
        WireResponse::BeginQuorumEpoch(r) => encode(out, correlation_id, version, r),
        WireResponse::EndQuorumEpoch(r) => encode(out, correlation_id, version, r),
        WireResponse::Fetch(r) => encode(out, correlation_id, version, r),
        WireResponse::FetchSnapshot(r) => encode(out, correlation_id, version, r),
    }
}

/// For a request between nodes, the answer that denies it (CLUSTER_AUTHORIZATION_FAILED).
#[allow(clippy::type_complexity)]
fn node_request_denied(key: ApiKey) -> Option<fn(&mut Outbound, i32, i16) -> Outcome> {
    use crate::raft_wire::{error_response, WireKind};
    const DENIED: i16 = ErrorCode::ClusterAuthorizationFailed.code();
    fn wire(kind: WireKind) -> WireResponse {
        error_response(kind, DENIED)
    }
    Some(match key {
        ApiKey::Vote => |o, c, v| encode_wire(o, c, v, &wire(WireKind::Vote)),
        ApiKey::BeginQuorumEpoch => {
            |o, c, v| encode_wire(o, c, v, &wire(WireKind::BeginQuorumEpoch))
        }
        ApiKey::EndQuorumEpoch => |o, c, v| encode_wire(o, c, v, &wire(WireKind::EndQuorumEpoch)),
        ApiKey::Fetch => |o, c, v| encode_wire(o, c, v, &wire(WireKind::Fetch)),
        ApiKey::FetchSnapshot => |o, c, v| encode_wire(o, c, v, &wire(WireKind::FetchSnapshot)),
        ApiKey::BrokerRegistration => |o, c, v| {
            encode(
                o,
                c,
                v,
                &BrokerRegistrationResponse::default().with_error_code(DENIED),
            )
        },
        ApiKey::BrokerHeartbeat => |o, c, v| {
            encode(
                o,
                c,
                v,
                &BrokerHeartbeatResponse::default().with_error_code(DENIED),
            )
        },
        ApiKey::AlterPartition => |o, c, v| {
            encode(
                o,
                c,
                v,
                &AlterPartitionResponse::default().with_error_code(DENIED),
            )
        },
        ApiKey::AllocateProducerIds => |o, c, v| {
            encode(
                o,
                c,
                v,
                &AllocateProducerIdsResponse::default().with_error_code(DENIED),
            )
        },
        _ => return None,
    })
}

/// The outcome of an answer already queued, followed by closing the connection when
/// `close` says so (the answer is still sent first).
fn answer_then(encoded: Outcome, close: Option<String>) -> Outcome {
    match (encoded, close) {
        (Outcome::Continue, Some(reason)) => Outcome::Close(reason),
        (other, _) => other,
    }
}

/// A whole-request gate's answer in the shape `forwardable!` takes.
fn deny<R>(denied: Option<R>) -> Gate<R> {
    match denied {
        Some(resp) => Err(Box::new(resp)),
        None => Ok(None),
    }
}

/// An item gate's completion in the shape `forwardable!` takes.
fn pass<R>(finish: Post<R>) -> Gate<R> {
    Ok(finish)
}

/// Who sent a request, for the handlers that record it (group members).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub client_id: String,
    /// Kafka's form: `/<ip>`.
    pub client_host: String,
    /// The name of the listener the request came in on (`PLAINTEXT`, ...): brokers are
    /// described to the client by their endpoints on this listener, as Kafka does.
    pub listener_name: String,
    /// What the sender may do.
    pub authz: crate::authz::Authz,
    /// Who sent it: `User:<name>`, for its quotas.
    pub principal: std::sync::Arc<str>,
}

/// The quota of `kind` that applies to the sender, if any (never to other brokers'
/// replica traffic, which the caller leaves out).
fn quota_of(
    broker: &Broker,
    ctx: &RequestContext,
    kind: crate::quota::Kind,
) -> Option<crate::quota::Applied> {
    crate::quota::QuotaManager::applied(
        &broker.image(),
        kind,
        crate::quota::user_of(&ctx.principal),
        &ctx.client_id,
    )
}

/// Milliseconds for a response's `throttle_time_ms`.
fn throttle_ms(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Handles one request frame, queueing its response (if any) on `out`.
pub async fn dispatch(
    broker: &Broker,
    listener: Listener,
    listener_name: &str,
    peer: std::net::SocketAddr,
    mut frame: Bytes,
    out: &mut Outbound,
    auth: &mut crate::sasl::ConnAuth,
) -> Outcome {
    let size = frame.len();
    let header = match decode_request_header(&mut frame) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let key = header.api_key;
    let started = Instant::now();
    let sasl = matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
    if !sasl {
        if let crate::sasl::Gate::Close(reason) = auth.gate(key) {
            return Outcome::Close(reason);
        }
    }
    // Authentication takes no share of the memory budget: its frames are small
    // (`sasl.server.max.receive.size` before it is done), and an unauthenticated client must
    // not hold back others' requests.
    let admitted = if sasl || !auth.is_authenticated() {
        None
    } else {
        match broker
            .admission
            .admit(key, header.api_version, &frame)
            .await
        {
            Ok(a) => a,
            Err(reason) => return Outcome::Close(reason),
        }
    };
    // The request's share of the budget is held until it is answered (a Fetch waits for
    // records at most a second while it holds one) or deferred (an acks=all Produce
    // waiting only holds what it appended).
    let request = Request {
        header,
        size,
        body: frame,
        admitted,
    };
    let outcome = dispatch_inner(broker, listener, listener_name, peer, request, out, auth).await;
    match outcome {
        // Counted when its response is ready.
        Outcome::Defer(mut d) => {
            d.started = started;
            Outcome::Defer(d)
        }
        other => {
            broker.metrics.record_request(key, started.elapsed());
            other
        }
    }
}

/// A request after its header, with its share of the memory budget.
struct Request {
    header: krust_protocol::RequestHeaderInfo,
    /// The frame's size (header and body), as quotas count a request.
    size: usize,
    body: Bytes,
    admitted: Option<OwnedSemaphorePermit>,
}

async fn dispatch_inner(
    broker: &Broker,
    listener: Listener,
    listener_name: &str,
    peer: std::net::SocketAddr,
    request: Request,
    out: &mut Outbound,
    auth: &mut crate::sasl::ConnAuth,
) -> Outcome {
    let Request {
        header,
        size,
        body: mut frame,
        admitted,
    } = request;
    let key = header.api_key;
    let v = header.api_version;
    let corr = header.correlation_id;
    tracing::trace!(api = ?key, version = v, correlation_id = corr, client_id = ?header.client_id, "request");
    let range = supported(key, listener);
    let in_range = range.is_some_and(|r| r.min <= v && v <= r.max);
    if key == ApiKey::ApiVersions && !in_range {
        let mut resp = handlers::api_versions::response(listener);
        resp.error_code = ErrorCode::UnsupportedVersion.code();
        return encode(out, corr, 0, &resp);
    }
    if !in_range {
        return Outcome::Close(format!(
            "{key:?} v{v} is not supported on the {listener:?} listener (correlation id {corr})"
        ));
    }

    macro_rules! decode {
        ($t:ty) => {
            match <$t>::decode(&mut frame, v) {
                Ok(r) => r,
                Err(e) => return Outcome::Close(format!("malformed {key:?} v{v} request: {e}")),
            }
        };
    }
    let ctx = RequestContext {
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
        listener_name: listener_name.to_string(),
        authz: crate::authz::Authz::new(broker, listener, listener_name, auth.principal(), peer),
        principal: auth.principal().clone(),
    };
    let az = &ctx.authz;
    macro_rules! with_ctx {
        ($t:ty, $h:path) => {{
            let req = decode!($t);
            let resp = $h(broker, &ctx, req, v).await;
            encode(out, corr, v, &resp)
        }};
    }
    // A gate answering the whole request when it is denied.
    macro_rules! gated {
        ($t:ty, $h:path, $gate:expr) => {{
            let req = decode!($t);
            if let Some(resp) = $gate(&req) {
                return encode(out, corr, v, &resp);
            }
            let resp = $h(broker, req, v).await;
            encode(out, corr, v, &resp)
        }};
    }
    // A gate taking the denied items out of the request, then putting their answers
    // into the response.
    macro_rules! filtered {
        ($t:ty, $h:path, $gate:expr) => {{
            let mut req = decode!($t);
            let finish = $gate(&mut req);
            let mut resp = $h(broker, req, v).await;
            if let Some(f) = finish {
                f(&mut resp);
            }
            encode(out, corr, v, &resp)
        }};
    }
    // Both: a whole-request denial (`Err`), else items taken out.
    macro_rules! gated_filtered {
        ($t:ty, $h:path, $gate:expr) => {{
            let mut req = decode!($t);
            match $gate(&mut req) {
                Err(resp) => encode(out, corr, v, &*resp),
                Ok(finish) => {
                    let mut resp = $h(broker, req, v).await;
                    if let Some(f) = finish {
                        f(&mut resp);
                    }
                    encode(out, corr, v, &resp)
                }
            }
        }};
    }
    // A decision only the active controller makes: forwarded there unless this node is it
    // (or the request was already forwarded once).
    macro_rules! forwardable {
        ($t:ty, $h:path) => {
            forwardable!($t, $h, |_: &mut $t| -> Gate<<$t as kafka_protocol::protocol::Request>::Response> { Ok(None) })
        };
        ($t:ty, $h:path, $gate:expr) => {{
            let mut req = decode!($t);
            let finish = match $gate(&mut req) {
                Err(resp) => return encode(out, corr, v, &*resp),
                Ok(finish) => finish,
            };
            // A controller answers DescribeQuorum itself (NOT_LEADER_OR_FOLLOWER unless it
            // leads); a broker asks the leader, briefly.
            let (forward, patience) = if key == ApiKey::DescribeQuorum {
                (listener == Listener::Broker, std::time::Duration::from_secs(5))
            } else {
                (true, crate::broker::COMMIT_TIMEOUT)
            };
            if forward
                && ctx.client_id != crate::forward::FORWARDED_CLIENT_ID
                && !broker.metadata.is_active()
            {
                match broker.forward_within(&req, Some(v), patience).await {
                    Ok(crate::forward::Route::Remote(mut resp)) => {
                        after_forward(broker, key).await;
                        if let Some(f) = finish {
                            f(&mut resp);
                        }
                        return encode(out, corr, v, &resp);
                    }
                    Ok(crate::forward::Route::Local) => {}
                    Err(e) => tracing::warn!(api = ?key, error = %e, "could not forward to the active controller"),
                }
            }
            let mut resp = $h(broker, req, v).await;
            if let Some(f) = finish {
                f(&mut resp);
            }
            encode(out, corr, v, &resp)
        }};
    }
    macro_rules! raft {
        ($t:ty, $variant:ident) => {{
            let req = decode!($t);
            match handlers::raft::handle(&broker.metadata, WireRequest::$variant(req), v).await {
                handlers::raft::Reply::Respond(resp) => encode_wire(out, corr, v, &resp),
                handlers::raft::Reply::Close(reason) => Outcome::Close(reason),
            }
        }};
    }

    // Requests between nodes on an authorized controller listener (the quorum's, a
    // broker's registration and heartbeats, ISR changes, producer id blocks) need
    // CLUSTER_ACTION on the cluster, as in Kafka: the nodes' principals are super users.
    if listener == Listener::Controller && az.is_on() {
        if let Some(denied) = node_request_denied(key) {
            if !az.cluster(krust_metadata::acl::op::CLUSTER_ACTION) {
                return denied(out, corr, v);
            }
        }
    }
    match key {
        ApiKey::SaslHandshake => {
            let req = decode!(SaslHandshakeRequest);
            let a = auth.handshake(&req);
            answer_then(encode(out, corr, v, &a.response), a.close)
        }
        ApiKey::SaslAuthenticate => {
            let req = decode!(SaslAuthenticateRequest);
            let a = auth.authenticate(broker, &req).await;
            answer_then(encode(out, corr, v, &a.response), a.close)
        }
        ApiKey::DescribeLogDirs => {
            gated!(
                DescribeLogDirsRequest,
                handlers::describe_log_dirs::handle,
                |_: &DescribeLogDirsRequest| authz::describe_log_dirs(az, v)
            )
        }
        ApiKey::DescribeAcls => gated!(
            DescribeAclsRequest,
            handlers::acls::describe,
            |_: &DescribeAclsRequest| authz::describe_acls(az)
        ),
        ApiKey::CreateAcls => forwardable!(
            CreateAclsRequest,
            handlers::acls::create,
            |r: &mut CreateAclsRequest| deny(authz::create_acls(az, r))
        ),
        ApiKey::DeleteAcls => forwardable!(
            DeleteAclsRequest,
            handlers::acls::delete,
            |r: &mut DeleteAclsRequest| deny(authz::delete_acls(az, r))
        ),
        ApiKey::DescribeClientQuotas => gated!(
            DescribeClientQuotasRequest,
            handlers::client_quotas::describe,
            |_: &DescribeClientQuotasRequest| authz::describe_client_quotas(az)
        ),
        ApiKey::AlterClientQuotas => forwardable!(
            AlterClientQuotasRequest,
            handlers::client_quotas::alter,
            |r: &mut AlterClientQuotasRequest| deny(authz::alter_client_quotas(az, r))
        ),
        ApiKey::DescribeUserScramCredentials => {
            gated!(
                DescribeUserScramCredentialsRequest,
                handlers::scram::describe,
                |r| authz::describe_scram(az, r)
            )
        }
        ApiKey::AlterUserScramCredentials => {
            forwardable!(
                AlterUserScramCredentialsRequest,
                handlers::scram::alter,
                |r: &mut AlterUserScramCredentialsRequest| deny(authz::alter_scram(az, r))
            )
        }
        ApiKey::ApiVersions => {
            let req = decode!(ApiVersionsRequest);
            let resp = handlers::api_versions::handle(
                listener,
                broker.config.consumer_group_protocol,
                req,
                v,
            );
            encode(out, corr, v, &resp)
        }
        ApiKey::Produce => {
            let mut req = decode!(ProduceRequest);
            let internal_allowed =
                header.client_id.as_deref() == Some(handlers::produce::ADMIN_CLIENT_ID);
            let (gate, any_denied) = authz::produce(az, &mut req);
            if any_denied && req.acks == 0 {
                return Outcome::Close(
                    "an acks=0 Produce was denied by the authorizer (no answer can say so)".into(),
                );
            }
            let finish = match gate {
                Err(resp) => return encode(out, corr, v, &*resp),
                Ok(finish) => finish,
            };
            // `producer_byte_rate`: the whole request counts.
            let throttle = quota_of(broker, &ctx, crate::quota::Kind::Produce)
                .map(|q| {
                    broker
                        .quotas
                        .charge(crate::quota::Kind::Produce, &q, size as f64)
                })
                .filter(|t| !t.is_zero());
            out.throttle = throttle;
            let throttle = throttle.map_or(0, throttle_ms);
            match handlers::produce::handle(broker, req, v, internal_allowed).await {
                handlers::produce::Reply::Respond(mut resp) => {
                    if let Some(f) = finish {
                        f(&mut resp);
                    }
                    resp.throttle_time_ms = throttle;
                    encode(out, corr, v, &resp)
                }
                handlers::produce::Reply::Wait(pending) => Outcome::Defer(Deferred {
                    response: Box::pin(async move {
                        let mut resp = pending.finish().await;
                        if let Some(f) = finish {
                            f(&mut resp);
                        }
                        resp.throttle_time_ms = throttle;
                        let mut buf = BytesMut::new();
                        encode_response_with(&mut buf, corr, v, &resp)
                            .map_err(|e| e.to_string())?;
                        Ok(buf)
                    }),
                    api: Some(key),
                    started: Instant::now(),
                    throttled: throttle > 0,
                }),
                handlers::produce::Reply::None => Outcome::Continue,
                handlers::produce::Reply::Close(reason) => Outcome::Close(reason),
            }
        }
        ApiKey::Fetch if listener == Listener::Controller => raft!(FetchRequest, Fetch),
        ApiKey::Fetch => {
            let mut req = decode!(FetchRequest);
            let replica_id = handlers::fetch::replica_id(&req, v);
            // `consumer_byte_rate` (consumers only): a fetch takes at most what the quota
            // allows over its windows, and one over the quota is answered empty.
            let quota = (replica_id < 0)
                .then(|| quota_of(broker, &ctx, crate::quota::Kind::Fetch))
                .flatten();
            if let Some(q) = &quota {
                let most = broker
                    .quotas
                    .max_in_window(q.limit)
                    .clamp(1.0, f64::from(i32::MAX));
                req.max_bytes = req.max_bytes.min(most as i32);
            }
            let mut answer = handlers::fetch::handle(broker, az, req, v, admitted.is_some()).await;
            if let Some(q) = quota {
                let bytes = answer.quota_bytes() as f64;
                let throttle = broker.quotas.charge(crate::quota::Kind::Fetch, &q, bytes);
                if !throttle.is_zero() {
                    broker.quotas.unrecord(crate::quota::Kind::Fetch, &q, bytes);
                    out.throttle = Some(throttle);
                    answer = handlers::fetch::FetchAnswer::throttled(throttle_ms(throttle));
                }
            }
            match answer.write(out, corr, v) {
                Ok(()) => Outcome::Continue,
                Err(e) => Outcome::Close(e),
            }
        }
        ApiKey::Vote => raft!(VoteRequest, Vote),
        ApiKey::BeginQuorumEpoch => raft!(BeginQuorumEpochRequest, BeginQuorumEpoch),
        ApiKey::EndQuorumEpoch => raft!(EndQuorumEpochRequest, EndQuorumEpoch),
        ApiKey::FetchSnapshot => raft!(FetchSnapshotRequest, FetchSnapshot),
        ApiKey::ListOffsets => filtered!(ListOffsetsRequest, handlers::list_offsets::handle, |r| {
            authz::list_offsets(az, r)
        }),
        ApiKey::Metadata => with_ctx!(MetadataRequest, handlers::metadata::handle),
        ApiKey::OffsetForLeaderEpoch => {
            filtered!(
                OffsetForLeaderEpochRequest,
                handlers::offset_for_leader_epoch::handle,
                |r| authz::offset_for_leader_epoch(az, r)
            )
        }
        ApiKey::InitProducerId => {
            gated!(
                InitProducerIdRequest,
                handlers::init_producer_id::handle,
                |r| authz::init_producer_id(az, r)
            )
        }
        ApiKey::AddPartitionsToTxn => {
            gated!(
                AddPartitionsToTxnRequest,
                handlers::txn::add_partitions,
                |r| authz::add_partitions_to_txn(az, r, v)
            )
        }
        ApiKey::AddOffsetsToTxn => {
            gated!(AddOffsetsToTxnRequest, handlers::txn::add_offsets, |r| {
                authz::add_offsets_to_txn(az, r)
            })
        }
        ApiKey::EndTxn => gated!(EndTxnRequest, handlers::txn::end, |r| authz::end_txn(az, r)),
        ApiKey::WriteTxnMarkers => {
            gated!(WriteTxnMarkersRequest, handlers::txn::write_markers, |r| {
                authz::write_txn_markers(az, r)
            })
        }
        ApiKey::ListTransactions => filtered!(
            ListTransactionsRequest,
            handlers::txn::list,
            |_: &mut ListTransactionsRequest| authz::list_transactions(az)
        ),
        ApiKey::DescribeTransactions => {
            filtered!(DescribeTransactionsRequest, handlers::txn::describe, |r| {
                authz::describe_transactions(az, r)
            })
        }
        ApiKey::DescribeProducers => {
            filtered!(
                DescribeProducersRequest,
                handlers::txn::describe_producers,
                |r| authz::describe_producers(az, r)
            )
        }
        ApiKey::TxnOffsetCommit => {
            gated_filtered!(
                TxnOffsetCommitRequest,
                handlers::txn_offset_commit::handle,
                |r| authz::txn_offset_commit(az, r)
            )
        }
        ApiKey::CreateTopics => {
            forwardable!(CreateTopicsRequest, handlers::create_topics::handle, |r| {
                pass(authz::create_topics(az, r, v))
            })
        }
        ApiKey::DeleteTopics => {
            forwardable!(DeleteTopicsRequest, handlers::delete_topics::handle, |r| {
                pass(authz::delete_topics(broker, az, r))
            })
        }
        ApiKey::DeleteRecords => filtered!(
            DeleteRecordsRequest,
            handlers::delete_records::handle,
            |r| authz::delete_records(az, r)
        ),
        ApiKey::DescribeConfigs => {
            filtered!(
                DescribeConfigsRequest,
                handlers::describe_configs::handle,
                |r| authz::describe_configs(az, r)
            )
        }
        ApiKey::AlterConfigs => {
            forwardable!(AlterConfigsRequest, handlers::alter_configs::handle, |r| {
                pass(authz::alter_configs(az, r))
            })
        }
        ApiKey::IncrementalAlterConfigs => {
            forwardable!(
                IncrementalAlterConfigsRequest,
                handlers::incremental_alter_configs::handle,
                |r| pass(authz::incremental_alter_configs(az, r))
            )
        }
        ApiKey::CreatePartitions => {
            forwardable!(
                CreatePartitionsRequest,
                handlers::create_partitions::handle,
                |r| pass(authz::create_partitions(az, r))
            )
        }
        ApiKey::DescribeCluster => {
            let req = decode!(DescribeClusterRequest);
            let resp = handlers::describe_cluster::handle(broker, &ctx, req, v);
            encode(out, corr, v, &resp)
        }
        ApiKey::DescribeQuorum => {
            forwardable!(
                DescribeQuorumRequest,
                handlers::describe_quorum::handle,
                |_: &mut DescribeQuorumRequest| deny(authz::describe_quorum(az))
            )
        }
        ApiKey::FindCoordinator => {
            let mut req = decode!(FindCoordinatorRequest);
            match authz::find_coordinator(az, &mut req, v) {
                Err(resp) => encode(out, corr, v, &*resp),
                Ok(finish) => {
                    let mut resp = handlers::find_coordinator::handle(broker, &ctx, req, v).await;
                    if let Some(f) = finish {
                        f(&mut resp);
                    }
                    encode(out, corr, v, &resp)
                }
            }
        }
        ApiKey::JoinGroup => {
            let req = decode!(JoinGroupRequest);
            if !authz::group_read(az, &req.group_id) {
                return encode(out, corr, v, &authz::join_group_denied());
            }
            let resp = handlers::join_group::handle(broker, &ctx, req, v).await;
            encode(out, corr, v, &resp)
        }
        ApiKey::SyncGroup => gated!(
            SyncGroupRequest,
            handlers::sync_group::handle,
            |r: &SyncGroupRequest| (!authz::group_read(az, &r.group_id))
                .then(authz::sync_group_denied)
        ),
        ApiKey::Heartbeat => gated!(
            HeartbeatRequest,
            handlers::heartbeat::handle,
            |r: &HeartbeatRequest| (!authz::group_read(az, &r.group_id))
                .then(authz::heartbeat_denied)
        ),
        ApiKey::LeaveGroup => gated!(
            LeaveGroupRequest,
            handlers::leave_group::handle,
            |r: &LeaveGroupRequest| (!authz::group_read(az, &r.group_id))
                .then(authz::leave_group_denied)
        ),
        ApiKey::OffsetCommit => {
            gated_filtered!(OffsetCommitRequest, handlers::offset_commit::handle, |r| {
                authz::offset_commit(az, r)
            })
        }
        ApiKey::OffsetFetch => {
            gated_filtered!(OffsetFetchRequest, handlers::offset_fetch::handle, |r| {
                authz::offset_fetch(az, r, v)
            })
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let req = decode!(ConsumerGroupHeartbeatRequest);
            if let Some(resp) = authz::consumer_group_heartbeat(az, &req) {
                return encode(out, corr, v, &resp);
            }
            let resp = handlers::consumer_group::heartbeat(broker, &ctx, req, v).await;
            encode(out, corr, v, &resp)
        }
        ApiKey::ConsumerGroupDescribe => filtered!(
            ConsumerGroupDescribeRequest,
            handlers::consumer_group::describe,
            |r| authz::consumer_group_describe(az, r)
        ),
        ApiKey::DescribeGroups => filtered!(
            DescribeGroupsRequest,
            handlers::describe_groups::handle,
            |r| authz::describe_groups(az, r)
        ),
        ApiKey::ListGroups => filtered!(
            ListGroupsRequest,
            handlers::list_groups::handle,
            |_: &mut ListGroupsRequest| authz::list_groups(az)
        ),
        ApiKey::DeleteGroups => {
            filtered!(DeleteGroupsRequest, handlers::delete_groups::handle, |r| {
                authz::delete_groups(az, r)
            })
        }
        ApiKey::OffsetDelete => {
            gated_filtered!(OffsetDeleteRequest, handlers::offset_delete::handle, |r| {
                authz::offset_delete(az, r)
            })
        }
        ApiKey::AlterPartitionReassignments => {
            forwardable!(
                AlterPartitionReassignmentsRequest,
                handlers::reassignments::alter,
                |r: &mut AlterPartitionReassignmentsRequest| deny(authz::alter_reassignments(
                    az, r
                ))
            )
        }
        ApiKey::ListPartitionReassignments => {
            gated!(
                ListPartitionReassignmentsRequest,
                handlers::reassignments::list,
                |_: &ListPartitionReassignmentsRequest| authz::list_reassignments(az)
            )
        }
        ApiKey::ElectLeaders => {
            forwardable!(
                ElectLeadersRequest,
                handlers::controller::elect_leaders,
                |r: &mut ElectLeadersRequest| deny(authz::elect_leaders(az, r, v))
            )
        }
        ApiKey::AlterPartition => {
            forwardable!(AlterPartitionRequest, handlers::controller::alter_partition)
        }
        ApiKey::AllocateProducerIds => {
            forwardable!(
                AllocateProducerIdsRequest,
                handlers::controller::allocate_producer_ids
            )
        }
        ApiKey::BrokerRegistration => {
            forwardable!(
                BrokerRegistrationRequest,
                handlers::controller::broker_registration
            )
        }
        ApiKey::BrokerHeartbeat => {
            forwardable!(
                BrokerHeartbeatRequest,
                handlers::controller::broker_heartbeat
            )
        }
        other => Outcome::Close(format!(
            "{other:?} is listed as supported but has no handler"
        )),
    }
}
