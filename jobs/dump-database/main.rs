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
//! | `DUMP_COMMAND` | the dump command; split into words with shell quoting rules and run without a shell; its stdout is the dump, its stderr goes to the journal; `${CREDENTIALS_DIRECTORY}` in it becomes the service's credentials directory (`LoadCredential=`) | required |
//! | `DUMP_DIR` | absolute path of the directory the dumps are kept in; must exist | `/var/lib/timerapps/dumps/dump-database` |
//! | `DUMP_KEEP` | how many of the newest good dumps to keep, at least 1; also how many suspect dumps are kept | `5` |
//! | `DUMP_KEEP_HOURLY` | for the last N hours that have a good dump, keep the newest of each (local time, as restic's `forget --keep-hourly`) | `0` |
//! | `DUMP_KEEP_DAILY` | the same for the last N days | `0` |
//! | `DUMP_KEEP_WEEKLY` | the same for the last N ISO weeks | `0` |
//! | `DUMP_KEEP_MONTHLY` | the same for the last N months | `0` |
//! | `DUMP_NAME` | file-name prefix, and an instance's name: 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit | `dump` |
//! | `DUMP_COMPRESS` | `gzip`, `zstd`, or `none` to keep the command's bytes as they are (for `pg_dump -Fc`) | `gzip` |
//! | `DUMP_GZIP_LEVEL` | gzip level, 1 (fastest) to 9 (smallest) | `6` |
//! | `DUMP_ZSTD_LEVEL` | zstd level, 1 (fastest) to 19 (smallest) | `3` |
//! | `DUMP_EXTENSION` | what the dump is, before the compression's suffix: letters, digits, `_`, `-` (`dump` for `pg_dump -Fc`) | `sql` |
//! | `DUMP_CHECK` | `auto`: recognise the dump format and fail a dump whose end is missing, count each table's rows; `off`: neither | `auto` |
//! | `DUMP_SHRINK_LIMIT` | a dump whose raw size or rows are below this percentage of those of the largest good dump kept (since the newest accepted one) is suspect; `0` turns this off, a dump without rows where that one had some is suspect all the same | `50` |
//! | `DUMP_FINISH_TIMEOUT` | seconds that flushing, publishing and pruning may take once the command has ended, 1 to 86400; a file system that does not answer for longer ends the run with exit 1, earlier dumps untouched | `600` |
//! | `DUMP_THREADS` | compression threads, 1 to 64 | the CPUs the job may use, at most 4 |
//! | `DUMP_MEMORY_MAX` | the memory the job may use, as `MemoryMax=` takes it (`2G`, `1536M`), for where its cgroup sets none or more (a run by hand, cgroup v1, which has no `MemoryHigh=`): compression may take half of the smaller of this and the cgroup's `memory.high` or `memory.max` (cgroup v1: `memory.limit_in_bytes`), and settings that need more exit 2 | none: the cgroup's limit alone |
//! | `DUMP_SETTINGS` | the file these are set in, named when `DUMP_COMMAND` is missing; set by the units | `/etc/default/dump-database` |
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | the dump was published and old dumps pruned |
//! | 1 | the dump failed: command failed, was killed or wrote nothing, its format's end is missing or it is not the format the command writes, read or write error (disk full), temp file removed meanwhile, publish or prune failed |
//! | 2 | bad argument or malformed variable, `DUMP_DIR` the directory of every job's dump directory, an instance named `dump-database`, the default job's own directory, or compression settings that need more than half the job's memory limit (the level and `DUMP_THREADS`, against `MemoryHigh=`/`MemoryMax=` or `DUMP_MEMORY_MAX`); nothing written |
//! | 65 | the dump was published but is suspect: far smaller, in raw size or rows, than the largest good dump kept, or no rows where that one had some; it counts toward no retention rule (`timerapps accept` makes it good) |
//! | 73 | `DUMP_DIR` missing, not a directory, or not writable; or its lock file `.NAME.lock` cannot be opened or is not a regular file (the message says why and what to remove); or it names another unit, whose job writes these dump names into this directory (set another `DUMP_NAME` or `DUMP_DIR`; a run by hand, outside a unit, is never refused) |
//! | 75 | another run of the same `DUMP_NAME`, or `timerapps accept`, holds the lock, or this run lost it; nothing published or pruned |
//! | 77 | run as root on a `DUMP_DIR` that another user owns; nothing written |
//! | 78 | `DUMP_COMMAND` is not set; nothing written |
//! | 130, 143 | stopped by SIGINT or SIGTERM, which is passed on to the command; the dump was discarded, or, when the signal came after it was published, old dumps were pruned first and the message says so |

mod child;
mod compress;
mod config;
mod dump;
mod memory;
mod pgzip;
mod stream;
mod supervise;

use jobkit::config::Environment;
use std::process::ExitCode;

fn help() -> String {
    format!(
        "Usage: dump-database [--help | --version]

Runs DUMP_COMMAND, compresses its output and publishes it atomically as
DUMP_DIR/DUMP_NAME-YYYYMMDDTHHMMSSZ.sql.gz (.sql.zst with zstd, .sql with
none), then keeps the DUMP_KEEP newest of that name in any of these forms.

{}",
        jobkit::usage::help(&jobkit::usage::DUMP, "dump-database")
    )
}

fn main() -> ExitCode {
    jobkit::run_job("dump-database", help, || {
        jobkit::identity::refuse_reserved_instance()?;
        let cfg = config::Config::from_env(&Environment)?;
        memory::check(&cfg, jobkit::host::cgroup::memory_limit())?;
        dump::run(&cfg)
    })
}
