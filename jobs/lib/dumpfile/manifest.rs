//! The manifest beside each dump, `NAME-STAMP.EXT[.gz|.zst].manifest.json`:
//! what the run read and stored, the SHA-256 of the stored file, the dump
//! format it recognised and whether the stream was complete, the rows of
//! each table where the stream shows them, and whether the dump is good or
//! suspect. The job writes it before it links the dump, so every dump it
//! published has one; dumps made before manifests existed have none and
//! count as good, unchecked.
//!
//! It is JSON, one object, for people and for `jq`:
//!
//! | field | meaning |
//! |---|---|
//! | `version` | the layout, `1` |
//! | `dump` | the dump's file name |
//! | `form` | `gzip`, `zstd` or `none` |
//! | `read` | bytes the command wrote |
//! | `stored` | bytes of the stored file |
//! | `sha256` | SHA-256 of the stored file, in hex |
//! | `content_sha256` | SHA-256 of the bytes the command wrote, before compression, in hex: what an off-host copy holds; absent in manifests written before it was added |
//! | `format` | `postgresql`, `postgresql-cluster`, `postgresql-custom`, `mariadb`, `sqlite`, or `null` when not recognised or not checked |
//! | `check` | `complete` (the format's end was seen), `header` (custom format: its header was seen; the format has no end to check), `unchecked` (no format recognised) or `off` (`DUMP_CHECK=off`) |
//! | `tables` | `[{"database", "table", "rows"}]` in dump order, or `null` where the stream does not show them; `database` is set in a cluster dump, `rows` is `null` for a table whose rows could not be counted |
//! | `verdict` | `good` or `suspect` |
//! | `reason` | why it is suspect, or who accepted it; `null` otherwise |
//! | `accepted` | when the admin accepted it with `timerapps accept`, RFC 3339; absent otherwise. Later dumps are compared with it and the good dumps after it only |

use super::Form;
pub use crate::family::check::Check;
pub use crate::family::{Format, Table};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

/// The layout written now.
pub const VERSION: u32 = 1;
/// What follows the dump's file name in its manifest's.
pub const SUFFIX: &str = ".manifest.json";
/// The most a manifest may be. Its size grows with the tables: a table's
/// entry is about 100 bytes and its names (each at most 64 characters in
/// PostgreSQL and MariaDB, quoted) at most some 260 more, so 64 MiB holds
/// over 180,000 tables, 600,000 of usual names. The job leaves the table
/// list out of a manifest that would be larger, so that every manifest it
/// writes can be read back; root refuses a larger file unread.
pub const MAX_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub dump: String,
    pub form: Form,
    pub read: u64,
    pub stored: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    pub format: Option<Format>,
    pub check: Check,
    pub tables: Option<Vec<Table>>,
    pub verdict: Verdict,
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Good,
    Suspect,
}

/// A digest as the manifest writes it: lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Passes reads or writes through, taking the SHA-256 of the bytes that
/// went by.
pub struct Hashing<T> {
    inner: T,
    hash: Sha256,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Hashing<T> {
        Hashing {
            inner,
            hash: Sha256::new(),
        }
    }

    /// The SHA-256 of what went by so far, as the manifest writes it.
    pub fn hex(&self) -> String {
        hex(&self.hash.clone().finalize())
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Manifest {
    /// The rows of every table, if the dump shows them all.
    pub fn total_rows(&self) -> Option<u64> {
        self.tables
            .as_ref()?
            .iter()
            .map(|t| t.rows)
            .sum::<Option<u64>>()
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> Result<Manifest, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Leaves the table list out if the manifest would otherwise be larger
    /// than `limit` bytes ([`MAX_BYTES`]); true if it did.
    pub fn fit(&mut self, limit: u64) -> bool {
        if self.to_json().len() as u64 <= limit {
            return false;
        }
        self.tables = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tables: Vec<Table>) -> Manifest {
        Manifest {
            version: VERSION,
            dump: "dump-20261121T101500Z.sql.gz".into(),
            form: Form::Gzip,
            read: 10,
            stored: 4,
            sha256: "ab".into(),
            content_sha256: Some("cd".into()),
            format: Some(crate::family::postgresql::CLUSTER),
            check: Check::Complete,
            tables: Some(tables),
            verdict: Verdict::Suspect,
            reason: None,
            accepted: None,
        }
    }

    #[test]
    fn round_trips_with_documented_names() {
        let m = sample(vec![Table {
            database: Some("shop".into()),
            table: "public.t".into(),
            rows: Some(3),
        }]);
        let json = m.to_json();
        for field in [
            "\"format\": \"postgresql-cluster\"",
            "\"form\": \"gzip\"",
            "\"check\": \"complete\"",
            "\"verdict\": \"suspect\"",
            "\"database\": \"shop\"",
        ] {
            assert!(json.contains(field), "{field} in {json}");
        }
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
        assert_eq!(m.total_rows(), Some(3));
        // A manifest written before content_sha256 existed still reads.
        let old = json.replace("  \"content_sha256\": \"cd\",\n", "");
        assert_ne!(old, json);
        let old = Manifest::from_json(&old).unwrap();
        assert_eq!(old.content_sha256, None);
        assert_eq!(Manifest::from_json(&old.to_json()).unwrap(), old);
        // accepted is written only when set, and read when there.
        assert!(!json.contains("accepted"));
        let mut accepted = m.clone();
        accepted.accepted = Some("2026-12-02T10:15:00+01:00".into());
        let text = accepted.to_json();
        assert!(text.contains("\"accepted\": \"2026-12-02T10:15:00+01:00\""));
        assert_eq!(Manifest::from_slice(text.as_bytes()).unwrap(), accepted);
    }

    #[test]
    fn a_manifest_too_large_to_read_back_loses_its_tables() {
        let table = |i| Table {
            database: None,
            table: format!("public.t{i}"),
            rows: Some(i),
        };
        let mut m = sample((0..1000).map(table).collect());
        let size = m.to_json().len() as u64;
        assert!(!m.fit(size));
        assert!(m.tables.is_some());
        assert!(m.fit(size - 1));
        assert_eq!(m.tables, None);
        assert!(m.to_json().len() < 1000);
    }
}
