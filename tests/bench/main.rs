//! Benchmarks timerapps against what it replaces and against its peers, and
//! prints one Markdown table. Every figure is a median over several runs and
//! every comparison a ratio to a reference measured in the same run; the
//! targets are reported, never asserted.
//!
//! Run it with `tests/bench/run` (full) or `tests/bench/run --quick` (small
//! sizes, few runs: what CI runs so that the benchmark keeps working); name
//! parts (`logger`, `dump`, `drill`, `copy`, `production`) to run only those.

#[allow(dead_code)] // shared with tests/it; the benchmark uses a part of it
#[path = "../it/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../it/postgres.rs"]
mod postgres;
mod production;

use harness::{bin, cmd, job, measure, run, Sample, Sandbox};
use postgres::Postgres;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Plan {
    quick: bool,
    /// Runs of each logger-like program.
    logger_runs: usize,
    /// Runs of the Python reference, which is slower.
    python_runs: usize,
    /// Runs of each dump pipeline.
    dump_runs: usize,
    /// pgbench scale factors: the small and the large dump.
    scales: [u32; 2],
    /// Rounds of pgbench alone and beside each job.
    production_rounds: usize,
    /// Seconds of each pgbench run.
    production_seconds: u32,
    /// pgbench scale factor of the database it runs against and the jobs dump.
    production_scale: u32,
}

impl Plan {
    fn from_args() -> Plan {
        // cargo bench passes --bench; only --quick matters here.
        let quick = std::env::args().any(|a| a == "--quick");
        if quick {
            Plan {
                quick,
                logger_runs: 30,
                python_runs: 5,
                dump_runs: 1,
                scales: [1, 3],
                production_rounds: 1,
                production_seconds: 3,
                production_scale: 1,
            }
        } else {
            Plan {
                quick,
                logger_runs: 300,
                python_runs: 40,
                dump_runs: 5,
                scales: [3, 30],
                production_rounds: 3,
                production_seconds: 30,
                production_scale: 30,
            }
        }
    }
}

/// Runs `c`, sampling its own peak RSS (VmHWM) while it runs: wait4 would
/// report the largest of it and its children, and pg_dump is one of those.
fn measure_polling(c: &mut Command) -> Sample {
    let started = Instant::now();
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut rss_kib = 0;
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_file) {
            let hwm = text.lines().find_map(|l| l.strip_prefix("VmHWM:"));
            if let Some(kib) = hwm.and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()) {
                rss_kib = kib;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(status.success(), "{c:?} failed: {status}");
    Sample {
        wall: started.elapsed(),
        rss_kib,
    }
}

/// CPU seconds the whole machine has spent busy (user and system, all
/// processes): the cost of a pipeline including its database server, which
/// is no child of ours.
fn busy_cpu() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6];
    // SAFETY: sysconf only reads a constant.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Runs `measure`, also returning the busy CPU seconds of the whole machine
