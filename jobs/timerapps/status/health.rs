//! The health rule: which facts about a job are problems. A job is healthy
//! when it has none.

use super::gather::{CompanionFacts, DumpFacts, Facts, Recorded};
use crate::dumps::untrusted;
use crate::format::result_words;
use jobkit::dumpfile::plan::Planned;
use jobkit::dumpfile::Flaw;
use jobkit::human::span;
use jobkit::record::copy;
use jobkit::retention::Rule;
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
/// rather than healthy: its settings file, its dump directory, a dump's
/// manifest (a symlink, FIFO, device, a file too large, an I/O error), or
/// the record of a companion.
pub fn unknowns(f: &Facts) -> Vec<String> {
    let schedule = f.period.as_ref().err().cloned();
    let dumps = match &f.dumps {
        Some(DumpFacts::Read {
            listed, unreadable, ..
        }) => {
            let manifests = listed.iter().flatten().filter_map(|p| match p.flaw() {
                Some(Flaw::Unreadable(_)) => Some(untrusted(p, &f.job)),
                _ => None,
            });
            unreadable
                .iter()
                .chain(listed.as_ref().err())
                .cloned()
                .chain(manifests)
                .collect()
        }
        _ => Vec::new(),
    };
    let companions = f
        .companions
        .iter()
        .filter_map(|c| c.last.as_ref().err().cloned());
    schedule
        .into_iter()
        .chain(dumps)
        .chain(companions)
        .collect()
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
            // A manifest that was read and cannot be trusted is a problem;
            // one that could not be read at all leaves the job unknown.
            for p in all {
                if matches!(
                    p.flaw(),
                    Some(Flaw::Missing | Flaw::Damaged(_) | Flaw::Mismatch(_))
                ) {
                    problems.push(untrusted(p, &f.job));
                }
            }
            // Only good dumps count: a suspect newest dump is a problem of
            // its own, and staleness is that of the newest good dump.
            let listed: Vec<&Planned> = listed.into_iter().filter(|p| p.flaw().is_none()).collect();
            if let Some(newest) = listed.first().filter(|p| p.suspect()) {
                let reason = newest
                    .manifest()
                    .and_then(|m| m.reason.clone())
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
    let listed = match &f.dumps {
        Some(DumpFacts::Read {
            listed: Ok(listed), ..
        }) => Some(listed.as_slice()),
        _ => None,
    };
    // Copies are due by the dump job's period, where a destination is set.
    let due = f.copy_configured.then_some(period).flatten();
    for companion in &f.companions {
        problems.extend(companion_problems(companion, due, listed, now));
    }
    problems
}

/// A companion's failed last run, whether its timer is on or not: what it
/// found holds until a run succeeds; then what its kind adds.
fn companion_problems(
    companion: &CompanionFacts,
    due: Option<Duration>,
    listed: Option<&[Planned]>,
    now: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(last) = companion.recorded() else {
        return problems;
    };
    let envelope = last.envelope();
    if !envelope.succeeded {
        problems.push(format!(
            "the last {} failed {} ago: {}",
            companion.companion.noun.0,
            ago(now, envelope.started),
            envelope.reason.unwrap_or("no reason recorded")
        ));
    }
    match last {
        Recorded::Drill(_) => {
            problems.extend(drill_problems(companion, envelope.last_success, now))
        }
        Recorded::Copy(r) => problems.extend(copy_problems(r, due, listed, now)),
    }
    problems
}

/// How long ago `at` (Unix seconds) was, in words.
fn ago(now: u64, at: i64) -> String {
    let now_s = (now / 1_000_000) as i64;
    span(Duration::from_secs(now_s.saturating_sub(at).max(0) as u64))
}

/// A failed repository check; and, where copies are set up (`due` is
/// then the dump job's period), good dumps of `listed` still not off the
/// host two periods after they were made.
fn copy_problems(
    last: &copy::Record,
    due: Option<Duration>,
    listed: Option<&[Planned]>,
    now: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let now_s = (now / 1_000_000) as i64;
    let check = last.check.as_ref();
    if let Some(c) = check.filter(|c| c.result == copy::CheckResult::Failed) {
        problems.push(format!(
            "the last check of the off-host repository failed {} ago: {}",
            ago(now, c.started),
            c.reason.as_deref().unwrap_or("no reason recorded")
        ));
    }
    let (Some(period), Some(listed)) = (due, listed) else {
        return problems;
    };
    let copied = last.newest.as_ref().map(|n| n.stamp);
    let waiting: Vec<i64> = listed
        .iter()
        .filter(|p| p.good() && !p.rules.contains(&Rule::Future))
        .map(|p| p.dump.stamp.unix_seconds())
        .filter(|stamp| copied.is_none_or(|c| *stamp > c))
        .collect();
    if let Some(&oldest) = waiting.last() {
        if now_s.saturating_sub(oldest) > 2 * period.as_secs() as i64 {
            problems.push(format!(
                "{} not copied off the host, the oldest {} old, more than two periods ({})",
                match waiting.len() {
                    1 => "a good dump is".to_owned(),
                    n => format!("{n} good dumps are"),
                },
                ago(now, oldest),
                span(2 * period)
            ));
        }
    }
    problems
}

/// A drill whose timer is on that has not passed for two of its periods.
fn drill_problems(drill: &CompanionFacts, passed: Option<i64>, now: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let now_s = (now / 1_000_000) as i64;
    if let (Some(period), Some(at)) = (drill.period, passed) {
        if now_s.saturating_sub(at) > 2 * period.as_secs() as i64 {
            problems.push(format!(
                "the last restore drill that passed is {} old, more than two drill periods \
                 ({})",
                ago(now, at),
                span(2 * period)
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobkit::catalogue::{COPY, DRILL};
    use jobkit::record::drill::{Drill, DrillResult, Record, VERSION};

    const NOW: i64 = 1_800_000_000;
    const WEEK: u64 = 7 * 86400;

    fn drill(
        result: DrillResult,
        last_success: Option<i64>,
        period: Option<u64>,
    ) -> CompanionFacts {
        CompanionFacts {
            companion: &DRILL,
            enabled: "enabled".into(),
            period: period.map(Duration::from_secs),
            last: Ok(Some(Recorded::Drill(Record {
                version: VERSION,
                started: NOW - 3600,
                seconds: 1.0,
                result,
                reason: Some("table t: 2 rows restored, 3 in the manifest".into()),
                last_success,
                kind: Drill {
                    dump: None,
                    format: None,
                    server: None,
                    compared: true,
                    tables: None,
                    rows: None,
                    empty_roles: None,
                },
            }))),
        }
    }

    fn problems(d: &CompanionFacts) -> Vec<String> {
        companion_problems(d, None, None, NOW as u64 * 1_000_000)
    }

    #[test]
    fn a_failed_drill_and_an_old_pass_are_problems() {
        let failed = problems(&drill(DrillResult::Failed, Some(NOW - 86400), Some(WEEK)));
        assert_eq!(
            failed,
            ["the last restore drill failed 1 h ago: table t: 2 rows restored, 3 in the manifest"]
        );
        let recent = Some(NOW - 3600);
        assert!(problems(&drill(DrillResult::Passed, recent, Some(WEEK))).is_empty());
        let old = Some(NOW - 15 * 86400);
        let stale = problems(&drill(DrillResult::Passed, old, Some(WEEK)));
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert!(
            stale[0].starts_with("the last restore drill that passed is 15 "),
            "{stale:?}"
        );
        // Without an enabled timer there is no period to be late by.
        assert!(problems(&drill(DrillResult::Passed, old, None)).is_empty());
        let mut none = drill(DrillResult::Passed, None, Some(WEEK));
        none.last = Ok(None);
        assert!(problems(&none).is_empty());
    }

    fn copy(result: copy::CopyResult, newest: Option<i64>, check: bool) -> CompanionFacts {
        CompanionFacts {
            companion: &COPY,
            enabled: "disabled".into(),
            period: None,
            last: Ok(Some(Recorded::Copy(copy::Record {
                version: copy::VERSION,
                started: NOW - 1800,
                seconds: 1.0,
                result,
                reason: Some("restic backup on rest:http://b/: connection refused".into()),
                last_success: None,
                kind: copy::Copied {
                    destination: copy::DestinationKind::Restic,
                    copied: Vec::new(),
                    newest: newest.map(|stamp| copy::Newest {
                        dump: "dump".into(),
                        stamp,
                    }),
                    waiting: 0,
                    sent: Vec::new(),
                    check: Some(copy::RepositoryCheck {
                        started: NOW - 7200,
                        subset: "1/30".into(),
                        result: if check {
                            copy::CheckResult::Passed
                        } else {
                            copy::CheckResult::Failed
                        },
                        reason: (!check).then(|| "pack 1234 is damaged".into()),
                        last_success: None,
                    }),
                    pruned: None,
                    prune_due: false,
                    not_ours: Vec::new(),
                },
            }))),
        }
    }

    /// Good dumps stamped `ages` seconds before NOW, newest first.
    fn dumps(ages: &[i64]) -> Vec<Planned> {
        ages.iter()
            .map(|age| {
                let stamp = jobkit::dumpfile::Stamp::of(
                    chrono::DateTime::from_timestamp(NOW - age, 0).unwrap(),
                );
                Planned {
                    dump: jobkit::dumpfile::Dump {
                        stamp,
                        form: jobkit::dumpfile::Form::Gzip,
                        path: format!("/d/dump-{stamp}.sql.gz").into(),
                        size: 1,
                    },
                    trust: jobkit::dumpfile::plan::Trust::Legacy,
                    rules: vec![Rule::Last],
                }
            })
            .collect()
    }

    #[test]
    fn a_failed_copy_or_check_and_dumps_left_behind_are_problems() {
        let now = NOW as u64 * 1_000_000;
        let hour = Some(Duration::from_secs(3600));
        let local = dumps(&[600, 4000, 9000]);
        let copied = |age: i64| copy(copy::CopyResult::Copied, Some(NOW - age), true);
        assert!(companion_problems(&copied(600), hour, Some(&local), now).is_empty());
        // The two newest wait, the oldest of them 67 min: within two hours.
        assert!(companion_problems(&copied(9000), hour, Some(&local), now).is_empty());
        let behind = companion_problems(&copied(20000), hour, Some(&local), now);
        assert_eq!(
            behind,
            [
                "3 good dumps are not copied off the host, the oldest 2 h 30 min old, more than \
              two periods (2 h)"
            ]
        );
        // Without a destination set, or without a period, none are waiting.
        assert!(companion_problems(&copied(20000), None, Some(&local), now).is_empty());
        let failed = companion_problems(
            &copy(copy::CopyResult::Failed, Some(NOW - 600), false),
            hour,
            Some(&local),
            now,
        );
        assert_eq!(
            failed,
            [
                "the last off-host copy failed 30 min ago: restic backup on rest:http://b/: \
                 connection refused",
                "the last check of the off-host repository failed 2 h ago: pack 1234 is damaged"
            ]
        );
    }
}
