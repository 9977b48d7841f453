//! `dump-database`: runs DUMP_COMMAND, compresses its standard output with
//! gzip or zstd (or keeps it as written) into a temp file in DUMP_DIR,
//! publishes it as `NAME-YYYYMMDDTHHMMSSZ.EXT.gz`, `.EXT.zst` or `.EXT` (UTC)
//! only once the command succeeded and the file is on disk, then keeps the
//! DUMP_KEEP newest dumps of NAME, whatever their form. A failed or
//! interrupted run leaves every earlier dump as it was and no temp file
//! behind. Dumps named later than this run's (a clock that was ahead) are
//! neither counted nor removed.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DUMP_COMMAND` | dump command, split like a shell would and run without one; its stdout is the dump; `${CREDENTIALS_DIRECTORY}` in it becomes systemd's credentials directory | required |
//! | `DUMP_DIR` | absolute path of the directory the dumps are kept in | `/var/lib/timerapps/dumps` |
//! | `DUMP_KEEP` | how many dumps to keep, at least 1 | `5` |
//! | `DUMP_NAME` | file-name prefix: letters, digits, `.`, `_`, `-` | `dump` |
//! | `DUMP_COMPRESS` | `gzip`, `zstd`, or `none` to keep the command's bytes as they are (for `pg_dump -Fc`) | `gzip` |
//! | `DUMP_GZIP_LEVEL` | gzip level, 1 (fastest) to 9 (smallest) | `6` |
//! | `DUMP_ZSTD_LEVEL` | zstd level, 1 (fastest) to 19 (smallest) | `3` |
//! | `DUMP_EXTENSION` | what the dump is, before the compression's suffix: letters, digits, `_`, `-` (`dump` for `pg_dump -Fc`) | `sql` |
//! | `DUMP_THREADS` | compression threads, 1 to 64 | the CPUs the job may use, at most 4 |
//! | `DUMP_SETTINGS` | the file these are set in, named when DUMP_COMMAND is missing (set by the units) | `/etc/default/dump-database` |
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | the dump was published and old dumps pruned |
//! | 1 | the dump failed: command failed, was killed or wrote nothing, read or write error, temp file removed meanwhile, publish or prune failed |
//! | 2 | bad argument or malformed variable; nothing written |
//! | 73 | DUMP_DIR missing, not a directory, or not writable; or its lock file `.NAME.lock` cannot be opened or is not a regular file |
//! | 75 | another run holds the lock of DUMP_NAME, or this run lost it; nothing published or pruned |
//! | 77 | run as root on a DUMP_DIR another user owns; nothing written |
//! | 78 | DUMP_COMMAND is not set; nothing written |
//! | 130, 143 | stopped by SIGINT or SIGTERM (passed on to the command): the dump was discarded, or, if the signal came once it was published, old dumps were pruned first |

mod child;
mod compress;
mod config;
mod dump;
mod pgzip;
mod store;
mod supervise;

use jobkit::config::Environment;
use std::process::ExitCode;

const HELP: &str = "Usage: dump-database [--help | --version]

Runs DUMP_COMMAND, compresses its output and publishes it atomically as
DUMP_DIR/DUMP_NAME-YYYYMMDDTHHMMSSZ.sql.gz (.sql.zst with zstd, .sql with
none), then keeps the DUMP_KEEP newest of that name in any of these forms.

Environment:
  DUMP_COMMAND     dump command, split like a shell would, run without one
                   (required); ${CREDENTIALS_DIRECTORY} in it becomes the
                   directory of the service's credentials (LoadCredential=)
  DUMP_DIR         directory of the dumps (default /var/lib/timerapps/dumps)
  DUMP_KEEP        number of dumps to keep, at least 1 (default 5)
  DUMP_NAME        file-name prefix (default dump)
  DUMP_COMPRESS    gzip, zstd, or none to keep the output as it is (default
                   gzip)
  DUMP_GZIP_LEVEL  1 (fastest) to 9 (smallest) (default 6)
  DUMP_ZSTD_LEVEL  1 (fastest) to 19 (smallest) (default 3)
  DUMP_EXTENSION   the name's extension before .gz or .zst (default sql; dump
                   for pg_dump -Fc)
  DUMP_THREADS     compression threads, 1 to 64 (default: the CPUs the job may
                   use, at most 4)
  DUMP_SETTINGS    the file these are set in, for messages (set by the units;
                   default /etc/default/dump-database)

Exit status: 0 published, 1 dump failed, 2 bad argument or value, 73 DUMP_DIR
or its lock file unusable, 75 another run holds the lock or this run lost it,
77 root on another user's DUMP_DIR, 78 DUMP_COMMAND not set, 130/143 stopped
by SIGINT/SIGTERM.
";

fn main() -> ExitCode {
    jobkit::run_job(
        "dump-database",
        || HELP.to_owned(),
        || dump::run(&config::Config::from_env(&Environment)?),
    )
}
