//! The run: whose dumps these are, which good dumps are due, sending each
//! oldest first and checking it arrived, the repository's retention, prune
//! and check, and the record of it all, whatever happened.

use crate::command;
use crate::config::{Config, Destination};
use crate::send::{send, Report};
use chrono::Utc;
use fs2::FileExt;
use jobkit::dumpfile::manifest::{Hashing, Manifest};
use jobkit::dumpfile::{Dump, Location, Stamp};
use jobkit::human::si;
use jobkit::identity::{self, Identity};
use jobkit::record::copy::{
    self, CheckResult, Copied, CopyResult, Newest, Record, RepositoryCheck,
};
use jobkit::restic::{Restic, Snapshot};
use jobkit::{outln, record, Error, Exit, Result};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How often the repository is checked and pruned, at most: once a day,
/// with room for the timer's spread. Each check reads another thirtieth of
/// its data, so that a month reads it all.
const DAILY_SECS: i64 = 20 * 3600;
const CHECK_PARTS: i64 = 30;

pub fn run(config: &Config) -> Result<String> {
    let Some(destination) = &config.destination else {
        return Ok(
            "dump-database-copy: nothing to do: neither COPY_REPOSITORY nor COPY_COMMAND is set"
                .to_owned(),
        );
    };
    let _lock = match &config.result {
        Some(path) => Some(lock(path)?),
        None => None,
    };
    let previous = config
        .result
        .as_deref()
        .and_then(|p| record::read::<Record>(p).ok().flatten());
    let started = Utc::now();
    let clock = Instant::now();
    let mut report = match &previous {
        Some(p) => Report {
            check: p.check.clone(),
            newest: p.newest.clone(),
            sent: p.sent.clone(),
            pruned: p.pruned,
            prune_due: p.prune_due,
            not_ours: p.not_ours.clone(),
            ..Report::default()
        },
        None => Report::default(),
    };
    // Oldest first.
    let due = owned(&config.location)
        .and_then(|()| config.location.good_dumps())
        .map(|mut good| {
            good.reverse();
            good
        });
    let result = due.and_then(|due| {
        // Until the destination says otherwise: what the last run knew.
        let known = report.newest.as_ref().map_or(i64::MIN, |n| n.stamp);
        report.waiting = due
            .iter()
            .filter(|(d, _)| d.stamp.unix_seconds() > known)
            .count() as u64;
        match destination {
            Destination::Restic(r) => to_restic(config, r, due, previous.as_ref(), &mut report),
            Destination::Command(words) => command::run(words, due, &mut report),
        }
    });
    let Some(path) = &config.result else {
        return result;
    };
    let record = Record::new(
        started.timestamp(),
        clock.elapsed().as_secs_f64(),
        if result.is_ok() {
            CopyResult::Copied
        } else {
            CopyResult::Failed
        },
        result.as_ref().err().map(ToString::to_string),
        previous.as_ref(),
        Copied {
            destination: match destination {
                Destination::Restic(_) => copy::DestinationKind::Restic,
                Destination::Command(_) => copy::DestinationKind::Command,
            },
            copied: report.copied,
            newest: report.newest,
            waiting: report.waiting,
            sent: report.sent,
            check: report.check,
            pruned: report.pruned,
            prune_due: report.prune_due,
            not_ours: report.not_ours,
        },
    );
    // The copy's own failure matters more.
    let written = record::write(path, &record, "copy");
    result.and_then(|summary| written.map(|()| summary))
}

/// In a copy unit, refuses the dumps of another unit's job: the one that
/// claimed this DUMP_DIR and DUMP_NAME in their lock file, when it is not
/// this copy's dump unit. Run by hand, it copies what its settings name.
fn owned(location: &Location) -> Result<()> {
    match identity::own_unit()
        .as_deref()
        .and_then(identity::dump_unit_of_copy)
    {
        Some(unit) => identity::check(&location.dir.join(location.names.lock()), &unit),
        None => Ok(()),
    }
}

/// One copy of a job at a time: a lock beside its record.
fn lock(result: &Path) -> Result<File> {
    let mut name = result.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(Exit::CantCreate, "cannot open the lock", &path, &e, ""))?;
    file.try_lock_exclusive().map_err(|_| {
        Error::new(
            Exit::Locked,
            format!(
                "another copy holds {}: it is still running; nothing done",
                path.display()
            ),
        )
    })?;
    Ok(file)
}

