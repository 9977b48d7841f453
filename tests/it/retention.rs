//! Retention keeps exactly what restic's `forget` keeps: 200 random dump
//! histories over months and across both daylight-saving changes, judged
//! by the real restic (Debian 13's package) and by dump-database's own
//! prune, in the same local time zone.

use crate::container::{image, Release};
use crate::dump::{dump_job, published};
use crate::harness::{cheap_restic_key, cmd, names, run, Sandbox};
use chrono::{DateTime, Utc};
use jobkit::dumpfile::{Form, Stamp};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A zone with daylight saving: clocks go forward on 2025-03-30 at 01:00
/// UTC and back on 2025-10-26 at 01:00 UTC.
const ZONE: &str = "Europe/Paris";
const DST: [i64; 2] = [1_743_296_400, 1_761_440_400];
/// One policy a repository; the histories of one run concurrently.
const POLICIES: usize = 8;
const HISTORIES_PER_POLICY: usize = 25;
const PASSWORD: &str = "test";

/// xorshift64*: reproducible histories from a seed the failure prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// DUMP_KEEP, _HOURLY, _DAILY, _WEEKLY, _MONTHLY.
type Policy = [u64; 5];
const VARIABLES: [&str; 5] = [
    "DUMP_KEEP",
    "DUMP_KEEP_HOURLY",
    "DUMP_KEEP_DAILY",
    "DUMP_KEEP_WEEKLY",
    "DUMP_KEEP_MONTHLY",
];
const RESTIC_FLAGS: [&str; 5] = [
    "--keep-last",
    "--keep-hourly",
    "--keep-daily",
    "--keep-weekly",
    "--keep-monthly",
];

fn policy(rng: &mut Rng) -> Policy {
    let mut p = [1 + rng.below(4), 0, 0, 0, 0];
    for n in &mut p[1..] {
        // Each time rule is off in a third of the policies.
        *n = if rng.below(3) == 0 {
            0
        } else {
            1 + rng.below(6)
        };
    }
    p
}

/// Unix seconds of a dump history: runs minutes, hours, days or weeks
/// apart, some of them through a daylight-saving change.
fn history(rng: &mut Rng, through_dst: bool) -> Vec<i64> {
    let mut t = if through_dst {
        DST[rng.below(2) as usize] - 3 * 3600 + rng.below(3600) as i64
    } else {
        1_735_689_600 + rng.below(300 * 86_400) as i64
    };
    let count = 1 + rng.below(14);
    let mut times = Vec::new();
    for _ in 0..count {
        times.push(t);
        t += match rng.below(if through_dst { 2 } else { 6 }) {
            0 => 60 + rng.below(1800) as i64,
            1 => 1800 + rng.below(3 * 3600) as i64,
            2 => 3600 * (6 + rng.below(30) as i64),
            3 => 86_400 * (1 + rng.below(4) as i64),
            4 => 86_400 * (5 + rng.below(20) as i64),
            _ => 86_400 * (25 + rng.below(40) as i64),
        };
    }
    times
}

