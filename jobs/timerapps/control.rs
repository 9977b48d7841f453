//! `enable`, `disable`, `run`, `drill` and `copy`.

use crate::format::seconds;
use crate::jobs::{Companion, Job, Settings};
use crate::systemd::journal::{self, Run};
use crate::systemd::{self, read, Bus, Change, Scope, Unread, Verb};
use jobkit::{outln, Error, Exit, Result};
use std::time::Duration;

/// Enables the timer (at boot) and starts it (now). An instance whose
/// settings file is missing is refused: it would only fail.
pub fn enable(job: &Job, scope: Scope) -> Result<bool> {
    enable_on(&systemd::connect(scope)?, job)
}

fn enable_on(sd: &dyn Bus, job: &Job) -> Result<bool> {
    if job.instance().is_some() {
        let settings = Settings::of(sd, job)?;
        if let Some((missing, _, _)) = settings.files.iter().find(|(_, _, exists)| !exists) {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "{} has no settings file: create {} first (see the example beside it), \
                     then enable it again; nothing was changed",
                    job.name(),
                    missing.display()
                ),
            ));
        }
    }
    let timer = job.timer();
    print_changes(&sd.enable(&timer)?);
    sd.reload()?;
    let result = sd.job(Verb::Start, &timer)?;
    outln!("{timer}: enabled, start {result}");
    Ok(result == "done")
}

/// Disables the timer (at boot) and stops it (now); a run in progress goes
/// on to its end.
pub fn disable(job: &Job, scope: Scope) -> Result<bool> {
    disable_on(&systemd::connect(scope)?, job)
}

fn disable_on(sd: &dyn Bus, job: &Job) -> Result<bool> {
    let timer = job.timer();
    print_changes(&sd.disable(&timer)?);
    sd.reload()?;
    let result = sd.job(Verb::Stop, &timer)?;
    outln!("{timer}: disabled, stop {result}");
    // Off on purpose: its last metrics would only age into a stale alert.
    if sd.scope() == Scope::System {
        for file in crate::status::remove_metrics(Some(job))? {
            outln!("removed its metrics {}", file.display());
        }
    }
    Ok(result == "done")
}

/// As systemctl prints them.
fn print_changes(changes: &[Change]) {
    for Change { kind, link, target } in changes {
        match kind.as_str() {
            "symlink" => outln!("Created symlink {link} → {target}."),
            "unlink" => outln!("Removed \"{link}\"."),
            _ => outln!("{kind} {link} {target}"),
        }
    }
}

/// Starts the job's service, waits for its run to end, prints the lines it
/// wrote during this run, and says how it ended.
pub fn run(job: &Job, scope: Scope) -> Result<bool> {
    start_and_follow(&systemd::connect(scope)?, &job.service(), job.program())
}

/// Runs the restore drill or the off-host copy of `job` now, as its unit
/// runs it, and prints what it wrote; true if it succeeded.
pub fn companion(job: &Job, companion: Companion, scope: Scope) -> Result<bool> {
    let unit = companion_unit(job, companion, scope)?;
    let program = unit.split(['@', '.']).next().unwrap_or_default().to_owned();
    start_and_follow(&systemd::connect(scope)?, &unit, &program)
}

/// The service of `job`'s `companion` in `scope`'s manager, or why there
/// is none; asked before anything is started.
fn companion_unit(job: &Job, companion: Companion, scope: Scope) -> Result<String> {
    let (verb, what) = match companion {
        Companion::Drill => ("drill", "restores"),
        Companion::Copy => ("copy", "copies"),
    };
    let Some(unit) = job.companion_service(companion) else {
        return Err(Error::new(
            Exit::Usage,
            format!(
                "{} keeps no dumps; {verb} {what} the dumps of dump-database jobs",
                job.name()
            ),
        ));
    };
    if companion == Companion::Copy && scope == Scope::User {
        return Err(Error::new(
            Exit::Usage,
            "off-host copies run in the system's manager only; nothing was started",
        ));
    }
    Ok(unit)
}

/// Starts `unit`, waits for it to end and prints the lines its `program`
/// wrote; true if it succeeded.
fn start_and_follow(sd: &dyn Bus, unit: &str, program: &str) -> Result<bool> {
    // A service that no loaded unit refers to (a drill whose timer is off)
    // is unloaded once it ends, and how it ended with it: held, it stays
    // loaded while this connection reads it.
    if let Err(Unread::Unit(e)) = sd.hold(unit) {
        return Err(e);
    }
    let outcome = sd.job(Verb::Start, unit)?;
    let last = sd
        .last_run(unit)
        .map_err(read("cannot read how the run ended"))?;
    print_journal(&Run::of(&last, program), sd.scope());
    let took = if last.exited >= last.started && last.started > 0 {
        format!(
            " in {}",
            seconds(Duration::from_micros(last.exited - last.started))
        )
    } else {
        String::new()
    };
    let (result, status) = (&last.result, last.status);
    let succeeded = outcome == "done" && result == "success" && status == 0;
    if succeeded {
        outln!("{unit}: success{took}");
    } else if result == "success" {
        outln!("{unit}: exited {status}{took}, which the unit counts as success but did not do the job");
    } else {
        outln!("{unit}: failed ({result}, exit status {status}){took}");
    }
    Ok(succeeded)
}

/// Prints the lines the run wrote (its stdout and stderr, escaped), once
/// the journal has them all ([`journal::follow`]), or says it does not.
fn print_journal(run: &Run, scope: Scope) {
    if run.invocation.is_empty() {
        return;
    }
    let (lines, complete) = journal::follow(run, scope);
    for line in lines.iter().filter(|l| !l.manager) {
        outln!("{}", line.text);
    }
    if !complete {
        let how = match scope {
            Scope::System => "journalctl -u",
            Scope::User => "journalctl --user -u",
        };
        outln!(
            "(the journal did not have all of the run's lines within {} s; see {how})",
            journal::WAIT.as_secs()
        );
    }
}
