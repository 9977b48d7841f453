//! `mail-failure UNIT`: what the `timerapps-mail@` unit runs when a job's
//! service fails (its `OnFailure=`). It mails MAIL_TO the failed run's
//! unit, result, exit status and journal lines, as systemd passes them
//! (`$MONITOR_*`), through the local MTA's `/usr/sbin/sendmail`. Without an
//! address or a sendmail it does nothing, successfully: the job has failed
//! already, and its failure is in the journal and the status either way.

use crate::monitoring::Monitoring;
use crate::systemd::Scope;
use jobkit::{outln, Error, Exit, Result};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SENDMAIL: &str = "/usr/sbin/sendmail";

/// The most journal lines a mail carries: the end of the run.
const LINES: &str = "200";

/// How long a user's manager waits for the run's lines to reach the
/// journal, which only root can ask journald to flush.
const USER_JOURNAL_WAIT: Duration = Duration::from_secs(5);

pub fn run(unit: &str, scope: Scope) -> Result<bool> {
    let monitoring = Monitoring::load(scope)?;
    if monitoring.mail_to.is_empty() {
        outln!("no MAIL_TO in {}: no mail sent", monitoring.file.display());
        return Ok(true);
    }
    if !Path::new(SENDMAIL).exists() {
        outln!("no {SENDMAIL} (install a mail transfer agent): no mail sent");
        return Ok(true);
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let failed = Failure {
        unit: Some(var("MONITOR_UNIT"))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("{unit}.service")),
        result: var("MONITOR_SERVICE_RESULT"),
        exit_code: var("MONITOR_EXIT_CODE"),
        exit_status: var("MONITOR_EXIT_STATUS"),
        invocation: var("MONITOR_INVOCATION_ID"),
    };
    let lines = journal(&failed, scope);
    let message = message(&failed, &host(), &monitoring.mail_to, &lines, scope);
    send(&message, &monitoring.mail_to)?;
    outln!(
        "mailed the failure of {} to {}",
        failed.unit,
        monitoring.mail_to.join(", ")
    );
    Ok(true)
}

/// The failed run, as systemd describes it to the unit it starts.
struct Failure {
    unit: String,
    result: String,
    exit_code: String,
    exit_status: String,
    invocation: String,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// The run's lines: those of its processes and systemd's own about it.
fn journal(f: &Failure, scope: Scope) -> String {
    if f.invocation.is_empty() {
        return String::new();
    }
    let own = match scope {
        Scope::System => "INVOCATION_ID",
        Scope::User => "USER_INVOCATION_ID",
    };
    let read = || {
        Command::new("journalctl")
            .args((scope == Scope::User).then_some("--user"))
            .args([
                "--no-pager",
                "--quiet",
                "--output=short-iso",
                "--lines",
                LINES,
            ])
            .arg(format!("_SYSTEMD_INVOCATION_ID={}", f.invocation))
            .arg("+")
            .arg(format!("{own}={}", f.invocation))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    if scope == Scope::System {
        // journald stores all it was sent before it answers.
        let _ = Command::new("journalctl")
            .arg("--sync")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        return read();
    }
    let deadline = Instant::now() + USER_JOURNAL_WAIT;
    loop {
        let lines = read();
        if !lines.is_empty() || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn message(f: &Failure, host: &str, to: &[String], lines: &str, scope: Scope) -> String {
    let how = match (f.exit_code.as_str(), f.exit_status.as_str()) {
        ("exited", status) => format!("exit status {status}"),
        ("killed" | "dumped", signal) => format!("killed by SIG{signal}"),
        _ => "it never started".to_owned(),
    };
    let result = if f.result.is_empty() {
        "failed"
    } else {
        &f.result
    };
    let user = match scope {
        Scope::System => "",
        Scope::User => " --user",
    };
    let mut text = format!(
        "To: {}\n\
         Subject: [{host}] {} failed: {result}, {how}\n\
         Auto-Submitted: auto-generated\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         {} failed on {host}.\n\
         \n\
         Result:       {result}\n\
         How it ended: {how}\n\
         Invocation:   {}\n\
         \n",
        to.join(", "),
        f.unit,
        f.unit,
        f.invocation,
    );
    if lines.trim().is_empty() {
        text.push_str("The run's lines could not be read from the journal.\n");
    } else {
        text.push_str("The run's lines in the journal:\n\n");
        text.push_str(lines);
        if !lines.ends_with('\n') {
            text.push('\n');
        }
    }
    text.push_str(&format!(
        "\nSee: timerapps{user} status; journalctl{user} _SYSTEMD_INVOCATION_ID={}\n\
         Sent by timerapps-mail@; stop these mails by emptying MAIL_TO.\n",
        f.invocation
    ));
    text
}

/// Hands the message to the MTA, delivering before it returns (`-odi`):
/// a delivery left running in the background would be stopped with the
/// unit.
fn send(message: &str, to: &[String]) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::io(
            Exit::Failure,
            "cannot mail with",
            Path::new(SENDMAIL),
            &e,
            "check the mail transfer agent",
        )
    };
    let mut child = Command::new(SENDMAIL)
        .args(["-oi", "-odi", "--"])
        .args(to)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(failed)?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(message.as_bytes());
    let status = child.wait().map_err(failed)?;
    written.map_err(failed)?;
    if !status.success() {
        return Err(Error::new(
            Exit::Failure,
            format!("{SENDMAIL} failed ({status}): the mail was not sent; check the mail transfer agent"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_unit_and_carries_the_lines() {
        let f = Failure {
            unit: "dump-database.service".into(),
            result: "exit-code".into(),
            exit_code: "exited".into(),
            exit_status: "1".into(),
            invocation: "abc".into(),
        };
        let m = message(&f, "db1", &["root".into()], "line one\n", Scope::System);
        let (head, body) = m.split_once("\n\n").unwrap();
        assert!(
            head.contains("\nAuto-Submitted: auto-generated\n"),
            "{head}"
        );
        assert!(
            head.contains("Subject: [db1] dump-database.service failed: exit-code, exit status 1"),
            "{head}"
        );
        assert!(head.starts_with("To: root\n"), "{head}");
        assert!(body.contains("line one\n"), "{body}");
        assert!(body.contains("_SYSTEMD_INVOCATION_ID=abc"), "{body}");
    }
}
