//! dump-database supervised by a real systemd: progress in `systemctl
//! status` while a dump runs, and a hung dump stopped by the watchdog as a
//! clean failure, after which the timer's next run publishes again.

use crate::container::{Container, Host, Release};
use crate::harness::{dump_files, names, wait_for};
use std::fs;
use std::time::{Duration, Instant};

const DUMPS: &str = jobkit::dumpfile::DEFAULT_DIR;
const SETTINGS: &str = "/etc/default/dump-database";

/// Sets DUMP_COMMAND. The dumps here differ in size by design: none is
/// suspect (DUMP_SHRINK_LIMIT=0).
fn configure(c: &Container, command: &str) {
    fs::write(
        c.path(SETTINGS),
        format!("DUMP_COMMAND=\"{command}\"\nDUMP_SHRINK_LIMIT=0\n"),
    )
    .unwrap();
}

/// Every file in the dump directory with its checksum.
fn hashes(c: &Container) -> String {
    c.sh(&format!("cd {DUMPS} && ls -A | sort | xargs -r sha256sum"))
}

fn temps(c: &Container) -> Vec<String> {
    fs::read_dir(c.path(DUMPS))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

fn dump_count(c: &Container) -> usize {
    dump_files(&names("dump"), &c.path(DUMPS)).len()
}

#[test]
#[ignore = "boots a container: tests/run"]
fn progress_and_watchdog_on_debian_12() {
    progress_and_watchdog_on(Release::Bookworm);
}

#[test]
#[ignore = "boots a container: tests/run"]
fn progress_and_watchdog_on_debian_13() {
    progress_and_watchdog_on(Release::Trixie);
}

fn progress_and_watchdog_on(release: Release) {
    let c = Host::installed("supervision", release);
    a_slow_dump_shows_its_progress(&c);
    a_hung_dump_is_stopped_by_the_watchdog(&c);
    the_timers_next_run_publishes(&c);
}

const SERVICE: &str = "dump-database.service";

fn a_slow_dump_shows_its_progress(c: &Host) {
    c.step("a slow dump shows its progress");
    configure(
        c,
        "sh -c 'for i in 1 2 3 4 5 6; do head -c 50000 /dev/urandom; sleep 1; done'",
    );
    c.sh(&format!("systemctl start --no-block {SERVICE}"));
    let mut seen: Vec<String> = Vec::new();
    wait_for("the slow dump to end", Duration::from_secs(60), || {
        let status = c.show(SERVICE, "StatusText");
        if status.starts_with("dumping: ") && seen.last() != Some(&status) {
            seen.push(status);
        }
        std::thread::sleep(Duration::from_millis(200));
        c.show(SERVICE, "ActiveState") == "inactive"
    });
    assert!(
        seen.len() >= 3,
        "the status line did not change while dumping: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.contains(" read, ") && s.ends_with("/s")),
        "{seen:?}"
    );
    assert_eq!(c.show(SERVICE, "Result"), "success");
    let last = c.show(SERVICE, "StatusText");
    assert!(
        last.starts_with(&format!("published {DUMPS}/dump-")) && last.contains("300 kB read"),
        "after the run: {last:?}"
    );
    let status = c
        .exec(&["systemctl", "status", "--no-pager", SERVICE])
        .stdout;
    assert!(status.contains("Status: \"published "), "{status}");
}

fn a_hung_dump_is_stopped_by_the_watchdog(c: &Host) {
    c.step("a hung dump is stopped by the watchdog");
    c.sh("mkdir -p /etc/systemd/system/dump-database.service.d
          printf '[Service]\\nWatchdogSec=3s\\n' > /etc/systemd/system/dump-database.service.d/test.conf
          systemctl daemon-reload");
    let before = hashes(c);
    configure(c, "sh -c 'head -c 1000 /dev/urandom; exec sleep 600'");
    let at = Instant::now();
    let r = c.exec(&["systemctl", "start", SERVICE]);
    let took = at.elapsed();
    assert_ne!(r.code(), Some(0), "{r}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(30),
        "stopped after {took:?}\n{r}"
    );
    assert_eq!(c.show(SERVICE, "Result"), "watchdog");
    assert!(
        c.sh("systemctl --failed --no-legend --plain")
            .contains(SERVICE),
        "not listed as failed"
    );
    let journal = c.journal(SERVICE);
    assert!(
        journal.contains("stopped by SIGTERM; the dump was discarded"),
        "{journal}"
    );
    assert!(
        c.exec(&["pgrep", "-f", "sleep 600"]).stdout.is_empty(),
        "the command's processes were left running"
    );
    assert!(temps(c).is_empty(), "{:?}", temps(c));
    assert_eq!(hashes(c), before, "earlier dumps changed");
    let failed = c.show(SERVICE, "StatusText");
    assert!(
        failed.starts_with("failed: stopped by SIGTERM"),
        "{failed:?}"
    );
}

fn the_timers_next_run_publishes(c: &Host) {
    c.step("the timer's next run publishes");
    configure(c, "echo after the watchdog");
    c.sh("mkdir -p /etc/systemd/system/dump-database.timer.d
          printf '[Timer]\\nOnActiveSec=\\nOnActiveSec=1s\\nAccuracySec=1s\\nRandomizedDelaySec=0\\n' > /etc/systemd/system/dump-database.timer.d/test.conf
          systemctl daemon-reload
          systemctl start dump-database.timer");
    let count = dump_count(c);
    wait_for(
        "the timer's run to publish",
        Duration::from_secs(60),
        || dump_count(c) == count + 1 && c.show(SERVICE, "ActiveState") == "inactive",
    );
    assert_eq!(c.show(SERVICE, "Result"), "success");
    assert_ne!(c.state("is-failed", SERVICE), "failed");
}
