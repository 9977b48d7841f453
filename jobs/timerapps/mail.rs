//! `mail-failure UNIT`: what the `timerapps-mail@` unit runs when a job's
//! service fails (its `OnFailure=`). It mails MAIL_TO the failed run's
//! unit, result, exit status and journal lines, as systemd passes them
//! (`$MONITOR_*`), through the local MTA's `/usr/sbin/sendmail`. Without an
//! address or a sendmail it does nothing, successfully: the job has failed
//! already, and its failure is in the journal and the status either way.
//!
//! It runs as the system user `timerapps-mail` (in a user's manager, as
//! that user): it reads the journal as a member of `systemd-journal`, and
//! waits for the run's lines to arrive rather than asking journald, which
//! only root may, to store them first. What the run wrote reaches the mail
//! escaped, its headers too.

use crate::format::escape;
use crate::journal::{self, Line, Run};
use crate::monitoring::Monitoring;
use crate::systemd::{Scope, ServiceProxy, Systemd, UnitProxy};
use jobkit::{outln, Error, Exit, Result};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const SENDMAIL: &str = "/usr/sbin/sendmail";

/// The most journal lines a mail carries: the end of the run.
const LINES: usize = 200;

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
        escape(&failed.unit),
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

/// The host's name, as uname gives it (`/proc/sys` is out of the unit's
/// reach).
fn host() -> String {
    // SAFETY: uname fills the struct it is given, and NUL-terminates the
    // node name.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return "localhost".to_owned();
    }
    unsafe { std::ffi::CStr::from_ptr(name.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The run's lines, those of its processes and systemd's own about it,
/// and whether the journal had them all.
fn journal(f: &Failure, scope: Scope) -> (Vec<Line>, bool) {
    if f.invocation.is_empty() || !f.invocation.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (Vec::new(), false);
    }
    let program = f.unit.split(['@', '.']).next().unwrap_or_default();
    // The failed unit stays loaded while its mail runs: systemd tells its
    // main process and whether it wrote its last line, as long as no later
    // run replaced this one.
    let described = Systemd::connect(scope).ok().and_then(|sd| {
        let state: UnitProxy = sd.unit(&f.unit).ok()?;
        let service: ServiceProxy = sd.unit(&f.unit).ok()?;
        Run::of(&state, &service, program).ok()
    });
    let run = described
        .filter(|r| r.invocation == f.invocation)
        .unwrap_or_else(|| Run {
            invocation: f.invocation.clone(),
            pid: 0,
            started: 0,
            program: None,
        });
    journal::follow(&run, scope)
}

/// The mail, every value from the run or its journal escaped: neither a
/// header nor a line of the body can be forged by what a job wrote.
fn message(
    f: &Failure,
    host: &str,
    to: &[String],
    (lines, complete): &(Vec<Line>, bool),
    scope: Scope,
) -> String {
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
    let (how, result, host) = (escape(&how), escape(result), escape(host));
    let (unit, invocation) = (escape(&f.unit), escape(&f.invocation));
    let user = match scope {
        Scope::System => "",
        Scope::User => " --user",
    };
    let mut text = format!(
        "To: {}\n\
         Subject: [{host}] {unit} failed: {result}, {how}\n\
         Auto-Submitted: auto-generated\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         {unit} failed on {host}.\n\
         \n\
         Result:       {result}\n\
         How it ended: {how}\n\
         Invocation:   {invocation}\n\
         \n",
        to.join(", "),
    );
    if lines.is_empty() {
        text.push_str("The run's lines could not be read from the journal.\n");
    } else {
        text.push_str("The run's lines in the journal:\n\n");
        let skipped = lines.len().saturating_sub(LINES);
        if skipped > 0 {
            text.push_str(&format!("({skipped} earlier lines left out)\n"));
        }
        for line in &lines[skipped..] {
            text.push_str(&line.stamped());
            text.push('\n');
        }
        if !complete {
            text.push_str(&format!(
                "(the journal did not have all of the run's lines within {} s)\n",
                journal::WAIT.as_secs()
            ));
        }
    }
    text.push_str(&format!(
        "\nSee: timerapps{user} status; journalctl{user} _SYSTEMD_INVOCATION_ID={invocation}\n\
         Sent by timerapps-mail@; stop these mails by emptying MAIL_TO.\n",
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

    fn failure(unit: &str) -> Failure {
        Failure {
            unit: unit.into(),
            result: "exit-code".into(),
            exit_code: "exited".into(),
            exit_status: "1".into(),
            invocation: "abc".into(),
        }
    }

    fn line(text: &str) -> Line {
        Line {
            usec: 1_700_000_000_000_000,
            who: "dump-database[42]".into(),
            text: text.into(),
            manager: false,
        }
    }

    #[test]
    fn the_message_names_the_unit_and_carries_the_lines() {
        let f = failure("dump-database.service");
        let lines = (vec![line("line one")], true);
        let m = message(&f, "db1", &["root".into()], &lines, Scope::System);
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
        assert!(body.contains(" dump-database[42]: line one\n"), "{body}");
        assert!(body.contains("_SYSTEMD_INVOCATION_ID=abc"), "{body}");
        assert!(!body.contains("did not have all"), "{body}");
    }

    #[test]
    fn nothing_from_the_run_forges_a_header_or_a_line() {
        let mut f = failure("dump-database@x.service\nBcc: all@example.org");
        f.result = "exit-code\r\nX-Forged: yes".into();
        f.exit_code = "killed".into();
        f.exit_status = "TERM\n\nforged body".into();
        let lines = (Vec::new(), false);
        let m = message(&f, "db1\x1b[2J", &["root".into()], &lines, Scope::System);
        let (head, _) = m.split_once("\n\n").unwrap();
        assert_eq!(head.lines().count(), 6, "{head}");
        assert!(!m.contains('\x1b') && !m.contains('\r'), "{m:?}");
        assert!(
            head.contains(
                "Subject: [db1\\x1b[2J] dump-database@x.service\\x0aBcc: all@example.org \
                 failed: exit-code\\x0d\\x0aX-Forged: yes, killed by SIGTERM\\x0a\\x0aforged body"
            ),
            "{head}"
        );
        assert!(m.contains("could not be read from the journal"), "{m}");
    }

    #[test]
    fn a_long_run_mails_its_last_lines() {
        let lines: Vec<Line> = (0..250).map(|i| line(&format!("row {i}"))).collect();
        let m = message(
            &failure("dump-database.service"),
            "db1",
            &["root".into()],
            &(lines, false),
            Scope::User,
        );
        assert!(m.contains("(50 earlier lines left out)\n"), "{m}");
        assert!(!m.contains(": row 49\n") && m.contains(": row 50\n"), "{m}");
        assert!(m.contains("within 30 s)\n"), "{m}");
        assert!(m.contains("journalctl --user _SYSTEMD"), "{m}");
    }
}
