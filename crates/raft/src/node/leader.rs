//! The leader's side of replication: answering Fetch, parking fetches, the high
//! watermark, check-quorum and BeginQuorumEpoch re-sends.

use super::*;

impl<L: RaftLog> RaftNode<L> {
    pub(super) fn tick_leader(&mut self) {
        let now = self.now_ms;
        let flush_due = matches!(&self.state.role,
            Role::Leader(l) if l.flush_deadline_ms.is_some_and(|d| d <= now));
        if flush_due {
            self.log.flush();
            if let Role::Leader(leader) = &mut self.state.role {
                leader.flush_deadline_ms = None;
            }
            self.update_leader_high_watermark();
        }
        self.complete_parked_fetches();

        let majority = self.majority();
        let check_quorum_timeout_ms = self.config.check_quorum_timeout_ms();
        let mut lost_quorum = false;
        let mut begin_targets = Vec::new();
        if let Role::Leader(leader) = &mut self.state.role {
            if now >= leader.check_quorum_deadline_ms {
                if leader.fetched_since_check.len() + 1 >= majority {
                    leader.fetched_since_check.clear();
                    leader.check_quorum_deadline_ms = now + check_quorum_timeout_ms;
                } else {
                    lost_quorum = true;
                }
            }
            if now >= leader.begin_resend_ms {
                leader.begin_resend_ms = now + self.config.fetch_timeout_ms / 2;
                begin_targets = leader
                    .voters
                    .iter()
                    .filter(|(_, p)| p.last_fetch_ms.is_none())
                    .map(|(id, _)| *id)
                    .collect();
            }
            leader.observers.retain(|_, p| {
                p.last_fetch_ms
                    .is_some_and(|t| now.saturating_sub(t) < OBSERVER_SESSION_TIMEOUT_MS)
            });
        }
        if lost_quorum {
            warn!(node = %self.node_id, "a majority has not fetched within the check-quorum timeout");
            self.resign_leadership();
            return;
        }
        for voter in begin_targets {
            let pending = self
                .in_flight
                .values()
                .any(|f| f.to == voter && f.kind == RequestKind::BeginQuorumEpoch);
            if !pending {
                self.send_begin_quorum_epoch(voter);
            }
        }
    }

    pub(super) fn on_fetch_request(
        &mut self,
        from: NodeId,
        request_id: RequestId,
        request: FetchRequest,
    ) {
        if let Some(response) = self.validate_fetch(from, &request) {
            self.reply_fetch(from, request_id, response);
            return;
        }
        self.record_fetch(from, &request);
        self.update_leader_high_watermark();
        let records = self
            .log
            .read(request.fetch_offset, self.config.fetch_entries_max);
        // A replica that has not yet heard of the current high watermark (this very fetch
        // may have raised it) is answered at once: parked, it would learn of the commit only
        // at the next append or when its wait ran out.
        let knows_high_watermark = match &self.state.role {
            Role::Leader(leader) => leader
                .progress(from)
                .is_none_or(|p| p.high_watermark_sent == Some(self.high_watermark)),
            _ => true,
        };
        if records.is_empty() && request.max_wait_ms > 0 && knows_high_watermark {
            let deadline_ms = self.now_ms + u64::try_from(request.max_wait_ms).unwrap_or(0);
            let high_watermark = self.high_watermark;
            // A replica keeps one fetch parked (bounding the list by the replica count).
            // An earlier one is answered now, empty: it may be the one the replica still
            // waits for if this request is a late duplicate.
            let mut earlier = Vec::new();
            if let Role::Leader(leader) = &mut self.state.role {
                let (same, others): (Vec<ParkedFetch>, Vec<ParkedFetch>) =
                    std::mem::take(&mut leader.parked)
                        .into_iter()
                        .partition(|p| p.from == from);
                leader.parked = others;
                earlier = same;
            }
            for parked in earlier {
                let response = self.fetch_response(ErrorCode::None, Vec::new(), None);
                self.reply_fetch(parked.from, parked.request_id, response);
            }
            if let Role::Leader(leader) = &mut self.state.role {
                leader.parked.push(ParkedFetch {
                    from,
                    request_id,
                    request,
                    deadline_ms,
                    high_watermark_at_park: high_watermark,
                });
            }
            return;
        }
        let response = self.fetch_response(ErrorCode::None, records, None);
        self.reply_fetch(from, request_id, response);
    }

