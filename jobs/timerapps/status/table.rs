//! The table `status` prints for people: a view of the JSON rows, with the
//! problems below it. Color only when asked (a terminal without NO_COLOR).

use super::model::{Row, State};
use crate::format::{ago, escape, local, result_words, seconds};
use jobkit::human::{si, span};
use std::time::Duration;

const HEADER: [&str; 10] = [
    "JOB",
    "TIMER",
    "SCHEDULE",
    "LAST RUN",
    "RESULT",
    "NEXT RUN",
    "NEWEST DUMP",
    "KEPT",
    "DRILL",
    "OFF-HOST",
];

/// The table and the problems below it, as of `now` (µs since the epoch).
pub fn render(rows: &[Row], now: u64, color: bool) -> String {
    let cells: Vec<[String; 10]> = rows.iter().map(|r| cells(r, now)).collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (c, w) in cells.iter().zip(widths) {
            text.push_str(c);
            text.extend(std::iter::repeat_n(' ', w - c.chars().count() + 2));
        }
        text.trim_end().to_owned()
    };
    let paint = |text: &str, code: &str| {
        if color && !code.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m\n")
        } else {
            format!("{text}\n")
        }
    };
    let mut out = paint(&line(&HEADER.map(String::from)), "1");
    for (row, cells) in rows.iter().zip(&cells) {
        out.push_str(&paint(&line(cells), hue(row.state)));
    }
    let problems: Vec<_> = rows
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| (r, p)))
        .collect();
    if !problems.is_empty() {
        out.push('\n');
    }
    // A problem can quote a record's reason, which carries what a database
    // or restic wrote: shown escaped, as the JSON rows keep it raw.
    for (row, problem) in problems {
        let line = format!("{}: {}", row.job, escape(problem));
        out.push_str(&paint(&line, hue(row.state)));
    }
    out
}

/// The color of a job's line: red when it needs attention, yellow when it
/// does nothing for want of settings.
fn hue(state: State) -> &'static str {
    match state {
        State::Healthy => "",
        State::NotConfigured => "1;33",
        State::Failing | State::Unknown => "1;31",
    }
}

fn cells(r: &Row, now: u64) -> [String; 10] {
    // "?" for a job whose state could not be read, "!" for one with problems.
    let mark = match r.state {
        State::Healthy | State::NotConfigured => "",
        State::Failing => "! ",
        State::Unknown => "? ",
    };
    let (last, result) = match &r.last_run {
        None => ("never".to_owned(), "-".to_owned()),
        Some(run) => {
            let took = run
                .duration_seconds
                .map(|s| format!(" in {}", seconds(Duration::from_secs_f64(s))))
                .unwrap_or_default();
            let result = match run.result.as_deref() {
                _ if run.running => format!("running{}", took.replace(" in ", " for ")),
                None => "before boot".to_owned(),
                Some("success") if run.exit_status.is_some_and(|s| s != 0) => {
                    format!("exit {}{took}", run.exit_status.unwrap_or_default())
                }
                Some(other) => format!(
                    "{}{took}",
                    result_words(other, run.exit_status.unwrap_or(0))
                ),
            };
            (
                format!(
                    "{} ({})",
                    local(run.started.usec),
                    ago(now, run.started.usec)
                ),
                result,
            )
        }
    };
    let next = r.next_run.as_ref().map_or("-".to_owned(), |n| {
        format!("{} ({})", local(n.usec), ago(now, n.usec))
    });
    let (newest, kept) = match &r.dumps {
        None => ("-".to_owned(), "-".to_owned()),
        Some(d) => (
            match (&d.newest, d.count) {
                (Some(n), _) => {
                    let mut cell = format!(
                        "{} old, {}",
                        span(Duration::from_secs(n.age_seconds)),
                        si(n.size)
                    );
                    if n.verdict != "good" {
                        cell.push_str(", ");
                        cell.push_str(n.verdict);
                    } else if n.check == "unchecked" {
                        cell.push_str(", unchecked");
                    }
                    cell
                }
                (None, Some(_)) if r.state == State::NotConfigured => "not configured".to_owned(),
                (None, Some(_)) => "no dumps yet".to_owned(),
                (None, None) => "?".to_owned(),
            },
            match d.count {
                Some(c) => {
                    let apart: Vec<String> = [
                        (d.suspect, "suspect"),
                        (d.unchecked, "unchecked"),
                        (d.untrusted, "untrusted"),
                    ]
                    .iter()
                    .filter_map(|(n, what)| n.filter(|n| *n > 0).map(|n| format!("{n} {what}")))
                    .collect();
                    if apart.is_empty() {
                        c.to_string()
                    } else {
                        format!("{c} ({})", apart.join(", "))
                    }
                }
                None => "?".to_owned(),
            },
        ),
    };
    let drill = match &r.drill {
        None => "-".to_owned(),
        Some(d) => match (&d.last, &d.error) {
            (_, Some(_)) => "?".to_owned(),
            (Some(last), None) => {
                let roles = match &last.empty_roles {
                    Some(roles) if !roles.is_empty() => ", roles not backed up",
                    _ => "",
                };
                format!("{} {}{roles}", last.result, ago(now, last.started.usec))
            }
            (None, None) if d.enabled == "enabled" => "none yet".to_owned(),
            (None, None) => "-".to_owned(),
        },
    };
    [
        format!("{mark}{}", r.job),
        format!("{}, {}", r.enabled, r.active),
        r.schedule.clone(),
        last,
        result,
        next,
        newest,
        kept,
        drill,
        off_host(r, now),
    ]
}

