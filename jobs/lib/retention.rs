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

use crate::config::{self, Source};
use crate::dumpfile::manifest::Verdict;
use crate::dumpfile::{Dump, Flaw, Location, Manifest, Names, Stamp};
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

/// What a dump's manifest makes of it.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Its manifest, read and matching it: good or suspect as it says.
    Manifest(Manifest),
    /// No manifest, and no older dump has one: made before manifests
    /// existed. Good, unchecked, counted and removed as any good dump.
    Legacy,
    /// Never compared with, counted or removed.
    Untrusted(Flaw),
}

/// A dump, what its manifest says, and the rules that keep it.
#[derive(Debug)]
pub struct Planned {
    pub dump: Dump,
    pub trust: Trust,
    /// Empty: the next prune removes it.
    pub rules: Vec<Rule>,
}

impl Planned {
    /// Its manifest, when it can be trusted.
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.trust {
            Trust::Manifest(m) => Some(m),
            Trust::Legacy | Trust::Untrusted(_) => None,
        }
    }

    /// Good by a trusted manifest, or made before manifests.
    pub fn good(&self) -> bool {
        match &self.trust {
            Trust::Manifest(m) => m.verdict == Verdict::Good,
            Trust::Legacy => true,
            Trust::Untrusted(_) => false,
        }
    }

    /// Suspect by a trusted manifest.
    pub fn suspect(&self) -> bool {
        matches!(&self.trust, Trust::Manifest(m) if m.verdict == Verdict::Suspect)
    }

    /// Why its manifest cannot be trusted.
    pub fn flaw(&self) -> Option<&Flaw> {
        match &self.trust {
            Trust::Untrusted(flaw) => Some(flaw),
            Trust::Manifest(_) | Trust::Legacy => None,
        }
    }

    fn standing(&self) -> Standing {
        if self.flaw().is_some() {
            Standing::Untrusted
        } else if self.suspect() {
            Standing::Suspect
        } else {
            Standing::Good {
                largest: self.rules.contains(&Rule::Largest),
            }
        }
    }
}

/// How a dump counts when the rules are applied.
#[derive(Clone, Copy)]
enum Standing {
    Good { largest: bool },
    Suspect,
    Untrusted,
}

/// [`decide`] over dumps of every standing: untrusted dumps are held as
/// such, the largest good dumps as such besides what else keeps them.
fn judge<Tz: TimeZone>(
    dumps: &[(Stamp, Standing)],
    policy: &Policy,
    now: &Stamp,
    tz: &Tz,
) -> Vec<Vec<Rule>> {
    let counted: Vec<usize> = (0..dumps.len())
        .filter(|&i| !matches!(dumps[i].1, Standing::Untrusted) || dumps[i].0 > *now)
        .collect();
    let candidates: Vec<Candidate> = counted
        .iter()
        .map(|&i| Candidate {
            stamp: dumps[i].0,
            good: !matches!(dumps[i].1, Standing::Suspect | Standing::Untrusted),
        })
        .collect();
    let mut kept = vec![Vec::new(); dumps.len()];
    for (&i, rules) in counted.iter().zip(decide(&candidates, policy, now, tz)) {
        kept[i] = rules;
    }
    for (rules, (stamp, standing)) in kept.iter_mut().zip(dumps) {
        match standing {
            _ if stamp > now => {}
            Standing::Untrusted => rules.push(Rule::Untrusted),
            Standing::Good { largest: true } => rules.push(Rule::Largest),
            Standing::Good { largest: false } | Standing::Suspect => {}
        }
        rules.sort();
    }
    kept
}

/// The good dumps a new dump is compared with, by their index in a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// The one of the largest raw size (`read`).
    pub size: Option<usize>,
    /// The one with the most rows.
    pub rows: Option<usize>,
}

