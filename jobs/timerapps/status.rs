//! `status`: a row per job, as a table or as JSON; healthy or not.

use crate::control::seconds;
use crate::jobs::{self, Job, Settings};
use crate::systemd::{failed, Scope, ServiceProxy, Systemd, TimerProxy, UnitProxy};
use chrono::{DateTime, Local, TimeZone};
use serde::Serialize;
use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use timerapps::dumpfile::Location;
use timerapps::human::{si, span};
use timerapps::{outln, Result};

#[derive(Serialize)]
struct Row {
    job: String,
    timer: String,
    service: String,
    /// The timer's unit file state: enabled, disabled, ...
    enabled: String,
    /// The timer's state: active, inactive, failed.
    active: String,
    schedule: String,
    /// The normalized `OnCalendar=` expressions in effect.
    calendar: Vec<String>,
    /// Seconds between runs, when the schedule says.
    period_seconds: Option<u64>,
    last_run: Option<LastRun>,
    next_run: Option<When>,
    dumps: Option<Dumps>,
    healthy: bool,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct When {
    /// RFC 3339, local time.
    at: String,
    /// Microseconds since the epoch, as systemd gives them.
    usec: u64,
}

#[derive(Serialize)]
struct LastRun {
    started: When,
    /// success, exit-code, signal, watchdog, timeout, ... as systemd says;
    /// "running" while it runs.
    result: String,
    exit_status: Option<i32>,
    duration_seconds: Option<f64>,
}

#[derive(Serialize)]
struct Dumps {
    dir: String,
    keep: usize,
    count: Option<usize>,
    newest: Option<Newest>,
    /// Why the directory could not be read.
    error: Option<String>,
}

#[derive(Serialize)]
struct Newest {
    file: String,
    /// gzip, zstd or none, as DUMP_COMPRESS names them.
    form: &'static str,
    stamped: When,
    age_seconds: u64,
    size: u64,
}

/// Prints the jobs' status; true if every job shown is healthy.
pub fn run(args: &[String], json: bool, scope: Scope) -> Result<bool> {
    let named = args
        .iter()
        .map(|a| Job::resolve(a, scope))
        .collect::<Result<Vec<_>>>()?;
    let sd = Systemd::connect(scope)?;
    let jobs = if named.is_empty() {
        jobs::all(&sd)?
    } else {
        named
    };
    let now = now_usec();
    let rows = jobs
        .iter()
        .map(|job| row(&sd, job, now))
        .collect::<Result<Vec<_>>>()?;
    if json {
        let text = serde_json::to_string_pretty(&rows).expect("rows serialize");
        outln!("{text}");
    } else {
        print_table(&rows, now);
    }
    Ok(rows.iter().all(|r| r.healthy))
}

fn row(sd: &Systemd, job: &Job, now: u64) -> Result<Row> {
    let (timer_unit, timer) = jobs::timer(sd, job)?;
    let service: ServiceProxy = sd.unit(&job.service())?;
    let service_unit: UnitProxy = sd.unit(&job.service())?;
    let read = failed("cannot read the state of a job");
    let calendar: Vec<String> = timer
        .timers_calendar()
        .map_err(&read)?
        .into_iter()
        .map(|(_, spec, _)| spec)
        .collect();
    let last_trigger = timer.last_trigger().map_err(&read)?;
    let next = next_elapse(&timer).map_err(&read)?;
    let period = period(&timer, last_trigger, next).map_err(&read)?;
    let mut problems = Vec::new();

    let service_state = service_unit.active_state().map_err(&read)?;
    let result = service.result().map_err(&read)?;
    let started = service.exec_main_start_timestamp().map_err(&read)?;
    let exited = service.exec_main_exit_timestamp().map_err(&read)?;
    let status = service.exec_main_status().map_err(&read)?;
    let last_run = if service_state == "activating" {
        Some(LastRun {
            started: when(started),
            result: "running".into(),
            exit_status: None,
            duration_seconds: Some(now.saturating_sub(started) as f64 / 1e6),
        })
    } else if started > 0 {
        Some(LastRun {
            started: when(started),
            result: result.clone(),
            exit_status: Some(status),
            duration_seconds: (exited >= started).then(|| (exited - started) as f64 / 1e6),
        })
    } else if last_trigger > 0 {
        // Since the last boot systemd has not run it; its timer remembers when.
        Some(LastRun {
            started: when(last_trigger),
            result: "unknown".into(),
            exit_status: None,
            duration_seconds: None,
        })
    } else {
        None
    };
    if service_state == "failed" || (result != "success" && started > 0) {
        problems.push(format!(
            "last run failed: {}",
            result_words(&result, status)
        ));
    }
    let active = timer_unit.active_state().map_err(&read)?;
    if active == "failed" {
        problems.push("the timer failed".into());
    }

    let settings = Settings::of(sd, job)?;
    let dumps = settings
        .keeps_dumps
        .then(|| dumps(&settings, now, period, &mut problems));
    Ok(Row {
        job: job.name().to_owned(),
        timer: job.timer(),
        service: job.service(),
        enabled: timer_unit.unit_file_state().map_err(&read)?,
        active,
        schedule: schedule_words(&timer),
        calendar,
        period_seconds: period.map(|p| p.as_secs()),
        last_run,
        next_run: (next > 0).then(|| when(next)),
        dumps,
        healthy: problems.is_empty(),
        problems,
    })
}

fn dumps(
    settings: &Settings,
    now: u64,
    period: Option<Duration>,
    problems: &mut Vec<String>,
) -> Dumps {
    let location = match Location::from_env(settings) {
        Ok(location) => location,
        Err(e) => {
            problems.push(format!("its settings are invalid: {e}"));
            return Dumps {
                dir: String::new(),
                keep: 0,
                count: None,
                newest: None,
                error: Some(e.to_string()),
            };
        }
    };
    let mut out = Dumps {
        dir: location.dir.display().to_string(),
        keep: location.keep,
        count: None,
        newest: None,
        error: settings.unreadable.first().cloned(),
    };
    match location.names.dumps(&location.dir) {
        Ok(list) => {
            out.count = Some(list.len());
            out.newest = list.first().map(|d| {
                let stamped = d.stamp.unix_seconds().max(0) as u64 * 1_000_000;
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
                }
            });
        }
        Err(e) => out.error = Some(format!("cannot read {}: {e}", location.dir.display())),
    }
    if let (Some(newest), Some(period)) = (&out.newest, period) {
        if newest.age_seconds > 2 * period.as_secs() {
            problems.push(format!(
                "the newest dump is {} old, more than two periods ({})",
                span(Duration::from_secs(newest.age_seconds)),
                span(2 * period)
            ));
        }
    }
    out
}

