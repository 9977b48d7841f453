//! The logger behind `myapp` and `otherapp`: each run appends one line
//! `[NAME] executed at YYYY-MM-DD HH:MM:SS.ffffff` (local time) to LOGFILE,
//! the line the reference Python scripts write with `datetime.now()`.

pub mod arena;

use crate::config::{self, Source};
use crate::{Error, Exit, Result};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::path::PathBuf;

pub struct Config {
    name: &'static str,
    logfile: PathBuf,
}

impl Config {
    pub fn from_env(name: &'static str, env: &dyn Source) -> Result<Config> {
        let logfile = config::absolute_path(env, "LOGFILE", &default_logfile(name))?;
        Ok(Config { name, logfile })
    }
}

fn default_logfile(name: &str) -> String {
    format!("/var/tmp/{name}_timer.log")
}

/// The `--help` text of the logger called `name`.
pub fn help(name: &str) -> String {
    format!(
        "Usage: {name} [--help | --version]

Appends one line \"[{name}] executed at YYYY-MM-DD HH:MM:SS.ffffff\" (local
time) to LOGFILE and prints \"[{name}] wrote to LOGFILE\".

{}",
        crate::usage::help(&crate::usage::LOGGER, name)
    )
}

/// Appends the line; returns the run's last line, for `run_job` to print.
pub fn run(cfg: &Config) -> Result<String> {
    let file = open(&cfg.logfile)?;
    let failed =
        |what: &str, err: io::Error| Error::io(Exit::Failure, what, &cfg.logfile, &err, "");
    // Concurrent runs take turns, and the time is read under the lock, so
    // lines stay whole and in order even where O_APPEND alone is not enough (NFS).
    file.lock_exclusive()
        .map_err(|e| failed("cannot lock LOGFILE", e))?;
    let line = line(cfg.name, &local_now()?);
    (&file)
        .write_all(line.as_bytes())
        .map_err(|e| failed("cannot write to LOGFILE", e))?;
    Ok(format!("[{}] wrote to {}", cfg.name, cfg.logfile.display()))
}

/// The local time now, read as Python's `datetime.now()` reads it: through
/// the C library's `localtime_r` (TZ, else /etc/localtime). chrono's `Local`
/// parses the zone file itself, for about 20 µs a run: as long as all the
/// rest of the logger's work (tests/bench).
fn local_now() -> Result<NaiveDateTime> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: an all-zero tm is valid, and both calls only write to the
    // locals they are given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
        !libc::localtime_r(&now.tv_sec, &mut tm).is_null()
    };
    let local = converted.then(|| from_tm(&tm, (now.tv_nsec / 1000) as u32));
    local.flatten().ok_or_else(|| {
        Error::new(
            Exit::Failure,
            format!(
                "cannot convert the system time ({} s since 1970) to local time; check the clock",
                now.tv_sec
            ),
        )
    })
}

/// The broken-down time as a date and time. A leap second (second 60, from
/// the right/ zones) shows as second 59, as Python's `datetime.now()` does.
fn from_tm(tm: &libc::tm, usec: u32) -> Option<NaiveDateTime> {
    let date = NaiveDate::from_ymd_opt(
        tm.tm_year.checked_add(1900)?,
        u32::try_from(tm.tm_mon + 1).ok()?,
        u32::try_from(tm.tm_mday).ok()?,
    )?;
    date.and_hms_micro_opt(
        u32::try_from(tm.tm_hour).ok()?,
        u32::try_from(tm.tm_min).ok()?,
        u32::try_from(tm.tm_sec.min(59)).ok()?,
        usec,
    )
}

/// `[NAME] executed at YYYY-MM-DD HH:MM:SS.ffffff` and a newline. Plain
/// integer formatting keeps chrono's strftime engine out of the binary.
fn line(name: &str, t: &NaiveDateTime) -> String {
    format!(
        "[{name}] executed at {:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}\n",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1000,
    )
}

fn open(path: &Path) -> Result<File> {
    let cant = |what: &str, at: &Path, err: &io::Error, hint: &str| {
        Error::io(Exit::CantCreate, what, at, err, hint)
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = std::fs::metadata(parent).map_err(|e| {
        Error::new(
            Exit::CantCreate,
            format!(
                "cannot use LOGFILE {}: its directory {}: {e}; create the directory or set \
                 LOGFILE to a path in an existing one",
                path.display(),
                parent.display()
            ),
        )
    })?;
    // Anyone can plant a symlink in /tmp or /var/tmp: do not let it redirect
    // the write (the same rule as the kernel's fs.protected_symlinks).
    let shared_sticky = dir.mode() & 0o1002 == 0o1002;
    let mut flags = libc::O_NONBLOCK;
    if shared_sticky {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if shared_sticky => Error::new(
                Exit::CantCreate,
                format!(
                    "refusing to follow LOGFILE {}: it is a symbolic link in the world-writable \
                     sticky directory {}, where any user could have planted it; remove it or \
                     set LOGFILE to a regular file",
                    path.display(),
                    parent.display()
                ),
            ),
            Some(libc::EISDIR) => cant("cannot open LOGFILE", path, &e, "LOGFILE must name a file"),
            // What open(O_NONBLOCK) says of a FIFO with no reader.
            Some(libc::ENXIO) => not_regular(path),
            _ => cant(
                "cannot open LOGFILE",
                path,
                &e,
                "make it writable by the user the job runs as, or set LOGFILE",
            ),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| cant("cannot inspect LOGFILE", path, &e, ""))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    Ok(file)
}

fn not_regular(path: &Path) -> Error {
    Error::new(
        Exit::CantCreate,
        format!(
            "LOGFILE {} is not a regular file; set LOGFILE to a file path",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_microseconds_always() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let t = day.and_hms_micro_opt(3, 4, 5, 0).unwrap();
        assert_eq!(
            line("myapp", &t),
            "[myapp] executed at 2026-01-02 03:04:05.000000\n"
        );
    }

    #[test]
    fn broken_down_time_converts_and_a_leap_second_shows_as_59() {
        // SAFETY: an all-zero tm is valid.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        (tm.tm_year, tm.tm_mon, tm.tm_mday) = (126, 11, 31);
        (tm.tm_hour, tm.tm_min, tm.tm_sec) = (23, 59, 60);
        let t = from_tm(&tm, 123_456).unwrap();
        assert_eq!(
            line("x", &t),
            "[x] executed at 2026-12-31 23:59:59.123456\n"
        );
        tm.tm_mday = 32;
        assert_eq!(from_tm(&tm, 0), None);
    }

    #[test]
    fn default_paths_match_the_reference() {
        let cfg = Config::from_env("myapp", &[("OTHER", "x")]).unwrap();
        assert_eq!(cfg.logfile, PathBuf::from("/var/tmp/myapp_timer.log"));
        let cfg = Config::from_env("otherapp", &[("LOGFILE", "/l")]).unwrap();
        assert_eq!(cfg.logfile, PathBuf::from("/l"));
    }
}
