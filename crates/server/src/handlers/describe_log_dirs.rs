//! DescribeLogDirs (35): this broker's log directories, the partitions each holds and
//! their sizes on disk, and (v4) the file system's total and usable bytes. krust never
//! moves a replica between directories, so there are no future replicas and every offset
//! lag is 0. Directories are reported absolute, and the metadata log is not a partition
//! log here, as in Kafka.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use krust_storage::TopicPartition;

use super::sb;
use crate::broker::{blocking, Broker};

/// Bytes of a partition directory's segment files (a log not opened yet).
fn size_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// (total, usable) bytes of the file system holding `dir`; -1 each if unknown.
fn space(dir: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX);
            (bytes(s.f_blocks), bytes(s.f_bavail))
        }
        Err(_) => (-1, -1),
    }
}

pub async fn handle(
    broker: &Broker,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    // None: every partition.
    let wanted: Option<HashMap<String, HashSet<i32>>> = req.topics.map(|topics| {
        let mut m: HashMap<String, HashSet<i32>> = HashMap::new();
        for t in topics {
            m.entry(t.topic.to_string())
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        m
    });
    let pick = |tp: &TopicPartition| {
        wanted.as_ref().is_none_or(|w| {
            w.get(&tp.topic)
                .is_some_and(|ps| ps.contains(&tp.partition))
        })
    };
    let dirs: Vec<PathBuf> = broker.logs.log_dirs().to_vec();
    let found = blocking(|| {
        // Log dir → topic → partition → size.
        let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, BTreeMap<i32, u64>>> =
            dirs.iter().map(|d| (d.clone(), BTreeMap::new())).collect();
        let mut seen = HashSet::new();
        for (tp, log) in broker.logs.logs() {
            if !pick(&tp) {
                continue;
            }
            let (dir, size) = {
                let l = log.read();
                (l.dir().parent().map(Path::to_path_buf), l.size_bytes())
            };
            if let Some(entry) = dir.and_then(|d| by_dir.get_mut(&d)) {
                entry
                    .entry(tp.topic.clone())
                    .or_default()
                    .insert(tp.partition, size);
            }
            seen.insert(tp);
        }
        for tp in broker.logs.partitions_where(|tp| pick(tp)) {
            if seen.contains(&tp) {
                continue;
            }
            // Not opened yet: sized from its files.
            for d in &dirs {
                let path = d.join(tp.dir_name());
                if path.is_dir() {
                    if let Some(entry) = by_dir.get_mut(d) {
                        entry
                            .entry(tp.topic.clone())
                            .or_default()
                            .insert(tp.partition, size_on_disk(&path));
                    }
                    break;
                }
            }
        }
        by_dir
            .into_iter()
            .map(|(dir, topics)| {
                let (total, usable) = space(&dir);
                (dir, topics, total, usable)
            })
            .collect::<Vec<_>>()
    });
    let results = found
        .into_iter()
        .map(|(dir, topics, total, usable)| {
            DescribeLogDirsResult::default()
                // Absolute, as Kafka reports its directories.
                .with_log_dir(sb(std::path::absolute(&dir)
                    .unwrap_or(dir)
                    .display()
                    .to_string()))
                .with_total_bytes(total)
                .with_usable_bytes(usable)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(sb(name)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, size)| {
                                            DescribeLogDirsPartition::default()
                                                .with_partition_index(index)
                                                .with_partition_size(
                                                    i64::try_from(size).unwrap_or(i64::MAX),
                                                )
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
