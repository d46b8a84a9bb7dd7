//! Storage identity: `krust storage format` and the startup check of every log directory.
//!
//! Every log directory (and the metadata directory) carries a `meta.properties` naming the
//! cluster, the node and the directory. Formatting writes them; startup verifies that they
//! agree with each other and with the configured `node.id`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use krust_metadata::records::MetadataRecord;

use crate::config::ServerConfig;
use crate::meta_properties::{
    is_reserved_directory_id, parse_uuid, random_directory_id, random_uuid, MetaProperties,
    MetaPropertiesError, META_PROPERTIES_FILE,
};

/// The metadata.version krust formats with and reports.
pub const METADATA_VERSION_NAME: &str = "4.1-IV1";

/// The metadata partition's directory name.
const METADATA_PARTITION_DIR: &str = "__cluster_metadata-0";

/// A refusal to format or to start.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Meta(#[from] MetaPropertiesError),
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The file of a formatted metadata directory holding the records the first active
/// controller writes (`--add-scram`'s credentials), as Kafka's `bootstrap.checkpoint`.
pub const BOOTSTRAP_FILE: &str = "bootstrap.checkpoint";

/// `--add-scram` values, Kafka's form: `SCRAM-SHA-256=[name=alice,password=alice-secret]`
/// (with `iterations=N`, 4096 by default; values may be double-quoted), as the credential
/// records they stand for (a random salt each).
pub fn scram_records(values: &[String]) -> Result<Vec<MetadataRecord>, FormatError> {
    use krust_protocol::sasl::{self, Mechanism, SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS};
    let mut out: Vec<MetadataRecord> = Vec::new();
    for v in values {
        let bad = |why: &str| invalid(format!("Invalid --add-scram value: {why}"));
        let (mech, rest) = v
            .split_once('=')
            .ok_or_else(|| bad("expected MECHANISM=[...]"))?;
        let mech = Mechanism::parse(mech.trim())
            .filter(|m| m.scram_type().is_some())
            .ok_or_else(|| bad("the mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512"))?;
        let inner = rest
            .trim()
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| bad("expected the credential in [...]"))?;
        let (mut name, mut password, mut iterations) = (None, None, SCRAM_MIN_ITERATIONS);
        for part in inner.split(',') {
            let (k, val) = part
                .split_once('=')
                .ok_or_else(|| bad("expected key=value"))?;
            let val = val.trim();
            let val = val
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(val);
            match k.trim() {
                "name" => name = Some(val.to_string()),
                "password" => password = Some(val.to_string()),
                "iterations" => {
                    iterations = val
                        .parse()
                        .ok()
                        .filter(|n| (SCRAM_MIN_ITERATIONS..=SCRAM_MAX_ITERATIONS).contains(n))
                        .ok_or_else(|| {
                            bad(&format!(
                                "iterations must be a number from {SCRAM_MIN_ITERATIONS} to \
                                 {SCRAM_MAX_ITERATIONS}"
                            ))
                        })?;
                }
                _ => return Err(bad("krust takes name, password and iterations")),
            }
        }
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("a name is required"))?;
        let password = password
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("a password is required"))?;
        let kind = mech.scram_type().unwrap_or_default();
        let duplicate = out.iter().any(|r| {
            matches!(r, MetadataRecord::UserScramCredential { name: n, mechanism, .. }
                if *n == name && *mechanism == kind)
        });
        if duplicate {
            return Err(bad(&format!("{mech} is given twice for {name}")));
        }
        let salt = sasl::random_salt();
        let salted = sasl::salted_password(mech, password.as_bytes(), &salt, iterations);
        let c = sasl::credential(mech, &salted, &salt, iterations);
        out.push(MetadataRecord::user_scram_credential(&name, kind, &c));
    }
    Ok(out)
}

