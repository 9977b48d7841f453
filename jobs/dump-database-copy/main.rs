//! `dump-database-copy`: the off-host copy of a dump job. It copies every
//! good dump of the job that is not in the destination yet, oldest first,
//! so that a run after an outage catches up and a second run copies
//! nothing twice. Into a restic repository, each dump goes decompressed,
//! as a snapshot of its own, tagged with the job's identity (this machine's
//! ID and the dump unit whose copy unit runs it) and the dump's stamp and
//! taken at the dump's time, so that restic deduplicates and compresses it;
//! it is read back and its SHA-256 compared before it counts. Then the
//! repository's retention, as the installed restic applies it, forgets
//! this job's snapshots beyond its rules and no other's; once a day the
//! repository is pruned and a part of it checked. Local dumps are only ever
//! read. It records its result in COPY_RESULT for `timerapps status` and
//! the metrics.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DUMP_DIR` | where the job keeps its dumps, as for `dump-database`: the copy reads the job's own settings file | `/var/lib/timerapps/dumps/dump-database` |
//! | `DUMP_NAME` | the job's dumps' file-name prefix, as for `dump-database` | `dump` |
//! | `DUMP_EXTENSION` | what the dump is, before the compression's suffix, as for `dump-database` | `sql` |
//! | `COPY_REPOSITORY` | the restic repository every good dump is copied into, as restic names it (`rest:https://…`, `sftp:host:/path`, `s3:…`); unset or empty: no restic copy | unset |
//! | `COPY_PASSWORD_FILE` | absolute path of the repository's password, given to restic as `RESTIC_PASSWORD_FILE`; set by the units to the credential loaded from `/etc/timerapps/credentials/copies/UNIT/restic-password` | unset |
//! | `COPY_KEEP` | how many of the newest copies the repository keeps, at least 1; applied with `restic forget` to this job's own snapshots only (this machine's and this unit's), pruned at most once a day | `DUMP_KEEP`'s value |
//! | `COPY_KEEP_HOURLY` | for the last N hours that have a copy, keep the newest of each, as `DUMP_KEEP_HOURLY` does for the dumps | `DUMP_KEEP_HOURLY`'s value |
//! | `COPY_KEEP_DAILY` | the same for the last N days | `DUMP_KEEP_DAILY`'s value |
//! | `COPY_KEEP_WEEKLY` | the same for the last N ISO weeks | `DUMP_KEEP_WEEKLY`'s value |
//! | `COPY_KEEP_MONTHLY` | the same for the last N months | `DUMP_KEEP_MONTHLY`'s value |
//! | `COPY_HOST` | the host name the snapshots are recorded under; which snapshots are this job's is told by the machine's ID and the unit, not by it | this machine's host name |
//! | `COPY_CONNECT_TIMEOUT` | seconds restic may take to open the repository and list its snapshots, 1 to 86400; restic itself retries an unreachable repository for up to 15 minutes | `120` |
//! | `COPY_COMMAND` | instead of restic, a command run once per good dump not yet sent, oldest first, split into words with shell quoting rules and run without a shell; it gets `COPY_DUMP` (the dump's path), `COPY_STAMP`, `COPY_SIZE` and `COPY_SHA256` (of the stored file) in its environment, and `${COPY_DUMP}` and the others in its words are replaced; it must exit 0 once the dump is safely stored; retention at the destination is its own business | unset |
//! | `COPY_RESULT` | absolute path of the file the copy records its result in, for `timerapps status` and the metrics; set by the units; unset: not recorded | unset |
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | every good dump due is in the destination and verified, and the repository's retention applied; or no destination is configured |
//! | 1 | a copy failed: the repository cannot be reached or opened (wrong password, no repository there), a dump could not be read, restic or the command failed, the copy read back differs, or `restic check` found damage; local dumps are never changed |
//! | 2 | bad argument or malformed variable, as for `dump-database`; nothing done |
//! | 73 | `COPY_RESULT` cannot be written |
//! | 75 | another copy of the same job is running |
//! | 78 | `COPY_REPOSITORY` is set but restic is not installed, the repository password is missing (the message names the file to create), or the copy runs outside its unit (`timerapps copy JOB` runs it there); or the job's dumps are another unit's, whose job writes these dump names into this directory (`.NAME.lock` names it) |

mod command;
mod config;
mod copy;
mod send;

use jobkit::config::Environment;
use std::process::ExitCode;

fn help() -> String {
    format!(
        "Usage: dump-database-copy [--help | --version]

Copies every good dump of DUMP_DIR/DUMP_NAME that is not yet off the host
into the restic repository COPY_REPOSITORY (or through COPY_COMMAND),
oldest first, verifies each copy, and applies the repository's retention.

{}",
        jobkit::usage::help(&jobkit::usage::COPY, "dump-database-copy")
    )
}

fn main() -> ExitCode {
    jobkit::run_job("dump-database-copy", help, || {
        jobkit::identity::refuse_reserved_instance()?;
        copy::run(&config::Config::from_env(&Environment)?)
    })
}
