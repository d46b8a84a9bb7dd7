//! Timers and limits, with Kafka's `QuorumConfig` defaults.

/// Raft timers and limits. All durations are milliseconds of the host's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// Requests carrying a different cluster id are rejected with INCONSISTENT_CLUSTER_ID.
    /// `None` accepts any.
    pub cluster_id: Option<String>,
    /// `controller.quorum.election.timeout.ms`; the effective timeout is random in [T, 2T).
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: a follower without a successful fetch for this
    /// long starts a pre-vote; a leader without fetches from a majority for 1.5× resigns.
    pub fetch_timeout_ms: u64,
    /// How long the leader parks a Fetch that has nothing to return.
    pub fetch_max_wait_ms: u64,
    /// `controller.quorum.request.timeout.ms`.
    pub request_timeout_ms: u64,
    /// `controller.quorum.election.backoff.max.ms`.
    pub election_backoff_max_ms: u64,
    /// `controller.quorum.retry.backoff.ms`: delay before retrying a failed Fetch.
    pub retry_backoff_ms: u64,
    /// `controller.quorum.append.linger.ms`: how long the leader may hold appended entries
    /// before flushing them (they count toward the high watermark only once flushed).
    pub append_linger_ms: u64,
    /// Most entries returned by one Fetch.
    pub fetch_entries_max: usize,
    /// Most snapshot bytes returned by one FetchSnapshot.
    pub fetch_snapshot_bytes_max: usize,
    /// Most observers the leader tracks; further observers are served but not tracked.
    pub observers_max: usize,
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            cluster_id: None,
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            fetch_max_wait_ms: 500,
            request_timeout_ms: 2000,
            election_backoff_max_ms: 1000,
            retry_backoff_ms: 20,
            append_linger_ms: 25,
            fetch_entries_max: 500,
            fetch_snapshot_bytes_max: 1 << 20,
            observers_max: 1000,
        }
    }
}

impl RaftConfig {
    /// A leader resigns when a majority has not fetched within this long
    /// (Kafka's check-quorum factor 1.5 × fetch timeout).
    pub fn check_quorum_timeout_ms(&self) -> u64 {
        self.fetch_timeout_ms * 3 / 2
    }
}