/// Of the good dumps of `planned` (newest first) with a trusted manifest,
/// not named after `now`, from the newest accepted one on: the one of the
/// largest raw size and the one with the most rows, the newer of equals.
/// Dumps before the newest accepted one are compared with no more.
pub fn baseline(planned: &[Planned], now: &Stamp) -> Baseline {
    let present = || {
        planned
            .iter()
            .enumerate()
            .filter(|(_, p)| p.dump.stamp <= *now)
            .filter_map(|(i, p)| Some((i, p.manifest()?)))
    };
    let since = present()
        .find(|(_, m)| m.accepted.is_some() && m.verdict == Verdict::Good)
        .map_or(planned.len(), |(i, _)| i + 1);
    let good = || {
        present()
            .take_while(|(i, _)| *i < since)
            .filter(|(_, m)| m.verdict == Verdict::Good)
    };
    let largest = |measure: &dyn Fn(&Manifest) -> Option<u64>| {
        let mut best: Option<(usize, u64)> = None;
        for (i, m) in good() {
            if let Some(n) = measure(m) {
                if best.is_none_or(|(_, most)| n > most) {
                    best = Some((i, n));
                }
            }
        }
        best.map(|(i, _)| i)
    };
    Baseline {
        size: largest(&|m| Some(m.read)),
        rows: largest(&|m| m.total_rows()),
    }
}

/// The most that all the manifests of one plan may take: eight of the
/// largest a job writes ([`MAX_BYTES`](crate::dumpfile::manifest::MAX_BYTES)),
/// more than the manifests of any real database's kept dumps. A manifest
/// can grow while it is read by at most its own limit.
pub const PLAN_BYTES: u64 = 8 * crate::dumpfile::manifest::MAX_BYTES;

/// The dumps of `names` in `dir`, newest first, each with the rules of
/// `policy` that keep it in the host's local time; dumps named after
/// `now` are in the future.
pub fn plan(dir: &Path, names: &Names, policy: &Policy, now: &Stamp) -> io::Result<Vec<Planned>> {
    let dumps = names.dumps(dir)?;
    // Their sizes first: many manifests, each within its limit, could
    // still take more memory than a plan may. One over its own limit is
    // refused unread, and untrusts only its dump.
    let total: u64 = dumps
        .iter()
        .filter_map(|d| d.manifest_path().symlink_metadata().ok())
        .filter(|meta| meta.is_file() && meta.len() <= crate::dumpfile::manifest::MAX_BYTES)
        .map(|meta| meta.len())
        .sum();
    if total > PLAN_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the manifests in {} take {} together, more than the {} that all of one \
                 job's can need: remove the files there that are no dump's",
                dir.display(),
                crate::human::si(total),
                crate::human::si(PLAN_BYTES)
            ),
        ));
    }
    let read: Vec<(Dump, std::result::Result<Option<Manifest>, Flaw>)> = dumps
        .into_iter()
        .map(|dump| {
            let manifest = dump.manifest();
            (dump, manifest)
        })
        .collect();
    // A dump without a manifest is from before manifests only if no older
    // dump has one; an unreadable manifest is a manifest too.
    let oldest_with = read
        .iter()
        .filter(|(_, m)| !matches!(m, Ok(None)))
        .map(|(d, _)| d.stamp)
        .min();
    let mut planned: Vec<Planned> = read
        .into_iter()
        .map(|(dump, manifest)| Planned {
            trust: match manifest {
                Ok(Some(m)) => Trust::Manifest(m),
                Ok(None) if oldest_with.is_some_and(|oldest| dump.stamp > oldest) => {
                    Trust::Untrusted(Flaw::Missing)
                }
                Ok(None) => Trust::Legacy,
                Err(flaw) => Trust::Untrusted(flaw),
            },
            dump,
            rules: Vec::new(),
        })
        .collect();
    let held = baseline(&planned, now);
    for i in [held.size, held.rows].into_iter().flatten() {
        planned[i].rules.push(Rule::Largest);
    }
    let dumps: Vec<(Stamp, Standing)> = planned
        .iter()
        .map(|p| (p.dump.stamp, p.standing()))
        .collect();
    for (p, rules) in planned.iter_mut().zip(judge(&dumps, policy, now, &Local)) {
        p.rules = rules;
    }
    Ok(planned)
}