/// The next elapse in real time; a monotonic one converted.
fn next_elapse(timer: &TimerProxy) -> zbus::Result<u64> {
    let realtime = timer.next_elapse_realtime()?;
    let monotonic = timer.next_elapse_monotonic()?;
    if monotonic == 0 || monotonic == u64::MAX {
        return Ok(if realtime == u64::MAX { 0 } else { realtime });
    }
    let from_now = monotonic.saturating_sub(monotonic_usec());
    let converted = now_usec() + from_now;
    Ok(if realtime == 0 || realtime == u64::MAX {
        converted
    } else {
        realtime.min(converted)
    })
}

/// Time between runs: the interval after each run, else the gap from the
/// last run to the next of a calendar.
fn period(timer: &TimerProxy, last: u64, next: u64) -> zbus::Result<Option<Duration>> {
    let every = timer
        .timers_monotonic()?
        .into_iter()
        .filter(|(base, _, _)| base == "OnUnitActiveUSec" || base == "OnUnitInactiveUSec")
        .map(|(_, usec, _)| usec)
        .min();
    if let Some(usec) = every {
        return Ok(Some(Duration::from_micros(usec)));
    }
    Ok((last > 0 && next > last).then(|| Duration::from_micros(next - last)))
}

/// The timer's schedule in words: `every 5 min (first 5 s after start)`,
/// `daily at 02:30`, `on *-*-* *:*:00/10`.
pub fn schedule_words(timer: &TimerProxy) -> String {
    let mut parts = Vec::new();
    for (_, spec, _) in timer.timers_calendar().unwrap_or_default() {
        parts.push(calendar_words(&spec));
    }
    let monotonic = timer.timers_monotonic().unwrap_or_default();
    let d = |usec: u64| span(Duration::from_micros(usec));
    for (base, usec, _) in &monotonic {
        match base.as_str() {
            "OnUnitActiveUSec" => parts.insert(0, format!("every {}", d(*usec))),
            "OnUnitInactiveUSec" => parts.insert(0, format!("{} after each run", d(*usec))),
            _ => {}
        }
    }
    let first: Vec<String> = monotonic
        .iter()
        .filter_map(|(base, usec, _)| {
            let after = match base.as_str() {
                "OnActiveUSec" => "start",
                "OnBootUSec" => "boot",
                "OnStartupUSec" => "startup",
                _ => return None,
            };
            Some(format!("{} after {after}", d(*usec)))
        })
        .collect();
    if !first.is_empty() {
        parts.push(format!("first {}", first.join(", ")));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn calendar_words(spec: &str) -> String {
    if let Some(time) = spec.strip_prefix("*-*-* ") {
        if let Some(hm) = time.strip_suffix(":00") {
            if hm.len() == 5 && hm.bytes().all(|b| b.is_ascii_digit() || b == b':') {
                return format!("daily at {hm}");
            }
        }
    }
    format!("on {spec}")
}

fn result_words(result: &str, status: i32) -> String {
    match result {
        "exit-code" => format!("failed (exit {status})"),
        "signal" | "core-dump" => format!("killed by signal {status}"),
        "watchdog" => "watchdog".into(),
        "timeout" => "timeout".into(),
        other => other.into(),
    }
}

fn when(usec: u64) -> When {
    let at = Local
        .timestamp_micros(usec.min(i64::MAX as u64) as i64)
        .single()
        .map(|t: DateTime<Local>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        .unwrap_or_default();
    When { at, usec }
}

fn now_usec() -> u64 {
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

/// `2026-11-22 10:00:07` in local time.
fn local(usec: u64) -> String {
    Local
        .timestamp_micros(usec.min(i64::MAX as u64) as i64)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn ago(now: u64, usec: u64) -> String {
    if usec > now {
        format!("in {}", span(Duration::from_micros(usec - now)))
    } else {
        format!("{} ago", span(Duration::from_micros(now - usec)))
    }
}

fn print_table(rows: &[Row], now: u64) {
    let header = [
        "JOB",
        "TIMER",
        "SCHEDULE",
        "LAST RUN",
        "RESULT",
        "NEXT RUN",
        "NEWEST DUMP",
        "KEPT",
    ];
    let cells: Vec<[String; 8]> = rows.iter().map(|r| cells(r, now)).collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (c, w) in cells.iter().zip(widths) {
            text.push_str(c);
            text.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
        }
        text.trim_end().to_owned()
    };
    let head = line(&header.map(String::from));
    if color {
        outln!("\x1b[1m{head}\x1b[0m");
    } else {
        outln!("{head}");
    }
    for (row, cells) in rows.iter().zip(&cells) {
        let text = line(cells);
        if color && !row.healthy {
            outln!("\x1b[1;31m{text}\x1b[0m");
        } else {
            outln!("{text}");
        }
    }
    let problems: Vec<_> = rows
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| (r.job.as_str(), p)))
        .collect();
    if !problems.is_empty() {
        outln!("");
    }
    for (job, problem) in problems {
        if color {
            outln!("\x1b[1;31m{job}: {problem}\x1b[0m");
        } else {
            outln!("{job}: {problem}");
        }
    }
    for row in rows {
        if let Some(error) = row.dumps.as_ref().and_then(|d| d.error.as_ref()) {
            outln!("{}: {error}", row.job);
        }
    }
}

fn cells(r: &Row, now: u64) -> [String; 8] {
    let mark = if r.healthy { "" } else { "! " };
    let (last, result) = match &r.last_run {
        None => ("never".to_owned(), "-".to_owned()),
        Some(run) => {
            let took = run
                .duration_seconds
                .map(|s| format!(" in {}", seconds(Duration::from_secs_f64(s))))
                .unwrap_or_default();
            let result = match run.result.as_str() {
                "running" => format!("running{}", took.replace(" in ", " for ")),
                "success" if run.exit_status.is_some_and(|s| s != 0) => {
                    format!("exit {}{took}", run.exit_status.unwrap_or_default())
                }
                other => format!(
                    "{}{took}",
                    result_words(other, run.exit_status.unwrap_or(0))
                ),
            };
            (
                format!(
                    "{} ({})",
                    local(run.started.usec),
                    ago(now, run.started.usec)
                ),
                result,
            )
        }
    };
    let next = r.next_run.as_ref().map_or("-".to_owned(), |n| {
        format!("{} ({})", local(n.usec), ago(now, n.usec))
    });
    let (newest, kept) = match &r.dumps {
        None => ("-".to_owned(), "-".to_owned()),
        Some(d) => (
            match (&d.newest, d.count) {
                (Some(n), _) => format!(
                    "{} old, {}",
                    span(Duration::from_secs(n.age_seconds)),
                    si(n.size)
                ),
                (None, Some(_)) => "none".to_owned(),
                (None, None) => "?".to_owned(),
            },
            d.count
                .map_or("?".to_owned(), |c| format!("{c}/{}", d.keep)),
        ),
    };
    [
        format!("{mark}{}", r.job),
        format!("{}, {}", r.enabled, r.active),
        r.schedule.clone(),
        last,
        result,
        next,
        newest,
        kept,
    ]
}
