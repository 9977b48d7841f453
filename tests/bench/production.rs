//! What the database gives up while a job runs beside it: pgbench against
//! the benchmark's PostgreSQL alone, while a dump of its database runs,
//! while a drill of such a dump runs, and while the same dump runs without
//! the units' settings, one of each per round, in turn.
//!
//! No systemd manages this host's cgroups, so the benchmark applies what a
//! unit gets itself, from `jobkit::host::budget`: it makes `timerapps.slice` and
//! a cgroup for each job's service in it, with the slice's weights and
//! every memory and task limit, and starts the job there at the service's
//! nice level and I/O priority. The database and pgbench run in a cgroup
//! beside the slice at the default weight, as `postgresql.service` runs in
//! `system.slice`; so does a job run without the settings, as jobs ran
//! before the slice.

use crate::harness::{self, cmd, job, run, start, Sandbox};
use crate::postgres::Postgres;
use crate::{median, Plan, Row, Target};
use jobkit::host::budget::{self, Load, Share};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A job that runs long under load may take this long before it fails.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// pgbench's clients: twice the CPUs here, so that it wants all of them.
const CLIENTS: &str = "4";

/// The cgroup of the database and pgbench, and of a job without settings.
const DATABASE: &str = "system.slice";

/// The services the benchmark starts jobs in, as their units are named.
const SERVICES: [(Load, &str); 2] = [
    (Load::Dump, "dump-database.service"),
    (Load::Drill, "dump-database-drill.service"),
];

/// The cgroup hierarchies the benchmark makes its cgroups in, each with
/// the cgroup the benchmark runs in there; v1's named by their controller.
fn hierarchies() -> Vec<(Option<&'static str>, PathBuf)> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        // At the top: below the benchmark's own cgroup, which holds
        // processes, cgroup v2 enables no controller.
        return vec![(None, root.to_owned())];
    }
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    ["cpu", "blkio", "memory", "pids"]
        .into_iter()
        .filter_map(|controller| {
            // Lines such as "4:memory:/a/b" or "1:cpu,cpuacct:/".
            let path = own.lines().find_map(|l| {
                let mut fields = l.splitn(3, ':').skip(1);
                let controllers = fields.next()?;
                let path = fields.next()?;
                controllers
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| path.trim_start_matches('/').to_owned())
            })?;
            let dir = root.join(controller).join(path);
            dir.join("cgroup.procs")
                .exists()
                .then_some((Some(controller), dir))
        })
        .collect()
}

fn value(shares: &[Share], key: &str) -> &'static str {
    shares
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no {key} in jobkit::host::budget"))
        .value
}

fn weight(shares: &[Share], key: &str) -> u64 {
    value(shares, key).parse().unwrap()
}

/// Writes `value` to the cgroup file `file` in `dir`; false where the file
/// is missing or refuses it.
fn set(dir: &Path, file: &str, value: &str) -> bool {
    let path = dir.join(file);
    path.exists() && fs::write(&path, value).is_ok()
}

/// The host's RAM, which systemd's percentages are of.
fn ram() -> u64 {
    let info = fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    kib * 1024
}

