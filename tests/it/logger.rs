//! myapp and otherapp: the line the reference scripts write, in local time,
//! whole under concurrency, and bad log files refused.

use crate::harness::{cmd, is_root, job, run, sh, snapshot, start, user_ids, Sandbox, TIMEOUT};
use chrono::{Duration as Span, NaiveDateTime, Utc};
use regex_lite::Regex;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

const LINE: &str =
    r"^\[(myapp|otherapp)\] executed at (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6})$";

fn stamp(line: &str) -> NaiveDateTime {
    let caps = Regex::new(LINE).unwrap().captures(line);
    let caps = caps.unwrap_or_else(|| panic!("line {line:?} does not match {LINE}"));
    NaiveDateTime::parse_from_str(&caps[2], "%Y-%m-%d %H:%M:%S%.6f").unwrap()
}

#[test]
fn each_run_appends_one_line_in_local_time() {
    let sb = Sandbox::new("logger-format");
    let log = sb.path("app.log");
    // A fixed offset far from UTC shows the time is local, as datetime.now().
    for name in ["myapp", "otherapp"] {
        for _ in 0..2 {
            let before = Utc::now().naive_utc() + Span::hours(9);
            let r = run(job(name).env("LOGFILE", &log).env("TZ", "JST-9"));
            r.ok();
            assert_eq!(
                r.stdout,
                format!("[{name}] wrote to {}\n", log.display()),
                "{r}"
            );
            assert_eq!(r.stderr, "", "{r}");
            let text = fs::read_to_string(&log).unwrap();
            let last = text.lines().last().unwrap();
            assert!(last.starts_with(&format!("[{name}]")), "{text}");
            let at = stamp(last);
            let after = Utc::now().naive_utc() + Span::hours(9);
            assert!(
                before - Span::seconds(1) <= at && at <= after,
                "{at} not in {before}..{after}"
            );
        }
    }
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(text.lines().count(), 4, "{text}");
}

/// Named zones come from the tz database, with their summer time, as for
/// Python; GNU date, another implementation, tells what the time was there.
#[test]
fn named_time_zones_follow_the_tz_database() {
    let sb = Sandbox::new("logger-zones");
    let log = sb.path("app.log");
    let zones = [
        "America/New_York",
        ":Asia/Kolkata",
        "Australia/Lord_Howe",
        "Europe/Berlin",
    ];
    for tz in zones {
        let date = || {
            let now = run(cmd("date").env("TZ", tz).arg("+%Y-%m-%d %H:%M:%S"));
            now.ok().stdout.trim().to_owned()
        };
        // A zone missing from the tz database reads as UTC, for date and
        // the logger alike: then this test would prove nothing.
        let offset = run(cmd("date").env("TZ", tz).arg("+%z"))
            .ok()
            .stdout
            .clone();
        assert_ne!(
            offset.trim(),
            "+0000",
            "TZ={tz} reads as UTC: is tzdata installed?"
        );
        let before = date();
        run(job("myapp").env("LOGFILE", &log).env("TZ", tz)).ok();
        let after = date();
        let text = fs::read_to_string(&log).unwrap();
        let at = stamp(text.lines().last().unwrap())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        // The strings sort as times do, but for the hour a zone repeats.
        assert!(
            before <= at && at <= after,
            "TZ={tz}: myapp wrote {at}, date said {before} before and {after} after"
        );
    }
}

#[test]
fn two_hundred_concurrent_runs_leave_two_hundred_whole_lines() {
    let sb = Sandbox::new("logger-concurrent");
    let log = sb.path("app.log");
    let runs: Vec<_> = (0..200)
        .map(|_| start(job("myapp").env("LOGFILE", &log)))
        .collect();
    for r in runs {
        r.wait(TIMEOUT).ok();
    }
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 200, "{text}");
    assert_eq!(text.len(), lines.iter().map(|l| l.len() + 1).sum::<usize>());
    let stamps: Vec<_> = lines.iter().map(|l| stamp(l)).collect();
    // The time is taken under the lock, so the file is in time order.
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{text}");
    assert_eq!(snapshot(&sb.path("")).len(), 1);
}

#[test]
fn help_and_version() {
    for name in ["myapp", "otherapp"] {
        let r = run(job(name).arg("--help"));
        r.ok();
        assert!(
            r.stdout.contains("LOGFILE") && r.stdout.contains("Exit status"),
            "{r}"
        );
        let r = run(job(name).arg("--version"));
        assert_eq!(
            r.ok().stdout,
            format!("{name} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// Runs `name` with LOGFILE=`logfile`; it must fail with exit 73 and one
/// line naming LOGFILE and the path, and leave the sandbox as it was.
#[track_caller]
fn refused(sb: &Sandbox, c: &mut std::process::Command, logfile: &std::path::Path, why: &str) {
    let before = sb.tree();
    let r = run(c.env("LOGFILE", logfile));
    r.expect(73)
        .stderr_has("LOGFILE")
        .stderr_has(&logfile.display().to_string())
        .stderr_has(why);
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert_eq!(r.stdout, "", "{r}");
    let after = sb.tree();
    assert_eq!(before, after, "the sandbox changed\n{r}");
}

#[test]
fn bad_logfile_is_refused_and_nothing_is_written() {
    let sb = Sandbox::new("logger-bad");
    let dir = sb.mkdir("a-directory");
    refused(&sb, &mut job("myapp"), &dir, "Is a directory");
    refused(
        &sb,
        &mut job("otherapp"),
        &sb.path("missing/app.log"),
        "No such file",
    );

    // A symlink planted in a world-writable sticky directory is not followed.
    let sticky = sb.mkdir("sticky");
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let link = sticky.join("app.log");
    std::os::unix::fs::symlink(sb.path("target.log"), &link).unwrap();
    refused(&sb, &mut job("myapp"), &link, "symbolic link");
    assert!(!sb.path("target.log").exists());

    // A FIFO would block the job forever; it is refused at once.
    sh(&format!("mkfifo '{}'", sb.path("fifo").display()));
    refused(
        &sb,
        &mut job("myapp"),
        &sb.path("fifo"),
        "not a regular file",
    );
}

#[test]
fn symlinks_outside_sticky_directories_are_followed() {
    let sb = Sandbox::new("logger-symlink");
    std::os::unix::fs::symlink(sb.path("target.log"), sb.path("link.log")).unwrap();
    run(job("myapp").env("LOGFILE", sb.path("link.log"))).ok();
    assert_eq!(
        fs::read_to_string(sb.path("target.log"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[test]
fn unwritable_logfile_is_refused() {
    let sb = Sandbox::new("logger-unwritable");
    let dir = sb.mkdir("ro");
    let log = dir.join("app.log");
    if is_root() {
        // Root writes anywhere: run as nobody, like the service's own user,
        // from a copy of the binary that nobody can reach.
        let copy = sb.path("myapp");
        fs::copy(crate::harness::bin("myapp"), &copy).unwrap();
        let (uid, gid) = user_ids("nobody");
        refused(&sb, cmd(&copy).uid(uid).gid(gid), &log, "Permission denied");
    } else {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
        refused(&sb, &mut job("myapp"), &log, "Permission denied");
    }
}
