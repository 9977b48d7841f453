//! Which dumps are kept: the one decision that pruning, `timerapps status`,
//! `timerapps verify` and `timerapps keep` share.
//!
//! The rules are restic's `forget` rules (restic 0.16 and later), applied to
//! the good dumps of one `DUMP_NAME`, newest first:
//! - `DUMP_KEEP` N: the N newest;
//! - `DUMP_KEEP_HOURLY`, `_DAILY`, `_WEEKLY`, `_MONTHLY` N: for the last N
//!   hours, days, ISO weeks or months that have a good dump, the newest good
//!   dump of each; while such a rule has counts left when it reaches the
//!   oldest good dump, it keeps that one too.
//!
//! Hours, days, weeks and months are those of the host's local time at the
//! moment each dump was made, as restic buckets by the time zone a snapshot
//! was taken in. When clocks go back, the repeated hour is one hour bucket;
//! when they go forward, the skipped hour has no dump. A dump kept by any
//! rule stays.
//!
//! Suspect dumps count toward no rule, so they never push a good dump out;
//! the `DUMP_KEEP` newest of them are kept. Dumps named later than `now` (the
//! clock was ahead when they were made) are outside every rule and never
//! removed.

use crate::config::{self, Source};
use crate::dumpfile::manifest::Verdict;
use crate::dumpfile::{Dump, Location, Manifest, Names, Stamp};
use crate::Result;
use chrono::{Datelike, Local, NaiveDateTime, TimeZone, Timelike};
use std::fmt;
use std::io;
use std::path::Path;

/// How many dumps each rule keeps; 0 turns a rule off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

/// The rules when no variable is set: the 5 newest.
pub const DEFAULT: Policy = Policy {
    last: 5,
    hourly: 0,
    daily: 0,
    weekly: 0,
    monthly: 0,
};

/// The most a time rule may ask for: over a century of months.
const MAX_COUNT: u32 = 100_000;

impl Policy {
    /// The `DUMP_KEEP*` rules.
    pub fn from_env(env: &dyn Source) -> Result<Policy> {
        Policy::prefixed(env, "DUMP_KEEP", &DEFAULT)
    }

    /// The rules `PREFIX`, `PREFIX_HOURLY`, … `PREFIX_MONTHLY`, each
    /// `defaults`' when unset.
    pub fn prefixed(env: &dyn Source, prefix: &str, defaults: &Policy) -> Result<Policy> {
        let count = |rule: &str, default| {
            config::number(env, &format!("{prefix}_{rule}"), 0, MAX_COUNT, default)
        };
        Ok(Policy {
            last: config::number(env, prefix, 1, u32::MAX, defaults.last)?,
            hourly: count("HOURLY", defaults.hourly)?,
            daily: count("DAILY", defaults.daily)?,
            weekly: count("WEEKLY", defaults.weekly)?,
            monthly: count("MONTHLY", defaults.monthly)?,
        })
    }

    fn count(&self, rule: Rule) -> u32 {
        match rule {
            Rule::Last | Rule::Suspect => self.last,
            Rule::Hourly => self.hourly,
            Rule::Daily => self.daily,
            Rule::Weekly => self.weekly,
            Rule::Monthly => self.monthly,
            Rule::Future => 0,
        }
    }
}

impl fmt::Display for Policy {
    /// `5 newest, 7 daily, 4 weekly`: the rules that are on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} newest", self.last)?;
        for rule in Rule::TIME {
            let n = self.count(rule);
            if n > 0 {
                write!(f, ", {n} {rule}")?;
            }
        }
        Ok(())
    }
}

/// Why a dump is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Among the `DUMP_KEEP` newest good dumps.
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    /// Among the `DUMP_KEEP` newest suspect dumps.
    Suspect,
    /// Named later than now: never counted, never removed.
    Future,
}

