//! `timerapps`: every job at a glance, its schedule set safely, a run now,
//! its dumps verified, what retention keeps, and a suspect dump accepted.
//! It talks to systemd over D-Bus.
//!
//! JOB is `myapp`, `otherapp`, `dump-database` or `dump-database@NAME`,
//! with or without `.timer` or `.service`. With `--user` it acts on the
//! caller's own service manager (`systemctl --user`), where the jobs are
//! `myapp`, `otherapp` and `dump-database@NAME`, and needs no root.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `NO_COLOR` | set and not empty: no color, even on a terminal | unset |
//! | `TMPDIR` | absolute path of the directory where `restore` holds a dump's contents until they are verified, in a file without a name that is gone when it ends; it needs room for them | `/var/tmp` |
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | done; for `status`, every job shown is healthy; for `verify`, every dump is intact |
//! | 1 | a job shown failed, its newest dump is suspect or named in the future, a dump's manifest is missing, damaged or of another file, its newest good dump is older than two periods, or it is an enabled dump job not configured, or its last restore drill, off-host copy or repository check failed, or its good dumps are not off the host two periods after they were made; the run, the drill or the copy failed; a dump is damaged or untrusted, or none is kept; `restore` found no such dump or copy, or it is damaged; `schedule` was written but another drop-in overrides it; `accept` found no such dump, cannot read it back, or cannot open the lock file `.NAME.lock` of its dump name (a symlink or no regular file); systemd refused |
//! | 2 | bad argument: unknown job or command, invalid instance name, calendar expression, stamp or `TMPDIR`; `restore` to a terminal; nothing changed |
//! | 3 | could not tell: systemd cannot be reached; for `status`, a job's state cannot be read (it is shown as unknown, the others as they are: a manifest or record that is a symlink, FIFO, device or too large is unreadable) or the report cannot be written; for `verify`, a dump's manifest cannot be read and no dump is damaged |
//! | 75 | `accept` while a run of the job holds the lock of its dump name, or after it lost that lock; nothing changed, try again when the run has finished |
//! | 77 | a command that changes the system's timers or dumps, run by a user other than root (without `--user`); nothing changed |
//! | 78 | `enable` of an instance whose settings file is missing; nothing changed; `restore --offsite` of a job without `COPY_REPOSITORY` or without its repository password, or without restic |

mod accept;
mod control;
mod dumps;
mod format;
mod jobs;
mod keep;
mod mail;
mod monitoring;
mod restore;
mod schedule;
mod smtp;
mod status;
mod sweep;
mod systemd;
mod verify;

use clap::{CommandFactory, Parser, Subcommand};
use jobkit::catalogue::{COPY, DRILL};
use jobkit::{errln, euid, Error, Exit, Result};
use jobs::TimerJob;
use std::process::ExitCode;
use systemd::Scope;

