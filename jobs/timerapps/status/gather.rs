//! What status knows of a job, read from systemd and from the job's dump
//! directory, before anything is judged or shown.

use crate::jobs::{Companion, Job, Settings};
use crate::systemd::{calendar, read, Bus, Scope, TimerState};
use chrono::Utc;
use jobkit::config::Source;
use jobkit::dumpfile::{Location, Stamp};
use jobkit::record;
use jobkit::retention::{self, Planned};
use jobkit::{Error, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A job's timer, its service's last run and its dumps, as read.
pub struct Facts {
    pub job: Job,
    /// The timer's unit file state: enabled, disabled, ...
    pub enabled: String,
    /// The timer's state: active, inactive, failed.
    pub timer_state: String,
    /// The normalized `OnCalendar=` expressions in effect.
    pub calendar: Vec<String>,
    /// `TimersMonotonic`: (base such as `OnUnitActiveUSec`, µs).
    pub monotonic: Vec<(String, u64)>,
    /// When the timer last started the service, µs since the epoch; 0 never.
    pub last_trigger: u64,
    /// The next run, µs since the epoch; 0 none.
    pub next: u64,
    /// The service's state: activating while it runs, failed, ...
    pub service_state: String,
    /// success, exit-code, signal, watchdog, timeout, ... as systemd says.
    pub result: String,
    pub started: u64,
    pub exited: u64,
    pub status: i32,
    /// Time between runs: the shortest interval after each run, else the
    /// calendar's widest spacing; `Err` when the calendar cannot be read.
    pub period: std::result::Result<Option<Duration>, String>,
    /// The calendar's next elapse, µs since the epoch, as systemd computes
    /// it now (the timer's own is stale while its service stops).
    pub calendar_next: Option<u64>,
    /// For a job that keeps dumps.
    pub dumps: Option<DumpFacts>,
    /// A dump job without `DUMP_COMMAND`: the settings file to set it in.
    pub not_configured: Option<String>,
    /// For a job that keeps dumps: its restore drill.
    pub drill: Option<DrillFacts>,
    /// For a job that keeps dumps, in the system's manager: its off-host
    /// copy.
    pub copy: Option<CopyFacts>,
    /// Whether its settings name a destination for copies
    /// (`COPY_REPOSITORY` or `COPY_COMMAND`).
    pub copy_configured: bool,
}

/// A job's restore drill or off-host copy: its timer and its last record.
pub struct CompanionFacts<R> {
    /// The timer's unit file state: enabled, disabled, ...
    pub enabled: String,
    /// Time between runs by the timer's schedule, when it is enabled.
    pub period: Option<Duration>,
    /// The last run's record: `None` before the first, `Err` unreadable.
    pub last: std::result::Result<Option<R>, String>,
}

pub type DrillFacts = CompanionFacts<jobkit::drill::Record>;
pub type CopyFacts = CompanionFacts<jobkit::copy::Record>;

/// Where a job's dumps are and what is there.
pub enum DumpFacts {
    /// The settings name no valid place.
    Invalid(Error),
    Read {
        location: Location,
        /// The dumps, newest first, with what keeps them, or why they could
        /// not be listed.
        listed: std::result::Result<Vec<Planned>, String>,
        /// A settings file that could not be read.
        unreadable: Option<String>,
    },
}

pub fn facts(sd: &dyn Bus, job: &Job, now: u64) -> Result<Facts> {
    let read = read("cannot read the state of a job");
    let timer_unit = sd.unit(&job.timer()).map_err(&read)?;
    let timer = sd.timer(&job.timer()).map_err(&read)?;
    let service_unit = sd.unit(&job.service()).map_err(&read)?;
    let service = sd.last_run(&job.service()).map_err(&read)?;
    let settings = Settings::of(sd, job)?;
    let dumps = settings.keeps_dumps.then(|| dump_facts(&settings));
    let not_configured = (settings.keeps_dumps
        && settings.get("DUMP_COMMAND").is_none_or(|c| c.is_empty()))
    .then(|| settings.file_to_edit());
    let elapses = calendar::elapses(&timer.calendar).map_err(|e| e.to_string());
    let calendar_next = elapses.as_ref().ok().and_then(|e| e.first().copied());
    let period = elapses.map(|e| period(&e, &timer.monotonic));
    let drill = companion_facts(sd, job, Companion::Drill, "DRILL_RESULT")?;
    let copy = match sd.scope() {
        Scope::System => companion_facts(sd, job, Companion::Copy, "COPY_RESULT")?,
        Scope::User => None,
    };
    let copy_configured = ["COPY_REPOSITORY", "COPY_COMMAND"]
        .iter()
        .any(|v| settings.get(v).is_some_and(|s| !s.is_empty()));
    Ok(Facts {
        job: job.clone(),
        enabled: timer_unit.file,
        timer_state: timer_unit.active,
        next: next_elapse(&timer, now),
        calendar: timer.calendar,
        monotonic: timer.monotonic,
        last_trigger: timer.last_trigger,
        service_state: service_unit.active,
        result: service.result,
        started: service.started,
        exited: service.exited,
        status: service.status,
        period,
        calendar_next,
        dumps,
        not_configured,
        drill,
        copy,
        copy_configured,
    })
}

/// The state and schedule of the timer of `job`'s `companion`, and the
/// record its service's `variable` names; `None` for a job without one.
fn companion_facts<R: serde::de::DeserializeOwned>(
    sd: &dyn Bus,
    job: &Job,
    companion: Companion,
    variable: &str,
) -> Result<Option<CompanionFacts<R>>> {
    let (Some(unit), Some(timer_name)) = (
        job.companion_service(companion),
        job.companion_timer(companion),
    ) else {
        return Ok(None);
    };
    let read = read(match companion {
        Companion::Drill => "cannot read the state of a restore drill",
        Companion::Copy => "cannot read the state of an off-host copy",
    });
    let enabled = sd.unit(&timer_name).map_err(&read)?.file;
    let period = if enabled == "enabled" {
        let timer = sd.timer(&timer_name).map_err(&read)?;
        calendar::elapses(&timer.calendar)
            .ok()
            .and_then(|e| period(&e, &timer.monotonic))
    } else {
        None
    };
    let prefix = format!("{variable}=");
    let result = sd
        .setup(&unit)
        .map_err(&read)?
        .environment
        .iter()
        .find_map(|kv| kv.strip_prefix(&prefix).map(std::path::PathBuf::from));
    let last = match result {
        None => Ok(None),
        Some(path) => {
            record::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
    };
    Ok(Some(CompanionFacts {
        enabled,
        period,
        last,
    }))
}

/// The shortest of the intervals after each run, and the widest spacing of
/// the calendar's next `elapses`. Never how long ago the timer last ran: a
/// timer stopped for days must not stretch its own staleness.
fn period(elapses: &[u64], monotonic: &[(String, u64)]) -> Option<Duration> {
    let every = monotonic
        .iter()
        .filter(|(base, _)| base == "OnUnitActiveUSec" || base == "OnUnitInactiveUSec")
        .map(|(_, usec)| Duration::from_micros(*usec))
        .min();
    every.into_iter().chain(calendar::spacing(elapses)).min()
}

fn dump_facts(settings: &Settings) -> DumpFacts {
    let location = match Location::from_env(settings) {
        Ok(location) => location,
        Err(e) => return DumpFacts::Invalid(e),
    };
    let now = Stamp::of(Utc::now());
    let listed = match retention::plan(&location.dir, &location.names, &location.policy, &now) {
        // The service makes the directory on its first run.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        listed => listed.map_err(|e| format!("cannot read {}: {e}", location.dir.display())),
    };
    DumpFacts::Read {
        location,
        listed,
        unreadable: settings.unreadable.first().cloned(),
    }
}

/// The next elapse in real time; a monotonic one converted.
fn next_elapse(timer: &TimerState, now: u64) -> u64 {
    let (realtime, monotonic) = (timer.next_realtime, timer.next_monotonic);
    if monotonic == 0 || monotonic == u64::MAX {
        return if realtime == u64::MAX { 0 } else { realtime };
    }
    let converted = now + monotonic.saturating_sub(monotonic_usec());
    if realtime == 0 || realtime == u64::MAX {
        converted
    } else {
        realtime.min(converted)
    }
}

/// Now, in µs since the epoch, as systemd gives its times.
pub fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into ts.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}
