//! What `status --json` prints: one [`Row`] per job. This is the schema
//! that monitoring reads; the table is a view of it (`table.rs`).

use super::gather::{CompanionFacts, DumpFacts, Facts, Recorded};
use crate::format::{rfc3339, schedule_words};
use crate::jobs::TimerJob;
use jobkit::catalogue::Role;
use jobkit::dumpfile::manifest::Check;
use jobkit::dumpfile::plan::Planned;
use jobkit::record::copy;
use jobkit::retention::Rule;
use serde::Serialize;

/// What a row says of its job as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Healthy,
    /// It has problems: a failed run, a stale or suspect dump, ...
    Failing,
    /// Its state could not be read; `problems` says why.
    Unknown,
    /// A dump job without `DUMP_COMMAND`: it runs and dumps nothing.
    /// `problems` names the file to set it in.
    NotConfigured,
}

impl State {
    /// Whether `status` exits non-zero for it: a failing job; a job not
    /// configured whose timer is enabled, since it looks like a backup
    /// and makes none.
    pub fn alarming(self, enabled: &str) -> bool {
        match self {
            State::Failing => true,
            State::NotConfigured => enabled == "enabled",
            State::Healthy | State::Unknown => false,
        }
    }
}

#[derive(Serialize)]
pub struct Row {
    pub job: String,
    pub state: State,
    pub timer: String,
    pub service: String,
    /// The timer's unit file state: enabled, disabled, ...
    pub enabled: String,
    /// The timer's state: active, inactive, failed.
    pub active: String,
    pub schedule: String,
    /// The normalized `OnCalendar=` expressions in effect.
    pub calendar: Vec<String>,
    /// Seconds between runs, when the schedule says.
    pub period_seconds: Option<u64>,
    pub last_run: Option<LastRun>,
    pub next_run: Option<When>,
    pub dumps: Option<Dumps>,
    /// For a job that keeps dumps: its restore drill.
    pub drill: Option<Drill>,
    /// For a job that keeps dumps, in the system's manager: its off-host
    /// copy.
    pub copy: Option<Copy>,
    pub healthy: bool,
    pub problems: Vec<String>,
}