impl Rule {
    const TIME: [Rule; 4] = [Rule::Hourly, Rule::Daily, Rule::Weekly, Rule::Monthly];
    const COUNTED: [Rule; 5] = [
        Rule::Last,
        Rule::Hourly,
        Rule::Daily,
        Rule::Weekly,
        Rule::Monthly,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Rule::Last => "newest",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Suspect => "suspect",
            Rule::Future => "future",
        }
    }

    /// The bucket of a dump made at local time `t`, at position `nr`
    /// among the good dumps: dumps of one bucket compete for one place.
    fn bucket(self, t: NaiveDateTime, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Rule::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
            Rule::Daily => (y * 100 + m) * 100 + d,
            Rule::Weekly => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Rule::Monthly => y * 100 + m,
            Rule::Last | Rule::Suspect | Rule::Future => nr as i64,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One dump as retention sees it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    pub stamp: Stamp,
    /// False for a suspect dump.
    pub good: bool,
}

/// The rules that keep each candidate, in the order given; a dump no rule
/// keeps is to be removed. `now` is the newest stamp that is not in the
/// future (the run's own dump when pruning). Buckets are taken in `tz`,
/// the host's local time outside tests.
pub fn decide<Tz: TimeZone>(
    candidates: &[Candidate],
    policy: &Policy,
    now: &Stamp,
    tz: &Tz,
) -> Vec<Vec<Rule>> {
    let mut kept = vec![Vec::new(); candidates.len()];
    // Newest first, as restic walks its snapshots.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(candidates[i].stamp));
    let (future, present): (Vec<usize>, Vec<usize>) =
        order.into_iter().partition(|&i| candidates[i].stamp > *now);
    for i in future {
        kept[i].push(Rule::Future);
    }
    let (good, suspect): (Vec<usize>, Vec<usize>) =
        present.into_iter().partition(|&i| candidates[i].good);
    for &i in suspect.iter().take(policy.last as usize) {
        kept[i].push(Rule::Suspect);
    }
    for rule in Rule::COUNTED {
        let mut left = policy.count(rule);
        let mut last = None;
        for (nr, &i) in good.iter().enumerate() {
            if left == 0 {
                break;
            }
            let local = tz
                .from_utc_datetime(&candidates[i].stamp.utc())
                .naive_local();
            let bucket = rule.bucket(local, nr);
            if last != Some(bucket) || nr == good.len() - 1 {
                kept[i].push(rule);
                last = Some(bucket);
                left -= 1;
            }
        }
    }
    for rules in &mut kept {
        rules.sort();
    }
    kept
}

/// A dump, what its manifest says, and the rules that keep it.
#[derive(Debug)]
pub struct Planned {
    pub dump: Dump,
    /// None for a dump made before manifests; Err for one that cannot be
    /// read, which counts as good so that it is never lost unseen.
    pub manifest: std::result::Result<Option<Manifest>, String>,
    /// Empty: the next prune removes it.
    pub rules: Vec<Rule>,
}

impl Planned {
    pub fn good(&self) -> bool {
        !matches!(&self.manifest, Ok(Some(m)) if m.verdict == Verdict::Suspect)
    }
}

/// The dumps of `names` in `dir`, newest first, each with the rules of
/// `policy` that keep it in the host's local time; dumps named after
/// `now` are in the future.
pub fn plan(dir: &Path, names: &Names, policy: &Policy, now: &Stamp) -> io::Result<Vec<Planned>> {
    let mut planned: Vec<Planned> = names
        .dumps(dir)?
        .into_iter()
        .map(|dump| Planned {
            manifest: dump.manifest().map_err(|e| e.to_string()),
            dump,
            rules: Vec::new(),
        })
        .collect();
    let candidates: Vec<Candidate> = planned
        .iter()
        .map(|p| Candidate {
            stamp: p.dump.stamp,
            good: p.good(),
        })
        .collect();
    for (p, rules) in planned
        .iter_mut()
        .zip(decide(&candidates, policy, now, &Local))
    {
        p.rules = rules;
    }
    Ok(planned)
}

