//! Unit tests of the protocol rules, driving nodes by hand.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::messages::{
    BeginQuorumEpochRequest, CurrentLeader, DivergingEpoch, EndQuorumEpochRequest, ErrorCode,
    FetchRequest, FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, Request, Response,
    SnapshotId, VoteRequest, VoteResponse,
};
use crate::node::{diverging_epoch, majority_offset, truncation_offset};
use crate::{
    Effect, Entry, EntryKind, Epoch, MemoryLog, NodeId, Offset, QuorumStateRecord, RaftConfig,
    RaftLog, RaftNode, RoleKind, SnapshotError,
};

const VOTERS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

fn new_node(id: i32, log: MemoryLog, persisted: Option<QuorumStateRecord>) -> RaftNode<MemoryLog> {
    let mut node = RaftNode::new(
        RaftConfig::default(),
        NodeId(id),
        VOTERS,
        log,
        persisted,
        0,
        42,
    );
    node.poll_effects();
    node
}

fn log_with_epochs(epochs: &[i32]) -> MemoryLog {
    let mut log = MemoryLog::new();
    for (i, epoch) in epochs.iter().enumerate() {
        log.append(&[Entry {
            offset: Offset(i as i64),
            epoch: Epoch(*epoch),
            kind: EntryKind::Data,
            data: Bytes::from(format!("e{i}")),
        }]);
    }
    log.flush();
    log
}

fn vote(candidate: i32, epoch: i32, last_epoch: i32, last_offset: i64, pre_vote: bool) -> Request {
    Request::Vote(VoteRequest {
        cluster_id: None,
        voter_id: NodeId(1),
        replica_epoch: Epoch(epoch),
        replica_id: NodeId(candidate),
        last_offset_epoch: Epoch(last_epoch),
        last_offset: Offset(last_offset),
        pre_vote,
    })
}

/// Sends `request` to `node` and returns the vote response plus the effects before it.
fn ask_vote(
    node: &mut RaftNode<MemoryLog>,
    from: i32,
    request: Request,
) -> (VoteResponse, Vec<Effect>) {
    node.handle_request(NodeId(from), 7, request, 10);
    let mut effects = node.poll_effects();
    let Some(Effect::SendResponse {
        response: Response::Vote(response),
        ..
    }) = effects.pop()
    else {
        panic!("expected a vote response last");
    };
    (response, effects)
}

fn persisted(effects: &[Effect]) -> Vec<QuorumStateRecord> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::PersistQuorumState(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn requests(effects: &[Effect]) -> Vec<(NodeId, u64, Request)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SendRequest {
                to,
                request_id,
                request,
            } => Some((*to, *request_id, request.clone())),
            _ => None,
        })
        .collect()
}

fn granted(leader_epoch: i32) -> Response {
    Response::Vote(VoteResponse {
        error: ErrorCode::None,
        leader_id: None,
        leader_epoch: Epoch(leader_epoch),
        vote_granted: true,
    })
}

/// Elects node 1 (with votes from node 2) and returns it with its effects drained.
fn elected_leader(log: MemoryLog) -> RaftNode<MemoryLog> {
    let mut node = new_node(1, log, None);
    let deadline = node.next_deadline_ms();
    node.tick(deadline);
    let pre_votes = requests(&node.poll_effects());
    let (_, id, _) = pre_votes[0];
    node.handle_response(NodeId(2), id, granted(node.epoch().0), deadline);
    assert_eq!(node.role(), RoleKind::Candidate);
    let votes = requests(&node.poll_effects());
    let (_, id, _) = votes[0];
    node.handle_response(NodeId(2), id, granted(node.epoch().0), deadline);
    assert_eq!(node.role(), RoleKind::Leader);
    node.poll_effects();
    node
}

fn fetch(from: i32, offset: i64, last_epoch: i32, leader_epoch: i32) -> Request {
    Request::Fetch(FetchRequest {
        cluster_id: None,
        replica_id: NodeId(from),
        fetch_offset: Offset(offset),
        last_fetched_epoch: Epoch(last_epoch),
        current_leader_epoch: Epoch(leader_epoch),
        max_wait_ms: 0,
    })
}

fn fetch_answer(
    node: &mut RaftNode<MemoryLog>,
    from: i32,
    request: Request,
    now: u64,
) -> FetchResponse {
    node.handle_request(NodeId(from), 9, request, now);
    fetch_responses(node)
        .into_iter()
        .next()
        .expect("a fetch response")
}

/// The Fetch responses among the node's pending effects.
fn fetch_responses(node: &mut RaftNode<MemoryLog>) -> Vec<FetchResponse> {
    node.poll_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::SendResponse {
                response: Response::Fetch(r),
                ..
            } => Some(r),
            _ => None,
        })
        .collect()
}

// ----- voting ------------------------------------------------------------------------------

