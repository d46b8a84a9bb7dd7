//! Elections: pre-vote and vote (KIP-595, KIP-996), BeginQuorumEpoch, EndQuorumEpoch.

use super::*;

impl<L: RaftLog> RaftNode<L> {
    pub(super) fn request_votes(&mut self, pre_vote: bool) {
        let others: Vec<NodeId> = self.other_voters().collect();
        for voter in others {
            let request = VoteRequest {
                cluster_id: self.config.cluster_id.clone(),
                voter_id: voter,
                replica_epoch: self.state.epoch,
                replica_id: self.node_id,
                last_offset_epoch: self.log.last_epoch(),
                last_offset: self.log.end_offset(),
                pre_vote,
            };
            self.send_request(voter, Request::Vote(request), RequestKind::Vote);
        }
    }

    pub(super) fn on_vote_request(
        &mut self,
        from: NodeId,
        request_id: RequestId,
        request: VoteRequest,
    ) {
        let error = self.vote_request_error(from, &request);
        if error == ErrorCode::None && request.replica_epoch > self.state.epoch {
            self.become_unattached(request.replica_epoch, None);
        }
        let granted = error == ErrorCode::None && self.can_grant_vote(&request);
        if granted && !request.pre_vote {
            // Recording the vote emits the Persist effect before the response below.
            self.become_unattached(self.state.epoch, Some(request.replica_id));
        }
        debug!(node = %self.node_id, candidate = %from, pre_vote = request.pre_vote, granted, ?error, "vote request");
        let response = VoteResponse {
            error,
            leader_id: self.leader(),
            leader_epoch: self.state.epoch,
            vote_granted: granted,
        };
        self.send_response(from, request_id, Response::Vote(response));
    }

    pub(super) fn vote_request_error(&self, from: NodeId, request: &VoteRequest) -> ErrorCode {
        let epochs_valid = if request.pre_vote {
            request.last_offset_epoch <= request.replica_epoch
        } else {
            request.last_offset_epoch < request.replica_epoch
        };
        if !self.cluster_id_matches(&request.cluster_id) {
            ErrorCode::InconsistentClusterId
        } else if !epochs_valid
            || request.last_offset_epoch.0 < 0
            || request.last_offset.0 < 0
            || request.replica_id != from
        {
            ErrorCode::InvalidRequest
        } else if request.voter_id != self.node_id {
            ErrorCode::InvalidVoterKey
        } else if !self.is_voter() || !self.voters.contains(&request.replica_id) {
            ErrorCode::InconsistentVoterSet
        } else if request.replica_epoch < self.state.epoch {
            ErrorCode::FencedLeaderEpoch
        } else {
            ErrorCode::None
        }
    }

    /// The grant rules of §4.3/§4.4: log up to date, no other vote in this epoch, no
    /// leader known; a pre-vote only needs the log check and "not following a live leader".
    pub(super) fn can_grant_vote(&self, request: &VoteRequest) -> bool {
        let up_to_date = (request.last_offset_epoch, request.last_offset)
            >= (self.log.last_epoch(), self.log.end_offset());
        if !up_to_date {
            return false;
        }
        let candidate = request.replica_id;
        let pre_vote = request.pre_vote;
        match &self.state.role {
            Role::Unattached { voted_for, .. } => {
                pre_vote || voted_for.is_none_or(|v| v == candidate)
            }
            Role::Prospective {
                voted_for, leader, ..
            } => pre_vote || (leader.is_none() && voted_for.is_none_or(|v| v == candidate)),
            Role::Candidate { .. } | Role::Resigned { .. } => pre_vote,
            Role::Leader(_) => false,
            Role::Follower {
                has_fetched,
                leader_resigned,
                ..
            } => pre_vote && (!has_fetched || *leader_resigned),
        }
    }

