//! `keep`: each dump of a job with the retention rules that keep it, and
//! which the next run would remove, and what cannot be trusted and why.
//! It changes nothing.

use crate::dumps;
use crate::jobs::TimerJob;
use crate::systemd::Scope;
use chrono::{Local, Utc};
use jobkit::dumpfile::plan::{self, Planned};
use jobkit::dumpfile::{Flaw, Stamp};
use jobkit::retention::Rule;
use jobkit::{out, outln, Result};

pub fn run(job: &TimerJob, scope: Scope) -> Result<bool> {
    let (location, policy) = dumps::location(job, scope, "keep")?;
    let planned = dumps::plan(&location, &policy, scope)?;
    outln!(
        "{}: {} in {}; keeps {}",
        job.name(),
        location.names.name(),
        location.dir.display(),
        policy
    );
    let next = Stamp::of(Utc::now());
    let kept = plan::kept_after_next(&planned, &policy, &next, &Local);
    out(format_args!("{}", render(&planned, &kept)));
    for p in planned.iter().filter(|p| p.flaw().is_some()) {
        outln!("\n{}", dumps::untrusted(p, job));
    }
    Ok(true)
}

/// What keeps a dump, in words.
fn rules(p: &Planned) -> String {
    if p.rules.is_empty() {
        return "no rule".into();
    }
    p.rules
        .iter()
        .map(|r| r.word())
        .collect::<Vec<_>>()
        .join(", ")
}

fn state(p: &Planned) -> String {
    let Some(m) = p.manifest() else {
        return match p.flaw() {
            None => "unchecked (no manifest)".into(),
            Some(Flaw::Missing) => "untrusted (manifest missing)".into(),
            Some(Flaw::Damaged(_)) => "untrusted (damaged manifest)".into(),
            Some(Flaw::Mismatch(_)) => "untrusted (manifest of another file)".into(),
            Some(Flaw::Unreadable(_)) => "untrusted (unreadable manifest)".into(),
        };
    };
    let state = if p.suspect() {
        "suspect"
    } else {
        m.check.word()
    };
    match m.accepted {
        Some(_) => format!("{state}, accepted"),
        None => state.into(),
    }
}

/// One line per dump, newest first: its rules, its file, what it is, and
/// whether the next run removes it.
fn render(planned: &[Planned], kept_after_next: &[bool]) -> String {
    let head = ["KEPT BY", "DUMP", "CHECK", "NEXT RUN"];
    let rows: Vec<[String; 4]> = planned
        .iter()
        .zip(kept_after_next)
        .map(|(p, kept)| {
            let next = if p.rules.contains(&Rule::Future) {
                "never removed (named in the future)"
            } else if p.rules.contains(&Rule::Untrusted) {
                "never removed (untrusted)"
            } else if *kept {
                "kept"
            } else {
                "removes it"
            };
            [
                rules(p),
                p.dump
                    .path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                state(p),
                next.to_owned(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    let mut line = |cells: [&str; 4]| {
        for (i, cell) in cells.iter().enumerate() {
            if i < 3 {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        text.push('\n');
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
    if rows.is_empty() {
        text.push_str("(no dumps)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobkit::dumpfile::manifest::{Check, Manifest, Verdict, VERSION};
    use jobkit::dumpfile::plan::Trust;
    use jobkit::dumpfile::{Dump, Form};
    use std::path::PathBuf;

    fn planned(stamp: &str, rules: Vec<Rule>, verdict: Option<Verdict>) -> Planned {
        let file = format!("dump-{stamp}.sql.gz");
        Planned {
            dump: Dump {
                stamp: Stamp::parse(stamp).unwrap(),
                form: Form::Gzip,
                path: PathBuf::from("/d").join(&file),
                size: 1,
            },
            trust: verdict.map_or(Trust::Legacy, |verdict| {
                Trust::Manifest(Manifest {
                    version: VERSION,
                    dump: file,
                    form: Form::Gzip,
                    read: 1,
                    stored: 1,
                    sha256: String::new(),
                    content_sha256: None,
                    format: None,
                    check: Check::Complete,
                    tables: None,
                    verdict,
                    reason: None,
                    accepted: None,
                })
            }),
            rules,
        }
    }

    #[test]
    fn each_dump_with_its_rules_and_the_next_runs_verdict() {
        let text = render(
            &[
                planned(
                    "20261202T101000Z",
                    vec![Rule::Suspect],
                    Some(Verdict::Suspect),
                ),
                planned(
                    "20261202T100000Z",
                    vec![Rule::Last, Rule::Daily],
                    Some(Verdict::Good),
                ),
                planned("20261201T100000Z", vec![Rule::Daily], None),
                planned("20261130T100000Z", vec![], Some(Verdict::Good)),
                {
                    let mut p = planned("20261129T100000Z", vec![Rule::Untrusted], None);
                    p.trust = Trust::Untrusted(Flaw::Damaged("x".into()));
                    p
                },
                {
                    let mut p =
                        planned("20261128T100000Z", vec![Rule::Largest], Some(Verdict::Good));
                    if let Trust::Manifest(m) = &mut p.trust {
                        m.accepted = Some("2026-11-28T11:00:00+01:00".into());
                    }
                    p
                },
            ],
            &[true, true, false, false, true, true],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("KEPT BY"), "{text}");
        assert!(
            lines[1].starts_with("suspect        dump-20261202T101000Z.sql.gz  suspect"),
            "{text}"
        );
        assert!(lines[2].starts_with("newest, daily  "), "{text}");
        assert!(
            lines[2].ends_with(&format!("complete{}kept", " ".repeat(22))),
            "{text}"
        );
        assert!(
            lines[3].contains("unchecked (no manifest)") && lines[3].ends_with("removes it"),
            "{text}"
        );
        assert!(lines[4].starts_with("no rule "), "{text}");
        assert!(
            lines[5].starts_with("untrusted ")
                && lines[5].contains("untrusted (damaged manifest)")
                && lines[5].ends_with("never removed (untrusted)"),
            "{text}"
        );
        assert!(
            lines[6].starts_with("largest ")
                && lines[6].contains("complete, accepted")
                && lines[6].ends_with("kept"),
            "{text}"
        );
    }
}