/// The good dumps of `location`, newest first, with their manifests: by
/// [`plan`], suspect dumps and dumps named in the future left out. What
/// the drill restores and the copy sends.
pub fn good_dumps(location: &Location) -> Result<Vec<(Dump, Option<Manifest>)>> {
    let now = Stamp::of(chrono::Utc::now());
    let planned = plan(&location.dir, &location.names, &location.policy, &now).map_err(|e| {
        crate::Error::io(
            crate::Exit::Failure,
            "cannot list the dumps in",
            &location.dir,
            &e,
            "",
        )
    })?;
    Ok(planned
        .into_iter()
        .filter(|p| p.good() && !p.rules.contains(&Rule::Future))
        .map(|p| (p.dump, p.manifest.ok().flatten()))
        .collect())
}

/// Which of `planned` are still kept after the next run publishes a good
/// dump stamped `next`: false for those it would remove.
pub fn kept_after_next<Tz: TimeZone>(
    planned: &[Planned],
    policy: &Policy,
    next: &Stamp,
    tz: &Tz,
) -> Vec<bool> {
    let mut candidates: Vec<Candidate> = planned
        .iter()
        .map(|p| Candidate {
            stamp: p.dump.stamp,
            good: p.good(),
        })
        .collect();
    candidates.push(Candidate {
        stamp: *next,
        good: true,
    });
    let mut kept: Vec<bool> = decide(&candidates, policy, next, tz)
        .into_iter()
        .map(|rules| !rules.is_empty())
        .collect();
    kept.pop();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn stamp(s: &str) -> Stamp {
        Stamp::parse(s).unwrap()
    }

    fn policy(last: u32, hourly: u32, daily: u32, weekly: u32, monthly: u32) -> Policy {
        Policy {
            last,
            hourly,
            daily,
            weekly,
            monthly,
        }
    }

    fn good(stamps: &[&str]) -> Vec<Candidate> {
        stamps
            .iter()
            .map(|s| Candidate {
                stamp: stamp(s),
                good: true,
            })
            .collect()
    }

    const NOW: &str = "20300101T000000Z";

    #[test]
    fn the_newest_n_as_before() {
        let c = good(&[
            "20260101T000000Z",
            "20260101T001000Z",
            "20260101T002000Z",
            "20260101T003000Z",
        ]);
        let kept = decide(&c, &policy(2, 0, 0, 0, 0), &stamp(NOW), &Utc);
        assert_eq!(kept, [vec![], vec![], vec![Rule::Last], vec![Rule::Last]]);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_and_the_oldest_while_counts_are_left() {
        let c = good(&[
            "20260101T080000Z",
            "20260101T200000Z",
            "20260102T080000Z",
            "20260102T200000Z",
        ]);
        let kept = decide(&c, &policy(1, 0, 5, 0, 0), &stamp(NOW), &Utc);
        assert_eq!(
            kept,
            [
                vec![Rule::Daily],
                vec![Rule::Daily],
                vec![],
                vec![Rule::Last, Rule::Daily],
            ]
        );
        // With no count left at the oldest, it goes.
        let kept = decide(&c, &policy(1, 0, 2, 0, 0), &stamp(NOW), &Utc);
        assert_eq!(kept[0], []);
    }

    #[test]
    fn days_are_local_days() {
        // 23:30 UTC is the next day two hours east.
        let c = good(&["20260101T223000Z", "20260101T233000Z"]);
        let east = FixedOffset::east_opt(2 * 3600).unwrap();
        let p = policy(1, 0, 2, 0, 0);
        assert_eq!(
            decide(&c, &p, &stamp(NOW), &east),
            [vec![Rule::Daily], vec![Rule::Last, Rule::Daily]]
        );
        assert_eq!(
            decide(&c, &p, &stamp(NOW), &Utc),
            [vec![Rule::Daily], vec![Rule::Last, Rule::Daily]]
        );
        let c = good(&["20260101T103000Z", "20260101T113000Z", "20260101T223000Z"]);
        let p = policy(1, 0, 1, 0, 0);
        assert_eq!(
            decide(&c, &p, &stamp(NOW), &east)[1..],
            [vec![], vec![Rule::Last, Rule::Daily]]
        );
    }

    #[test]
    fn weeks_are_iso_weeks() {
        // Sunday 2026-01-04 ends ISO week 1; Monday 2026-01-05 starts week 2.
        let c = good(&["20260103T120000Z", "20260104T120000Z", "20260105T120000Z"]);
        let kept = decide(&c, &policy(1, 0, 0, 2, 0), &stamp(NOW), &Utc);
        assert_eq!(
            kept,
            [vec![], vec![Rule::Weekly], vec![Rule::Last, Rule::Weekly]]
        );
    }

    #[test]
    fn suspects_count_for_nothing_and_the_newest_are_kept() {
        let mut c = good(&["20260101T000000Z", "20260101T001000Z"]);
        for s in ["20260101T002000Z", "20260101T003000Z", "20260101T004000Z"] {
            c.push(Candidate {
                stamp: stamp(s),
                good: false,
            });
        }
        let kept = decide(&c, &policy(2, 0, 0, 0, 0), &stamp(NOW), &Utc);
        assert_eq!(
            kept,
            [
                vec![Rule::Last],
                vec![Rule::Last],
                vec![],
                vec![Rule::Suspect],
                vec![Rule::Suspect],
            ]
        );
    }

    #[test]
    fn future_dumps_are_outside_every_rule() {
        let c = good(&["20260101T000000Z", "20990101T000000Z", "20260101T001000Z"]);
        let kept = decide(&c, &policy(1, 0, 9, 0, 0), &stamp("20260101T001000Z"), &Utc);
        assert_eq!(
            kept,
            [
                vec![Rule::Daily],
                vec![Rule::Future],
                vec![Rule::Last, Rule::Daily]
            ]
        );
    }

    #[test]
    fn the_next_run_pushes_out_what_its_own_dump_replaces() {
        let planned: Vec<Planned> = ["20260101T000000Z", "20260101T001000Z", "20260102T000000Z"]
            .iter()
            .rev()
            .map(|s| Planned {
                dump: Dump {
                    stamp: stamp(s),
                    form: crate::dumpfile::Form::Gzip,
                    path: format!("/d/dump-{s}.sql.gz").into(),
                    size: 1,
                },
                manifest: Ok(None),
                rules: Vec::new(),
            })
            .collect();
        let next = stamp("20260102T001000Z");
        // Two newest: the next dump and the newest now; the rest go.
        let kept = kept_after_next(&planned, &policy(2, 0, 0, 0, 0), &next, &Utc);
        assert_eq!(kept, [true, false, false]);
        // Two days: the next dump's, and the newest of the day before.
        let kept = kept_after_next(&planned, &policy(2, 0, 2, 0, 0), &next, &Utc);
        assert_eq!(kept, [true, true, false]);
    }

    #[test]
    fn policies_parse_and_print() {
        let p = Policy::from_env(&[("DUMP_KEEP_DAILY", "7"), ("DUMP_KEEP_WEEKLY", "4")]).unwrap();
        assert_eq!(p, policy(5, 0, 7, 4, 0));
        assert_eq!(p.to_string(), "5 newest, 7 daily, 4 weekly");
        for bad in ["-1", "x", "100001", ""] {
            let e = Policy::from_env(&[("DUMP_KEEP_MONTHLY", bad)]).unwrap_err();
            assert!(e.to_string().starts_with("DUMP_KEEP_MONTHLY="), "{e}");
        }
        assert!(Policy::from_env(&[("DUMP_KEEP", "0")]).is_err());
    }
}