    /// Returns the response to send right away for an invalid or diverging fetch, or
    /// `None` when the fetch is valid (§4.7).
    pub(super) fn validate_fetch(
        &mut self,
        from: NodeId,
        request: &FetchRequest,
    ) -> Option<FetchResponse> {
        let error = if !self.cluster_id_matches(&request.cluster_id) {
            ErrorCode::InconsistentClusterId
        } else if request.fetch_offset.0 < 0
            || request.last_fetched_epoch.0 < 0
            || request.last_fetched_epoch > request.current_leader_epoch
            || request.max_wait_ms < 0
            || request.replica_id != from
        {
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
        if error != ErrorCode::None {
            return Some(self.fetch_response(error, Vec::new(), None));
        }
        if let Role::Leader(leader) = &mut self.state.role {
            if leader.voters.contains_key(&from) {
                leader.fetched_since_check.insert(from);
            }
        }
        if let Some(snapshot_id) = snapshot_needed(&self.log, request) {
            let mut response = self.fetch_response(ErrorCode::None, Vec::new(), None);
            response.snapshot_id = Some(snapshot_id);
            return Some(response);
        }
        let diverging =
            diverging_epoch(&self.log, request.fetch_offset, request.last_fetched_epoch);
        diverging.map(|d| self.fetch_response(ErrorCode::None, Vec::new(), Some(d)))
    }

    pub(super) fn record_fetch(&mut self, from: NodeId, request: &FetchRequest) {
        let now = self.now_ms;
        let leader_end = self.log.end_offset();
        let observers_max = self.config.observers_max;
        let Role::Leader(leader) = &mut self.state.role else {
            return;
        };
        let progress = if let Some(progress) = leader.voters.get_mut(&from) {
            progress
        } else {
            // A fetcher without a replica id (-1: not a replica, a tool say) is answered
            // but not tracked, as in Kafka.
            if from == self.node_id
                || from.0 < 0
                || (!leader.observers.contains_key(&from)
                    && leader.observers.len() >= observers_max)
            {
                return;
            }
            leader.observers.entry(from).or_default()
        };
        if request.fetch_offset >= leader_end {
            progress.last_caught_up_ms = Some(now);
        } else if request.fetch_offset >= progress.leader_end_at_last_fetch {
            if let Some(last_fetch) = progress.last_fetch_ms {
                progress.last_caught_up_ms = Some(last_fetch);
            }
        }
        progress.leader_end_at_last_fetch = leader_end;
        progress.last_fetch_ms = Some(now);
        progress.end_offset = Some(request.fetch_offset);
    }

    pub(super) fn update_leader_high_watermark(&mut self) {
        let Role::Leader(leader) = &self.state.role else {
            return;
        };
        let mut offsets: Vec<Option<Offset>> =
            leader.voters.values().map(|p| p.end_offset).collect();
        // The leader counts only what is durable on its own disk.
        offsets.push(Some(self.log.flushed_end()));
        let Some(majority_offset) = majority_offset(&offsets) else {
            return;
        };
        if majority_offset > leader.epoch_start_offset && majority_offset > self.high_watermark {
            self.raise_high_watermark(majority_offset);
            self.complete_parked_fetches();
        }
    }

    pub(super) fn complete_parked_fetches(&mut self) {
        let now = self.now_ms;
        let end = self.log.end_offset();
        let high_watermark = self.high_watermark;
        let Role::Leader(leader) = &mut self.state.role else {
            return;
        };
        let (ready, waiting): (Vec<ParkedFetch>, Vec<ParkedFetch>) =
            std::mem::take(&mut leader.parked)
                .into_iter()
                .partition(|p| {
                    end > p.request.fetch_offset
                        || high_watermark != p.high_watermark_at_park
                        || now >= p.deadline_ms
                });
        leader.parked = waiting;
        for parked in ready {
            let records = self
                .log
                .read(parked.request.fetch_offset, self.config.fetch_entries_max);
            let response = self.fetch_response(ErrorCode::None, records, None);
            self.reply_fetch(parked.from, parked.request_id, response);
        }
    }

    /// Sends a Fetch response, noting the high watermark the replica now knows.
    fn reply_fetch(&mut self, to: NodeId, request_id: RequestId, response: FetchResponse) {
        if let Role::Leader(leader) = &mut self.state.role {
            if let Some(p) = leader.progress_mut(to) {
                p.high_watermark_sent = Some(response.high_watermark);
            }
        }
        self.send_response(to, request_id, Response::Fetch(response));
    }

    pub(super) fn answer_parked_after_leadership(&mut self, parked: Vec<ParkedFetch>) {
        for p in parked {
            let error = if p.request.current_leader_epoch < self.state.epoch {
                ErrorCode::FencedLeaderEpoch
            } else {
                ErrorCode::NotLeaderOrFollower
            };
            let response = self.fetch_response(error, Vec::new(), None);
            self.reply_fetch(p.from, p.request_id, response);
        }
    }

    pub(super) fn fetch_response(
        &self,
        error: ErrorCode,
        records: Vec<Entry>,
        diverging_epoch: Option<DivergingEpoch>,
    ) -> FetchResponse {
        FetchResponse {
            error,
            high_watermark: self.high_watermark,
            records,
            diverging_epoch,
            current_leader: CurrentLeader {
                leader_id: self.leader(),
                leader_epoch: self.state.epoch,
            },
            snapshot_id: None,
        }
    }
}

/// The majority-replicated offset: with voter end offsets sorted descending (unknown
/// ones last), the entry at index `voters / 2`. `None` if fewer than a majority are known.
pub(crate) fn majority_offset(voter_end_offsets: &[Option<Offset>]) -> Option<Offset> {
    let mut known: Vec<Offset> = voter_end_offsets.iter().flatten().copied().collect();
    known.sort_unstable_by(|a, b| b.cmp(a));
    known.get(voter_end_offsets.len() / 2).copied()
}

/// §4.7: the snapshot a follower must load instead of fetching from `fetch_offset`.
pub(crate) fn snapshot_needed<L: RaftLog>(log: &L, request: &FetchRequest) -> Option<SnapshotId> {
    let snapshot = log.latest_snapshot()?;
    let start = log.start_offset();
    let needed = request.fetch_offset < start
        || (request.fetch_offset == start && request.last_fetched_epoch != snapshot.epoch)
        || request.last_fetched_epoch < snapshot.epoch;
    needed.then_some(snapshot)
}

/// The leader's check of a follower's (fetch offset, last fetched epoch), §4.7: `Some`
/// with where the follower's log diverges, `None` when the fetch position is valid.
pub(crate) fn diverging_epoch<L: RaftLog>(
    log: &L,
    fetch_offset: Offset,
    last_fetched_epoch: Epoch,
) -> Option<DivergingEpoch> {
    let (epoch, end_offset) = log.end_offset_for_epoch(last_fetched_epoch);
    (epoch != last_fetched_epoch || end_offset < fetch_offset)
        .then_some(DivergingEpoch { epoch, end_offset })
}
