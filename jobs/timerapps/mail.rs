//! `mail-failure UNIT`: what the `timerapps-mail@` unit runs when a job's
//! service fails (its `OnFailure=`). It mails MAIL_TO the failed run's
//! unit, result, exit status and journal lines, as systemd passes them
//! (`$MONITOR_*`), by SMTP to the local MTA (MAIL_SMTP, `localhost:25`),
//! which needs no privilege; where nothing listens there, through the
//! MTA's `/usr/sbin/sendmail`. Without an address or an MTA it does
//! nothing, successfully: the job has failed already, and its failure is
//! in the journal and the status either way.
//!
//! It runs as the system user `timerapps-mail` (in a user's manager, as
//! that user): it reads the journal as a member of `systemd-journal`, and
//! waits for the run's lines to arrive rather than asking journald, which
//! only root may, to store them first. What the run wrote reaches the mail
//! escaped, its headers too.

use crate::format::escape;
use crate::monitoring::Monitoring;
use crate::smtp::{self, Envelope, Server};
use crate::systemd::journal::{self, Line, Run};
use crate::systemd::{self, Bus, Scope};
use jobkit::catalogue::{MAIL_SENDMAIL_DROP_IN, MAIL_SENDMAIL_EXAMPLE, MAIL_USER_NAME};
use jobkit::{outln, Error, Exit, Result};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SENDMAIL: &str = "/usr/sbin/sendmail";

/// The most journal lines a mail carries: the end of the run.
const LINES: usize = 200;

/// The longest the SMTP session may take. With the journal's wait
/// ([`journal::WAIT`]) it stays within the unit's `TimeoutStartSec=`.
const SMTP_TIME: Duration = Duration::from_secs(60);

/// The longest line the mail carries: RFC 5322 allows 998 octets, and
/// DATA may add a dot.
const LINE_OCTETS: usize = 990;

