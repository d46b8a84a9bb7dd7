//! Kafka-style UUIDs and the `meta.properties` file that names a log directory's cluster,
//! node and directory id.
//!
//! A Kafka UUID is printed as 22 characters of URL-safe base64 without padding. The file is in
//! Java `Properties.store` format: a `#` comment line, a `#<date>` line and `key=value` lines.
//! It is always parsed, never compared byte for byte.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use rand::RngCore;

use crate::config::parse_properties;

/// The file name in every log directory.
pub const META_PROPERTIES_FILE: &str = "meta.properties";
const META_PROPERTIES_TMP: &str = "meta.properties.tmp";

/// `Uuid.ZERO_UUID`; as a directory id it means MIGRATING.
pub const ZERO_UUID: &str = "AAAAAAAAAAAAAAAAAAAAAA";
/// `Uuid.ONE_UUID` (also the metadata topic id); as a directory id it means UNASSIGNED.
pub const ONE_UUID: &str = "AAAAAAAAAAAAAAAAAAAAAQ";
/// The directory id reserved for LOST (2).
pub const LOST_DIRECTORY_ID: &str = "AAAAAAAAAAAAAAAAAAAAAg";

/// A string that is not a Kafka UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a valid Kafka UUID: {reason}")]
pub struct UuidError {
    pub input: String,
    pub reason: String,
}

/// Java's base64 decoder accepts non-zero trailing bits, so this one does too.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Something holding the 16 bytes of a UUID: `[u8; 16]` or `uuid::Uuid`.
pub trait UuidBytes {
    fn uuid_bytes(&self) -> [u8; 16];
}

impl UuidBytes for [u8; 16] {
    fn uuid_bytes(&self) -> [u8; 16] {
        *self
    }
}

impl UuidBytes for uuid::Uuid {
    fn uuid_bytes(&self) -> [u8; 16] {
        *self.as_bytes()
    }
}

/// Prints a UUID (16 bytes or a `uuid::Uuid`) the way Kafka does.
pub fn uuid_to_string(id: &impl UuidBytes) -> String {
    URL_SAFE_NO_PAD.encode(id.uuid_bytes())
}

/// Parses a Kafka UUID string (22 base64url characters) into its 16 bytes.
pub fn parse_uuid(s: &str) -> Result<[u8; 16], UuidError> {
    let fail = |reason: &str| UuidError {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    if s.len() != 22 {
        return Err(fail(&format!(
            "expected 22 characters of URL-safe base64, got {}",
            s.chars().count()
        )));
    }
    let bytes = LENIENT
        .decode(s)
        .map_err(|e| fail(&format!("not URL-safe base64 ({e})")))?;
    bytes
        .try_into()
        .map_err(|_| fail("does not decode to 16 bytes"))
}

/// Parses a Kafka UUID string into a `uuid::Uuid` (as kafka-protocol uses).
pub fn to_uuid(s: &str) -> Result<uuid::Uuid, UuidError> {
    parse_uuid(s).map(uuid::Uuid::from_bytes)
}

/// Prints a `uuid::Uuid` the way Kafka does.
pub fn from_uuid(u: &uuid::Uuid) -> String {
    uuid_to_string(u)
}

/// A fresh random UUID as `Uuid.randomUuid()` makes it: never starting with `-`, never one of
/// the reserved values.
pub fn random_uuid() -> String {
    let mut rng = rand::rng();
    loop {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let s = uuid_to_string(&bytes);
        if !s.starts_with('-') && s != ZERO_UUID && s != ONE_UUID {
            return s;
        }
    }
}

/// Whether `id` is reserved as a directory id (MIGRATING, UNASSIGNED, LOST).
pub fn is_reserved_directory_id(id: &str) -> bool {
    id == ZERO_UUID || id == ONE_UUID || id == LOST_DIRECTORY_ID
}

/// A random directory id that is not reserved.
pub fn random_directory_id() -> String {
    loop {
        let id = random_uuid();
        if !is_reserved_directory_id(&id) {
            return id;
        }
    }
}

/// A problem reading or writing `meta.properties`.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MetaPropertiesError + '_ {
    move |source| MetaPropertiesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The identity stored in a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// Always 1 (KRaft).
    pub version: u32,
    pub cluster_id: String,
    pub node_id: i32,
    pub directory_id: Option<String>,
}

impl MetaProperties {
    /// A version-1 record.
    pub fn new(cluster_id: impl Into<String>, node_id: i32, directory_id: Option<String>) -> Self {
        MetaProperties {
            version: 1,
            cluster_id: cluster_id.into(),
            node_id,
            directory_id,
        }
    }

