//! The Prometheus text a job's run leaves for node_exporter's textfile
//! collector: a view of the same row `status` prints, with what only the
//! end of a run knows (how it ended, when it last succeeded, when it runs
//! next). Every file has the same `# HELP` and `# TYPE` lines, from
//! [`METRICS`]; the one label, `job_name`, has one value per job or
//! instance. It is not `job` or `instance`: Prometheus sets those to the
//! scrape's own and would rename ours to `exported_job`.

use super::model::{Row, State};
use jobkit::catalogue::{Companion, Role};
use std::fmt::Write;

/// The file of `job`'s metrics in METRICS_DIR.
pub fn file_name(job: &str) -> String {
    format!("timerapps-{job}.prom")
}

/// The file of the metrics of `job`'s `companion`, apart from the job's
/// own: each file has the series of one unit's runs.
pub fn companion_file_name(job: &str, companion: &Companion) -> String {
    format!("timerapps-{job}-{}.prom", companion.word)
}

/// Whether `name` in METRICS_DIR is a job's metrics file, or the temp file
/// of one that a replace left (`atomic::replace`).
pub fn is_metrics_file(name: &str) -> bool {
    let name = name.strip_prefix('.').unwrap_or(name);
    name.starts_with("timerapps-") && (name.ends_with(".prom") || name.contains(".prom."))
}

/// (name, help) of every metric, in the order the file lists them; all
/// are gauges.
pub const METRICS: &[(&str, &str)] = &[
    (
        "timerapps_job_state",
        "Whether the job is in each state status names (healthy, failing, unknown, \
         not-configured), as judged at the end of its last run.",
    ),
    (
        "timerapps_job_last_run_timestamp_seconds",
        "When the job's last run started.",
    ),
    (
        "timerapps_job_last_run_duration_seconds",
        "How long the job's last run took.",
    ),
    (
        "timerapps_job_last_run_success",
        "Whether the job's last run succeeded (1) or failed (0).",
    ),
    (
        "timerapps_job_last_run_result",
        "How the job's last run ended, in systemd's words (Result=): 1 for the one it was.",
    ),
    (
        "timerapps_job_last_run_exit_status",
        "The exit status of the job's last run; 128 plus the signal's number when a signal \
         ended it.",
    ),
    (
        "timerapps_job_last_success_timestamp_seconds",
        "When the job's last successful run ended.",
    ),
    (
        "timerapps_job_interval_seconds",
        "Time between runs by the schedule: the interval, or the calendar's widest spacing.",
    ),
    (
        "timerapps_job_next_run_timestamp_seconds",
        "When the timer starts the job next, as known at the end of its last run.",
    ),
    (
        "timerapps_dump_newest_good_timestamp_seconds",
        "When the newest good dump was made (its stamp).",
    ),
    (
        "timerapps_dump_newest_good_size_bytes",
        "The size of the newest good dump as stored.",
    ),
    (
        "timerapps_dumps_kept",
        "How many dumps are kept, good, suspect and untrusted.",
    ),
    (
        "timerapps_dumps_suspect",
        "How many kept dumps are suspect: much smaller than the one before, or empty.",
    ),
    (
        "timerapps_dumps_future",
        "How many dumps are named later than now (written while the clock was ahead).",
    ),
    (
        "timerapps_dumps_untrusted",
        "How many kept dumps have a manifest that is missing, damaged, of another file or \
         unreadable: counted and removed by no rule until accepted or removed by hand.",
    ),
    (
        "timerapps_drill_last_run_timestamp_seconds",
        "When the job's last restore drill started.",
    ),
    (
        "timerapps_drill_last_passed",
        "Whether the job's last restore drill passed (1) or failed (0).",
    ),
    (
        "timerapps_drill_last_success_timestamp_seconds",
        "When the job's last restore drill that passed started.",
    ),
    (
        "timerapps_drill_duration_seconds",
        "How long the job's last restore drill took.",
    ),
    (
        "timerapps_drill_tables_restored",
        "How many tables the job's last restore drill restored.",
    ),
    (
        "timerapps_drill_rows_restored",
        "How many rows the job's last restore drill restored.",
    ),
    (
        "timerapps_drill_interval_seconds",
        "Time between restore drills by the drill timer's schedule, while it is enabled.",
    ),
    (
        "timerapps_offsite_last_run_timestamp_seconds",
        "When the job's last off-host copy started.",
    ),
    (
        "timerapps_offsite_last_copied",
        "Whether the job's last off-host copy succeeded (1) or failed (0).",
    ),
    (
        "timerapps_offsite_last_success_timestamp_seconds",
        "When the job's last off-host copy that succeeded started.",
    ),
    (
        "timerapps_offsite_newest_copy_timestamp_seconds",
        "When the newest dump off the host was made (its stamp).",
    ),
    (
        "timerapps_offsite_dumps_waiting",
        "Good dumps due and not off the host after the last copy.",
    ),
    (
        "timerapps_offsite_check_last_run_timestamp_seconds",
        "When the last check of the off-host repository started.",
    ),
    (
        "timerapps_offsite_check_last_passed",
        "Whether the last check of the off-host repository passed (1) or failed (0).",
    ),
    (
        "timerapps_offsite_check_last_success_timestamp_seconds",
        "When the last check of the off-host repository that passed started.",
    ),
];

