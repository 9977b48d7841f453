//! dump-database's compression settings against the memory the job may
//! use: settings that need more than its limit allows exit 2 before
//! anything is written, the same settings run once the limit is raised,
//! and what the job says they need bounds the peak measured on a real dump.
//! The limit is DUMP_MEMORY_MAX, or the kernel's own in a memory cgroup.

use crate::dump::{dump_job, published};
use crate::harness::{cmd, is_root, run, Sandbox};
use crate::postgres::Postgres;
use jobkit::human::binary;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The peak RSS of `c`'s process, in bytes, as GNU time reads it from
/// wait4. Not wait4 of this test's own child: a child's peak starts at
/// what its parent held when it was spawned, and this test process, with
/// every other test running in it, holds tens of MiB.
fn peak_of(c: &Command, out: &Path) -> u64 {
    let mut timed = cmd("/usr/bin/time");
    timed.args(["-q", "-f", "%M", "-o"]).arg(out).arg("--");
    run(&mut around(c, timed)).ok();
    let kib = fs::read_to_string(out).unwrap();
    kib.trim().parse::<u64>().unwrap() * 1024
}

/// `wrapper` running `c`: its program, arguments and environment follow
/// the wrapper's own arguments.
fn around(c: &Command, mut wrapper: Command) -> Command {
    wrapper.arg(c.get_program()).args(c.get_args());
    for (key, value) in c.get_envs() {
        if let Some(value) = value {
            wrapper.env(key, value);
        }
    }
    wrapper
}

/// What the job says `settings` need, from the line refusing them under
/// a 1 MiB limit, in bytes; it shows three significant digits, so this is
/// within 0.5 % of the need.
fn need(settings: &[(&str, &str)]) -> f64 {
    let sb = Sandbox::new("memory-need");
    let mut c = dump_job(&sb.mkdir("dumps"), "true");
    c.env("DUMP_MEMORY_MAX", "1M")
        .envs(settings.iter().copied());
    let r = run(&mut c);
    r.expect(2);
    let shown = r
        .stderr
        .split_once(" needs up to ")
        .and_then(|(_, rest)| rest.split_once(" of memory"))
        .unwrap_or_else(|| panic!("no need in the refusal\n{r}"))
        .0;
    let (value, unit) = shown.split_once(' ').unwrap();
    let scale = match unit {
        "KiB" => 1u64 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => panic!("unit {unit}\n{r}"),
    };
    value.parse::<f64>().unwrap() * scale as f64
}

#[test]
fn settings_over_the_limit_exit_2_naming_both_and_run_once_it_is_raised() {
    let sb = Sandbox::new("memory-limit");
    let dir = sb.mkdir("dumps");
    let strong = |limit: &str| {
        let mut c = dump_job(&dir, "echo 'INSERT INTO t VALUES (1);'");
        c.env("DUMP_COMPRESS", "zstd")
            .env("DUMP_ZSTD_LEVEL", "19")
            .env("DUMP_THREADS", "64")
            .env("DUMP_MEMORY_MAX", limit);
        c
    };
    let before = sb.tree();
    let r = run(&mut strong("2G"));
    r.expect(2)
        .stderr_has("dump-database: DUMP_ZSTD_LEVEL=19 with DUMP_THREADS=64 needs up to ")
        .stderr_has("more than the 1.00 GiB it may take: half of DUMP_MEMORY_MAX (2.00 GiB)")
        .stderr_has("lower DUMP_ZSTD_LEVEL or DUMP_THREADS, or raise DUMP_MEMORY_MAX");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert_eq!(r.stdout, "", "{r}");
    assert_eq!(sb.tree(), before, "something was written\n{r}");

    // Twice the need, rounded up to a whole GiB: the same settings publish.
    let need = need(&[
        ("DUMP_COMPRESS", "zstd"),
        ("DUMP_ZSTD_LEVEL", "19"),
        ("DUMP_THREADS", "64"),
    ]);
    let raised = format!("{}G", (2.0 * need / f64::from(1 << 30)).ceil() as u64 + 1);
    let r = run(&mut strong(&raised));
    let (path, _) = published(&r);
    assert_eq!(
        zstd::decode_all(fs::File::open(&path).unwrap()).unwrap(),
        b"INSERT INTO t VALUES (1);\n"
    );
}