#[derive(Serialize)]
pub struct Drill {
    /// The drill timer's unit file state: enabled, disabled, ...
    pub enabled: String,
    /// Seconds between drills by the timer's schedule, when it is enabled.
    pub period_seconds: Option<u64>,
    /// The last drill, as it recorded itself; null before the first.
    pub last: Option<DrillRun>,
    /// Why its record could not be read.
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct DrillRun {
    pub started: When,
    pub age_seconds: u64,
    /// passed or failed.
    pub result: &'static str,
    pub reason: Option<String>,
    /// The dump restored: its file name.
    pub dump: Option<String>,
    /// The server it was restored into: "PostgreSQL 15.14".
    pub server: Option<String>,
    pub duration_seconds: f64,
    /// Whether the manifest had tables to compare with.
    pub compared: bool,
    pub tables: Option<u64>,
    pub rows: Option<u64>,
    /// The roles the dump names but does not make, which the drill made
    /// empty: not backed up. Null where not known.
    pub empty_roles: Option<Vec<String>>,
    /// When a drill last passed.
    pub last_success: Option<When>,
}

#[derive(Serialize)]
pub struct Copy {
    /// Whether the job's settings name a destination (`COPY_REPOSITORY` or
    /// `COPY_COMMAND`).
    pub configured: bool,
    /// The copy timer's unit file state: enabled, disabled, ...
    pub enabled: String,
    /// The last copy, as it recorded itself; null before the first.
    pub last: Option<CopyRun>,
    /// Why its record could not be read.
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct CopyRun {
    pub started: When,
    pub age_seconds: u64,
    /// restic or command.
    pub destination: &'static str,
    /// copied or failed.
    pub result: &'static str,
    pub reason: Option<String>,
    pub duration_seconds: f64,
    /// The dumps that run copied, oldest first.
    pub copied: Vec<String>,
    /// The newest dump in the destination.
    pub newest: Option<CopyNewest>,
    /// Good dumps due and not in the destination after that run.
    pub waiting: u64,
    /// When a copy last succeeded.
    pub last_success: Option<When>,
    /// The last `restic check` of the repository.
    pub check: Option<CopyCheck>,
}

#[derive(Serialize)]
pub struct CopyNewest {
    /// Its name in the destination.
    pub dump: String,
    pub stamped: When,
    pub age_seconds: u64,
}

#[derive(Serialize)]
pub struct CopyCheck {
    pub started: When,
    /// The part of the data it read: `--read-data-subset`, N/30.
    pub subset: String,
    /// passed or failed.
    pub result: &'static str,
    pub reason: Option<String>,
    pub last_success: Option<When>,
}

#[derive(Serialize)]
pub struct When {
    /// RFC 3339, local time.
    pub at: String,
    /// Microseconds since the epoch, as systemd gives them.
    pub usec: u64,
}

#[derive(Serialize)]
pub struct LastRun {
    pub started: When,
    /// Whether it runs now.
    pub running: bool,
    /// How it ended, in systemd's words (`Result`): success, exit-code,
    /// signal, core-dump, watchdog, timeout, ...; null while it runs, or
    /// for a run before this boot, which only the timer remembers.
    pub result: Option<String>,
    pub exit_status: Option<i32>,
    pub duration_seconds: Option<f64>,
}

#[derive(Serialize)]
pub struct Dumps {
    pub dir: String,
    /// DUMP_KEEP.
    pub keep: usize,
    /// Every retention rule that is on: "5 newest, 7 daily".
    pub policy: String,
    /// The dumps kept: good, suspect, untrusted and future.
    pub count: Option<usize>,
    pub suspect: Option<usize>,
    /// Good dumps whose stream was not checked: no format recognised,
    /// DUMP_CHECK=off, or no manifest.
    pub unchecked: Option<usize>,
    /// Dumps named later than now, which no rule counts or removes.
    pub future: Option<usize>,
    /// Dumps whose manifest is missing, damaged, of another file or
    /// unreadable, which no rule counts or removes.
    pub untrusted: Option<usize>,
    /// The newest dump, good or suspect, that is not named in the future.
    pub newest: Option<Newest>,
    /// The newest good dump: the one a restore would use.
    pub newest_good: Option<Newest>,
    /// Why the directory could not be read.
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct Newest {
    pub file: String,
    /// gzip, zstd or none, as DUMP_COMPRESS names them.
    pub form: &'static str,
    pub stamped: When,
    pub age_seconds: u64,
    pub size: u64,
    /// good or suspect.
    pub verdict: &'static str,
    /// How its stream was checked: complete, header (the custom format),
    /// off (DUMP_CHECK=off), or unchecked: no format recognised, or no
    /// manifest (a dump made before manifests, or an unreadable one).
    pub check: &'static str,
}

pub fn when(usec: u64) -> When {
    When {
        at: rfc3339(usec),
        usec,
    }
}

impl Row {
    /// The row of a job with `problems`, and `unknowns`: what could not be
    /// read, which leaves a job without problems unknown, not healthy.
    pub fn new(f: &Facts, problems: Vec<String>, unknowns: Vec<String>, now: u64) -> Row {
        let not_configured = super::health::not_configured(f);
        let state = if !problems.is_empty() {
            State::Failing
        } else if not_configured.is_some() {
            State::NotConfigured
        } else if !unknowns.is_empty() {
            State::Unknown
        } else {
            State::Healthy
        };
        Row {
            job: f.job.name().to_owned(),
            timer: f.job.timer(),
            service: f.job.service(),
            enabled: f.enabled.clone(),
            active: f.timer_state.clone(),
            schedule: schedule_words(&f.calendar, &f.monotonic),
            calendar: f.calendar.clone(),
            period_seconds: f
                .period
                .as_ref()
                .ok()
                .copied()
                .flatten()
                .map(|p| p.as_secs()),
            last_run: last_run(f, now),
            next_run: (f.next > 0).then(|| when(f.next)),
            dumps: f.dumps.as_ref().map(|d| dumps(d, now)),
            drill: f.companion(Role::Drill).map(|d| drill(d, now)),
            copy: f
                .companion(Role::Copy)
                .map(|c| copy(c, f.copy_configured, now)),
            state,
            healthy: state == State::Healthy,
            problems: problems
                .into_iter()
                .chain(not_configured)
                .chain(unknowns)
                .collect(),
        }
    }

