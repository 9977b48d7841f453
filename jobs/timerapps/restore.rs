//! `restore JOB [--offsite] [STAMP]`: a dump's contents, as the dump
//! command wrote them, on standard output, for `psql`, `mariadb`,
//! `sqlite3` or a file: a kept dump (the newest good one, or STAMP's) read
//! back with its checksums and its manifest's SHA-256 checked, or, with
//! `--offsite`, its copy read back from the job's restic repository, with
//! the password and keys the copy units use.

use crate::dumps;
use crate::jobs::{parse_env_file, Job, Settings};
use crate::systemd::{Scope, Systemd};
use jobkit::dumpfile::{read, Stamp};
use jobkit::identity::Identity;
use jobkit::manifest::{keys_file, password_file};
use jobkit::restic::{Repository, Restic};
use jobkit::{errln, Error, Exit, Result};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

pub fn run(job: &Job, offsite: bool, stamp: Option<&str>, scope: Scope) -> Result<bool> {
    let stamp = stamp
        .map(|s| {
            Stamp::parse(s).ok_or_else(|| {
                Error::new(
                    Exit::Usage,
                    format!(
                        "{s:?} is not a dump's stamp: expected YYYYMMDDTHHMMSSZ, as in its name"
                    ),
                )
            })
        })
        .transpose()?;
    if io::stdout().is_terminal() {
        return Err(Error::new(
            Exit::Usage,
            "restore writes the dump to standard output: pipe it into psql, mariadb or \
             sqlite3, or redirect it to a file",
        ));
    }
    let mut out = io::stdout().lock();
    if offsite {
        from_repository(job, stamp.as_ref(), scope, &mut out)?;
    } else {
        from_host(job, stamp.as_ref(), scope, &mut out)?;
    }
    out.flush().map_err(|e| {
        Error::new(
            Exit::Failure,
            format!("cannot write the dump to standard output: {e}"),
        )
    })?;
    Ok(true)
}

/// A kept dump: the newest good one, or the one stamped `stamp`.
fn from_host(job: &Job, stamp: Option<&Stamp>, scope: Scope, out: &mut dyn Write) -> Result<()> {
    let location = dumps::location(job, scope, "restore")?;
    let planned = dumps::plan(&location, scope)?;
    let chosen = match stamp {
        Some(stamp) => planned.iter().find(|p| p.dump.stamp == *stamp),
        None => planned.iter().find(|p| p.good()),
    };
    let Some(p) = chosen else {
        return Err(Error::new(
            Exit::Failure,
            format!(
                "no {} of {} in {}; \"timerapps keep {}\" lists them",
                match stamp {
                    Some(s) => format!("dump stamped {s}"),
                    None => "good dump".to_owned(),
                },
                location.names.name(),
                location.dir.display(),
                job.name()
            ),
        ));
    };
    if !p.good() {
        errln!(
            "{} is suspect: restoring it as asked",
            p.dump.path.display()
        );
    }
    errln!("restoring {}", p.dump.path.display());
    let (_, sha256) = read::stream(&p.dump, out).map_err(|e| {
        Error::new(
            Exit::Failure,
            format!("cannot restore {}: {e}", p.dump.path.display()),
        )
    })?;
    match p.manifest.as_ref().ok().and_then(Option::as_ref) {
        Some(m) if m.sha256 != sha256 => Err(Error::new(
            Exit::Failure,
            format!(
                "{} is damaged: its SHA-256 is {sha256}, not the {} its manifest recorded; what \
                 was written is not the dump: restore an older dump, or its off-host copy \
                 (--offsite)",
                p.dump.path.display(),
                m.sha256
            ),
        )),
        _ => Ok(()),
    }
}

/// The job's copy in its repository: the newest, or the one of the dump
/// stamped `stamp`.
fn from_repository(
    job: &Job,
    stamp: Option<&Stamp>,
    scope: Scope,
    out: &mut dyn Write,
) -> Result<()> {
    if scope == Scope::User {
        return Err(Error::new(
            Exit::Usage,
            "off-host copies are made in the system's manager only",
        ));
    }
    let location = dumps::location(job, scope, "restore")?;
    let settings = Settings::of(&Systemd::connect(scope)?, job)?;
    let Some(url) = jobkit::config::non_empty(&settings, "COPY_REPOSITORY")? else {
        return Err(Error::new(
            Exit::NotConfigured,
            format!(
                "{} has no COPY_REPOSITORY: set it in {} to copy its dumps off the host",
                job.name(),
                settings.file_to_edit()
            ),
        ));
    };
    let mut repository = Repository::from_env(&settings, url)?;
    repository.password_file = Some(PathBuf::from(password_file(job.name())));
    if let Ok(text) = std::fs::read_to_string(keys_file(job.name())) {
        repository.env = parse_env_file(&text);
    }
    // This job's copies only: by this machine's ID and the job's unit.
    let identity = Identity::of(&job.service())?;
    let restic = Restic::open(repository, &location.names, identity)?;
    let Some((stamp, snapshot)) = restic.copy_of(stamp)? else {
        return Err(Error::new(
            Exit::Failure,
            format!(
                "no copy of {}{} of {} in {}; \"restic snapshots --tag timerapps\" lists what \
                 is there (copies made before they carried the job's identity are this job's \
                 only once a copy run recognised them)",
                location.names.name(),
                stamp.map(|s| format!(" stamped {s}")).unwrap_or_default(),
                job.service(),
                restic.location()
            ),
        ));
    };
    errln!(
        "restoring {} from snapshot {} in {}",
        restic.file_name(&stamp),
        snapshot.id,
        restic.location()
    );
    restic.dump(&snapshot.id, &stamp, out).map(drop)
}
