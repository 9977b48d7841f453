//! A dump job's dumps as `verify`, `keep` and `accept` see them: where its
//! settings put them, and the retention plan that prune also follows.

use crate::jobs::{Job, Settings};
use crate::systemd::{Scope, Systemd};
use chrono::Utc;
use jobkit::dumpfile::{Location, Stamp};
use jobkit::retention::{self, Planned};
use jobkit::{Error, Exit, Result};
use std::io;

/// Where `job` keeps its dumps and which it keeps, from its settings.
pub fn location(job: &Job, scope: Scope, command: &str) -> Result<Location> {
    let sd = Systemd::connect(scope)?;
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
    Location::from_env(&settings)
}

/// The job's dumps, newest first, each with the rules that keep it now;
/// none where the directory is not made yet.
pub fn plan(location: &Location, scope: Scope) -> Result<Vec<Planned>> {
    let now = Stamp::of(Utc::now());
    match retention::plan(&location.dir, &location.names, &location.policy, &now) {
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