/// The scheduler of the disk under `dir`, as its queue names it.
fn scheduler(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(dir).unwrap().dev();
    let block = format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev));
    // A partition's queue is its disk's.
    ["queue/scheduler", "../queue/scheduler"]
        .iter()
        .find_map(|q| fs::read_to_string(Path::new(&block).join(q)).ok())
        .and_then(|s| {
            let start = s.find('[')?;
            let end = s.find(']')?;
            Some(s[start + 1..end].to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The benchmark's cgroups, one tree in each hierarchy: the database's,
/// and `timerapps.slice` with a cgroup per service. While it lives the
/// benchmark runs in the database's, at the database's priority (nice 0
/// and no I/O class, as `postgresql.service` runs, whatever the
/// benchmark was started with), so that the server it starts and pgbench
/// run there and so; dropped, it returns to its own cgroups and priority
/// and removes the tree.
struct Cgroups {
    /// Each hierarchy's tree, and the benchmark's own cgroup there.
    trees: Vec<(PathBuf, PathBuf)>,
    /// The benchmark's own nice level and I/O priority.
    priority: (i32, i32),
    /// What of the units' settings is in force, in words.
    notes: Vec<String>,
}

impl Cgroups {
    fn new(sandbox: &Path) -> Cgroups {
        sweep();
        let tree_name = format!("timerapps-bench-{}", std::process::id());
        let slice = budget::SLICE;
        let mut trees = Vec::new();
        let mut cpu = None;
        let mut outside = None;
        let mut io = None;
        let mut memory = Vec::new();
        let mut tasks = Vec::new();
        let hierarchies = hierarchies();
        let v2 = hierarchies.iter().any(|(c, _)| c.is_none());
        let ram = ram();
        // SAFETY: sysconf only reads a constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        for (controller, home) in hierarchies {
            let tree = home.join(&tree_name);
            let database = tree.join(DATABASE);
            let services = SERVICES.map(|(_, s)| tree.join(slice).join(s));
            // A hierarchy the benchmark may not write to is left out, and
            // its settings reported as not available.
            if services
                .iter()
                .chain([&database])
                .any(|dir| fs::create_dir_all(dir).is_err())
            {
                remove_tree(&tree);
                continue;
            }
            if v2 {
                for parent in [&tree, &tree.join(slice)] {
                    for c in ["cpu", "io", "memory", "pids"] {
                        set(parent, "cgroup.subtree_control", &format!("+{c}"));
                    }
                }
            }
            let slice_dir = tree.join(slice);
            let has = |c: &str| v2 || controller == Some(c);
            // The tree against the rest of the machine (builds, tests): at
            // the highest weight, so that they take as little as the
            // kernel allows from the database and the jobs alike.
            if has("cpu") {
                let (file, max) = if v2 {
                    ("cpu.weight", "10000")
                } else {
                    ("cpu.shares", "262144")
                };
                if set(&tree, file, max) {
                    outside = Some(format!("{file} {max}"));
                }
            }
            let cpu_weight = weight(budget::SLICE_SHARES, "CPUWeight");
            if has("cpu") {
                // systemd's conversion on cgroup v1, around its default 1024.
                let (file, value) = if v2 {
                    ("cpu.weight", cpu_weight)
                } else {
                    ("cpu.shares", (cpu_weight * 1024 / 100).clamp(2, 262_144))
                };
                if set(&slice_dir, file, &value.to_string()) {
                    cpu = Some(format!("{file} {value} (CPUWeight={cpu_weight})"));
                }
            }
            let io_weight = weight(budget::SLICE_SHARES, "IOWeight");
            if has("blkio") || has("io") {
                let files: &[(&str, u64)] = if v2 {
                    &[("io.weight", io_weight), ("io.bfq.weight", io_weight)]
                } else {
                    // systemd's conversion, around blkio's default 500.
                    let blkio = (io_weight * 500 / 100).clamp(10, 1000);
                    &[("blkio.bfq.weight", blkio), ("blkio.weight", blkio)]
                };
                for (file, value) in files {
                    if io.is_none() && set(&slice_dir, file, &value.to_string()) {
                        io = Some(format!("{file} {value} (IOWeight={io_weight})"));
                    }
                }
            }
            let mut units = vec![(slice, &slice_dir, budget::SLICE_SHARES)];
            for ((load, service), dir) in SERVICES.iter().zip(&services) {
                units.push((service, dir, load.shares()));
            }
            for (unit, dir, shares) in units {
                if has("memory") {
                    let limits: &[(&str, &str)] = if v2 {
                        &[("MemoryHigh", "memory.high"), ("MemoryMax", "memory.max")]
                    } else {
                        // v1 has no MemoryHigh; systemd sets MemoryMax as the limit.
                        &[("MemoryMax", "memory.limit_in_bytes")]
                    };
                    for (key, file) in limits {
                        let setting = value(shares, key);
                        let bytes = budget::bytes(setting, ram, page).unwrap();
                        if set(dir, file, &bytes.to_string()) {
                            memory.push(format!(
                                "{unit} {file} {} MiB ({key}={setting})",
                                bytes >> 20
                            ));
                        }
                    }
                }
                if has("pids") {
                    let max = value(shares, "TasksMax");
                    if set(dir, "pids.max", max) {
                        tasks.push(format!("{unit} {max}"));
                    }
                }
            }
            trees.push((tree, home));
        }
        let nice = value(budget::PRIORITY, "Nice");
        let class = value(budget::PRIORITY, "IOSchedulingClass");
        let level = value(budget::PRIORITY, "IOSchedulingPriority");
        let off = |what: Option<String>, why: &str| {
            what.map_or_else(
                || format!("not available ({why})"),
                |w| format!("{w}: in force"),
            )
        };
        let list = |what: Vec<String>| (!what.is_empty()).then(|| what.join(", "));
        let cgroups = if trees.is_empty() {
            "not available: no cgroup hierarchy the benchmark may write to".to_owned()
        } else {
            format!(
                "cgroup {}, {} beside {DATABASE}, where the database, pgbench and the dumps \
                 without the settings run at the default weight",
                if v2 { "v2" } else { "v1" },
                budget::SLICE
            )
        };
        let notes = vec![
            format!("the jobs' cgroups: {cgroups}"),
            format!(
                "the database and pgbench at nice 0 and the default I/O priority, as \
                 postgresql.service runs"
            ),
            format!("CPU weight: {}", off(cpu, "no cpu controller")),
            format!(
                "the benchmark's cgroups against other work on the machine: {}",
                off(outside, "no cpu controller")
            ),
            format!(
                "I/O weight: {}",
                off(
                    io,
                    "no blkio.weight or blkio.bfq.weight: the disk's scheduler is not BFQ"
                )
            ),
            format!(
                "memory limit: {}",
                off(list(memory), "no memory controller")
            ),
            format!(
                "MemoryHigh: {}",
                if v2 {
                    "with the limits above"
                } else {
                    "not available (cgroup v1)"
                }
            ),
            format!(
                "task limit (pids.max): {}",
                off(list(tasks), "no pids controller")
            ),
            format!(
                "Nice={nice} (setpriority) and I/O {class} {level} (ioprio_set): in force; the \
                 sandbox's disk is scheduled by {}, and only BFQ heeds the I/O priority",
                scheduler(sandbox)
            ),
        ];
        let groups = Cgroups {
            trees,
            notes,
            priority: priority(),
        };
        groups.join(DATABASE);
        set_priority((0, 0));
        groups
    }

    /// Moves the calling process into `rel` of each tree ("" the bench's own).
    fn join(&self, rel: &str) {
        for (tree, home) in &self.trees {
            let dir = if rel.is_empty() {
                home.clone()
            } else {
                tree.join(rel)
            };
            fs::write(dir.join("cgroup.procs"), std::process::id().to_string()).unwrap();
        }
    }

    /// `c` as the unit `service` runs it: in its cgroup in the slice, at
    /// the units' nice level and I/O priority, then as `user` if given.
    /// As systemd does, the priority is set before the user is: a user
    /// that is not root may not lower the nice level it inherits, which
    /// it would have to when the benchmark itself runs under `nice`.
    fn service(&self, c: &mut Command, service: &str, user: Option<(u32, u32)>) {
        let procs: Vec<fs::File> = self
            .trees
            .iter()
            .map(|(tree, _)| {
                let path = tree.join(budget::SLICE).join(service).join("cgroup.procs");
                fs::OpenOptions::new().write(true).open(path).unwrap()
            })
            .collect();
        let nice: i32 = value(budget::PRIORITY, "Nice").parse().unwrap();
        let class = match value(budget::PRIORITY, "IOSchedulingClass") {
            "realtime" => 1,
            "best-effort" => 2,
            "idle" => 3,
            other => panic!("unknown IOSchedulingClass {other}"),
        };
        let level: i32 = value(budget::PRIORITY, "IOSchedulingPriority")
            .parse()
            .unwrap();
        // SAFETY: between fork and exec, only system calls on memory and
        // descriptors made before the fork.
        unsafe {
            c.pre_exec(move || {
                for f in &procs {
                    // "0": the writing process, which the kernel checks
                    // against the opener's (root's) rights, whatever uid it
                    // has switched to.
                    if libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setpriority(libc::PRIO_PROCESS as _, 0, nice) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let ioprio = (class << 13) | level;
                if libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some((uid, gid)) = user {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

const IOPRIO_WHO_PROCESS: libc::c_long = 1;

/// The calling process's nice level and I/O priority.
fn priority() -> (i32, i32) {
    // SAFETY: system calls on the calling process, with no pointer.
    unsafe {
        // The system call, unlike libc's, returns 20 - nice: never -1.
        let raw = libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0);
        assert!(raw > 0, "getpriority failed");
        let nice = 20 - raw as i32;
        let ioprio = libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
        assert!(ioprio >= 0, "ioprio_get failed");
        (nice, ioprio as i32)
    }
}

/// Sets the calling process's nice level and I/O priority, as root may.
fn set_priority((nice, ioprio): (i32, i32)) {
    // SAFETY: system calls on the calling process, with no pointer.
    unsafe {
        assert_eq!(libc::setpriority(libc::PRIO_PROCESS as _, 0, nice), 0);
        assert_eq!(
            libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio),
            0
        );
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        set_priority(self.priority);
        self.join("");
        for (tree, _) in &self.trees {
            remove_tree(tree);
        }
    }
}

/// `tree` and its cgroups, deepest first; a cgroup that still holds a
/// process stays.
fn remove_tree(tree: &Path) {
    for dir in walkdir::WalkDir::new(tree)
        .contents_first(true)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_dir())
    {
        let _ = fs::remove_dir(dir.path());
    }
}

/// The trees of earlier benchmarks that ended without removing theirs.
fn sweep() {
    for (_, home) in hierarchies() {
        for entry in fs::read_dir(&home).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("timerapps-bench-") {
                if !Path::new("/proc").join(pid).exists() {
                    remove_tree(&entry.path());
                }
            }
        }
    }
}

/// What runs beside pgbench in one timed run.
#[derive(Clone, Copy, PartialEq)]
enum Beside {
    Nothing,
    Dump,
    Drill,
    /// The dump without the units' settings: beside the database, at its
    /// priority.
    PlainDump,
    /// No job: a session that only holds a snapshot, as pg_dump's does for
    /// the whole dump, for as long as the dumps with the units' settings
    /// lasted beside pgbench. What it costs is the database's own (its old
    /// row versions wait for the snapshot to end), which no setting of the
    /// job's takes back.
    Snapshot,
}

/// One timed run of pgbench.
struct Timed {
    tps: f64,
    /// The 95th percentile of the transactions' latencies, in seconds.
    p95: f64,
    /// Each job's wall time, when it ended while pgbench still ran.
    jobs: Vec<f64>,
}

/// pgbench's "tps = N (without initial connection time)".
fn tps(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench's output:\n{out}"))
}

/// The 95th percentile of the latencies in pgbench's per-transaction logs
/// in `dir` (one per thread: "client transaction latency_us script ...").
fn p95(dir: &Path) -> f64 {
    let mut latencies: Vec<u64> = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("tx.") {
            continue;
        }
        let text = fs::read_to_string(entry.path()).unwrap();
        latencies.extend(
            text.lines()
                .filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok()),
        );
    }
    assert!(!latencies.is_empty(), "no transaction logged in {dir:?}");
    latencies.sort_unstable();
    let at = (latencies.len() * 95).div_ceil(100) - 1;
    latencies[at] as f64 / 1e6
}

struct Bench<'a> {
    pg: &'a Postgres,
    db: String,
    seconds: u32,
    groups: &'a Cgroups,
    /// The dump the drills restore.
    drill_dumps: PathBuf,
    /// The drill's program, where the user it runs as can reach it.
    drill: PathBuf,
    /// How long each snapshot of `Beside::Snapshot` is held.
    hold: std::cell::Cell<Duration>,
}

impl Bench<'_> {
    /// dump-database at its default settings, with pg_dump of the database.
    fn dump(&self, dir: &Path) -> Command {
        let mut c = self.pg.superuser(job("dump-database"));
        let command = format!("{} {}", self.pg.program("pg_dump").display(), self.db);
        c.env("DUMP_DIR", dir).env("DUMP_COMMAND", command);
        c
    }

    fn job(&self, beside: Beside, dir: &Path) -> Option<Command> {
        let dumps = dir.join("dumps");
        let c = match beside {
            Beside::Nothing => return None,
            Beside::Snapshot => {
                let mut c = self.pg.superuser(cmd(self.pg.program("psql")));
                let sleep = format!("SELECT pg_sleep({})", self.hold.get().as_secs_f64());
                // pg_dump's transaction: its snapshot is taken at the first
                // query and held until it ends.
                c.args(["-X", "-q", "-d", &self.db])
                    .args(["-c", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"])
                    .args(["-c", "SELECT count(*) FROM pgbench_branches"])
                    .args(["-c", &sleep, "-c", "COMMIT"]);
                c
            }
            Beside::PlainDump => {
                fs::create_dir_all(&dumps).unwrap();
                self.dump(&dumps)
            }
            Beside::Dump => {
                fs::create_dir_all(&dumps).unwrap();
                let mut c = self.dump(&dumps);
                self.groups.service(&mut c, SERVICES[0].1, None);
                c
            }
            Beside::Drill => {
                let tmp = dir.join("drill-tmp");
                fs::create_dir_all(&tmp).unwrap();
                run(cmd("chown").arg("postgres:postgres").arg(&tmp)).ok();
                let mut c = cmd(&self.drill);
                c.env("DUMP_DIR", &self.drill_dumps)
                    .env("DRILL_TMPDIR", &tmp)
                    .env("HOME", &tmp);
                let postgres = harness::user_ids("postgres");
                self.groups.service(&mut c, SERVICES[1].1, Some(postgres));
                c
            }
        };
        Some(c)
    }

    /// pgbench for the run's seconds in `dir`, with `beside` run again and
    /// again until it ends.
    fn timed(&self, beside: Beside, dir: &Path) -> Timed {
        // What pgbench does before a run, done here so that the job starts
        // with the clients: an empty history, the small tables vacuumed.
        for sql in [
            "TRUNCATE pgbench_history",
            "VACUUM pgbench_branches",
            "VACUUM pgbench_tellers",
            "CHECKPOINT",
        ] {
            self.pg.sql(&self.db, sql);
        }
        let out = dir.join("pgbench.out");
        let mut bench = self
            .pg
            .superuser(cmd(self.pg.program("pgbench")))
            .args(["-n", "-c", CLIENTS, "-j", "2", "-T"])
            .arg(self.seconds.to_string())
            .args(["--log", "--log-prefix"])
            .arg(dir.join("tx"))
            .arg(&self.db)
            .current_dir(dir)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut jobs = Vec::new();
        while let Some(mut c) = self.job(beside, dir) {
            let started = Instant::now();
            start(&mut c).wait(JOB_TIMEOUT).ok();
            if bench.try_wait().unwrap().is_some() {
                break;
            }
            jobs.push(started.elapsed().as_secs_f64());
        }
        assert!(bench.wait().unwrap().success(), "pgbench failed");
        let timed = Timed {
            tps: tps(&fs::read_to_string(&out).unwrap()),
            p95: p95(dir),
            jobs,
        };
        // The logs and dumps, which add up over the rounds.
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                fs::remove_dir_all(path).unwrap();
            } else if entry.file_name().to_string_lossy().starts_with("tx.") {
                fs::remove_file(path).unwrap();
            }
        }
        timed
    }
}

/// The rows of this part, and what of the units' settings was in force.
pub fn production(plan: &Plan) -> (Vec<Row>, Vec<String>) {
    let sb = &Sandbox::new("bench-production");
    // Made first, dropped last: the server stops before its cgroup goes.
    let groups = Cgroups::new(&sb.path(""));
    let pg = Postgres::start(sb);
    let db = crate::database(&pg, plan.production_scale);
    let drill_dumps = sb.mkdir("drill-dumps");
    let bench = Bench {
        pg: &pg,
        db,
        seconds: plan.production_seconds,
        groups: &groups,
        drill_dumps: drill_dumps.clone(),
        drill: crate::reachable_job(sb, "dump-database-drill"),
        hold: Default::default(),
    };
    let started = Instant::now();
    run(&mut bench.dump(&drill_dumps)).ok();
    let idle = started.elapsed().as_secs_f64();
    // Until a dump with the settings has run beside pgbench (each round
    // starts one later, so in the first round it runs before the snapshot).
    bench.hold.set(started.elapsed());
    run(cmd("chown")
        .arg("-R")
        .arg("postgres:postgres")
        .arg(&drill_dumps))
    .ok();
    let raw = crate::newest_dump(&drill_dumps);
    let order = [
        Beside::Nothing,
        Beside::Dump,
        Beside::Drill,
        Beside::PlainDump,
        Beside::Snapshot,
    ];
    let mut runs: Vec<(Beside, Timed)> = Vec::new();
    // How long the dumps with the settings lasted beside pgbench; one that
    // outlasted its run counts as long as the run, the least it took.
    let mut lifetimes = Vec::new();
    for round in 0..plan.production_rounds {
        // Each round starts one later, so that no kind always follows another.
        for i in 0..order.len() {
            let beside = order[(round + i) % order.len()];
            let dir = sb.mkdir(&format!("round{round}-{i}"));
            let timed = bench.timed(beside, &dir);
            if beside == Beside::Dump {
                if timed.jobs.is_empty() {
                    lifetimes.push(f64::from(plan.production_seconds));
                }
                lifetimes.extend(&timed.jobs);
                bench
                    .hold
                    .set(Duration::from_secs_f64(median(lifetimes.clone())));
            }
            runs.push((beside, timed));
        }
    }
    let of = |beside: Beside| runs.iter().filter(move |(b, _)| *b == beside);
    let tps = |b| median(of(b).map(|(_, t)| t.tps).collect());
    let p95 = |b| median(of(b).map(|(_, t)| t.p95).collect());
    let job_time = |b| {
        let times: Vec<f64> = of(b).flat_map(|(_, t)| t.jobs.clone()).collect();
        (!times.is_empty()).then(|| (median(times.clone()), times.len()))
    };
    let (alone_tps, alone_p95) = (tps(Beside::Nothing), p95(Beside::Nothing));
    let ms = |s: f64| format!("{:.1} ms", s * 1e3);
    let secs = |s: f64| format!("{s:.2} s");
    let hold = bench.hold.get().as_secs_f64();
    let mut rows = Vec::new();
    for (beside, what, tps_target, p95_target) in [
        (
            Beside::Dump,
            "a dump (default settings) runs, with the units' settings".to_owned(),
            Target::AtLeast(0.85),
            Target::AtMost(1.5),
        ),
        (
            Beside::Drill,
            "a drill of such a dump runs, with the units' settings".to_owned(),
            Target::AtLeast(0.80),
            Target::AtMost(1.5),
        ),
        (
            Beside::PlainDump,
            "the same dump runs without them (beside the database, at its priority)".to_owned(),
            Target::None,
            Target::None,
        ),
        (
            Beside::Snapshot,
            format!(
                "no job runs, but a session holds a snapshot as pg_dump's does, for as long as \
                 the dumps with the settings lasted ({}), again and again",
                secs(hold)
            ),
            Target::None,
            Target::None,
        ),
    ] {
        rows.push(Row {
            what: format!(
                "pgbench TPS (scale {}, {CLIENTS} clients, {} s) while {what}",
                plan.production_scale, plan.production_seconds
            ),
            ours: format!("{:.0} tps", tps(beside)),
            reference: format!("alone {alone_tps:.0} tps"),
            ratio: tps(beside) / alone_tps,
            target: tps_target,
        });
        rows.push(Row {
            what: "its p95 latency, from the per-transaction logs".into(),
            ours: ms(p95(beside)),
            reference: format!("alone {}", ms(alone_p95)),
            ratio: p95(beside) / alone_p95,
            target: p95_target,
        });
    }
    let size = crate::mb(fs::metadata(&raw).unwrap().len());
    let outlasted = lifetimes.len() - job_time(Beside::Dump).map_or(0, |(_, n)| n);
    let lasted = median(lifetimes);
    rows.push(Row {
        what: format!(
            "the dump itself ({size} gzip) while pgbench runs, with the units' settings, \
             against the same dump on the idle host ({outlasted} of the dumps outlasted their \
             pgbench run and count as long as it)"
        ),
        ours: secs(lasted),
        reference: format!("idle {}", secs(idle)),
        ratio: lasted / idle,
        target: Target::None,
    });
    match (job_time(Beside::Dump), job_time(Beside::PlainDump)) {
        (Some((ours, n)), Some((plain, m))) => rows.push(Row {
            what: format!(
                "the dump itself ({size} gzip) while pgbench runs, with the units' settings \
                 against without them ({n} and {m} dumps)"
            ),
            ours: secs(ours),
            reference: format!("without {}", secs(plain)),
            ratio: ours / plain,
            target: Target::None,
        }),
        _ => eprintln!("no dump ended within a pgbench run: run longer to time the dump"),
    }
    let mut notes = groups.notes.clone();
    notes.push(
        "the database runs with fsync=off, as the tests start it: its commits wait on no disk"
            .into(),
    );
    drop(bench);
    drop(pg);
    (rows, notes)
}
