//! A dump job's dumps as `verify`, `keep`, `accept` and `status` see them:
//! where its settings put them, the retention plan that prune also follows,
//! and what to do about a dump whose manifest cannot be trusted.

use crate::jobs::{Settings, TimerJob};
use crate::systemd::{self, Scope};
use chrono::Utc;
use jobkit::dumpfile::plan::Planned;
use jobkit::dumpfile::{Location, Stamp};
use jobkit::retention::Policy;
use jobkit::{Error, Exit, Result};
use std::io;

/// Where `job` keeps its dumps and which it keeps, from its settings.
pub fn location(job: &TimerJob, scope: Scope, command: &str) -> Result<(Location, Policy)> {
    let sd = systemd::connect(scope)?;
    let settings = Settings::of(&sd, job)?;
    if !settings.keeps_dumps {
        return Err(Error::new(
            Exit::Usage,
            format!(
                "{} keeps no dumps; {command} works on the dumps of dump-database jobs",
                job.name()
            ),
        ));
    }
    Ok((Location::from_env(&settings)?, Policy::from_env(&settings)?))
}

/// The job's dumps, newest first, each with the rules that keep it now;
/// none where the directory is not made yet.
pub fn plan(location: &Location, policy: &Policy, scope: Scope) -> Result<Vec<Planned>> {
    let now = Stamp::of(Utc::now());
    match location.plan(policy, &now) {
        // The service makes the directory on its first run: no dumps yet.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        planned => planned,
    }
    .map_err(|e| {
        // A user's own dumps are theirs; the system's are the job user's.
        let hint = if e.kind() == io::ErrorKind::PermissionDenied && scope == Scope::System {
            "run it as root"
        } else {
            ""
        };
        Error::io(
            Exit::Failure,
            "cannot list the dumps in",
            &location.dir,
            &e,
            hint,
        )
    })
}

/// What to do about the untrusted dump `p` of `job`, once it was checked.
pub fn remedy(p: &Planned, job: &TimerJob) -> String {
    format!(
        "if it is the dump you expect, timerapps accept {} {} writes it a new manifest from the \
         dump (its rows cannot be known); or remove it and its manifest by hand",
        job.name(),
        p.dump
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
    )
}

/// The untrusted dump `p` of `job`: why, and what to do.
pub fn untrusted(p: &Planned, job: &TimerJob) -> String {
    format!(
        "{} is untrusted: {}; it is kept, and counts toward no retention rule: check it with \
         timerapps verify {}, then {}",
        p.dump.path.display(),
        p.flaw().map(ToString::to_string).unwrap_or_default(),
        job.name(),
        remedy(p, job)
    )
}
