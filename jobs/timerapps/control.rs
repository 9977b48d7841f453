//! `enable`, `disable`, `run`, `drill` and `copy`.

use crate::format::seconds;
use crate::jobs::{Settings, TimerJob};
use crate::systemd::journal::{self, Run};
use crate::systemd::{self, read, Bus, Change, Scope, Unread, Verb};
use jobkit::catalogue::Companion;
use jobkit::{outln, Error, Exit, Result};
use std::time::Duration;

/// Enables the timer (at boot) and starts it (now). An instance whose
/// settings file is missing is refused: it would only fail.
pub fn enable(job: &TimerJob, scope: Scope) -> Result<bool> {
    enable_on(&systemd::connect(scope)?, job)
}

fn enable_on(sd: &dyn Bus, job: &TimerJob) -> Result<bool> {
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
pub fn disable(job: &TimerJob, scope: Scope) -> Result<bool> {
    disable_on(&systemd::connect(scope)?, job)
}

fn disable_on(sd: &dyn Bus, job: &TimerJob) -> Result<bool> {
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
pub fn run(job: &TimerJob, scope: Scope) -> Result<bool> {
    start_and_follow(&systemd::connect(scope)?, &job.service(), job.program())
}

/// Runs the restore drill or the off-host copy of `job` now, as its unit
/// runs it, and prints what it wrote; true if it succeeded.
pub fn companion(job: &TimerJob, companion: &Companion, scope: Scope) -> Result<bool> {
    let unit = companion_unit(job, companion, scope)?;
    let program = unit.split(['@', '.']).next().unwrap_or_default().to_owned();
    start_and_follow(&systemd::connect(scope)?, &unit, &program)
}

/// The service of `job`'s `companion` in `scope`'s manager, or why there
/// is none; asked before anything is started.
fn companion_unit(job: &TimerJob, companion: &Companion, scope: Scope) -> Result<String> {
    let (verb, what) = (companion.word, companion.verb);
    let Some(unit) = job.companion_service(companion) else {
        return Err(Error::new(
            Exit::Usage,
            format!(
                "{} keeps no dumps; {verb} {what} the dumps of dump-database jobs",
                job.name()
            ),
        ));
    };
    if !companion.in_manager(scope.manager()) {
        return Err(Error::new(
            Exit::Usage,
            format!(
                "{} run in the system's manager only; nothing was started",
                companion.noun.2
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::fake::{scratch, Fake};
    use crate::systemd::{LastRun, Setup};
    use jobkit::catalogue::{COPY, DRILL};

    fn job(name: &str, scope: Scope) -> TimerJob {
        TimerJob::parse(name, scope).unwrap()
    }

    #[test]
    fn an_instance_without_its_settings_file_is_not_enabled() {
        let dir = scratch("control-enable-instance");
        let settings = dir.join("sales.env");
        let mut fake = Fake::new(Scope::System);
        fake.setups.insert(
            "dump-database@sales.service".into(),
            Setup {
                environment_files: vec![(settings.display().to_string(), false)],
                ..Setup::default()
            },
        );
        let e = enable_on(&fake, &job("dump-database@sales", Scope::System)).expect_err("refused");
        assert_eq!(e.exit(), Exit::NotConfigured);
        assert!(
            e.to_string().starts_with(&format!(
                "dump-database@sales has no settings file: create {} first",
                settings.display()
            )),
            "{e}"
        );
        assert!(fake.asked().is_empty(), "{:?}", fake.asked());

        std::fs::write(&settings, "DUMP_COMMAND=pg_dump sales\n").unwrap();
        assert!(enable_on(&fake, &job("dump-database@sales", Scope::System)).unwrap());
        assert_eq!(
            fake.asked(),
            [
                "enable dump-database@sales.timer",
                "reload",
                "start dump-database@sales.timer"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn enable_and_disable_say_whether_the_timer_started_or_stopped() {
        let mut fake = Fake::new(Scope::User);
        assert!(enable_on(&fake, &job("myapp", Scope::User)).unwrap());
        assert_eq!(fake.units.borrow()["myapp.timer"].file, "enabled");
        fake.results.insert("myapp.timer".into(), "failed".into());
        assert!(!disable_on(&fake, &job("myapp", Scope::User)).unwrap());
        assert_eq!(fake.units.borrow()["myapp.timer"].file, "disabled");
        assert_eq!(
            fake.asked(),
            [
                "enable myapp.timer",
                "reload",
                "start myapp.timer",
                "disable myapp.timer",
                "reload",
                "stop myapp.timer"
            ]
        );
    }

    #[test]
    fn drill_and_copy_are_refused_for_a_job_without_them() {
        let unit =
            |name: &str, companion, scope| companion_unit(&job(name, scope), companion, scope);
        let e = unit("myapp", &DRILL, Scope::System).unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert_eq!(
            e.to_string(),
            "myapp keeps no dumps; drill restores the dumps of dump-database jobs"
        );
        let e = unit("otherapp", &COPY, Scope::System).unwrap_err();
        assert_eq!(
            e.to_string(),
            "otherapp keeps no dumps; copy copies the dumps of dump-database jobs"
        );
        let e = unit("dump-database@sales", &COPY, Scope::User).unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert_eq!(
            unit("dump-database@sales", &DRILL, Scope::User).unwrap(),
            "dump-database-drill@sales.service"
        );
        assert_eq!(
            unit("dump-database", &COPY, Scope::System).unwrap(),
            "dump-database-copy.service"
        );
    }

    /// A fake whose `myapp.service` ran and ended so.
    fn ran(result: &str, status: i32) -> Fake {
        let mut fake = Fake::new(Scope::System);
        fake.runs.insert(
            "myapp.service".into(),
            LastRun {
                result: result.into(),
                status,
                started: 1_000_000,
                exited: 3_000_000,
                code: libc::CLD_EXITED,
                ..LastRun::default()
            },
        );
        fake
    }

    #[test]
    fn a_run_succeeds_only_if_its_job_is_done_and_it_exited_0() {
        let fake = ran("success", 0);
        assert!(start_and_follow(&fake, "myapp.service", "myapp").unwrap());
        // Held before it starts, so that how it ended can still be read.
        assert_eq!(fake.asked(), ["hold myapp.service", "start myapp.service"]);

        let failed = ran("exit-code", 1);
        assert!(!start_and_follow(&failed, "myapp.service", "myapp").unwrap());

        // An exit status the unit counts as success did not do the job.
        let counted = ran("success", 1);
        assert!(!start_and_follow(&counted, "myapp.service", "myapp").unwrap());

        let mut canceled = ran("success", 0);
        canceled
            .results
            .insert("myapp.service".into(), "canceled".into());
        assert!(!start_and_follow(&canceled, "myapp.service", "myapp").unwrap());

        let mut unreadable = ran("success", 0);
        unreadable.unreadable.insert("myapp.service".into());
        let e = start_and_follow(&unreadable, "myapp.service", "myapp").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read how the run ended: Access denied"
        );
    }
}