    /// A job whose state could not be gathered, and why.
    pub fn unknown(job: &TimerJob, why: &jobkit::Error) -> Row {
        Row {
            job: job.name().to_owned(),
            state: State::Unknown,
            timer: job.timer(),
            service: job.service(),
            enabled: String::new(),
            active: String::new(),
            schedule: String::new(),
            calendar: Vec::new(),
            period_seconds: None,
            last_run: None,
            next_run: None,
            dumps: None,
            drill: None,
            copy: None,
            healthy: false,
            problems: vec![why.to_string()],
        }
    }
}

fn drill(d: &CompanionFacts, now: u64) -> Drill {
    let usec = |s: i64| s.max(0) as u64 * 1_000_000;
    let last = match d.recorded() {
        Some(Recorded::Drill(r)) => Some(r),
        _ => None,
    }
    .map(|r| DrillRun {
        started: when(usec(r.started)),
        age_seconds: now.saturating_sub(usec(r.started)) / 1_000_000,
        result: jobkit::record::Outcome::word(r.result),
        reason: r.reason.clone(),
        dump: r.dump.clone(),
        server: r.server.clone(),
        duration_seconds: r.seconds,
        compared: r.compared,
        tables: r.tables,
        rows: r.rows,
        empty_roles: r.empty_roles.clone(),
        last_success: r.last_success.map(|s| when(usec(s))),
    });
    Drill {
        enabled: d.enabled.clone(),
        period_seconds: d.period.map(|p| p.as_secs()),
        last,
        error: d.last.as_ref().err().cloned(),
    }
}

fn copy(c: &CompanionFacts, configured: bool, now: u64) -> Copy {
    let usec = |s: i64| s.max(0) as u64 * 1_000_000;
    let age = |s: i64| now.saturating_sub(usec(s)) / 1_000_000;
    let last = match c.recorded() {
        Some(Recorded::Copy(r)) => Some(r),
        _ => None,
    }
    .map(|r| CopyRun {
        started: when(usec(r.started)),
        age_seconds: age(r.started),
        destination: r.destination.word(),
        result: jobkit::record::Outcome::word(r.result),
        reason: r.reason.clone(),
        duration_seconds: r.seconds,
        copied: r.copied.clone(),
        newest: r.newest.as_ref().map(|n| CopyNewest {
            dump: n.dump.clone(),
            stamped: when(usec(n.stamp)),
            age_seconds: age(n.stamp),
        }),
        waiting: r.waiting,
        last_success: r.last_success.map(|s| when(usec(s))),
        check: r.check.as_ref().map(|k| CopyCheck {
            started: when(usec(k.started)),
            subset: k.subset.clone(),
            result: match k.result {
                copy::CheckResult::Passed => "passed",
                copy::CheckResult::Failed => "failed",
            },
            reason: k.reason.clone(),
            last_success: k.last_success.map(|s| when(usec(s))),
        }),
    });
    Copy {
        configured,
        enabled: c.enabled.clone(),
        last,
        error: c.last.as_ref().err().cloned(),
    }
}

fn last_run(f: &Facts, now: u64) -> Option<LastRun> {
    if f.service_state == "activating" {
        Some(LastRun {
            started: when(f.started),
            running: true,
            result: None,
            exit_status: None,
            duration_seconds: Some(now.saturating_sub(f.started) as f64 / 1e6),
        })
    } else if f.started > 0 {
        Some(LastRun {
            started: when(f.started),
            running: false,
            result: Some(f.result.clone()),
            exit_status: Some(f.status),
            duration_seconds: (f.exited >= f.started).then(|| (f.exited - f.started) as f64 / 1e6),
        })
    } else if f.last_trigger > 0 {
        // Since the last boot systemd has not run it; its timer remembers when.
        Some(LastRun {
            started: when(f.last_trigger),
            running: false,
            result: None,
            exit_status: None,
            duration_seconds: None,
        })
    } else {
        None
    }
}

fn dumps(d: &DumpFacts, now: u64) -> Dumps {
    match d {
        DumpFacts::Invalid(e) => Dumps {
            dir: String::new(),
            keep: 0,
            policy: String::new(),
            count: None,
            suspect: None,
            unchecked: None,
            future: None,
            untrusted: None,
            newest: None,
            newest_good: None,
            error: Some(e.to_string()),
        },
        DumpFacts::Read {
            location,
            policy,
            listed,
            unreadable,
        } => {
            let count = |keep: &dyn Fn(&Planned) -> bool| {
                listed
                    .as_ref()
                    .ok()
                    .map(|list| list.iter().filter(|p| keep(p)).count())
            };
            // A dump named in the future is never the newest: it would hide
            // every later failure for as long as it exists; nor is one that
            // cannot be trusted.
            let present = || {
                listed
                    .iter()
                    .flatten()
                    .filter(|p| !p.rules.contains(&Rule::Future) && p.flaw().is_none())
            };
            let error = match listed {
                Ok(_) => unreadable.clone(),
                Err(e) => Some(e.clone()),
            };
            Dumps {
                dir: location.dir.display().to_string(),
                keep: policy.last as usize,
                policy: policy.to_string(),
                count: count(&|_| true),
                suspect: count(&Planned::suspect),
                unchecked: count(&|p| p.good() && !checked(p)),
                future: count(&|p| p.rules.contains(&Rule::Future)),
                untrusted: count(&|p| p.flaw().is_some()),
                newest: present().next().map(|p| newest(p, now)),
                newest_good: present().find(|p| p.good()).map(|p| newest(p, now)),
                error,
            }
        }
    }
}

/// Whether the dump's stream was found complete (or, for the custom
/// format, its header).
fn checked(p: &Planned) -> bool {
    p.manifest()
        .is_some_and(|m| matches!(m.check, Check::Complete | Check::Header))
}

fn newest(p: &Planned, now: u64) -> Newest {
    let d = &p.dump;
    let stamped = d.stamp.unix_seconds().max(0) as u64 * 1_000_000;
    let manifest = p.manifest();
    Newest {
        file: d
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into(),
        form: d.form.setting(),
        stamped: when(stamped),
        age_seconds: now.saturating_sub(stamped) / 1_000_000,
        size: d.size,
        verdict: if p.good() { "good" } else { "suspect" },
        check: manifest.map_or("unchecked", |m| m.check.word()),
    }
}