/// A memory cgroup of the kernel's for one test, named as systemd names a
/// service's: under the root of cgroup v2 where the memory controller is
/// there, else under this process's own cgroup in cgroup v1's memory
/// hierarchy, where systemd writes `MemoryMax=` on such a host.
struct MemoryCgroup {
    dir: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    fn new() -> MemoryCgroup {
        let root = Path::new("/sys/fs/cgroup");
        let parent = format!("timerapps-it-{}-memory", std::process::id());
        let v2 = fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let dir = if v2 {
            fs::write(root.join("cgroup.subtree_control"), "+memory").unwrap();
            fs::create_dir_all(root.join(&parent)).unwrap();
            fs::write(root.join(&parent).join("cgroup.subtree_control"), "+memory").unwrap();
            root.join(parent)
        } else {
            let own = fs::read_to_string("/proc/self/cgroup").unwrap();
            let path = own
                .lines()
                .find_map(|line| {
                    let mut fields = line.splitn(3, ':');
                    let (_, controllers) = (fields.next()?, fields.next()?);
                    controllers
                        .split(',')
                        .any(|c| c == "memory")
                        .then(|| fields.next())?
                })
                .unwrap_or_else(|| panic!("no memory controller in\n{own}"));
            root.join("memory")
                .join(path.trim_start_matches('/'))
                .join(parent)
        }
        .join("dump-database.service");
        fs::create_dir_all(&dir).unwrap();
        MemoryCgroup { dir, v2 }
    }

    /// The file that holds the limit, as the job names it.
    fn file(&self) -> &'static str {
        if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        }
    }

    fn limit(&self, bytes: u64) {
        fs::write(self.dir.join(self.file()), bytes.to_string()).unwrap();
    }

    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.dir.join(file)).unwrap()
    }

    /// The most the cgroup has held.
    fn peak(&self) -> u64 {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        self.read(file).trim().parse().unwrap()
    }

    /// How often the cgroup met its limit: the kernel's count of charges
    /// refused (v1) or of reclaims and OOM kills at the limit (v2).
    fn hits(&self) -> u64 {
        if !self.v2 {
            return self.read("memory.failcnt").trim().parse().unwrap();
        }
        self.read("memory.events")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(key, _)| ["max", "oom", "oom_kill"].contains(key))
            .map(|(_, n)| n.parse::<u64>().unwrap())
            .sum()
    }

    /// `c`, started in this cgroup.
    fn command(&self, c: &Command) -> Command {
        let mut w = cmd("sh");
        w.arg("-ec")
            .arg(format!(
                "echo $$ > '{}/cgroup.procs'; exec \"$@\"",
                self.dir.display()
            ))
            .arg("sh");
        around(c, w)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
        let _ = fs::remove_dir(self.dir.parent().unwrap());
    }
}

