//! `schedule`: a job's timer on a calendar expression, through a drop-in
//! that replaces the packaged interval, or back to the packaged schedule.

use crate::calendar::{self, Evaluated, Refused};
use crate::format::schedule_words;
use crate::jobs::Job;
use crate::systemd::{failed, Scope, Systemd, TimerProxy, UnitProxy, Verb};
use jobkit::manifest::{SCHEDULE_DROP_IN as DROP_IN, SCHEDULE_MARK as MARK};
use jobkit::{atomic, outln, Error, Exit, Result};
use std::fs;
use std::path::Path;

/// Sets `calendar` (checked by [`parse`]), or the packaged schedule for
/// `None`.
pub fn run(job: &Job, calendar: Option<Calendar>, scope: Scope) -> Result<bool> {
    let sd = Systemd::connect(scope)?;
    let timer = job.timer();
    // Where the admin's (or the user's) drop-ins go; `systemctl edit` too.
    let dir = scope.config_dir()?.join(format!("{timer}.d"));
    match &calendar {
        Some(cal) => write(&dir, &cal.normalized)?,
        None => remove(&dir)?,
    }
    sd.manager()?
        .reload()
        .map_err(failed("cannot reload systemd"))?;
    let state: UnitProxy = sd.unit(&timer)?;
    if state.active_state().unwrap_or_default() == "active" {
        sd.job(Verb::Restart, &timer)?;
    }
    match calendar {
        Some(cal) => {
            outln!("{timer}: OnCalendar={}", cal.normalized);
            outln!("next runs:");
            for next in &cal.next {
                outln!("  {next}");
            }
        }
        None => {
            let t: TimerProxy = sd.unit(&timer)?;
            let read = failed(&format!("cannot read the schedule of {timer}"));
            let calendar: Vec<String> = t
                .timers_calendar()
                .map_err(&read)?
                .into_iter()
                .map(|(_, spec, _)| spec)
                .collect();
            let monotonic: Vec<(String, u64)> = t
                .timers_monotonic()
                .map_err(&read)?
                .into_iter()
                .map(|(base, usec, _)| (base, usec))
                .collect();
            outln!(
                "{timer}: packaged schedule, {}",
                schedule_words(&calendar, &monotonic)
            );
        }
    }
    Ok(true)
}

/// A calendar expression as systemd reads it.
pub struct Calendar {
    normalized: String,
    next: Vec<String>,
}

/// Checks `expr` with systemd's own parser (systemd-analyze calendar),
/// before anything is asked or changed.
pub fn parse(expr: &str) -> Result<Calendar> {
    let invalid = |why: &str| {
        Error::new(
            Exit::Usage,
            format!("invalid calendar expression {expr:?}: {why}; nothing was changed"),
        )
    };
    // One line of a unit file: anything else would add settings of its own.
    if expr.trim().is_empty() || expr.chars().any(|c| c.is_control()) || expr.ends_with('\\') {
        return Err(invalid(
            "expected one line, such as \"daily\" or \"*-*-* 02:30\"",
        ));
    }
    let evaluated = match calendar::evaluate(&[expr.to_owned()], 3) {
        Ok(mut e) if e.len() == 1 => e.remove(0),
        Ok(_) => return Err(invalid("expected one expression")),
        Err(Refused::Invalid(why)) => return Err(invalid(&why)),
        Err(Refused::Failed(e)) => return Err(e),
    };
    if evaluated.next.is_empty() {
        return Err(invalid("it never elapses from now on"));
    }
    let Evaluated {
        normalized, next, ..
    } = evaluated;
    Ok(Calendar { normalized, next })
}

fn write(dir: &Path, calendar: &str) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::io(
            Exit::Failure,
            "cannot write the schedule in",
            dir,
            &e,
            "nothing was changed",
        )
    };
    fs::create_dir_all(dir).map_err(failed)?;
    let text = format!(
        "{MARK}; \"timerapps schedule JOB --default\" removes it.\n\
         [Timer]\n\
         # An empty value drops the packaged interval; then the calendar alone.\n\
         OnCalendar=\n\
         OnCalendar={calendar}\n\
         # On the marks given, and a run missed while the machine was off soon after boot.\n\
         RandomizedDelaySec=0\n\
         AccuracySec=1s\n\
         Persistent=true\n"
    );
    atomic::replace(dir, DROP_IN, text.as_bytes(), 0o644).map_err(failed)
}

fn remove(dir: &Path) -> Result<()> {
    let removed = atomic::remove(dir, DROP_IN)
        .map_err(|e| Error::io(Exit::Failure, "cannot remove the schedule in", dir, &e, ""))?;
    if removed {
        // Left behind only if the admin has drop-ins of their own there.
        let _ = fs::remove_dir(dir);
    }
    Ok(())
}
