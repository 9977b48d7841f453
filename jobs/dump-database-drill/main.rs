//! `dump-database-drill`: a restore drill of a dump job's newest good dump.
//! It starts a throwaway server of the dump's kind in a private directory
//! below DRILL_TMPDIR, listening on a Unix socket only, streams the dump
//! into it (decompressed, its checksums and the manifest's SHA-256 checked
//! on the way), compares every table of the dump's manifest with the rows
//! restored, then stops the server and removes every file it made. It
//! never connects to the server the dump came from. Nothing in the dump
//! runs with more rights than its owner had (`pgguard.rs`, `mariadb.rs`,
//! `sqlite.rs` say how), and nothing of the drill runs as root. While the
//! server restores, it stops it before the free space of DRILL_TMPDIR's
//! file system falls below DRILL_RESERVE (`watch.rs`). It records its
//! result in DRILL_RESULT for `timerapps status` and the metrics.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DUMP_DIR` | where the job keeps its dumps, as for `dump-database`: the drill reads the job's own settings file | `/var/lib/timerapps/dumps/dump-database` |
//! | `DUMP_NAME` | the job's dumps' file-name prefix, as for `dump-database` | `dump` |
//! | `DUMP_EXTENSION` | what the dump is, before the compression's suffix, as for `dump-database` | `sql` |
//! | `DRILL_TMPDIR` | absolute path of the directory the throwaway server is made in, below `timerapps-drill-NAME`; it needs about twice the dump's size free besides `DRILL_RESERVE` | `/var/tmp` |
//! | `DRILL_RESERVE` | the free space the drill leaves on `DRILL_TMPDIR`'s file system: a percentage of it (`5%`, up to `90%`) or a size (`2G`; `K`, `M`, `G`, `T` are powers of 1024); a restore that comes near it is stopped and fails the drill | 10 %, at least 1 GiB, at most a quarter of the file system |
//! | `DRILL_RESULT` | absolute path of the file the drill records its result in, for `timerapps status` and the metrics; set by the units; unset: not recorded | unset |
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | the newest good dump restored, and every table of its manifest has its rows |
//! | 1 | the drill failed: no good dump, the dump is damaged, a statement failed to restore, a table of the manifest is missing or has other rows, the server did not start |
//! | 2 | bad argument or malformed variable, as for `dump-database`; nothing done |
//! | 73 | `DRILL_TMPDIR` cannot be written, or has too little space free besides `DRILL_RESERVE` (the message says how much is needed), or the restore came near the reserve and was stopped |
//! | 75 | another drill of the same `DUMP_NAME` is running |
//! | 77 | run as root: no drill, server or tool of it runs as root; run it as the job's user, as its unit does; nothing recorded |
//! | 78 | the server the dump needs is not installed, or is older than the dump, or its psql lacks `\restrict` (the message names the Debian package to install) |

mod compare;
mod config;
mod drill;
mod engine;
mod engines;
mod mariadb;
mod pgguard;
mod pglex;
mod postgres;
mod sqlite;
mod watch;

use jobkit::config::Environment;
use std::process::ExitCode;

fn help() -> String {
    format!(
        "Usage: dump-database-drill [--help | --version]

Restores the newest good dump of DUMP_DIR/DUMP_NAME into a throwaway server
started for it, compares the tables with the dump's manifest, and removes
the server again.

{}",
        jobkit::usage::help(&jobkit::usage::DRILL, "dump-database-drill")
    )
}

fn main() -> ExitCode {
    jobkit::run_job("dump-database-drill", help, || {
        jobkit::identity::refuse_reserved_instance()?;
        drill::run(&config::Config::from_env(&Environment)?)
    })
}
