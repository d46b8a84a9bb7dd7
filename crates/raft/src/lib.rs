//! Sans-io KRaft: the consensus protocol of Kafka's controller quorum (KIP-595 with
//! KIP-996 pre-vote), as a deterministic state machine.
//!
//! # What this crate owns
//! * The quorum state machine ([`QuorumState`]): Unattached, Prospective, Candidate,
//!   Leader, Follower, Resigned, and the table of legal moves between them.
//! * Elections: pre-vote, vote, epochs, vote persistence, election timeouts with jitter,
//!   backoff, check-quorum, graceful resignation (EndQuorumEpoch).
//! * Pull-based replication: followers and observers Fetch from the leader; the leader
//!   validates (fetch offset, last fetched epoch) and answers with records or a diverging
//!   epoch; followers truncate and append; the high watermark is the voter-majority
//!   offset, advanced only past the leader's epoch start offset.
//! * Snapshots (KIP-630): the host takes one at or below the high watermark with
//!   [`RaftNode::create_snapshot`]; the leader answers a Fetch below its log start with a
//!   snapshot id, and the follower downloads it in FetchSnapshot chunks and installs it.
//! * The message structs ([`messages`]), 1:1 with Kafka's Vote v2, BeginQuorumEpoch,
//!   EndQuorumEpoch, Fetch, FetchSnapshot and DescribeQuorum fields and error codes.
//!
//! # Where to look
//! | module | what |
//! |---|---|
//! | [`state`] | roles, their data, the transition table |
//! | [`node`] | `RaftNode`: inputs, effects, transitions, restart rules |
//! | `node/election.rs` | pre-vote, vote, BeginQuorumEpoch, EndQuorumEpoch |
//! | `node/leader.rs` | answering Fetch, fetch validation, high watermark, check quorum |
//! | `node/follower.rs` | fetching, truncation on divergence, observers finding the leader |
//! | `node/snapshot.rs` | taking, serving and installing snapshots |
//! | [`log`] | the `RaftLog` trait and `MemoryLog` with crash semantics |
//! | [`persisted`] | the election record that must survive crashes |
//! | `tests/simulation.rs` | the seeded whole-quorum simulation and its invariants |
//!
//! # What it never does
//! No I/O, no clocks, no threads, no randomness of its own: time comes in as `now_ms`
//! arguments, randomness from a seed given to [`RaftNode::new`], the log is a
//! [`RaftLog`] the host implements, and everything else goes out as [`Effect`]s. The
//! same inputs and seed always produce the same effects.
//!
//! # The host contract
//! The host drives a [`RaftNode`] with [`RaftNode::tick`] (at the latest at
//! [`RaftNode::next_deadline_ms`]), [`RaftNode::handle_request`],
//! [`RaftNode::handle_response`], [`RaftNode::propose`] and [`RaftNode::resign`]; after
//! each call it takes [`RaftNode::poll_effects`] and executes them **in order**:
//! 1. [`Effect::PersistQuorumState`] must be durable (write, fsync, rename) before any
//!    later effect of the same batch is executed. This is what makes "persist the vote
//!    before answering it" and "persist the epoch before acting on it" true: a response
//!    granting a vote always comes after the record that stores it. On restart the host
//!    passes the last stored record back to [`RaftNode::new`].
//! 2. `SendRequest` / `SendResponse`: best effort; the network may drop, delay, duplicate
//!    or reorder. Responses go back through `handle_response` with the `request_id` of the
//!    request; the node ignores responses it no longer waits for. A restarted node starts
//!    numbering at a random point, but a host must still not deliver messages across a
//!    restart of either side (a restart closes its connections, as with TCP).
//! 3. [`Effect::Committed`]: entries below the new high watermark are committed; the host
//!    reads them from the log and applies them, skipping [`EntryKind::LeaderChange`].
//! 4. [`Effect::SnapshotLoaded`]: the log was replaced by a snapshot from the leader; the
//!    state machine reloads from it, then applies entries above it as they commit.
//!    On start, a node's high watermark is its snapshot's end offset (or 0).
//!
//! Log writes are synchronous calls on the [`RaftLog`]: a follower flushes before each
//! Fetch (its offset tells the leader the data is durable); the leader flushes after
//! `append_linger_ms` on a tick and counts only its flushed prefix toward the high
//! watermark. A log that cannot write must stop the process.
//!
//! ```
//! use krust_raft::{Effect, MemoryLog, NodeId, RaftConfig, RaftNode, RoleKind};
//! // A single-voter quorum elects itself after one election timeout.
//! let mut node = RaftNode::new(RaftConfig::default(), NodeId(1), [NodeId(1)],
//!                              MemoryLog::new(), None, 0, 7);
//! node.tick(node.next_deadline_ms());
//! assert_eq!(node.role(), RoleKind::Leader);
//! node.tick(node.next_deadline_ms()); // flushes the LeaderChange entry
//! assert!(node.poll_effects().contains(&Effect::Committed { high_watermark: krust_raft::Offset(1) }));
//! ```

pub mod config;
pub mod log;
pub mod messages;
pub mod node;
pub mod persisted;
pub mod state;
pub mod types;

pub use config::RaftConfig;
pub use log::{MemoryLog, RaftLog};
pub use messages::ErrorCode;
pub use messages::SnapshotId;
pub use node::{Effect, ProposeError, RaftNode, RequestId, SnapshotError};
pub use persisted::QuorumStateRecord;
pub use state::{QuorumState, RoleKind};
pub use types::{Entry, EntryKind, Epoch, NodeId, Offset};

#[cfg(test)]
mod tests;
