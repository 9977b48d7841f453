//! `status`: a row per job, as a table or as JSON; healthy or not. Facts are
//! gathered from systemd (`gather`), judged by one rule (`health`), and
//! shown as the JSON model (`model`) or the table view of it (`table`).

mod gather;
mod health;
mod metrics;
mod model;
mod table;

use crate::jobs::{self, TimerJob};
use crate::monitoring::Monitoring;
use crate::systemd::{self, Bus, Scope};
use jobkit::catalogue::COMPANIONS;
use jobkit::host::atomic;
use jobkit::{Error, Exit, Result};
use model::{Row, State};
use std::io::{IsTerminal, Write};

/// What `status --json` prints: the rows under a version of their layout,
/// which changes when a field changes meaning or goes away.
#[derive(serde::Serialize)]
struct Report<'a> {
    version: u32,
    jobs: &'a [Row],
}

/// Prints the jobs' status; returns the exit status, as monitoring plugins
/// do: 0 every job healthy, 1 one failed or is stale (or is an enabled dump
/// job not configured), 3 one could not be read. A job whose state cannot
/// be read is shown as unknown and the others as they are.
pub fn run(args: &[String], json: bool, scope: Scope) -> Result<u8> {
    let named = args
        .iter()
        .map(|a| TimerJob::resolve(a, scope))
        .collect::<Result<Vec<_>>>()?;
    let sd = systemd::connect(scope)?;
    let jobs = if named.is_empty() {
        jobs::all(&sd)?
    } else {
        named
    };
    let now = gather::now_usec();
    let rows: Vec<Row> = jobs.iter().map(|job| row(&sd, job, now)).collect();
    let text = if json {
        let report = Report {
            version: 1,
            jobs: &rows,
        };
        let mut text = serde_json::to_string_pretty(&report).expect("rows serialize");
        text.push('\n');
        text
    } else {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        table::render(&rows, now, color)
    };
    // A report cut short by a full disk or a closed pipe is no report.
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            Error::new(
                Exit::Unknown,
                format!("cannot write the status to standard output: {e}"),
            )
        })?;
    Ok(if rows.iter().any(|r| r.state.alarming(&r.enabled)) {
        1
    } else if rows.iter().any(|r| r.state == State::Unknown) {
        Exit::Unknown.code()
    } else {
        0
    })
}

/// The row of `job`: its facts judged, or unknown where they cannot be
/// read.
fn row(sd: &dyn Bus, job: &TimerJob, now: u64) -> Row {
    match gather::facts(sd, job, now) {
        Ok(facts) => Row::new(
            &facts,
            health::problems(&facts, now),
            health::unknowns(&facts),
            now,
        ),
        Err(e) => Row::unknown(job, &e),
    }
}

/// `write-metrics UNIT`, the hook systemd runs after every run of a system
/// job (`ExecStopPost=`, with `$SERVICE_RESULT`, `$EXIT_CODE` and
/// `$EXIT_STATUS`): the job's metrics, replaced atomically in METRICS_DIR
/// for node_exporter. After a restore drill or an off-host copy (UNIT is
/// theirs), their series, in a file of their own. Nothing is written,
/// quietly, where METRICS_DIR is empty or missing.
pub fn write_metrics(unit: &str) -> Result<()> {
    let monitoring = Monitoring::load(Scope::System)?;
    let Some(dir) = monitoring.metrics_dir.filter(|d| d.is_dir()) else {
        return Ok(());
    };
    let companion = TimerJob::of_companion(unit);
    let job = match &companion {
        Some((job, _)) => job.clone(),
        None => TimerJob::resolve(unit, Scope::System)?,
    };
    let sd = systemd::connect(Scope::System)?;
    let now = gather::now_usec();
    let mut facts = gather::facts(&sd, &job, now)?;
    if let Some((_, companion)) = companion {
        let row = Row::new(
            &facts,
            health::problems(&facts, now),
            health::unknowns(&facts),
            now,
        );
        let failed = std::env::var("SERVICE_RESULT").is_ok_and(|r| !r.is_empty() && r != "success");
        let text = metrics::render_companion(&row, companion, failed, now);
        let name = metrics::companion_file_name(job.name(), companion);
        return write(&dir, &name, &text);
    }
    let name = metrics::file_name(job.name());
    // The previous file is root's own, in a directory that may be another
    // user's all the same: read as any file there.
    let previous = jobkit::host::safe::read(&dir.join(&name), PREVIOUS_MAX_BYTES)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let ended = ended(&mut facts, &previous, now);
    let row = Row::new(
        &facts,
        health::problems(&facts, now),
        health::unknowns(&facts),
        now,
    );
    let text = metrics::render(&row, &ended);
    write(&dir, &name, &text)
}

