//! `jobkit`, the code shared by the timerapps jobs, the `timerapps` command
//! and the package's build tool, grouped by domain:
//!
//! - the programs: a job's whole `main` ([`run_job`]), the error type and
//!   its exit codes, typed parsing of environment variables ([`config`]),
//!   each program's variables and exit statuses ([`usage`]), sizes and
//!   durations for people ([`human`]);
//! - the jobs: the job catalogue, the one list of jobs, their units and
//!   their companions ([`catalogue`]), and the companions' records of their
//!   last run ([`record`]);
//! - the dumps: the database families and the check of a dump's stream
//!   ([`family`]), the dump store, which owns every read and write of a
//!   dump directory ([`dumpfile`]), and which dumps retention keeps
//!   ([`retention`]);
//! - off the host: whose dumps and copies are whose ([`identity`]) and
//!   restic ([`restic`]);
//! - the host: what a job may take of it and how it touches it ([`host`]);
//! - the logger behind `myapp` and `otherapp`, with its allocator
//!   ([`logger`]).

pub mod catalogue;
pub mod config;
pub mod dumpfile;
mod error;
pub mod family;
pub mod host;
pub mod human;
pub mod identity;
pub mod logger;
pub mod record;
pub mod restic;
pub mod retention;
pub mod usage;

pub use error::{Error, Exit, Result};

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// The user this process acts as.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// This machine's host name, as uname gives it (restic records it;
/// `/proc/sys` may be out of a unit's reach); `localhost` when uname fails.
pub fn host_name() -> String {
    // SAFETY: uname fills the struct it is given.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return "localhost".to_owned();
    }
    // SAFETY: the kernel NUL-terminates nodename.
    unsafe { std::ffi::CStr::from_ptr(name.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Writes to stdout for the journal. A closed or broken stdout is no
/// failure of the job: the work is done and its exit status says so.
pub fn out(args: fmt::Arguments) {
    let _ = io::stdout().lock().write_fmt(args);
}

/// Writes to stderr, like [`out`].
pub fn err(args: fmt::Arguments) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `println!` that never panics: see [`out`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics: see [`err`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::err(format_args!("{}\n", format_args!($($arg)*))) };
}

/// A job's whole `main`: handles `--help` (printing what `help` makes) and
/// `--version`, rejects any other argument, runs `job` and prints its last
/// line: the summary `job` returns, or its error as one line, with the exit
/// code. Nothing a job prints comes after it, and only it has the shape
/// [`is_last_line`] knows, so that whoever reads the journal can tell that
/// a run's lines are all there.
pub fn run_job(
    name: &str,
    help: impl FnOnce() -> String,
    job: impl FnOnce() -> Result<String>,
) -> ExitCode {
    let result = match parse_args(std::env::args_os().skip(1)) {
        Ok(Args::Run) => job().map(|last| outln!("{last}")),
        Ok(Args::Help) => {
            out(format_args!("{}", help()));
            Ok(())
        }
        Ok(Args::Version) => {
            outln!("{name} {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            errln!("{name}: {err}");
            ExitCode::from(err.exit().code())
        }
    }
}

/// Whether `line`, written by a run of `program`, is the last line of that
/// run ([`run_job`]): `NAME: …`, its summary or its error, or a logger's
/// `[NAME] wrote to …`.
pub fn is_last_line(program: &str, line: &str) -> bool {
    line.strip_prefix(program)
        .is_some_and(|rest| rest.starts_with(": "))
        || line
            .strip_prefix('[')
            .and_then(|l| l.strip_prefix(program))
            .is_some_and(|rest| rest.starts_with("] wrote to "))
}

/// Ends the job at once, from any thread, as [`run_job`] ends it with
/// `err`: for a bound that the main thread, stuck in a system call, cannot
/// keep itself.
pub fn abort_job(name: &str, err: &Error) -> ! {
    errln!("{name}: {err}");
    std::process::exit(i32::from(err.exit().code()))
}

#[derive(Debug, PartialEq, Eq)]
enum Args {
    Run,
    Help,
    Version,
}

fn parse_args(mut args: impl Iterator<Item = OsString>) -> Result<Args> {
    let Some(first) = args.next() else {
        return Ok(Args::Run);
    };
    let parsed = match first.to_str() {
        Some("-h" | "--help") => Args::Help,
        Some("-V" | "--version") => Args::Version,
        _ => return Err(unexpected(&first)),
    };
    match args.next() {
        Some(extra) => Err(unexpected(&extra)),
        None => Ok(parsed),
    }
}

fn unexpected(arg: &OsString) -> Error {
    Error::new(
        Exit::Usage,
        format!(
            "unexpected argument {:?}; this job takes no arguments and is configured \
             through environment variables (see --help)",
            arg.to_string_lossy()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_are_known_by_their_shape() {
        assert!(is_last_line(
            "dump-database",
            "dump-database: published /x: read 1 bytes"
        ));
        assert!(is_last_line(
            "dump-database",
            "dump-database: DUMP_COMMAND failed"
        ));
        assert!(is_last_line(
            "myapp",
            "[myapp] wrote to /var/log/timerapps/myapp.log"
        ));
        assert!(!is_last_line("myapp", "[myapp] executed at 2026-01-01"));
        assert!(!is_last_line("dump-database", "removed old dump /x"));
        assert!(!is_last_line("dump-database", "dump-database@x: y"));
        assert!(!is_last_line("myapp", "myappx: y"));
    }

    fn parse(args: &[&str]) -> Result<Args> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]).unwrap(), Args::Run);
        assert_eq!(parse(&["--help"]).unwrap(), Args::Help);
        assert_eq!(parse(&["-V"]).unwrap(), Args::Version);
        for bad in [&["x"][..], &["--help", "x"], &["--verbose"], &[""]] {
            assert_eq!(parse(bad).unwrap_err().exit(), Exit::Usage, "{bad:?}");
        }
    }
}
