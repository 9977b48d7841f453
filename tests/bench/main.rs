//! Benchmarks timerapps against what it replaces and against its peers, and
//! prints one Markdown table. Every figure is a median over several runs and
//! every comparison a ratio to a reference measured in the same run; the
//! targets are reported, never asserted.
//!
//! Run it with `tests/bench/run` (full) or `tests/bench/run --quick` (small
//! sizes, few runs: what CI runs so that the benchmark keeps working).

#[allow(dead_code)] // shared with tests/it; the benchmark uses a part of it
#[path = "../it/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../it/postgres.rs"]
mod postgres;

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
            }
        } else {
            Plan {
                quick,
                logger_runs: 300,
                python_runs: 40,
                dump_runs: 5,
                scales: [3, 30],
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

fn dump_job(pg: &Postgres, dir: &Path, db: &str) -> Command {
    let command = format!("{} {db}", pg.program("pg_dump").display());
    compress_job(pg, dir, &command)
}

/// dump-database at default settings, running `command` as its dump.
fn compress_job(pg: &Postgres, dir: &Path, command: &str) -> Command {
    let mut c = pg.superuser(job("dump-database"));
    c.env("DUMP_DIR", dir)
        .env("DUMP_KEEP", "1")
        .env("DUMP_COMMAND", command);
    c
}

fn newest_dump(dir: &Path) -> PathBuf {
    let mut dumps: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".sql.gz"))
        .collect();
    dumps.sort();
    dumps.pop().expect("a dump")
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn dump(plan: &Plan, sb: &Sandbox) -> Vec<Row> {
    let pg = Postgres::start(sb);
    let [small, large] = plan.scales.map(|s| database(&pg, s));
    let dir = sb.mkdir("dumps");
    let pg_dump = pg.program("pg_dump");
    let pipeline = |tail: &str| {
        let mut c = pg.superuser(cmd("sh"));
        c.arg("-ec")
            .arg(format!("'{}' {large} {tail}", pg_dump.display()));
        c
    };
    let gz = sb.path("gzip.gz");
    let pz = sb.path("pigz.gz");
    let fast_dir = sb.mkdir("dumps-level-2");
    let (mut alone, mut alone_cpu, mut gzip, mut pigz) = (vec![], vec![], vec![], vec![]);
    let (mut ours, mut fast) = (vec![], vec![]);
    for _ in 0..plan.dump_runs {
        let (sample, cpu) = measure_cpu(|| measure(&mut pipeline("> /dev/null")));
        alone.push(sample);
        alone_cpu.push(cpu);
        gzip.push(measure(&mut pipeline(&format!(
            "| gzip -6 > '{}'",
            gz.display()
        ))));
        pigz.push(measure(&mut pipeline(&format!(
            "| pigz -p 2 > '{}'",
            pz.display()
        ))));
        ours.push(measure_polling(&mut dump_job(&pg, &dir, &large)));
        fast.push(measure(
            dump_job(&pg, &fast_dir, &large).env("DUMP_GZIP_LEVEL", "2"),
        ));
    }
    let published = newest_dump(&dir);
    // The published file is one gzip stream of what pg_dump writes, but for
    // the random key of its \restrict lines.
    let check = format!(
        "gzip -t '{0}'
         keyless() {{ grep -Ev '^.(un)?restrict '; }}
         cmp <('{1}' {large} | keyless) <(gzip -dc '{0}' | keyless)",
        published.display(),
        pg_dump.display()
    );
    run(pg.superuser(cmd("bash")).arg("-ec").arg(check)).ok();
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    // Before later runs prune them.
    let ours_size = size(&published);
    let fast_size = size(&newest_dump(&fast_dir));
    // What compressing alone costs: the same bytes, from a file.
    let raw = sb.path("dump.sql");
    run(&mut pipeline(&format!("> '{}'", raw.display()))).ok();
    let read = size(&raw);
    let compress_cpu: Vec<f64> = (0..plan.dump_runs)
        .map(|_| {
            let command = format!("cat '{}'", raw.display());
            measure_cpu(|| measure(&mut compress_job(&pg, &fast_dir, &command))).1
        })
        .collect();
    fs::remove_file(&raw).unwrap();
    let small_rss: Vec<Sample> = (0..plan.dump_runs)
        .map(|_| measure_polling(&mut dump_job(&pg, &dir, &small)))
        .collect();
    let base = wall(&alone);
    let secs = |s: f64| format!("{s:.2} s");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (producer_cpu, compress_cpu) = (median(alone_cpu), median(compress_cpu));
    // No dump is faster than pg_dump alone, nor than the CPUs can do both jobs.
    let least = base.max((producer_cpu + compress_cpu) / cpus as f64);
    vec![
        Row {
            what: format!("dump of {} from PostgreSQL, default settings", mb(read)),
            ours: secs(wall(&ours)),
            reference: format!("`pg_dump > /dev/null` {}", secs(base)),
            ratio: wall(&ours) / base,
            target: Target::AtMost(1.5),
        },
        Row {
            what: format!(
                "least time for it here: CPU of pg_dump and its server ({}) and of \
                 compressing at default settings ({}), over {cpus} CPUs",
                secs(producer_cpu),
                secs(compress_cpu)
            ),
            ours: secs(least),
            reference: format!("`pg_dump > /dev/null` {}", secs(base)),
            ratio: least / base,
            target: Target::None,
        },
        Row {
            what: "dump-database against that least time".into(),
            ours: secs(wall(&ours)),
            reference: format!("least {}", secs(least)),
            ratio: wall(&ours) / least,
            target: Target::None,
        },
        Row {
            what: "the same dump with `DUMP_GZIP_LEVEL=2`".into(),
            ours: secs(wall(&fast)),
            reference: format!("`pg_dump > /dev/null` {}", secs(base)),
            ratio: wall(&fast) / base,
            target: Target::None,
        },
        Row {
            what: "`pg_dump \\| gzip -6 > f.gz`".into(),
            ours: secs(wall(&gzip)),
            reference: format!("`pg_dump > /dev/null` {}", secs(base)),
            ratio: wall(&gzip) / base,
            target: Target::None,
        },
        Row {
            what: "`pg_dump \\| pigz -p 2 > f.gz`".into(),
            ours: secs(wall(&pigz)),
            reference: format!("`pg_dump > /dev/null` {}", secs(base)),
            ratio: wall(&pigz) / base,
            target: Target::None,
        },
        Row {
            what: "dump output size".into(),
            ours: mb(ours_size),
            reference: format!("gzip -6 {}", mb(size(&gz))),
            ratio: ours_size as f64 / size(&gz) as f64,
            target: Target::AtMost(1.02),
        },
        Row {
            what: "output size with `DUMP_GZIP_LEVEL=2`".into(),
            ours: mb(fast_size),
            reference: format!("gzip -6 {}", mb(size(&gz))),
            ratio: fast_size as f64 / size(&gz) as f64,
            target: Target::None,
        },
        Row {
            what: format!("dump-database peak RSS, pgbench scale {}", plan.scales[0]),
            ours: kib(rss(&small_rss)),
            reference: "16 MiB".into(),
            ratio: rss(&small_rss) as f64 / 16384.0,
            target: Target::AtMost(1.0),
        },
        Row {
            what: format!("dump-database peak RSS, {}", mb(read)),
            ours: kib(rss(&ours)),
            reference: "16 MiB".into(),
            ratio: rss(&ours) as f64 / 16384.0,
            target: Target::AtMost(1.0),
        },
    ]
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

fn main() {
    let plan = Plan::from_args();
    let sb = Sandbox::new("bench");
    let started = Instant::now();
    let mut rows = logger(&plan, &sb);
    rows.extend(dump(&plan, &sb));
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
    eprintln!("\nbenchmark took {:.0} s", started.elapsed().as_secs_f64());
}
