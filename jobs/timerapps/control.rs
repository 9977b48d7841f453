//! `enable`, `disable` and `run`.

use crate::format::seconds;
use crate::jobs::{Job, Settings};
use crate::systemd::{failed, Scope, ServiceProxy, Systemd, UnitProxy, Verb};
use jobkit::{outln, Error, Exit, Result};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Enables the timer (at boot) and starts it (now). An instance whose
/// settings file is missing is refused: it would only fail.
pub fn enable(job: &Job, scope: Scope) -> Result<bool> {
    let sd = Systemd::connect(scope)?;
    if job.instance().is_some() {
        let settings = Settings::of(&sd, job)?;
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
    let manager = sd.manager()?;
    let timer = job.timer();
    let (_, changes) = manager
        .enable_unit_files(&[&timer], false, false)
        .map_err(failed(&format!("cannot enable {timer}")))?;
    print_changes(&changes);
    manager.reload().map_err(failed("cannot reload systemd"))?;
    let result = sd.job(Verb::Start, &timer)?;
    outln!("{timer}: enabled, start {result}");
    Ok(result == "done")
}

/// Disables the timer (at boot) and stops it (now); a run in progress goes
/// on to its end.
pub fn disable(job: &Job, scope: Scope) -> Result<bool> {
    let sd = Systemd::connect(scope)?;
    let manager = sd.manager()?;
    let timer = job.timer();
    let changes = manager
        .disable_unit_files(&[&timer], false)
        .map_err(failed(&format!("cannot disable {timer}")))?;
    print_changes(&changes);
    manager.reload().map_err(failed("cannot reload systemd"))?;
    let result = sd.job(Verb::Stop, &timer)?;
    outln!("{timer}: disabled, stop {result}");
    Ok(result == "done")
}

/// As systemctl prints them.
fn print_changes(changes: &[(String, String, String)]) {
    for (kind, link, target) in changes {
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
    let sd = Systemd::connect(scope)?;
    let unit = job.service();
    let outcome = sd.job(Verb::Start, &unit)?;
    let service: ServiceProxy = sd.unit(&unit)?;
    let state: UnitProxy = sd.unit(&unit)?;
    let read = failed("cannot read how the run ended");
    let invocation = state.invocation_id().map_err(&read)?;
    print_journal(&invocation, scope);
    let result = service.result().map_err(&read)?;
    let status = service.exec_main_status().map_err(&read)?;
    let took = match (
        service.exec_main_start_timestamp(),
        service.exec_main_exit_timestamp(),
    ) {
        (Ok(start), Ok(end)) if end >= start && start > 0 => {
            format!(" in {}", seconds(Duration::from_micros(end - start)))
        }
        _ => String::new(),
    };
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

/// The lines the run wrote (its stdout and stderr), from the journal,
/// found by the run's invocation ID.
fn print_journal(invocation: &[u8], scope: Scope) {
    if invocation.is_empty() {
        return;
    }
    let id: String = invocation.iter().map(|b| format!("{b:02x}")).collect();
    // journald takes the last lines of a stream asynchronously: have it
    // write all it has before reading, and since on systemd 252 that does
    // not cover a stream it has not read yet, look again for a second
    // while the run seems to have written nothing.
    let mut shown = Err(std::io::Error::other("not read"));
    for _ in 0..10 {
        let _ = Command::new("journalctl")
            .arg("--sync")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        shown = Command::new("journalctl")
            // A user reads their own journal file, which --user picks.
            .args((scope == Scope::User).then_some("--user"))
            .args(["--no-pager", "--quiet", "--output=cat"])
            .arg(format!("_SYSTEMD_INVOCATION_ID={id}"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output();
        if shown.as_ref().is_ok_and(|o| !o.stdout.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let shown = shown.map(|o| {
        jobkit::out(format_args!("{}", String::from_utf8_lossy(&o.stdout)));
        o.status
    });
    if !shown.is_ok_and(|s| s.success()) {
        let how = match scope {
            Scope::System => "journalctl -u",
            Scope::User => "journalctl --user -u",
        };
        outln!("(the run's lines could not be read from the journal; see {how})");
    }
}