fn file_name(dump: &Dump) -> String {
    dump.path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn to_restic(
    config: &Config,
    settings: &crate::config::ResticDestination,
    local: Vec<(Dump, Option<Manifest>)>,
    previous: Option<&Record>,
    report: &mut Report,
) -> Result<String> {
    let identity = Identity::of_this_copy()?.ok_or_else(|| {
        Error::new(
            Exit::NotConfigured,
            "a copy into a restic repository runs in the job's copy unit: its dump unit and \
             this machine's ID tell the job's copies from every other job's and host's; run \
             \"timerapps copy JOB\"",
        )
    })?;
    let restic = Restic::open(
        settings.repository.clone(),
        &config.location.names,
        identity,
    )?;
    let location = restic.location();
    let mut ours = restic.snapshots()?;
    let (adopted, pending) = recognise(&restic, &ours, &local, report)?;
    if adopted > 0 {
        ours = restic.snapshots()?;
    }
    // One stamp per snapshot, as restic counts them, and the dumps not
    // sent yet: only what the repository's retention keeps is sent, or
    // every run would send again what it forgets.
    let held: Vec<Stamp> = ours
        .iter()
        .filter_map(Snapshot::stamp)
        .chain(pending)
        .collect();
    let mut candidates = held.clone();
    for (dump, _) in &local {
        if !candidates.contains(&dump.stamp) {
            candidates.push(dump.stamp);
        }
    }
    let kept = restic.keeps(&candidates, &settings.policy);
    let due: Vec<&(Dump, Option<Manifest>)> = local
        .iter()
        .filter(|(d, _)| !held.contains(&d.stamp) && kept.contains(&d.stamp))
        .collect();
    report.waiting = due.len() as u64;
    for (dump, manifest) in due {
        let sending = Instant::now();
        let sent = restic.backup(&dump.stamp, |to| {
            send(dump, manifest.as_ref(), to).map(|(size, _)| size)
        })?;
        let sent_in = sending.elapsed();
        let reading = Instant::now();
        let expected = manifest.as_ref().and_then(|m| m.content_sha256.clone());
        let problem = if expected.as_ref().is_some_and(|e| *e != sent.sha256) {
            Some(format!(
                "{} decompresses to other bytes than its manifest's content_sha256: the copy \
                 was removed; run \"timerapps verify\"",
                dump.path.display()
            ))
        } else {
            let back = restic.sha256(&sent.id, &dump.stamp)?;
            (back != sent.sha256).then(|| {
                format!(
                    "snapshot {} of {} on {location} read back with SHA-256 {back}, not the \
                     {} sent: the copy was removed; run \"restic check\" on the repository",
                    sent.id,
                    file_name(dump),
                    sent.sha256
                )
            })
        };
        if let Some(problem) = problem {
            restic.forget_ids(&[&sent.id])?;
            return Err(Error::new(Exit::Failure, problem));
        }
        outln!(
            "copied {} to {location} as snapshot {}: {} raw, {} added to the repository, \
             sent in {}, read back and verified in {}",
            file_name(dump),
            sent.id,
            si(sent.size),
            si(sent.added),
            seconds(sent_in),
            seconds(reading.elapsed())
        );
        report.copied.push(file_name(dump));
        report.waiting -= 1;
    }
    match deferred(restic.retain(&settings.policy))? {
        Some(0) => {}
        Some(forgotten) => {
            report.prune_due = true;
            outln!(
                "forgot {forgotten} snapshot(s) of this job's {} beyond COPY_KEEP ({})",
                config.location.names.name(),
                settings.policy
            );
        }
        None => outln!(
            "another restic holds the repository's lock (another host's backup?): COPY_KEEP \
             is applied by the next run"
        ),
    }
    prune(&restic, report)?;
    let newest = restic
        .snapshots()?
        .into_iter()
        .filter_map(|s| s.stamp())
        .max();
    report.newest = newest.map(|stamp| Newest {
        dump: restic.file_name(&stamp),
        stamp: stamp.unix_seconds(),
    });
    let checked = check(&restic, previous, report);
    let copied = report.copied.len();
    checked?;
    Ok(format!(
        "dump-database-copy: {copied} dump(s) copied to {location} and verified; newest copy {}",
        report.newest.as_ref().map_or("none", |n| n.dump.as_str())
    ))
}

/// The snapshots of this job's DUMP_NAME and host made before copies
/// carried an identity, of dumps still here, that this job holds no copy
/// of: each is read back once, and becomes this job's when it holds this
/// dump's bytes; one that holds another job's is left as it is, and
/// remembered. Returns how many became this job's, and the stamps of those
/// that could not be tagged yet (another restic held the lock), which are
/// not sent again.
fn recognise(
    restic: &Restic,
    ours: &[Snapshot],
    local: &[(Dump, Option<Manifest>)],
    report: &mut Report,
) -> Result<(usize, Vec<Stamp>)> {
    let legacy = restic.legacy_snapshots()?;
    report
        .not_ours
        .retain(|id| legacy.iter().any(|s| s.id == *id));
    let mut claimed: Vec<Stamp> = ours.iter().filter_map(Snapshot::stamp).collect();
    let (mut adopted, mut pending) = (0, Vec::new());
    let location = restic.location();
    for snapshot in &legacy {
        let Some(stamp) = snapshot.stamp() else {
            continue;
        };
        let Some((dump, manifest)) = local.iter().find(|(d, _)| d.stamp == stamp) else {
            continue;
        };
        if claimed.contains(&stamp) || report.not_ours.contains(&snapshot.id) {
            continue;
        }
        let mut here = Hashing::new(io::sink());
        send(dump, manifest.as_ref(), &mut here)?;
        if restic.sha256(&snapshot.id, &stamp)? != here.hex() {
            outln!(
                "snapshot {} on {location}, of {} from before copies carried an identity, holds \
                 another job's dump: it is left as it is",
                snapshot.id,
                restic.file_name(&stamp)
            );
            report.not_ours.push(snapshot.id.clone());
            continue;
        }
        claimed.push(stamp);
        match deferred(restic.adopt(&snapshot.id))? {
            Some(()) => {
                adopted += 1;
                outln!(
                    "snapshot {} on {location}, from before copies carried an identity, holds \
                     {}: it is this job's copy of it now",
                    snapshot.id,
                    restic.file_name(&stamp)
                );
            }
            None => {
                pending.push(stamp);
                outln!(
                    "snapshot {} on {location} holds {}: another restic holds the repository's \
                     lock, so it is made this job's by the next run",
                    snapshot.id,
                    restic.file_name(&stamp)
                );
            }
        }
    }
    Ok((adopted, pending))
}

/// Prunes the repository when snapshots were forgotten since it last was,
/// at most once a day: forgetting is cheap, pruning rewrites packs.
fn prune(restic: &Restic, report: &mut Report) -> Result<()> {
    let now = Utc::now().timestamp();
    if !report.prune_due {
        return Ok(());
    }
    if report.pruned.is_some_and(|at| now - at < DAILY_SECS) {
        outln!("the repository was pruned less than a day ago: the next prune removes the data of forgotten snapshots");
        return Ok(());
    }
    match deferred(restic.prune())? {
        Some(()) => {
            report.pruned = Some(now);
            report.prune_due = false;
            outln!(
                "pruned the repository {}: the data of forgotten snapshots is removed",
                restic.location()
            );
        }
        None => outln!(
            "another restic holds the repository's lock (another host's backup?): the prune \
             is made by the next run"
        ),
    }
    Ok(())
}

/// What needs the repository to itself (retention, the check) waits for
/// the next run while another restic holds its lock, as another host's
/// backup into a shared repository does: None then.
fn deferred<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.to_string().contains("already locked") => Ok(None),
        Err(e) => Err(e),
    }
}

