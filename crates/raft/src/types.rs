//! Newtypes shared by every module: node ids, leader epochs, log offsets, log entries.

use bytes::Bytes;
use std::fmt;

/// A replica id (`node.id`). Kafka's `-1` ("unknown") is modelled as `Option<NodeId>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

/// A leader epoch (Raft term). Epoch 0 means "no election has happened yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i32);

/// A log offset. End offsets are exclusive: the offset the next entry will get.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub i64);

impl Epoch {
    pub const ZERO: Epoch = Epoch(0);

    /// The epoch a new candidate moves to.
    pub fn next(self) -> Epoch {
        assert!(self.0 < i32::MAX, "leader epoch overflow");
        Epoch(self.0 + 1)
    }
}

impl Offset {
    pub const ZERO: Offset = Offset(0);

    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an entry is to the state machine above Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Opaque data proposed by the host; applied by the state machine once committed.
    Data,
    /// The marker a new leader appends first in its epoch (Kafka's LEADER_CHANGE control
    /// record, type 2). Its offset is the leader's epoch start offset. State machines skip it.
    LeaderChange,
}

/// One log entry. Raft never looks inside `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: Offset,
    pub epoch: Epoch,
    pub kind: EntryKind,
    pub data: Bytes,
}