#[test]
fn vote_is_granted_once_per_epoch_and_persisted_before_the_response() {
    let mut node = new_node(1, MemoryLog::new(), None);
    let (response, effects) = ask_vote(&mut node, 2, vote(2, 1, 0, 0, false));
    assert!(response.vote_granted);
    assert_eq!(response.leader_epoch, Epoch(1));
    assert_eq!(
        persisted(&effects).last(),
        Some(&QuorumStateRecord {
            leader_epoch: Epoch(1),
            leader_id: None,
            voted_id: Some(NodeId(2)),
        })
    );
    let (response, _) = ask_vote(&mut node, 3, vote(3, 1, 0, 0, false));
    assert!(!response.vote_granted, "already voted for 2 in epoch 1");
    let (response, effects) = ask_vote(&mut node, 2, vote(2, 1, 0, 0, false));
    assert!(
        response.vote_granted,
        "a repeated request from the same candidate"
    );
    assert!(persisted(&effects).is_empty());
}

#[test]
fn vote_requires_an_up_to_date_log() {
    let mut node = new_node(1, log_with_epochs(&[1, 1, 2]), None);
    assert_eq!(
        node.epoch(),
        Epoch(2),
        "the log epoch wins over the stored one"
    );
    let (response, _) = ask_vote(&mut node, 2, vote(2, 3, 1, 5, false));
    assert!(!response.vote_granted, "lower last epoch, longer log");
    let (response, _) = ask_vote(&mut node, 2, vote(2, 4, 2, 2, false));
    assert!(!response.vote_granted, "same last epoch, shorter log");
    let (response, _) = ask_vote(&mut node, 3, vote(3, 5, 2, 3, false));
    assert!(response.vote_granted, "same last epoch, same length");
}

#[test]
fn vote_with_an_older_epoch_is_fenced_and_invalid_votes_rejected() {
    let mut node = new_node(
        1,
        MemoryLog::new(),
        Some(QuorumStateRecord {
            leader_epoch: Epoch(5),
            leader_id: None,
            voted_id: None,
        }),
    );
    let (response, _) = ask_vote(&mut node, 2, vote(2, 4, 0, 0, false));
    assert_eq!(response.error, ErrorCode::FencedLeaderEpoch);
    assert_eq!(response.leader_epoch, Epoch(5));
    let (response, _) = ask_vote(&mut node, 2, vote(2, 6, 6, 0, false));
    assert_eq!(
        response.error,
        ErrorCode::InvalidRequest,
        "last epoch must be below the candidate epoch"
    );
    let (response, _) = ask_vote(&mut node, 2, vote(2, 6, 0, -1, false));
    assert_eq!(response.error, ErrorCode::InvalidRequest);
    let (response, _) = ask_vote(&mut node, 9, vote(9, 6, 0, 0, false));
    assert_eq!(response.error, ErrorCode::InconsistentVoterSet);
    assert_eq!(node.epoch(), Epoch(5));
}

#[test]
fn pre_vote_records_nothing_and_does_not_bump_the_epoch() {
    let mut node = new_node(1, MemoryLog::new(), None);
    let (response, effects) = ask_vote(&mut node, 2, vote(2, 0, 0, 0, true));
    assert!(response.vote_granted);
    assert!(persisted(&effects).is_empty());
    assert_eq!(node.epoch(), Epoch(0));
    // A pre-vote with a last epoch equal to the replica epoch is valid.
    let (response, _) = ask_vote(&mut node, 3, vote(3, 0, 0, 0, true));
    assert!(response.vote_granted);
    // ...and a real vote for someone else is still possible.
    let (response, _) = ask_vote(&mut node, 3, vote(3, 1, 0, 0, false));
    assert!(response.vote_granted);
}

#[test]
fn follower_that_fetched_rejects_pre_votes_until_the_leader_resigns() {
    let mut node = new_node(1, MemoryLog::new(), None);
    node.handle_request(
        NodeId(2),
        1,
        Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: None,
            voter_id: NodeId(1),
            leader_id: NodeId(2),
            leader_epoch: Epoch(1),
        }),
        5,
    );
    assert_eq!(node.role(), RoleKind::Follower);
    assert_eq!(node.leader(), Some(NodeId(2)));
    let fetches = requests(&node.poll_effects());
    let (to, id, _) = fetches[0];
    assert_eq!(to, NodeId(2));
    let (response, _) = ask_vote(&mut node, 3, vote(3, 1, 0, 0, true));
    assert!(response.vote_granted, "no successful fetch yet");
    let (response, _) = ask_vote(&mut node, 3, vote(3, 1, 0, 0, false));
    assert!(!response.vote_granted, "a leader is known in this epoch");

    node.handle_response(
        NodeId(2),
        id,
        Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            high_watermark: Offset(0),
            records: vec![Entry {
                offset: Offset(0),
                epoch: Epoch(1),
                kind: EntryKind::LeaderChange,
                data: Bytes::new(),
            }],
            diverging_epoch: None,
            current_leader: CurrentLeader {
                leader_id: Some(NodeId(2)),
                leader_epoch: Epoch(1),
            },
            snapshot_id: None,
        }),
        20,
    );
    assert_eq!(node.log().end_offset(), Offset(1));
    assert_eq!(
        node.log().flushed_end(),
        Offset(1),
        "followers flush before fetching again"
    );
    let (response, _) = ask_vote(&mut node, 3, vote(3, 1, 1, 1, true));
    assert!(!response.vote_granted, "following a live leader");

    node.handle_request(
        NodeId(2),
        2,
        Request::EndQuorumEpoch(EndQuorumEpochRequest {
            cluster_id: None,
            leader_id: NodeId(2),
            leader_epoch: Epoch(1),
            preferred_successors: vec![NodeId(3), NodeId(1)],
        }),
        30,
    );
    node.poll_effects();
    let (response, _) = ask_vote(&mut node, 3, vote(3, 1, 1, 1, true));
    assert!(response.vote_granted, "the leader resigned");
}

