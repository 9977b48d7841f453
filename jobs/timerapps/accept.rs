//! `accept`: an admin's word that a suspect dump is right (the database
//! really shrank). Its manifest is rewritten as good, so it counts toward
//! retention and later dumps are compared with it.

use crate::dumps;
use crate::jobs::Job;
use crate::systemd::Scope;
use chrono::Local;
use jobkit::dumpfile::manifest::Verdict;
use jobkit::{atomic, outln, Error, Exit, Result};
use std::os::unix::fs::MetadataExt;

/// Makes the newest suspect dump of `job`, or the one named `dump` (its
/// file name), good.
pub fn run(job: &Job, dump: Option<&str>, scope: Scope) -> Result<bool> {
    let location = dumps::location(job, scope, "accept")?;
    let planned = dumps::plan(&location, scope)?;
    let named =
        |p: &&jobkit::retention::Planned| p.dump.path.file_name().and_then(|f| f.to_str()) == dump;
    let target = match dump {
        Some(name) => planned.iter().find(named).ok_or_else(|| {
            Error::new(
                Exit::Failure,
                format!(
                    "no dump named {name} of {} in {}; `timerapps keep {}` lists them",
                    location.names.name(),
                    location.dir.display(),
                    job.name()
                ),
            )
        })?,
        None => planned.iter().find(|p| !p.good()).ok_or_else(|| {
            Error::new(
                Exit::Failure,
                format!(
                    "{} has no suspect dump in {}; nothing to accept",
                    job.name(),
                    location.dir.display()
                ),
            )
        })?,
    };
    let path = target.dump.manifest_path();
    let mut manifest = match &target.manifest {
        Ok(Some(m)) if m.verdict == Verdict::Suspect => m.clone(),
        Ok(_) => {
            outln!("{} is good already", target.dump.path.display());
            return Ok(true);
        }
        Err(e) => {
            return Err(Error::new(
                Exit::Failure,
                format!("cannot read the manifest {}: {e}", path.display()),
            ))
        }
    };
    manifest.verdict = Verdict::Good;
    manifest.reason = Some(format!(
        "accepted with timerapps accept on {}; it was suspect: {}",
        Local::now().format("%Y-%m-%d %H:%M:%S %z"),
        manifest.reason.unwrap_or_default()
    ));
    let failed =
        |e: std::io::Error| Error::io(Exit::Failure, "cannot rewrite the manifest", &path, &e, "");
    // The job's own user must still read and replace it.
    let owner = std::fs::metadata(&target.dump.path).map_err(failed)?;
    let name = path
        .file_name()
        .and_then(|f| f.to_str())
        .expect("manifest names are UTF-8");
    atomic::replace(&location.dir, name, manifest.to_json().as_bytes(), 0o600).map_err(failed)?;
    std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).map_err(failed)?;
    outln!(
        "{} is good now: it counts toward retention, and later dumps are compared with it",
        target.dump.path.display()
    );
    Ok(true)
}
