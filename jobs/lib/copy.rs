//! What an off-host copy records about its last run, for `timerapps status`
//! and the metrics: one small JSON file per dump job (`COPY_RESULT`, set by
//! the copy's units), replaced atomically after every run.
//!
//! | field | meaning |
//! |---|---|
//! | `version` | the layout, `1` |
//! | `started` | when the run started, Unix seconds |
//! | `seconds` | how long it took |
//! | `destination` | `restic` (`COPY_REPOSITORY`) or `command` (`COPY_COMMAND`) |
//! | `result` | `copied` (every good dump due is in the destination, verified) or `failed` |
//! | `reason` | why it failed, one line; `null` when it did not |
//! | `copied` | the dumps this run copied, oldest first |
//! | `newest` | the newest dump in the destination, `{"dump", "stamp"}` (stamp in Unix seconds), or `null` |
//! | `waiting` | good dumps on this host that are due and not in the destination after the run |
//! | `last_success` | when the last run that did not fail started, Unix seconds, or `null` |
//! | `sent` | `command` only: the stamps of the dumps the command took, of those still on this host |
//! | `check` | the last `restic check`: `{"started", "subset", "result", "reason", "last_success"}`, or `null` |
//! | `pruned` | when the repository was last pruned (`restic prune`, at most once a day), Unix seconds, or `null` |
//! | `prune_due` | whether snapshots were forgotten since, whose data the next prune removes |
//! | `not_ours` | snapshots made before copies carried an identity, of this job's name and host, that hold another job's dump (read back once to tell) |

use serde::{Deserialize, Serialize};

/// The layout written now.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub started: i64,
    pub seconds: f64,
    pub destination: Destination,
    pub result: Outcome,
    pub reason: Option<String>,
    pub copied: Vec<String>,
    pub newest: Option<Newest>,
    pub waiting: u64,
    pub last_success: Option<i64>,
    #[serde(default)]
    pub sent: Vec<String>,
    pub check: Option<Check>,
    #[serde(default)]
    pub pruned: Option<i64>,
    #[serde(default)]
    pub prune_due: bool,
    #[serde(default)]
    pub not_ours: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    Restic,
    Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
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
pub struct Check {
    pub started: i64,
    /// `--read-data-subset`, `N/30`.
    pub subset: String,
    pub result: CheckOutcome,
    pub reason: Option<String>,
    pub last_success: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    Passed,
    Failed,
}

impl Destination {
    pub fn word(self) -> &'static str {
        match self {
            Destination::Restic => "restic",
            Destination::Command => "command",
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
            destination: Destination::Restic,
            result: Outcome::Failed,
            reason: Some("restic backup failed".into()),
            copied: vec!["dump-20261121T101500Z.sql.gz".into()],
            newest: Some(Newest {
                dump: "dump-20261121T101500Z.sql.gz".into(),
                stamp: 1_790_000_000,
            }),
            waiting: 2,
            last_success: None,
            sent: Vec::new(),
            check: Some(Check {
                started: 1_790_000_000,
                subset: "3/30".into(),
                result: CheckOutcome::Passed,
                reason: None,
                last_success: Some(1_790_000_000),
            }),
            pruned: Some(1_789_990_000),
            prune_due: true,
            not_ours: vec!["4b18b78f".into()],
        };
        let json = crate::record::to_json(&r);
        for field in [
            "\"result\": \"failed\"",
            "\"destination\": \"restic\"",
            "\"subset\": \"3/30\"",
            "\"result\": \"passed\"",
            "\"prune_due\": true",
        ] {
            assert!(json.contains(field), "{field} in {json}");
        }
        let dir = std::env::temp_dir().join(format!("jobkit-copy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        assert_eq!(crate::record::read::<Record>(&path).unwrap(), None);
        fs::write(&path, &json).unwrap();
        assert_eq!(crate::record::read(&path).unwrap(), Some(r));
        fs::remove_dir_all(&dir).unwrap();
    }
}