#[test]
fn first_preferred_successor_starts_a_pre_vote_at_once() {
    let mut node = new_node(1, MemoryLog::new(), None);
    node.handle_request(
        NodeId(2),
        1,
        Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: None,
            voter_id: NodeId(1),
            leader_id: NodeId(2),
            leader_epoch: Epoch(1),
        }),
        5,
    );
    node.handle_request(
        NodeId(2),
        2,
        Request::EndQuorumEpoch(EndQuorumEpochRequest {
            cluster_id: None,
            leader_id: NodeId(2),
            leader_epoch: Epoch(1),
            preferred_successors: vec![NodeId(1), NodeId(3)],
        }),
        6,
    );
    assert_eq!(node.role(), RoleKind::Prospective);
    assert_eq!(node.epoch(), Epoch(1));
}

// ----- elections and epochs ----------------------------------------------------------------

#[test]
fn election_goes_through_pre_vote_then_persists_the_self_vote() {
    let mut node = new_node(1, MemoryLog::new(), None);
    assert_eq!(node.role(), RoleKind::Unattached);
    let deadline = node.next_deadline_ms();
    assert!(
        (1000..2000).contains(&deadline),
        "election timeout jitter is [T, 2T)"
    );
    node.tick(deadline);
    assert_eq!(node.role(), RoleKind::Prospective);
    let effects = node.poll_effects();
    assert!(
        persisted(&effects).is_empty(),
        "a pre-vote persists nothing"
    );
    let pre_votes = requests(&effects);
    assert_eq!(pre_votes.len(), 2);
    assert!(
        matches!(&pre_votes[0].2, Request::Vote(v) if v.pre_vote && v.replica_epoch == Epoch(0))
    );

    node.handle_response(NodeId(2), pre_votes[0].1, granted(0), deadline);
    assert_eq!(node.role(), RoleKind::Candidate);
    assert_eq!(node.epoch(), Epoch(1));
    let effects = node.poll_effects();
    assert!(
        matches!(
            effects.first(),
            Some(Effect::PersistQuorumState(QuorumStateRecord {
                leader_epoch: Epoch(1),
                voted_id: Some(NodeId(1)),
                ..
            }))
        ),
        "the self vote is persisted before the vote requests go out"
    );
    let votes = requests(&effects);
    assert!(matches!(&votes[0].2, Request::Vote(v) if !v.pre_vote && v.replica_epoch == Epoch(1)));

    node.handle_response(NodeId(3), votes[1].1, granted(1), deadline);
    assert_eq!(node.role(), RoleKind::Leader);
    let first = node.log().entry(Offset(0)).expect("LeaderChange entry");
    assert_eq!(first.kind, EntryKind::LeaderChange);
    assert_eq!(first.epoch, Epoch(1));
    let effects = node.poll_effects();
    let begins = requests(&effects)
        .into_iter()
        .filter(|(_, _, r)| matches!(r, Request::BeginQuorumEpoch(_)))
        .count();
    assert_eq!(begins, 2);
}

#[test]
fn a_response_with_a_higher_epoch_moves_the_node_to_it() {
    let mut node = new_node(1, MemoryLog::new(), None);
    let deadline = node.next_deadline_ms();
    node.tick(deadline);
    let pre_votes = requests(&node.poll_effects());
    node.handle_response(
        NodeId(2),
        pre_votes[0].1,
        Response::Vote(VoteResponse {
            error: ErrorCode::FencedLeaderEpoch,
            leader_id: Some(NodeId(3)),
            leader_epoch: Epoch(4),
            vote_granted: false,
        }),
        deadline,
    );
    assert_eq!(node.role(), RoleKind::Follower);
    assert_eq!(node.epoch(), Epoch(4));
    assert_eq!(node.leader(), Some(NodeId(3)));
}

