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
//!
//! Beyond restic's rules, two hold dumps that are not counted:
//! - largest: the good dump of the largest raw size and the one with the
//!   most rows, of those since the newest accepted dump ([`baseline`]): a
//!   new dump is compared with them, so a slow loss is still seen as one,
//!   and they stay until the admin accepts a newer dump;
//! - untrusted: a dump whose manifest is missing (where an older dump has
//!   one), unreadable, damaged or of another file ([`Flaw`]) counts as
//!   neither good nor suspect, and is never removed: what cannot be read
//!   is never taken as good, and never removed to make room.
//!
//! It is a pure function over the dumps the store lists
//! ([`crate::dumpfile`]): it reads nothing, and knows a dump only by when
//! it was made (its stamp, UTC), how it stands, and what its trusted
//! manifest measured.

use crate::config::{self, Source};
use crate::Result;
use chrono::{Datelike, NaiveDateTime, TimeZone, Timelike};
use std::fmt;

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
            Rule::Largest | Rule::Untrusted | Rule::Future => 0,
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
    /// The good dump of the largest raw size, or with the most rows, since
    /// the newest accepted one: what a new dump is compared with.
    Largest,
    /// Among the `DUMP_KEEP` newest suspect dumps.
    Suspect,
    /// Its manifest cannot be trusted: never counted, never removed.
    Untrusted,
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
            Rule::Largest => "largest",
            Rule::Suspect => "suspect",
            Rule::Untrusted => "untrusted",
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
            Rule::Last | Rule::Largest | Rule::Suspect | Rule::Untrusted | Rule::Future => {
                nr as i64
            }
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
    /// When it was made, UTC.
    pub made: NaiveDateTime,
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
    now: &NaiveDateTime,
    tz: &Tz,
) -> Vec<Vec<Rule>> {
    let mut kept = vec![Vec::new(); candidates.len()];
    // Newest first, as restic walks its snapshots.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(candidates[i].made));
    let (future, present): (Vec<usize>, Vec<usize>) =
        order.into_iter().partition(|&i| candidates[i].made > *now);
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
            let local = tz.from_utc_datetime(&candidates[i].made).naive_local();
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

/// How a listed dump counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Good by a trusted manifest, or made before manifests.
    Good,
    /// Suspect by a trusted manifest.
    Suspect,
    /// Its manifest cannot be trusted.
    Untrusted,
}

/// What a trusted manifest measured of its dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measure {
    /// Raw size: the bytes the dump command wrote.
    pub read: u64,
    /// All its tables' rows, where they were counted.
    pub rows: Option<u64>,
    /// The admin accepted it.
    pub accepted: bool,
}

/// One dump as the store lists it.
#[derive(Clone, Copy, Debug)]
pub struct Listed {
    /// When it was made, UTC.
    pub made: NaiveDateTime,
    pub standing: Standing,
    /// `None`: it has no trusted manifest.
    pub measure: Option<Measure>,
}

/// [`decide`] over dumps of every standing, with those of `largest`
/// held as the largest: untrusted dumps are held as such, the largest
/// good dumps as such besides what else keeps them.
fn judge<Tz: TimeZone>(
    dumps: &[Listed],
    largest: &[bool],
    policy: &Policy,
    now: &NaiveDateTime,
    tz: &Tz,
) -> Vec<Vec<Rule>> {
    let counted: Vec<usize> = (0..dumps.len())
        .filter(|&i| dumps[i].standing != Standing::Untrusted || dumps[i].made > *now)
        .collect();
    let candidates: Vec<Candidate> = counted
        .iter()
        .map(|&i| Candidate {
            made: dumps[i].made,
            good: dumps[i].standing == Standing::Good,
        })
        .collect();
    let mut kept = vec![Vec::new(); dumps.len()];
    for (&i, rules) in counted.iter().zip(decide(&candidates, policy, now, tz)) {
        kept[i] = rules;
    }
    for ((rules, dump), &largest) in kept.iter_mut().zip(dumps).zip(largest) {
        match dump.standing {
            _ if dump.made > *now => {}
            Standing::Untrusted => rules.push(Rule::Untrusted),
            Standing::Good if largest => rules.push(Rule::Largest),
            Standing::Good | Standing::Suspect => {}
        }
        rules.sort();
    }
    kept
}

/// The good dumps a new dump is compared with, by their index in a list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The one of the largest raw size (`read`).
    pub size: Option<usize>,
    /// The one with the most rows.
    pub rows: Option<usize>,
}

/// Of the good dumps of `listed` (newest first) with a trusted manifest,
/// not made after `now`, from the newest accepted one on: the one of the
/// largest raw size and the one with the most rows, the newer of equals.
/// Dumps before the newest accepted one are compared with no more.
pub fn baseline(listed: &[Listed], now: &NaiveDateTime) -> Baseline {
    let present = || {
        listed
            .iter()
            .enumerate()
            .filter(|(_, l)| l.made <= *now)
            .filter_map(|(i, l)| Some((i, l.standing, l.measure?)))
    };
    let since = present()
        .find(|(_, standing, m)| m.accepted && *standing == Standing::Good)
        .map_or(listed.len(), |(i, _, _)| i + 1);
    let good = || {
        present()
            .take_while(|(i, _, _)| *i < since)
            .filter(|(_, standing, _)| *standing == Standing::Good)
    };
    let largest = |measure: &dyn Fn(&Measure) -> Option<u64>| {
        let mut best: Option<(usize, u64)> = None;
        for (i, _, m) in good() {
            if let Some(n) = measure(&m) {
                if best.is_none_or(|(_, most)| n > most) {
                    best = Some((i, n));
                }
            }
        }
        best.map(|(i, _)| i)
    };
    Baseline {
        size: largest(&|m| Some(m.read)),
        rows: largest(&|m| m.rows),
    }
}

