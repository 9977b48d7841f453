//! `dump-database`: runs DUMP_COMMAND, gzip-compresses its standard output
//! into a temp file in DUMP_DIR, publishes it as `NAME-YYYYMMDDTHHMMSSZ.sql.gz`
//! (UTC) only once the command succeeded and the file is on disk, then keeps
//! the DUMP_KEEP newest dumps. A failed or interrupted run leaves every
//! earlier dump as it was and no temp file behind. Dumps named later than
//! this run's (a clock that was ahead) are neither counted nor removed.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DUMP_COMMAND` | dump command, split like a shell would and run without one; its stdout is the dump; `${CREDENTIALS_DIRECTORY}` in it becomes systemd's credentials directory | required |
//! | `DUMP_DIR` | absolute path of the directory the dumps are kept in | `/var/lib/timerapps/dumps` |
//! | `DUMP_KEEP` | how many dumps to keep, at least 1 | `5` |
//! | `DUMP_NAME` | file-name prefix: letters, digits, `.`, `_`, `-` | `dump` |
//! | `DUMP_GZIP_LEVEL` | gzip level, 1 (fastest) to 9 (smallest) | `6` |
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
mod config;
mod dump;
mod pgzip;
mod store;
mod supervise;

use std::process::ExitCode;
use timerapps::config::Environment;

const HELP: &str = "Usage: dump-database [--help | --version]

Runs DUMP_COMMAND, gzip-compresses its output and publishes it atomically as
DUMP_DIR/DUMP_NAME-YYYYMMDDTHHMMSSZ.sql.gz, then keeps the DUMP_KEEP newest.

Environment:
  DUMP_COMMAND     dump command, split like a shell would, run without one
                   (required); ${CREDENTIALS_DIRECTORY} in it becomes the
                   directory of the service's credentials (LoadCredential=)
  DUMP_DIR         directory of the dumps (default /var/lib/timerapps/dumps)
  DUMP_KEEP        number of dumps to keep, at least 1 (default 5)
  DUMP_NAME        file-name prefix (default dump)
  DUMP_GZIP_LEVEL  1 (fastest) to 9 (smallest) (default 6)
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
    timerapps::main(
        "dump-database",
        || HELP.to_owned(),
        || dump::run(&config::Config::from_env(&Environment)?),
    )
}
