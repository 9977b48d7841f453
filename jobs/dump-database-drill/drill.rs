//! The drill: the newest good dump, restored into a throwaway server made
//! for it, compared with its manifest, and every trace removed again; its
//! result recorded whatever happened.

use crate::compare;
use crate::config::{Config, Reserve};
use crate::engine::{self, Engine, Finished};
use crate::engines;
use crate::watch::{self, Space, Watch};
use chrono::Utc;
use fs2::FileExt;
use jobkit::dumpfile::manifest::Manifest;
use jobkit::dumpfile::read::{self, Failure};
use jobkit::dumpfile::Dump;
use jobkit::family::{Families, Format};
use jobkit::human::si;
use jobkit::record::drill::{Drill, DrillResult, Record};
use jobkit::{outln, record, Error, Exit, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How much of the decompressed stream is read first, to tell its format
/// and the version that wrote it.
const HEAD: usize = 64 * 1024;

/// What the record says besides the outcome, filled in as the drill goes.
#[derive(Default)]
struct Report {
    dump: Option<String>,
    format: Option<Format>,
    server: Option<String>,
    compared: bool,
    tables: Option<u64>,
    rows: Option<u64>,
    empty_roles: Option<Vec<String>>,
}

pub fn run(config: &Config) -> Result<String> {
    // Before anything is read or recorded: a record written as root would
    // be root's in the job's directory.
    if jobkit::euid() == 0 {
        return Err(Error::new(
            Exit::NoPermission,
            "the drill does not run as root, nor any server or tool it starts: run it as \
             the job's user, as its unit does (timerapps drill JOB)",
        ));
    }
    let started = Utc::now();
    let clock = Instant::now();
    let mut report = Report::default();
    let result = drill(config, &mut report);
    let Some(path) = &config.result else {
        return result;
    };
    let previous: Option<Record> = record::read(path).ok().flatten();
    let passed = result.is_ok();
    let record = Record::new(
        started.timestamp(),
        clock.elapsed().as_secs_f64(),
        if passed {
            DrillResult::Passed
        } else {
            DrillResult::Failed
        },
        result.as_ref().err().map(ToString::to_string),
        previous.as_ref(),
        Drill {
            dump: report.dump,
            format: report.format,
            server: report.server,
            compared: report.compared,
            tables: report.tables,
            rows: report.rows,
            empty_roles: report.empty_roles,
        },
    );
    // The drill's own failure matters more.
    let written = record::write(path, &record, "drill");
    result.and_then(|summary| written.map(|()| summary))
}

fn drill(config: &Config, report: &mut Report) -> Result<String> {
    let location = &config.location;
    let name = location.names.name();
    let (dump, manifest) = newest_good(config)?;
    report.dump = dump
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let head = head(&dump)?;
    let families = Families::default();
    let format = manifest
        .as_ref()
        .and_then(|m| m.format)
        .or_else(|| families.recognise(&head))
        .ok_or_else(|| {
            Error::new(
                Exit::Failure,
                format!(
                    "{} is of no dump format the drill can restore ({})",
                    dump.path.display(),
                    families.tools()
                ),
            )
        })?;
    report.format = Some(format);
    let kind = engines::kind(format, engines::KINDS)?;
    let work = Workspace::open(&config.tmpdir, name)?;
    let raw = manifest
        .as_ref()
        .map_or(dump.size.saturating_mul(5), |m| m.read);
    // And the watch's least margin, at which it would stop the drill.
    let room = work.check_space(
        raw.saturating_mul(2) + kind.overhead + watch::MIN_MARGIN,
        config.reserve,
    )?;
    let mut engine = (kind.start)(&work.dir, format, &head, room.free - room.reserve)?;
    report.server = Some(engine.server());
    let watch = Watch::start(&config.tmpdir, room.free, room.reserve);
    let restored = engine.halt().and_then(|halt| {
        watch.stop_too(halt);
        let size = restore(engine.as_mut(), &dump, manifest.as_ref(), &watch)?;
        Ok((size, engine.inventory()?, engine.empty_roles()?))
    });
    if let Some(short) = watch.end() {
        // The server has had its signal: once its last process is gone,
        // nothing writes in the drill's directory any more.
        let _ = engine.stop();
        drop(engine);
        work.remove()?;
        return Err(short.error(&config.tmpdir, room.reserve, &config.reserve.said()));
    }
    let (size, found, empty_roles) = restored?;
    report.empty_roles = empty_roles;
    let summary = compare::compare(manifest.as_ref().and_then(|m| m.tables.as_deref()), &found)
        .map_err(|e| Error::new(Exit::Failure, e));
    if let Ok(s) = &summary {
        report.compared = s.compared;
    }
    report.tables = Some(summary.as_ref().map_or(found.len() as u64, |s| s.tables));
    report.rows = Some(
        summary
            .as_ref()
            .map_or(found.iter().map(|f| f.rows).sum(), |s| s.rows),
    );
    let summary = summary?;
    engine.stop()?;
    drop(engine);
    work.remove()?;
    Ok(format!(
        "dump-database-drill: restored {} ({}) into {}: {}, {}; {}{}",
        dump.path.display(),
        si(size),
        report.server.as_deref().unwrap_or(""),
        compare::count(summary.tables, "table"),
        compare::count(summary.rows, "row"),
        summary.words,
        roles_said(report.empty_roles.as_deref().unwrap_or_default())
    ))
}

/// How many roles the last line names; the record keeps them all.
const ROLES_SHOWN: usize = 10;

/// What the last line says of the roles the drill made empty: a restore
/// on a new host fails on the first of them until the roles are restored.
/// A server's thousands of roles stay off it: journald splits a line
/// longer than its LineMax=, and `timerapps run` waits for a whole one.
fn roles_said(roles: &[String]) -> String {
    if roles.is_empty() {
        return String::new();
    }
    let mut names: Vec<String> = roles.iter().take(ROLES_SHOWN).map(|r| shown(r)).collect();
    if roles.len() > ROLES_SHOWN {
        names.push(format!("and {} more", roles.len() - ROLES_SHOWN));
    }
    format!(
        "; the dump names {} it does not make, which the drill made empty ({}): \
         back up the roles too (pg_dumpall --globals-only)",
        compare::count(roles.len() as u64, "role"),
        names.join(", ")
    )
}

/// A role's name for the last line: as it is, or quoted and escaped when
/// it holds a control character, so that no name can end the line.
fn shown(role: &str) -> String {
    if role.chars().any(char::is_control) {
        format!("{role:?}")
    } else {
        role.to_owned()
    }
}

/// The newest dump that counts: good by its manifest (or made before
/// manifests), and not named in the future.
fn newest_good(config: &Config) -> Result<(Dump, Option<Manifest>)> {
    let location = &config.location;
    location.good_dumps()?.into_iter().next().ok_or_else(|| {
        Error::new(
            Exit::Failure,
            format!(
                "no good dump of {} in {} to drill",
                location.names.name(),
                location.dir.display()
            ),
        )
    })
}

/// Removes what a killed drill left in `dir`. Its server's last processes
/// may still be writing there as they die, a moment after it: tried again
/// for up to 10 s while files keep appearing.
fn sweep(dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The first bytes of the dump's decompressed stream.
fn head(dump: &Dump) -> Result<Vec<u8>> {
    struct Head(Vec<u8>);
    impl Write for Head {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = HEAD - self.0.len();
            if room == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let n = buf.len().min(room);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut head = Head(Vec::new());
    match read::stream(dump, &mut head) {
        Ok(_) | Err(Failure::Out(_)) => Ok(head.0),
        Err(Failure::Dump(e)) => Err(damaged(dump, &e)),
    }
}

fn damaged(dump: &Dump, e: &io::Error) -> Error {
    Error::new(
        Exit::Failure,
        format!("the dump {} is damaged: {e}", dump.path.display()),
    )
}

/// Streams the dump into the engine's restoring tool; returns the size
/// restored. The dump's own damage is named before the tool's complaint
/// about it.
fn restore(
    engine: &mut dyn Engine,
    dump: &Dump,
    manifest: Option<&Manifest>,
    watch: &Watch,
) -> Result<u64> {
    let mut restore = engine.restore()?;
    match restore.signallers() {
        Ok(tools) => watch.stop_too(tools),
        Err(e) => {
            restore.kill();
            return Err(e);
        }
    }
    let streamed = read::stream(dump, &mut restore.input).and_then(|done| {
        restore.input.flush().map_err(Failure::Out)?;
        Ok(done)
    });
    let refusal = |e: &io::Error| {
        Error::new(
            Exit::Failure,
            format!("refused to restore {}: {e}", dump.path.display()),
        )
    };
    let (size, sha256) = match streamed {
        Err(Failure::Dump(e)) => {
            restore.kill();
            return Err(damaged(dump, &e));
        }
        Err(Failure::Out(e)) if engine::refused(&e) => {
            restore.kill();
            return Err(refusal(&e));
        }
        Err(Failure::Out(e)) => {
            // The tool stopped reading: its own error says why.
            return Err(match restore.finish() {
                Err(Finished::Refused(e)) => refusal(&e),
                Err(Finished::Tool(tool)) => tool,
                Ok(()) => Error::new(
                    Exit::Failure,
                    format!("the restore stopped reading the dump: {e}"),
                ),
            });
        }
        Ok(done) => done,
    };
    if let Some(m) = manifest.filter(|m| m.sha256 != sha256) {
        restore.kill();
        return Err(Error::new(
            Exit::Failure,
            format!(
                "the dump {} is damaged: its SHA-256 is {sha256}, not the {} its manifest \
                 recorded",
                dump.path.display(),
                m.sha256
            ),
        ));
    }
    match restore.finish() {
        Ok(()) => Ok(size),
        Err(Finished::Refused(e)) => Err(refusal(&e)),
        Err(Finished::Tool(e)) => Err(e),
    }
}

/// The space free in DRILL_TMPDIR before the drill began, and the reserve
/// it keeps there, in bytes.
struct Room {
    free: u64,
    reserve: u64,
}

/// The drill's own directory, `DRILL_TMPDIR/timerapps-drill-NAME`, held by
/// a lock beside it. Whatever an earlier drill that was killed left there
/// is removed first.
struct Workspace {
    dir: PathBuf,
    _lock: File,
}

impl Workspace {
    fn open(tmpdir: &Path, name: &str) -> Result<Workspace> {
        let cannot = |what: &str, path: &Path, e: &io::Error| {
            Error::io(
                Exit::CantCreate,
                what,
                path,
                e,
                "set DRILL_TMPDIR to a directory the drill may write (and add it to the \
                 unit's ReadWritePaths= with systemctl edit)",
            )
        };
        let lock_path = tmpdir.join(format!(".timerapps-drill-{name}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| cannot("cannot open the drill's lock", &lock_path, &e))?;
        if lock.try_lock_exclusive().is_err() {
            return Err(Error::new(
                Exit::Locked,
                format!(
                    "another drill of {name} is running (it holds {}); try again when it \
                     has finished",
                    lock_path.display()
                ),
            ));
        }
        let dir = tmpdir.join(format!("timerapps-drill-{name}"));
        if dir.symlink_metadata().is_ok() {
            sweep(&dir)
                .map_err(|e| cannot("cannot remove what an earlier drill left in", &dir, &e))?;
            outln!(
                "removed {}, left by an earlier drill that was killed",
                dir.display()
            );
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| cannot("cannot make the drill's directory", &dir, &e))?;
        Ok(Workspace { dir, _lock: lock })
    }

    /// Checks that the drill's estimate of what it needs fits beside the
    /// reserve; returns the space free and the reserve in bytes.
    fn check_space(&self, needed: u64, reserve: Reserve) -> Result<Room> {
        let space = Space::of(&self.dir).map_err(|e| {
            Error::io(
                Exit::CantCreate,
                "cannot tell the space free in",
                &self.dir,
                &e,
                "",
            )
        })?;
        let room = Room {
            free: space.free,
            reserve: reserve.of(space.total),
        };
        if room.free < needed.saturating_add(room.reserve) {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(Error::new(
                Exit::CantCreate,
                format!(
                    "{} has {} free and the drill needs about {}, and keeps {} free ({}): \
                     set DRILL_TMPDIR to a directory on a larger disk",
                    self.dir.parent().unwrap_or(&self.dir).display(),
                    si(room.free),
                    si(needed),
                    si(room.reserve),
                    reserve.said()
                ),
            ));
        }
        Ok(room)
    }

    /// Removes the directory, waiting for the last files of a server that
    /// was stopped at once.
    fn remove(&self) -> Result<()> {
        sweep(&self.dir).map_err(|e| {
            Error::io(
                Exit::Failure,
                "cannot remove the drill's directory",
                &self.dir,
                &e,
                "",
            )
        })
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_made_empty_are_named_on_one_line() {
        assert_eq!(roles_said(&[]), "");
        let said = roles_said(&[
            "app".into(),
            "Read Only".into(),
            "x\ndump-database-drill: y".into(),
        ]);
        assert_eq!(
            said,
            "; the dump names 3 roles it does not make, which the drill made empty \
             (app, Read Only, \"x\\ndump-database-drill: y\"): back up the roles too \
             (pg_dumpall --globals-only)"
        );
        assert!(!said.contains('\n'));
        let many: Vec<String> = (0..5000).map(|i| format!("role_{i:04}")).collect();
        let said = roles_said(&many);
        assert!(
            said.contains(
                "(role_0000, role_0001, role_0002, role_0003, role_0004, role_0005, \
                 role_0006, role_0007, role_0008, role_0009, and 4990 more)"
            ),
            "{said}"
        );
        assert!(said.len() < 300, "{said}");
    }
}