#[test]
fn lost_election_backs_off_then_retries_with_a_pre_vote() {
    let mut node = new_node(1, MemoryLog::new(), None);
    let deadline = node.next_deadline_ms();
    node.tick(deadline);
    let pre_votes = requests(&node.poll_effects());
    node.handle_response(NodeId(2), pre_votes[0].1, granted(0), deadline);
    let votes = requests(&node.poll_effects());
    for (to, id, _) in votes {
        node.handle_response(
            to,
            id,
            Response::Vote(VoteResponse {
                error: ErrorCode::None,
                leader_id: None,
                leader_epoch: Epoch(1),
                vote_granted: false,
            }),
            deadline,
        );
    }
    assert_eq!(node.role(), RoleKind::Candidate);
    let backoff_deadline = node.next_deadline_ms();
    assert!(
        backoff_deadline <= deadline + 1000,
        "backoff capped by election.backoff.max.ms"
    );
    node.tick(backoff_deadline);
    assert_eq!(node.role(), RoleKind::Prospective);
    assert_eq!(node.epoch(), Epoch(1));
}

#[test]
fn restart_after_leading_comes_back_resigned_in_the_same_epoch() {
    let leader = elected_leader(MemoryLog::new());
    let epoch = leader.epoch();
    let record = QuorumStateRecord {
        leader_epoch: epoch,
        leader_id: Some(NodeId(1)),
        voted_id: Some(NodeId(1)),
    };
    let mut node = new_node(1, leader.into_log(), Some(record));
    assert_eq!(node.role(), RoleKind::Resigned);
    assert_eq!(node.epoch(), epoch);
    let (response, _) = ask_vote(&mut node, 2, vote(2, epoch.0, 0, 0, false));
    assert!(
        !response.vote_granted,
        "it already voted for itself in this epoch"
    );
    assert_eq!(
        fetch_answer(&mut node, 2, fetch(2, 0, 0, epoch.0), 10).error,
        ErrorCode::NotLeaderOrFollower
    );
    let deadline = node.next_deadline_ms();
    node.tick(deadline);
    assert_eq!(node.role(), RoleKind::Unattached);
    assert_eq!(node.epoch(), epoch.next());
    assert_eq!(
        persisted(&node.poll_effects())[0].leader_epoch,
        epoch.next()
    );
}

#[test]
fn restart_after_voting_keeps_the_vote() {
    let record = QuorumStateRecord {
        leader_epoch: Epoch(3),
        leader_id: None,
        voted_id: Some(NodeId(2)),
    };
    let mut node = new_node(1, MemoryLog::new(), Some(record));
    assert_eq!(node.role(), RoleKind::Unattached);
    let (response, _) = ask_vote(&mut node, 3, vote(3, 3, 0, 0, false));
    assert!(!response.vote_granted);
    let (response, _) = ask_vote(&mut node, 2, vote(2, 3, 0, 0, false));
    assert!(response.vote_granted);
}

#[test]
fn leader_resigns_when_a_majority_stops_fetching() {
    let mut node = elected_leader(MemoryLog::new());
    // Elected before 2 s; check quorum fires 3 s later.
    node.tick(5_010);
    assert_eq!(node.role(), RoleKind::Resigned);
    let ends = requests(&node.poll_effects())
        .into_iter()
        .filter(|(_, _, r)| matches!(r, Request::EndQuorumEpoch(_)))
        .count();
    assert_eq!(ends, 2);
}

// ----- high watermark --------------------------------------------------------------------

#[test]
fn majority_offset_takes_the_middle_voter() {
    let o = |v: i64| Some(Offset(v));
    assert_eq!(majority_offset(&[o(5), o(3), o(9)]), Some(Offset(5)));
    assert_eq!(majority_offset(&[o(5), None, o(9)]), Some(Offset(5)));
    assert_eq!(majority_offset(&[o(5), None, None]), None);
    assert_eq!(
        majority_offset(&[o(1), o(2), o(3), o(4), o(5)]),
        Some(Offset(3))
    );
    assert_eq!(majority_offset(&[o(1), o(2), o(3), o(4)]), Some(Offset(2)));
    assert_eq!(majority_offset(&[o(7)]), Some(Offset(7)));
}

