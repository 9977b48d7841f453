//! A dump directory listed: each dump of one name with what its manifest
//! makes of it ([`Trust`]), and the retention plan over them, which prune,
//! `timerapps status`, `verify`, `keep` and `accept`, the drill and the
//! copy share. The manifests are read here, within a budget for them all;
//! the rules themselves are [`crate::retention`]'s, which reads nothing.

use super::manifest::{self, Verdict};
use super::{Dump, Flaw, Location, Manifest, Stamp};
use crate::retention::{self, Listed, Measure, Policy, Rule, Standing};
use crate::{Error, Exit, Result};
use chrono::{Local, TimeZone};
use std::io;

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

impl Trust {
    /// Good by a trusted manifest, or made before manifests.
    fn good(&self) -> bool {
        match self {
            Trust::Manifest(m) => m.verdict == Verdict::Good,
            Trust::Legacy => true,
            Trust::Untrusted(_) => false,
        }
    }

    /// The dump made at `stamp` as retention sees it.
    fn listed(&self, stamp: &Stamp) -> Listed {
        let (standing, measure) = match self {
            Trust::Manifest(m) => (
                if m.verdict == Verdict::Suspect {
                    Standing::Suspect
                } else {
                    Standing::Good
                },
                Some(Measure {
                    read: m.read,
                    rows: m.total_rows(),
                    accepted: m.accepted.is_some(),
                }),
            ),
            Trust::Legacy => (Standing::Good, None),
            Trust::Untrusted(_) => (Standing::Untrusted, None),
        };
        Listed {
            made: stamp.utc(),
            standing,
            measure,
        }
    }
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
        self.trust.good()
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
}

/// The most that all the manifests of one listing may take: eight of the
/// largest a job writes ([`manifest::MAX_BYTES`]), more than the manifests
/// of any real database's kept dumps. A manifest can grow while it is read
/// by at most its own limit.
pub const PLAN_BYTES: u64 = 8 * manifest::MAX_BYTES;

impl Location {
    /// Its dumps, newest first, each with what its manifest makes of it.
    pub fn list(&self) -> io::Result<Vec<(Dump, Trust)>> {
        let dumps = self.names.dumps(&self.dir)?;
        // Their sizes first: many manifests, each within its limit, could
        // still take more memory than a listing may. One over its own
        // limit is refused unread, and untrusts only its dump.
        let total: u64 = dumps
            .iter()
            .filter_map(|d| d.manifest_path().symlink_metadata().ok())
            .filter(|meta| meta.is_file() && meta.len() <= manifest::MAX_BYTES)
            .map(|meta| meta.len())
            .sum();
        if total > PLAN_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the manifests in {} take {} together, more than the {} that all of one \
                     job's can need: remove the files there that are no dump's",
                    self.dir.display(),
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
        // A dump without a manifest is from before manifests only if no
        // older dump has one; an unreadable manifest is a manifest too.
        let oldest_with = read
            .iter()
            .filter(|(_, m)| !matches!(m, Ok(None)))
            .map(|(d, _)| d.stamp)
            .min();
        Ok(read
            .into_iter()
            .map(|(dump, manifest)| {
                let trust = match manifest {
                    Ok(Some(m)) => Trust::Manifest(m),
                    Ok(None) if oldest_with.is_some_and(|oldest| dump.stamp > oldest) => {
                        Trust::Untrusted(Flaw::Missing)
                    }
                    Ok(None) => Trust::Legacy,
                    Err(flaw) => Trust::Untrusted(flaw),
                };
                (dump, trust)
            })
            .collect())
    }

    /// Its dumps, newest first, each with the rules of `policy` that keep
    /// it in the host's local time; dumps named after `now` are in the
    /// future.
    pub fn plan(&self, policy: &Policy, now: &Stamp) -> io::Result<Vec<Planned>> {
        let listed = self.list()?;
        let seen: Vec<Listed> = listed.iter().map(|(d, t)| t.listed(&d.stamp)).collect();
        let rules = retention::plan(&seen, policy, &now.utc(), &Local);
        Ok(listed
            .into_iter()
            .zip(rules)
            .map(|((dump, trust), rules)| Planned { dump, trust, rules })
            .collect())
    }

