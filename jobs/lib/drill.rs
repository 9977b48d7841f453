//! What a restore drill records about its last run, for `timerapps status`
//! and the metrics: one small JSON file per dump job (`DRILL_RESULT`, set by
//! the drill's units), replaced atomically after every drill.
//!
//! | field | meaning |
//! |---|---|
//! | `version` | the layout, `1` |
//! | `started` | when the drill started, Unix seconds |
//! | `seconds` | how long it took |
//! | `dump` | the dump's file name, or `null` when there was none to drill |
//! | `format` | the dump's format, as in its manifest, or `null` |
//! | `server` | the server it restored into: `PostgreSQL 17.6`, `MariaDB 10.11.14`, `SQLite 3.40.1` |
//! | `result` | `passed` or `failed` |
//! | `reason` | why it failed, one line; `null` when it passed |
//! | `compared` | whether the manifest held row counts to compare with |
//! | `tables`, `rows` | the tables and rows restored, `null` before the restore finished |
//! | `last_success` | when the last drill that passed started, Unix seconds, or `null` |

use serde::{Deserialize, Serialize};

/// The layout written now.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub started: i64,
    pub seconds: f64,
    pub dump: Option<String>,
    pub format: Option<crate::family::Format>,
    pub server: Option<String>,
    pub result: Outcome,
    pub reason: Option<String>,
    pub compared: bool,
    pub tables: Option<u64>,
    pub rows: Option<u64>,
    pub last_success: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
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
            dump: Some("dump-20261121T101500Z.sql.gz".into()),
            format: Some(crate::family::postgresql::PLAIN),
            server: Some("PostgreSQL 15.14".into()),
            result: Outcome::Failed,
            reason: Some("table public.t: 2 rows restored, 3 in the manifest".into()),
            compared: true,
            tables: Some(1),
            rows: Some(2),
            last_success: None,
        };
        let json = crate::record::to_json(&r);
        for field in ["\"result\": \"failed\"", "\"format\": \"postgresql\""] {
            assert!(json.contains(field), "{field} in {json}");
        }
        let dir = std::env::temp_dir().join(format!("jobkit-drill-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        assert_eq!(crate::record::read::<Record>(&path).unwrap(), None);
        fs::write(&path, &json).unwrap();
        assert_eq!(crate::record::read(&path).unwrap(), Some(r));
        fs::remove_dir_all(&dir).unwrap();
    }
}