#[test]
fn high_watermark_waits_for_the_epoch_start_and_ignores_observers() {
    // Node 1 leads epoch 3 with 4 entries from older epochs; its LeaderChange is at 4.
    let mut node = elected_leader(log_with_epochs(&[1, 1, 2, 2]));
    let epoch = node.epoch().0;
    assert_eq!(epoch, 3);
    node.tick(2_000); // flush the LeaderChange entry
    node.poll_effects();
    assert_eq!(node.high_watermark(), Offset(0));

    // A voter at the epoch start: the majority offset 4 is not past it.
    fetch_answer(&mut node, 2, fetch(2, 4, 2, epoch), 2_010);
    assert_eq!(node.high_watermark(), Offset(0));
    // An observer that has everything does not count.
    fetch_answer(&mut node, 100, fetch(100, 5, 3, epoch), 2_020);
    assert_eq!(node.high_watermark(), Offset(0));
    // A fetcher without a replica id is answered and not listed.
    fetch_answer(&mut node, -1, fetch(-1, 5, 3, epoch), 2_025);
    // A voter that has the LeaderChange entry commits everything up to it.
    let response = fetch_answer(&mut node, 3, fetch(3, 5, 3, epoch), 2_030);
    assert_eq!(node.high_watermark(), Offset(5));
    assert_eq!(response.high_watermark, Offset(5));
    let quorum = node
        .describe_quorum(2_040)
        .expect("leader answers DescribeQuorum");
    assert_eq!(quorum.high_watermark, Offset(5));
    assert_eq!(quorum.current_voters.len(), 3);
    assert_eq!(quorum.observers.len(), 1);
    assert_eq!(quorum.observers[0].log_end_offset, Some(Offset(5)));
}

#[test]
fn a_fetch_that_commits_is_answered_with_the_new_high_watermark() {
    let mut node = elected_leader(MemoryLog::new());
    let epoch = node.epoch().0;
    node.tick(100); // flush the LeaderChange entry at offset 0
    node.poll_effects();
    let long_poll = |from: i32, offset: i64| match fetch(from, offset, epoch, epoch) {
        Request::Fetch(f) => Request::Fetch(FetchRequest {
            max_wait_ms: 500,
            ..f
        }),
        other => other,
    };
    // Voter 2 has the entry: its fetch commits it, and the answer says so at once rather
    // than after the long poll.
    node.handle_request(NodeId(2), 1, long_poll(2, 1), 110);
    assert_eq!(node.high_watermark(), Offset(1));
    let answered = fetch_responses(&mut node);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].high_watermark, Offset(1));
    // Voter 2 now knows: its next fetch waits.
    node.handle_request(NodeId(2), 2, long_poll(2, 1), 120);
    assert!(fetch_responses(&mut node).is_empty(), "parked");
    // Voter 3 has not heard of the commit: answered at once too.
    node.handle_request(NodeId(3), 3, long_poll(3, 1), 130);
    let answered = fetch_responses(&mut node);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].high_watermark, Offset(1));
    node.handle_request(NodeId(3), 4, long_poll(3, 1), 140);
    assert!(fetch_responses(&mut node).is_empty(), "parked");
}

#[test]
fn leader_counts_only_its_flushed_entries() {
    let mut node = elected_leader(MemoryLog::new());
    let epoch = node.epoch().0;
    node.tick(100);
    fetch_answer(&mut node, 2, fetch(2, 1, epoch, epoch), 110);
    assert_eq!(node.high_watermark(), Offset(1));
    let last = node
        .propose(
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            120,
        )
        .expect("leader accepts");
    assert_eq!(last, Offset(2));
    fetch_answer(&mut node, 2, fetch(2, 3, epoch, epoch), 130);
    assert_eq!(
        node.high_watermark(),
        Offset(1),
        "not flushed on the leader yet"
    );
    node.tick(node.next_deadline_ms().max(145));
    assert_eq!(node.high_watermark(), Offset(3));
}

// ----- fetch validation --------------------------------------------------------------------

#[test]
fn diverging_epoch_follows_the_validation_rules() {
    // Leader log: epoch 1 at 0..2, epoch 3 at 2..5.
    let log = log_with_epochs(&[1, 1, 3, 3, 3]);
    assert_eq!(diverging_epoch(&log, Offset(0), Epoch(0)), None);
    assert_eq!(diverging_epoch(&log, Offset(2), Epoch(1)), None);
    assert_eq!(diverging_epoch(&log, Offset(4), Epoch(3)), None);
    assert_eq!(
        diverging_epoch(&log, Offset(3), Epoch(1)),
        Some(DivergingEpoch {
            epoch: Epoch(1),
            end_offset: Offset(2)
        }),
        "follower has more of epoch 1 than the leader"
    );
    assert_eq!(
        diverging_epoch(&log, Offset(4), Epoch(2)),
        Some(DivergingEpoch {
            epoch: Epoch(1),
            end_offset: Offset(2)
        }),
        "the leader never had epoch 2"
    );
    assert_eq!(
        diverging_epoch(&log, Offset(6), Epoch(3)),
        Some(DivergingEpoch {
            epoch: Epoch(3),
            end_offset: Offset(5)
        }),
        "fetch offset beyond the leader's end"
    );
}