#[derive(Parser)]
#[command(
    name = "timerapps",
    version,
    about = "See, schedule, run and verify the timerapps jobs",
    after_help = after_help()
)]
struct Cli {
    /// Act on your own service manager (systemctl --user), not the system's.
    #[arg(long, global = true)]
    user: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show each job's timer, schedule, last and next run, and newest dump
    /// (the default command); exit 1 if one failed or is stale.
    Status {
        /// Print JSON, for monitoring.
        #[arg(long)]
        json: bool,
        /// The jobs to show (default: every job).
        #[arg(value_name = "JOB")]
        jobs: Vec<String>,
    },
    /// Run JOB on CALENDAR (a systemd calendar expression) instead of its
    /// packaged interval; --default restores the packaged schedule.
    Schedule {
        #[arg(value_name = "JOB")]
        job: String,
        #[arg(
            value_name = "CALENDAR",
            required_unless_present = "default",
            conflicts_with = "default"
        )]
        calendar: Option<String>,
        /// Remove the schedule set by timerapps.
        #[arg(long)]
        default: bool,
    },
    /// Enable JOB's timer and start it now.
    Enable {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// Disable JOB's timer and stop it now.
    Disable {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// Run JOB now, wait for it and print what it wrote; exit 0 only if it
    /// succeeded.
    Run {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// Run JOB's restore drill now: its newest good dump restored into a
    /// throwaway server and compared with its manifest; exit 0 only if it
    /// passed.
    Drill {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// Run JOB's off-host copy now: every good dump not yet in its
    /// repository copied and verified; exit 0 only if it succeeded.
    Copy {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// Write a dump of JOB, as its command wrote it, to standard output: the
    /// newest good dump kept, or STAMP's; with --offsite, its copy in the
    /// job's restic repository.
    Restore {
        #[arg(value_name = "JOB")]
        job: String,
        /// Read the copy in the job's restic repository (COPY_REPOSITORY).
        #[arg(long)]
        offsite: bool,
        /// The dump's stamp, YYYYMMDDTHHMMSSZ, as in its name.
        #[arg(value_name = "STAMP")]
        stamp: Option<String>,
    },
    /// Decompress each kept dump of JOB end to end and compare its SHA-256
    /// with its manifest's; exit 1 if one is damaged.
    Verify {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// List each dump of JOB with the retention rules that keep it, and
    /// those the next run would remove; changes nothing.
    Keep {
        #[arg(value_name = "JOB")]
        job: String,
    },
    /// Make JOB's newest suspect dump, or DUMP (its file name), good: the
    /// database really did shrink.
    Accept {
        #[arg(value_name = "JOB")]
        job: String,
        #[arg(value_name = "DUMP")]
        dump: Option<String>,
    },
    /// Write UNIT's metrics for node_exporter (systemd runs it after each
    /// run of a system job).
    #[command(hide = true)]
    WriteMetrics {
        #[arg(value_name = "UNIT")]
        unit: String,
    },
    /// Mail UNIT's failure to MAIL_TO (the timerapps-mail@ unit runs it).
    #[command(hide = true)]
    MailFailure {
        #[arg(value_name = "UNIT")]
        unit: String,
    },
    /// Remove the lock and temp files of dump runs (for the package's
    /// removal).
    #[command(hide = true)]
    SweepRunFiles,
    /// Print the completion script for SHELL (for packaging).
    #[command(hide = true)]
    Completion {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

fn after_help() -> String {
    format!(
        "JOB is myapp, otherapp, dump-database or dump-database@NAME, with or without \
         .timer or .service; with --user (your own timers, no root needed) myapp, \
         otherapp or dump-database@NAME.\n\n{}",
        jobkit::usage::help(&jobkit::usage::COMMAND, "timerapps")
    )
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                0
            });
        }
    };
    let scope = if cli.user { Scope::User } else { Scope::System };
    let command = cli.command.unwrap_or(Command::Status {
        json: false,
        jobs: Vec::new(),
    });
    match run(command, scope) {
        Ok(code) => code,
        Err(err) => {
            errln!("timerapps: {err}");
            ExitCode::from(err.exit().code())
        }
    }
}

fn run(command: Command, scope: Scope) -> Result<ExitCode> {
    let healthy = match command {
        Command::Status { json, jobs } => {
            return status::run(&jobs, json, scope).map(ExitCode::from);
        }
        // Each job is checked before anything else, so that a bad name is
        // refused the same way for every user and nothing is changed.
        Command::Schedule {
            job,
            calendar,
            default,
        } => {
            let job = TimerJob::resolve(&job, scope)?;
            let calendar = calendar.filter(|_| !default);
            let calendar = calendar.as_deref().map(schedule::parse).transpose()?;
            root_only("schedule", scope)?;
            schedule::run(&job, calendar, scope)?
        }
        Command::Enable { job } => {
            let job = TimerJob::resolve(&job, scope)?;
            root_only("enable", scope)?;
            control::enable(&job, scope)?
        }
        Command::Disable { job } => {
            let job = TimerJob::resolve(&job, scope)?;
            root_only("disable", scope)?;
            control::disable(&job, scope)?
        }
        Command::Run { job } => {
            let job = TimerJob::resolve(&job, scope)?;
            root_only("run", scope)?;
            control::run(&job, scope)?
        }
        Command::Drill { job } => {
            let job = TimerJob::resolve(&job, scope)?;
            root_only("drill", scope)?;
            control::companion(&job, &DRILL, scope)?
        }
        Command::Copy { job } => {
            let job = TimerJob::resolve(&job, scope)?;
            root_only("copy", scope)?;
            control::companion(&job, &COPY, scope)?
        }
        Command::Restore {
            job,
            offsite,
            stamp,
        } => {
            let job = TimerJob::resolve(&job, scope)?;
            root_only("restore", scope)?;
            restore::run(&job, offsite, stamp.as_deref(), scope)?
        }
        Command::Verify { job } => verify::run(&TimerJob::resolve(&job, scope)?, scope)?,
        Command::Keep { job } => keep::run(&TimerJob::resolve(&job, scope)?, scope)?,
        Command::Accept { job, dump } => {
            let job = TimerJob::resolve(&job, scope)?;
            root_only("accept", scope)?;
            accept::run(&job, dump.as_deref(), scope)?
        }
        Command::WriteMetrics { unit } => {
            root_only("write-metrics", scope)?;
            status::write_metrics(&unit)?;
            true
        }
        Command::MailFailure { unit } => mail::run(&unit, scope)?,
        Command::SweepRunFiles => {
            root_only("sweep-run-files", scope)?;
            sweep::run()?
        }
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "timerapps",
                &mut std::io::stdout(),
            );
            true
        }
    };
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Commands that change the system's timers refuse other users before
/// touching anything; a user's own manager is theirs to change.
fn root_only(command: &str, scope: Scope) -> Result<()> {
    if euid() == 0 || scope == Scope::User {
        return Ok(());
    }
    Err(Error::new(
        Exit::NoPermission,
        format!(
            "{command} changes the system's timers or dumps and needs root; nothing was \
             changed: run it with sudo, or with --user for your own timers"
        ),
    ))
}
