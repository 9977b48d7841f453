//! Words and times as the command prints them, shared by its commands:
//! schedules, run results, durations and local times; and text from jobs,
//! commands and databases made safe to show.

use chrono::{DateTime, Local, TimeZone};
use jobkit::human::span;
use std::borrow::Cow;
use std::fmt::Write;
use std::time::Duration;

/// `text` as one line that shows what it holds and does nothing to the
/// terminal or the mail it is shown in: each character that could move the
/// cursor, rewrite the screen, end the line or reorder it as shown is
/// written as an escape instead. These are the C0 controls but tab (ESC as
/// `\x1b`, CR as `\x0d`, LF as `\x0a`), DEL (`\x7f`), the C1 controls
/// (CSI as `\u{9b}`), the line and paragraph separators, and the
/// bidirectional marks, embeddings, overrides and isolates (`\u{202e}`).
/// A backslash stays as it is: the text is for reading, not for reversing.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// [`escape`] for bytes that may not be UTF-8, as the journal keeps a line
/// a program wrote: each byte that is not part of a UTF-8 character is
/// shown as `\xHH`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            c if !needs_escape(c) => out.push(c),
            '\0'..='\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

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
    fn controls_are_shown_not_obeyed() {
        assert!(matches!(escape("plain text, tab\tand ü"), Cow::Borrowed(_)));
        assert_eq!(
            escape("\x1b[2J\x1b]0;owned\x07red\rok\nforged: success"),
            "\\x1b[2J\\x1b]0;owned\\x07red\\x0dok\\x0aforged: success"
        );
        assert_eq!(escape("\0\x08\x7f"), "\\x00\\x08\\x7f");
        // C1: CSI and NEL, which some terminals and mail readers obey.
        assert_eq!(escape("a\u{9b}31mb\u{85}c"), "a\\u{9b}31mb\\u{85}c");
        // A line that reads reversed, or breaks in two where shown.
        assert_eq!(
            escape("file\u{202e}gpj.exe\u{2028}next"),
            "file\\u{202e}gpj.exe\\u{2028}next"
        );
        assert_eq!(escape("C:\\x1b"), "C:\\x1b");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_bytes() {
        assert_eq!(
            escape_bytes(b"ok \xff\x9b[31m \xc3\xbc"),
            "ok \\xff\\x9b[31m ü"
        );
        assert_eq!(escape_bytes(b"\x1b[1m\xe2\x80"), "\\x1b[1m\\xe2\\x80");
        assert_eq!(escape_bytes("ü\u{9b}".as_bytes()), "ü\\u{9b}");
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
