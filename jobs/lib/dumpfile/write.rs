//! Every write to a dump directory: the lock of a DUMP_NAME, the temp file
//! a dump is written to, the atomic publish, the pruning of old dumps, the
//! admin's rewrite of a manifest under the same lock, and the sweep of run
//! files when the package is removed. Only files named as [`super`]
//! defines are ever created or removed.

use super::{is_run_file, Dump, Form, Location, Manifest, Names, Stamp};
use crate::host::atomic;
use crate::retention::{Policy, Rule};
use crate::{errln, euid, Error, Exit, Result};
use chrono::Utc;
use fs2::FileExt;
use std::ffi::CString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct DumpDir {
    location: Location,
}

/// The manifests a new dump is compared with.
pub struct Baseline {
    /// The good dump of the largest raw size.
    pub size: Option<Manifest>,
    /// The good dump with the most rows.
    pub rows: Option<Manifest>,
}

/// What pruning did: the dumps removed, and the dumps left alone because
/// they are named later than this run's own dump.
pub struct Pruned {
    pub removed: Vec<PathBuf>,
    pub future: Vec<(PathBuf, Duration)>,
}

/// The name the passwd database gives `uid`.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: an all-zero passwd is valid; getpwuid_r writes only into it
    // and into buf, within the length given, and sets found to it or null.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        (rc == 0 && !found.is_null()).then(|| {
            std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// `NAME (uid N)`, or `uid N` where the passwd database has no name for it.