/// systemd's service results, each given a series so that a rule can
/// match any of them; one more is added if systemd says another.
const RESULTS: &[&str] = &[
    "success",
    "exit-code",
    "signal",
    "core-dump",
    "watchdog",
    "timeout",
    "oom-kill",
    "resources",
    "start-limit-hit",
    "protocol",
];

const STATES: &[(State, &str)] = &[
    (State::Healthy, "healthy"),
    (State::Failing, "failing"),
    (State::Unknown, "unknown"),
    (State::NotConfigured, "not-configured"),
];

/// How a run ended, as the hook after it is told by systemd.
pub struct Ended {
    /// `$SERVICE_RESULT`.
    pub result: String,
    /// The exit status, or 128 plus the signal's number.
    pub exit_status: Option<i64>,
    /// µs since the epoch.
    pub started: u64,
    pub duration_seconds: f64,
    /// µs since the epoch: now, if it succeeded; else the last success the
    /// previous file recorded.
    pub last_success: Option<u64>,
    pub next_run: Option<u64>,
}

/// The file's text.
pub fn render(row: &Row, ended: &Ended) -> String {
    let mut values: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    let label = |extra: Option<(&str, &str)>| {
        let mut text = format!("job_name=\"{}\"", escape(&row.job));
        if let Some((k, v)) = extra {
            let _ = write!(text, ",{k}=\"{}\"", escape(v));
        }
        text
    };
    let one = |v: String| vec![(label(None), v)];
    values.push((
        "timerapps_job_state",
        STATES
            .iter()
            .map(|(s, word)| (label(Some(("state", word))), flag(*s == row.state)))
            .collect(),
    ));
    values.push((
        "timerapps_job_last_run_timestamp_seconds",
        one(seconds(ended.started)),
    ));
    values.push((
        "timerapps_job_last_run_duration_seconds",
        one(format!("{:.3}", ended.duration_seconds)),
    ));
    values.push((
        "timerapps_job_last_run_success",
        one(flag(ended.result == "success")),
    ));
    let mut results: Vec<&str> = RESULTS.to_vec();
    if !results.contains(&ended.result.as_str()) {
        results.push(&ended.result);
    }
    values.push((
        "timerapps_job_last_run_result",
        results
            .iter()
            .map(|r| (label(Some(("result", r))), flag(*r == ended.result)))
            .collect(),
    ));
    if let Some(status) = ended.exit_status {
        values.push((
            "timerapps_job_last_run_exit_status",
            one(status.to_string()),
        ));
    }
    if let Some(at) = ended.last_success {
        values.push((
            "timerapps_job_last_success_timestamp_seconds",
            one(seconds(at)),
        ));
    }
    if let Some(period) = row.period_seconds {
        values.push(("timerapps_job_interval_seconds", one(period.to_string())));
    }
    if let Some(at) = ended.next_run {
        values.push(("timerapps_job_next_run_timestamp_seconds", one(seconds(at))));
    }
    if let Some(d) = &row.dumps {
        if let Some(n) = &d.newest_good {
            values.push((
                "timerapps_dump_newest_good_timestamp_seconds",
                one(seconds(n.stamped.usec)),
            ));
            values.push((
                "timerapps_dump_newest_good_size_bytes",
                one(n.size.to_string()),
            ));
        }
        if let (Some(count), Some(future)) = (d.count, d.future) {
            values.push(("timerapps_dumps_kept", one((count - future).to_string())));
            values.push(("timerapps_dumps_future", one(future.to_string())));
        }
        if let Some(suspect) = d.suspect {
            values.push(("timerapps_dumps_suspect", one(suspect.to_string())));
        }
        if let Some(untrusted) = d.untrusted {
            values.push(("timerapps_dumps_untrusted", one(untrusted.to_string())));
        }
    }
    text(&values)
}

/// The text of the drill's file: its last record, and whether the unit
/// that just ran failed (a drill killed before it recorded anything).
/// The text of the file of the companion that just ran: its last record,
/// and whether its unit failed (killed before it recorded anything).
pub fn render_companion(row: &Row, companion: &Companion, unit_failed: bool, now: u64) -> String {
    match companion.role {
        Role::Drill => render_drill(row, unit_failed, now),
        Role::Copy => render_copy(row, unit_failed, now),
    }
}