/// The newest off-host copy's age, how many wait, and a failure.
fn off_host(r: &Row, now: u64) -> String {
    let Some(c) = &r.copy else {
        return "-".to_owned();
    };
    let last = match (&c.last, &c.error) {
        (_, Some(_)) => return "?".to_owned(),
        (None, None) if c.configured => return "none yet".to_owned(),
        (None, None) => return "-".to_owned(),
        (Some(last), None) => last,
    };
    let mut cell = if last.result == "failed" {
        format!("failed {}", ago(now, last.started.usec))
    } else {
        match &last.newest {
            Some(n) => format!("{} old", span(Duration::from_secs(n.age_seconds))),
            None => "none yet".to_owned(),
        }
    };
    if last.waiting > 0 {
        cell.push_str(&format!(", {} waiting", last.waiting));
    }
    if last.check.as_ref().is_some_and(|k| k.result == "failed") {
        cell.push_str(", check failed");
    }
    cell
}

#[cfg(test)]
mod tests {
    use super::super::model::{
        when, Copy, CopyCheck, CopyNewest, CopyRun, Drill, DrillRun, Dumps, LastRun, Newest, Row,
    };
    use super::*;

    const NOW: u64 = 1_800_000_000_000_000;

    /// The cells of a table line: columns are two spaces or more apart.
    fn columns(line: &str) -> Vec<&str> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    fn row(job: &str) -> Row {
        Row {
            job: job.into(),
            timer: format!("{job}.timer"),
            service: format!("{job}.service"),
            enabled: "enabled".into(),
            active: "active".into(),
            schedule: "every 5 min".into(),
            calendar: Vec::new(),
            period_seconds: Some(300),
            last_run: Some(LastRun {
                started: when(NOW - 60_000_000),
                running: false,
                result: Some("success".into()),
                exit_status: Some(0),
                duration_seconds: Some(0.4),
            }),
            next_run: Some(when(NOW + 240_000_000)),
            dumps: None,
            drill: None,
            copy: None,
            state: State::Healthy,
            healthy: true,
            problems: Vec::new(),
        }
    }

    fn newest(age_seconds: u64, verdict: &'static str, check: &'static str) -> Newest {
        Newest {
            file: "dump-20270115T080000Z.sql.gz".into(),
            form: "gzip",
            stamped: when(NOW - age_seconds * 1_000_000),
            age_seconds,
            size: 30_500_000,
            verdict,
            check,
        }
    }