#[test]
fn follower_truncates_to_the_common_point() {
    // Follower: epoch 1 at 0..2, epoch 2 at 2..4.
    let follower = log_with_epochs(&[1, 1, 2, 2]);
    let d = |epoch: i32, end: i64| DivergingEpoch {
        epoch: Epoch(epoch),
        end_offset: Offset(end),
    };
    assert_eq!(truncation_offset(&follower, d(1, 2)), Offset(2));
    assert_eq!(truncation_offset(&follower, d(1, 1)), Offset(1));
    assert_eq!(truncation_offset(&follower, d(2, 3)), Offset(3));
    assert_eq!(truncation_offset(&follower, d(0, 0)), Offset(0));
    // The follower never had epoch 3's predecessor the leader names: end of its epoch <= 1.
    let follower = log_with_epochs(&[1, 1, 4]);
    assert_eq!(truncation_offset(&follower, d(3, 7)), Offset(2));
}

#[test]
fn leader_answers_fetch_errors_with_kafka_codes() {
    let mut node = elected_leader(log_with_epochs(&[1, 1, 3, 3, 3]));
    let epoch = node.epoch().0;
    assert_eq!(
        fetch_answer(&mut node, 2, fetch(2, 0, 0, epoch - 1), 10).error,
        ErrorCode::FencedLeaderEpoch
    );
    assert_eq!(
        fetch_answer(&mut node, 2, fetch(2, 0, 0, epoch + 1), 10).error,
        ErrorCode::UnknownLeaderEpoch
    );
    assert_eq!(
        fetch_answer(&mut node, 2, fetch(2, -1, 0, epoch), 10).error,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        fetch_answer(&mut node, 2, fetch(2, 0, epoch + 1, epoch), 10).error,
        ErrorCode::InvalidRequest,
        "last fetched epoch above the current leader epoch"
    );
    let response = fetch_answer(&mut node, 2, fetch(2, 3, 1, epoch), 10);
    assert_eq!(response.error, ErrorCode::None);
    assert_eq!(
        response.diverging_epoch,
        Some(DivergingEpoch {
            epoch: Epoch(1),
            end_offset: Offset(2)
        })
    );
    assert!(response.records.is_empty());
    let response = fetch_answer(&mut node, 2, fetch(2, 2, 1, epoch), 10);
    assert_eq!(
        response.records.len(),
        4,
        "three epoch-3 entries and the LeaderChange"
    );
    assert_eq!(response.current_leader.leader_id, Some(NodeId(1)));

    let mut follower = new_node(2, MemoryLog::new(), None);
    assert_eq!(
        fetch_answer(&mut follower, 3, fetch(3, 0, 0, 0), 10).error,
        ErrorCode::NotLeaderOrFollower
    );
}

#[test]
fn follower_truncates_a_diverged_log_and_refetches() {
    // Follower 2 has an uncommitted epoch-2 tail; leader 3 of epoch 4 never had epoch 2.
    let mut node = new_node(2, log_with_epochs(&[1, 1, 2, 2]), None);
    node.handle_request(
        NodeId(3),
        1,
        Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: None,
            voter_id: NodeId(2),
            leader_id: NodeId(3),
            leader_epoch: Epoch(4),
        }),
        5,
    );
    let (to, id, request) = requests(&node.poll_effects()).remove(0);
    assert_eq!(to, NodeId(3));
    assert!(
        matches!(request, Request::Fetch(f) if f.fetch_offset == Offset(4) && f.last_fetched_epoch == Epoch(2))
    );
    node.handle_response(
        NodeId(3),
        id,
        Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            high_watermark: Offset(2),
            records: Vec::new(),
            diverging_epoch: Some(DivergingEpoch {
                epoch: Epoch(1),
                end_offset: Offset(2),
            }),
            current_leader: CurrentLeader {
                leader_id: Some(NodeId(3)),
                leader_epoch: Epoch(4),
            },
            snapshot_id: None,
        }),
        10,
    );
    assert_eq!(node.log().end_offset(), Offset(2));
    let (_, _, request) = requests(&node.poll_effects()).remove(0);
    assert!(
        matches!(request, Request::Fetch(f) if f.fetch_offset == Offset(2) && f.last_fetched_epoch == Epoch(1))
    );
}

#[test]
fn stale_and_duplicate_responses_are_ignored() {
    let mut node = new_node(1, MemoryLog::new(), None);
    node.handle_response(NodeId(2), 999, granted(0), 5);
    assert!(node.poll_effects().is_empty());
    assert_eq!(node.role(), RoleKind::Unattached);
}

#[test]
fn proposals_need_a_leader() {
    let mut node = new_node(1, MemoryLog::new(), None);
    assert!(node.propose(vec![Bytes::new()], 1).is_err());
    let mut leader = elected_leader(MemoryLog::new());
    assert!(leader.propose(Vec::new(), 1).is_err());
    assert_eq!(leader.propose(vec![Bytes::new()], 1), Ok(Offset(1)));
}

