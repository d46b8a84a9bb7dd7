//! The `quorum-state` file: a node's persisted election state (epoch, leader, vote).
//!
//! Kafka's format (data_version 0): one line of JSON such as
//! `{"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":-1,"appliedOffset":0,"currentVoters":[],"data_version":0}`.
//! It is written to a temporary file, fsynced and renamed, so a crash leaves either the
//! old or the new state, never a mix. Raft requires it to be durable before the node acts
//! on it.

use std::fs;
use std::io::Write;
use std::path::Path;

use krust_raft::{Epoch, NodeId, QuorumStateRecord};

/// The file's name in the metadata log directory.
pub const QUORUM_STATE_FILE: &str = "quorum-state";

/// Reads the state, `None` if the node never stored one.
pub fn read(dir: &Path) -> anyhow::Result<Option<QuorumStateRecord>> {
    let path = dir.join(QUORUM_STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let field = |name: &str| -> anyhow::Result<i64> {
        let key = format!("\"{name}\":");
        let at = text
            .find(&key)
            .ok_or_else(|| anyhow::anyhow!("{} has no {name}", path.display()))?;
        let rest = text[at + key.len()..].trim_start();
        let end = rest
            .find(|c: char| c != '-' && !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end]
            .parse()
            .map_err(|_| anyhow::anyhow!("{} has a bad {name}", path.display()))
    };
    let node = |v: i64| (v >= 0).then_some(NodeId(v as i32));
    Ok(Some(QuorumStateRecord {
        leader_epoch: Epoch(i32::try_from(field("leaderEpoch")?).unwrap_or(0)),
        leader_id: node(field("leaderId")?),
        voted_id: node(field("votedId")?),
    }))
}

/// Durably replaces the state.
pub fn write(dir: &Path, cluster_id: &str, record: &QuorumStateRecord) -> anyhow::Result<()> {
    let text = format!(
        "{{\"clusterId\":\"{cluster_id}\",\"leaderId\":{},\"leaderEpoch\":{},\"votedId\":{},\"appliedOffset\":0,\"currentVoters\":[],\"data_version\":0}}\n",
        record.leader_id.map_or(-1, |n| n.0),
        record.leader_epoch.0,
        record.voted_id.map_or(-1, |n| n.0),
    );
    let tmp = dir.join(format!("{QUORUM_STATE_FILE}.tmp"));
    let path = dir.join(QUORUM_STATE_FILE);
    let mut f = fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_kafkas_format() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(read(dir.path()).expect("read"), None);
        let r = QuorumStateRecord {
            leader_epoch: Epoch(7),
            leader_id: Some(NodeId(2)),
            voted_id: None,
        };
        write(dir.path(), "abc", &r).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Some(r));
        let text = fs::read_to_string(dir.path().join(QUORUM_STATE_FILE)).expect("file");
        assert!(text.starts_with(
            "{\"clusterId\":\"abc\",\"leaderId\":2,\"leaderEpoch\":7,\"votedId\":-1,"
        ));
        fs::write(dir.path().join(QUORUM_STATE_FILE), "{\"leaderId\":").expect("damage");
        assert!(read(dir.path()).is_err());
    }
}