    pub(super) fn on_vote_response(&mut self, from: NodeId, response: VoteResponse) {
        if self.observe_leader(response.leader_epoch, response.leader_id) {
            return;
        }
        if response.leader_epoch != self.state.epoch || !self.voters.contains(&from) {
            return;
        }
        let granted = response.error == ErrorCode::None && response.vote_granted;
        let majority = self.majority();
        let voter_count = self.voters.len();
        match &mut self.state.role {
            Role::Prospective {
                granted: yes,
                rejected: no,
                ..
            } => {
                if granted {
                    yes.insert(from);
                } else {
                    no.insert(from);
                }
                if yes.len() >= majority {
                    self.become_candidate();
                }
            }
            Role::Candidate {
                granted: yes,
                rejected: no,
                election_deadline_ms,
            } => {
                if granted {
                    yes.insert(from);
                } else {
                    no.insert(from);
                }
                if yes.len() >= majority {
                    self.become_leader();
                } else if voter_count - no.len() < majority {
                    let deadline = *election_deadline_ms;
                    let backoff = self.election_backoff_ms();
                    if let Role::Candidate {
                        election_deadline_ms,
                        ..
                    } = &mut self.state.role
                    {
                        *election_deadline_ms = deadline.min(self.now_ms + backoff);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn send_begin_quorum_epoch(&mut self, voter: NodeId) {
        let request = BeginQuorumEpochRequest {
            cluster_id: self.config.cluster_id.clone(),
            voter_id: voter,
            leader_id: self.node_id,
            leader_epoch: self.state.epoch,
        };
        self.send_request(
            voter,
            Request::BeginQuorumEpoch(request),
            RequestKind::BeginQuorumEpoch,
        );
    }

    pub(super) fn on_begin_request(
        &mut self,
        request_id: RequestId,
        from: NodeId,
        request: BeginQuorumEpochRequest,
    ) {
        let error = if !self.cluster_id_matches(&request.cluster_id) {
            ErrorCode::InconsistentClusterId
        } else if request.voter_id != self.node_id {
            ErrorCode::InvalidVoterKey
        } else if !self.voters.contains(&request.leader_id)
            || request.leader_id == self.node_id
            || request.leader_id != from
        {
            ErrorCode::InconsistentVoterSet
        } else if request.leader_epoch < self.state.epoch {
            ErrorCode::FencedLeaderEpoch
        } else if self.accept_leader(request.leader_epoch, request.leader_id) {
            ErrorCode::None
        } else {
            ErrorCode::InvalidRequest
        };
        let response = BeginQuorumEpochResponse {
            error,
            leader_id: self.leader(),
            leader_epoch: self.state.epoch,
        };
        self.send_response(from, request_id, Response::BeginQuorumEpoch(response));
    }

    /// Follows `leader` for `epoch` (>= ours). Refuses (false) a second leader in an epoch.
    pub(super) fn accept_leader(&mut self, epoch: Epoch, leader: NodeId) -> bool {
        if epoch > self.state.epoch {
            self.become_follower(epoch, leader);
            return true;
        }
        let accept = match &self.state.role {
            Role::Follower { leader: known, .. } => return *known == leader,
            Role::Unattached { .. } | Role::Candidate { .. } => true,
            Role::Prospective { leader: known, .. } => known.is_none_or(|l| l == leader),
            Role::Leader(_) | Role::Resigned { .. } => false,
        };
        if accept {
            self.become_follower(epoch, leader);
        } else {
            warn!(node = %self.node_id, %leader, %epoch, "refusing a second leader for the epoch");
        }
        accept
    }

    pub(super) fn on_end_request(
        &mut self,
        request_id: RequestId,
        from: NodeId,
        request: EndQuorumEpochRequest,
    ) {
        let error = if !self.cluster_id_matches(&request.cluster_id) {
            ErrorCode::InconsistentClusterId
        } else if !self.voters.contains(&request.leader_id)
            || request.leader_id == self.node_id
            || request.leader_id != from
        {
            ErrorCode::InconsistentVoterSet
        } else if request.leader_epoch < self.state.epoch {
            ErrorCode::FencedLeaderEpoch
        } else if request.leader_epoch > self.state.epoch
            && !self.accept_leader(request.leader_epoch, request.leader_id)
        {
            ErrorCode::InvalidRequest
        } else {
            ErrorCode::None
        };
        if error == ErrorCode::None {
            self.leader_resigned(&request);
        }
        let response = EndQuorumEpochResponse {
            error,
            leader_id: self.leader(),
            leader_epoch: self.state.epoch,
        };
        self.send_response(from, request_id, Response::EndQuorumEpoch(response));
        // The first preferred successor starts its pre-vote right away.
        let now = self.now_ms;
        self.tick(now);
    }

    /// A follower of a resigning leader shortens its fetch timeout by its position in the
    /// preferred-successor list and starts granting pre-votes.
    pub(super) fn leader_resigned(&mut self, request: &EndQuorumEpochRequest) {
        let position = request
            .preferred_successors
            .iter()
            .position(|id| *id == self.node_id);
        let delay_ms = match position {
            Some(0) => 0,
            Some(p) => {
                let exponent = u32::try_from(p)
                    .unwrap_or(u32::MAX)
                    .min(BACKOFF_EXPONENT_MAX);
                (ELECTION_BACKOFF_BASE_MS << exponent).min(self.config.election_backoff_max_ms)
            }
            None => self.random_election_timeout_ms(),
        };
        let now = self.now_ms;
        if let Role::Follower {
            leader,
            fetch_deadline_ms,
            leader_resigned,
            ..
        } = &mut self.state.role
        {
            if *leader == request.leader_id {
                *leader_resigned = true;
                *fetch_deadline_ms = (*fetch_deadline_ms).min(now + delay_ms);
            }
        }
    }

    /// Binary exponential backoff after a lost election, capped by the config.
    pub(super) fn election_backoff_ms(&mut self) -> u64 {
        let exponent = self.election_retries.min(BACKOFF_EXPONENT_MAX);
        let factor = self.rng.random_range(1..=(1u64 << exponent));
        (ELECTION_BACKOFF_BASE_MS * factor).min(self.config.election_backoff_max_ms)
    }
}