/// meanwhile.
fn measure_cpu(measure: impl FnOnce() -> Sample) -> (Sample, f64) {
    let before = busy_cpu();
    let sample = measure();
    (sample, busy_cpu() - before)
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn wall(samples: &[Sample]) -> f64 {
    median(samples.iter().map(|s| s.wall.as_secs_f64()).collect())
}

fn rss(samples: &[Sample]) -> u64 {
    median(samples.iter().map(|s| s.rss_kib).collect())
}

/// A table row: what, our figure, the reference figure, their ratio, the target.
struct Row {
    what: String,
    ours: String,
    reference: String,
    ratio: f64,
    target: Target,
}

enum Target {
    AtMost(f64),
    AtLeast(f64),
    None,
}

impl Row {
    fn print(&self) {
        let (target, met) = match self.target {
            Target::AtMost(t) => (format!("≤ {t}×"), Some(self.ratio <= t)),
            Target::AtLeast(t) => (format!("≥ {t}×"), Some(self.ratio >= t)),
            Target::None => (String::new(), None),
        };
        let verdict = match met {
            None => "",
            Some(true) => "met",
            Some(false) => "missed",
        };
        let ratio = format!("{:.2}×", self.ratio);
        println!(
            "| {} | {} | {} | {ratio} | {target} | {verdict} |",
            self.what, self.ours, self.reference
        );
    }
}

fn ms(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

fn kib(k: u64) -> String {
    format!("{k} KiB")
}

/// The Python logger that myapp replaces, as the reference scripts do it:
/// a script of the benchmark's own, beside this file.
fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bench/reference_logger.py")
}

/// A program of tests/bench built with the release profile: `floor`, the
/// empty program, or `syscalls`, the logger's system calls alone.
fn example(name: &str) -> PathBuf {
    let path = Path::new(bin("myapp"))
        .with_file_name("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run tests/bench/run",
        path.display()
    );
    path
}

fn logger(plan: &Plan, sb: &Sandbox) -> Vec<Row> {
    let log = sb.path("bench.log");
    let script = reference_script();
    let floor = example("floor");
    let syscalls = example("syscalls");
    let mut ours = Vec::new();
    let mut empty = Vec::new();
    let mut bare = Vec::new();
    let mut python = Vec::new();
    for i in 0..plan.logger_runs + 5 {
        let a = measure(job("myapp").env("LOGFILE", &log));
        let b = measure(&mut cmd(&floor));
        let c = measure(cmd(&syscalls).env("LOGFILE", sb.path("syscalls.log")));
        // The first runs warm the caches and are not counted.
        if i >= 5 {
            ours.push(a);
            empty.push(b);
            bare.push(c);
        }
        if i < plan.python_runs {
            python.push(measure(
                cmd("/usr/bin/python3").arg(&script).env("LOGFILE", &log),
            ));
        }
    }
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    let (myapp_size, floor_size) = (size(Path::new(bin("myapp"))), size(&floor));
    vec![
        Row {
            what: format!("myapp wall time per run (median of {})", ours.len()),
            ours: ms(wall(&ours)),
            reference: format!("floor {}", ms(wall(&empty))),
            ratio: wall(&ours) / wall(&empty),
            target: Target::None,
        },
        Row {
            what: "the logger's system calls alone, through libc (examples/syscalls)".into(),
            ours: ms(wall(&bare)),
            reference: format!("floor {}", ms(wall(&empty))),
            ratio: wall(&bare) / wall(&empty),
            target: Target::None,
        },
        Row {
            what: "myapp against those system calls alone".into(),
            ours: ms(wall(&ours)),
            reference: format!("syscalls {}", ms(wall(&bare))),
            ratio: wall(&ours) / wall(&bare),
            target: Target::AtMost(1.10),
        },
        Row {
            what: "myapp speed against the Python logger it replaces".into(),
            ours: ms(wall(&ours)),
            reference: format!(
                "python3 {} (peak RSS {})",
                ms(wall(&python)),
                kib(rss(&python))
            ),
            ratio: wall(&python) / wall(&ours),
            target: Target::AtLeast(40.0),
        },
        Row {
            what: "myapp peak RSS".into(),
            ours: kib(rss(&ours)),
            reference: format!("floor {}", kib(rss(&empty))),
            ratio: rss(&ours) as f64 / rss(&empty) as f64,
            target: Target::AtMost(1.1),
        },
        Row {
            what: "myapp binary size".into(),
            ours: kib(myapp_size / 1024),
            reference: format!("floor {}", kib(floor_size / 1024)),
            ratio: myapp_size as f64 / floor_size as f64,
            target: Target::AtMost(1.3),
        },
    ]
}

/// A pgbench database whose filler column holds random text, which
/// compresses about like real tables (pgbench's blanks would squeeze 34×).
fn database(pg: &Postgres, scale: u32) -> String {
    let db = format!("bench{scale}");
    pg.sql("postgres", &format!("CREATE DATABASE {db}"));
    run(pg
        .superuser(cmd(pg.program("pgbench")))
        .args(["-q", "-i", "-s", &scale.to_string(), &db]))
    .ok();
    pg.sql(
        &db,
        "UPDATE pgbench_accounts SET filler = md5(random()::text)",
    );
    pg.sql(&db, "VACUUM FULL pgbench_accounts");
    db
}

fn dump_job(pg: &Postgres, dir: &Path, db: &str, compress: &str) -> Command {
    let command = format!("{} {db}", pg.program("pg_dump").display());
    compress_job(pg, dir, &command, compress)
}

/// dump-database at default settings for `compress`, running `command` as
/// its dump.
fn compress_job(pg: &Postgres, dir: &Path, command: &str, compress: &str) -> Command {
    let mut c = pg.superuser(job("dump-database"));
    c.env("DUMP_DIR", dir)
        .env("DUMP_KEEP", "1")
        .env("DUMP_COMPRESS", compress)
        .env("DUMP_COMMAND", command);
    c
}

/// A copy of the job `name` in `sb`, which the users the benchmark switches
/// to can run wherever the build tree is (a checkout in `/root` or in a
/// directory of mode 0700 is out of their reach).
fn reachable_job(sb: &Sandbox, name: &str) -> PathBuf {
    let copy = sb.path(name);
    fs::copy(harness::bin(name), &copy).unwrap();
    copy
}

fn newest_dump(dir: &Path) -> PathBuf {
    let dumps = harness::names("dump").dumps(dir).unwrap();
    dumps.into_iter().next().expect("a dump").path
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The wall times of each pipeline, one run of each per round.
#[derive(Default)]
struct Runs {
    alone: Vec<Sample>,
    alone_cpu: Vec<f64>,
    to_file: Vec<Sample>,
    gzip: Vec<Sample>,
    pigz: Vec<Sample>,
    zstd: Vec<Sample>,
    ours: Vec<Sample>,
    fast: Vec<Sample>,
    ours_zstd: Vec<Sample>,
    ours_none: Vec<Sample>,
    /// The same dumps with DUMP_CHECK=off: no scan, no row counts.
    unchecked: Vec<Sample>,
    unchecked_zstd: Vec<Sample>,
}

fn dump(plan: &Plan, sb: &Sandbox) -> Vec<Row> {
    let pg = Postgres::start(sb);
    let [small, large] = plan.scales.map(|s| database(&pg, s));
    let dirs = [
        "gzip",
        "gzip-2",
        "zstd",
        "none",
        "gzip-unchecked",
        "zstd-unchecked",
    ]
    .map(|d| sb.mkdir(&format!("dumps-{d}")));
    let [dir, fast_dir, zstd_dir, none_dir, unchecked_dir, unchecked_zstd_dir] = &dirs;
    let pg_dump = pg.program("pg_dump");
    let pipeline = |tail: &str| {
        let mut c = pg.superuser(cmd("sh"));
        c.arg("-ec")
            .arg(format!("'{}' {large} {tail}", pg_dump.display()));
        c
    };
    let out = |name: &str| sb.path(name).display().to_string();
    let (gz, pz, zs, raw) = (
        out("gzip.gz"),
        out("pigz.gz"),
        out("cli.zst"),
        out("dump.sql"),
    );
    let mut r = Runs::default();
    for _ in 0..plan.dump_runs {
        let (sample, cpu) = measure_cpu(|| measure(&mut pipeline("> /dev/null")));
        r.alone.push(sample);
        r.alone_cpu.push(cpu);
        // What keeping the bytes as written cannot beat: writing them to a
        // file of the same file system and flushing it, as the job does.
        r.to_file
            .push(measure(&mut pipeline(&format!("> '{raw}'; sync '{raw}'"))));
        r.gzip
            .push(measure(&mut pipeline(&format!("| gzip -6 > '{gz}'"))));
        r.pigz
            .push(measure(&mut pipeline(&format!("| pigz -p 2 > '{pz}'"))));
        r.zstd.push(measure(&mut pipeline(&format!(
            "| zstd -q -3 -T2 > '{zs}'"
        ))));
        r.ours
            .push(measure_polling(&mut dump_job(&pg, dir, &large, "gzip")));
        r.fast.push(measure(
            dump_job(&pg, fast_dir, &large, "gzip").env("DUMP_GZIP_LEVEL", "2"),
        ));
        r.ours_zstd.push(measure_polling(&mut dump_job(
            &pg, zstd_dir, &large, "zstd",
        )));
        r.ours_none
            .push(measure(&mut dump_job(&pg, none_dir, &large, "none")));
        r.unchecked.push(measure(
            dump_job(&pg, unchecked_dir, &large, "gzip").env("DUMP_CHECK", "off"),
        ));
        r.unchecked_zstd.push(measure(
            dump_job(&pg, unchecked_zstd_dir, &large, "zstd").env("DUMP_CHECK", "off"),
        ));
    }
    // Each published file is what pg_dump writes, but for the random key of
    // its \restrict lines.
    let check = format!(
        "gzip -t '{gz}'; zstd -qt '{zs}'
         keyless() {{ grep -Ev '^.(un)?restrict '; }}
         '{pg_dump}' {large} | keyless > '{raw}.expected'
         cmp '{raw}.expected' <(gzip -dc '{ours}' | keyless)
         cmp '{raw}.expected' <(zstd -qdc '{ours_zstd}' | keyless)
         cmp '{raw}.expected' <(keyless < '{ours_none}')
         rm '{raw}.expected'",
        pg_dump = pg_dump.display(),
        ours = newest_dump(dir).display(),
        ours_zstd = newest_dump(zstd_dir).display(),
        ours_none = newest_dump(none_dir).display(),
    );
    run(pg.superuser(cmd("bash")).arg("-ec").arg(check)).ok();
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    // Before later runs prune them.
    let [ours_size, fast_size, zstd_size] =
        [dir, fast_dir, zstd_dir].map(|d| size(&newest_dump(d)));
    let gzip_size = size(Path::new(&gz));
    let read = size(Path::new(&raw));
    // What compressing alone costs: the same bytes, from a file.
    let compress_cpu = |compress: &str| {
        let runs = (0..plan.dump_runs).map(|_| {
            let command = format!("cat '{raw}'");
            measure_cpu(|| measure(&mut compress_job(&pg, fast_dir, &command, compress))).1
        });
        median(runs.collect())
    };
    let (gzip_cpu, zstd_cpu) = (compress_cpu("gzip"), compress_cpu("zstd"));
    fs::remove_file(&raw).unwrap();
    // Apart from the large dumps, which would make these suspect.
    let small_dir = sb.mkdir("dumps-small");
    let small_rss = |compress: &str| {
        let runs = (0..plan.dump_runs)
            .map(|_| measure_polling(&mut dump_job(&pg, &small_dir, &small, compress)));
        rss(&runs.collect::<Vec<_>>())
    };
    let (small_rss, small_zstd_rss) = (small_rss("gzip"), small_rss("zstd"));

    let base = wall(&r.alone);
    let secs = |s: f64| format!("{s:.2} s");
    let alone = format!("`pg_dump > /dev/null` {}", secs(base));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let producer_cpu = median(r.alone_cpu);
    // No dump is faster than pg_dump alone, nor than the CPUs can do both jobs.
    let least = |compress_cpu: f64| base.max((producer_cpu + compress_cpu) / cpus as f64);
    let (least_gzip, least_zstd) = (least(gzip_cpu), least(zstd_cpu));
    let (ours, zstd, none) = (wall(&r.ours), wall(&r.ours_zstd), wall(&r.ours_none));
    let row = |what: String, ours: f64, reference: String, of: f64, target| Row {
        what,
        ours: secs(ours),
        reference,
        ratio: ours / of,
        target,
    };
    let size_row = |what: &str, ours: u64, target| Row {
        what: what.into(),
        ours: mb(ours),
        reference: format!("gzip -6 {}", mb(gzip_size)),
        ratio: ours as f64 / gzip_size as f64,
        target,
    };
    let rss_row = |what: String, peak: u64, limit_mib: u64| Row {
        what,
        ours: kib(peak),
        reference: format!("{limit_mib} MiB"),
        ratio: peak as f64 / (limit_mib * 1024) as f64,
        target: Target::AtMost(1.0),
    };
    let large_name = mb(read);
    vec![
        row(
            format!("dump of {large_name} from PostgreSQL, default settings (gzip)"),
            ours,
            alone.clone(),
            base,
            Target::AtMost(1.5),
        ),
        row(
            format!(
                "least time for a gzip dump here: CPU of pg_dump and its server ({}) and of \
                 compressing at default settings ({}), over {cpus} CPUs",
                secs(producer_cpu),
                secs(gzip_cpu)
            ),
            least_gzip,
            alone.clone(),
            base,
            Target::None,
        ),
        row(
            "gzip dump against that least time".into(),
            ours,
            format!("least {}", secs(least_gzip)),
            least_gzip,
            Target::AtMost(1.05),
        ),
        Row {
            what: "speed against `pg_dump \\| pigz -p 2 > f.gz`".into(),
            ours: secs(ours),
            reference: format!("pigz {}", secs(wall(&r.pigz))),
            ratio: wall(&r.pigz) / ours,
            target: Target::AtLeast(1.2),
        },
        row(
            "the same dump with `DUMP_GZIP_LEVEL=2`".into(),
            wall(&r.fast),
            alone.clone(),
            base,
            Target::None,
        ),
        row(
            "`pg_dump \\| gzip -6 > f.gz`".into(),
            wall(&r.gzip),
            alone.clone(),
            base,
            Target::None,
        ),
        row(
            "`pg_dump \\| pigz -p 2 > f.gz`".into(),
            wall(&r.pigz),
            alone.clone(),
            base,
            Target::None,
        ),
        row(
            "gzip dump, checked and rows counted, against `DUMP_CHECK=off`".into(),
            ours,
            format!("unchecked {}", secs(wall(&r.unchecked))),
            wall(&r.unchecked),
            Target::AtMost(1.02),
        ),
        size_row("gzip dump output size", ours_size, Target::AtMost(1.02)),
        size_row(
            "output size with `DUMP_GZIP_LEVEL=2`",
            fast_size,
            Target::None,
        ),
        row(
            "the same dump with `DUMP_COMPRESS=zstd`".into(),
            zstd,
            alone.clone(),
            base,
            Target::None,
        ),
        row(
            "zstd dump against `pg_dump \\| zstd -3 -T2 > f.zst`".into(),
            zstd,
            format!("zstd CLI {}", secs(wall(&r.zstd))),
            wall(&r.zstd),
            Target::AtMost(1.0),
        ),
        row(
            "zstd dump against the gzip dump".into(),
            zstd,
            format!("gzip dump {}", secs(ours)),
            ours,
            Target::AtMost(0.7),
        ),
        row(
            format!(
                "least time for a zstd dump here: CPU of pg_dump and its server and of \
                 compressing with zstd ({}), over {cpus} CPUs",
                secs(zstd_cpu)
            ),
            least_zstd,
            alone.clone(),
            base,
            Target::None,
        ),
        row(
            "zstd dump against that least time".into(),
            zstd,
            format!("least {}", secs(least_zstd)),
            least_zstd,
            Target::None,
        ),
        row(
            "zstd dump, checked and rows counted, against `DUMP_CHECK=off`".into(),
            zstd,
            format!("unchecked {}", secs(wall(&r.unchecked_zstd))),
            wall(&r.unchecked_zstd),
            Target::AtMost(1.02),
        ),
        size_row("zstd dump output size", zstd_size, Target::AtMost(1.0)),
        row(
            "the same dump with `DUMP_COMPRESS=none`".into(),
            none,
            alone.clone(),
            base,
            Target::None,
        ),
        row(
            "uncompressed dump against writing it to a file and flushing it".into(),
            none,
            format!("`pg_dump > f; sync f` {}", secs(wall(&r.to_file))),
            wall(&r.to_file),
            Target::None,
        ),
        rss_row(
            format!("gzip dump peak RSS, pgbench scale {}", plan.scales[0]),
            small_rss,
            16,
        ),
        rss_row(
            format!("gzip dump peak RSS, {large_name}"),
            rss(&r.ours),
            16,
        ),
        rss_row(
            format!("zstd dump peak RSS, pgbench scale {}", plan.scales[0]),
            small_zstd_rss,
            64,
        ),
        rss_row(
            format!("zstd dump peak RSS, {large_name}"),
            rss(&r.ours_zstd),
            64,
        ),
    ]
}

/// The server settings of the drill's throwaway PostgreSQL
/// (`jobs/dump-database-drill/postgres.rs`, but its temporary-file limit).
const THROWAWAY: &str = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=64MB -c autovacuum=off \
    -c shared_buffers=32MB -c max_connections=10 -c work_mem=4MB \
    -c maintenance_work_mem=64MB -c jit=off";

/// The drill's server settings before it was tuned as throwaway: no
/// flushing, and otherwise PostgreSQL's defaults.
const UNFLUSHED: &str = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_wal_size=64MB -c jit=off";

/// A restore drill of a gzip dump of the benchmark's large database,
/// against the same restore by hand: a fresh cluster made and started the
/// way the drill makes it, `zcat dump | psql`, and the cluster stopped and
/// removed; that restore by hand against the same with the server's
/// settings of before the throwaway tuning; and, when `DRILL_BEFORE` names
/// the dump-database-drill of an earlier build, the drill against it. One
/// run of each per round.
fn drill(plan: &Plan) -> Vec<Row> {
    // A cluster of its own, in a directory of its own.
    let sb = &Sandbox::new("bench-drill");
    let pg = Postgres::start(sb);
    let scale = plan.scales[1];
    let db = database(&pg, scale);
    let dir = sb.mkdir("drill-dumps");
    run(&mut dump_job(&pg, &dir, &db, "gzip")).ok();
    drop(pg);
    let tmp = sb.mkdir("drill-tmp");
    let (uid, gid) = harness::user_ids("postgres");
    for d in [&dir, &tmp] {
        run(cmd("chown").arg("-R").arg("postgres:postgres").arg(d)).ok();
    }
    let as_postgres = |c: &mut Command| {
        use std::os::unix::process::CommandExt;
        c.uid(uid).gid(gid).env("HOME", &tmp);
    };
    let dump = newest_dump(&dir);
    let pg_bin = run(cmd("sh")
        .arg("-c")
        .arg("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"))
    .stdout
    .trim()
    .to_owned();
    let by_hand = |settings: &str| {
        let script = format!(
            "d=$(mktemp -d -p '{tmp}')
             '{bin}/initdb' -D \"$d/data\" --auth=trust --username=postgres --encoding=UTF8 \
                 --locale=C --no-sync --no-instructions > /dev/null
             '{bin}/postgres' -D \"$d/data\" -c listen_addresses= -c unix_socket_directories=\"$d\" \
                 {settings} 2> /dev/null &
             until '{bin}/pg_isready' -q -h \"$d\"; do sleep 0.05; done
             '{bin}/psql' -h \"$d\" -U postgres -X -q -c 'CREATE DATABASE drill' postgres
             zcat '{dump}' | '{bin}/psql' -h \"$d\" -U postgres -X -q -v ON_ERROR_STOP=1 drill > /dev/null
             kill -INT $!; wait $! || true
             rm -rf \"$d\"",
            tmp = tmp.display(),
            dump = dump.display(),
            bin = pg_bin,
        );
        let mut c = cmd("bash");
        c.arg("-ec").arg(script);
        as_postgres(&mut c);
        c
    };
    let drill_job = |program: &Path| {
        let mut c = cmd(program);
        c.env("DUMP_DIR", &dir).env("DRILL_TMPDIR", &tmp);
        as_postgres(&mut c);
        c
    };
    let before = std::env::var_os("DRILL_BEFORE").map(PathBuf::from);
    let ours_program = &reachable_job(sb, "dump-database-drill");
    let (mut ours, mut tuned, mut unflushed, mut earlier) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.dump_runs {
        ours.push(measure(&mut drill_job(ours_program)));
        tuned.push(measure(&mut by_hand(THROWAWAY)));
        unflushed.push(measure(&mut by_hand(UNFLUSHED)));
        if let Some(before) = &before {
            earlier.push(measure(&mut drill_job(before)));
        }
    }
    let (ours, tuned, unflushed) = (wall(&ours), wall(&tuned), wall(&unflushed));
    let secs = |s: f64| format!("{s:.2} s");
    let mut rows = vec![
        Row {
            what: format!(
                "restore drill of a gzip dump, pgbench scale {scale}, tables counted and compared"
            ),
            ours: secs(ours),
            reference: format!("initdb, start, `zcat \\| psql`, stop {}", secs(tuned)),
            ratio: ours / tuned,
            target: Target::AtMost(1.10),
        },
        Row {
            what: "that restore by hand, the server tuned as the drill's throwaway".into(),
            ours: secs(tuned),
            reference: format!("`fsync=off` and defaults {}", secs(unflushed)),
            ratio: tuned / unflushed,
            target: Target::None,
        },
    ];
    if let Some(before) = &before {
        let earlier = wall(&earlier);
        rows.push(Row {
            what: format!("the drill against `DRILL_BEFORE={}`", before.display()),
            ours: secs(ours),
            reference: format!("earlier build {}", secs(earlier)),
            ratio: ours / earlier,
            target: Target::None,
        });
    }
    rows
}

/// A new restic repository in `dir`, with a key that opens in
/// milliseconds, as the tests make theirs.
fn repository(dir: &Path, password: &Path) {
    let restic = |args: &[&str]| {
        let mut c = cmd("restic");
        c.args(["--no-cache", "-r"])
            .arg(dir)
            .env("RESTIC_PASSWORD_FILE", password)
            .args(args);
        run(&mut c).ok().stdout.clone()
    };
    restic(&["init"]);
    let master = restic(&["cat", "masterkey"]);
    let key = fs::read_to_string(password).unwrap();
    harness::cheap_restic_key(dir, &key, &master);
}

/// The bytes below `dir`.
fn size(dir: &Path) -> u64 {
    run(cmd("du").args(["-sb"]).arg(dir))
        .stdout
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// dump-database-copy of the dumps in `dir` into the repository `repo`,
/// its record in `record`, as the default job's copy unit runs it.
fn copy_job(dir: &Path, repo: &Path, password: &Path, record: &Path, cache: &Path) -> Command {
    let mut c = job("dump-database-copy");
    c.env("DUMP_DIR", dir)
        .env("DUMP_KEEP", "7")
        .env("COPY_REPOSITORY", repo)
        .env("COPY_PASSWORD_FILE", password)
        .env("COPY_RESULT", record)
        .env("CACHE_DIRECTORY", cache);
    harness::in_unit(&c, "dump-database-copy.service", None)
}

/// The seconds a copy's line gives for `what` ("sent in", "verified in").
fn copy_seconds(out: &str, what: &str) -> f64 {
    out.lines()
        .find_map(|l| l.split(&format!("{what} ")).nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"{what}\" in {out}"))
}

/// Off-host copies into restic: a copy of the large database's gzip dump
/// against `zcat dump | restic backup --stdin` by hand, each into a new
/// local repository, one of each per round; and the repository's growth
/// over seven daily dumps of a database that grows by 1 % a day, and of
/// one whose rows change 1 % a day at random.
fn copy(plan: &Plan) -> Vec<Row> {
    let sb = &Sandbox::new("bench-copy");
    let pg = Postgres::start(sb);
    let scale = plan.scales[1];
    let db = database(&pg, scale);
    let password = sb.path("password");
    fs::write(&password, "bench").unwrap();
    let dir = sb.mkdir("copy-dumps");
    run(&mut dump_job(&pg, &dir, &db, "gzip")).ok();
    let dump = newest_dump(&dir);
    let (mut ours, mut sent, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..plan.dump_runs {
        let (a, b) = (
            sb.mkdir(&format!("ours-{round}")),
            sb.mkdir(&format!("theirs-{round}")),
        );
        repository(&a.join("repo"), &password);
        repository(&b.join("repo"), &password);
        // A record whose check ran today: this run copies, as most do.
        let record = a.join("copy.json");
        fs::write(
            &record,
            format!(
                r#"{{"version":1,"started":0,"seconds":0,"destination":"restic","result":"copied",
                "reason":null,"copied":[],"newest":null,"waiting":0,"last_success":null,
                "check":{{"started":{},"subset":"1/30","result":"passed","reason":null,
                "last_success":null}}}}"#,
                chrono::Utc::now().timestamp()
            ),
        )
        .unwrap();
        let mut c = copy_job(&dir, &a.join("repo"), &password, &record, &a.join("cache"));
        let started = Instant::now();
        let r = run(&mut c).ok().stdout.clone();
        ours.push(started.elapsed().as_secs_f64());
        sent.push(copy_seconds(&r, "sent in"));
        let mut c = cmd("bash");
        c.arg("-ec")
            .arg(format!(
                "zcat '{}' | restic -r '{}' backup --stdin --stdin-filename dump.sql --quiet",
                dump.display(),
                b.join("repo").display()
            ))
            .env("RESTIC_PASSWORD_FILE", &password)
            .env("RESTIC_CACHE_DIR", b.join("cache"));
        let started = Instant::now();
        run(&mut c).ok();
        theirs.push(started.elapsed().as_secs_f64());
    }
    let (ours, sent, theirs) = (median(ours), median(sent), median(theirs));
    let secs = |s: f64| format!("{s:.2} s");
    let mut rows = vec![
        Row {
            what: format!(
                "off-host copy of a gzip dump into restic, pgbench scale {scale}: sending"
            ),
            ours: secs(sent),
            reference: format!("`zcat \\| restic backup --stdin` {}", secs(theirs)),
            ratio: sent / theirs,
            target: Target::AtMost(1.05),
        },
        Row {
            what: "the same, with the read-back check, listing and retention".to_owned(),
            ours: secs(ours),
            reference: secs(theirs),
            ratio: ours / theirs,
            target: Target::None,
        },
    ];
    for (n, (workload, target, change)) in [
        (
            "append-only, 1 % new rows a day",
            Target::AtMost(1.5),
            "INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
               SELECT m + i, 1, 0, md5(random()::text)
               FROM (SELECT max(aid) AS m, count(*) / 100 AS n FROM pgbench_accounts) s,
                    generate_series(1, s.n) i",
        ),
        (
            "1 % of rows updated at random a day",
            Target::None,
            "UPDATE pgbench_accounts SET abalance = abalance + 1
               WHERE aid IN (SELECT aid FROM pgbench_accounts TABLESAMPLE BERNOULLI (1))",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("days{n}");
        pg.sql("postgres", &format!("CREATE DATABASE {name} TEMPLATE {db}"));
        let days = sb.mkdir(&format!("{name}-dumps"));
        let repo = sb.path(&format!("{name}-repo"));
        repository(&repo, &password);
        let (mut first, mut whole) = (0, 0);
        for day in 0..7 {
            if day > 0 {
                pg.sql(&name, change);
            }
            let mut c = dump_job(&pg, &days, &name, "gzip");
            c.env("DUMP_KEEP", "7");
            run(&mut c).ok();
            whole += fs::metadata(newest_dump(&days)).unwrap().len();
            let mut c = copy_job(
                &days,
                &repo,
                &password,
                &sb.path(&format!("{name}.json")),
                &sb.path(&format!("{name}-cache")),
            );
            run(&mut c).ok();
            if day == 0 {
                first = size(&repo);
            }
        }
        let after = size(&repo);
        rows.push(Row {
            what: format!(
                "restic repository after 7 daily copies, {workload} (7 gzip dumps whole: {})",
                mb(whole)
            ),
            ours: mb(after),
            reference: format!("after the first copy {}", mb(first)),
            ratio: after as f64 / first as f64,
            target,
        });
    }
    rows
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .unwrap_or(": ?");
    let os = fs::read_to_string("/etc/debian_version").unwrap_or_default();
    format!(
        "{} CPUs ({}), Debian {}, {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        model.trim_start_matches([':', ' ', '\t']),
        os.trim(),
        run(cmd("uname").arg("-r")).stdout.trim()
    )
}

/// The benchmark's parts, which `tests/bench/run PART...` runs alone.
const PARTS: [&str; 5] = ["logger", "dump", "drill", "copy", "production"];

fn main() {
    let plan = Plan::from_args();
    let sb = Sandbox::new("bench");
    let started = Instant::now();
    // Parts named on the command line run alone; none named, all run.
    let named: Vec<String> = std::env::args()
        .filter(|a| PARTS.contains(&a.as_str()))
        .collect();
    let wanted = |part: &str| named.is_empty() || named.iter().any(|n| n == part);
    let mut rows = Vec::new();
    if wanted("logger") {
        rows.extend(logger(&plan, &sb));
    }
    if wanted("dump") {
        rows.extend(dump(&plan, &sb));
    }
    if wanted("drill") {
        rows.extend(drill(&plan));
    }
    if wanted("copy") {
        rows.extend(copy(&plan));
    }
    let mut notes = Vec::new();
    if wanted("production") {
        let (production, in_force) = production::production(&plan);
        rows.extend(production);
        notes.extend(in_force);
    }
    let date = run(cmd("date").args(["-u", "+%Y-%m-%d"])).stdout;
    println!(
        "\ntimerapps benchmark ({}), {}, on {}: medians; ratios against a reference measured in the same run\n",
        if plan.quick { "quick" } else { "full" },
        date.trim(),
        machine()
    );
    println!("| measure | timerapps | reference | ratio | target | |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        row.print();
    }
    if !notes.is_empty() {
        println!("\nBeside the database:");
        for note in &notes {
            println!("- {note}");
        }
    }
    eprintln!("\nbenchmark took {:.0} s", started.elapsed().as_secs_f64());
}
