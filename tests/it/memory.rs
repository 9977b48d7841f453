//! dump-database's compression settings against the memory the job may
//! use: settings that need more than its limit allows exit 2 before
//! anything is written, the same settings run once the limit is raised,
//! and what the job says they need bounds the peak measured on a real dump.

use crate::dump::{dump_job, published};
use crate::harness::{cmd, measure, run, Sandbox};
use crate::postgres::Postgres;
use jobkit::human::binary;
use std::fs;

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
        let peak = measure(&mut c).rss_kib * 1024;
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