/// The same, with the kernel's limit: the job reads it from its cgroup,
/// refuses under 1 GiB naming the setting and the unit, and with the limit
/// raised to just over twice the need publishes while the cgroup never
/// meets it.
#[test]
#[ignore = "needs root for cgroups: tests/run"]
fn the_kernels_limit_binds_and_a_raised_one_holds_the_peak() {
    assert!(is_root(), "run as root: tests/run");
    let sb = Sandbox::new("memory-cgroup");
    let dir = sb.mkdir("dumps");
    let cgroup = MemoryCgroup::new();
    let settings = [
        ("DUMP_COMPRESS", "zstd"),
        ("DUMP_ZSTD_LEVEL", "19"),
        ("DUMP_THREADS", "64"),
    ];
    // 24 MiB of SQL: three of zstd's 8 MiB jobs at level 19.
    let mut c = dump_job(
        &dir,
        "sh -c \"yes 'INSERT INTO t VALUES (1);' | head -n 1000000\"",
    );
    c.env("DUMP_CHECK", "off").envs(settings);
    cgroup.limit(1 << 30);
    let before = sb.tree();
    let r = run(&mut cgroup.command(&c));
    r.expect(2)
        .stderr_has("dump-database: DUMP_ZSTD_LEVEL=19 with DUMP_THREADS=64 needs up to ")
        .stderr_has(
            "more than the 512 MiB it may take: half of the 1.00 GiB MemoryMax= of \
             dump-database.service",
        )
        .stderr_has(
            "raise its MemoryHigh= and MemoryMax= with `systemctl edit dump-database.service`",
        );
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert_eq!(sb.tree(), before, "something was written\n{r}");

    // Twice the need, which the refusal shows within 0.5 %.
    let raised = (2.0 * 1.005 * need(&settings)) as u64 + (1 << 20);
    cgroup.limit(raised);
    let r = run(&mut cgroup.command(&c));
    let (path, _) = published(&r);
    let content = zstd::decode_all(fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(content.len(), 26_000_000);
    let peak = cgroup.peak();
    eprintln!(
        "zstd 19 on 64 threads in a cgroup limited to {} ({}): peaked at {}",
        binary(raised),
        cgroup.file(),
        binary(peak)
    );
    assert!(peak < raised, "{} of {}", binary(peak), binary(raised));
    assert_eq!(cgroup.hits(), 0, "the job met its cgroup's limit\n{r}");
}

/// The settings measured: the dump, the form, its level, the threads and
/// how much of the dump they compress, enough that every worker has had a
/// job and zstd's ring of input has gone round (a job per worker and three
/// more; jobs of 4 MiB, 8 MiB at level 19). The custom-format dump is
/// compressed by pg_dump already: what zstd makes of it is as large as its
/// input, the most its output buffers can take.
const MEASURED: [(Dump, &str, &str, &str, u64); 11] = [
    (Dump::Plain, "gzip", "6", "1", 32),
    (Dump::Plain, "gzip", "6", "4", 32),
    (Dump::Plain, "gzip", "9", "16", 32),
    (Dump::Plain, "zstd", "3", "1", 32),
    (Dump::Plain, "zstd", "3", "4", 48),
    (Dump::Plain, "zstd", "3", "16", 96),
    (Dump::Plain, "zstd", "9", "4", 48),
    (Dump::Plain, "zstd", "19", "2", 48),
    (Dump::Custom, "gzip", "6", "16", 32),
    (Dump::Custom, "zstd", "3", "4", 32),
    (Dump::Custom, "zstd", "19", "1", 40),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dump {
    /// `pg_dump`: SQL text.
    Plain,
    /// `pg_dump -Fc`: compressed.
    Custom,
}

/// A pgbench database with random text in its filler, which compresses
/// about as real tables do, dumped once in each format; each setting
/// compresses the first part of a dump (the command, `head`, takes little
/// memory of its own: wait4 reports the larger of the job and its
/// children).
#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn the_need_bounds_the_peak_measured_on_a_real_dump() {
    let sb = Sandbox::new("memory-measured");
    let pg = Postgres::start(&sb);
    pg.sql("postgres", "CREATE DATABASE bench");
    run(pg
        .superuser(cmd(pg.program("pgbench")))
        .args(["-q", "-i", "-s", "20", "bench"]))
    .ok();
    pg.sql(
        "bench",
        "UPDATE pgbench_accounts SET filler = md5(random()::text)",
    );
    let file = |dump: Dump| sb.path(&format!("{dump:?}"));
    for (dump, format) in [(Dump::Plain, "-Fp"), (Dump::Custom, "-Fc")] {
        run(pg
            .superuser(cmd(pg.program("pg_dump")))
            .args([format, "-f"])
            .arg(file(dump))
            .arg("bench"))
        .ok();
        let size = fs::metadata(file(dump)).unwrap().len();
        let most = MEASURED.iter().filter(|m| m.0 == dump).map(|m| m.4).max();
        assert!(size >= most.unwrap() << 20, "{dump:?}: {}", binary(size));
    }

    let dir = sb.mkdir("dumps");
    let mut rows = Vec::new();
    for (dump, compress, level, threads, mib) in MEASURED {
        let level_variable = match compress {
            "gzip" => "DUMP_GZIP_LEVEL",
            _ => "DUMP_ZSTD_LEVEL",
        };
        let settings = [
            ("DUMP_COMPRESS", compress),
            (level_variable, level),
            ("DUMP_THREADS", threads),
        ];
        let command = format!("head -c {} {}", mib << 20, file(dump).display());
        let mut c = dump_job(&dir, &command);
        // A part of a dump: its end is missing, and it is smaller than the last.
        c.env("DUMP_CHECK", "off")
            .env("DUMP_SHRINK_LIMIT", "0")
            .env("DUMP_KEEP", "1")
            .envs(settings);
        let peak = peak_of(&c, &sb.path("peak"));
        let need = need(&settings);
        rows.push(format!(
            "| {dump:?} | {compress} {level} | {threads} | {mib} MiB | {} | {} | {:.2}× |",
            binary(peak),
            binary(need as u64),
            need / peak as f64
        ));
        assert!(
            peak as f64 <= need * 0.995,
            "{compress} level {level} on {threads} threads took {}, more than the {} it \
             says it needs",
            binary(peak),
            binary(need as u64)
        );
    }
    eprintln!(
        "| dump | settings | threads | input | peak RSS | need | need / peak |\n\
         |---|---|---|---|---|---|---|\n{}",
        rows.join("\n")
    );
}
