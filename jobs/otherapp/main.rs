//! `otherapp`: appends `[otherapp] executed at YYYY-MM-DD HH:MM:SS.ffffff` (local time,
//! as Python's `datetime.now()` prints it) to LOGFILE on every run and prints
//! `[otherapp] wrote to LOGFILE`. The lines of concurrent runs never interleave.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `LOGFILE` | absolute path of the log file | `/var/tmp/NAME_timer.log` |
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | the line was written |
//! | 1 | locking or writing `LOGFILE` failed, or the clock is set so far ahead that it has no calendar date |
//! | 2 | bad argument, or `LOGFILE` empty or relative; nothing written |
//! | 73 | `LOGFILE` cannot be opened: missing directory, a directory, not writable, not a regular file, or a symlink in a world-writable sticky directory |

use jobkit::config::Environment;
use jobkit::logger::arena::Arena;
use jobkit::logger::{self, Config};
use std::process::ExitCode;

const NAME: &str = "otherapp";

#[global_allocator]
static ALLOC: Arena = Arena;

fn main() -> ExitCode {
    jobkit::run_job(
        NAME,
        || logger::help(NAME),
        || logger::run(&Config::from_env(NAME, &Environment)?),
    )
}
