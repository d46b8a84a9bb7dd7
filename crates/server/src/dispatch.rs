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

/// The outcome of an answer already queued, followed by closing the connection when
/// `close` says so (the answer is still sent first).
fn answer_then(encoded: Outcome, close: Option<String>) -> Outcome {
    match (encoded, close) {
        (Outcome::Continue, Some(reason)) => Outcome::Close(reason),
        (other, _) => other,
    }
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
    };
    macro_rules! with_ctx {
        ($t:ty, $h:path) => {{
            let req = decode!($t);
            let resp = $h(broker, &ctx, req, v).await;
            encode(out, corr, v, &resp)
        }};
    }
    macro_rules! simple {
        ($t:ty, $h:path) => {{
            let req = decode!($t);
            let resp = $h(broker, req, v).await;
            encode(out, corr, v, &resp)
        }};
    }

    // A decision only the active controller makes: forwarded there unless this node is it
    // (or the request was already forwarded once).
    macro_rules! forwardable {
        ($t:ty, $h:path) => {{
            let req = decode!($t);
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
                    Ok(crate::forward::Route::Remote(resp)) => {
                        after_forward(broker, key).await;
                        return encode(out, corr, v, &resp);
                    }
                    Ok(crate::forward::Route::Local) => {}
                    Err(e) => tracing::warn!(api = ?key, error = %e, "could not forward to the active controller"),
                }
            }
            let resp = $h(broker, req, v).await;
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
            simple!(DescribeLogDirsRequest, handlers::describe_log_dirs::handle)
        }
        ApiKey::DescribeAcls => simple!(DescribeAclsRequest, handlers::acls::describe),
        ApiKey::CreateAcls => simple!(CreateAclsRequest, handlers::acls::create),
        ApiKey::DeleteAcls => simple!(DeleteAclsRequest, handlers::acls::delete),
        ApiKey::DescribeUserScramCredentials => {
            simple!(
                DescribeUserScramCredentialsRequest,
                handlers::scram::describe
            )
        }
        ApiKey::AlterUserScramCredentials => {
            forwardable!(AlterUserScramCredentialsRequest, handlers::scram::alter)
        }
        ApiKey::ApiVersions => {
            let req = decode!(ApiVersionsRequest);
            let resp = handlers::api_versions::handle(listener, req, v);
            encode(out, corr, v, &resp)
        }
        ApiKey::Produce => {
            let req = decode!(ProduceRequest);
            let internal_allowed =
                header.client_id.as_deref() == Some(handlers::produce::ADMIN_CLIENT_ID);
            match handlers::produce::handle(broker, req, v, internal_allowed).await {
                handlers::produce::Reply::Respond(resp) => encode(out, corr, v, &resp),
                handlers::produce::Reply::Wait(pending) => Outcome::Defer(Deferred {
                    response: Box::pin(async move {
                        let resp = pending.finish().await;
                        let mut buf = BytesMut::new();
                        encode_response_with(&mut buf, corr, v, &resp)
                            .map_err(|e| e.to_string())?;
                        Ok(buf)
                    }),
                    api: Some(key),
                    started: Instant::now(),
                }),
                handlers::produce::Reply::None => Outcome::Continue,
                handlers::produce::Reply::Close(reason) => Outcome::Close(reason),
            }
        }
        ApiKey::Fetch if listener == Listener::Controller => raft!(FetchRequest, Fetch),
        ApiKey::Fetch => {
            let req = decode!(FetchRequest);
            let answer = handlers::fetch::handle(broker, req, v, admitted.is_some()).await;
            match answer.write(out, corr, v) {
                Ok(()) => Outcome::Continue,
                Err(e) => Outcome::Close(e),
            }
        }
        ApiKey::Vote => raft!(VoteRequest, Vote),
        ApiKey::BeginQuorumEpoch => raft!(BeginQuorumEpochRequest, BeginQuorumEpoch),
        ApiKey::EndQuorumEpoch => raft!(EndQuorumEpochRequest, EndQuorumEpoch),
        ApiKey::FetchSnapshot => raft!(FetchSnapshotRequest, FetchSnapshot),
        ApiKey::ListOffsets => simple!(ListOffsetsRequest, handlers::list_offsets::handle),
        ApiKey::Metadata => with_ctx!(MetadataRequest, handlers::metadata::handle),
        ApiKey::OffsetForLeaderEpoch => {
            simple!(
                OffsetForLeaderEpochRequest,
                handlers::offset_for_leader_epoch::handle
            )
        }
        ApiKey::InitProducerId => {
            simple!(InitProducerIdRequest, handlers::init_producer_id::handle)
        }
        ApiKey::AddPartitionsToTxn => {
            simple!(AddPartitionsToTxnRequest, handlers::txn::add_partitions)
        }
        ApiKey::AddOffsetsToTxn => simple!(AddOffsetsToTxnRequest, handlers::txn::add_offsets),
        ApiKey::EndTxn => simple!(EndTxnRequest, handlers::txn::end),
        ApiKey::WriteTxnMarkers => {
            simple!(WriteTxnMarkersRequest, handlers::txn::write_markers)
        }
        ApiKey::ListTransactions => simple!(ListTransactionsRequest, handlers::txn::list),
        ApiKey::DescribeTransactions => {
            simple!(DescribeTransactionsRequest, handlers::txn::describe)
        }
        ApiKey::DescribeProducers => {
            simple!(DescribeProducersRequest, handlers::txn::describe_producers)
        }
        ApiKey::TxnOffsetCommit => {
            simple!(TxnOffsetCommitRequest, handlers::txn_offset_commit::handle)
        }
        ApiKey::CreateTopics => {
            forwardable!(CreateTopicsRequest, handlers::create_topics::handle)
        }
        ApiKey::DeleteTopics => {
            forwardable!(DeleteTopicsRequest, handlers::delete_topics::handle)
        }
        ApiKey::DeleteRecords => simple!(DeleteRecordsRequest, handlers::delete_records::handle),
        ApiKey::DescribeConfigs => {
            simple!(DescribeConfigsRequest, handlers::describe_configs::handle)
        }
        ApiKey::AlterConfigs => {
            forwardable!(AlterConfigsRequest, handlers::alter_configs::handle)
        }
        ApiKey::IncrementalAlterConfigs => {
            forwardable!(
                IncrementalAlterConfigsRequest,
                handlers::incremental_alter_configs::handle
            )
        }
        ApiKey::CreatePartitions => {
            forwardable!(CreatePartitionsRequest, handlers::create_partitions::handle)
        }
        ApiKey::DescribeCluster => {
            let req = decode!(DescribeClusterRequest);
            let resp = handlers::describe_cluster::handle(broker, &ctx, req, v);
            encode(out, corr, v, &resp)
        }
        ApiKey::DescribeQuorum => {
            forwardable!(DescribeQuorumRequest, handlers::describe_quorum::handle)
        }
        ApiKey::FindCoordinator => {
            with_ctx!(FindCoordinatorRequest, handlers::find_coordinator::handle)
        }
        ApiKey::JoinGroup => with_ctx!(JoinGroupRequest, handlers::join_group::handle),
        ApiKey::SyncGroup => simple!(SyncGroupRequest, handlers::sync_group::handle),
        ApiKey::Heartbeat => simple!(HeartbeatRequest, handlers::heartbeat::handle),
        ApiKey::LeaveGroup => simple!(LeaveGroupRequest, handlers::leave_group::handle),
        ApiKey::OffsetCommit => simple!(OffsetCommitRequest, handlers::offset_commit::handle),
        ApiKey::OffsetFetch => simple!(OffsetFetchRequest, handlers::offset_fetch::handle),
        ApiKey::DescribeGroups => simple!(DescribeGroupsRequest, handlers::describe_groups::handle),
        ApiKey::ListGroups => simple!(ListGroupsRequest, handlers::list_groups::handle),
        ApiKey::DeleteGroups => simple!(DeleteGroupsRequest, handlers::delete_groups::handle),
        ApiKey::OffsetDelete => simple!(OffsetDeleteRequest, handlers::offset_delete::handle),
        ApiKey::AlterPartitionReassignments => {
            forwardable!(
                AlterPartitionReassignmentsRequest,
                handlers::reassignments::alter
            )
        }
        ApiKey::ListPartitionReassignments => {
            simple!(
                ListPartitionReassignmentsRequest,
                handlers::reassignments::list
            )
        }
        ApiKey::ElectLeaders => {
            forwardable!(ElectLeadersRequest, handlers::controller::elect_leaders)
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
