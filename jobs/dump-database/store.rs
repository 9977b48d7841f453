//! The dump directory: its lock, the temp file a dump is written to, the
//! atomic publish, and the pruning of old dumps. Only names of this job's own
//! pattern are ever created or removed.

use chrono::Utc;
use fs2::FileExt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use timerapps::{Error, Exit, Result};

const SUFFIX: &str = ".sql.gz";
const TEMP_SUFFIX: &str = ".part";

pub struct DumpDir {
    dir: PathBuf,
    name: String,
}

/// The time in a dump's name, `YYYYMMDDTHHMMSSZ` (UTC): sorts as it reads.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}

impl DumpDir {
    pub fn open(dir: &Path, name: &str) -> Result<DumpDir> {
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
        Ok(DumpDir {
            dir: dir.to_owned(),
            name: name.to_owned(),
        })
    }

    fn dump_path(&self, stamp: &str) -> PathBuf {
        self.dir.join(format!("{}-{stamp}{SUFFIX}", self.name))
    }

    /// The stamp of a file name this job published, if it is one.
    fn dump_stamp<'a>(&self, file: &'a str) -> Option<&'a str> {
        let stamp = file
            .strip_prefix(self.name.as_str())?
            .strip_prefix('-')?
            .strip_suffix(SUFFIX)?;
        is_stamp(stamp).then_some(stamp)
    }

    fn is_temp(&self, file: &str) -> bool {
        file.strip_prefix('.')
            .and_then(|f| f.strip_suffix(TEMP_SUFFIX))
            .and_then(|f| self.dump_stamp(f))
            .is_some()
    }

    /// Holds the directory for this run: a second run gets [`Exit::Locked`]
    /// and changes nothing.
    pub fn lock(&self) -> Result<File> {
        let path = self.dir.join(format!(".{}.lock", self.name));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Error::io(
                    Exit::CantCreate,
                    "cannot open the lock file",
                    &path,
                    &e,
                    "DUMP_DIR must be writable by the user the job runs as",
                )
            })?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(file),
            Err(e) if e.kind() == fs2::lock_contended_error().kind() => Err(Error::new(
                Exit::Locked,
                format!(
                    "another dump-database run holds {}; this run changed nothing, try again \
                     when that one has finished",
                    path.display()
                ),
            )),
            Err(e) => Err(Error::io(Exit::Failure, "cannot lock", &path, &e, "")),
        }
    }

    /// Removes the temp files of runs that were killed or lost power. Only
    /// call it under the lock, when no run of this name can be writing one.
    pub fn remove_stale_temps(&self) -> Result<()> {
        for (file, path) in self.entries()? {
            if self.is_temp(&file) {
                fs::remove_file(&path).map_err(|e| {
                    Error::io(
                        Exit::Failure,
                        "cannot remove stale temp file",
                        &path,
                        &e,
                        "",
                    )
                })?;
                eprintln!("removed {}, left by an interrupted run", path.display());
            }
        }
        Ok(())
    }

    /// A stamp no dump has yet; under the lock only a foreign process could
    /// take it before publish, and publish refuses to overwrite all the same.
    pub fn free_stamp(&self) -> String {
        loop {
            let now = Utc::now();
            let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
            if !self.dump_path(&stamp).exists() {
                return stamp;
            }
            let into_second = Duration::from_nanos(u64::from(now.timestamp_subsec_nanos()));
            std::thread::sleep(Duration::from_secs(1).saturating_sub(into_second));
        }
    }

    /// Creates the temp file for the dump `stamp`, private to the job's user.
    pub fn create_temp(&self, stamp: &str) -> Result<Temp> {
        let path = self
            .dir
            .join(format!(".{}-{stamp}{SUFFIX}{TEMP_SUFFIX}", self.name));
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
        Ok(Temp { path, file })
    }

    /// Makes the finished temp file the dump `stamp`, durably: file data,
    /// then the new name, then the directory entry reach the disk.
    pub fn publish(&self, temp: Temp, stamp: &str) -> Result<PathBuf> {
        let failed = |what: &str, path: &Path, e: io::Error| {
            Error::io(Exit::Failure, what, path, &e, "earlier dumps are untouched")
        };
        temp.file
            .sync_all()
            .map_err(|e| failed("cannot flush the dump to disk", &temp.path, e))?;
        let path = self.dump_path(stamp);
        // link() fails rather than replace an existing dump, which rename() would.
        fs::hard_link(&temp.path, &path)
            .map_err(|e| failed("cannot publish the dump as", &path, e))?;
        drop(temp);
        self.sync()?;
        Ok(path)
    }

    /// Removes all but the `keep` newest dumps of this name, never `current`.
    /// Returns the paths removed.
    pub fn prune(&self, keep: usize, current: &Path) -> Result<Vec<PathBuf>> {
        let mut dumps: Vec<(String, PathBuf)> = self
            .entries()?
            .into_iter()
            .filter_map(|(file, path)| Some((self.dump_stamp(&file)?.to_owned(), path)))
            .filter(|(_, path)| path.symlink_metadata().is_ok_and(|m| m.is_file()))
            .collect();
        dumps.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        let mut removed = Vec::new();
        for (_, path) in dumps.into_iter().skip(keep) {
            if path == current {
                continue;
            }
            fs::remove_file(&path).map_err(|e| {
                Error::io(
                    Exit::Failure,
                    &format!("published {} but cannot remove old dump", current.display()),
                    &path,
                    &e,
                    "",
                )
            })?;
            removed.push(path);
        }
        if !removed.is_empty() {
            self.sync()?;
        }
        Ok(removed)
    }

    fn entries(&self) -> Result<Vec<(String, PathBuf)>> {
        let failed =
            |e: io::Error| Error::io(Exit::Failure, "cannot list DUMP_DIR", &self.dir, &e, "");
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            if let Ok(file) = entry.file_name().into_string() {
                entries.push((file, entry.path()));
            }
        }
        Ok(entries)
    }

    fn sync(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(Exit::Failure, "cannot flush directory", &self.dir, &e, ""))
    }
}

/// The file a dump is written to; removed when dropped, so every failure,
/// and a publish that linked it under its final name, leaves no temp file.
pub struct Temp {
    path: PathBuf,
    file: File,
}

impl Temp {
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            eprintln!("cannot remove temp file {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_names_match() {
        let dir = DumpDir {
            dir: PathBuf::from("/d"),
            name: "dump".into(),
        };
        assert_eq!(
            dir.dump_stamp("dump-20261121T101500Z.sql.gz"),
            Some("20261121T101500Z")
        );
        for other in [
            "dump-20261121T101500Z.sql",
            "dump-20261121T1015Z.sql.gz",
            "dump-other-20261121T101500Z.sql.gz",
            "xdump-20261121T101500Z.sql.gz",
            "dump-20261121T101500Z.sql.gz.part",
            "notes.txt",
        ] {
            assert_eq!(dir.dump_stamp(other), None, "{other}");
        }
        assert!(dir.is_temp(".dump-20261121T101500Z.sql.gz.part"));
        assert!(!dir.is_temp("dump-20261121T101500Z.sql.gz"));
        assert!(!dir.is_temp(".other-20261121T101500Z.sql.gz.part"));
    }
}
