//! `enable`, `disable` and `run`.

use crate::format::seconds;
use crate::jobs::{Job, Settings};
use crate::systemd::{failed, Scope, ServiceProxy, Systemd, UnitProxy, Verb};
use jobkit::{outln, Error, Exit, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `run` waits for the run's lines to reach the journal; journald
/// on a busy machine takes seconds.
const JOURNAL_WAIT: Duration = Duration::from_secs(10);

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
    let run = Run {
        invocation: state.invocation_id().map_err(&read)?,
        pid: service.exec_main_pid().map_err(&read)?,
        started: service.exec_main_start_timestamp().map_err(&read)?,
    };
    print_journal(&run, scope);
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

/// What finds a run's lines in the journal.
struct Run {
    invocation: Vec<u8>,
    pid: u32,
    /// µs since the epoch.
    started: u64,
}

/// The lines the run wrote (its stdout and stderr), from the journal: those
/// of the run's invocation ID, or, where journald could not tell the
/// invocation or the unit, of the run's main process since the run started.
/// journald reads both from the writer's /proc entry when it takes a line,
/// and a short run has often exited by then: its lines keep only its PID.
fn print_journal(run: &Run, scope: Scope) {
    if run.invocation.is_empty() {
        return;
    }
    let id: String = run.invocation.iter().map(|b| format!("{b:02x}")).collect();
    // journald takes the last lines of a stream asynchronously, after the
    // run has ended: have it write all it has before reading (root only),
    // and look again while the run seems to have written nothing, or until
    // what it wrote stops growing. Every job writes at least one line.
    let read = || {
        let _ = Command::new("journalctl")
            .arg("--sync")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        Command::new("journalctl")
            // A user reads their own journal file, which --user picks.
            .args((scope == Scope::User).then_some("--user"))
            .args(["--no-pager", "--quiet", "--output=cat"])
            .arg(format!("--since=@{}", run.started / 1_000_000))
            .arg(format!("_SYSTEMD_INVOCATION_ID={id}"))
            .arg("+")
            .arg(format!("_PID={}", run.pid))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
    };
    let deadline = Instant::now() + JOURNAL_WAIT;
    let mut shown = read();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let again = read();
        let bytes = |r: &std::io::Result<std::process::Output>| {
            r.as_ref().map(|o| o.stdout.len()).unwrap_or(0)
        };
        let settled = bytes(&shown) > 0 && bytes(&again) == bytes(&shown);
        shown = again;
        if settled {
            break;
        }
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
