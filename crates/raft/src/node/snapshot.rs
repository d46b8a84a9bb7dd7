//! Snapshots (KIP-630): taking one at the high watermark, serving FetchSnapshot chunks as
//! leader, downloading and installing one as follower.

use super::*;

impl<L: RaftLog> RaftNode<L> {
    /// Takes a snapshot of the state below `end_offset` (at most the high watermark) and
    /// lets the log drop the entries it covers. `data` is the host's state machine state.
    pub fn create_snapshot(
        &mut self,
        end_offset: Offset,
        data: Bytes,
    ) -> Result<SnapshotId, SnapshotError> {
        let start_offset = self.log.start_offset();
        if end_offset > self.high_watermark {
            return Err(SnapshotError::AboveHighWatermark {
                end_offset,
                high_watermark: self.high_watermark,
            });
        }
        let last = self.log.read(Offset(end_offset.0 - 1), 1);
        let Some(last) = last.first().filter(|_| end_offset > start_offset) else {
            return Err(SnapshotError::NotAfterLogStart {
                end_offset,
                start_offset,
            });
        };
        let id = SnapshotId {
            end_offset,
            epoch: last.epoch,
        };
        // A leader's high watermark can pass its own flushed end (followers hold the
        // majority); a snapshot needs the entries it replaces to be durable.
        if self.log.flushed_end() < end_offset {
            self.log.flush();
        }
        self.log.save_snapshot(id, data);
        Ok(id)
    }

    pub(super) fn on_fetch_snapshot_request(
        &mut self,
        from: NodeId,
        request_id: RequestId,
        request: FetchSnapshotRequest,
    ) {
        let mut error = if !self.cluster_id_matches(&request.cluster_id) {
            ErrorCode::InconsistentClusterId
        } else if request.max_bytes < 0 || request.replica_id != from {
            ErrorCode::InvalidRequest
        } else if request.current_leader_epoch < self.state.epoch {
            ErrorCode::FencedLeaderEpoch
        } else if request.current_leader_epoch > self.state.epoch {
            ErrorCode::UnknownLeaderEpoch
        } else if !matches!(self.state.role, Role::Leader(_)) {
            ErrorCode::NotLeaderOrFollower
        } else {
            ErrorCode::None
        };
        let mut chunk = (Bytes::new(), 0);
        if error == ErrorCode::None {
            let max_bytes = usize::try_from(request.max_bytes)
                .unwrap_or(0)
                .min(self.config.fetch_snapshot_bytes_max);
            match self
                .log
                .read_snapshot(request.snapshot_id, request.position, max_bytes)
            {
                None => error = ErrorCode::SnapshotNotFound,
                Some((_, size)) if request.position > size => error = ErrorCode::PositionOutOfRange,
                Some(found) => chunk = found,
            }
            let now = self.now_ms;
            if let Role::Leader(leader) = &mut self.state.role {
                if let Some(progress) = leader.voters.get_mut(&from) {
                    progress.last_fetch_ms = Some(now);
                    leader.fetched_since_check.insert(from);
                }
            }
        }
        let response = FetchSnapshotResponse {
            error,
            snapshot_id: request.snapshot_id,
            size: chunk.1,
            position: request.position,
            unaligned_records: chunk.0,
            current_leader: CurrentLeader {
                leader_id: self.leader(),
                leader_epoch: self.state.epoch,
            },
        };
        self.send_response(from, request_id, Response::FetchSnapshot(response));
    }

    pub(super) fn on_fetch_snapshot_response(
        &mut self,
        from: NodeId,
        response: FetchSnapshotResponse,
    ) {
        let leader = response.current_leader;
        if self.observe_leader(leader.leader_epoch, leader.leader_id) {
            return;
        }
        let now = self.now_ms;
        let fetch_timeout_ms = self.config.fetch_timeout_ms;
        let retry_at = now + self.config.retry_backoff_ms;
        let Role::Follower {
            leader: following,
            snapshot: Some(download),
            fetch_deadline_ms,
            has_fetched,
            leader_resigned,
            next_fetch_ms,
        } = &mut self.state.role
        else {
            return;
        };
        if *following != from || leader.leader_epoch != self.state.epoch {
            return;
        }
        if response.error != ErrorCode::None
            || response.snapshot_id != download.id
            || response.position != download.data.len() as u64
        {
            debug!(node = %self.node_id, error = ?response.error, "snapshot fetch failed; starting over");
            // Start again from a plain Fetch: the leader may have a newer snapshot.
            self.state_snapshot_reset();
            self.set_next_fetch(retry_at);
            return;
        }
        if !*leader_resigned {
            *fetch_deadline_ms = now + fetch_timeout_ms;
        }
        *has_fetched = true;
        *next_fetch_ms = now;
        download.data.extend_from_slice(&response.unaligned_records);
        let received = download.data.len() as u64;
        if received > response.size {
            warn!(node = %self.node_id, "snapshot larger than announced; starting over");
            self.state_snapshot_reset();
            self.set_next_fetch(retry_at);
            return;
        }
        if received == response.size {
            let id = download.id;
            let data = Bytes::from(std::mem::take(&mut download.data));
            self.state_snapshot_reset();
            self.install_snapshot(id, data);
        }
        self.send_next_fetch(from);
    }

    pub(super) fn state_snapshot_reset(&mut self) {
        if let Role::Follower { snapshot, .. } = &mut self.state.role {
            *snapshot = None;
        }
    }

    pub(super) fn install_snapshot(&mut self, id: SnapshotId, data: Bytes) {
        assert!(
            matches!(self.state.role, Role::Follower { .. }),
            "only a follower loads a snapshot"
        );
        assert!(
            id.end_offset >= self.high_watermark,
            "node {}: snapshot {id:?} is below the high watermark {}",
            self.node_id,
            self.high_watermark
        );
        info!(node = %self.node_id, ?id, "installing snapshot");
        self.log.install_snapshot(id, data);
        self.effects
            .push(Effect::SnapshotLoaded { snapshot_id: id });
        self.raise_high_watermark(id.end_offset);
    }
}
