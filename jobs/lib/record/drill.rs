//! What a restore drill records about its last run beside the envelope
//! ([`crate::record`]), for `timerapps status` and the metrics. Its
//! `result` is `passed` or `failed`.
//!
//! | field | meaning |
//! |---|---|
//! | `dump` | the dump's file name, or `null` when there was none to drill |
//! | `format` | the dump's format, as in its manifest, or `null` |
//! | `server` | the server it restored into: `PostgreSQL 17.6`, `MariaDB 10.11.14`, `SQLite 3.40.1` |
//! | `compared` | whether the manifest held row counts to compare with |
//! | `tables`, `rows` | the tables and rows restored, `null` before the restore finished |
//! | `empty_roles` | the roles the dump names but does not make, which the drill made empty (a restore on a new host needs them first); `null` where the dump makes its own roles or its server has none |

use crate::record::SerializeMap;
use serde::ser::Error as _;
use serde::{Deserialize, Serialize};

pub use crate::record::VERSION;

/// A drill's record.
pub type Record = crate::record::Record<Drill>;

/// A drill's own part of its record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    pub dump: Option<String>,
    pub format: Option<crate::family::Format>,
    pub server: Option<String>,
    pub compared: bool,
    pub tables: Option<u64>,
    pub rows: Option<u64>,
    /// Absent in the records of earlier versions.
    #[serde(default)]
    pub empty_roles: Option<Vec<String>>,
}

impl crate::record::Kind for Drill {
    type Outcome = DrillResult;
    const FIELDS: &'static [&'static str] = &[
        "version",
        "started",
        "seconds",
        "dump",
        "format",
        "server",
        "result",
        "reason",
        "compared",
        "tables",
        "rows",
        "empty_roles",
        "last_success",
    ];

    fn entry<M: SerializeMap>(&self, field: &'static str, map: &mut M) -> Result<(), M::Error> {
        match field {
            "dump" => map.serialize_entry(field, &self.dump),
            "format" => map.serialize_entry(field, &self.format),
            "server" => map.serialize_entry(field, &self.server),
            "compared" => map.serialize_entry(field, &self.compared),
            "tables" => map.serialize_entry(field, &self.tables),
            "rows" => map.serialize_entry(field, &self.rows),
            "empty_roles" => map.serialize_entry(field, &self.empty_roles),
            _ => Err(M::Error::custom(format!("a drill's record has no {field}"))),
        }
    }
}

impl crate::record::Outcome for DrillResult {
    fn succeeded(self) -> bool {
        self == DrillResult::Passed
    }

    fn word(self) -> &'static str {
        match self {
            DrillResult::Passed => "passed",
            DrillResult::Failed => "failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillResult {
    Passed,
    Failed,
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
            result: DrillResult::Failed,
            reason: Some("table public.t: 2 rows restored, 3 in the manifest".into()),
            last_success: None,
            kind: Drill {
                dump: Some("dump-20261121T101500Z.sql.gz".into()),
                format: Some(crate::family::postgresql::PLAIN),
                server: Some("PostgreSQL 15.14".into()),
                compared: true,
                tables: Some(1),
                rows: Some(2),
                empty_roles: Some(vec!["app".into()]),
            },
        };
        assert!(crate::record::lays_out_every_field(&r));
        let json = crate::record::to_json(&r);
        assert_eq!(
            json,
            r#"{
  "version": 1,
  "started": 1790000000,
  "seconds": 2.5,
  "dump": "dump-20261121T101500Z.sql.gz",
  "format": "postgresql",
  "server": "PostgreSQL 15.14",
  "result": "failed",
  "reason": "table public.t: 2 rows restored, 3 in the manifest",
  "compared": true,
  "tables": 1,
  "rows": 2,
  "empty_roles": [
    "app"
  ],
  "last_success": null
}
"#
        );
        // As the released package wrote it, without empty_roles: read as
        // not known.
        let released = json.replace("  \"empty_roles\": [\n    \"app\"\n  ],\n", "");
        let mut old = r.clone();
        old.kind.empty_roles = None;
        assert_eq!(serde_json::from_str::<Record>(&released).unwrap(), old);
        let dir = std::env::temp_dir().join(format!("jobkit-drill-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        assert_eq!(crate::record::read::<Record>(&path).unwrap(), None);
        fs::write(&path, &json).unwrap();
        assert_eq!(crate::record::read(&path).unwrap(), Some(r));
        fs::remove_dir_all(&dir).unwrap();
    }
}