pub fn run(unit: &str, scope: Scope) -> Result<bool> {
    let monitoring = Monitoring::load(scope)?;
    if monitoring.mail_to.is_empty() {
        outln!("no MAIL_TO in {}: no mail sent", monitoring.file.display());
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
    let host = jobkit::host_name();
    // The mail name, where there is one, also names the host to the MTA
    // (EHLO): asking the resolver for the host's full name can wait for a
    // DNS server.
    let domain = mail_name().unwrap_or_else(|| fully_qualified(&host));
    let to: Vec<String> = monitoring
        .mail_to
        .iter()
        .map(|a| qualified(a, &domain))
        .collect();
    let head = Head {
        host,
        from: format!("{}@{domain}", sender(scope)),
        to,
        date: chrono::Local::now().to_rfc2822(),
        id: message_id(&domain),
    };
    let message = message(&failed, &head, &lines, scope);
    let envelope = Envelope {
        helo: &domain,
        from: &head.from,
        to: &head.to,
    };
    match deliver(&monitoring.mail_smtp, &envelope, &message)? {
        Some(how) => outln!(
            "mailed the failure of {} to {} {how}",
            escape(&failed.unit),
            head.to.join(", ")
        ),
        None => outln!(
            "nothing listens on {} and there is no {SENDMAIL} (install a mail transfer \
             agent): no mail sent",
            monitoring.mail_smtp
        ),
    }
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

/// The mail's header values that are not the failed run's: the host, the
/// sender and recipients (qualified), the date and the Message-Id.
struct Head {
    host: String,
    from: String,
    to: Vec<String>,
    date: String,
    id: String,
}

/// The host's mail name, `/etc/mailname`, with which Debian's MTAs qualify
/// local addresses.
fn mail_name() -> Option<String> {
    let mut text = String::new();
    std::fs::File::open("/etc/mailname")
        .ok()?
        .take(256)
        .read_to_string(&mut text)
        .ok()?;
    let name = text.lines().next()?.trim();
    domain_like(name).then(|| name.to_owned())
}

fn domain_like(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// The host's fully qualified name, as `hostname --fqdn` finds it (the
/// resolver's canonical name); its plain name when it has none.
fn fully_qualified(host: &str) -> String {
    if host.contains('.') || !domain_like(host) {
        return host.to_owned();
    }
    let Ok(name) = std::ffi::CString::new(host) else {
        return host.to_owned();
    };
    // SAFETY: the hints are zeroed but for their flags, as getaddrinfo
    // wants; the list it returns is read, then freed once.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        let mut list: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list) != 0 {
            return host.to_owned();
        }
        let canonical = (*list).ai_canonname;
        let found = (!canonical.is_null()).then(|| {
            std::ffi::CStr::from_ptr(canonical)
                .to_string_lossy()
                .into_owned()
        });
        libc::freeaddrinfo(list);
        found
            .filter(|f| f.contains('.') && domain_like(f))
            .unwrap_or_else(|| host.to_owned())
    }
}

/// `address` with `domain` where it has none, as sendmail qualifies it.
fn qualified(address: &str, domain: &str) -> String {
    if address.contains('@') {
        address.to_owned()
    } else {
        format!("{address}@{domain}")
    }
}

/// The envelope's sender: the unit's user.
fn sender(scope: Scope) -> String {
    match scope {
        Scope::System => MAIL_USER_NAME.to_owned(),
        // A user's manager sets USER for its services.
        Scope::User => std::env::var("USER")
            .ok()
            .filter(|u| {
                !u.is_empty()
                    && u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
            })
            .unwrap_or_else(|| jobkit::euid().to_string()),
    }
}

/// A Message-Id no other mail has: this unit's invocation ID, random for
/// each start, or the time and process where it has none.
fn message_id(domain: &str) -> String {
    let local = std::env::var("INVOCATION_ID")
        .ok()
        .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            format!("{}.{}", now.as_nanos(), std::process::id())
        });
    format!("<{local}.timerapps@{domain}>")
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
    let described = systemd::connect(scope)
        .ok()
        .and_then(|sd| sd.last_run(&f.unit).ok())
        .map(|last| Run::of(&last, program));
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
    head: &Head,
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
    let (how, result, host) = (escape(&how), escape(result), escape(&head.host));
    let (unit, invocation) = (escape(&f.unit), escape(&f.invocation));
    let user = match scope {
        Scope::System => "",
        Scope::User => " --user",
    };
    let mut text = format!(
        "From: {}\n\
         To: {}\n\
         Subject: [{host}] {unit} failed: {result}, {how}\n\
         Date: {}\n\
         Message-Id: {}\n\
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
        escape(&head.from),
        escape(&head.to.join(", ")),
        escape(&head.date),
        escape(&head.id),
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
            push_wrapped(&mut text, &line.stamped());
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

/// `line` as lines of at most [`LINE_OCTETS`], cut between characters.
fn push_wrapped(text: &mut String, line: &str) {
    let mut rest = line;
    while rest.len() > LINE_OCTETS {
        let mut cut = LINE_OCTETS;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        text.push_str(&rest[..cut]);
        text.push('\n');
        rest = &rest[cut..];
    }
    text.push_str(rest);
    text.push('\n');
}

/// Hands the message to the MTA: by SMTP to `server`, or, where nothing
/// listens there, to its sendmail. Says how; None when there is neither.
fn deliver(server: &Server, envelope: &Envelope, message: &str) -> Result<Option<String>> {
    match smtp::send(server, envelope, message, Instant::now() + SMTP_TIME) {
        Ok(()) => Ok(Some(format!("by SMTP to {server}"))),
        Err(smtp::Failure::Failed(e)) => Err(Error::new(
            Exit::Failure,
            format!("{e}; check the mail transfer agent"),
        )),
        Err(smtp::Failure::Refused) if !Path::new(SENDMAIL).exists() => Ok(None),
        Err(smtp::Failure::Refused) => {
            sendmail(server, message, envelope.to)?;
            Ok(Some(format!(
                "through {SENDMAIL} (nothing listens on {server})"
            )))
        }
    }
}

/// Hands the message to `/usr/sbin/sendmail`, which delivers before it
/// returns (`-odi`): a delivery left running in the background would be
/// stopped with the unit. A setuid or setgid sendmail gains nothing under
/// `NoNewPrivileges=`, which the system unit's sandbox sets: it is not
/// tried there, and a failure there says which drop-in lifts it.
fn sendmail(server: &Server, message: &str, to: &[String]) -> Result<()> {
    let sandboxed = no_new_privileges();
    let lift = format!(
        "start the MTA's SMTP service on {server}, or install {MAIL_SENDMAIL_EXAMPLE} as \
         {MAIL_SENDMAIL_DROP_IN} and run systemctl daemon-reload"
    );
    let setid = std::fs::metadata(SENDMAIL)
        .is_ok_and(|m| m.permissions().mode() & (libc::S_ISUID | libc::S_ISGID) != 0);
    if sandboxed && setid {
        return Err(Error::new(
            Exit::Failure,
            format!(
                "nothing listens on {server}, and {SENDMAIL} is setuid or setgid, which needs \
                 privileges this unit does not give (NoNewPrivileges=): no mail sent; {lift}"
            ),
        ));
    }
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
        let hint = if sandboxed {
            format!(
                "if it runs a setuid or setgid program (postfix's postdrop, nullmailer's \
                 queue), which needs privileges this unit does not give: {lift}"
            )
        } else {
            "check the mail transfer agent".to_owned()
        };
        return Err(Error::new(
            Exit::Failure,
            format!(
                "nothing listens on {server}, and {SENDMAIL} failed ({status}): the mail was \
                 not sent; {hint}"
            ),
        ));
    }
    Ok(())
}

