//! A run's lines in the journal, as `run`, `drill`, `copy` and the
//! failure mail show them: followed until the run is complete there, each
//! line escaped ([`escape`]) so that what a job, a command or a database
//! wrote cannot act on the terminal or the mail it is shown in.

use super::{LastRun, Scope};
use crate::format::{escape, escape_bytes, rfc3339};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long, once a run has ended, its lines may take to reach the
/// journal; journald on a loaded machine takes seconds.
pub const WAIT: Duration = Duration::from_secs(30);

/// What finds a run's lines in the journal.
pub struct Run {
    /// Its invocation ID, in hex.
    pub invocation: String,
    /// Its main process; 0 when not known.
    pub pid: u32,
    /// When it started, µs since the epoch; 0 when not known.
    pub started: u64,
    /// The program, whose last line ends the run's lines
    /// (`jobkit::is_last_line`); `None` when the run cannot have written
    /// it: killed, or never started.
    pub program: Option<String>,
}

impl Run {
    /// A service's `last` run, as systemd reports it, whose program is
    /// `program`.
    pub fn of(last: &LastRun, program: &str) -> Run {
        Run {
            invocation: last.invocation.clone(),
            pid: last.pid,
            started: last.started,
            program: wrote_last_line((last.code, last.status)).then(|| program.to_owned()),
        }
    }
}

/// Whether a run that ended so (`CLD_*` and status) wrote its program's
/// last line: one that exited did, unless systemd could not start it (its
/// own statuses, 200 to 243, such as 203/EXEC); one killed may not have.
fn wrote_last_line((code, status): (i32, i32)) -> bool {
    code == libc::CLD_EXITED && !(200..=243).contains(&status)
}

/// One entry of the run, escaped.
pub struct Line {
    /// µs since the epoch.
    pub usec: u64,
    /// `dump-database[123]`, or `systemd[1]` for the manager's own.
    pub who: String,
    pub text: String,
    /// systemd's own message about the unit, not the run's output.
    pub manager: bool,
}

impl Line {
    /// As `journalctl --output=short-iso` shows it, without the host.
    pub fn stamped(&self) -> String {
        format!("{} {}: {}", rfc3339(self.usec), self.who, self.text)
    }
}

/// systemd's messages that a unit finished: "Deactivated successfully",
/// and "Failed with result" (`MESSAGE_ID`s of sd-messages.h).
const FINISHED: [&str; 2] = [
    "7ad2d189f7e94e70a38c781354912448",
    "d9b373ed55a64feb8242e02dbe79a49c",
];

/// The lines of `run`, following the journal until both systemd's own
/// message that the unit finished and the job's last line have arrived,
/// or [`WAIT`] has passed; and whether they did. journald takes a stream's
/// lines asynchronously and may store them after the manager's message, so
/// the one does not prove the other. The run's lines are those of its
/// invocation ID, or of its main process since the run started: journald
/// reads both from the writer's /proc entry when it takes a line, and a
/// short run has often exited by then. Nothing here needs root: a member
/// of `systemd-journal` reads the system's journal, a user their own.
pub fn follow(run: &Run, scope: Scope) -> (Vec<Line>, bool) {
    let mut lines = Vec::new();
    if run.invocation.is_empty() {
        return (lines, false);
    }
    let manager = manager_field(scope);
    let mut journalctl = Command::new("journalctl");
    // A user reads their own journal file, which --user picks.
    journalctl
        .args((scope == Scope::User).then_some("--user"))
        .args([
            "--no-pager",
            "--quiet",
            "--follow",
            "--no-tail",
            "--output=json",
            // Following keeps to the journal files of the boot ID it reads
            // in /proc otherwise: in a container, a unit with a /proc of
            // its own (the failure mail's) reads the host's, and would find
            // nothing. The invocation ID is unique in every file.
            "--merge",
        ])
        .arg(format!("_SYSTEMD_INVOCATION_ID={}", run.invocation));
    if run.pid != 0 && run.started != 0 {
        journalctl
            .arg(format!("--since=@{}", run.started / 1_000_000))
            .arg("+")
            .arg(format!("_PID={}", run.pid));
    }
    journalctl
        .arg("+")
        .arg(format!("{manager}={}", run.invocation))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let complete = match journalctl.spawn() {
        Ok(mut child) => {
            let complete = collect(&mut child, run, manager, &mut lines);
            let _ = child.kill();
            let _ = child.wait();
            complete
        }
        Err(_) => false,
    };
    (lines, complete)
}

/// The field of the manager's own entries about a unit.
fn manager_field(scope: Scope) -> &'static str {
    match scope {
        Scope::System => "INVOCATION_ID",
        Scope::User => "USER_INVOCATION_ID",
    }
}

/// Reads `follow`'s entries into `lines` until the run is complete in the
/// journal, or [`WAIT`] has passed; true if it is.
fn collect(follow: &mut Child, run: &Run, manager: &str, lines: &mut Vec<Line>) -> bool {
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
    let deadline = Instant::now() + WAIT;
    let (mut finished, mut last) = (false, run.program.is_none());
    while !(finished && last) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(json) = rx.recv_timeout(left) else {
            return false;
        };
        let Ok(entry) = serde_json::from_str::<Value>(&json) else {
            continue;
        };
        let field = |name: &str| entry.get(name).and_then(Value::as_str);
        let is_manager = field(manager) == Some(&run.invocation);
        let (raw, text) = message(&entry);
        if is_manager {
            finished |= field("MESSAGE_ID").is_some_and(|m| FINISHED.contains(&m));
        } else {
            last |= run
                .program
                .as_deref()
                .is_some_and(|p| jobkit::is_last_line(p, &raw));
        }
        let who = field("SYSLOG_IDENTIFIER")
            .or_else(|| field("_COMM"))
            .unwrap_or("?");
        lines.push(Line {
            usec: field("__REALTIME_TIMESTAMP")
                .and_then(|t| t.parse().ok())
                .unwrap_or_default(),
            who: format!("{}[{}]", escape(who), escape(field("_PID").unwrap_or("?"))),
            text,
            manager: is_manager,
        });
    }
    true
}

/// An entry's MESSAGE as the program wrote it (lossily, for matching its
/// last line) and escaped (for showing): the journal gives a string, or an
/// array of bytes when it holds a control character or is not UTF-8.
fn message(entry: &Value) -> (String, String) {
    match entry.get("MESSAGE") {
        Some(Value::String(text)) => (text.clone(), escape(text).into_owned()),
        Some(Value::Array(bytes)) => {
            let bytes: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                escape_bytes(&bytes),
            )
        }
        _ => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_bytes_is_escaped_and_still_matched() {
        let entry: Value = serde_json::from_str(
            r#"{"MESSAGE": [100, 117, 109, 112, 58, 32, 27, 91, 50, 74, 255, 13, 102]}"#,
        )
        .unwrap();
        let (raw, shown) = message(&entry);
        assert!(jobkit::is_last_line("dump", &raw), "{raw:?}");
        assert_eq!(shown, "dump: \\x1b[2J\\xff\\x0df");
        let entry: Value = serde_json::from_str(r#"{"MESSAGE": "a\u001b]0;t\u0007b"}"#).unwrap();
        assert_eq!(message(&entry).1, "a\\x1b]0;t\\x07b");
    }
}
