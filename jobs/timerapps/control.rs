//! `enable`, `disable`, `run`, `drill` and `copy`.

use crate::format::seconds;
use crate::jobs::{Companion, Job, Settings};
use crate::systemd::{failed, Scope, ServiceProxy, Systemd, UnitProxy, Verb};
use jobkit::{outln, Error, Exit, Result};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `run` waits, once the run has ended, for all of its lines to
/// reach the journal; journald on a loaded machine takes seconds.
const JOURNAL_WAIT: Duration = Duration::from_secs(30);

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
    // Off on purpose: its last metrics would only age into a stale alert.
    if scope == Scope::System {
        for file in crate::status::remove_metrics(Some(job))? {
            outln!("removed its metrics {}", file.display());
        }
    }
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
    start_and_follow(&job.service(), job.program(), scope)
}

/// Runs the restore drill or the off-host copy of `job` now, as its unit
/// runs it, and prints what it wrote; true if it succeeded.
pub fn companion(job: &Job, companion: Companion, scope: Scope) -> Result<bool> {
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
    let program = unit.split(['@', '.']).next().unwrap_or_default().to_owned();
    start_and_follow(&unit, &program, scope)
}

/// Starts `unit`, waits for it to end and prints the lines its `program`
/// wrote; true if it succeeded.
fn start_and_follow(unit: &str, program: &str, scope: Scope) -> Result<bool> {
    let sd = Systemd::connect(scope)?;
    let unit = unit.to_owned();
    let service: ServiceProxy = sd.unit(&unit)?;
    let state: UnitProxy = sd.unit(&unit)?;
    // A service that no loaded unit refers to (a drill whose timer is off)
    // is unloaded once it ends, and how it ended with it: held, it stays
    // loaded while this connection reads it.
    let _ = state.hold();
    let outcome = sd.job(Verb::Start, &unit)?;
    let read = failed("cannot read how the run ended");
    // A job that exited wrote its last line; one killed may not have.
    let exited = service.exec_main_code().map_err(&read)? == 1;
    let run = Run {
        invocation: state.invocation_id().map_err(&read)?,
        pid: service.exec_main_pid().map_err(&read)?,
        started: service.exec_main_start_timestamp().map_err(&read)?,
        program: exited.then(|| program.to_owned()),
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
    /// The program, whose last line ends the run's lines
    /// (`jobkit::is_last_line`); `None` when it was killed before writing it.
    program: Option<String>,
}

/// systemd's messages that a unit finished: "Deactivated successfully",
/// and "Failed with result" (`MESSAGE_ID`s of sd-messages.h).
const FINISHED: [&str; 2] = [
    "7ad2d189f7e94e70a38c781354912448",
    "d9b373ed55a64feb8242e02dbe79a49c",
];

/// Prints the lines the run wrote (its stdout and stderr), following the
/// journal until both systemd's own message that the unit finished and the
/// job's last line have arrived, or [`JOURNAL_WAIT`] has passed. journald
/// takes a stream's lines asynchronously and may store them after the
/// manager's message, so the one does not prove the other. The run's lines
/// are those of its invocation ID, or of its main process since the run
/// started: journald reads both from the writer's /proc entry when it takes
/// a line, and a short run has often exited by then.
fn print_journal(run: &Run, scope: Scope) {
    if run.invocation.is_empty() {
        return;
    }
    let id: String = run.invocation.iter().map(|b| format!("{b:02x}")).collect();
    let manager = match scope {
        Scope::System => "INVOCATION_ID",
        Scope::User => "USER_INVOCATION_ID",
    };
    let follow = Command::new("journalctl")
        // A user reads their own journal file, which --user picks.
        .args((scope == Scope::User).then_some("--user"))
        .args([
            "--no-pager",
            "--quiet",
            "--follow",
            "--no-tail",
            "--output=json",
        ])
        .arg(format!("--since=@{}", run.started / 1_000_000))
        .arg(format!("_SYSTEMD_INVOCATION_ID={id}"))
        .arg("+")
        .arg(format!("_PID={}", run.pid))
        .arg("+")
        .arg(format!("{manager}={id}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut lines = Vec::new();
    let complete = match follow {
        Ok(mut child) => {
            let complete = collect(&mut child, run, manager, &id, &mut lines);
            let _ = child.kill();
            let _ = child.wait();
            complete
        }
        Err(_) => false,
    };
    for line in &lines {
        outln!("{line}");
    }
    if !complete {
        let how = match scope {
            Scope::System => "journalctl -u",
            Scope::User => "journalctl --user -u",
        };
        outln!(
            "(the journal did not have all of the run's lines within {} s; see {how})",
            JOURNAL_WAIT.as_secs()
        );
    }
}

/// Reads `follow`'s entries into `lines` (the job's, not the manager's)
/// until the run is complete in the journal; true if it is.
fn collect(
    follow: &mut std::process::Child,
    run: &Run,
    manager: &str,
    id: &str,
    lines: &mut Vec<String>,
) -> bool {
    let Some(stdout) = follow.stdout.take() else {
        return false;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + JOURNAL_WAIT;
    let (mut finished, mut last) = (false, run.program.is_none());
    while !(finished && last) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(json) = rx.recv_timeout(left) else {
            return false;
        };
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&json) else {
            continue;
        };
        let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
        if field(manager) == Some(id) {
            finished |= field("MESSAGE_ID").is_some_and(|m| FINISHED.contains(&m));
            continue;
        }
        let message = message(&entry);
        last |= run
            .program
            .as_deref()
            .is_some_and(|p| jobkit::is_last_line(p, &message));
        lines.push(message);
    }
    true
}

/// An entry's MESSAGE: a string, or an array of bytes when it is not UTF-8.
fn message(entry: &serde_json::Value) -> String {
    match entry.get("MESSAGE") {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Array(bytes)) => {
            let bytes: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => String::new(),
    }
}
