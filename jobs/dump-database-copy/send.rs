//! What every destination shares: a dump sent only after its checksums and
//! its manifest's SHA-256 are checked on the way, and the run's report that
//! the record is made from.

use jobkit::dumpfile::manifest::Manifest;
use jobkit::dumpfile::read::{self, Failure};
use jobkit::dumpfile::Dump;
use jobkit::record::copy::{Newest, RepositoryCheck};
use jobkit::{Error, Exit, Result};
use std::io::Write;

/// What the record says besides the outcome, filled in as the run goes.
#[derive(Default)]
pub struct Report {
    pub copied: Vec<String>,
    pub newest: Option<Newest>,
    pub waiting: u64,
    pub sent: Vec<String>,
    pub check: Option<RepositoryCheck>,
    pub pruned: Option<i64>,
    pub prune_due: bool,
    pub not_ours: Vec<String>,
}

/// Streams `dump` decompressed into `to`, its checksums and its
/// manifest's SHA-256 checked on the way; a dump that fails them is not
/// taken for a copy. Returns the size sent and the stored file's SHA-256.
pub fn send(dump: &Dump, manifest: Option<&Manifest>, to: &mut dyn Write) -> Result<(u64, String)> {
    let damaged = |what: String| {
        Error::new(
            Exit::Failure,
            format!(
                "cannot copy {}: {what}; it was not copied, run \"timerapps verify\"",
                dump.path.display()
            ),
        )
    };
    let (size, sha256) = read::stream(dump, to).map_err(|failure| match failure {
        Failure::Dump(e) => damaged(e.to_string()),
        Failure::Out(e) => Error::new(
            Exit::Failure,
            format!("the copy stopped taking {}: {e}", dump.path.display()),
        ),
    })?;
    match manifest {
        Some(m) if m.sha256 != sha256 => Err(damaged(format!(
            "its SHA-256 is {sha256}, its manifest says {}",
            m.sha256
        ))),
        _ => Ok((size, sha256)),
    }
}