/// The good dumps of `location`, newest first, with their manifests: by
/// [`plan`], suspect and untrusted dumps and dumps named in the future
/// left out. What the drill restores and the copy sends.
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
        .map(|p| {
            let manifest = p.manifest().cloned();
            (p.dump, manifest)
        })
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
    let mut dumps: Vec<(Stamp, Standing)> = planned
        .iter()
        .map(|p| (p.dump.stamp, p.standing()))
        .collect();
    dumps.push((*next, Standing::Good { largest: false }));
    let mut kept: Vec<bool> = judge(&dumps, policy, next, tz)
        .into_iter()
        .map(|rules| !rules.is_empty())
        .collect();
    kept.pop();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dumpfile::Form;
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
                trust: Trust::Legacy,
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

    /// A scratch directory with a dump per `(stamp, rows)`, newest last,
    /// each with a good manifest of `rows` rows (raw size ten times as
    /// much) unless `rows` is None: a dump without one.
    fn directory(test: &str, dumps: &[(&str, Option<u64>)]) -> (std::path::PathBuf, Names) {
        use crate::dumpfile::manifest::{Check, Table, VERSION};
        let dir = std::env::temp_dir().join(format!("jobkit-plan-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let names = Names::new("dump", "sql");
        for (s, rows) in dumps {
            let name = names.dump(&stamp(s), Form::Gzip);
            std::fs::write(dir.join(&name), "12345").unwrap();
            let Some(rows) = rows else { continue };
            let m = Manifest {
                version: VERSION,
                dump: name.clone(),
                form: Form::Gzip,
                read: rows * 10,
                stored: 5,
                sha256: String::new(),
                content_sha256: None,
                format: None,
                check: Check::Complete,
                tables: Some(vec![Table {
                    database: None,
                    table: "t".into(),
                    rows: Some(*rows),
                }]),
                verdict: Verdict::Good,
                reason: None,
                accepted: None,
            };
            std::fs::write(dir.join(names.manifest(&stamp(s), Form::Gzip)), m.to_json()).unwrap();
        }
        (dir, names)
    }

    #[test]
    fn manifests_larger_together_than_a_plan_may_read_are_refused_unread() {
        let days: Vec<String> = (1..=9).map(|d| format!("202601{d:02}T000000Z")).collect();
        let dumps: Vec<(&str, Option<u64>)> = days.iter().map(|d| (d.as_str(), Some(1))).collect();
        let (dir, names) = directory("budget", &dumps);
        let p = policy(2, 0, 0, 0, 0);
        assert_eq!(plan(&dir, &names, &p, &stamp(NOW)).unwrap().len(), 9);
        // Each just within its own limit, sparse: no disk and no read.
        for d in &days {
            let path = dir.join(names.manifest(&stamp(d), Form::Gzip));
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(crate::dumpfile::manifest::MAX_BYTES).unwrap();
        }
        let e = plan(&dir, &names, &p, &stamp(NOW)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "the manifests in {} take 604 MB together",
                dir.display()
            )),
            "{e}"
        );
        // One over its own limit is refused alone, and the rest are read.
        let (dir, names) = directory("budget", &dumps);
        let path = dir.join(names.manifest(&stamp(&days[0]), Form::Gzip));
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(1 << 30).unwrap();
        let planned = plan(&dir, &names, &p, &stamp(NOW)).unwrap();
        assert!(planned[8].flaw().is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn rules_of(planned: &[Planned]) -> Vec<Vec<Rule>> {
        planned.iter().rev().map(|p| p.rules.clone()).collect()
    }

    fn edit(dir: &Path, names: &Names, s: &str, change: impl FnOnce(&mut Manifest)) {
        let path = dir.join(names.manifest(&stamp(s), Form::Gzip));
        let mut m = Manifest::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        change(&mut m);
        std::fs::write(path, m.to_json()).unwrap();
    }

    const DAYS: [&str; 5] = [
        "20260101T000000Z",
        "20260102T000000Z",
        "20260103T000000Z",
        "20260104T000000Z",
        "20260105T000000Z",
    ];

    #[test]
    fn a_manifest_that_cannot_be_trusted_keeps_its_dump_out_of_every_rule() {
        let (dir, names) = directory(
            "untrusted",
            &[
                (DAYS[0], None),
                (DAYS[1], Some(10)),
                (DAYS[2], Some(10)),
                (DAYS[3], None),
                (DAYS[4], Some(10)),
            ],
        );
        let p = policy(2, 0, 0, 0, 0);
        let planned = plan(&dir, &names, &p, &stamp(NOW)).unwrap();
        // The oldest is from before manifests; the one after dumps with a
        // manifest has lost its own.
        assert!(matches!(planned[4].trust, Trust::Legacy));
        assert_eq!(planned[1].flaw(), Some(&Flaw::Missing));
        assert_eq!(
            rules_of(&planned),
            [
                vec![],
                vec![],
                vec![Rule::Last],
                vec![Rule::Untrusted],
                vec![Rule::Last, Rule::Largest]
            ]
        );
        // Damaged, and of another dump: both untrusted, never removed.
        let damaged = dir.join(names.manifest(&stamp(DAYS[4]), Form::Gzip));
        std::fs::write(&damaged, "{ \"version\": 1,").unwrap();
        edit(&dir, &names, DAYS[2], |m| m.stored = 6);
        let planned = plan(&dir, &names, &p, &stamp(NOW)).unwrap();
        let flaw = |i: usize| planned[i].flaw().unwrap().to_string();
        assert!(
            flaw(0).contains("is damaged: EOF while parsing"),
            "{}",
            flaw(0)
        );
        assert!(
            flaw(2).ends_with("does not match it: it says 6 bytes were stored, the file has 5"),
            "{}",
            flaw(2)
        );
        assert_eq!(
            rules_of(&planned),
            [
                vec![Rule::Last],
                vec![Rule::Last, Rule::Largest],
                vec![Rule::Untrusted],
                vec![Rule::Untrusted],
                vec![Rule::Untrusted]
            ]
        );
        // The drill and the copy take none of them.
        let location = Location {
            dir: dir.clone(),
            names: names.clone(),
            policy: p,
        };
        let good: Vec<Stamp> = good_dumps(&location)
            .unwrap()
            .iter()
            .map(|(d, _)| d.stamp)
            .collect();
        assert_eq!(good, [stamp(DAYS[1]), stamp(DAYS[0])]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_largest_good_dump_is_held_until_a_newer_one_is_accepted() {
        let (dir, names) = directory(
            "largest",
            &[
                (DAYS[0], Some(2000)),
                (DAYS[1], Some(1100)),
                (DAYS[2], Some(600)),
                (DAYS[3], Some(330)),
            ],
        );
        // The raw sizes say otherwise than the rows: both are held.
        edit(&dir, &names, DAYS[1], |m| m.read = 50_000);
        let p = policy(1, 0, 0, 0, 0);
        let planned = plan(&dir, &names, &p, &stamp(NOW)).unwrap();
        assert_eq!(
            baseline(&planned, &stamp(NOW)),
            Baseline {
                size: Some(2),
                rows: Some(3)
            }
        );
        assert_eq!(
            rules_of(&planned),
            [
                vec![Rule::Largest],
                vec![Rule::Largest],
                vec![],
                vec![Rule::Last]
            ]
        );
        let next = kept_after_next(&planned, &p, &stamp(NOW), &Utc);
        assert_eq!(next, [false, false, true, true]);
        // Accepting the 600-row dump: those before it are compared with no
        // more, and go by the other rules.
        edit(&dir, &names, DAYS[2], |m| {
            m.accepted = Some("2026-01-06T00:00:00+00:00".into())
        });
        let planned = plan(&dir, &names, &p, &stamp(NOW)).unwrap();
        assert_eq!(
            baseline(&planned, &stamp(NOW)),
            Baseline {
                size: Some(1),
                rows: Some(1)
            }
        );
        assert_eq!(
            rules_of(&planned),
            [vec![], vec![], vec![Rule::Largest], vec![Rule::Last]]
        );
        // Of equals, the newer; a dump named in the future is left out.
        let (dir2, names2) = directory(
            "equal",
            &[
                (DAYS[0], Some(10)),
                (DAYS[1], Some(10)),
                (DAYS[2], Some(99)),
            ],
        );
        let planned = plan(&dir2, &names2, &p, &stamp(DAYS[1])).unwrap();
        assert_eq!(
            baseline(&planned, &stamp(DAYS[1])),
            Baseline {
                size: Some(1),
                rows: Some(1)
            }
        );
        assert_eq!(
            rules_of(&planned),
            [vec![], vec![Rule::Last, Rule::Largest], vec![Rule::Future]]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir2).unwrap();
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