#[test]
fn requests_with_another_cluster_id_are_rejected() {
    let config = RaftConfig {
        cluster_id: Some("a".into()),
        ..RaftConfig::default()
    };
    let mut node = RaftNode::new(config, NodeId(1), VOTERS, MemoryLog::new(), None, 0, 1);
    let Request::Vote(mut request) = vote(2, 1, 0, 0, false) else {
        unreachable!()
    };
    request.cluster_id = Some("b".into());
    let (response, _) = ask_vote(&mut node, 2, Request::Vote(request));
    assert_eq!(response.error, ErrorCode::InconsistentClusterId);
    assert!(!response.vote_granted);
}

#[test]
fn same_seed_same_effects() {
    let run = || {
        let mut nodes: BTreeMap<i32, RaftNode<MemoryLog>> = (1..=3)
            .map(|i| (i, new_node(i, MemoryLog::new(), None)))
            .collect();
        let mut trace = Vec::new();
        for node in nodes.values_mut() {
            let deadline = node.next_deadline_ms();
            node.tick(deadline);
            trace.push((node.role(), node.next_deadline_ms()));
        }
        trace
    };
    assert_eq!(run(), run());
}

#[test]
#[should_panic(expected = "below the high watermark")]
fn truncating_below_the_high_watermark_is_fatal() {
    let mut node = new_node(2, MemoryLog::new(), None);
    node.handle_request(
        NodeId(1),
        1,
        Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: None,
            voter_id: NodeId(2),
            leader_id: NodeId(1),
            leader_epoch: Epoch(1),
        }),
        5,
    );
    let leader = CurrentLeader {
        leader_id: Some(NodeId(1)),
        leader_epoch: Epoch(1),
    };
    let (_, id, _) = requests(&node.poll_effects()).remove(0);
    node.handle_response(
        NodeId(1),
        id,
        Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            high_watermark: Offset(2),
            records: log_with_epochs(&[1, 1]).entries().to_vec(),
            diverging_epoch: None,
            current_leader: leader,
            snapshot_id: None,
        }),
        10,
    );
    assert_eq!(node.high_watermark(), Offset(2));
    let (_, id, _) = requests(&node.poll_effects()).remove(0);
    node.handle_response(
        NodeId(1),
        id,
        Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            high_watermark: Offset(2),
            records: Vec::new(),
            diverging_epoch: Some(DivergingEpoch {
                epoch: Epoch(0),
                end_offset: Offset(0),
            }),
            current_leader: leader,
            snapshot_id: None,
        }),
        20,
    );
}

// ----- regressions and snapshots -----------------------------------------------------------

/// Regression (simulation seed LeaderCrash/6425): a leader that stepped down with entries
/// it never flushed must flush them before its fetch offset reports them as durable.
#[test]
fn former_leader_flushes_before_fetching_as_follower() {
    let mut node = elected_leader(MemoryLog::new());
    node.propose(vec![Bytes::from_static(b"x")], 1)
        .expect("leader");
    assert!(node.log().flushed_end() < node.log().end_offset());
    node.handle_request(
        NodeId(2),
        1,
        Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: None,
            voter_id: NodeId(1),
            leader_id: NodeId(2),
            leader_epoch: node.epoch().next(),
        }),
        2,
    );
    assert_eq!(node.role(), RoleKind::Follower);
    let fetches = requests(&node.poll_effects());
    assert!(matches!(&fetches[0].2, Request::Fetch(f) if f.fetch_offset == Offset(2)));
    assert_eq!(node.log().flushed_end(), Offset(2));
}

fn snapshot_leader() -> (RaftNode<MemoryLog>, SnapshotId) {
    // Entries 0..4 of epoch 1; node 1 leads epoch 2 from offset 4.
    let mut node = elected_leader(log_with_epochs(&[1, 1, 1, 1]));
    let epoch = node.epoch().0;
    node.tick(2_000);
    fetch_answer(&mut node, 2, fetch(2, 5, epoch, epoch), 2_010);
    assert_eq!(node.high_watermark(), Offset(5));
    assert_eq!(
        node.create_snapshot(Offset(6), Bytes::new()),
        Err(SnapshotError::AboveHighWatermark {
            end_offset: Offset(6),
            high_watermark: Offset(5)
        })
    );
    let id = node
        .create_snapshot(Offset(3), Bytes::from_static(b"0123456789"))
        .expect("snapshot below the high watermark");
    assert_eq!(
        id,
        SnapshotId {
            end_offset: Offset(3),
            epoch: Epoch(1)
        }
    );
    assert_eq!(node.log().start_offset(), Offset(3));
    assert!(matches!(
        node.create_snapshot(Offset(3), Bytes::new()),
        Err(SnapshotError::NotAfterLogStart { .. })
    ));
    (node, id)
}