    #[test]
    fn suspect_and_unchecked_dumps_are_marked() {
        let mut r = row("dump-database");
        let dumps = |newest| Dumps {
            dir: "/var/lib/timerapps/dumps/dump-database".into(),
            keep: 5,
            policy: "5 newest, 7 daily".into(),
            count: Some(10),
            suspect: Some(2),
            unchecked: Some(3),
            future: Some(0),
            untrusted: Some(1),
            newest: Some(newest),
            newest_good: None,
            error: None,
        };
        r.dumps = Some(dumps(newest(60, "suspect", "complete")));
        let text = render(std::slice::from_ref(&r), NOW, false);
        assert_eq!(
            columns(text.lines().nth(1).unwrap())[6..],
            [
                "1 min old, 30.5 MB, suspect",
                "10 (2 suspect, 3 unchecked, 1 untrusted)",
                "-",
                "-"
            ],
            "{text}"
        );
        r.dumps = Some(dumps(newest(60, "good", "unchecked")));
        let text = render(&[r], NOW, false);
        assert_eq!(
            columns(text.lines().nth(1).unwrap())[6],
            "1 min old, 30.5 MB, unchecked",
            "{text}"
        );
    }

    #[test]
    fn the_last_drill_and_its_age() {
        let mut r = row("dump-database@sales");
        let drill = |last: Option<&'static str>, enabled: &str, roles: &[&str]| Drill {
            enabled: enabled.into(),
            period_seconds: None,
            last: last.map(|result| DrillRun {
                started: when(NOW - 7_200_000_000),
                age_seconds: 7200,
                result,
                reason: None,
                dump: None,
                server: None,
                duration_seconds: 1.0,
                compared: true,
                tables: Some(2),
                rows: Some(9),
                empty_roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
                last_success: None,
            }),
            error: None,
        };
        for (d, cell) in [
            (drill(Some("failed"), "enabled", &[]), "failed 2 h ago"),
            (drill(Some("passed"), "disabled", &[]), "passed 2 h ago"),
            (
                drill(Some("passed"), "enabled", &["app"]),
                "passed 2 h ago, roles not backed up",
            ),
            (drill(None, "enabled", &[]), "none yet"),
            (drill(None, "disabled", &[]), "-"),
        ] {
            r.drill = Some(d);
            let text = render(std::slice::from_ref(&r), NOW, false);
            assert_eq!(columns(text.lines().nth(1).unwrap())[8], cell, "{text}");
        }
    }

    #[test]
    fn the_newest_off_host_copy_what_waits_and_failures() {
        let mut r = row("dump-database@sales");
        let copy = |result: &'static str, waiting: u64, check: &'static str| Copy {
            configured: true,
            enabled: "enabled".into(),
            last: Some(CopyRun {
                started: when(NOW - 600_000_000),
                age_seconds: 600,
                destination: "restic",
                result,
                reason: None,
                duration_seconds: 1.0,
                copied: Vec::new(),
                newest: Some(CopyNewest {
                    dump: "sales-20270115T080000Z.sql".into(),
                    stamped: when(NOW - 3_600_000_000),
                    age_seconds: 3600,
                }),
                waiting,
                last_success: None,
                check: Some(CopyCheck {
                    started: when(NOW - 600_000_000),
                    subset: "1/30".into(),
                    result: check,
                    reason: None,
                    last_success: None,
                }),
            }),
            error: None,
        };
        let mut none = copy("copied", 0, "passed");
        none.last = None;
        let mut off = copy("copied", 0, "passed");
        (off.last, off.configured) = (None, false);
        for (c, cell) in [
            (copy("copied", 0, "passed"), "1 h old"),
            (copy("failed", 2, "passed"), "failed 10 min ago, 2 waiting"),
            (copy("copied", 0, "failed"), "1 h old, check failed"),
            (none, "none yet"),
            (off, "-"),
        ] {
            r.copy = Some(c);
            let text = render(std::slice::from_ref(&r), NOW, false);
            assert_eq!(columns(text.lines().nth(1).unwrap())[9], cell, "{text}");
        }
    }

    #[test]
    fn a_healthy_and_a_failed_job() {
        let good = row("myapp");
        let mut bad = row("dump-database");
        bad.healthy = false;
        bad.state = State::Failing;
        bad.problems = vec!["last run failed: failed (exit 1)".into()];
        bad.last_run.as_mut().unwrap().result = Some("exit-code".into());
        bad.last_run.as_mut().unwrap().exit_status = Some(1);
        bad.dumps = Some(Dumps {
            dir: "/var/lib/timerapps/dumps/dump-database".into(),
            keep: 5,
            policy: "5 newest".into(),
            count: Some(2),
            suspect: Some(0),
            unchecked: Some(0),
            future: Some(0),
            untrusted: Some(0),
            newest: Some(newest(3600, "good", "complete")),
            newest_good: Some(newest(3600, "good", "complete")),
            error: None,
        });
        let text = render(&[good, bad], NOW, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(columns(lines[0]), HEADER, "{text}");
        let good = columns(lines[1]);
        assert_eq!(
            good[..3],
            ["myapp", "enabled, active", "every 5 min"],
            "{text}"
        );
        assert!(good[3].ends_with(" (1 min ago)"), "{text}");
        assert_eq!(good[4], "success in 0.4 s", "{text}");
        assert!(good[5].ends_with(" (in 4 min)"), "{text}");
        assert_eq!(good[6..], ["-", "-", "-", "-"], "{text}");
        let bad = columns(lines[2]);
        assert_eq!(bad[0], "! dump-database", "{text}");
        assert_eq!(bad[4], "failed (exit 1) in 0.4 s", "{text}");
        assert_eq!(bad[6..], ["1 h old, 30.5 MB", "2", "-", "-"], "{text}");
        // Columns line up under their heads.
        let at = |line: &str, cell: &str| line.rfind(cell).unwrap();
        assert_eq!(at(lines[0], "KEPT"), at(lines[2], "2  "), "{text}");
        assert_eq!(lines[3], "");
        assert_eq!(lines[4], "dump-database: last run failed: failed (exit 1)");
        assert_eq!(lines.len(), 5, "{text}");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn a_reason_from_a_record_is_shown_escaped_and_kept_raw_in_json() {
        let mut bad = row("dump-database");
        bad.state = State::Failing;
        bad.healthy = false;
        let reason = "the last restore drill failed 1 h ago: ERROR:  \x1b[2Jrow\n(1, \u{202e}x)";
        bad.problems = vec![reason.into()];
        let json = serde_json::to_value(&bad).unwrap();
        assert_eq!(json["problems"][0], reason);
        let text = render(&[bad], NOW, false);
        assert_eq!(
            text.lines().nth(3),
            Some(
                "dump-database: the last restore drill failed 1 h ago: ERROR:  \\x1b[2Jrow\\x0a\
                 (1, \\u{202e}x)"
            ),
            "{text}"
        );
        assert_eq!(text.lines().count(), 4, "{text}");
    }

    #[test]
    fn a_job_that_could_not_be_read_is_marked_unknown() {
        let mut r = row("dump-database@sales");
        r.state = State::Unknown;
        r.healthy = false;
        r.problems = vec!["cannot load dump-database@sales.service: timed out".into()];
        let text = render(&[row("myapp"), r], NOW, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("? dump-database@sales "), "{text}");
        assert_eq!(
            lines[4],
            "dump-database@sales: cannot load dump-database@sales.service: timed out"
        );
    }

    #[test]
    fn color_marks_the_header_and_what_is_wrong_only() {
        let mut bad = row("otherapp");
        bad.healthy = false;
        bad.state = State::Failing;
        bad.problems = vec!["the timer failed".into()];
        let text = render(&[row("myapp"), bad], NOW, true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("\x1b[1mJOB"), "{text:?}");
        assert!(!lines[1].contains('\x1b'), "{text:?}");
        assert!(lines[2].starts_with("\x1b[1;31m! otherapp"), "{text:?}");
        assert_eq!(lines[4], "\x1b[1;31motherapp: the timer failed\x1b[0m");
    }

    #[test]
    fn a_job_that_never_ran_and_an_unreadable_dump_directory() {
        let mut r = row("dump-database@sales");
        let why = "cannot read /var/lib/timerapps/dumps/sales: Permission denied";
        r.state = State::Unknown;
        r.healthy = false;
        r.problems = vec![why.into()];
        r.last_run = None;
        r.next_run = None;
        r.dumps = Some(Dumps {
            dir: "/var/lib/timerapps/dumps/sales".into(),
            keep: 5,
            policy: "5 newest".into(),
            count: None,
            suspect: None,
            unchecked: None,
            future: None,
            untrusted: None,
            newest: None,
            newest_good: None,
            error: Some(why.into()),
        });
        let text = render(&[r], NOW, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("? dump-database@sales "), "{text}");
        assert_eq!(
            columns(lines[1])[3..],
            ["never", "-", "-", "?", "?", "-", "-"],
            "{text}"
        );
        // Said once, below the table.
        assert_eq!(lines[2..], ["", &format!("dump-database@sales: {why}")]);
    }
}
