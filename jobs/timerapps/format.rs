//! Words and times as the command prints them, shared by its commands:
//! schedules, run results, durations and local times.

use chrono::{DateTime, Local, TimeZone};
use jobkit::human::span;
use std::time::Duration;

/// A short duration with a decimal for seconds: `0.4 s`, `3 min 20 s`.
pub fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        span(d)
    }
}

/// A timer's schedule in words, from its `TimersCalendar` expressions and
/// `TimersMonotonic` (base, µs) entries: `every 5 min, first 5 s after
/// start`, `daily at 02:30`, `on *-*-* *:*:00/10`.
pub fn schedule_words(calendar: &[String], monotonic: &[(String, u64)]) -> String {
    let mut parts: Vec<String> = calendar.iter().map(|c| calendar_words(c)).collect();
    let d = |usec: u64| span(Duration::from_micros(usec));
    for (base, usec) in monotonic {
        match base.as_str() {
            "OnUnitActiveUSec" => parts.insert(0, format!("every {}", d(*usec))),
            "OnUnitInactiveUSec" => parts.insert(0, format!("{} after each run", d(*usec))),
            _ => {}
        }
    }
    let first: Vec<String> = monotonic
        .iter()
        .filter_map(|(base, usec)| {
            let after = match base.as_str() {
                "OnActiveUSec" => "start",
                "OnBootUSec" => "boot",
                "OnStartupUSec" => "startup",
                _ => return None,
            };
            Some(format!("{} after {after}", d(*usec)))
        })
        .collect();
    if !first.is_empty() {
        parts.push(format!("first {}", first.join(", ")));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn calendar_words(spec: &str) -> String {
    if let Some(time) = spec.strip_prefix("*-*-* ") {
        if let Some(hm) = time.strip_suffix(":00") {
            if hm.len() == 5 && hm.bytes().all(|b| b.is_ascii_digit() || b == b':') {
                return format!("daily at {hm}");
            }
        }
    }
    format!("on {spec}")
}

/// How a run ended, from systemd's `Result` and its exit status.
pub fn result_words(result: &str, status: i32) -> String {
    match result {
        "exit-code" => format!("failed (exit {status})"),
        "signal" | "core-dump" => format!("killed by signal {status}"),
        "watchdog" => "watchdog".into(),
        "timeout" => "timeout".into(),
        other => other.into(),
    }
}

fn local_time(usec: u64) -> Option<DateTime<Local>> {
    Local
        .timestamp_micros(usec.min(i64::MAX as u64) as i64)
        .single()
}

/// RFC 3339 in local time, to the second.
pub fn rfc3339(usec: u64) -> String {
    local_time(usec)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        .unwrap_or_default()
}

/// `2026-11-22 10:00:07` in local time.
pub fn local(usec: u64) -> String {
    local_time(usec)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `3 min ago` or `in 5 s`, from `now`.
pub fn ago(now: u64, usec: u64) -> String {
    if usec > now {
        format!("in {}", span(Duration::from_micros(usec - now)))
    } else {
        format!("{} ago", span(Duration::from_micros(now - usec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_as_words() {
        let every = vec![
            ("OnActiveUSec".to_owned(), 5_000_000),
            ("OnUnitActiveUSec".to_owned(), 300_000_000),
        ];
        assert_eq!(
            schedule_words(&[], &every),
            "every 5 min, first 5 s after start"
        );
        let daily = vec!["*-*-* 02:30:00".to_owned()];
        assert_eq!(schedule_words(&daily, &[]), "daily at 02:30");
        let marks = vec!["*-*-* *:*:00/10".to_owned()];
        assert_eq!(schedule_words(&marks, &[]), "on *-*-* *:*:00/10");
        assert_eq!(schedule_words(&[], &[]), "none");
    }

    #[test]
    fn results_and_durations() {
        assert_eq!(result_words("exit-code", 3), "failed (exit 3)");
        assert_eq!(result_words("signal", 9), "killed by signal 9");
        assert_eq!(seconds(Duration::from_millis(400)), "0.4 s");
        assert_eq!(seconds(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(ago(10_000_000, 7_000_000), "3 s ago");
        assert_eq!(ago(10_000_000, 15_000_000), "in 5 s");
    }
}