/// Local wall-clock times in ZONE of unix seconds, as restic's --time
/// takes them, from one run of date(1).
fn local_times(seconds: &[i64]) -> Vec<String> {
    let mut date = cmd("date")
        .env("TZ", ZONE)
        .args(["-f", "-", "+%Y-%m-%d %H:%M:%S"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = seconds.iter().map(|s| format!("@{s}\n")).collect();
    date.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = date.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The restic of Debian 13, a static program, taken from its image.
pub fn restic_binary() -> PathBuf {
    let tar = image(Release::Trixie);
    let dir = tar.with_extension("restic");
    let restic = dir.join("usr/bin/restic");
    if !restic.exists() {
        fs::create_dir_all(&dir).unwrap();
        run(cmd("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&dir)
            .arg("./usr/bin/restic"))
        .ok();
    }
    restic
}

fn restic(binary: &Path, repo: &Path) -> Command {
    let mut c = cmd(binary);
    c.env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("TZ", ZONE)
        .args(["--no-cache", "--quiet"]);
    c
}

/// A snapshot as `restic snapshots --json` and `forget --json` show it.
#[derive(serde::Deserialize)]
struct Snapshot {
    time: String,
    hostname: String,
}

#[derive(serde::Deserialize)]
struct Group {
    keep: Vec<Snapshot>,
}

fn stamp(restic_time: &str) -> Stamp {
    let time = DateTime::parse_from_rfc3339(restic_time).expect("an RFC 3339 time");
    Stamp::of(time.with_timezone(&Utc))
}

/// One policy's histories in one repository: restic keeps what
/// dump-database keeps, history by history. Returns what differs.
fn judge(sb: &Sandbox, binary: &Path, seed: u64, index: usize) -> Vec<String> {
    let mut rng = Rng(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let policy = policy(&mut rng);
    let repo = sb.path(&format!("repo-{index}"));
    run(restic(binary, &repo).arg("init")).ok();
    let master = run(restic(binary, &repo).args(["cat", "masterkey"]))
        .ok()
        .stdout
        .clone();
    cheap_restic_key(&repo, PASSWORD, &master);
    let file = sb.path(&format!("backed-up-{index}"));
    fs::write(&file, "a file for each snapshot\n").unwrap();
    let backup = |host: &str, local: &str| {
        run(restic(binary, &repo)
            .args(["backup", "--host", host, "--time", local])
            .arg(&file))
        .ok();
    };

    let mut dirs = Vec::new();
    for h in 0..HISTORIES_PER_POLICY {
        let host = format!("h{index}-{h}");
        let times = history(&mut rng, h % 5 == 0);
        // Wall-clock times repeat when clocks go back: one dump each.
        let mut seen = BTreeSet::new();
        for local in local_times(&times) {
            if seen.insert(local.clone()) {
                backup(&host, &local);
            }
        }
        dirs.push((host, sb.mkdir(&format!("dumps-{index}-{h}"))));
    }
    // The dumps are named as restic recorded each time, whichever instant
    // it took for a wall-clock time that happened twice.
    let listed = run(restic(binary, &repo).args(["snapshots", "--json"]))
        .ok()
        .stdout
        .clone();
    let snapshots: Vec<Snapshot> = serde_json::from_str(&listed).unwrap();
    for (host, dir) in &dirs {
        for s in snapshots.iter().filter(|s| s.hostname == *host) {
            let name = names("dump").dump(&stamp(&s.time), Form::Gzip);
            fs::write(dir.join(name), "an earlier dump\n").unwrap();
        }
    }
    // dump-database publishes a dump now and prunes by the policy; restic
    // gets a snapshot at the same second.
    for (host, dir) in &dirs {
        let mut job = dump_job(dir, "echo now");
        job.env("TZ", ZONE);
        for (var, n) in VARIABLES.iter().zip(policy) {
            job.env(var, n.to_string());
        }
        let (path, _) = published(&run(&mut job));
        let (now, _) = names("dump")
            .parse(&path.file_name().unwrap().to_string_lossy())
            .unwrap();
        backup(host, &local_times(&[now.unix_seconds()])[0]);
    }
    let mut forget = restic(binary, &repo);
    forget.args(["forget", "--dry-run", "--json", "--group-by", "host"]);
    for (flag, n) in RESTIC_FLAGS.iter().zip(policy) {
        if n > 0 {
            forget.arg(flag).arg(n.to_string());
        }
    }
    let judged = run(&mut forget).ok().stdout.clone();
    let groups: Vec<Group> = serde_json::from_str(&judged).unwrap();
    let mut differ = Vec::new();
    for (host, dir) in &dirs {
        let restic_keeps: BTreeSet<String> = groups
            .iter()
            .flat_map(|g| &g.keep)
            .filter(|s| s.hostname == *host)
            .map(|s| stamp(&s.time).to_string())
            .collect();
        let job_keeps: BTreeSet<String> = names("dump")
            .dumps(dir)
            .unwrap()
            .iter()
            .map(|d| d.stamp.to_string())
            .collect();
        if restic_keeps != job_keeps {
            differ.push(format!(
                "{host}, policy {policy:?}: restic keeps {restic_keeps:?}, dump-database \
                 keeps {job_keeps:?}"
            ));
        }
    }
    differ
}

#[test]
#[ignore = "needs the Debian 13 image for its restic: tests/run"]
fn retention_keeps_what_restic_forget_keeps() {
    let sb = Sandbox::new("retention-restic");
    let binary = restic_binary();
    let seed = Utc::now().timestamp() as u64 | 1;
    let differ: Vec<String> = std::thread::scope(|s| {
        let judges: Vec<_> = (0..POLICIES)
            .map(|i| {
                let (sb, binary) = (&sb, &binary);
                s.spawn(move || judge(sb, binary, seed, i))
            })
            .collect();
        judges.into_iter().flat_map(|j| j.join().unwrap()).collect()
    });
    assert!(
        differ.is_empty(),
        "seed {seed}: {} of {} histories differ:\n{}",
        differ.len(),
        POLICIES * HISTORIES_PER_POLICY,
        differ.join("\n")
    );
}