fn user(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

impl DumpDir {
    /// Checks DUMP_DIR before anything is written there.
    pub fn open(location: &Location) -> Result<DumpDir> {
        let dir = location.dir.as_path();
        let meta = fs::metadata(dir).map_err(|e| {
            Error::io(
                Exit::CantCreate,
                "cannot use DUMP_DIR",
                dir,
                &e,
                "create it, owned by the user the job runs as, or set DUMP_DIR",
            )
        })?;
        if !meta.is_dir() {
            return Err(Error::new(
                Exit::CantCreate,
                format!(
                    "DUMP_DIR {} is not a directory; set DUMP_DIR",
                    dir.display()
                ),
            ));
        }
        // Root's lock file and dumps would lock the owner's own runs out.
        if euid() == 0 && meta.uid() != 0 {
            let as_owner = match user_name(meta.uid()) {
                Some(name) => format!("with `runuser -u {name} -- dump-database`"),
                None => format!("as uid {}", meta.uid()),
            };
            return Err(Error::new(
                Exit::NoPermission,
                format!(
                    "DUMP_DIR {} belongs to {owner}, and files this run made there as root \
                     would stop that user's runs; nothing was changed: run the job as the \
                     service does, with `systemctl start dump-database`, or as the owner, \
                     {as_owner}",
                    dir.display(),
                    owner = user(meta.uid()),
                ),
            ));
        }
        Ok(DumpDir {
            location: location.clone(),
        })
    }

    fn path(&self, file: &str) -> PathBuf {
        self.location.dir.join(file)
    }

    fn names(&self) -> &Names {
        &self.location.names
    }

    /// Takes the lock of this DUMP_NAME: a second run gets [`Exit::Locked`]
    /// and changes nothing; a run of a unit other than the name's owner
    /// gets [`Exit::CantCreate`]. Only a regular file is used, never through a
    /// symlink, and only while the lock path still names it.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.path(&self.names().lock());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // O_NONBLOCK: a FIFO planted here must not hang the run.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| lock_open_error(&path, &e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(Exit::Failure, "cannot inspect", &path, &e, ""))?;
        if !meta.is_file() {
            return Err(Error::new(
                Exit::CantCreate,
                format!(
                    "the lock file {} is not a regular file; remove it, and the next run \
                     creates its own",
                    path.display()
                ),
            ));
        }
        let lock = Lock::take(file, path, "this run changed nothing", |path| {
            format!(
                "another dump-database run holds {}; this run changed nothing, try again when \
                 that one has finished",
                path.display()
            )
        })?;
        // The unit that first dumped this name here owns it; a job of
        // another unit is refused. A run by hand neither claims nor is
        // refused.
        if let Some(unit) = crate::identity::own_unit() {
            crate::identity::claim(&lock.file, &lock.path, &unit)?;
        }
        Ok(lock)
    }

    /// Removes the temp files of runs that were killed or lost power. Only
    /// call it under the lock, when no run of this name can be writing one.
    pub fn remove_stale_temps(&self) -> Result<()> {
        for (file, path) in self.entries()? {
            if !self.names().is_temp(&file) {
                continue;
            }
            if !path.symlink_metadata().is_ok_and(|m| m.is_file()) {
                errln!(
                    "{} is named like a temp file of this job but is not a regular file; it \
                     is left alone: remove it",
                    path.display()
                );
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => errln!("removed {}, left by an interrupted run", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(
                        Exit::Failure,
                        "cannot remove stale temp file",
                        &path,
                        &e,
                        "",
                    ))
                }
            }
        }
        Ok(())
    }

    /// The stamp of now, or of the next second no entry of the directory
    /// is named after yet in any form (a dump or a manifest, or anything
    /// else with its name), so that no two dumps share a stamp.
    pub fn free_stamp(&self) -> Stamp {
        loop {
            let now = Utc::now();
            let stamp = Stamp::of(now);
            // A manifest left by a run that failed to publish takes its
            // stamp too, until the next prune removes it.
            let free = Form::ALL.iter().all(|form| {
                [
                    self.names().dump(&stamp, *form),
                    self.names().manifest(&stamp, *form),
                ]
                .iter()
                .all(|name| {
                    let taken = self.path(name).symlink_metadata();
                    taken.is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
                })
            });
            if free {
                return stamp;
            }
            let into_second = Duration::from_nanos(u64::from(now.timestamp_subsec_nanos()));
            std::thread::sleep(Duration::from_secs(1).saturating_sub(into_second));
        }
    }

    /// Creates the temp file for the dump `stamp` in `form` under a name no
    /// other run uses, private to the job's user.
    pub fn create_temp(&self, stamp: &Stamp, form: Form) -> Result<Temp> {
        let path = self.path(&self.names().temp(stamp, form, random_tag()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Error::io(
                    Exit::CantCreate,
                    "cannot create temp file",
                    &path,
                    &e,
                    "DUMP_DIR must be writable by the user the job runs as",
                )
            })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(Exit::Failure, "cannot inspect", &path, &e, ""))?;
        Ok(Temp {
            path,
            file,
            meta,
            dump: self.path(&self.names().dump(stamp, form)),
        })
    }

    /// Makes the temp file, synced by [`Temp::sync`], the dump it was
    /// created for. The
    /// link is made from the open file, not from its name, so whatever
    /// happened to the name meanwhile, only the bytes this run wrote are
    /// published; the new entry then reaches the disk.
    pub fn publish(&self, temp: Temp) -> Result<PathBuf> {
        let path = temp.dump.clone();
        let failed = |e: io::Error| {
            Error::io(
                Exit::Failure,
                "cannot publish the dump as",
                &path,
                &e,
                "earlier dumps are untouched",
            )
        };
        // linkat() fails rather than replace an existing dump.
        let from = CString::new(format!("/proc/self/fd/{}", temp.file.as_raw_fd()))
            .expect("no NUL in a number");
        let to = CString::new(path.as_os_str().as_bytes()).map_err(|e| failed(e.into()))?;
        // SAFETY: both paths are NUL-terminated and outlive the call.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // An unlinked file cannot be linked again: someone removed it.
            if temp.file.metadata().is_ok_and(|m| m.nlink() == 0) {
                return Err(Error::new(
                    Exit::Failure,
                    format!(
                        "the temp file {} was removed while the dump was written, by hand or \
                         by a run that took over DUMP_DIR; nothing was published, earlier \
                         dumps are untouched",
                        temp.path.display()
                    ),
                ));
            }
            if e.kind() == io::ErrorKind::NotFound {
                // The file is still there: what is missing is /proc.
                return Err(Error::io(
                    Exit::Failure,
                    "cannot publish the dump as",
                    &path,
                    &e,
                    "the job links the finished file through /proc/self/fd, which must be \
                     mounted; earlier dumps are untouched",
                ));
            }
            return Err(failed(e));
        }
        drop(temp);
        self.sync()?;
        Ok(path)
    }

    /// What a new dump stamped `current` is compared with: the manifests of
    /// the good dumps of the largest raw size and with the most rows, since
    /// the newest accepted one ([`Location::baseline`]). Dumps whose
    /// manifest cannot be trusted are never among them. A directory that
    /// cannot be listed fails the run: a dump is never judged blind.
    pub fn baseline(&self, current: &Stamp) -> Result<Baseline> {
        let (size, rows) = self.location.baseline(current).map_err(|e| {
            Error::io(
                Exit::Failure,
                "cannot list DUMP_DIR",
                &self.location.dir,
                &e,
                "nothing was published, earlier dumps are untouched",
            )
        })?;
        Ok(Baseline { size, rows })
    }

    /// Writes the manifest of the dump `stamp` in `form` under its own
    /// name, on disk before the dump is linked, so a published dump always
    /// has its manifest.
    pub fn write_manifest(&self, stamp: &Stamp, form: Form, manifest: &Manifest) -> Result<()> {
        let path = self.path(&self.names().manifest(stamp, form));
        let temp = self.path(&self.names().manifest_temp(stamp, form, random_tag()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(manifest.to_json().as_bytes())?;
                file.sync_all()
            })
            // A link fails rather than replace an existing file.
            .and_then(|()| fs::hard_link(&temp, &path));
        let _ = fs::remove_file(&temp);
        written.map_err(|e| {
            Error::io(
                Exit::Failure,
                "cannot write the manifest",
                &path,
                &e,
                "check free space in DUMP_DIR; nothing was published, earlier dumps are \
                 untouched",
            )
        })
    }

    /// Removes the dumps that no rule of `policy` keeps, with their
    /// manifests, and manifests whose dump is gone. `current` is the stamp
    /// of the dump just published: dumps stamped later, written while the
    /// clock was ahead, are neither counted nor removed, since they would
    /// otherwise stay "newest" and crowd out every real dump.
    pub fn prune(&self, policy: &Policy, current: &Stamp) -> Result<Pruned> {
        let failed = |e: io::Error| {
            Error::io(
                Exit::Failure,
                "cannot list DUMP_DIR",
                &self.location.dir,
                &e,
                "",
            )
        };
        let planned = self.location.plan(policy, current).map_err(failed)?;
        let mut future = Vec::new();
        let mut removed = Vec::new();
        for p in &planned {
            if p.rules.contains(&Rule::Future) {
                future.push((p.dump.path.clone(), p.dump.stamp.after(current)));
            } else if p.rules.is_empty() {
                if self.remove(&p.dump.path, current)? {
                    removed.push(p.dump.path.clone());
                }
                self.remove(&p.dump.manifest_path(), current)?;
            }
        }
        future.sort();
        for (file, path) in self.entries()? {
            let orphan = self
                .names()
                .parse_manifest(&file)
                .is_some_and(|(stamp, form)| {
                    stamp <= *current && !self.path(&self.names().dump(&stamp, form)).exists()
                });
            if orphan {
                self.remove(&path, current)?;
            }
        }
        if !removed.is_empty() {
            self.sync()?;
        }
        Ok(Pruned { removed, future })
    }

    /// Removes an old dump or manifest; false if it was gone already
    /// (removed by hand, which is what was wanted).
    fn remove(&self, path: &Path, current: &Stamp) -> Result<bool> {
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(
                Exit::Failure,
                &format!("published the dump of {current} but cannot remove old dump"),
                path,
                &e,
                "",
            )),
        }
    }

    fn entries(&self) -> Result<Vec<(String, PathBuf)>> {
        let dir = &self.location.dir;
        let failed = |e: io::Error| Error::io(Exit::Failure, "cannot list DUMP_DIR", dir, &e, "");
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            if let Ok(file) = entry.file_name().into_string() {
                entries.push((file, entry.path()));
            }
        }
        Ok(entries)
    }

    fn sync(&self) -> Result<()> {
        let dir = &self.location.dir;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(Exit::Failure, "cannot flush directory", dir, &e, ""))
    }
}

