//! What an off-host copy records about its last run beside the envelope
//! ([`crate::record`]), for `timerapps status` and the metrics. Its
//! `result` is `copied` (every good dump due is in the destination,
//! verified) or `failed`.
//!
//! | field | meaning |
//! |---|---|
//! | `destination` | `restic` (`COPY_REPOSITORY`) or `command` (`COPY_COMMAND`) |
//! | `copied` | the dumps this run copied, oldest first |
//! | `newest` | the newest dump in the destination, `{"dump", "stamp"}` (stamp in Unix seconds), or `null` |
//! | `waiting` | good dumps on this host that are due and not in the destination after the run |
//! | `sent` | `command` only: the stamps of the dumps the command took, of those still on this host |
//! | `check` | the last `restic check`: `{"started", "subset", "result", "reason", "last_success"}`, or `null` |
//! | `pruned` | when the repository was last pruned (`restic prune`, at most once a day), Unix seconds, or `null` |
//! | `prune_due` | whether snapshots were forgotten since, whose data the next prune removes |
//! | `not_ours` | snapshots made before copies carried an identity, of this job's name and host, that hold another job's dump (read back once to tell) |

use crate::record::SerializeMap;
use serde::ser::Error as _;
use serde::{Deserialize, Serialize};

pub use crate::record::VERSION;

/// A copy's record.
pub type Record = crate::record::Record<Copied>;

/// A copy's own part of its record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Copied {
    pub destination: DestinationKind,
    pub copied: Vec<String>,
    pub newest: Option<Newest>,
    pub waiting: u64,
    #[serde(default)]
    pub sent: Vec<String>,
    pub check: Option<RepositoryCheck>,
    #[serde(default)]
    pub pruned: Option<i64>,
    #[serde(default)]
    pub prune_due: bool,
    #[serde(default)]
    pub not_ours: Vec<String>,
}

impl crate::record::Kind for Copied {
    type Outcome = CopyResult;
    const FIELDS: &'static [&'static str] = &[
        "version",
        "started",
        "seconds",
        "destination",
        "result",
        "reason",
        "copied",
        "newest",
        "waiting",
        "last_success",
        "sent",
        "check",
        "pruned",
        "prune_due",
        "not_ours",
    ];

    fn entry<M: SerializeMap>(&self, field: &'static str, map: &mut M) -> Result<(), M::Error> {
        match field {
            "destination" => map.serialize_entry(field, &self.destination),
            "copied" => map.serialize_entry(field, &self.copied),
            "newest" => map.serialize_entry(field, &self.newest),
            "waiting" => map.serialize_entry(field, &self.waiting),
            "sent" => map.serialize_entry(field, &self.sent),
            "check" => map.serialize_entry(field, &self.check),
            "pruned" => map.serialize_entry(field, &self.pruned),
            "prune_due" => map.serialize_entry(field, &self.prune_due),
            "not_ours" => map.serialize_entry(field, &self.not_ours),
            _ => Err(M::Error::custom(format!("a copy's record has no {field}"))),
        }
    }
}

impl crate::record::Outcome for CopyResult {
    fn succeeded(self) -> bool {
        self == CopyResult::Copied
    }

    fn word(self) -> &'static str {
        match self {
            CopyResult::Copied => "copied",
            CopyResult::Failed => "failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    Restic,
    Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyResult {
    Copied,
    Failed,
}

/// The newest dump the destination holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Newest {
    pub dump: String,
    pub stamp: i64,
}

/// A `restic check` of the repository.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepositoryCheck {
    pub started: i64,
    /// `--read-data-subset`, `N/30`.
    pub subset: String,
    pub result: CheckResult,
    pub reason: Option<String>,
    pub last_success: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckResult {
    Passed,
    Failed,
}

impl DestinationKind {
    pub fn word(self) -> &'static str {
        match self {
            DestinationKind::Restic => "restic",
            DestinationKind::Command => "command",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn round_trips_with_documented_names() {
        let r = Record {
            version: VERSION,
            started: 1_790_000_000,
            seconds: 2.5,
            result: CopyResult::Failed,
            reason: Some("restic backup failed".into()),
            last_success: None,
            kind: Copied {
                destination: DestinationKind::Restic,
                copied: vec!["dump-20261121T101500Z.sql.gz".into()],
                newest: Some(Newest {
                    dump: "dump-20261121T101500Z.sql.gz".into(),
                    stamp: 1_790_000_000,
                }),
                waiting: 2,
                sent: Vec::new(),
                check: Some(RepositoryCheck {
                    started: 1_790_000_000,
                    subset: "3/30".into(),
                    result: CheckResult::Passed,
                    reason: None,
                    last_success: Some(1_790_000_000),
                }),
                pruned: Some(1_789_990_000),
                prune_due: true,
                not_ours: vec!["4b18b78f".into()],
            },
        };
        assert!(crate::record::lays_out_every_field(&r));
        let json = crate::record::to_json(&r);
        // As the released package wrote it, field for field.
        assert_eq!(
            json,
            r#"{
  "version": 1,
  "started": 1790000000,
  "seconds": 2.5,
  "destination": "restic",
  "result": "failed",
  "reason": "restic backup failed",
  "copied": [
    "dump-20261121T101500Z.sql.gz"
  ],
  "newest": {
    "dump": "dump-20261121T101500Z.sql.gz",
    "stamp": 1790000000
  },
  "waiting": 2,
  "last_success": null,
  "sent": [],
  "check": {
    "started": 1790000000,
    "subset": "3/30",
    "result": "passed",
    "reason": null,
    "last_success": 1790000000
  },
  "pruned": 1789990000,
  "prune_due": true,
  "not_ours": [
    "4b18b78f"
  ]
}
"#
        );
        let dir = std::env::temp_dir().join(format!("jobkit-copy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        assert_eq!(crate::record::read::<Record>(&path).unwrap(), None);
        fs::write(&path, &json).unwrap();
        assert_eq!(crate::record::read(&path).unwrap(), Some(r));
        fs::remove_dir_all(&dir).unwrap();
    }
}
