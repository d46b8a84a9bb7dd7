//! Admission of requests by the memory that decoding and answering them may take.
//!
//! A request's frame is bounded by `socket.request.max.bytes`, but what it becomes is not:
//! each entry of an array (a group id, a topic, a partition) decodes to a struct of tens to
//! hundreds of bytes and usually gets an answer entry of its own, however few bytes it took
//! on the wire. Fifty megabytes of one-byte group ids ask for over ten gigabytes. So each
//! request is charged an estimate of that memory before it is decoded:
//!
//! * Produce: [`PER_PRODUCE_ENTRY`] bytes per topic, partition and tagged-field entry, counted without
//!   decoding ([`krust_protocol::produce_entries`]); its record bytes stay in the frame.
//! * Fetch: [`FETCH_FACTOR`] times its size (every partition entry takes over a dozen bytes).
//! * Everything else: [`OTHER_FACTOR`] times its size (one-byte entries are possible).
//!
//! Requests charged at most [`FREE_CHARGE`] (nearly every request a client sends) go
//! through at once. Larger ones share one budget of memory per process, a quarter of the
//! machine's memory (or of the control group's limit) up to 4 GiB, and wait on their
//! connection while it is spent (the connection's later requests wait behind them). A
//! request charged more than the whole budget is refused, and its connection closed, as an
//! oversized frame is: with a 4 GiB budget, requests other than Produce and Fetch over
//! 16 MiB.
//!
//! A share is held until the request is answered, including while a handler waits (a
//! JoinGroup for the rebalance, a controller request for its commit), since what it decoded
//! is held as long. A Fetch holding one waits for records at most
//! [`MAX_WAIT_WITH_SHARE`]. A Produce whose answer waits for the in-sync replicas gives its
//! share back when it starts waiting (what it holds then is what it appended), so a
//! connection's later requests never wait for its own earlier ones.
//!
//! An answer that repeats server state for each entry (a group's members or offsets, a
//! topic's partitions or configs, a partition's commit metadata) would cost more than its
//! charge when an entry is repeated; those handlers answer each distinct entry once. The
//! request header's tagged fields are skipped, not kept, so nothing before admission grows
//! with the frame.

use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes charged per topic, partition or tagged-field entry of a Produce request.
pub const PER_PRODUCE_ENTRY: u64 = 512;
/// Fetch requests are charged this many times their size (a partition entry of 16 bytes
/// takes 500-700 bytes decoded, looked up and answered).
pub const FETCH_FACTOR: u64 = 48;
/// Other requests are charged this many times their size.
pub const OTHER_FACTOR: u64 = 256;
/// Requests charged at most this much are not counted against the budget.
pub const FREE_CHARGE: u64 = 1 << 20;
/// The most the budget is, whatever the machine's memory.
pub const MAX_BUDGET: u64 = 4 << 30;
/// A Fetch holding a share of the budget waits for records at most this long (what it
/// decoded stays in memory while it waits).
pub const MAX_WAIT_WITH_SHARE: std::time::Duration = std::time::Duration::from_secs(1);
/// The least the budget is, whatever the machine's memory.
const MIN_BUDGET: u64 = 64 << 20;

/// The memory budget of the requests being handled.
pub struct Admission {
    /// Permits are KiB of estimated memory.
    permits: Arc<Semaphore>,
    budget: u64,
}

impl Admission {
    /// A budget of `budget` bytes (within 64 MiB and [`MAX_BUDGET`]).
    pub fn new(budget: u64) -> Admission {
        let budget = budget.clamp(MIN_BUDGET, MAX_BUDGET);
        Admission {
            permits: Arc::new(Semaphore::new((budget >> 10) as usize)),
            budget,
        }
    }

    /// The budget for this machine: a quarter of its memory (or of the control group's
    /// limit, when lower), up to [`MAX_BUDGET`].
    pub fn for_this_machine() -> Admission {
        let memory = match (total_memory(), cgroup_limit()) {
            (Some(m), Some(l)) => Some(m.min(l)),
            (m, l) => m.or(l),
        };
        Admission::new(memory.map_or(1 << 30, |m| m / 4))
    }

    /// The budget, in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Waits until `body` (the request after its header) fits in the budget, and returns
    /// its share of the budget, held until dropped (None: not counted); Err when it could
    /// never fit.
    pub async fn admit(
        &self,
        key: ApiKey,
        version: i16,
        body: &[u8],
    ) -> Result<Option<OwnedSemaphorePermit>, String> {
        let charge = charge(key, version, body);
        if charge <= FREE_CHARGE {
            return Ok(None);
        }
        if charge > self.budget {
            return Err(format!(
                "a {key:?} request of {} bytes would take about {} MiB to handle, more than \
                 the {} MiB that requests may take at once",
                body.len(),
                charge >> 20,
                self.budget >> 20
            ));
        }
        let kib = charge.div_ceil(1024) as u32;
        match self.permits.clone().acquire_many_owned(kib).await {
            Ok(p) => Ok(Some(p)),
            Err(_) => Err("the request budget is closed".into()),
        }
    }
}

/// `queued.max.request.bytes`: the bytes of requests read and not yet handled, over all
/// connections. A connection reserves a request's size as soon as its size prefix is read,
/// before reading the rest, and gives it back once the request is handled; while the pool
/// is spent it reads nothing more (Kafka mutes such a connection). A request larger than
/// the whole pool takes all of it.
pub struct RequestPool {
    /// Permits are KiB.
    permits: Arc<Semaphore>,
    kib: u32,
}