/// The records `krust storage format` left for the first active controller, if any.
pub fn read_bootstrap(config: &ServerConfig) -> Result<Vec<MetadataRecord>, FormatError> {
    let path = config.metadata_log_dir().join(BOOTSTRAP_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    krust_metadata::records::decode_batches(bytes.into())
        .map(|rs| rs.into_iter().map(|(_, r)| r).collect())
        .map_err(|e| invalid(format!("{} is corrupt: {e}", path.display())))
}

fn invalid(msg: impl Into<String>) -> FormatError {
    FormatError::Invalid(msg.into())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What startup learned from the log directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: i32,
    /// Directory id of every log directory (and the metadata directory).
    pub directory_ids: BTreeMap<PathBuf, String>,
    /// Whether some directory was formatted automatically during this check.
    pub formatted_now: bool,
}

/// The state of one directory.
enum DirState {
    Formatted(MetaProperties),
    /// Missing, or holding nothing but a lock file or `lost+found`.
    Empty,
    /// Present with other content but no `meta.properties`.
    Unformatted,
}

fn inspect(dir: &Path) -> Result<DirState, FormatError> {
    match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::Empty),
        Err(e) => return Err(io_err(dir)(e)),
        Ok(m) if !m.is_dir() => {
            return Err(invalid(format!(
                "Log directory {} exists but is not a directory",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    if let Some(meta) = MetaProperties::read_from_dir(dir)? {
        return Ok(DirState::Formatted(meta));
    }
    let mut entries = fs::read_dir(dir).map_err(io_err(dir))?;
    let has_content = entries.any(|e| match e {
        Ok(e) => {
            let name = e.file_name();
            name != ".lock" && name != "lost+found" && name != "meta.properties.tmp"
        }
        Err(_) => true,
    });
    Ok(if has_content {
        DirState::Unformatted
    } else {
        DirState::Empty
    })
}

/// Every directory to format/check, sorted like Kafka's storage tool does.
fn directories(config: &ServerConfig) -> Vec<PathBuf> {
    let mut dirs = config.all_log_dirs();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn meta_path(dir: &Path) -> PathBuf {
    dir.join(META_PROPERTIES_FILE)
}

fn unformatted_error(dir: &Path) -> FormatError {
    invalid(format!(
        "No `meta.properties` found in {} (have you run `krust storage format` to format the directory?)",
        dir.display()
    ))
}

fn node_id_mismatch(stored: i32, configured: i32, dir: &Path) -> FormatError {
    invalid(format!(
        "Stored node id {stored} doesn't match previous node id {configured} in {}. If you \
         moved your data, make sure your configured node id matches. If you intend to create \
         a new node, you should remove all data in your data directories.",
        meta_path(dir).display()
    ))
}

/// Checks formatted directories against an expected cluster id (the first one found if
/// `None`) and the configured node id; returns the cluster id.
fn verify_formatted(
    formatted: &[(PathBuf, MetaProperties)],
    expected_cluster: Option<&str>,
    node_id: i32,
) -> Result<Option<String>, FormatError> {
    let mut cluster = expected_cluster.map(str::to_string);
    for (dir, meta) in formatted {
        match &cluster {
            None => cluster = Some(meta.cluster_id.clone()),
            Some(c) if *c != meta.cluster_id => {
                return Err(invalid(format!(
                    "Invalid cluster.id in: {}. Expected {c}, but read {}",
                    meta_path(dir).display(),
                    meta.cluster_id
                )))
            }
            Some(_) => {}
        }
        if meta.node_id != node_id {
            return Err(node_id_mismatch(meta.node_id, node_id, dir));
        }
    }
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for (dir, meta) in formatted {
        if let Some(id) = &meta.directory_id {
            if is_reserved_directory_id(id) {
                return Err(invalid(format!(
                    "Invalid directory.id {id} in {}: it is a reserved id",
                    meta_path(dir).display()
                )));
            }
            if let Some(other) = seen.insert(id.as_str(), dir) {
                return Err(invalid(format!(
                    "Duplicate directory ID {id} found. It was the ID of {}, and also {}",
                    other.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(cluster)
}

fn fresh_directory_id(used: &[String]) -> String {
    loop {
        let id = random_directory_id();
        if !used.contains(&id) {
            return id;
        }
    }
}

fn write_meta(dir: &Path, meta: &MetaProperties) -> Result<(), FormatError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    meta.write_to_dir(dir)?;
    Ok(())
}

/// `krust storage format`: writes `meta.properties` to every log directory and the metadata
/// directory. Returns the lines to print.
pub fn format(
    config: &ServerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
    standalone: bool,
    bootstrap: &[MetadataRecord],
) -> Result<Vec<String>, FormatError> {
    if let Err(e) = parse_uuid(cluster_id) {
        return Err(invalid(format!(
            "Cluster ID string {cluster_id} does not appear to be a valid UUID: {}",
            e.reason
        )));
    }
    let static_voters = !config.controller_quorum_voters.is_empty();
    if standalone {
        if !config.is_controller() {
            return Err(invalid("You can only use --standalone on a controller."));
        }
        if static_voters {
            return Err(invalid(
                "You cannot specify controller.quorum.voters and format the node with \
                 --initial-controllers or --standalone. If you want to use dynamic quorum, please \
                 remove controller.quorum.voters and specify controller.quorum.bootstrap.servers \
                 instead.",
            ));
        }
    }
    if config.is_controller() && !static_voters && !standalone {
        return Err(invalid(
            "Because controller.quorum.voters is not set on this controller, you must specify one \
             of the following: --standalone, --initial-controllers, or --no-initial-controllers. \
             (krust supports --standalone only.)",
        ));
    }

    let metadata_dir = config.metadata_log_dir().to_path_buf();
    let mut formatted = Vec::new();
    let mut empty = Vec::new();
    for dir in directories(config) {
        match inspect(&dir)? {
            DirState::Formatted(meta) => formatted.push((dir, meta)),
            DirState::Empty | DirState::Unformatted => empty.push(dir),
        }
    }
    verify_formatted(&formatted, Some(cluster_id), config.node_id)?;
    if let Some((dir, _)) = formatted.first() {
        if !ignore_formatted {
            return Err(invalid(format!(
                "Log directory {} is already formatted. Use --ignore-formatted to ignore this \
                 directory and format the others.",
                dir.display()
            )));
        }
    }
    if empty.is_empty() {
        return Ok(vec![
            "All of the log directories are already formatted.".to_string()
        ]);
    }

    let mut used: Vec<String> = formatted
        .iter()
        .filter_map(|(_, m)| m.directory_id.clone())
        .collect();
    let mut lines = Vec::new();
    for dir in empty {
        let kind = if dir == metadata_dir {
            match (static_voters, standalone) {
                (true, _) => "metadata directory",
                (false, true) => "dynamic metadata voter directory",
                (false, false) => "dynamic metadata directory",
            }
        } else {
            "data directory"
        };
        let directory_id = fresh_directory_id(&used);
        used.push(directory_id.clone());
        let meta = MetaProperties::new(cluster_id, config.node_id, Some(directory_id));
        if dir == metadata_dir && !bootstrap.is_empty() {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let batch = krust_metadata::records::encode_batch(bootstrap, 0)
                .map_err(|e| invalid(format!("cannot encode the bootstrap records: {e}")))?;
            let path = dir.join(BOOTSTRAP_FILE);
            fs::write(&path, &batch).map_err(io_err(&path))?;
        }
        write_meta(&dir, &meta)?;
        lines.push(format!(
            "Formatting {kind} {} with metadata.version {METADATA_VERSION_NAME}.",
            dir.display()
        ));
    }
    Ok(lines)
}

/// Whether this node is a standalone combined node: both roles, and a static quorum whose only
/// voter is itself. Only such a node is formatted automatically at startup.
pub fn is_standalone_node(config: &ServerConfig) -> bool {
    config.is_broker()
        && config.is_controller()
        && config.controller_quorum_voters.len() == 1
        && config.controller_quorum_voters[0].id == config.node_id
}

/// The startup check of every log directory (Kafka's `initializeLogDirs` + ensemble verify),
/// with krust's one convenience: a standalone node whose directories are all missing or
/// empty is formatted with a new cluster id.
pub fn ensure_formatted(config: &ServerConfig) -> Result<Identity, FormatError> {
    let node_id = config.node_id;
    let metadata_dir = config.metadata_log_dir().to_path_buf();
    let dirs = directories(config);
    let mut formatted: Vec<(PathBuf, MetaProperties)> = Vec::new();
    let mut empty: Vec<PathBuf> = Vec::new();
    let mut unformatted: Vec<PathBuf> = Vec::new();
    for dir in &dirs {
        match inspect(dir)? {
            DirState::Formatted(m) => formatted.push((dir.clone(), m)),
            DirState::Empty => empty.push(dir.clone()),
            DirState::Unformatted => unformatted.push(dir.clone()),
        }
    }
    let existing_cluster = verify_formatted(&formatted, None, node_id)?;

    for dir in &dirs {
        if *dir != metadata_dir && dir.join(METADATA_PARTITION_DIR).is_dir() {
            return Err(invalid(format!(
                "Found unexpected metadata location in data directory `{}` (the configured \
                 metadata directory is {}).",
                dir.display(),
                metadata_dir.display()
            )));
        }
    }

    let mut formatted_now = false;
    let cluster_id = match existing_cluster {
        Some(c) if empty.is_empty() && unformatted.is_empty() => c,
        _ => {
            let first_missing = unformatted.first().or(empty.first());
            if !is_standalone_node(config) {
                return Err(first_missing.map_or_else(
                    || invalid("No readable meta.properties files found."),
                    |d| unformatted_error(d),
                ));
            }
            if let Some(d) = unformatted.first() {
                // Something is there that we did not write; never format over it.
                return Err(invalid(format!(
                    "No `meta.properties` found in {} (have you run `krust storage format` to \
                     format the directory?). It is not empty, so krust will not format it \
                     automatically.",
                    d.display()
                )));
            }
            let cluster_id = match existing_cluster {
                None => {
                    let id = random_uuid();
                    tracing::info!(
                        "formatting the storage of this standalone node with new cluster id {id}"
                    );
                    id
                }
                Some(c) => {
                    if empty.contains(&metadata_dir) {
                        return Err(invalid(format!(
                            "No `meta.properties` found in metadata directory {} (have you run \
                             `krust storage format` to format the directory?). The other \
                             directories belong to cluster {c}, so formatting an empty metadata \
                             directory automatically would lose the cluster metadata.",
                            metadata_dir.display()
                        )));
                    }
                    tracing::info!(
                        "formatting new log directories of this standalone node for cluster {c}"
                    );
                    c
                }
            };
            let mut used: Vec<String> = formatted
                .iter()
                .filter_map(|(_, m)| m.directory_id.clone())
                .collect();
            for dir in &empty {
                let id = fresh_directory_id(&used);
                used.push(id.clone());
                let meta = MetaProperties::new(cluster_id.clone(), node_id, Some(id));
                write_meta(dir, &meta)?;
                formatted.push((dir.clone(), meta));
            }
            formatted_now = true;
            cluster_id
        }
    };

    // Give directories without a directory.id one, and write it back.
    let mut used: Vec<String> = formatted
        .iter()
        .filter_map(|(_, m)| m.directory_id.clone())
        .collect();
    let mut directory_ids = BTreeMap::new();
    for (dir, meta) in &mut formatted {
        let id = match &meta.directory_id {
            Some(id) => id.clone(),
            None => {
                let id = fresh_directory_id(&used);
                used.push(id.clone());
                meta.directory_id = Some(id.clone());
                meta.write_to_dir(dir)?;
                tracing::info!("assigned directory.id {id} to {}", dir.display());
                id
            }
        };
        directory_ids.insert(dir.clone(), id);
    }
    Ok(Identity {
        cluster_id,
        node_id,
        directory_ids,
        formatted_now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qk";

    fn cfg(lines: &[String]) -> ServerConfig {
        ServerConfig::load(None, lines).expect("valid config")
    }

    /// A standalone combined node with two data dirs and a separate metadata dir.
    fn standalone(root: &Path) -> ServerConfig {
        cfg(&[
            format!(
                "log.dirs={},{}",
                root.join("d1").display(),
                root.join("d2").display()
            ),
            format!("metadata.log.dir={}", root.join("meta").display()),
        ])
    }

    /// Node 1 of a three-voter quorum, combined roles.
    fn multi_voter(root: &Path) -> ServerConfig {
        cfg(&[
            format!("log.dirs={}", root.join("d1").display()),
            "controller.quorum.voters=1@localhost:9093,2@h2:9093,3@h3:9093".to_string(),
        ])
    }

    fn message(r: Result<impl std::fmt::Debug, FormatError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn add_scram_credentials_reach_the_first_controller() {
        let recs = scram_records(&[
            "SCRAM-SHA-256=[name=alice,password=alice-secret]".to_string(),
            "SCRAM-SHA-512=[name=\"bob\",password=\"b\",iterations=8192]".to_string(),
        ])
        .expect("valid");
        let summary: Vec<(String, i8, i32)> = recs
            .iter()
            .map(|r| match r {
                MetadataRecord::UserScramCredential {
                    name,
                    mechanism,
                    iterations,
                    ..
                } => (name.clone(), *mechanism, *iterations),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [("alice".into(), 1, 4096), ("bob".into(), 2, 8192)]
        );
        for bad in [
            "SCRAM-SHA-256",
            "PLAIN=[name=a,password=b]",
            "SCRAM-SHA-256=name=a,password=b",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[password=b]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=10]",
            "SCRAM-SHA-256=[name=a,password=b,salt=c]",
        ] {
            let e = message(scram_records(&[bad.to_string()]));
            assert!(e.starts_with("Invalid --add-scram value"), "{bad}: {e}");
            assert!(!e.contains("=b"), "{e}");
        }
        let twice = vec!["SCRAM-SHA-256=[name=a,password=b]".to_string(); 2];
        assert!(message(scram_records(&twice)).contains("twice"));

        // Written into the metadata directory by format, read back at startup.
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = standalone(tmp.path());
        assert_eq!(read_bootstrap(&c).expect("none yet"), Vec::new());
        format(&c, CLUSTER, false, false, &recs).expect("format");
        assert_eq!(read_bootstrap(&c).expect("read"), recs);
        std::fs::write(c.metadata_log_dir().join(BOOTSTRAP_FILE), b"garbage").expect("write");
        assert!(message(read_bootstrap(&c)).contains("is corrupt"));
    }

    #[test]
    fn format_writes_every_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = standalone(tmp.path());
        let lines = format(&c, CLUSTER, false, false, &[]).expect("format");
        assert_eq!(
            lines,
            vec![
                format!(
                    "Formatting data directory {} with metadata.version 4.1-IV1.",
                    tmp.path().join("d1").display()
                ),
                format!(
                    "Formatting data directory {} with metadata.version 4.1-IV1.",
                    tmp.path().join("d2").display()
                ),
                format!(
                    "Formatting metadata directory {} with metadata.version 4.1-IV1.",
                    tmp.path().join("meta").display()
                ),
            ]
        );
        let mut ids = Vec::new();
        for d in ["d1", "d2", "meta"] {
            let m = MetaProperties::read_from_dir(&tmp.path().join(d))
                .expect("read")
                .expect("formatted");
            assert_eq!(m.cluster_id, CLUSTER);
            assert_eq!(m.node_id, 1);
            ids.push(m.directory_id.expect("directory id"));
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3);

        let id = ensure_formatted(&c).expect("startup");
        assert_eq!(id.cluster_id, CLUSTER);
        assert!(!id.formatted_now);
        assert_eq!(id.directory_ids.len(), 3);
    }

    #[test]
    fn format_refuses_formatted_dir_unless_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let one = cfg(&[format!("log.dirs={}", tmp.path().join("d1").display())]);
        format(&one, CLUSTER, false, false, &[]).expect("format");
        assert_eq!(
            message(format(&one, CLUSTER, false, false, &[])),
            format!(
                "Log directory {} is already formatted. Use --ignore-formatted to ignore this \
                 directory and format the others.",
                tmp.path().join("d1").display()
            )
        );
        assert_eq!(
            format(&one, CLUSTER, true, false, &[]).expect("ignored"),
            vec!["All of the log directories are already formatted.".to_string()]
        );
        let two = cfg(&[format!(
            "log.dirs={},{}",
            tmp.path().join("d1").display(),
            tmp.path().join("d2").display()
        )]);
        assert!(message(format(&two, CLUSTER, false, false, &[])).contains("already formatted"));
        assert!(
            !tmp.path().join("d2").exists(),
            "a refused run writes nothing"
        );
        let lines = format(&two, CLUSTER, true, false, &[]).expect("format the rest");
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("d2"));
        // A different cluster id conflicts with the directory already formatted.
        let other = random_uuid();
        let e = message(format(&two, &other, true, false, &[]));
        assert!(
            e.starts_with(&format!(
                "Invalid cluster.id in: {}",
                tmp.path().join("d1").join("meta.properties").display()
            )),
            "{e}"
        );
    }

    #[test]
    fn format_rejects_bad_cluster_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = standalone(tmp.path());
        let e = message(format(&c, "my-cluster", false, false, &[]));
        assert!(
            e.starts_with("Cluster ID string my-cluster does not appear to be a valid UUID"),
            "{e}"
        );
    }

    #[test]
    fn format_standalone_rules() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        // Broker-only node.
        let broker = cfg(&[
            "process.roles=broker".to_string(),
            "node.id=2".to_string(),
            "listeners=PLAINTEXT://localhost:9092".to_string(),
            "advertised.listeners=PLAINTEXT://localhost:9092".to_string(),
            format!("log.dirs={}", root.join("b").display()),
        ]);
        assert_eq!(
            message(format(&broker, CLUSTER, false, true, &[])),
            "You can only use --standalone on a controller."
        );
        // Static voters and --standalone do not mix.
        let c = standalone(root);
        assert!(message(format(&c, CLUSTER, false, true, &[]))
            .starts_with("You cannot specify controller.quorum.voters and format the node"));
        // A controller without static voters needs --standalone.
        let dynamic = cfg(&[
            "controller.quorum.voters=".to_string(),
            "controller.quorum.bootstrap.servers=localhost:9093".to_string(),
            format!("log.dirs={}", root.join("dyn").display()),
        ]);
        assert!(
            message(format(&dynamic, CLUSTER, false, false, &[])).starts_with(
                "Because controller.quorum.voters is not set on this controller, you must specify"
            )
        );
        let lines = format(&dynamic, CLUSTER, false, true, &[]).expect("standalone");
        assert_eq!(
            lines,
            vec![format!(
                "Formatting dynamic metadata voter directory {} with metadata.version 4.1-IV1.",
                root.join("dyn").display()
            )]
        );
        // A broker with a dynamic quorum formats without flags.
        let dyn_broker = cfg(&[
            "process.roles=broker".to_string(),
            "node.id=2".to_string(),
            "listeners=PLAINTEXT://localhost:9092".to_string(),
            "advertised.listeners=PLAINTEXT://localhost:9092".to_string(),
            "controller.quorum.voters=".to_string(),
            "controller.quorum.bootstrap.servers=localhost:9093".to_string(),
            format!("log.dirs={}", root.join("dynb").display()),
        ]);
        let lines = format(&dyn_broker, CLUSTER, false, false, &[]).expect("broker");
        assert!(
            lines[0].starts_with("Formatting dynamic metadata directory"),
            "{lines:?}"
        );
    }

    #[test]
    fn ensure_formatted_auto_formats_standalone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = standalone(tmp.path());
        // One dir exists but is empty (apart from lost+found); the others are missing.
        fs::create_dir_all(tmp.path().join("d1").join("lost+found")).expect("mkdir");
        let id = ensure_formatted(&c).expect("auto format");
        assert!(id.formatted_now);
        assert_eq!(id.node_id, 1);
        assert!(parse_uuid(&id.cluster_id).is_ok());
        assert_eq!(id.directory_ids.len(), 3);
        let again = ensure_formatted(&c).expect("second start");
        assert!(!again.formatted_now);
        assert_eq!(again.cluster_id, id.cluster_id);
        assert_eq!(again.directory_ids, id.directory_ids);
    }

    #[test]
    fn ensure_formatted_adds_new_data_dir_to_standalone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let first = cfg(&[
            format!("log.dirs={}", root.join("d1").display()),
            format!("metadata.log.dir={}", root.join("meta").display()),
        ]);
        let id = ensure_formatted(&first).expect("auto format");
        let second = standalone(root);
        let id2 = ensure_formatted(&second).expect("new dir formatted");
        assert!(id2.formatted_now);
        assert_eq!(id2.cluster_id, id.cluster_id);
        assert_eq!(id2.directory_ids.len(), 3);

        // An empty metadata dir next to formatted data dirs is refused.
        let moved = cfg(&[
            format!("log.dirs={}", root.join("d1").display()),
            format!("metadata.log.dir={}", root.join("meta2").display()),
        ]);
        let e = message(ensure_formatted(&moved));
        assert!(
            e.contains("meta2") && e.contains("lose the cluster metadata"),
            "{e}"
        );

        // A non-empty unformatted dir is never formatted automatically.
        fs::create_dir_all(root.join("junk").join("topic-0")).expect("mkdir");
        let junk = cfg(&[
            format!(
                "log.dirs={},{}",
                root.join("d1").display(),
                root.join("junk").display()
            ),
            format!("metadata.log.dir={}", root.join("meta").display()),
        ]);
        let e = message(ensure_formatted(&junk));
        assert!(e.starts_with(&format!(
            "No `meta.properties` found in {}",
            root.join("junk").display()
        )));
    }

    #[test]
    fn ensure_formatted_refuses_unformatted_multi_voter() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = multi_voter(tmp.path());
        assert_eq!(
            message(ensure_formatted(&c)),
            format!(
                "No `meta.properties` found in {} (have you run `krust storage format` to format the directory?)",
                tmp.path().join("d1").display()
            )
        );
        assert!(!tmp.path().join("d1").exists());
        format(&c, CLUSTER, false, false, &[]).expect("format");
        let id = ensure_formatted(&c).expect("formatted");
        assert_eq!(id.cluster_id, CLUSTER);
    }

    #[test]
    fn ensure_formatted_wrong_cluster_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = standalone(tmp.path());
        format(&c, CLUSTER, false, false, &[]).expect("format");
        let other = random_uuid();
        MetaProperties::new(other.clone(), 1, Some(random_directory_id()))
            .write_to_dir(&tmp.path().join("meta"))
            .expect("overwrite");
        assert_eq!(
            message(ensure_formatted(&c)),
            format!(
                "Invalid cluster.id in: {}. Expected {CLUSTER}, but read {other}",
                tmp.path().join("meta").join("meta.properties").display()
            )
        );
    }

    #[test]
    fn ensure_formatted_wrong_node_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = multi_voter(tmp.path());
        format(&c, CLUSTER, false, false, &[]).expect("format");
        let node2 = cfg(&[
            format!("log.dirs={}", tmp.path().join("d1").display()),
            "node.id=2".to_string(),
            "controller.quorum.voters=1@localhost:9093,2@localhost:9093".to_string(),
        ]);
        let e = message(ensure_formatted(&node2));
        assert!(
            e.starts_with("Stored node id 1 doesn't match previous node id 2"),
            "{e}"
        );
    }

    #[test]
    fn ensure_formatted_fills_in_directory_id_and_checks_duplicates() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = standalone(tmp.path());
        for d in ["d1", "d2", "meta"] {
            let dir = tmp.path().join(d);
            fs::create_dir_all(&dir).expect("mkdir");
            MetaProperties::new(CLUSTER, 1, None)
                .write_to_dir(&dir)
                .expect("write");
        }
        let id = ensure_formatted(&c).expect("startup");
        assert!(!id.formatted_now);
        for d in ["d1", "d2", "meta"] {
            let m = MetaProperties::read_from_dir(&tmp.path().join(d))
                .expect("read")
                .expect("present");
            assert_eq!(
                m.directory_id.as_deref(),
                id.directory_ids
                    .get(&tmp.path().join(d))
                    .map(String::as_str)
            );
        }
        let dup = random_directory_id();
        for d in ["d1", "d2"] {
            MetaProperties::new(CLUSTER, 1, Some(dup.clone()))
                .write_to_dir(&tmp.path().join(d))
                .expect("write");
        }
        assert!(message(ensure_formatted(&c)).starts_with(&format!("Duplicate directory ID {dup}")));
    }

    #[test]
    fn ensure_formatted_rejects_metadata_in_data_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let c = standalone(tmp.path());
        format(&c, CLUSTER, false, false, &[]).expect("format");
        fs::create_dir_all(tmp.path().join("d2").join(METADATA_PARTITION_DIR)).expect("mkdir");
        assert!(message(ensure_formatted(&c)).starts_with("Found unexpected metadata location"));
    }
}