/// The most a job's metrics file can be: some 50 series of one job.
const PREVIOUS_MAX_BYTES: u64 = 1 << 20;

fn write(dir: &std::path::Path, name: &str, text: &str) -> Result<()> {
    atomic::replace(dir, name, text.as_bytes(), 0o644).map_err(|e| {
        Error::io(
            Exit::Failure,
            "cannot write the metrics in",
            dir,
            &e,
            "the job itself is not affected",
        )
    })
}

/// How the run ended, from what systemd tells the hook, and the facts
/// brought up to date with it: while the hook runs the service is still
/// stopping and its timer has not yet computed the next run.
fn ended(facts: &mut gather::Facts, previous: &str, now: u64) -> metrics::Ended {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let result = var("SERVICE_RESULT").unwrap_or_else(|| facts.result.clone());
    // Without EXIT_CODE the program never ran (a missing user, a settings
    // file that cannot be read): the times systemd has are an older run's.
    let exit_status = match var("EXIT_CODE").as_deref() {
        Some("exited") => Some(i64::from(facts.status)),
        Some(_) => Some(128 + i64::from(facts.status)),
        None => {
            facts.started = now;
            facts.exited = now;
            None
        }
    };
    if facts.exited < facts.started {
        facts.exited = now;
    }
    facts.result = result.clone();
    facts.service_state = if result == "success" {
        "inactive"
    } else {
        "failed"
    }
    .into();
    let last_success = if result == "success" {
        Some(facts.exited)
    } else {
        metrics::read(previous, "timerapps_job_last_success_timestamp_seconds")
            .map(|s| (s * 1e6) as u64)
    };
    let next_run = if facts.next > now {
        Some(facts.next)
    } else {
        let after_run = facts
            .monotonic
            .iter()
            .filter(|(base, _)| base == "OnUnitActiveUSec")
            .map(|(_, usec)| facts.started + usec);
        after_run.chain(facts.calendar_next).min()
    };
    if let Some(next) = next_run {
        facts.next = next;
    }
    metrics::Ended {
        result,
        exit_status,
        started: facts.started,
        duration_seconds: facts.exited.saturating_sub(facts.started) as f64 / 1e6,
        last_success,
        next_run,
    }
}

/// Removes the metrics `job` left in METRICS_DIR, or every job's for
/// `None`: a job disabled on purpose, or a package removed, must not leave
/// series that age into alerts. Returns the files removed.
pub fn remove_metrics(job: Option<&TimerJob>) -> Result<Vec<std::path::PathBuf>> {
    let Some(dir) = Monitoring::load(Scope::System)?.metrics_dir else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(Exit::Failure, "cannot list", &dir, &e, "")),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = match job {
            Some(job) => {
                name == metrics::file_name(job.name())
                    || COMPANIONS
                        .iter()
                        .any(|c| name == metrics::companion_file_name(job.name(), c))
            }
            None => metrics::is_metrics_file(name),
        };
        if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io(Exit::Failure, "cannot remove", &entry.path(), &e, ""))?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}
