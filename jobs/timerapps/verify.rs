//! `verify`: each kept dump of a job decompressed end to end, or read to
//! its end where it is kept as the command wrote it, and its SHA-256
//! compared with its manifest's. A dump whose manifest cannot be trusted
//! is read all the same, and is not called intact.

use crate::dumps;
use crate::jobs::TimerJob;
use crate::systemd::Scope;
use jobkit::dumpfile::{read, Flaw, Form};
use jobkit::human::si;
use jobkit::{outln, Error, Exit, Result};
use std::io;

/// Prints a line per dump, newest first; true if every one is intact and
/// there is at least one. A manifest that could not be read, and no dump
/// found damaged, is an error of its own: it could not tell (exit 3).
pub fn run(job: &TimerJob, scope: Scope) -> Result<bool> {
    let (location, policy) = dumps::location(job, scope, "verify")?;
    let planned = dumps::plan(&location, &policy, scope)?;
    if planned.is_empty() {
        outln!(
            "{}: no dumps yet of {} in {}",
            job.name(),
            location.names.name(),
            location.dir.display()
        );
        return Ok(false);
    }
    let mut intact = true;
    let mut unreadable = Vec::new();
    for p in &planned {
        let dump = &p.dump;
        let manifest = p.manifest();
        let suspect = if p.suspect() { "; suspect" } else { "" };
        let result = read::stream(dump, &mut io::sink())
            .map_err(|e| e.to_string())
            .and_then(|(size, sha256)| match manifest {
                Some(m) if m.sha256 != sha256 => Err(format!(
                    "its SHA-256 is {sha256}, not the {} its manifest recorded when it was written",
                    m.sha256
                )),
                _ => Ok(size),
            });
        let hashed = if manifest.is_some() {
            ", SHA-256 as in its manifest"
        } else {
            ", no manifest (made before manifests)"
        };
        match (result, p.flaw()) {
            (Err(e), _) => {
                intact = false;
                outln!("DAMAGED  {}: {e}", dump.path.display());
            }
            (Ok(size), Some(flaw)) => {
                if let Flaw::Unreadable(_) = flaw {
                    unreadable.push(flaw.to_string());
                } else {
                    intact = false;
                }
                outln!(
                    "UNTRUSTED {}  {}, read to its end, but {flaw}: there is nothing to hold it \
                     to; {}",
                    dump.path.display(),
                    si(size),
                    dumps::remedy(p, job)
                );
            }
            (Ok(size), None) if dump.form == Form::None => outln!(
                "ok       {}  {}, read to its end{hashed}{suspect}; kept as the command \
                 wrote it, so there is no checksum of its own to check: check it with the \
                 tool that reads it",
                dump.path.display(),
                si(size)
            ),
            (Ok(size), None) => outln!(
                "ok       {}  {} → {}{hashed}{suspect}",
                dump.path.display(),
                si(dump.size),
                si(size)
            ),
        }
    }
    if intact && !unreadable.is_empty() {
        return Err(Error::new(
            Exit::Unknown,
            format!(
                "could not tell whether every dump is as it was written: {}",
                unreadable.join("; ")
            ),
        ));
    }
    Ok(intact)
}
