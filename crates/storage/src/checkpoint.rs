//! Kafka's text checkpoint files.
//!
//! Format: a line `0` (version), a line with the number of entries, then one entry per line with
//! space-separated columns. Offset checkpoints (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`) have `topic partition offset` entries; the leader epoch
//! checkpoint has `epoch startOffset` entries. Files are written to `<name>.tmp`, fsynced, renamed
//! over the old file, and the directory is fsynced.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};

/// File name of the recovery point checkpoint in each log dir.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// File name of the log start offset checkpoint in each log dir.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Where each compacted log's last cleaning ended (its first dirty offset), as Kafka's
/// `cleaner-offset-checkpoint`.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";
/// The only checkpoint format version.
pub const CHECKPOINT_VERSION: i32 = 0;

/// A topic name and partition index; names the partition directory `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Makes a topic partition (not validated; see [`TopicPartition::validate`]).
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Checks that the name is a legal Kafka topic name (1..=249 chars of `[a-zA-Z0-9._-]`, not
    /// `.` or `..`) and the partition is >= 0, so the directory name is safe to use.
    pub fn validate(&self) -> Result<()> {
        let t = &self.topic;
        let legal = !t.is_empty()
            && t.len() <= 249
            && t != "."
            && t != ".."
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-');
        if !legal {
            return Err(StorageError::InvalidTopicPartition(format!(
                "illegal topic name {t:?}"
            )));
        }
        if self.partition < 0 {
            return Err(StorageError::InvalidTopicPartition(format!(
                "negative partition {}",
                self.partition
            )));
        }
        Ok(())
    }

    /// The partition directory name `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a partition directory name `<topic>-<partition>`; `None` if it is not one.
    pub fn parse_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if partition.is_empty() || !partition.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let tp = TopicPartition::new(topic, partition.parse().ok()?);
        tp.validate().ok()?;
        Some(tp)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

fn corrupt(path: &Path, line: usize, reason: impl Into<String>) -> StorageError {
    StorageError::CorruptCheckpoint {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Reads a checkpoint file whose entries have `columns` columns. `Ok(None)` if the file does not
/// exist.
pub fn read_entries(path: &Path, columns: usize) -> Result<Option<Vec<Vec<String>>>> {
    let mut entries = Vec::new();
    let found = visit_entries(path, columns, |_, cols| {
        entries.push(cols.iter().map(|c| (*c).to_owned()).collect());
        Ok(())
    })?;
    Ok(found.then_some(entries))
}

/// Hands each entry of a checkpoint file with `columns` columns (at most 4) to `visit`, with its
/// line number, without copying it. `Ok(false)` if the file does not exist.
fn visit_entries(
    path: &Path,
    columns: usize,
    mut visit: impl FnMut(usize, &[&str]) -> Result<()>,
) -> Result<bool> {
    const MAX_COLUMNS: usize = 4;
    if columns > MAX_COLUMNS {
        return Err(StorageError::InvalidArgument(format!(
            "a checkpoint has at most {MAX_COLUMNS} columns, not {columns}"
        )));
    }
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut lines = text.lines();
    let version = lines.next().ok_or_else(|| corrupt(path, 1, "empty file"))?;
    if version.trim().parse::<i32>().ok() != Some(CHECKPOINT_VERSION) {
        return Err(corrupt(path, 1, format!("unsupported version {version:?}")));
    }
    let count_line = lines
        .next()
        .ok_or_else(|| corrupt(path, 2, "missing entry count"))?;
    let count: usize = count_line
        .trim()
        .parse()
        .map_err(|_| corrupt(path, 2, format!("bad entry count {count_line:?}")))?;
    let mut found = 0;
    let mut cols = [""; MAX_COLUMNS];
    for (i, line) in lines.enumerate() {
        let mut n = 0;
        for word in line.split_whitespace() {
            if n < MAX_COLUMNS {
                cols[n] = word;
            }
            n += 1;
        }
        if n == 0 {
            continue;
        }
        if n != columns {
            return Err(corrupt(
                path,
                i + 3,
                format!("expected {columns} columns, got {line:?}"),
            ));
        }
        visit(i + 3, &cols[..n])?;
        found += 1;
    }
    if found != count {
        return Err(corrupt(
            path,
            2,
            format!("header says {count} entries, found {found}"),
        ));
    }
    Ok(true)
}

/// Writes a checkpoint file with the given entries (each a list of columns) atomically.
pub fn write_entries<I, R>(path: &Path, entries: I) -> Result<()>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: fmt::Display,
{
    let mut body = String::new();
    let mut count = 0usize;
    for entry in entries {
        let mut first = true;
        for col in entry {
            if !first {
                body.push(' ');
            }
            first = false;
            body.push_str(&col.to_string());
        }
        body.push('\n');
        count += 1;
    }
    let text = format!("{CHECKPOINT_VERSION}\n{count}\n{body}");
    write_atomically(path, text.as_bytes())
}

/// Writes `contents` to `path` via `path.tmp`: write, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Fsyncs a directory so that file creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir)?;
    d.sync_all()?;
    Ok(())
}

/// Reads an offset checkpoint (`topic partition offset` entries). A missing file is empty.
pub fn read_offsets(path: &Path) -> Result<HashMap<TopicPartition, i64>> {
    let mut out = HashMap::new();
    visit_entries(path, 3, |line, cols| {
        let partition: i32 = cols[1]
            .parse()
            .map_err(|_| corrupt(path, line, format!("bad partition {:?}", cols[1])))?;
        let offset: i64 = cols[2]
            .parse()
            .map_err(|_| corrupt(path, line, format!("bad offset {:?}", cols[2])))?;
        out.insert(TopicPartition::new(cols[0], partition), offset);
        Ok(())
    })?;
    Ok(out)
}

/// Writes an offset checkpoint atomically; entries are sorted for stable output.
pub fn write_offsets<'a, I>(path: &Path, entries: I) -> Result<()>
where
    I: IntoIterator<Item = (&'a TopicPartition, i64)>,
{
    let mut v: Vec<(&TopicPartition, i64)> = entries.into_iter().collect();
    v.sort();
    write_entries(
        path,
        v.into_iter()
            .map(|(tp, off)| [tp.topic.clone(), tp.partition.to_string(), off.to_string()]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        assert!(read_offsets(&path).expect("missing is empty").is_empty());
        let a = TopicPartition::new("my-topic", 3);
        let b = TopicPartition::new("__consumer_offsets", 12);
        write_offsets(&path, [(&a, 100), (&b, 7)]).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text, "0\n2\n__consumer_offsets 12 7\nmy-topic 3 100\n");
        let m = read_offsets(&path).expect("read");
        assert_eq!(m.len(), 2);
        assert_eq!(m[&a], 100);
        assert_eq!(m[&b], 7);
        assert!(!dir
            .path()
            .join("recovery-point-offset-checkpoint.tmp")
            .exists());
        write_offsets(&path, []).expect("write empty");
        assert!(read_offsets(&path).expect("read").is_empty());
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cp");
        for bad in [
            "",
            "1\n0\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt x 1\n",
            "0\n1\nt 0\n",
            "0\nz\n",
            "0\n1\nt 0 1 2 3 4 5\n",
            "0\n2\nt 0 1\n\nt 1 x\n",
        ] {
            fs::write(&path, bad).expect("write");
            assert!(
                matches!(
                    read_offsets(&path),
                    Err(StorageError::CorruptCheckpoint { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn blank_lines_are_skipped_and_errors_name_their_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cp");
        fs::write(&path, "0\n2\n\nt 0 1\n  \nt 1 2\n").expect("write");
        let m = read_offsets(&path).expect("read");
        assert_eq!(m[&TopicPartition::new("t", 1)], 2);
        fs::write(&path, "0\n2\n\nt 0 1\nt x 2\n").expect("write");
        match read_offsets(&path) {
            Err(StorageError::CorruptCheckpoint { line, .. }) => assert_eq!(line, 5),
            other => panic!("{other:?}"),
        }
        // Rows of more columns than a reader keeps are refused, not read.
        assert!(matches!(
            read_entries(&path, 5),
            Err(StorageError::InvalidArgument(_))
        ));
    }

    #[test]
    fn dir_names() {
        let tp = TopicPartition::parse_dir_name("a-b-c-12").expect("parse");
        assert_eq!(tp, TopicPartition::new("a-b-c", 12));
        assert_eq!(tp.dir_name(), "a-b-c-12");
        assert!(TopicPartition::parse_dir_name("nodash").is_none());
        assert!(TopicPartition::parse_dir_name("t-").is_none());
        assert!(TopicPartition::parse_dir_name("t-1.abc-delete").is_none());
        assert!(TopicPartition::parse_dir_name("-1").is_none());
        assert!(TopicPartition::new("../x", 0).validate().is_err());
        assert!(TopicPartition::new("x", -1).validate().is_err());
    }
}
