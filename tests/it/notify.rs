//! What dump-database tells the service manager, recorded on a notify
//! socket of the test's own (sd_notify(3) datagrams): the status line, and
//! watchdog pings only while the dump command's output advances.

use crate::dump::{dump_job, gunzip, published};
use crate::harness::{run, Run, Sandbox};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One datagram: its STATUS= text, and whether it held WATCHDOG=1.
#[derive(Debug, Clone)]
struct Message {
    status: Option<String>,
    ping: bool,
}

/// A bound notify socket and what arrived on it.
struct Recorder {
    got: Arc<Mutex<Vec<Message>>>,
    thread: Option<JoinHandle<()>>,
    socket: UnixDatagram,
}

impl Recorder {
    fn bind(path: &Path) -> Recorder {
        let socket = UnixDatagram::bind(path).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let receiving = socket.try_clone().unwrap();
        let into = Arc::clone(&got);
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0; 4096];
            while let Ok(n) = receiving.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text == "END" {
                    return;
                }
                into.lock().unwrap().push(Message {
                    status: text
                        .lines()
                        .find_map(|l| l.strip_prefix("STATUS="))
                        .map(str::to_owned),
                    ping: text.lines().any(|l| l == "WATCHDOG=1"),
                });
            }
        });
        Recorder {
            got,
            thread: Some(thread),
            socket,
        }
    }

    /// Everything received, once the sender is done.
    fn messages(mut self) -> Vec<Message> {
        let addr = self.socket.local_addr().unwrap();
        let path = addr.as_pathname().unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to(b"END", path)
            .unwrap();
        self.thread.take().unwrap().join().unwrap();
        let got = self.got.lock().unwrap().clone();
        got
    }
}

fn notified(sb: &Sandbox, command: &str, vars: &[(&str, &str)]) -> (Run, Vec<Message>) {
    let socket = sb.path("notify.sock");
    let recorder = Recorder::bind(&socket);
    let mut c: Command = dump_job(&sb.mkdir("dumps"), command);
    c.env("NOTIFY_SOCKET", &socket);
    for (k, v) in vars {
        c.env(k, v);
    }
    let r = run(&mut c);
    (r, recorder.messages())
}

/// The bytes read, from a status line `dumping: N read, …`.
fn read_of(status: &str) -> Option<&str> {
    status.strip_prefix("dumping: ")?.split(" read,").next()
}

#[test]
fn status_shows_progress_and_pings_follow_the_output() {
    let sb = Sandbox::new("notify-progress");
    // Output, then 3 s of silence (six watchdog ticks), then output again.
    let command = "sh -c 'head -c 300000 /dev/urandom; sleep 3; head -c 300000 /dev/urandom'";
    let (r, got) = notified(&sb, command, &[("WATCHDOG_USEC", "2000000")]);
    published(&r);
    let context = format!("{r}\n{got:#?}");
    assert_eq!(
        got[0].status.as_deref(),
        Some("starting DUMP_COMMAND"),
        "{context}"
    );
    assert!(got[1].ping, "the first ping arms the watchdog\n{context}");

    let dumping: Vec<(&str, bool)> = got
        .iter()
        .filter_map(|m| Some((read_of(m.status.as_deref()?)?, m.ping)))
        .collect();
    // A ping only where the count moved since the message before.
    for pair in dumping.windows(2) {
        if pair[1].1 {
            assert_ne!(pair[0].0, pair[1].0, "a ping without progress\n{context}");
        }
    }
    // The silence: several messages in a row with the same count, no ping.
    let longest_silence = dumping
        .chunk_by(|a, b| a.0 == b.0)
        .map(|run| run.iter().skip(1).filter(|m| !m.1).count())
        .max()
        .unwrap_or(0);
    assert!(longest_silence >= 4, "no silent stretch seen\n{context}");
    let counts: Vec<&str> = dumping.iter().map(|m| m.0).collect();
    assert!(
        counts.contains(&"300 kB"),
        "the status line follows the bytes read\n{context}"
    );
    let last = got.last().unwrap().status.clone().unwrap_or_default();
    assert!(
        last.starts_with(&format!("published {}/dump-", sb.path("dumps").display()))
            && last.contains(": 600 kB read, "),
        "{context}"
    );
}

#[test]
fn no_pings_without_a_watchdog_for_this_process() {
    for vars in [
        &[][..],
        &[("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", "1")][..],
    ] {
        let sb = Sandbox::new("notify-no-watchdog");
        let (r, got) = notified(&sb, "sh -c 'echo a; sleep 1.5; echo b'", vars);
        published(&r);
        assert!(
            got.iter().all(|m| !m.ping),
            "{vars:?}: pinged\n{r}\n{got:#?}"
        );
        assert!(
            got.iter().any(|m| m
                .status
                .as_deref()
                .is_some_and(|s| s.starts_with("dumping: "))),
            "{vars:?}: no progress\n{r}\n{got:#?}"
        );
    }
}

#[test]
fn a_failure_is_the_last_status_and_the_command_never_sees_the_socket() {
    let sb = Sandbox::new("notify-failure");
    let (r, got) = notified(&sb, "sh -c 'echo partial; exit 3'", &[]);
    r.expect(1);
    let last = got
        .last()
        .and_then(|m| m.status.clone())
        .unwrap_or_default();
    assert!(
        last.starts_with("failed: DUMP_COMMAND exited with status 3"),
        "{r}\n{got:#?}"
    );

    let sb = Sandbox::new("notify-child-env");
    let vars = [("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", "1")];
    let command = "sh -c 'echo \"[$NOTIFY_SOCKET][$WATCHDOG_USEC][$WATCHDOG_PID]\"'";
    let (r, _) = notified(&sb, command, &vars);
    let (path, _) = published(&r);
    assert_eq!(gunzip(&path), "[][][]\n");
}

/// A notify socket that is not there (a manager gone, a path mistyped)
/// must not fail the dump.
#[test]
fn an_unreachable_notify_socket_fails_nothing() {
    let sb = Sandbox::new("notify-unreachable");
    let mut c = dump_job(&sb.mkdir("dumps"), "sh -c 'echo a; sleep 1.5; echo b'");
    c.env("NOTIFY_SOCKET", sb.path("missing.sock"))
        .env("WATCHDOG_USEC", "2000000");
    let (path, _) = published(&run(&mut c));
    assert_eq!(gunzip(&path), "a\nb\n");
}
