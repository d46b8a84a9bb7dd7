//! The follower's (and observer's) side of replication: fetching, appending, truncating
//! a diverged log, following the leader's high watermark, finding the leader.

use super::*;

impl<L: RaftLog> RaftNode<L> {
    pub(super) fn send_fetch(&mut self, to: NodeId) {
        // The fetch offset tells the leader our log is durable up to it; a former leader
        // may still hold entries it appended but never flushed.
        if self.log.flushed_end() < self.log.end_offset() {
            self.log.flush();
        }
        let request = FetchRequest {
            cluster_id: self.config.cluster_id.clone(),
            replica_id: self.node_id,
            fetch_offset: self.log.end_offset(),
            last_fetched_epoch: self.log.last_epoch(),
            current_leader_epoch: self.state.epoch,
            max_wait_ms: i32::try_from(self.config.fetch_max_wait_ms).unwrap_or(i32::MAX),
        };
        self.send_request(to, Request::Fetch(request), RequestKind::Fetch);
    }

    /// An Unattached observer asks a random voter; any answer names the leader.
    pub(super) fn discover_leader(&mut self) {
        let deadline = self.random_election_deadline();
        if let Role::Unattached {
            election_deadline_ms,
            ..
        } = &mut self.state.role
        {
            *election_deadline_ms = deadline;
        }
        if self.has_in_flight(RequestKind::Fetch) {
            return;
        }
        let voters: Vec<NodeId> = self.other_voters().collect();
        if voters.is_empty() {
            return;
        }
        let target = voters[self.rng.random_range(0..voters.len())];
        self.send_fetch(target);
    }

    pub(super) fn on_fetch_response(&mut self, from: NodeId, response: FetchResponse) {
        let leader = response.current_leader;
        if self.observe_leader(leader.leader_epoch, leader.leader_id) {
            return;
        }
        let following = matches!(&self.state.role,
            Role::Follower { leader, .. } if *leader == from);
        if !following || leader.leader_epoch != self.state.epoch {
            return;
        }
        let now = self.now_ms;
        if response.error != ErrorCode::None {
            debug!(node = %self.node_id, %from, error = ?response.error, "fetch failed");
            self.set_next_fetch(now + self.config.retry_backoff_ms);
            return;
        }
        let fetch_timeout_ms = self.config.fetch_timeout_ms;
        if let Role::Follower {
            fetch_deadline_ms,
            has_fetched,
            leader_resigned,
            ..
        } = &mut self.state.role
        {
            if !*leader_resigned {
                *fetch_deadline_ms = now + fetch_timeout_ms;
            }
            *has_fetched = true;
        }
        if let Some(diverging) = response.diverging_epoch {
            self.truncate_to_diverging(diverging);
        } else if let Some(snapshot_id) = response.snapshot_id {
            info!(node = %self.node_id, ?snapshot_id, "fetching a snapshot from the leader");
            if let Role::Follower { snapshot, .. } = &mut self.state.role {
                *snapshot = Some(SnapshotFetch {
                    id: snapshot_id,
                    data: Vec::new(),
                });
            }
        } else {
            if !response.records.is_empty() {
                if let Err(problem) = self.check_fetched_records(&response.records) {
                    warn!(node = %self.node_id, %from, problem, "ignoring invalid fetch response");
                    self.set_next_fetch(now + self.config.retry_backoff_ms);
                    return;
                }
                self.log.append(&response.records);
                // Flush before the next fetch: its offset tells the leader this is durable.
                self.log.flush();
            }
            let high_watermark = response.high_watermark.min(self.log.end_offset());
            if high_watermark > self.high_watermark {
                self.raise_high_watermark(high_watermark);
            }
        }
        self.send_next_fetch(from);
    }

    /// Sends a Fetch, or the next FetchSnapshot while a snapshot download is running.
    pub(super) fn send_next_fetch(&mut self, leader: NodeId) {
        let snapshot = match &self.state.role {
            Role::Follower {
                snapshot: Some(fetch),
                ..
            } => Some((fetch.id, fetch.data.len() as u64)),
            _ => None,
        };
        match snapshot {
            Some((snapshot_id, position)) => {
                let request = FetchSnapshotRequest {
                    cluster_id: self.config.cluster_id.clone(),
                    replica_id: self.node_id,
                    current_leader_epoch: self.state.epoch,
                    snapshot_id,
                    position,
                    max_bytes: i32::try_from(self.config.fetch_snapshot_bytes_max)
                        .unwrap_or(i32::MAX),
                };
                self.send_request(
                    leader,
                    Request::FetchSnapshot(request),
                    RequestKind::FetchSnapshot,
                );
            }
            None => self.send_fetch(leader),
        }
    }

    pub(super) fn fetch_in_flight(&self) -> bool {
        self.has_in_flight(RequestKind::Fetch) || self.has_in_flight(RequestKind::FetchSnapshot)
    }

    pub(super) fn check_fetched_records(&self, records: &[Entry]) -> Result<(), &'static str> {
        let mut expected_offset = self.log.end_offset();
        let mut previous_epoch = self.log.last_epoch();
        for entry in records {
            if entry.offset != expected_offset {
                return Err("records do not start at the log end or are not contiguous");
            }
            if entry.epoch < previous_epoch || entry.epoch > self.state.epoch {
                return Err("record epochs go backwards or beyond the leader epoch");
            }
            expected_offset = entry.offset.next();
            previous_epoch = entry.epoch;
        }
        Ok(())
    }

    pub(super) fn truncate_to_diverging(&mut self, diverging: DivergingEpoch) {
        let target = truncation_offset(&self.log, diverging);
        assert!(
            target >= self.high_watermark,
            "node {}: leader asked to truncate to {target}, below the high watermark {}",
            self.node_id,
            self.high_watermark
        );
        info!(node = %self.node_id, %target, from = %self.log.end_offset(), "truncating diverged log");
        self.log.truncate_to(target);
    }

    pub(super) fn set_next_fetch(&mut self, at_ms: u64) {
        if let Role::Follower { next_fetch_ms, .. } = &mut self.state.role {
            *next_fetch_ms = at_ms;
        }
    }
}

/// Where a follower truncates when the leader reports `diverging`: the end of that epoch
/// in both logs, or the end of our largest epoch below it if we never had it.
pub(crate) fn truncation_offset<L: RaftLog>(log: &L, diverging: DivergingEpoch) -> Offset {
    if diverging.epoch == Epoch::ZERO {
        return diverging.end_offset.min(log.end_offset());
    }
    let (local_epoch, local_end) = log.end_offset_for_epoch(diverging.epoch);
    if local_epoch == diverging.epoch {
        local_end.min(diverging.end_offset)
    } else {
        local_end
    }
}