fn render_drill(row: &Row, unit_failed: bool, now: u64) -> String {
    let label = format!("job_name=\"{}\"", escape(&row.job));
    let one = |v: String| vec![(label.clone(), v)];
    let mut values: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    let drill = row.drill.as_ref();
    let last = drill.and_then(|d| d.last.as_ref());
    let started = last.map_or(now, |l| l.started.usec);
    values.push((
        "timerapps_drill_last_run_timestamp_seconds",
        one(seconds(started)),
    ));
    let passed = last.is_some_and(|l| l.result == "passed") && !unit_failed;
    values.push(("timerapps_drill_last_passed", one(flag(passed))));
    if let Some(at) = last.and_then(|l| l.last_success.as_ref()) {
        values.push((
            "timerapps_drill_last_success_timestamp_seconds",
            one(seconds(at.usec)),
        ));
    }
    if let Some(l) = last {
        values.push((
            "timerapps_drill_duration_seconds",
            one(format!("{:.3}", l.duration_seconds)),
        ));
        if let Some(n) = l.tables {
            values.push(("timerapps_drill_tables_restored", one(n.to_string())));
        }
        if let Some(n) = l.rows {
            values.push(("timerapps_drill_rows_restored", one(n.to_string())));
        }
    }
    if let Some(p) = drill.and_then(|d| d.period_seconds) {
        values.push(("timerapps_drill_interval_seconds", one(p.to_string())));
    }
    text(&values)
}

/// The text of the copy's file: its last record, and whether the unit that
/// just ran failed (a copy killed before it recorded anything).
fn render_copy(row: &Row, unit_failed: bool, now: u64) -> String {
    let label = format!("job_name=\"{}\"", escape(&row.job));
    let one = |v: String| vec![(label.clone(), v)];
    let mut values: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    let last = row.copy.as_ref().and_then(|c| c.last.as_ref());
    let started = last.map_or(now, |l| l.started.usec);
    values.push((
        "timerapps_offsite_last_run_timestamp_seconds",
        one(seconds(started)),
    ));
    let copied = last.is_some_and(|l| l.result == "copied") && !unit_failed;
    values.push(("timerapps_offsite_last_copied", one(flag(copied))));
    if let Some(l) = last {
        if let Some(at) = &l.last_success {
            values.push((
                "timerapps_offsite_last_success_timestamp_seconds",
                one(seconds(at.usec)),
            ));
        }
        if let Some(n) = &l.newest {
            values.push((
                "timerapps_offsite_newest_copy_timestamp_seconds",
                one(seconds(n.stamped.usec)),
            ));
        }
        values.push((
            "timerapps_offsite_dumps_waiting",
            one(l.waiting.to_string()),
        ));
        if let Some(k) = &l.check {
            values.push((
                "timerapps_offsite_check_last_run_timestamp_seconds",
                one(seconds(k.started.usec)),
            ));
            values.push((
                "timerapps_offsite_check_last_passed",
                one(flag(k.result == "passed")),
            ));
            if let Some(at) = &k.last_success {
                values.push((
                    "timerapps_offsite_check_last_success_timestamp_seconds",
                    one(seconds(at.usec)),
                ));
            }
        }
    }
    text(&values)
}

/// The lines of `values`, in the order and with the help of [`METRICS`].
fn text(values: &[(&str, Vec<(String, String)>)]) -> String {
    let mut out = String::new();
    for (name, help) in METRICS {
        let Some((_, series)) = values.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in series {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
    out
}

/// The value of `name` in a file this module wrote, for what a failed run
/// carries over from the last good one.
pub fn read(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_owned()
}

fn seconds(usec: u64) -> String {
    format!("{}.{:06}", usec / 1_000_000, usec % 1_000_000)
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_files_are_known_by_name() {
        assert!(is_metrics_file(&file_name("dump-database@sales")));
        assert!(is_metrics_file(".timerapps-myapp.prom.4242.tmp"));
        assert!(!is_metrics_file("node.prom"));
        assert!(!is_metrics_file("timerapps-notes.txt"));
    }

    #[test]
    fn the_carried_value_reads_back() {
        let text = "# HELP timerapps_job_last_success_timestamp_seconds x\n\
                    timerapps_job_last_success_timestamp_seconds_total{job_name=\"a\"} 9\n\
                    timerapps_job_last_success_timestamp_seconds{job_name=\"a\"} 1700000000.500000\n";
        assert_eq!(
            read(text, "timerapps_job_last_success_timestamp_seconds"),
            Some(1_700_000_000.5)
        );
        assert_eq!(read(text, "timerapps_job_interval_seconds"), None);
    }

    #[test]
    fn every_help_is_one_line_and_every_name_a_gauge_name() {
        for (name, help) in METRICS {
            assert!(!help.contains('\n') && !help.contains('\\'), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