/// `4.21 s`: what the benchmark reads off the copy's lines.
fn seconds(d: std::time::Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Checks a part of the repository when the last check is a day old.
fn check(restic: &Restic, previous: Option<&Record>, report: &mut Report) -> Result<()> {
    let now = Utc::now().timestamp();
    let last = previous.and_then(|p| p.check.as_ref());
    if last.is_some_and(|c| now - c.started < DAILY_SECS) {
        return Ok(());
    }
    let subset = format!("{}/{CHECK_PARTS}", now / 86_400 % CHECK_PARTS + 1);
    let result = match deferred(restic.check(&subset)) {
        Ok(Some(())) => Ok(()),
        Ok(None) => {
            outln!(
                "another restic holds the repository's lock (another host's backup?): the \
                 check is made by the next run"
            );
            return Ok(());
        }
        Err(e) => Err(e),
    };
    match &result {
        Ok(()) => outln!(
            "checked the repository {}, reading part {subset} of its data",
            restic.location()
        ),
        Err(e) => outln!("the check of the repository failed: {e}"),
    }
    report.check = Some(RepositoryCheck {
        started: now,
        subset,
        result: if result.is_ok() {
            CheckResult::Passed
        } else {
            CheckResult::Failed
        },
        reason: result.as_ref().err().map(ToString::to_string),
        last_success: if result.is_ok() {
            Some(now)
        } else {
            last.and_then(|c| c.last_success)
        },
    });
    result
}