    /// What a new dump stamped `now` is compared with: the manifests of
    /// the good dumps of the largest raw size and with the most rows,
    /// since the newest accepted one ([`retention::baseline`]).
    pub fn baseline(&self, now: &Stamp) -> io::Result<(Option<Manifest>, Option<Manifest>)> {
        let listed = self.list()?;
        let seen: Vec<Listed> = listed.iter().map(|(d, t)| t.listed(&d.stamp)).collect();
        let held = retention::baseline(&seen, &now.utc());
        let manifest = |i: Option<usize>| match i.map(|i| &listed[i].1) {
            Some(Trust::Manifest(m)) => Some(m.clone()),
            _ => None,
        };
        Ok((manifest(held.size), manifest(held.rows)))
    }

    /// Its good dumps, newest first, with their manifests: suspect and
    /// untrusted dumps and dumps named in the future left out. What the
    /// drill restores and the copy sends.
    pub fn good_dumps(&self) -> Result<Vec<(Dump, Option<Manifest>)>> {
        let now = Stamp::of(chrono::Utc::now());
        let listed = self
            .list()
            .map_err(|e| Error::io(Exit::Failure, "cannot list the dumps in", &self.dir, &e, ""))?;
        Ok(listed
            .into_iter()
            .filter(|(dump, trust)| trust.good() && dump.stamp <= now)
            .map(|(dump, trust)| match trust {
                Trust::Manifest(m) => (dump, Some(m)),
                Trust::Legacy | Trust::Untrusted(_) => (dump, None),
            })
            .collect())
    }
}

