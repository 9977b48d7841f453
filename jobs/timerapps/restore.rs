//! `restore JOB [--offsite] [STAMP]`: a dump's contents, as the dump
//! command wrote them, on standard output, for `psql`, `mariadb`,
//! `sqlite3` or a file: a kept dump (the newest good one, or STAMP's) read
//! back with its checksums and its manifest's SHA-256s checked, or, with
//! `--offsite`, its copy read back from the job's restic repository, with
//! the password and keys the copy units use.
//!
//! Nothing reaches standard output before the whole dump is verified: the
//! contents wait in a [`Spool`], a file without a name in `TMPDIR`
//! (`/var/tmp` by default, on disk where `/tmp` may be in memory), and go
//! out from there once every check has passed. Reading the dump twice
//! instead (a check, then the output) would need no room, but what went
//! out would be a second read of a file that the job's user owns, so it
//! would be checked only after it had gone into production; and a copy off
//! the host would be downloaded twice. The spool is written once, by root,
//! and nobody else can open it.

use crate::dumps;
use crate::jobs::{parse_env_file, Settings, TimerJob};
use crate::systemd::{self, Scope};
use jobkit::catalogue::{keys_file, password_file};
use jobkit::config::{self, Environment};
use jobkit::dumpfile::manifest::{Hashing, Manifest};
use jobkit::dumpfile::plan::Trust;
use jobkit::dumpfile::{read, Stamp};
use jobkit::human::si;
use jobkit::identity::Identity;
use jobkit::restic::{Repository, Restic};
use jobkit::{errln, Error, Exit, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub fn run(job: &TimerJob, offsite: bool, stamp: Option<&str>, scope: Scope) -> Result<bool> {
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
    let mut spool = Spool::new(&config::absolute_path(&Environment, "TMPDIR", "/var/tmp")?)?;
    if offsite {
        from_repository(job, stamp.as_ref(), scope, &mut spool)?;
    } else {
        from_host(job, stamp.as_ref(), scope, &mut spool)?;
    }
    spool.into_stdout()?;
    Ok(true)
}

/// A kept dump, the newest good one or the one stamped `stamp`, into
/// `spool`, verified.
fn from_host(job: &TimerJob, stamp: Option<&Stamp>, scope: Scope, spool: &mut Spool) -> Result<()> {
    let (location, policy) = dumps::location(job, scope, "restore")?;
    let planned = dumps::plan(&location, &policy, scope)?;
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
    if p.flaw().is_some() {
        // Its SHA-256 is unknown: nothing could show that it is the dump.
        return Err(Error::new(
            Exit::Failure,
            format!("{}; nothing was written", dumps::untrusted(p, job)),
        ));
    }
    let path = p.dump.path.display();
    if p.suspect() {
        errln!("{path} is suspect: restoring it as asked");
    }
    let manifest = p.manifest();
    if let Some(m) = manifest {
        spool.reserve(m.read)?;
    }
    errln!("verifying {path}");
    let mut contents = Hashing::new(&mut *spool);
    let (_, sha256) = read::stream(&p.dump, &mut contents).map_err(|e| {
        Error::new(
            Exit::Failure,
            match e {
                read::Failure::Dump(e) => format!(
                    "{path} is damaged or cannot be read: {e}; nothing was written: restore an \
                     older dump, or its off-host copy (--offsite)"
                ),
                read::Failure::Out(e) => format!("cannot restore {path}: {e}; nothing was written"),
            },
        )
    })?;
    let content_sha256 = contents.hex();
    let Some(m) = manifest else {
        errln!(
            "{path} has no manifest: its SHA-256 cannot be checked, only its form's own checksums"
        );
        return Ok(());
    };
    let damaged = |what: &str, found: &str, recorded: &str| {
        Error::new(
            Exit::Failure,
            format!(
                "{path} is damaged: the SHA-256 of its {what} is {found}, not the {recorded} its \
                 manifest recorded; nothing was written: restore an older dump, or its \
                 off-host copy (--offsite)"
            ),
        )
    };
    if m.sha256 != sha256 {
        return Err(damaged("file", &sha256, &m.sha256));
    }
    match &m.content_sha256 {
        Some(recorded) if *recorded != content_sha256 => {
            Err(damaged("contents", &content_sha256, recorded))
        }
        _ => Ok(()),
    }
}

/// The job's copy in its repository, the newest or the one of the dump
/// stamped `stamp`, into `spool`: restic checks every blob it reads, and
/// the contents are held to the dump's manifest while it is still kept.
fn from_repository(
    job: &TimerJob,
    stamp: Option<&Stamp>,
    scope: Scope,
    spool: &mut Spool,
) -> Result<()> {
    if scope == Scope::User {
        return Err(Error::new(
            Exit::Usage,
            "off-host copies are made in the system's manager only",
        ));
    }
    let (location, _) = dumps::location(job, scope, "restore")?;
    let settings = Settings::of(&systemd::connect(scope)?, job)?;
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
    let kept = kept_manifest(&location, &stamp);
    if let Some(m) = &kept {
        spool.reserve(m.read)?;
    }
    errln!(
        "verifying {} from snapshot {} in {}",
        restic.file_name(&stamp),
        snapshot.id,
        restic.location()
    );
    let mut contents = Hashing::new(&mut *spool);
    restic
        .dump(&snapshot.id, &stamp, &mut contents)
        .map_err(|e| Error::new(e.exit(), format!("{e}; nothing was written")))?;
    let content_sha256 = contents.hex();
    match kept.and_then(|m| m.content_sha256) {
        Some(recorded) if recorded != content_sha256 => Err(Error::new(
            Exit::Failure,
            format!(
                "the copy of {} in snapshot {} is not the dump: its SHA-256 is \
                 {content_sha256}, not the {recorded} its manifest recorded; nothing was \
                 written: restore the dump kept on the host, or an older copy (STAMP)",
                restic.file_name(&stamp),
                snapshot.id
            ),
        )),
        _ => Ok(()),
    }
}

/// The manifest of the dump stamped `stamp`, while the host still keeps it.
fn kept_manifest(location: &jobkit::dumpfile::Location, stamp: &Stamp) -> Option<Manifest> {
    match location
        .list()
        .ok()?
        .into_iter()
        .find(|(d, _)| d.stamp == *stamp)?
        .1
    {
        Trust::Manifest(m) => Some(m),
        Trust::Legacy | Trust::Untrusted(_) => None,
    }
}

/// Where a dump's contents wait until they are verified: a file without a
/// name (`O_TMPFILE`), which this process alone can open, in a directory
/// of the admin's choice (`TMPDIR`); the kernel frees it when restore ends,
/// however it ends.
struct Spool {
    file: File,
    dir: PathBuf,
    written: u64,
    /// The size of the contents that the manifest recorded: a dump that
    /// decompresses to more is not that dump, and never fills `dir`.
    limit: Option<u64>,
}

impl Spool {
    fn new(dir: &Path) -> Result<Spool> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            // O_EXCL: it can never be given a name either.
            .custom_flags(libc::O_TMPFILE | libc::O_EXCL)
            .mode(0o600)
            .open(dir)
            .map_err(|e| {
                Error::io(
                    Exit::Failure,
                    "cannot make a file to hold the dump while it is verified in",
                    dir,
                    &e,
                    "set TMPDIR to a directory on a local file system with room for the \
                     dump's contents (ext4, xfs, btrfs and tmpfs have the O_TMPFILE it needs)",
                )
            })?;
        Ok(Spool {
            file,
            dir: dir.to_owned(),
            written: 0,
            limit: None,
        })
    }

    /// Fails before anything is written when `size` bytes would not fit;
    /// takes no more than `size` bytes after.
    fn reserve(&mut self, size: u64) -> Result<()> {
        self.limit = Some(size);
        // SAFETY: fstatvfs fills the struct it is given.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatvfs(self.file.as_raw_fd(), &mut st) } != 0 {
            return Ok(());
        }
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < size {
            return Err(Error::new(
                Exit::Failure,
                format!(
                    "{} has {} free, and the dump's contents take {}: restore holds them there \
                     until they are verified; nothing was written: free space there, or set \
                     TMPDIR to a directory with room",
                    self.dir.display(),
                    si(free),
                    si(size)
                ),
            ));
        }
        Ok(())
    }

    /// The verified contents, to standard output.
    fn into_stdout(mut self) -> Result<()> {
        let written = self.written;
        errln!("verified: writing {} to standard output", si(written));
        let failed = |e: io::Error| {
            Error::new(
                Exit::Failure,
                format!("cannot write the dump to standard output: {e}"),
            )
        };
        self.file.rewind().map_err(failed)?;
        let mut out = io::stdout().lock();
        io::copy(&mut self.file, &mut out).map_err(failed)?;
        out.flush().map_err(failed)
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.limit.filter(|l| self.written + buf.len() as u64 > *l) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "its contents run past the {} its manifest recorded: it is not the dump \
                     that was published",
                    si(limit)
                ),
            ));
        }
        let n = self.file.write(buf).map_err(|e| {
            if !matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                return e;
            }
            io::Error::new(
                e.kind(),
                format!(
                    "{} is full after {} of the dump's contents, which restore holds there \
                     until they are verified; nothing was written: free space there, or set \
                     TMPDIR to a directory with room",
                    self.dir.display(),
                    si(self.written)
                ),
            )
        })?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_has_no_name_and_says_where_room_is_missing() {
        let mut spool = Spool::new(&std::env::temp_dir()).unwrap();
        spool.write_all(b"the dump's contents").unwrap();
        assert_eq!(spool.written, 19);
        // No directory entry leads to it, and none can be made.
        let fd = format!("/proc/self/fd/{}", spool.file.as_raw_fd());
        let target = std::fs::read_link(&fd).unwrap();
        assert!(
            target.to_string_lossy().ends_with(" (deleted)"),
            "{target:?}"
        );
        spool.reserve(1).unwrap();
        let e = spool.reserve(u64::MAX).unwrap_err().to_string();
        spool.reserve(20).unwrap();
        spool.write_all(b"!").unwrap();
        let e2 = spool.write_all(b"!").unwrap_err().to_string();
        assert!(e2.starts_with("its contents run past the 20 "), "{e2}");
        assert!(e.contains(" free, and the dump's contents take "), "{e}");
        assert!(
            e.contains("nothing was written") && e.contains("set TMPDIR"),
            "{e}"
        );
        let e = Spool::new(Path::new("/nonexistent"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(
                "cannot make a file to hold the dump while it is verified in /nonexistent: "
            ),
            "{e}"
        );
        assert!(e.contains("set TMPDIR"), "{e}");
    }
}