impl Location {
    /// Takes the lock of this DUMP_NAME, the one its runs take, for the
    /// admin's rewrite of a manifest ([`Location::replace_manifest`]): while
    /// a run publishes or prunes, it gets [`Exit::Locked`] and changes
    /// nothing, as a second run does. The lock file is opened as root opens
    /// a file the job's user can write: never through a symlink, a regular
    /// file only; made where no run made it yet, it is given the
    /// directory's owner on its descriptor, so that the job's runs can
    /// still take it. `None`: DUMP_DIR does not exist, so no dump does.
    pub fn lock_to_rewrite(&self) -> Result<Option<Lock>> {
        let path = self.dir.join(self.names.lock());
        let failed = |e: &io::Error| {
            Error::io(
                Exit::Failure,
                "cannot open the lock file",
                &path,
                e,
                "nothing was changed",
            )
        };
        // O_NONBLOCK: a FIFO planted here must not hang the command.
        let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let owner = match fs::metadata(&self.dir) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(failed(&e)),
                };
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(flags)
                    .open(&path)
                    .map_err(|e| failed(&e))?;
                if euid() == 0 {
                    std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))
                        .map_err(|e| failed(&e))?;
                }
                file
            }
            Err(e) => return Err(failed(&e)),
        };
        if !file.metadata().map_err(|e| failed(&e))?.is_file() {
            return Err(Error::new(
                Exit::Failure,
                format!(
                    "the lock file {} is not a regular file; nothing was changed: remove it, \
                     and the next run creates its own",
                    path.display()
                ),
            ));
        }
        let lock = Lock::take(file, path, "nothing was changed", |path| {
            format!(
                "a dump-database run holds {}; nothing was changed, try again when it has \
                 finished",
                path.display()
            )
        })?;
        Ok(Some(lock))
    }

    /// Replaces the manifest of `dump` with `manifest`, under `lock`, owned
    /// as its dump is: through a temp file given that owner on its
    /// descriptor before it is renamed into place, so that it is never
    /// root's under its name and no name the job's user can swap is ever
    /// chowned.
    pub fn replace_manifest(&self, lock: &Lock, dump: &Dump, manifest: &Manifest) -> Result<()> {
        lock.check_held("the manifest was not rewritten")?;
        let path = dump.manifest_path();
        let failed =
            |e: io::Error| Error::io(Exit::Failure, "cannot rewrite the manifest", &path, &e, "");
        // The job's own user must still read and replace it.
        let owner = fs::symlink_metadata(&dump.path).map_err(failed)?;
        let (stamp, form) = (dump.stamp, dump.form);
        atomic::replace_as(
            &self.dir,
            &self.names.manifest(&stamp, form),
            // A temp name the job's next run sweeps, should this one be killed.
            &self.names.manifest_temp(&stamp, form, std::process::id()),
            manifest.to_json().as_bytes(),
            0o600,
            Some((owner.uid(), owner.gid())),
        )
        .map_err(failed)
    }
}