/// Whether this process runs under `NoNewPrivileges=`, in which a setuid or
/// setgid program runs with its caller's rights.
fn no_new_privileges() -> bool {
    // SAFETY: PR_GET_NO_NEW_PRIVS reads a flag and takes no pointers.
    unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 }
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

    fn head(host: &str) -> Head {
        Head {
            host: host.into(),
            from: "timerapps-mail@db1.example.org".into(),
            to: vec!["root@db1.example.org".into(), "ops@example.org".into()],
            date: "Thu, 4 Dec 2025 18:00:00 +0100".into(),
            id: "<0123abcd.timerapps@db1.example.org>".into(),
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
        let m = message(&f, &head("db1"), &lines, Scope::System);
        let (head, body) = m.split_once("\n\n").unwrap();
        assert_eq!(
            head,
            "From: timerapps-mail@db1.example.org\n\
             To: root@db1.example.org, ops@example.org\n\
             Subject: [db1] dump-database.service failed: exit-code, exit status 1\n\
             Date: Thu, 4 Dec 2025 18:00:00 +0100\n\
             Message-Id: <0123abcd.timerapps@db1.example.org>\n\
             Auto-Submitted: auto-generated\n\
             MIME-Version: 1.0\n\
             Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit"
        );
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
        let m = message(&f, &head("db1\x1b[2J"), &lines, Scope::System);
        let (head, _) = m.split_once("\n\n").unwrap();
        assert_eq!(head.lines().count(), 9, "{head}");
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
            &head("db1"),
            &(lines, false),
            Scope::User,
        );
        assert!(m.contains("(50 earlier lines left out)\n"), "{m}");
        assert!(!m.contains(": row 49\n") && m.contains(": row 50\n"), "{m}");
        assert!(m.contains("within 30 s)\n"), "{m}");
        assert!(m.contains("journalctl --user _SYSTEMD"), "{m}");
    }

    #[test]
    fn a_long_line_is_cut_between_characters_within_the_line_limit() {
        let long = format!("{}é{}", "x".repeat(LINE_OCTETS - 20), "y".repeat(3000));
        let m = message(
            &failure("dump-database.service"),
            &head("db1"),
            &(vec![line(&long)], true),
            Scope::System,
        );
        assert!(m.lines().all(|l| l.len() <= LINE_OCTETS));
        let lines = m.split_once("journal:\n\n").unwrap().1;
        let lines = lines.split_once("\n\nSee:").unwrap().0;
        assert_eq!(lines.lines().count(), 5);
        assert!(lines.replace('\n', "").ends_with(&long));
    }

    #[test]
    fn bare_addresses_take_the_mail_domain() {
        assert_eq!(qualified("root", "db1.example.org"), "root@db1.example.org");
        assert_eq!(qualified("ops@example.org", "db1"), "ops@example.org");
        assert!(domain_like("db1.example.org") && !domain_like("a b") && !domain_like(""));
        assert_eq!(fully_qualified("db1.example.org"), "db1.example.org");
        assert!(message_id("db1.example.org").ends_with(".timerapps@db1.example.org>"));
    }
}