/// The rules of `policy` that keep each of `listed` (newest first), with
/// the [`baseline`] held as the largest; dumps made after `now` are in the
/// future.
pub fn plan<Tz: TimeZone>(
    listed: &[Listed],
    policy: &Policy,
    now: &NaiveDateTime,
    tz: &Tz,
) -> Vec<Vec<Rule>> {
    let held = baseline(listed, now);
    let mut largest = vec![false; listed.len()];
    for i in [held.size, held.rows].into_iter().flatten() {
        largest[i] = true;
    }
    judge(listed, &largest, policy, now, tz)
}

/// Which of `listed`, kept now by `rules`, are still kept after the next
/// run publishes a good dump made at `next`: false for those it would
/// remove.
pub fn kept_after_next<Tz: TimeZone>(
    listed: &[Listed],
    rules: &[Vec<Rule>],
    policy: &Policy,
    next: &NaiveDateTime,
    tz: &Tz,
) -> Vec<bool> {
    let mut dumps = listed.to_vec();
    dumps.push(Listed {
        made: *next,
        standing: Standing::Good,
        measure: None,
    });
    let mut largest: Vec<bool> = rules.iter().map(|r| r.contains(&Rule::Largest)).collect();
    largest.push(false);
    let mut kept: Vec<bool> = judge(&dumps, &largest, policy, next, tz)
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

    fn stamp(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").unwrap()
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
                made: stamp(s),
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
                made: stamp(s),
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
        let listed: Vec<Listed> = ["20260101T000000Z", "20260101T001000Z", "20260102T000000Z"]
            .iter()
            .rev()
            .map(|s| Listed {
                made: stamp(s),
                standing: Standing::Good,
                measure: None,
            })
            .collect();
        let rules = vec![Vec::new(); listed.len()];
        let next = stamp("20260102T001000Z");
        // Two newest: the next dump and the newest now; the rest go.
        let kept = kept_after_next(&listed, &rules, &policy(2, 0, 0, 0, 0), &next, &Utc);
        assert_eq!(kept, [true, false, false]);
        // Two days: the next dump's, and the newest of the day before.
        let kept = kept_after_next(&listed, &rules, &policy(2, 0, 2, 0, 0), &next, &Utc);
        assert_eq!(kept, [true, true, false]);
        // The largest is held, whatever the next run brings.
        let mut rules = rules;
        rules[2] = vec![Rule::Largest];
        let kept = kept_after_next(&listed, &rules, &policy(1, 0, 0, 0, 0), &next, &Utc);
        assert_eq!(kept, [false, false, true]);
    }

    fn measured(made: &str, standing: Standing, read: u64, rows: u64) -> Listed {
        Listed {
            made: stamp(made),
            standing,
            measure: Some(Measure {
                read,
                rows: Some(rows),
                accepted: false,
            }),
        }
    }

    #[test]
    fn the_largest_good_dumps_since_the_newest_accepted_are_held() {
        // Newest first. The raw sizes say otherwise than the rows: both
        // are held; a suspect, an untrusted and a future dump never are.
        let mut listed = vec![
            measured("20990101T000000Z", Standing::Good, 9_999_999, 9_999_999),
            Listed {
                made: stamp("20260105T000000Z"),
                standing: Standing::Untrusted,
                measure: None,
            },
            measured("20260104T000000Z", Standing::Suspect, 900_000, 90_000),
            measured("20260103T000000Z", Standing::Good, 3300, 330),
            measured("20260102T000000Z", Standing::Good, 50_000, 1100),
            measured("20260101T000000Z", Standing::Good, 20_000, 2000),
        ];
        let now = stamp(NOW);
        let p = policy(1, 0, 0, 0, 0);
        assert_eq!(
            baseline(&listed, &now),
            Baseline {
                size: Some(4),
                rows: Some(5)
            }
        );
        assert_eq!(
            plan(&listed, &p, &now, &Utc),
            [
                vec![Rule::Future],
                vec![Rule::Untrusted],
                vec![Rule::Suspect],
                vec![Rule::Last],
                vec![Rule::Largest],
                vec![Rule::Largest]
            ]
        );
        // Accepting the newest good one: those before it are compared
        // with no more, and go by the other rules.
        listed[3].measure.as_mut().unwrap().accepted = true;
        assert_eq!(
            plan(&listed, &p, &now, &Utc)[3..],
            [vec![Rule::Last, Rule::Largest], vec![], vec![]]
        );
        // Of equals, the newer; a dump made in the future is left out.
        let equal = [
            measured("20260103T000000Z", Standing::Good, 10, 99),
            measured("20260102T000000Z", Standing::Good, 10, 10),
            measured("20260101T000000Z", Standing::Good, 10, 10),
        ];
        let now = stamp("20260102T000000Z");
        assert_eq!(
            baseline(&equal, &now),
            Baseline {
                size: Some(1),
                rows: Some(1)
            }
        );
        assert_eq!(
            plan(&equal, &p, &now, &Utc),
            [vec![Rule::Future], vec![Rule::Last, Rule::Largest], vec![]]
        );
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