    /// Parses the file's text. Only version 1 (KRaft) is accepted.
    pub fn parse(text: &str) -> Result<MetaProperties, String> {
        let props = parse_properties(text).map_err(|e| e.to_string())?;
        let get = |k: &str| {
            props
                .iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let version = match get("version") {
            None => 0,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| format!("version '{v}' is not a number"))?,
        };
        if version != 1 {
            return Err(format!(
                "version={version} is the legacy ZooKeeper-mode format; krust supports only \
                 version=1 (KRaft). Format a fresh directory with `krust storage format`"
            ));
        }
        let cluster_id = get("cluster.id")
            .filter(|s| !s.is_empty())
            .ok_or("cluster.id is missing")?
            .to_string();
        let node_id_raw = get("node.id").ok_or("node.id is missing")?;
        let node_id = node_id_raw
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("node.id '{node_id_raw}' is not a non-negative integer"))?;
        let directory_id = match get("directory.id") {
            None | Some("") => None,
            Some(d) => {
                parse_uuid(d).map_err(|e| format!("directory.id: {e}"))?;
                Some(d.to_string())
            }
        };
        Ok(MetaProperties {
            version,
            cluster_id,
            node_id,
            directory_id,
        })
    }

    /// The file content in `Properties.store` layout (keys sorted).
    pub fn to_file_text(&self) -> String {
        let mut s = String::from("#\n#");
        s.push_str(&java_date_now());
        s.push('\n');
        s.push_str(&format!("cluster.id={}\n", self.cluster_id));
        if let Some(d) = &self.directory_id {
            s.push_str(&format!("directory.id={d}\n"));
        }
        s.push_str(&format!("node.id={}\n", self.node_id));
        s.push_str(&format!("version={}\n", self.version));
        s
    }

    /// Reads `<dir>/meta.properties`; `Ok(None)` if the file does not exist.
    pub fn read_from_dir(dir: &Path) -> Result<Option<MetaProperties>, MetaPropertiesError> {
        let path = dir.join(META_PROPERTIES_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let text = String::from_utf8_lossy(&bytes);
        MetaProperties::parse(&text)
            .map(Some)
            .map_err(|message| MetaPropertiesError::Invalid { path, message })
    }

    /// Writes `<dir>/meta.properties` atomically: temp file, fsync, rename, fsync of the dir.
    pub fn write_to_dir(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        let tmp = dir.join(META_PROPERTIES_TMP);
        let path = dir.join(META_PROPERTIES_FILE);
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(self.to_file_text().as_bytes())
                .map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        // Make the rename durable; some platforms cannot fsync a directory, which is fine.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The current UTC time as Java's `Date.toString()` prints it, e.g.
/// `Thu Jan 01 00:00:00 UTC 2025`.
fn java_date_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    java_date(secs)
}

fn java_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        h,
        m,
        s,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_format() {
        for _ in 0..200 {
            let u = random_uuid();
            assert_eq!(u.len(), 22);
            assert!(!u.starts_with('-'));
            assert!(u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            let bytes = parse_uuid(&u).expect("round trip");
            assert_eq!(uuid_to_string(&bytes), u);
            assert_eq!(from_uuid(&to_uuid(&u).expect("uuid")), u);
        }
        assert_eq!(uuid_to_string(&[0u8; 16]), ZERO_UUID);
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(uuid_to_string(&one), ONE_UUID);
        one[15] = 2;
        assert_eq!(uuid_to_string(&one), LOST_DIRECTORY_ID);
        assert!(is_reserved_directory_id(ZERO_UUID));
        assert!(!is_reserved_directory_id(&random_directory_id()));
    }

    #[test]
    fn uuid_parse_errors() {
        assert!(parse_uuid("").is_err());
        assert!(parse_uuid("abc").is_err());
        assert!(parse_uuid("AAAAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(parse_uuid("AAAAAAAAAAAAAAAAAAAA*A").is_err());
        let e = parse_uuid("my-cluster").expect_err("too short");
        assert!(e.to_string().contains("my-cluster"), "{e}");
        // Known id from Kafka's docs.
        assert!(parse_uuid("MkU3OEVBNTcwNTJENDM2Qk").is_ok());
        let u = uuid::Uuid::from_bytes([7u8; 16]);
        assert_eq!(to_uuid(&from_uuid(&u)).expect("uuid"), u);
        assert_eq!(uuid_to_string(&u), uuid_to_string(&[7u8; 16]));
    }

    #[test]
    fn java_date_format() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_735_689_600), "Wed Jan 01 00:00:00 UTC 2025");
        assert_eq!(
            java_date(951_782_400 + 3661),
            "Tue Feb 29 01:01:01 UTC 2000"
        );
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(MetaProperties::read_from_dir(dir.path())
            .expect("read")
            .is_none());
        let m = MetaProperties::new(random_uuid(), 3, Some(random_directory_id()));
        m.write_to_dir(dir.path()).expect("write");
        assert!(!dir.path().join("meta.properties.tmp").exists());
        let text = fs::read_to_string(dir.path().join(META_PROPERTIES_FILE)).expect("text");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#");
        assert!(lines[1].starts_with('#') && lines[1].contains("UTC"));
        assert!(lines.contains(&"version=1"));
        assert!(lines.contains(&"node.id=3"));
        assert_eq!(
            MetaProperties::read_from_dir(dir.path()).expect("read"),
            Some(m)
        );
    }

    #[test]
    fn parse_variants() {
        let m = MetaProperties::parse(
            "#comment\nnode.id=2\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n",
        )
        .expect("parse");
        assert_eq!(m.node_id, 2);
        assert_eq!(m.directory_id, None);
        let legacy =
            MetaProperties::parse("version=0\nbroker.id=1\ncluster.id=x\n").expect_err("legacy");
        assert!(legacy.contains("version=1"), "{legacy}");
        assert!(MetaProperties::parse("cluster.id=x\nnode.id=1").is_err());
        assert!(MetaProperties::parse("version=1\nnode.id=1").is_err());
        assert!(MetaProperties::parse("version=1\ncluster.id=x\nnode.id=-1").is_err());
        assert!(
            MetaProperties::parse("version=1\ncluster.id=x\nnode.id=1\ndirectory.id=bad").is_err()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(META_PROPERTIES_FILE), "version=7\n").expect("write");
        let e = MetaProperties::read_from_dir(dir.path()).expect_err("invalid");
        assert!(e.to_string().contains("meta.properties"), "{e}");
    }
}