/// Removes the lock and temp files that runs of any DUMP_NAME left in
/// `dir` ([`is_run_file`]), regular files only, so that what the package's
/// removal leaves there is dumps; a directory that cannot be listed is
/// left alone. Returns the files that could not be removed, with why.
pub fn sweep_run_files(dir: &Path) -> Vec<(PathBuf, io::Error)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut failed = Vec::new();
    for entry in entries.flatten() {
        let own = entry.file_name().to_str().is_some_and(is_run_file)
            && entry.file_type().is_ok_and(|t| t.is_file());
        if !own {
            continue;
        }
        if let Err(e) = fs::remove_file(entry.path()) {
            failed.push((entry.path(), e));
        }
    }
    failed
}

/// Says exactly why the lock file cannot be opened, and what to do.
fn lock_open_error(path: &Path, e: &io::Error) -> Error {
    let existing = path.symlink_metadata().ok();
    let hint = match (e.raw_os_error(), existing) {
        (Some(libc::ELOOP), _) => {
            "it is a symbolic link, which this job never follows: remove it, and the next run \
             creates its own lock file"
                .to_owned()
        }
        (_, Some(meta)) if !meta.is_file() => "it is not a regular file: remove it, and the \
             next run creates its own lock file"
            .to_owned(),
        (Some(libc::EACCES | libc::EPERM), Some(meta)) if meta.uid() != euid() => format!(
            "it belongs to {}, not to {}, which this run is (left by a run as another user?): \
             remove it, and the next run creates its own",
            user(meta.uid()),
            user(euid())
        ),
        _ => "DUMP_DIR must be writable by the user the job runs as".to_owned(),
    };
    Error::io(
        Exit::CantCreate,
        "cannot open the lock file",
        path,
        e,
        &hint,
    )
}

/// 32 random bits for a temp file's name.
fn random_tag() -> u32 {
    let mut tag = [0u8; 4];
    // SAFETY: getrandom writes at most tag.len() bytes into tag.
    let got = unsafe { libc::getrandom(tag.as_mut_ptr().cast(), tag.len(), 0) };
    if got != 4 {
        // Still unique among the runs of one machine; create_new catches
        // the rest.
        return std::process::id() ^ Utc::now().timestamp_subsec_nanos();
    }
    u32::from_ne_bytes(tag)
}

