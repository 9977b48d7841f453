//! The small JSON records a dump job's companions keep of their last run
//! (in the file their record variable names, `catalogue::Companion`): read
//! by `timerapps status` and the metrics, replaced atomically after every
//! run, mode 0640, since a reason can quote what a failing command printed.
//!
//! Every record is one envelope, [`Record`], the same for every companion:
//!
//! | field | meaning |
//! |---|---|
//! | `version` | the layout, `1` |
//! | `started` | when the run started, Unix seconds |
//! | `seconds` | how long it took |
//! | `result` | the companion's word for success (`passed`, `copied`), or `failed` |
//! | `reason` | why it failed, one line; `null` when it did not |
//! | `last_success` | when the last run that did not fail started, Unix seconds, or `null` |
//!
//! Beside them, in one JSON object, are the companion's own fields
//! ([`Kind`]: `record::drill`, `record::copy`).

pub mod copy;
pub mod drill;

use crate::host::{atomic, safe};
use crate::{Error, Exit, Result};
use serde::de::{DeserializeOwned, Error as _};
pub use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::Debug;
use std::io;
use std::ops::Deref;
use std::path::Path;

/// The layout written now.
pub const VERSION: u32 = 1;

/// What a companion's record holds beside the envelope.
pub trait Kind: Serialize + DeserializeOwned {
    /// How a run ended: success or failure, in the companion's words.
    type Outcome: Outcome;
    /// Every field of the record, the envelope's among them, in the order
    /// a record is written.
    const FIELDS: &'static [&'static str];
    /// Writes its own `field` into `map`.
    fn entry<M: SerializeMap>(
        &self,
        field: &'static str,
        map: &mut M,
    ) -> std::result::Result<(), M::Error>;
}

/// A run's result.
pub trait Outcome: Copy + Eq + Debug + Serialize + DeserializeOwned {
    fn succeeded(self) -> bool;
    /// As the record spells it.
    fn word(self) -> &'static str;
}

/// The envelope's fields.
const ENVELOPE: [&str; 6] = [
    "version",
    "started",
    "seconds",
    "result",
    "reason",
    "last_success",
];

/// A companion's record of its last run: the envelope, and its own part,
/// which the record derefs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<K: Kind> {
    pub version: u32,
    pub started: i64,
    pub seconds: f64,
    pub result: K::Outcome,
    pub reason: Option<String>,
    pub last_success: Option<i64>,
    pub kind: K,
}

impl<K: Kind> Deref for Record<K> {
    type Target = K;
    fn deref(&self) -> &K {
        &self.kind
    }
}

impl<K: Kind> Record<K> {
    /// The record of a run that started at `started` (Unix seconds) and
    /// took `seconds`, ending in `result` (and `reason` when it failed),
    /// after the `previous` run's record: its last success is this run if
    /// it succeeded, else the previous one's.
    pub fn new(
        started: i64,
        seconds: f64,
        result: K::Outcome,
        reason: Option<String>,
        previous: Option<&Record<K>>,
        kind: K,
    ) -> Record<K> {
        let last_success = if result.succeeded() {
            Some(started)
        } else {
            previous.and_then(|p| p.last_success)
        };
        Record {
            version: VERSION,
            started,
            seconds: (seconds * 1000.0).round() / 1000.0,
            result,
            reason,
            last_success,
            kind,
        }
    }

    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.result.succeeded()
    }
}

impl<K: Kind> Serialize for Record<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(K::FIELDS.len()))?;
        for &field in K::FIELDS {
            match field {
                "version" => map.serialize_entry(field, &self.version)?,
                "started" => map.serialize_entry(field, &self.started)?,
                "seconds" => map.serialize_entry(field, &self.seconds)?,
                "result" => map.serialize_entry(field, &self.result)?,
                "reason" => map.serialize_entry(field, &self.reason)?,
                "last_success" => map.serialize_entry(field, &self.last_success)?,
                _ => self.kind.entry(field, &mut map)?,
            }
        }
        map.end()
    }
}

impl<'de, K: Kind> Deserialize<'de> for Record<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut map = serde_json::Map::deserialize(deserializer)?;
        let mut take = |field: &str| map.remove(field).unwrap_or_default();
        fn parse<T: DeserializeOwned, E: serde::de::Error>(
            field: &str,
            v: serde_json::Value,
        ) -> std::result::Result<T, E> {
            serde_json::from_value(v).map_err(|e| E::custom(format!("{field}: {e}")))
        }
        let version = parse("version", take("version"))?;
        let started = parse("started", take("started"))?;
        let seconds = parse("seconds", take("seconds"))?;
        let result = parse("result", take("result"))?;
        let reason = parse("reason", take("reason"))?;
        let last_success = parse("last_success", take("last_success"))?;
        let kind =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Record {
            version,
            started,
            seconds,
            result,
            reason,
            last_success,
            kind,
        })
    }
}

/// Whether every field `record` writes is one of `K`'s [`Kind::FIELDS`],
/// and every envelope field is among them: else a field would be lost.
pub fn lays_out_every_field<K: Kind>(record: &Record<K>) -> bool {
    let own = match serde_json::to_value(&record.kind) {
        Ok(serde_json::Value::Object(own)) => own,
        _ => return false,
    };
    own.keys().all(|k| K::FIELDS.contains(&k.as_str()))
        && ENVELOPE.iter().all(|k| K::FIELDS.contains(k))
}

/// The most a record may be. A record is a few lines and, for a copy, the
/// names of the kept dumps it sent: 16 MiB holds some 150,000 names, more
/// than a century of hourly dumps. Root reads records after every run
/// (`write-metrics`): a larger file, or one that is no regular file, is
/// refused, not read.
pub const MAX_BYTES: u64 = 16 << 20;

/// Records are the job user's and its group's to read.
const MODE: u32 = 0o640;

pub fn to_json(record: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(record).expect("a record serialises");
    text.push('\n');
    text
}

/// The record at `path`; `None` where no run has recorded one yet. It is
/// opened as [`safe::read`] opens a file: never through a symbolic link,
/// a regular file only, at most [`MAX_BYTES`].
pub fn read<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match safe::read(path, MAX_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the record at `path`; a failure says that status and the
/// metrics do not show this run of `what` (`drill`, `copy`).
pub fn write(path: &Path, record: &impl Serialize, what: &str) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let text = to_json(record);
    let written = if text.len() as u64 > MAX_BYTES {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the record would be {} bytes, more than the {MAX_BYTES} that status reads",
                text.len()
            ),
        ))
    } else {
        atomic::replace(dir, name, text.as_bytes(), MODE)
    };
    written.map_err(|e| {
        Error::io(
            Exit::CantCreate,
            &format!("cannot record the {what}'s result in"),
            path,
            &e,
            &format!("status and the metrics do not show this {what}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn records_are_written_0640_and_read_only_as_regular_files() {
        let dir = std::env::temp_dir().join(format!("jobkit-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        write(&path, &vec![1, 2, 3], "drill").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(read::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2, 3]));
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let e = read::<Vec<u32>>(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a symbolic link, which is never followed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
