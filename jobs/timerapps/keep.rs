//! `keep`: each dump of a job with the retention rules that keep it, and
//! which the next run would remove. It changes nothing.

use crate::dumps;
use crate::jobs::Job;
use crate::systemd::Scope;
use chrono::{Local, Utc};
use jobkit::dumpfile::Stamp;
use jobkit::retention::{self, Planned, Rule};
use jobkit::{out, outln, Result};

pub fn run(job: &Job, scope: Scope) -> Result<bool> {
    let location = dumps::location(job, scope, "keep")?;
    let planned = dumps::plan(&location, scope)?;
    outln!(
        "{}: {} in {}; keeps {}",
        job.name(),
        location.names.name(),
        location.dir.display(),
        location.policy
    );
    let next = Stamp::of(Utc::now());
    let kept = retention::kept_after_next(&planned, &location.policy, &next, &Local);
    out(format_args!("{}", render(&planned, &kept)));
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

fn state(p: &Planned) -> &'static str {
    match &p.manifest {
        _ if !p.good() => "suspect",
        Ok(Some(m)) => m.check.word(),
        Ok(None) => "unchecked (no manifest)",
        Err(_) => "unchecked (unreadable manifest)",
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
                state(p).to_owned(),
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
            manifest: Ok(verdict.map(|verdict| Manifest {
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
            })),
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
            ],
            &[true, true, false, false],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("KEPT BY"), "{text}");
        assert!(
            lines[1].starts_with("suspect        dump-20261202T101000Z.sql.gz  suspect"),
            "{text}"
        );
        assert!(lines[2].starts_with("newest, daily  "), "{text}");
        assert!(
            lines[2].ends_with("complete                 kept"),
            "{text}"
        );
        assert!(
            lines[3].contains("unchecked (no manifest)") && lines[3].ends_with("removes it"),
            "{text}"
        );
        assert!(lines[4].starts_with("no rule "), "{text}");
    }
}
