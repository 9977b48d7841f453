//! The health rule: which facts about a job are problems. A job is healthy
//! when it has none.

use super::gather::{DrillFacts, DumpFacts, Facts};
use crate::format::result_words;
use jobkit::drill::Outcome;
use jobkit::human::span;
use jobkit::retention::{Planned, Rule};
use std::time::Duration;

/// Why a dump job does nothing: the state `status` names "not configured",
/// which is neither healthy nor failed.
pub fn not_configured(f: &Facts) -> Option<String> {
    f.not_configured.as_ref().map(|file| {
        format!(
            "not configured: set DUMP_COMMAND in {file}, then run timerapps run {}",
            f.job.name()
        )
    })
}

/// What could not be read of the job, which makes its state unknown
/// rather than healthy: its settings file, or its dump directory.
pub fn unknowns(f: &Facts) -> Vec<String> {
    let schedule = f.period.as_ref().err().cloned();
    let dumps = match &f.dumps {
        Some(DumpFacts::Read {
            listed, unreadable, ..
        }) => unreadable
            .iter()
            .chain(listed.as_ref().err())
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let drill = f
        .drill
        .as_ref()
        .and_then(|d| d.last.as_ref().err().cloned());
    schedule.into_iter().chain(dumps).chain(drill).collect()
}

/// The job's problems, in the order status lists them.
pub fn problems(f: &Facts, now: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if f.service_state == "failed" || (f.result != "success" && f.started > 0) {
        problems.push(format!(
            "last run failed: {}",
            result_words(&f.result, f.status)
        ));
    }
    if f.timer_state == "failed" {
        problems.push("the timer failed".into());
    }
    let period = f.period.as_ref().ok().copied().flatten();
    if f.timer_state == "active" && f.next == 0 && period.is_none() {
        problems.push("its timer will not start it again: check its schedule".into());
    }
    match &f.dumps {
        None => {}
        Some(DumpFacts::Invalid(e)) => problems.push(format!("its settings are invalid: {e}")),
        Some(DumpFacts::Read { listed, .. }) => {
            let all = listed.as_deref().unwrap_or_default();
            let (future, listed): (Vec<&Planned>, Vec<&Planned>) =
                all.iter().partition(|p| p.rules.contains(&Rule::Future));
            if let Some(last) = future.last() {
                problems.push(format!(
                    "{} named in the future, the nearest {} (written while the clock was \
                     ahead?): no rule counts or removes {}; check and remove by hand",
                    match future.len() {
                        1 => "a dump is".to_owned(),
                        n => format!("{n} dumps are"),
                    },
                    last.dump.path.display(),
                    if future.len() == 1 { "it" } else { "them" },
                ));
            }
            // Only good dumps count: a suspect newest dump is a problem of
            // its own, and staleness is that of the newest good dump.
            if let Some(newest) = listed.first().filter(|p| !p.good()) {
                let reason = newest
                    .manifest
                    .as_ref()
                    .ok()
                    .and_then(|m| m.as_ref()?.reason.clone())
                    .unwrap_or_default();
                problems.push(format!(
                    "the newest dump is suspect: {reason}; if the database really shrank, run \
                     timerapps accept {}",
                    f.job.name()
                ));
            }
            let newest_good = listed.iter().find(|p| p.good());
            if let (Some(newest), Some(period)) = (newest_good, period) {
                let stamped = newest.dump.stamp.unix_seconds().max(0) as u64 * 1_000_000;
                let age = Duration::from_micros(now.saturating_sub(stamped));
                if age.as_secs() > 2 * period.as_secs() {
                    problems.push(format!(
                        "the newest good dump is {} old, more than two periods ({})",
                        span(Duration::from_secs(age.as_secs())),
                        span(2 * period)
                    ));
                }
            }
        }
    }
    if let Some(drill) = &f.drill {
        problems.extend(drill_problems(drill, now));
    }
    problems
}

/// A failed last drill, whether its timer is on or not: what it found is
/// true of the dumps until a drill passes; and a drill whose timer is on
/// that has not passed for two of its periods.
fn drill_problems(drill: &DrillFacts, now: u64) -> Vec<String> {
    let Ok(last) = &drill.last else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let now_s = (now / 1_000_000) as i64;
    let ago = |at: i64| span(Duration::from_secs(now_s.saturating_sub(at).max(0) as u64));
    if let Some(r) = last.as_ref().filter(|r| r.result == Outcome::Failed) {
        problems.push(format!(
            "the last restore drill failed {} ago: {}",
            ago(r.started),
            r.reason.as_deref().unwrap_or("no reason recorded")
        ));
    }
    let passed = last.as_ref().and_then(|r| r.last_success);
    if let (Some(period), Some(at)) = (drill.period, passed) {
        if now_s.saturating_sub(at) > 2 * period.as_secs() as i64 {
            problems.push(format!(
                "the last restore drill that passed is {} old, more than two drill periods \
                 ({})",
                ago(at),
                span(2 * period)
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobkit::drill::{Record, VERSION};

    const NOW: i64 = 1_800_000_000;
    const WEEK: u64 = 7 * 86400;

    fn drill(result: Outcome, last_success: Option<i64>, period: Option<u64>) -> DrillFacts {
        DrillFacts {
            enabled: "enabled".into(),
            period: period.map(Duration::from_secs),
            last: Ok(Some(Record {
                version: VERSION,
                started: NOW - 3600,
                seconds: 1.0,
                dump: None,
                format: None,
                server: None,
                result,
                reason: Some("table t: 2 rows restored, 3 in the manifest".into()),
                compared: true,
                tables: None,
                rows: None,
                last_success,
            })),
        }
    }

    fn problems(d: &DrillFacts) -> Vec<String> {
        drill_problems(d, NOW as u64 * 1_000_000)
    }

    #[test]
    fn a_failed_drill_and_an_old_pass_are_problems() {
        let failed = problems(&drill(Outcome::Failed, Some(NOW - 86400), Some(WEEK)));
        assert_eq!(
            failed,
            ["the last restore drill failed 1 h ago: table t: 2 rows restored, 3 in the manifest"]
        );
        let recent = Some(NOW - 3600);
        assert!(problems(&drill(Outcome::Passed, recent, Some(WEEK))).is_empty());
        let old = Some(NOW - 15 * 86400);
        let stale = problems(&drill(Outcome::Passed, old, Some(WEEK)));
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert!(
            stale[0].starts_with("the last restore drill that passed is 15 "),
            "{stale:?}"
        );
        // Without an enabled timer there is no period to be late by.
        assert!(problems(&drill(Outcome::Passed, old, None)).is_empty());
        let mut none = drill(Outcome::Passed, None, Some(WEEK));
        none.last = Ok(None);
        assert!(problems(&none).is_empty());
    }
}