/// Which of `planned` are still kept after the next run publishes a good
/// dump stamped `next`: false for those it would remove.
pub fn kept_after_next<Tz: TimeZone>(
    planned: &[Planned],
    policy: &Policy,
    next: &Stamp,
    tz: &Tz,
) -> Vec<bool> {
    let seen: Vec<Listed> = planned
        .iter()
        .map(|p| p.trust.listed(&p.dump.stamp))
        .collect();
    let rules: Vec<Vec<Rule>> = planned.iter().map(|p| p.rules.clone()).collect();
    retention::kept_after_next(&seen, &rules, policy, &next.utc(), tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dumpfile::{Form, Names};
    use crate::retention::Policy;
    use chrono::Utc;

    fn stamp(s: &str) -> Stamp {
        Stamp::parse(s).unwrap()
    }

    /// The `last` newest, no time rule.
    fn newest(last: u32) -> Policy {
        Policy {
            last,
            ..crate::retention::DEFAULT
        }
    }

    const NOW: &str = "20300101T000000Z";

    /// A scratch directory with a dump per `(stamp, rows)`, newest last,
    /// each with a good manifest of `rows` rows (raw size ten times as
    /// much) unless `rows` is None: a dump without one.
    fn directory(test: &str, dumps: &[(&str, Option<u64>)]) -> Location {
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
        Location { dir, names }
    }

    #[test]
    fn manifests_larger_together_than_a_plan_may_read_are_refused_unread() {
        let days: Vec<String> = (1..=9).map(|d| format!("202601{d:02}T000000Z")).collect();
        let dumps: Vec<(&str, Option<u64>)> = days.iter().map(|d| (d.as_str(), Some(1))).collect();
        let loc = directory("budget", &dumps);
        let p = newest(2);
        assert_eq!(loc.plan(&p, &stamp(NOW)).unwrap().len(), 9);
        // Each just within its own limit, sparse: no disk and no read.
        for d in &days {
            let path = loc.dir.join(loc.names.manifest(&stamp(d), Form::Gzip));
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(crate::dumpfile::manifest::MAX_BYTES).unwrap();
        }
        let e = loc.plan(&p, &stamp(NOW)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "the manifests in {} take 604 MB together",
                loc.dir.display()
            )),
            "{e}"
        );
        // One over its own limit is refused alone, and the rest are read.
        let loc = directory("budget", &dumps);
        let path = loc
            .dir
            .join(loc.names.manifest(&stamp(&days[0]), Form::Gzip));
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(1 << 30).unwrap();
        let planned = loc.plan(&p, &stamp(NOW)).unwrap();
        assert!(planned[8].flaw().is_some());
        std::fs::remove_dir_all(&loc.dir).unwrap();
    }

    /// The dumps whose manifests [`Location::baseline`] gives, size first.
    fn held(loc: &Location, now: &str) -> (String, String) {
        let (size, rows) = loc.baseline(&stamp(now)).unwrap();
        (size.unwrap().dump, rows.unwrap().dump)
    }

    fn dump_of(s: &str) -> String {
        Names::new("dump", "sql").dump(&stamp(s), Form::Gzip)
    }

    fn rules_of(planned: &[Planned]) -> Vec<Vec<Rule>> {
        planned.iter().rev().map(|p| p.rules.clone()).collect()
    }

    fn edit(loc: &Location, s: &str, change: impl FnOnce(&mut Manifest)) {
        let path = loc.dir.join(loc.names.manifest(&stamp(s), Form::Gzip));
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
        let loc = directory(
            "untrusted",
            &[
                (DAYS[0], None),
                (DAYS[1], Some(10)),
                (DAYS[2], Some(10)),
                (DAYS[3], None),
                (DAYS[4], Some(10)),
            ],
        );
        let p = newest(2);
        let planned = loc.plan(&p, &stamp(NOW)).unwrap();
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
        let damaged = loc
            .dir
            .join(loc.names.manifest(&stamp(DAYS[4]), Form::Gzip));
        std::fs::write(&damaged, "{ \"version\": 1,").unwrap();
        edit(&loc, DAYS[2], |m| m.stored = 6);
        let planned = loc.plan(&p, &stamp(NOW)).unwrap();
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
        let good: Vec<Stamp> = loc
            .good_dumps()
            .unwrap()
            .iter()
            .map(|(d, _)| d.stamp)
            .collect();
        assert_eq!(good, [stamp(DAYS[1]), stamp(DAYS[0])]);
        std::fs::remove_dir_all(&loc.dir).unwrap();
    }

    #[test]
    fn the_largest_good_dump_is_held_until_a_newer_one_is_accepted() {
        let loc = directory(
            "largest",
            &[
                (DAYS[0], Some(2000)),
                (DAYS[1], Some(1100)),
                (DAYS[2], Some(600)),
                (DAYS[3], Some(330)),
            ],
        );
        // The raw sizes say otherwise than the rows: both are held.
        edit(&loc, DAYS[1], |m| m.read = 50_000);
        let p = newest(1);
        let planned = loc.plan(&p, &stamp(NOW)).unwrap();
        assert_eq!(held(&loc, NOW), (dump_of(DAYS[1]), dump_of(DAYS[0])));
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
        edit(&loc, DAYS[2], |m| {
            m.accepted = Some("2026-01-06T00:00:00+00:00".into())
        });
        let planned = loc.plan(&p, &stamp(NOW)).unwrap();
        assert_eq!(held(&loc, NOW), (dump_of(DAYS[2]), dump_of(DAYS[2])));
        assert_eq!(
            rules_of(&planned),
            [vec![], vec![], vec![Rule::Largest], vec![Rule::Last]]
        );
        // Of equals, the newer; a dump named in the future is left out.
        let loc2 = directory(
            "equal",
            &[
                (DAYS[0], Some(10)),
                (DAYS[1], Some(10)),
                (DAYS[2], Some(99)),
            ],
        );
        let planned = loc2.plan(&p, &stamp(DAYS[1])).unwrap();
        assert_eq!(held(&loc2, DAYS[1]), (dump_of(DAYS[1]), dump_of(DAYS[1])));
        assert_eq!(
            rules_of(&planned),
            [vec![], vec![Rule::Last, Rule::Largest], vec![Rule::Future]]
        );
        std::fs::remove_dir_all(&loc.dir).unwrap();
        std::fs::remove_dir_all(&loc2.dir).unwrap();
    }
}