/// The lock of a DUMP_NAME, held while this value lives.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Locks `file`, the lock file at `path`, without waiting: while
    /// another holds it, fails with [`Exit::Locked`] and what `held` says;
    /// then as [`Lock::check_held`] with `outcome`.
    fn take(
        file: File,
        path: PathBuf,
        outcome: &str,
        held: impl FnOnce(&Path) -> String,
    ) -> Result<Lock> {
        match file.try_lock_exclusive() {
            Ok(()) => {}
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                return Err(Error::new(Exit::Locked, held(&path)))
            }
            Err(e) => return Err(Error::io(Exit::Failure, "cannot lock", &path, &e, "")),
        }
        let lock = Lock { file, path };
        lock.check_held(outcome)?;
        Ok(lock)
    }

    /// Fails with [`Exit::Locked`] unless the lock path still names the file
    /// this run locked. Where it does not (removed by hand, or flock(2) does
    /// not exclude, as on NFS without locking), another run may be working in
    /// DUMP_DIR; `outcome` says what that means for this run.
    pub fn check_held(&self, outcome: &str) -> Result<()> {
        let held = self.file.metadata().ok();
        let named = self.path.symlink_metadata().ok();
        match (held, named) {
            (Some(held), Some(named)) if same_file(&held, &named) => Ok(()),
            _ => Err(Error::new(
                Exit::Locked,
                format!(
                    "lost the lock: {} is no longer the file this run locked (removed or \
                     replaced), so another run may be working in DUMP_DIR; {outcome}",
                    self.path.display()
                ),
            )),
        }
    }
}

/// The file a dump is written to; its name is removed when dropped, so
/// every failure, and a publish that linked it under its final name, leaves
/// no temp file.
pub struct Temp {
    path: PathBuf,
    file: File,
    /// What was created, to remove only that.
    meta: Metadata,
    /// The name it is published under.
    dump: PathBuf,
}

impl Temp {
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts the written bytes on disk.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_all().map_err(|e| {
            Error::io(
                Exit::Failure,
                "cannot flush the dump to disk",
                &self.path,
                &e,
                "earlier dumps are untouched",
            )
        })
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let ours = self
            .path
            .symlink_metadata()
            .is_ok_and(|now| same_file(&now, &self.meta));
        if !ours {
            return;
        }
        if let Err(e) = fs::remove_file(&self.path) {
            errln!("cannot remove temp file {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(test: &str) -> Location {
        let dir = std::env::temp_dir().join(format!("jobkit-write-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Location {
            dir,
            names: Names::new("dump", "sql"),
        }
    }

    #[test]
    fn a_manifest_is_rewritten_only_while_no_run_holds_the_lock() {
        let loc = location("rewrite");
        let run = DumpDir::open(&loc).unwrap();
        // The admin's lock is the run's: each refuses while the other holds it.
        let held = run.lock().unwrap();
        let e = loc.lock_to_rewrite().unwrap_err();
        assert_eq!(e.exit(), Exit::Locked);
        let lock_path = loc.dir.join(".dump.lock");
        assert_eq!(
            e.to_string(),
            format!(
                "a dump-database run holds {}; nothing was changed, try again when it has \
                 finished",
                lock_path.display()
            )
        );
        drop(held);
        let admin = loc.lock_to_rewrite().unwrap().unwrap();
        assert_eq!(run.lock().err().map(|e| e.exit()), Some(Exit::Locked));
        // Under it, the manifest is replaced whole, owned as its dump is.
        let stamp = Stamp::parse("20261121T101500Z").unwrap();
        let dump = Dump {
            stamp,
            form: Form::None,
            path: loc.dir.join(loc.names.dump(&stamp, Form::None)),
            size: 3,
        };
        fs::write(&dump.path, "sql").unwrap();
        fs::write(dump.manifest_path(), "{").unwrap();
        let manifest = Manifest {
            version: super::super::manifest::VERSION,
            dump: loc.names.dump(&stamp, Form::None),
            form: Form::None,
            read: 3,
            stored: 3,
            sha256: String::new(),
            content_sha256: None,
            format: None,
            check: super::super::manifest::Check::Unchecked,
            tables: None,
            verdict: super::super::manifest::Verdict::Good,
            reason: None,
            accepted: None,
        };
        loc.replace_manifest(&admin, &dump, &manifest).unwrap();
        assert_eq!(dump.manifest(), Ok(Some(manifest.clone())));
        // A lock that is no longer the lock file's is no lock.
        fs::remove_file(&lock_path).unwrap();
        let e = loc.replace_manifest(&admin, &dump, &manifest).unwrap_err();
        assert_eq!(e.exit(), Exit::Locked);
        drop(admin);
        // A symlink planted as the lock file is never followed; a directory
        // not made yet has no dump to rewrite.
        std::os::unix::fs::symlink("/etc/passwd", &lock_path).unwrap();
        let e = loc.lock_to_rewrite().unwrap_err();
        assert_eq!(e.exit(), Exit::Failure, "{e}");
        fs::remove_dir_all(&loc.dir).unwrap();
        assert!(loc.lock_to_rewrite().unwrap().is_none());
    }
}
