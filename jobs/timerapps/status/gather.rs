//! What status knows of a job, read from systemd and from the job's dump
//! directory, before anything is judged or shown.

use crate::jobs::{Settings, TimerJob};
use crate::systemd::{calendar, read, Bus, TimerState};
use chrono::Utc;
use jobkit::catalogue::{Companion, Role, COMPANIONS};
use jobkit::config::Source;
use jobkit::dumpfile::plan::Planned;
use jobkit::dumpfile::{Location, Stamp};
use jobkit::record::{self, copy, drill};
use jobkit::retention::Policy;
use jobkit::{Error, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A job's timer, its service's last run and its dumps, as read.
pub struct Facts {
    pub job: TimerJob,
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
    /// For a job that keeps dumps: its companions in this manager, in the
    /// catalogue's order.
    pub companions: Vec<CompanionFacts>,
    /// Whether its settings name a destination for copies
    /// (`COPY_REPOSITORY` or `COPY_COMMAND`).
    pub copy_configured: bool,
}

/// A job's companion: its timer and its last record.
pub struct CompanionFacts {
    pub companion: &'static Companion,
    /// The timer's unit file state: enabled, disabled, ...
    pub enabled: String,
    /// Time between runs by the timer's schedule, when it is enabled.
    pub period: Option<Duration>,
    /// The last run's record: `None` before the first, `Err` unreadable.
    pub last: std::result::Result<Option<Recorded>, String>,
}

/// A companion's record, of its kind.
pub enum Recorded {
    Drill(drill::Record),
    Copy(copy::Record),
}

/// What every record holds, whatever its kind.
pub struct Envelope<'a> {
    pub started: i64,
    pub succeeded: bool,
    pub reason: Option<&'a str>,
    pub last_success: Option<i64>,
}

impl Recorded {
    /// The record of the kind of `role` at `path`.
    fn read(role: Role, path: &std::path::Path) -> std::io::Result<Option<Recorded>> {
        Ok(match role {
            Role::Drill => record::read(path)?.map(Recorded::Drill),
            Role::Copy => record::read(path)?.map(Recorded::Copy),
        })
    }

    pub fn envelope(&self) -> Envelope<'_> {
        fn of<K: record::Kind>(r: &record::Record<K>) -> Envelope<'_> {
            Envelope {
                started: r.started,
                succeeded: r.succeeded(),
                reason: r.reason.as_deref(),
                last_success: r.last_success,
            }
        }
        match self {
            Recorded::Drill(r) => of(r),
            Recorded::Copy(r) => of(r),
        }
    }
}

impl CompanionFacts {
    /// The last record, read: `None` before the first or when unreadable.
    pub fn recorded(&self) -> Option<&Recorded> {
        self.last.as_ref().ok().and_then(Option::as_ref)
    }
}

impl Facts {
    /// Its companion of `role`, where the job has one in this manager.
    pub fn companion(&self, role: Role) -> Option<&CompanionFacts> {
        self.companions.iter().find(|c| c.companion.role == role)
    }
}

/// Where a job's dumps are and what is there.
pub enum DumpFacts {
    /// The settings name no valid place.
    Invalid(Error),
    Read {
        location: Location,
        /// Which dumps it keeps.
        policy: Policy,
        /// The dumps, newest first, with what keeps them, or why they could
        /// not be listed.
        listed: std::result::Result<Vec<Planned>, String>,
        /// A settings file that could not be read.
        unreadable: Option<String>,
    },
}

pub fn facts(sd: &dyn Bus, job: &TimerJob, now: u64) -> Result<Facts> {
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
    let mut companions = Vec::new();
    for companion in COMPANIONS
        .iter()
        .filter(|c| c.in_manager(sd.scope().manager()))
    {
        companions.extend(companion_facts(sd, job, companion)?);
    }
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
        companions,
        copy_configured,
    })
}