impl RequestPool {
    /// A pool of `bytes` (at least 1 KiB).
    pub fn new(bytes: u64) -> RequestPool {
        let kib = bytes
            .div_ceil(1024)
            .clamp(1, u64::from(u32::MAX).min(Semaphore::MAX_PERMITS as u64))
            as u32;
        RequestPool {
            permits: Arc::new(Semaphore::new(kib as usize)),
            kib,
        }
    }

    /// Bytes the pool holds.
    pub fn capacity(&self) -> u64 {
        u64::from(self.kib) * 1024
    }

    /// Bytes not reserved now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * 1024
    }

    fn charge(&self, size: usize) -> u32 {
        (size as u64).div_ceil(1024).clamp(1, u64::from(self.kib)) as u32
    }

    /// The reservation for a request of `size` bytes, if the pool has it now.
    pub fn try_reserve(&self, size: usize) -> Option<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .try_acquire_many_owned(self.charge(size))
            .ok()
    }

    /// The reservation for a request of `size` bytes, once the pool has it (None only if
    /// the pool were closed, which it never is).
    pub async fn reserve(&self, size: usize) -> Option<OwnedSemaphorePermit> {
        self.permits
            .clone()
            .acquire_many_owned(self.charge(size))
            .await
            .ok()
    }
}

/// The estimated memory, in bytes, that decoding and answering this request takes.
pub fn charge(key: ApiKey, version: i16, body: &[u8]) -> u64 {
    let len = body.len() as u64;
    match key {
        ApiKey::Produce => match krust_protocol::produce_entries(body, version) {
            Some(entries) => (entries as u64).saturating_mul(PER_PRODUCE_ENTRY),
            // The decoder refuses it, but only after reading what it can.
            None => len.saturating_mul(OTHER_FACTOR),
        },
        ApiKey::Fetch => len.saturating_mul(FETCH_FACTOR),
        _ => len.saturating_mul(OTHER_FACTOR),
    }
}

/// The memory limit of this process's control group: the lowest `memory.max` (cgroup v2)
/// of it and its ancestors, or `memory.limit_in_bytes` (cgroup v1); None if unlimited or
/// unknown.
fn cgroup_limit() -> Option<u64> {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut limit: Option<u64> = None;
    let mut lower = |l: Option<u64>| {
        if let Some(l) = l {
            limit = Some(limit.map_or(l, |m| m.min(l)));
        }
    };
    // cgroup v2: one line "0::<path>"; the path may be the host's (no cgroup namespace),
    // then only the mount's own root is found.
    if let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        let mut p = path.trim().trim_end_matches('/').to_string();
        loop {
            lower(read(&format!("/sys/fs/cgroup{p}/memory.max")));
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => break,
            }
        }
        lower(read("/sys/fs/cgroup/memory.max"));
    }
    // cgroup v1: the memory controller's limit (a huge number when unlimited).
    lower(read("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    limit
}

/// The machine's memory (`MemTotal`), where `/proc/meminfo` tells it.
fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line["MemTotal:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_are_free_and_large_ones_wait_for_the_budget() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let a = Admission::new(64 << 20);
            assert_eq!(a.budget(), 64 << 20);
            // 4 KiB of group ids: 1 MiB, free.
            let small = vec![1u8; 4096];
            assert!(a
                .admit(ApiKey::DescribeGroups, 5, &small)
                .await
                .expect("admit")
                .is_none());
            // 128 KiB: 32 MiB each; two fit, the third waits until one is done.
            let big = vec![1u8; 128 << 10];
            let first = a
                .admit(ApiKey::DescribeGroups, 5, &big)
                .await
                .expect("admit");
            let second = a
                .admit(ApiKey::DescribeGroups, 5, &big)
                .await
                .expect("admit");
            assert!(first.is_some() && second.is_some());
            let third = a.admit(ApiKey::DescribeGroups, 5, &big);
            tokio::pin!(third);
            assert!(futures_now(&mut third).is_none());
            drop(first);
            let third = third.await.expect("admit");
            assert!(third.is_some());
            drop((second, third));
            // More than the whole budget is refused at once.
            let huge = vec![1u8; 1 << 20];
            let e = a
                .admit(ApiKey::Metadata, 12, &huge)
                .await
                .expect_err("refused");
            assert!(e.contains("Metadata request of 1048576 bytes"), "{e}");
            // The same bytes as a Fetch are charged 48 MiB.
            assert!(a
                .admit(ApiKey::Fetch, 12, &huge)
                .await
                .expect("admit")
                .is_some());
        });
    }

    /// The future's output if it is ready without waiting.
    fn futures_now<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn produce_is_charged_by_its_entries_not_its_records() {
        // A malformed Produce body is charged by its size.
        assert_eq!(charge(ApiKey::Produce, 9, &[1, 2, 3]), 3 * OTHER_FACTOR);
        // v3: no transactional id, acks, timeout, one topic "t" with one partition
        // carrying 1 MiB of (unchecked) record bytes: two entries.
        let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0, 100, 0, 0, 0, 1, 0, 1, b't'];
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        body.extend_from_slice(&(1i32 << 20).to_be_bytes());
        body.resize(body.len() + (1 << 20), 0);
        assert_eq!(charge(ApiKey::Produce, 3, &body), 2 * PER_PRODUCE_ENTRY);
    }
}