#[test]
fn leader_sends_a_snapshot_id_below_the_log_start() {
    let (mut node, id) = snapshot_leader();
    let epoch = node.epoch().0;
    let response = fetch_answer(&mut node, 3, fetch(3, 0, 0, epoch), 2_020);
    assert_eq!(response.snapshot_id, Some(id));
    let response = fetch_answer(&mut node, 3, fetch(3, 3, 0, epoch), 2_020);
    assert_eq!(
        response.snapshot_id,
        Some(id),
        "at the start with another epoch"
    );
    let response = fetch_answer(&mut node, 3, fetch(3, 3, 1, epoch), 2_020);
    assert_eq!(response.snapshot_id, None, "exactly at the snapshot");
    assert_eq!(response.records.len(), 2);

    node.handle_request(
        NodeId(3),
        4,
        Request::FetchSnapshot(FetchSnapshotRequest {
            cluster_id: None,
            replica_id: NodeId(3),
            current_leader_epoch: Epoch(epoch),
            snapshot_id: id,
            position: 4,
            max_bytes: 3,
        }),
        2_030,
    );
    let chunk = node.poll_effects().into_iter().find_map(|e| match e {
        Effect::SendResponse {
            response: Response::FetchSnapshot(r),
            ..
        } => Some(r),
        _ => None,
    });
    let chunk = chunk.expect("a FetchSnapshot response");
    assert_eq!(chunk.error, ErrorCode::None);
    assert_eq!(chunk.size, 10);
    assert_eq!(chunk.unaligned_records, Bytes::from_static(b"456"));
}

#[test]
fn follower_downloads_and_installs_a_snapshot() {
    let mut node = new_node(2, log_with_epochs(&[1]), None);
    node.handle_request(
        NodeId(1),
        1,
        Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: None,
            voter_id: NodeId(2),
            leader_id: NodeId(1),
            leader_epoch: Epoch(2),
        }),
        5,
    );
    let leader = CurrentLeader {
        leader_id: Some(NodeId(1)),
        leader_epoch: Epoch(2),
    };
    let id = SnapshotId {
        end_offset: Offset(3),
        epoch: Epoch(1),
    };
    let (_, request_id, _) = requests(&node.poll_effects()).remove(0);
    node.handle_response(
        NodeId(1),
        request_id,
        Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            high_watermark: Offset(5),
            records: Vec::new(),
            diverging_epoch: None,
            current_leader: leader,
            snapshot_id: Some(id),
        }),
        10,
    );
    for (position, chunk) in [(0u64, &b"01234"[..]), (5, &b"56789"[..])] {
        let (_, request_id, request) = requests(&node.poll_effects()).remove(0);
        assert!(
            matches!(request, Request::FetchSnapshot(r) if r.position == position && r.snapshot_id == id)
        );
        node.handle_response(
            NodeId(1),
            request_id,
            Response::FetchSnapshot(FetchSnapshotResponse {
                error: ErrorCode::None,
                snapshot_id: id,
                size: 10,
                position,
                unaligned_records: Bytes::copy_from_slice(chunk),
                current_leader: leader,
            }),
            20,
        );
    }
    let effects = node.poll_effects();
    assert_eq!(effects[0], Effect::SnapshotLoaded { snapshot_id: id });
    assert_eq!(
        effects[1],
        Effect::Committed {
            high_watermark: Offset(3)
        }
    );
    assert_eq!(node.log().start_offset(), Offset(3));
    assert_eq!(
        node.log().snapshot_data(),
        Some(&Bytes::from_static(b"0123456789"))
    );
    assert!(matches!(
        &requests(&effects)[0].2,
        Request::Fetch(f) if f.fetch_offset == Offset(3) && f.last_fetched_epoch == Epoch(1)
    ));
}

#[test]
fn observer_finds_the_leader_through_any_voter_and_never_votes() {
    let mut node = RaftNode::new(
        RaftConfig::default(),
        NodeId(100),
        VOTERS,
        MemoryLog::new(),
        None,
        0,
        3,
    );
    node.poll_effects();
    assert!(!node.is_voter());
    let deadline = node.next_deadline_ms();
    node.tick(deadline);
    assert_eq!(
        node.role(),
        RoleKind::Unattached,
        "observers never start elections"
    );
    let (to, id, request) = requests(&node.poll_effects()).remove(0);
    assert!(matches!(request, Request::Fetch(_)));
    node.handle_response(
        to,
        id,
        Response::Fetch(FetchResponse {
            error: ErrorCode::NotLeaderOrFollower,
            high_watermark: Offset(0),
            records: Vec::new(),
            diverging_epoch: None,
            current_leader: CurrentLeader {
                leader_id: Some(NodeId(3)),
                leader_epoch: Epoch(2),
            },
            snapshot_id: None,
        }),
        deadline + 5,
    );
    assert_eq!(node.role(), RoleKind::Follower);
    assert_eq!(node.leader(), Some(NodeId(3)));
    assert!(requests(&node.poll_effects())
        .iter()
        .any(|(to, _, r)| *to == NodeId(3) && matches!(r, Request::Fetch(_))));
    let (response, _) = ask_vote(&mut node, 2, vote(2, 3, 0, 0, false));
    assert!(!response.vote_granted);
    assert_eq!(response.error, ErrorCode::InvalidVoterKey);
}