/// The state and schedule of the timer of `job`'s `companion`, and the
/// record its service's record variable names; `None` for a job without
/// one.
fn companion_facts(
    sd: &dyn Bus,
    job: &TimerJob,
    companion: &'static Companion,
) -> Result<Option<CompanionFacts>> {
    let (Some(unit), Some(timer_name)) = (
        job.companion_service(companion),
        job.companion_timer(companion),
    ) else {
        return Ok(None);
    };
    let read = read(&format!("cannot read the state of {}", companion.noun.1));
    let enabled = sd.unit(&timer_name).map_err(&read)?.file;
    let period = if enabled == "enabled" {
        let timer = sd.timer(&timer_name).map_err(&read)?;
        calendar::elapses(&timer.calendar)
            .ok()
            .and_then(|e| period(&e, &timer.monotonic))
    } else {
        None
    };
    let prefix = format!("{}=", companion.record_variable);
    let result = sd
        .setup(&unit)
        .map_err(&read)?
        .environment
        .iter()
        .find_map(|kv| kv.strip_prefix(&prefix).map(std::path::PathBuf::from));
    let last = match result {
        None => Ok(None),
        Some(path) => Recorded::read(companion.role, &path)
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
    };
    Ok(Some(CompanionFacts {
        companion,
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
    let (location, policy) = match Location::from_env(settings)
        .and_then(|location| Ok((location, Policy::from_env(settings)?)))
    {
        Ok(found) => found,
        Err(e) => return DumpFacts::Invalid(e),
    };
    let now = Stamp::of(Utc::now());
    let listed = match location.plan(&policy, &now) {
        // The service makes the directory on its first run.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        listed => listed.map_err(|e| format!("cannot read {}: {e}", location.dir.display())),
    };
    DumpFacts::Read {
        location,
        policy,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::model::State;
    use crate::status::{row, table};
    use crate::systemd::fake::{scratch, Fake};
    use crate::systemd::Scope;
    use crate::systemd::{LastRun, Setup};
    use jobkit::catalogue::DRILL;
    use jobkit::record::drill::{Drill, DrillResult, Record, VERSION};

    const NOW: u64 = 1_800_000_000_000_000;
    const HOUR: u64 = 3_600_000_000;

    /// myapp, enabled and run every hour; its last run ended half an hour
    /// ago with `result` and `status`.
    fn myapp(result: &str, status: i32) -> Fake {
        let mut fake = Fake::new(Scope::System)
            .unit("myapp.timer", "active", "enabled")
            .unit(
                "myapp.service",
                if result == "success" {
                    "inactive"
                } else {
                    "failed"
                },
                "static",
            );
        fake.timers.insert("myapp.timer".into(), hourly());
        fake.runs.insert(
            "myapp.service".into(),
            LastRun {
                result: result.into(),
                started: NOW - HOUR / 2 - 1_000_000,
                exited: NOW - HOUR / 2,
                status,
                code: libc::CLD_EXITED,
                ..LastRun::default()
            },
        );
        fake.setups.insert(
            "myapp.service".into(),
            Setup {
                programs: vec!["/usr/bin/myapp".into()],
                ..Setup::default()
            },
        );
        fake
    }

    fn hourly() -> TimerState {
        TimerState {
            monotonic: vec![("OnUnitActiveUSec".into(), HOUR)],
            next_realtime: NOW + HOUR / 2,
            last_trigger: NOW - HOUR / 2,
            ..TimerState::default()
        }
    }

    fn job(name: &str, scope: Scope) -> TimerJob {
        TimerJob::parse(name, scope).unwrap()
    }

    #[test]
    fn a_failed_run_makes_the_job_failing_and_status_says_how() {
        let failed = myapp("exit-code", 3);
        let facts = facts(&failed, &job("myapp", Scope::System), NOW).unwrap();
        assert_eq!(
            (facts.enabled.as_str(), facts.timer_state.as_str()),
            ("enabled", "active")
        );
        assert_eq!(facts.service_state, "failed");
        assert_eq!((facts.result.as_str(), facts.status), ("exit-code", 3));
        assert_eq!(facts.next, NOW + HOUR / 2);
        assert_eq!(facts.period, Ok(Some(Duration::from_secs(3600))));
        assert!(facts.dumps.is_none() && facts.companions.is_empty());

        let shown = row(&failed, &job("myapp", Scope::System), NOW);
        assert_eq!(shown.state, State::Failing);
        assert_eq!(shown.problems, ["last run failed: failed (exit 3)"]);
        let table = table::render(&[shown], NOW, false);
        assert!(
            table.contains("myapp: last run failed: failed (exit 3)"),
            "{table}"
        );

        let healthy = row(&myapp("success", 0), &job("myapp", Scope::System), NOW);
        assert_eq!(healthy.state, State::Healthy);
        assert!(healthy.problems.is_empty(), "{:?}", healthy.problems);
    }

    #[test]
    fn a_timer_that_will_not_elapse_again_is_a_problem() {
        let mut fake = myapp("success", 0);
        fake.timers.insert(
            "myapp.timer".into(),
            TimerState {
                next_realtime: u64::MAX,
                ..TimerState::default()
            },
        );
        let facts = facts(&fake, &job("myapp", Scope::System), NOW).unwrap();
        assert_eq!(facts.next, 0);
        assert_eq!(facts.period, Ok(None));
        let shown = row(&fake, &job("myapp", Scope::System), NOW);
        assert_eq!(
            shown.problems,
            ["its timer will not start it again: check its schedule"]
        );
    }

    #[test]
    fn a_state_that_cannot_be_read_shows_the_job_unknown() {
        let mut fake = myapp("success", 0);
        fake.unreadable.insert("myapp.service".into());
        let e = facts(&fake, &job("myapp", Scope::System), NOW)
            .err()
            .expect("unreadable");
        assert_eq!(
            e.to_string(),
            "cannot read the state of a job: Access denied"
        );
        let shown = row(&fake, &job("myapp", Scope::System), NOW);
        assert_eq!(shown.state, State::Unknown);
        assert!(!shown.healthy);
        assert_eq!(shown.problems, [e.to_string()]);
    }

    /// dump-database@sales in `scope`: its dumps in `dir`, its settings
    /// file `dir/sales.env` and its drill's record `dir/drill.json`, with
    /// `environment` besides.
    fn sales(scope: Scope, dir: &std::path::Path, environment: &[&str]) -> Fake {
        let mut fake = Fake::new(scope)
            .unit("dump-database@sales.timer", "active", "enabled")
            .unit("dump-database@sales.service", "inactive", "static")
            .unit("dump-database-drill@sales.timer", "inactive", "disabled")
            .unit("dump-database-copy@sales.timer", "inactive", "disabled");
        fake.timers
            .insert("dump-database@sales.timer".into(), hourly());
        let mut vars = vec![
            format!("DUMP_DIR={}", dir.join("dumps").display()),
            "DUMP_NAME=sales".to_owned(),
        ];
        vars.extend(environment.iter().map(|v| v.to_string()));
        fake.setups.insert(
            "dump-database@sales.service".into(),
            Setup {
                programs: vec!["/usr/libexec/timerapps/dump-database".into()],
                environment: vars,
                environment_files: vec![(dir.join("sales.env").display().to_string(), false)],
            },
        );
        fake.setups.insert(
            "dump-database-drill@sales.service".into(),
            Setup {
                environment: vec![format!(
                    "{}={}",
                    DRILL.record_variable,
                    dir.join("drill.json").display()
                )],
                ..Setup::default()
            },
        );
        fake
    }

    #[test]
    fn a_dump_job_shows_its_dumps_its_settings_and_its_drill() {
        let dir = scratch("gather-dump-job");
        let record = Record {
            version: VERSION,
            started: 1_799_990_000,
            seconds: 2.0,
            result: DrillResult::Failed,
            reason: Some("table t: 2 rows restored, 3 in the manifest".into()),
            last_success: None,
            kind: Drill {
                dump: None,
                format: None,
                server: None,
                compared: true,
                tables: None,
                rows: None,
                empty_roles: None,
            },
        };
        std::fs::write(
            dir.join("drill.json"),
            serde_json::to_string(&record).unwrap(),
        )
        .unwrap();
        let sales_job = job("dump-database@sales", Scope::System);

        let configured = sales(Scope::System, &dir, &["DUMP_COMMAND=pg_dump sales"]);
        let facts = facts(&configured, &sales_job, NOW).unwrap();
        assert_eq!(facts.not_configured, None);
        match &facts.dumps {
            Some(DumpFacts::Read {
                location, listed, ..
            }) => {
                assert_eq!(location.dir, dir.join("dumps"));
                // Not made yet: no dumps, and nothing unknown.
                assert_eq!(listed.as_ref().map(Vec::len), Ok(0));
            }
            _ => panic!("the dumps are not read"),
        }
        let drill = facts
            .companion(Role::Drill)
            .expect("a dump job has a drill");
        assert_eq!((drill.enabled.as_str(), drill.period), ("disabled", None));
        match drill.recorded() {
            Some(Recorded::Drill(last)) => assert_eq!(last.result, DrillResult::Failed),
            _ => panic!("its record is not read"),
        }
        let copy = facts
            .companion(Role::Copy)
            .expect("the system's jobs have copies");
        assert!(matches!(copy.last, Ok(None)));
        assert!(!facts.copy_configured);

        // Without DUMP_COMMAND it dumps nothing: status names the file.
        let bare = sales(Scope::System, &dir, &[]);
        let facts = super::facts(&bare, &sales_job, NOW).unwrap();
        assert_eq!(
            facts.not_configured,
            Some(dir.join("sales.env").display().to_string())
        );

        // A user's jobs have no off-host copy; COPY_COMMAND names one.
        let mine = sales(
            Scope::User,
            &dir,
            &["DUMP_COMMAND=pg_dump sales", "COPY_COMMAND=cp"],
        );
        let facts = super::facts(&mine, &job("dump-database@sales", Scope::User), NOW).unwrap();
        assert!(facts.companion(Role::Copy).is_none());
        assert!(facts.copy_configured);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
