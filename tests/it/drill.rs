//! Restore drills: the newest good dump of real pg_dump, pg_dumpall,
//! pg_dump -Fc, mariadb-dump and sqlite3 output restored into a throwaway
//! server and held to its manifest; damaged, edited and unrestorable dumps
//! fail with a reason that names what is wrong; a killed drill leaves no
//! server, and the next one sweeps its files; a dump that grows when
//! restored is stopped before the free space falls below the reserve.

use crate::command::valid_status;
use crate::container::{Container, Host, Release};
use crate::dump::{dump_job, postgres_with_shop, published, with_pg, SmallDisk};
use crate::harness::{
    cmd, is_root, job, run, sh, start, user_ids, wait_for, Run, Sandbox, TIMEOUT,
};
use crate::mariadb::Mariadb;
use crate::postgres::Postgres;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use jobkit::catalogue::DRILL;
use jobkit::dumpfile::manifest::{self, Table};
use jobkit::dumpfile::{Manifest, DEFAULT_DIR};
use jobkit::family::{postgresql, sqlite};
use jobkit::record::drill::{Drill, DrillResult, Record, VERSION};

const DRILLS_DIR: &str = DRILL.records_dir;
const DRILL_RECORD: &str = DRILL.record;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A drill of the dumps in `dir`, made in `tmp`, recording to `result`.
fn drill(dir: &Path, tmp: &Path, result: &Path) -> Command {
    let mut c = job("dump-database-drill");
    c.env("DUMP_DIR", dir)
        .env("DRILL_TMPDIR", tmp)
        .env("DRILL_RESULT", result);
    c
}

fn record(path: &Path) -> Record {
    jobkit::record::read::<Record>(path)
        .unwrap()
        .expect("a drill record")
}

/// The manifest beside `dump`.
fn manifest_path(dump: &Path) -> PathBuf {
    let name = dump.file_name().unwrap().to_string_lossy();
    dump.with_file_name(format!("{name}{}", manifest::SUFFIX))
}

fn read_manifest(dump: &Path) -> Manifest {
    Manifest::from_json(&fs::read_to_string(manifest_path(dump)).unwrap()).unwrap()
}

/// Rewrites the manifest beside `dump` with `change` made.
fn change_manifest(dump: &Path, change: impl FnOnce(&mut Manifest)) {
    let mut m = read_manifest(dump);
    change(&mut m);
    fs::write(manifest_path(dump), m.to_json()).unwrap();
}

/// Edits the SQL of a gzip dump with `edit`, and its manifest's SHA-256
/// and size with it, so that only what the edit did can fail the drill.
fn edit_dump(dump: &Path, edit: impl FnOnce(String) -> String) {
    let mut text = String::new();
    MultiGzDecoder::new(fs::File::open(dump).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(edited.as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    fs::write(dump, &bytes).unwrap();
    change_manifest(dump, |m| {
        m.sha256 = manifest::hex(&Sha256::digest(&bytes));
        m.stored = bytes.len() as u64;
        m.read = edited.len() as u64;
    });
}

/// Puts `dump` and its manifest back as they are now, each time it is
/// called: after a test has damaged or edited them.
fn kept(dump: &Path) -> impl Fn() + '_ {
    let (bytes, manifest) = (
        fs::read(dump).unwrap(),
        fs::read(manifest_path(dump)).unwrap(),
    );
    move || {
        fs::write(dump, &bytes).unwrap();
        fs::write(manifest_path(dump), &manifest).unwrap();
    }
}

/// Checks a drill that passed: its last line, and its record.
#[track_caller]
fn passed(r: &Run, result: &Path, tables: u64, rows: u64) -> Record {
    r.ok();
    let last = r.stdout.lines().last().unwrap_or_default();
    let plural = |n: u64, thing: &str| match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    };
    assert!(
        last.starts_with("dump-database-drill: restored ")
            && last.contains(&format!(
                ": {}, {}; ",
                plural(tables, "table"),
                plural(rows, "row")
            )),
        "{r}"
    );
    let rec = record(result);
    assert_eq!(rec.result, DrillResult::Passed, "{r}");
    assert_eq!((rec.tables, rec.rows), (Some(tables), Some(rows)), "{r}");
    assert_eq!(rec.last_success, Some(rec.started));
    rec
}

/// Checks a drill that failed with `reason` in its last line and record.
#[track_caller]
fn failed(r: &Run, result: &Path, code: i32, reason: &str) -> Record {
    r.expect(code).stderr_has(reason);
    let rec = record(result);
    assert_eq!(rec.result, DrillResult::Failed, "{r}");
    assert!(
        rec.reason.as_deref().is_some_and(|s| s.contains(reason)),
        "{r}\n{rec:?}"
    );
    rec
}

#[test]
fn sqlite_drills_pass_hold_dumps_to_their_manifests_and_fail_with_the_reason() {
    let s = SqliteDrills::new();
    let (path, good) = without_a_dump_it_fails_and_a_good_dump_passes(&s);
    each_fault_fails_with_its_reason_and_keeps_the_last_success(&s, &path, &good);
    what_a_killed_drill_left_is_swept_by_the_next(&s);
    a_suspect_dump_is_never_drilled_and_one_without_manifest_is_unchecked(&s, &path);
    more_tables_than_one_compound_select_takes_pass(&s);
    malformed_drill_settings_exit_2_and_record_nothing(&s);
}

/// An SQLite database of three tables, 1001 rows, in a sandbox, and the
/// directories an unprivileged drill of its dumps uses.
struct SqliteDrills {
    sb: Sandbox,
    dir: PathBuf,
    tmp: PathBuf,
    results: PathBuf,
    result: PathBuf,
    dump: String,
}

impl SqliteDrills {
    fn new() -> SqliteDrills {
        let sb = Sandbox::new("drill-sqlite");
        let db = sb.path("app.db");
        sh(&format!(
            "sqlite3 '{}' \"CREATE TABLE t (n int, s text); \
             INSERT INTO t VALUES (1, 'a'), (2, 'it''s'); CREATE TABLE \\\"odd name\\\" (a); \
             INSERT INTO \\\"odd name\\\" VALUES (x'00ff'); CREATE TABLE e (n int); \
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 998) \
             INSERT INTO t SELECT i + 2, 'row ' || i FROM c;\"",
            db.display()
        ));
        let results = sb.mkdir("results");
        SqliteDrills {
            dir: sb.mkdir("dumps"),
            tmp: sb.mkdir("tmp"),
            result: results.join("drill.json"),
            results,
            dump: format!("sqlite3 -readonly {} .dump", db.display()),
            sb,
        }
    }

    /// An unprivileged drill of the dumps in `dir`.
    fn drill_of(&self, dir: &Path) -> Command {
        let mut c = drill(dir, &self.tmp, &self.result);
        unprivileged(&mut c, &[dir, &self.tmp, &self.results]);
        c
    }

    /// An unprivileged dump of `command` into `dir`: what it published.
    fn dump_into(&self, dir: &Path, command: &str) -> (PathBuf, usize) {
        let mut c = dump_job(dir, command);
        unprivileged(&mut c, &[dir]);
        published(&run(&mut c))
    }
}

/// Returns the good dump and its drill's record.
fn without_a_dump_it_fails_and_a_good_dump_passes(s: &SqliteDrills) -> (PathBuf, Record) {
    let (dir, tmp, result) = (&s.dir, &s.tmp, &s.result);
    let r = run(&mut s.drill_of(dir));
    failed(&r, result, 1, "no good dump of dump in");
    assert_eq!(record(result).last_success, None);

    let (path, _) = s.dump_into(dir, &s.dump);
    let r = run(&mut s.drill_of(dir));
    let good = passed(&r, result, 3, 1001);
    assert!(r.stdout.contains("every table's rows equal"), "{r}");
    assert_eq!(good.format, Some(sqlite::SQLITE));
    assert!(good.server.as_deref().unwrap().starts_with("SQLite 3."));
    assert!(good.compared);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(good.dump.as_deref(), Some(name.as_str()));
    // Nothing is left but the lock.
    assert_eq!(
        sh(&format!("ls -A '{}'", tmp.display())),
        ".timerapps-drill-dump.lock\n"
    );
    (path, good)
}

/// Each fault fails the drill with its own reason, and the record keeps
/// the last success; the dump `path` is put back after each.
fn each_fault_fails_with_its_reason_and_keeps_the_last_success(
    s: &SqliteDrills,
    path: &Path,
    good: &Record,
) {
    let (dir, result) = (&s.dir, &s.result);
    let restore = kept(path);
    let mut flipped = fs::read(path).unwrap();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    fs::write(path, &flipped).unwrap();
    let r = run(&mut s.drill_of(dir));
    let rec = failed(&r, result, 1, "is damaged");
    assert_eq!(rec.last_success, Some(good.started));

    restore();
    edit_dump(path, |sql| {
        sql.replacen("INSERT INTO t VALUES(2,", "-- (2,", 1)
    });
    let r = run(&mut s.drill_of(dir));
    failed(
        &r,
        result,
        1,
        "table t: 999 rows restored, 1000 in the manifest",
    );

    restore();
    edit_dump(path, |sql| {
        sql.replacen(
            "CREATE TABLE e",
            "INSERT INTO nosuch VALUES(1);\nCREATE TABLE e",
            1,
        )
    });
    let r = run(&mut s.drill_of(dir));
    failed(&r, result, 1, "no such table: nosuch");
    assert!(r.stderr.contains("sqlite3 failed"), "{r}");

    restore();
    change_manifest(path, |m| {
        m.tables.as_mut().unwrap().push(Table {
            database: None,
            table: "ghost".into(),
            rows: Some(1),
        })
    });
    let r = run(&mut s.drill_of(dir));
    failed(
        &r,
        result,
        1,
        "table ghost is in the manifest but not in the restored database",
    );

    restore();
}

/// What a killed drill left is swept by the next, which passes.
fn what_a_killed_drill_left_is_swept_by_the_next(s: &SqliteDrills) {
    let (dir, result) = (&s.dir, &s.result);
    let left = s.sb.mkdir("tmp/timerapps-drill-dump/data");
    fs::write(left.join("big"), vec![0; 4096]).unwrap();
    let r = run(&mut s.drill_of(dir));
    passed(&r, result, 3, 1001);
    assert!(
        r.stdout
            .contains("left by an earlier drill that was killed"),
        "{r}"
    );
    assert!(!left.exists());
}

/// A suspect dump is never drilled: the good one before it, `path`, is.
/// Without a manifest, a dump is drilled unchecked.
fn a_suspect_dump_is_never_drilled_and_one_without_manifest_is_unchecked(
    s: &SqliteDrills,
    path: &Path,
) {
    let (dir, result) = (&s.dir, &s.result);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (newer, _) = s.dump_into(dir, &s.dump);
    change_manifest(&newer, |m| m.verdict = manifest::Verdict::Suspect);
    let r = run(&mut s.drill_of(dir));
    assert_eq!(
        passed(&r, result, 3, 1001).dump.as_deref(),
        Some(name.as_str())
    );

    // Unchecked: without a manifest it reports what it found.
    fs::remove_file(manifest_path(path)).unwrap();
    fs::remove_file(&newer).unwrap();
    fs::remove_file(manifest_path(&newer)).unwrap();
    let r = run(&mut s.drill_of(dir));
    assert!(!passed(&r, result, 3, 1001).compared);
    assert!(r.stdout.contains("nothing to compare with"), "{r}");
}

/// More tables than SQLite takes in one compound SELECT (500).
fn more_tables_than_one_compound_select_takes_pass(s: &SqliteDrills) {
    let (sb, result) = (&s.sb, &s.result);
    let many = sb.path("many.db");
    let script: String = (0..600)
        .map(|i| format!("CREATE TABLE t{i} (n int); INSERT INTO t{i} VALUES ({i});\n"))
        .collect();
    fs::write(sb.path("many.sql"), script).unwrap();
    sh(&format!(
        "sqlite3 '{}' < '{}'",
        many.display(),
        sb.path("many.sql").display()
    ));
    let many_dir = sb.mkdir("many-dumps");
    let dump_many = format!("sqlite3 -readonly {} .dump", many.display());
    s.dump_into(&many_dir, &dump_many);
    let r = run(&mut s.drill_of(&many_dir));
    passed(&r, result, 600, 600);
}

/// Malformed settings: exit 2, nothing recorded.
fn malformed_drill_settings_exit_2_and_record_nothing(s: &SqliteDrills) {
    let (dir, result) = (&s.dir, &s.result);
    fs::remove_file(result).unwrap();
    let r = run(s.drill_of(dir).env("DRILL_TMPDIR", "tmp"));
    r.expect(2).stderr_has("DRILL_TMPDIR=\"tmp\" is invalid");
    let r = run(s.drill_of(dir).env("DRILL_RESERVE", "5 GB"));
    r.expect(2)
        .stderr_has("DRILL_RESERVE=\"5 GB\" is invalid: expected a percentage");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert!(!result.exists());
}

/// Every process whose command line or environment names `path`.
fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == std::process::id().to_string() {
            continue;
        }
        let read = |f: &str| {
            String::from_utf8_lossy(&fs::read(entry.path().join(f)).unwrap_or_default())
                .replace('\0', " ")
        };
        let (cmdline, environ) = (read("cmdline"), read("environ"));
        if cmdline.contains(&needle) || environ.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// `c` as the user `postgres`: PostgreSQL's server does not run as root.
fn as_postgres(c: &mut Command) -> &mut Command {
    let (uid, gid) = user_ids("postgres");
    c.uid(uid).gid(gid)
}

/// Gives `dir` and everything below it to the user `postgres`.
fn give_to_postgres(dir: &Path) {
    let (uid, gid) = user_ids("postgres");
    for entry in walkdir::WalkDir::new(dir) {
        chown(entry.unwrap().path(), Some(uid), Some(gid)).unwrap();
    }
}

/// `c` as a user that is not root, as the drill's unit runs it, when the
/// tests run as root (no drill runs as root): the user `postgres`, given
/// `dirs` first.
fn unprivileged(c: &mut Command, dirs: &[&Path]) {
    if is_root() {
        for dir in dirs {
            give_to_postgres(dir);
        }
        as_postgres(c);
    }
}

/// `drill` run by `sh -c script` (which ends in `exec "$0"`) in a mount
/// namespace of its own, as root: to hide or shrink a directory for it.
fn in_namespace(drill: &Command, script: &str) -> Command {
    let mut c = cmd("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-ec", script])
        .arg(drill.get_program());
    for (k, v) in drill.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

#[test]
#[ignore = "starts PostgreSQL as root: tests/run"]
fn postgres_drills_of_plain_custom_and_cluster_dumps_pass_without_the_source_server() {
    assert!(is_root(), "run as root (tests/run)");
    let s = PgDrills::new();
    plain_custom_and_cluster_dumps_pass(&s);
    each_fault_in_a_plain_dump_is_named(&s);
    no_server_or_too_little_space_names_its_remedy(&s);
    a_drill_killed_mid_restore_is_swept_by_the_next(&s);
}

/// Plain, custom and cluster dumps of a shop, and a plain one of a big
/// table, made before the production server went down; and where drills
/// of them, as postgres, work and record.
struct PgDrills {
    sb: Sandbox,
    plain: PathBuf,
    custom: PathBuf,
    cluster: PathBuf,
    big: PathBuf,
    tmp: PathBuf,
    result: PathBuf,
}

impl PgDrills {
    fn new() -> PgDrills {
        let sb = Sandbox::new("drill-pg");
        let pg = postgres_with_shop(&sb);
        // Objects owned by roles that only the production cluster has.
        pg.sql(
            "shop",
            "CREATE ROLE app; CREATE ROLE \"Read Only\"; ALTER TABLE customers OWNER TO app; \
             GRANT SELECT ON orders TO \"Read Only\"",
        );
        pg.sql("postgres", "CREATE DATABASE big");
        pg.sql(
            "big",
            "CREATE TABLE big AS SELECT i, md5(i::text) AS h, repeat('x', 40) AS pad \
             FROM generate_series(1, 600000) i",
        );
        let pg_dump = pg.program("pg_dump").display().to_string();
        let pg_dumpall = pg.program("pg_dumpall").display().to_string();
        let plain = sb.mkdir("plain");
        let custom = sb.mkdir("custom");
        let cluster = sb.mkdir("cluster");
        let big = sb.mkdir("big");
        for (dir, command, settings) in [
            (&plain, format!("{pg_dump} shop"), vec![]),
            (
                &custom,
                format!("{pg_dump} -Fc shop"),
                vec![("DUMP_COMPRESS", "none"), ("DUMP_EXTENSION", "dump")],
            ),
            (&cluster, pg_dumpall, vec![("DUMP_COMPRESS", "zstd")]),
            (&big, format!("{pg_dump} big"), vec![]),
        ] {
            let mut c = dump_job(dir, &command);
            with_pg(&mut c, &pg, "postgres").envs(settings);
            published(&run(&mut c));
        }
        // The production server is down for every drill.
        drop(pg);
        let tmp = sb.mkdir("tmp");
        let results = sb.mkdir("results");
        give_to_postgres(&sb.path(""));
        let result = results.join("drill.json");
        PgDrills {
            sb,
            plain,
            custom,
            cluster,
            big,
            tmp,
            result,
        }
    }

    /// A drill of the dumps in `dir`, as postgres.
    fn drill_of(&self, dir: &Path) -> Command {
        let mut c = drill(dir, &self.tmp, &self.result);
        as_postgres(&mut c);
        c
    }
}

fn plain_custom_and_cluster_dumps_pass(s: &PgDrills) {
    let r = run(&mut s.drill_of(&s.plain));
    let rec = passed(&r, &s.result, 2, 9000);
    assert!(rec.compared && rec.server.as_deref().unwrap().starts_with("PostgreSQL "));
    assert_eq!(rec.format, Some(postgresql::PLAIN));
    // The roles the dump only names, made empty, are said: a restore on a
    // new host fails on the first of them.
    let empty = ["Read Only", "app", "postgres"].map(String::from).to_vec();
    assert_eq!(rec.empty_roles.as_ref(), Some(&empty), "{r}");
    assert!(
        r.stdout.contains(
            "the dump names 3 roles it does not make, which the drill made \
             empty (Read Only, app, postgres): back up the roles too"
        ),
        "{r}"
    );
    let r = run(s.drill_of(&s.custom).env("DUMP_EXTENSION", "dump"));
    let rec = passed(&r, &s.result, 2, 9000);
    assert!(!rec.compared, "custom format has no row counts");
    assert!(r.stdout.contains("nothing to compare with"), "{r}");
    assert_eq!(rec.empty_roles.as_ref(), Some(&empty), "{r}");
    // The cluster holds both databases, and makes its own roles.
    let r = run(&mut s.drill_of(&s.cluster));
    let rec = passed(&r, &s.result, 3, 609000);
    assert_eq!(rec.format, Some(postgresql::CLUSTER));
    assert_eq!(rec.empty_roles, None, "{r}");
    assert!(!r.stdout.contains("made empty"), "{r}");
}

/// Faults, each named.
fn each_fault_in_a_plain_dump_is_named(s: &PgDrills) {
    let path = PathBuf::from(sh(&format!("ls '{}'/*.gz", s.plain.display())).trim());
    let restore = kept(&path);
    edit_dump(&path, |sql| {
        let at = sql.find("\n1\t2\t1.25\t").unwrap() + 1;
        let end = at + sql[at..].find('\n').unwrap() + 1;
        format!("{}{}", &sql[..at], &sql[end..])
    });
    let r = run(&mut s.drill_of(&s.plain));
    failed(
        &r,
        &s.result,
        1,
        "table public.orders: 5999 rows restored, 6000 in the manifest",
    );
    restore();
    edit_dump(&path, |sql| {
        sql.replacen(
            "CREATE TABLE public.orders",
            "CREATE TABLE nosuch.x (a int);\n\nCREATE TABLE public.orders",
            1,
        )
    });
    let r = run(&mut s.drill_of(&s.plain));
    failed(&r, &s.result, 1, "schema \"nosuch\" does not exist");
    assert!(r.stderr.contains("psql failed"), "{r}");
    restore();
    edit_dump(&path, |sql| {
        sql.replacen(
            "-- Dumped by pg_dump version ",
            "-- Dumped by pg_dump version 99.",
            1,
        )
        .replacen("version 99.1", "version 99.", 1)
    });
    let r = run(&mut s.drill_of(&s.plain));
    failed(
        &r,
        &s.result,
        78,
        "install the Debian package postgresql-99",
    );
    restore();
}

/// No server installed: the package to install, exit 78. Too little
/// space: the directory and what is needed, exit 73.
fn no_server_or_too_little_space_names_its_remedy(s: &PgDrills) {
    // No server installed: the package to install, exit 78.
    let hidden = in_namespace(
        &s.drill_of(&s.plain),
        "mount -t tmpfs tmpfs /usr/lib/postgresql; exec setpriv --reuid=postgres \
         --regid=postgres --clear-groups \"$0\"",
    );
    let r = run(&mut { hidden });
    failed(&r, &s.result, 78, "install the Debian package postgresql");
    // Too little space: the directory and what is needed, exit 73.
    let small = s.sb.mkdir("small");
    let mut shrunk = in_namespace(
        s.drill_of(&s.plain).env("DRILL_TMPDIR", &small),
        &format!(
            "mount -t tmpfs -o size=1m,mode=1777 tmpfs '{}'; exec setpriv --reuid=postgres \
             --regid=postgres --clear-groups \"$0\"",
            small.display()
        ),
    );
    let r = run(&mut shrunk);
    failed(
        &r,
        &s.result,
        73,
        "set DRILL_TMPDIR to a directory on a larger disk",
    );
    assert!(
        r.stderr.contains(&format!("{} has ", small.display())),
        "{r}"
    );
}

/// Killed in the middle of its restore: its server dies with it, and the
/// next drill sweeps its files and passes.
fn a_drill_killed_mid_restore_is_swept_by_the_next(s: &PgDrills) {
    let workspace = s.tmp.join("timerapps-drill-dump");
    let running = start(&mut s.drill_of(&s.big));
    wait_for("the drill's psql", TIMEOUT, || {
        processes_naming(&workspace)
            .iter()
            .any(|p| p.contains("psql") && p.contains("ON_ERROR_STOP"))
    });
    std::thread::sleep(Duration::from_millis(300));
    running.signal(libc::SIGKILL);
    let killed = running.wait(TIMEOUT);
    assert_eq!(killed.status.code(), None, "{killed}");
    wait_for(
        "the drill's server to die with it",
        Duration::from_secs(10),
        || processes_naming(&workspace).is_empty(),
    );
    assert!(workspace.join("data").exists(), "the killed drill's files");
    let r = run(&mut s.drill_of(&s.big));
    passed(&r, &s.result, 1, 600000);
    assert!(
        r.stdout
            .contains("left by an earlier drill that was killed"),
        "{r}"
    );
    assert!(!workspace.exists());
}

/// Samples the free space of a file system every millisecond, as the
/// drill's watch reads it (`statvfs`'s `f_bavail`), until [`Poller::least`].
struct Poller {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Poller {
    fn start(dir: &Path) -> Poller {
        let done = Arc::new(AtomicBool::new(false));
        let (dir, stop) = (dir.to_owned(), Arc::clone(&done));
        let thread = std::thread::spawn(move || {
            let mut least = u64::MAX;
            while !stop.load(Ordering::Relaxed) {
                least = least.min(fs2::available_space(&dir).unwrap());
                std::thread::sleep(Duration::from_millis(1));
            }
            least
        });
        Poller { done, thread }
    }

    /// The least free space it saw.
    fn least(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

const MIB: u64 = 1 << 20;

/// Drills the dumps in `dir` on the 512 MiB tmpfs `disk` with `reserve`
/// (None: the default), which keeps `kept` free and reads as `said`: the
/// drill stops before the free space falls below it, with the line that
/// names the directory, the space taken and the reserve, and leaves nothing
/// but its lock.
fn stops_at_the_reserve(
    drill: &mut Command,
    disk: &Path,
    result: &Path,
    reserve: Option<&str>,
    kept: u64,
    said: &str,
) {
    assert_eq!(
        fs2::total_space(disk).unwrap(),
        512 * MIB,
        "the test's tmpfs"
    );
    if let Some(reserve) = reserve {
        drill.env("DRILL_RESERVE", reserve);
    }
    let poller = Poller::start(disk);
    let r = run(drill);
    let least = poller.least();
    failed(
        &r,
        result,
        73,
        &format!(
            "stopped the restore before {} ran short: the drill had taken ",
            disk.display()
        ),
    );
    r.stderr_has(&format!(
        "near the {} the drill keeps free ({said}",
        jobkit::human::si(kept)
    ))
    .stderr_has("the restore was stopped and its files removed");
    assert!(
        least >= kept,
        "the free space fell to {least}, below the reserve of {kept}\n{r}"
    );
    assert_eq!(
        sh(&format!("ls -A '{}'", disk.display())),
        ".timerapps-drill-dump.lock\n"
    );
    assert!(processes_naming(disk).is_empty());
}

#[test]
#[ignore = "starts PostgreSQL and mounts a tmpfs, as root: tests/run"]
fn a_postgres_drill_that_would_fill_its_file_system_stops_above_the_reserve() {
    assert!(is_root(), "run as root (tests/run)");
    let sb = Sandbox::new("drill-pg-reserve");
    let pg = Postgres::start(&sb);
    // A dump of 1.4 kB that takes 660 MB when restored: the view's rows
    // are made again by its REFRESH.
    pg.sql("postgres", "CREATE DATABASE grow");
    pg.sql(
        "grow",
        "CREATE TABLE t (n int); INSERT INTO t VALUES (1); \
         CREATE MATERIALIZED VIEW v AS SELECT g, repeat('x', 1000) AS x \
         FROM generate_series(1, 600000) g",
    );
    let dir = sb.mkdir("dumps");
    let mut c = dump_job(&dir, &format!("{} grow", pg.program("pg_dump").display()));
    let (path, _) = published(&run(with_pg(&mut c, &pg, "postgres")));
    assert!(read_manifest(&path).read < 2000);
    drop(pg);
    let results = sb.mkdir("results");
    give_to_postgres(&sb.path(""));
    let disk = SmallDisk::mount(sb.mkdir("disk"), "size=512m,mode=1777");
    let result = results.join("drill.json");
    let pg_drill = || {
        let mut c = drill(&dir, &disk.0, &result);
        as_postgres(&mut c);
        c
    };
    // By default a quarter of so small a file system; then a tenth.
    stops_at_the_reserve(
        &mut pg_drill(),
        &disk.0,
        &result,
        None,
        128 * MIB,
        "the default of DRILL_RESERVE",
    );
    stops_at_the_reserve(
        &mut pg_drill(),
        &disk.0,
        &result,
        Some("10%"),
        512 * MIB / 100 * 10,
        "DRILL_RESERVE=10%",
    );
}

#[test]
#[ignore = "mounts a tmpfs, as root: tests/run"]
fn a_sqlite_drill_that_would_fill_its_file_system_stops_above_the_reserve() {
    assert!(is_root(), "run as root (tests/run)");
    let sb = Sandbox::new("drill-sqlite-reserve");
    // A stream that makes 660 MB of rows when it is restored.
    let stream = sb.path("grow.sql");
    fs::write(
        &stream,
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(n int, x text);\n\
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 600000) \
         INSERT INTO t SELECT i, printf('%.1000c', 'x') FROM c;\nCOMMIT;\n",
    )
    .unwrap();
    let dir = sb.mkdir("dumps");
    published(&run(&mut dump_job(
        &dir,
        &format!("cat {}", stream.display()),
    )));
    let results = sb.mkdir("results");
    give_to_postgres(&sb.path(""));
    let disk = SmallDisk::mount(sb.mkdir("disk"), "size=512m,mode=1777");
    let result = results.join("drill.json");
    let mut c = drill(&dir, &disk.0, &result);
    as_postgres(&mut c);
    stops_at_the_reserve(
        &mut c,
        &disk.0,
        &result,
        Some("64M"),
        64 * MIB,
        "DRILL_RESERVE=67.1 MB",
    );
}

#[test]
#[ignore = "starts MariaDB as root: tests/run"]
fn mariadb_drills_pass_and_a_statement_that_fails_fails_them() {
    let sb = Sandbox::new("drill-mariadb");
    let db = Mariadb::start(&sb);
    // mariadb-dump writes the trigger between DELIMITER lines, which the
    // client reads in binary mode too, and the blob's bytes escaped.
    db.sql(
        "",
        "CREATE DATABASE shop; USE shop; CREATE TABLE shop.items (id int PRIMARY KEY, name text); \
         INSERT INTO shop.items SELECT seq, concat('item ', seq) FROM seq_1_to_2500; \
         CREATE TABLE shop.`odd name` (a int); INSERT INTO shop.`odd name` VALUES (1), (2); \
         CREATE VIEW shop.v AS SELECT id FROM shop.items; \
         CREATE TRIGGER named BEFORE INSERT ON items FOR EACH ROW \
         SET NEW.name = concat('item ', NEW.id); \
         CREATE TABLE shop.bytes (b blob); INSERT INTO shop.bytes VALUES (0x000d0a5c3b);",
    );
    let dir = sb.mkdir("dumps");
    let command = format!(
        "mariadb-dump --no-defaults --socket={} --user=root shop",
        db.socket.display()
    );
    let (path, _) = published(&run(&mut dump_job(&dir, &command)));
    drop(db);
    let tmp = sb.mkdir("tmp");
    let results = sb.mkdir("results");
    let result = results.join("drill.json");
    let drill_of = |dir: &Path| {
        let mut c = drill(dir, &tmp, &result);
        unprivileged(&mut c, &[dir, &tmp, &results]);
        c
    };
    let r = run(&mut drill_of(&dir));
    let rec = passed(&r, &result, 3, 2503);
    assert!(
        rec.server.as_deref().unwrap().starts_with("MariaDB 1"),
        "{rec:?}"
    );
    assert!(rec.compared);
    edit_dump(&path, |sql| {
        sql.replacen(
            "DROP TABLE IF EXISTS `items`;",
            "INSERT INTO nosuch VALUES (1);",
            1,
        )
    });
    let r = run(&mut drill_of(&dir));
    failed(&r, &result, 1, "Table 'drill.nosuch' doesn't exist");
    assert_eq!(
        sh(&format!("ls -A '{}'", tmp.display())),
        ".timerapps-drill-dump.lock\n"
    );
}

/// What a database's owner, no superuser, plants in their own database:
/// a function that, run by a superuser, runs a program that leaves
/// `marker-TAG` in MARKERS; and every kind of object that restoring runs,
/// calling it: a CHECK constraint, a domain's check and a generated column
/// (run as whoever loads the data), an index expression, a materialized
/// view's query and a trigger that its refresh fires (run as their owner).
const PLANTED: &str = r#"
CREATE FUNCTION planted(tag text, x int) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', 'touch MARKERS/marker-' || tag);
  END IF;
  RETURN true;
END $f$;
-- Index expressions and generated columns take immutable functions only.
CREATE FUNCTION fixed(tag text, x int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
  AS $f$ BEGIN RETURN public.planted(tag, x); END $f$;
CREATE DOMAIN checked AS int CHECK (public.planted('domain', VALUE));
CREATE TABLE t (a int CHECK (public.planted('check', a)), d checked,
                g boolean GENERATED ALWAYS AS (public.fixed('generated', a)) STORED);
CREATE INDEX ON t ((public.fixed('index', a)));
-- The trigger keeps no row, so that the table's rows stay as dumped.
CREATE TABLE log (a int);
CREATE FUNCTION logged() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN PERFORM public.planted('trigger', NEW.a); RETURN NULL; END $$;
CREATE TRIGGER logged BEFORE INSERT ON log FOR EACH ROW EXECUTE FUNCTION public.logged();
CREATE FUNCTION note(x int) RETURNS int LANGUAGE plpgsql
  AS $$ BEGIN INSERT INTO public.log VALUES (x); RETURN x; END $$;
INSERT INTO t (a, d) VALUES (1, 1), (2, 2);
CREATE MATERIALIZED VIEW mv AS
  SELECT a, public.planted('matview', a) AS p, public.note(a) AS n FROM t;
"#;

/// The markers the planted functions left in `dir`.
fn markers(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("marker-"))
        .collect();
    found.sort();
    found
}

/// What a superuser's restore of the planted dump runs: the objects that
/// run as whoever loads the data.
const ARMED: [&str; 3] = ["marker-check", "marker-domain", "marker-generated"];

#[test]
#[ignore = "starts PostgreSQL as root: tests/run"]
fn postgres_drills_run_an_owners_objects_with_no_more_than_the_owners_rights() {
    assert!(is_root(), "run as root (tests/run)");
    let sb = Sandbox::new("drill-pg-planted");
    let pg = Postgres::start(&sb);
    let out = sb.mkdir("out");
    pg.sql("postgres", "CREATE ROLE app LOGIN");
    pg.sql("postgres", "CREATE DATABASE shop OWNER app");
    let planted = PLANTED.replace("MARKERS", &out.display().to_string());
    pg.sql("shop", &format!("SET ROLE app; {planted}"));
    let pg_dump = pg.program("pg_dump").display().to_string();
    let pg_dumpall = pg.program("pg_dumpall").display().to_string();
    let (plain, custom, cluster) = (sb.mkdir("plain"), sb.mkdir("custom"), sb.mkdir("cluster"));
    for (dir, command, settings) in [
        (&plain, format!("{pg_dump} shop"), vec![]),
        (
            &custom,
            format!("{pg_dump} -Fc shop"),
            vec![("DUMP_COMPRESS", "none"), ("DUMP_EXTENSION", "dump")],
        ),
        (&cluster, pg_dumpall, vec![]),
    ] {
        let mut c = dump_job(dir, &command);
        with_pg(&mut c, &pg, "postgres").envs(settings);
        published(&run(&mut c));
    }
    let tmp = sb.mkdir("tmp");
    let results = sb.mkdir("results");
    give_to_postgres(&sb.path(""));
    let result = results.join("drill.json");
    let pg_drill = |dir: &Path| {
        let mut c = drill(dir, &tmp, &result);
        as_postgres(&mut c);
        c
    };

    // Each form restores, every planted object runs, as its owner: the
    // program never does.
    for (dir, extension) in [(&plain, "sql"), (&custom, "dump"), (&cluster, "sql")] {
        let r = run(pg_drill(dir).env("DUMP_EXTENSION", extension));
        passed(&r, &result, 2, 2);
        assert_eq!(markers(&out), Vec::<String>::new(), "{r}");
    }

    // A dump's own psql commands are refused before any runs.
    let path = PathBuf::from(sh(&format!("ls '{}'/*.gz", plain.display())).trim());
    let restore = kept(&path);
    edit_dump(&path, |sql| {
        sql.replacen(
            "CREATE TABLE public.t ",
            &format!(
                "\\! touch {}/marker-shell\n\nCREATE TABLE public.t ",
                out.display()
            ),
            1,
        )
    });
    let r = run(&mut pg_drill(&plain));
    failed(&r, &result, 1, "refused to restore");
    r.stderr_has("the dump holds the psql command \"\\\\! touch ");
    assert_eq!(markers(&out), Vec::<String>::new(), "{r}");
    restore();

    // The dump is armed: restored by a superuser, as drills did, the
    // objects that run as the loading user run the program.
    pg.restore(&path, "control").ok();
    assert_eq!(markers(&out), ARMED);
}

/// A stream that claims to be `sqlite3 .dump` output, with `line` among its
/// statements.
fn sqlite_stream(line: &str) -> String {
    format!(
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(n int);\n\
         INSERT INTO t VALUES(1);\n{line}\nCOMMIT;\n"
    )
}

/// A stream that claims to be `mariadb-dump` output, with `lines`.
fn mariadb_stream(lines: &str) -> String {
    format!(
        "-- MariaDB dump 10.19  Distrib 10.11.11-MariaDB, for debian-linux-gnu (x86_64)\n--\n\
         CREATE TABLE `t` (`x` text);\n{lines}\n-- Dump completed on 2026-12-01 10:00:00\n"
    )
}

/// The lines of a sandbox's tree but the drill's own directories, its
/// record, and the dumps and streams a test made.
fn outside_the_drill(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter(|l| {
            !["./dumps", "./stream-", "./results", "./tmp", ". "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

/// Drills each hostile `stream` (with @OUT@ and @SECRET@ in it) of `kind`,
/// published by a dump job that copies it: each must fail with its
/// reason, and write nothing outside the drill's directory, nor read the
/// secret into it.
fn hostile_streams(kind: &str, streams: &[(String, &str)]) {
    let sb = Sandbox::new(&format!("drill-hostile-{kind}"));
    let out = sb.mkdir("out");
    let secret = out.join("secret");
    fs::write(&secret, "the drill must not read this\n").unwrap();
    let (tmp, results) = (sb.mkdir("tmp"), sb.mkdir("results"));
    let result = results.join("drill.json");
    let fill = |text: &str| {
        text.replace("@OUT@", &out.display().to_string())
            .replace("@SECRET@", &secret.display().to_string())
    };
    let mut c = cmd("cat");
    c.arg(&secret);
    unprivileged(&mut c, &[&out]);
    run(&mut c).ok();
    let before = sb.tree();
    for (i, (stream, reason)) in streams.iter().enumerate() {
        let dir = sb.mkdir(&format!("dumps/{i}"));
        let file = sb.path(&format!("stream-{i}"));
        fs::write(&file, fill(stream)).unwrap();
        published(&run(&mut dump_job(
            &dir,
            &format!("cat {}", file.display()),
        )));
        let mut c = drill(&dir, &tmp, &result);
        unprivileged(&mut c, &[&dir, &tmp, &results, &out]);
        let r = run(&mut c);
        match *reason {
            "" => {
                passed(&r, &result, 3, 1);
            }
            reason => {
                failed(&r, &result, 1, reason);
            }
        }
        assert_eq!(
            outside_the_drill(&sb.tree()),
            outside_the_drill(&before),
            "stream {i} wrote outside the drill:\n{r}"
        );
        assert_eq!(
            sh(&format!("ls -A '{}'", tmp.display())),
            ".timerapps-drill-dump.lock\n",
            "{r}"
        );
    }
}

#[test]
fn a_hostile_sqlite_stream_runs_nothing_outside_the_drill() {
    let safe = "in safe mode";
    let dot = "is a dot-command of the sqlite3 shell";
    let streams: Vec<(String, &str)> = [
        (".shell touch @OUT@/shell", dot),
        (".system touch @OUT@/system", dot),
        ("SELECT writefile('@OUT@/writefile', 'x');", safe),
        (
            "CREATE TABLE copy AS SELECT readfile('@SECRET@') AS x;",
            safe,
        ),
        ("ATTACH '@OUT@/attached.db' AS a;", safe),
        (".output @OUT@/output", dot),
        (".once @OUT@/once", dot),
        (".backup @OUT@/backup.db", dot),
        (".read @SECRET@", dot),
        (".import @SECRET@ t", dot),
        (".open @OUT@/opened.db", dot),
        ("SELECT load_extension('@OUT@/x');", safe),
        // Safe mode lets these two write files.
        (".trace @OUT@/trace\nSELECT 1;", dot),
        (".testcase @OUT@/testcase", dot),
        // A line of `go` ends a statement for the shell; a vertical tab
        // is blank to it.
        ("SELECT 1\ngo\n.trace @OUT@/go", dot),
        ("\x0b\n.trace @OUT@/vt", dot),
        // Safe mode leaves fsdir(), which reads files.
        (
            "CREATE TABLE copy AS SELECT data FROM fsdir('@SECRET@');",
            "names fsdir",
        ),
    ]
    .into_iter()
    .map(|(line, reason)| (sqlite_stream(line), reason))
    .collect();
    hostile_streams("sqlite", &streams);
}

#[test]
#[ignore = "starts MariaDB: tests/run"]
fn a_hostile_mariadb_stream_runs_nothing_outside_the_drill() {
    let command = "Unknown command";
    let sql = "You have an error in your SQL syntax";
    let file_priv = "the FILE privilege";
    let streams: Vec<(String, &str)> = [
        ("\\! touch @OUT@/shell", command),
        ("system touch @OUT@/system", sql),
        ("\\. @SECRET@", command),
        ("\\T @OUT@/tee", command),
        // The client's sandbox lets `edit` and `pager` through.
        ("edit", sql),
        ("\\e", command),
        ("pager touch @OUT@/pager", sql),
        ("SELECT 'x' INTO OUTFILE '@OUT@/outfile';", file_priv),
        ("SELECT 'x' INTO DUMPFILE '@OUT@/dumpfile';", file_priv),
        (
            "LOAD DATA INFILE '@SECRET@' INTO TABLE `t`;",
            "Access denied for user 'drill'",
        ),
        (
            "LOAD DATA LOCAL INFILE '@SECRET@' INTO TABLE `t`;",
            "local infile",
        ),
        (
            "SET GLOBAL general_log_file = '@OUT@/general.log';",
            "Access denied",
        ),
        ("INSTALL SONAME 'ha_connect';", "Can't open shared library"),
        (
            "CREATE TABLE `v` (`a` int);\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ \
             /*!50003 TRIGGER `tr` BEFORE INSERT ON `v` FOR EACH ROW \
             SET GLOBAL general_log_file = '@OUT@/trigger.log' */;\nINSERT INTO `v` VALUES (1);",
            "definer",
        ),
        // Reading a file outside reads nothing (NULL): the drill passes only
        // when both reads came back empty, and DATA DIRECTORY is ignored.
        (
            "CREATE TABLE `leak` (`n` int);\nINSERT INTO `leak` SELECT 1 FROM DUAL \
             WHERE LOAD_FILE('@SECRET@') IS NULL AND LOAD_FILE('/etc/shadow') IS NULL;\n\
             CREATE TABLE `d` (`a` int) DATA DIRECTORY = '@OUT@';",
            "",
        ),
    ]
    .into_iter()
    .map(|(lines, reason)| (mariadb_stream(lines), reason))
    .collect();
    hostile_streams("mariadb", &streams);
}

#[test]
#[ignore = "runs the drill as root: tests/run"]
fn no_drill_runs_as_root() {
    assert!(is_root(), "run as root (tests/run)");
    let sb = Sandbox::new("drill-root");
    let (tmp, results) = (sb.mkdir("tmp"), sb.mkdir("results"));
    let result = results.join("drill.json");
    let streams = [
        sqlite_stream(""),
        mariadb_stream(""),
        "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE t (n int);\n\n\
         --\n-- PostgreSQL database dump complete\n--\n\n"
            .to_owned(),
    ];
    for (i, stream) in streams.iter().enumerate() {
        let dir = sb.mkdir(&format!("dumps/{i}"));
        let file = sb.path(&format!("stream-{i}"));
        fs::write(&file, stream).unwrap();
        published(&run(&mut dump_job(
            &dir,
            &format!("cat {}", file.display()),
        )));
        let r = run(&mut drill(&dir, &tmp, &result));
        r.expect(77)
            .stderr_has("the drill does not run as root, nor any server or tool it starts")
            .stderr_has("run it as the job's user, as its unit does");
        assert!(!result.exists(), "nothing recorded\n{r}");
        assert_eq!(sh(&format!("ls -A '{}'", tmp.display())), "", "{r}");
    }
}

/// The names of the processes the user `timerapps` runs in `c` (the image
/// has no procps).
fn drill_user_processes(c: &Container) -> String {
    c.sh("for p in /proc/[0-9]*; do
            [ \"$(stat -c %U $p 2>/dev/null)\" = timerapps ] && cat $p/comm 2>/dev/null || true
          done; true")
}

/// The record of the system drill of dump unit `unit` (`dump-database@shop`),
/// inside a container.
fn record_in(c: &Container, unit: &str) -> PathBuf {
    c.path(&format!("{DRILLS_DIR}/{unit}/{DRILL_RECORD}"))
}

/// The process ids of the user `timerapps`'s processes named `comm` in `c`,
/// as the container sees them.
fn drill_user_pids(c: &Container, comm: &str) -> Vec<String> {
    c.sh(&format!(
        "for p in /proc/[0-9]*; do
            [ \"$(stat -c %U $p 2>/dev/null)\" = timerapps ] &&
              [ \"$(cat $p/comm 2>/dev/null)\" = {comm} ] && echo ${{p#/proc/}} || true
          done"
    ))
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// The package's drill units on a real systemd: `timerapps drill`, the
/// timer, status, the failure unit state, and a drill killed by its unit;
/// an owner's planted objects in plain, custom and cluster dumps; and what a
/// running drill can see of other instances.
fn drill_units(release: Release) {
    let c = Host::installed("drill-units", release);

    dumps_of_a_database_whose_tables_production_roles_own(&c);
    an_earlier_record_moves_into_its_drills_directory(&c);
    drills_pass_with_the_production_server_stopped(&c);
    status_shows_the_drill_in_json_that_follows_the_schema(&c);
    an_owners_planted_objects_run_as_the_owner(&c);
    a_damaged_dump_fails_the_drill_its_unit_and_status(&c);
    the_drill_timer_runs_the_drill(&c);
    a_drill_killed_mid_restore_leaves_no_server(&c);
    a_mariadb_dumps_drill_runs_in_the_same_sandbox(&c);
    a_running_drill_sees_no_other_instances_dumps(&c);
    the_default_jobs_running_drill_sees_only_its_own_dumps(&c);
    no_instance_is_named_as_the_default_job(&c);
    purge_removes_the_drills_results_and_keeps_the_dumps(&c);
}

fn dumps_of_a_database_whose_tables_production_roles_own(c: &Host) {
    c.step("dumps of a database whose tables production roles own");
    c.sh(
        "runuser -u postgres -- psql -q -c 'CREATE ROLE timerapps LOGIN' -c 'CREATE ROLE app'
          runuser -u postgres -- createdb -O timerapps shop
          runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d shop -c \"
            CREATE TABLE items (id int PRIMARY KEY, name text);
            INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 5000) i;
            CREATE TABLE big AS SELECT i, md5(i::text) AS h, repeat('x', 60) AS pad
              FROM generate_series(1, 400000) i;
            ALTER TABLE items OWNER TO app; ALTER TABLE big OWNER TO app;
            GRANT SELECT ON items, big TO timerapps;\"",
    );
    fs::create_dir_all(c.path("/etc/timerapps/dump-database")).unwrap();
    fs::write(
        c.path("/etc/timerapps/dump-database/shop.conf"),
        "DUMP_COMMAND=\"pg_dump --no-password shop\"\n",
    )
    .unwrap();
    fs::write(
        c.path("/etc/timerapps/dump-database/shopc.conf"),
        "DUMP_COMMAND=\"pg_dump -Fc --no-password shop\"\nDUMP_COMPRESS=none\nDUMP_EXTENSION=dump\n",
    )
    .unwrap();
    c.sh("systemctl start dump-database@shop.service dump-database@shopc.service");
    // The owner-planted database, in the three forms; its markers would go
    // where a drill may write (DRILL_TMPDIR, allowed by a drop-in).
    fs::write(
        c.path("/srv/planted.sql"),
        format!(
            "SET ROLE planter;\n{}",
            PLANTED.replace("MARKERS", "/srv/drill")
        ),
    )
    .unwrap();
    c.sh("install -d -m 1777 /srv/drill
          chmod 644 /srv/planted.sql
          mkdir -p /etc/systemd/system/dump-database-drill@.service.d
          printf '[Service]\\nReadWritePaths=/srv/drill\\n' \\
            > /etc/systemd/system/dump-database-drill@.service.d/tmpdir.conf
          systemctl daemon-reload
          runuser -u postgres -- psql -q -c 'CREATE ROLE planter LOGIN' \\
            -c 'CREATE DATABASE planted OWNER planter' -c 'GRANT pg_read_all_data TO timerapps'
          runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d planted -f /srv/planted.sql");
    for (name, settings) in [
        (
            "planted",
            "DUMP_COMMAND=\"pg_dump --no-password planted\"\n",
        ),
        (
            "plantedc",
            "DUMP_COMMAND=\"pg_dump -Fc --no-password planted\"\nDUMP_COMPRESS=none\n\
             DUMP_EXTENSION=dump\n",
        ),
        (
            "planteda",
            "DUMP_COMMAND=\"pg_dumpall --no-password --no-role-passwords\"\n",
        ),
    ] {
        fs::write(
            c.path(&format!("/etc/timerapps/dump-database/{name}.conf")),
            format!("{settings}DRILL_TMPDIR=/srv/drill\n"),
        )
        .unwrap();
        c.sh(&format!("systemctl start dump-database@{name}.service"));
    }
}

fn an_earlier_record_moves_into_its_drills_directory(c: &Host) {
    c.step("a record an earlier version kept beside the others moves into its drill's directory");
    let earlier = Record {
        version: VERSION,
        started: 1_790_000_000,
        seconds: 2.5,
        result: DrillResult::Passed,
        reason: None,
        last_success: Some(1_790_000_000),
        kind: Drill {
            dump: Some("dump-20260921T101500Z.sql.gz".into()),
            format: Some(postgresql::PLAIN),
            server: Some("PostgreSQL 15.14".into()),
            compared: true,
            tables: Some(2),
            rows: Some(405000),
            empty_roles: None,
        },
    };
    let old = c.path(&format!("{DRILLS_DIR}/dump-database@shop.json"));
    c.sh(&format!(
        "install -d -o timerapps -g timerapps {DRILLS_DIR}"
    ));
    fs::write(&old, jobkit::record::to_json(&earlier)).unwrap();
    c.sh(&format!(
        "chown timerapps: {0}/dump-database@shop.json
          ln -s /etc/shadow {0}/dump-database@evil.json
          /var/lib/dpkg/info/timerapps.postinst configure 0.1.0-1",
        DRILLS_DIR
    ));
    c.quiet_all();
    assert!(!old.exists());
    assert_eq!(record(&record_in(c, "dump-database@shop")), earlier);
    assert!(!c.path(&format!("{DRILLS_DIR}/dump-database@evil")).exists());
    let r = c.exec(&["timerapps", "status", "--json", "dump-database@shop"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let started = &json["jobs"][0]["drill"]["last"]["started"]["usec"];
    assert_eq!(*started, 1_790_000_000_000_000u64, "{r}");
}

fn drills_pass_with_the_production_server_stopped(c: &Host) {
    c.step("drills pass with the production server stopped");
    c.sh("systemctl stop postgresql");
    let major = c.sh("ls /usr/lib/postgresql").trim().to_owned();
    let r = c.exec(&["timerapps", "drill", "dump-database@shop"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(
        r.stdout.contains(&format!("into PostgreSQL {major}."))
            && r.stdout
                .contains(": 2 tables, 405000 rows; every table's rows equal"),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("dump-database-drill@shop.service: success"),
        "{r}"
    );
    let r = c.exec(&["timerapps", "drill", "dump-database@shopc"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains("nothing to compare with"), "{r}");
    let rec = record(&record_in(c, "dump-database@shop"));
    assert_eq!(rec.result, DrillResult::Passed);
    assert_eq!((rec.tables, rec.rows), (Some(2), Some(405000)));
    assert_eq!(drill_user_processes(c), "", "nothing outlives the drill");
}

fn status_shows_the_drill_in_json_that_follows_the_schema(c: &Host) {
    c.step("status shows the drill; JSON follows the schema");
    let r = c.exec(&["timerapps", "status", "--json", "dump-database@shop"]);
    valid_status(&r.stdout);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let drill = &json["jobs"][0]["drill"];
    assert_eq!(drill["last"]["result"], "passed", "{drill:#}");
    assert_eq!(drill["last"]["rows"], 405000, "{drill:#}");
    let table = c.exec(&["timerapps", "status", "dump-database@shop"]);
    assert!(
        table.stdout.lines().nth(1).unwrap().contains("passed "),
        "{table}"
    );
}

fn an_owners_planted_objects_run_as_the_owner(c: &Host) {
    c.step("an owner's planted objects run as the owner: the program never runs");
    for (name, tables, rows) in [
        ("planted", 2, 2),
        ("plantedc", 2, 2),
        ("planteda", 4, 405002),
    ] {
        let r = c.exec(&["timerapps", "drill", &format!("dump-database@{name}")]);
        assert_eq!(r.code(), Some(0), "{r}");
        assert!(
            r.stdout
                .contains(&format!(": {tables} tables, {rows} rows; ")),
            "{r}"
        );
        assert_eq!(markers(&c.path("/srv/drill")), Vec::<String>::new(), "{r}");
    }
    // Armed: a superuser's restore of the same dump runs the program.
    c.sh("systemctl start postgresql
          runuser -u postgres -- createdb control
          gzip -dc /var/lib/timerapps/dumps/planted/*.sql.gz \\
            | runuser -u postgres -- psql -q -d control >/dev/null 2>&1
          systemctl stop postgresql");
    assert_eq!(markers(&c.path("/srv/drill")), ARMED);
}

fn a_damaged_dump_fails_the_drill_its_unit_and_status(c: &Host) {
    c.step("a damaged dump fails the drill, its unit and status");
    let dumps = c.path("/var/lib/timerapps/dumps/shop");
    let dump = fs::read_dir(&dumps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".sql.gz"))
        .unwrap();
    let good = fs::read(&dump).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x55;
    fs::write(&dump, &bad).unwrap();
    let r = c.exec(&["timerapps", "drill", "dump-database@shop"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.contains("is damaged"), "{r}");
    assert_eq!(
        c.state("is-failed", "dump-database-drill@shop.service"),
        "failed"
    );
    let r = c.exec(&["timerapps", "status", "dump-database@shop"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.contains("! dump-database@shop"), "{r}");
    assert!(r.stdout.contains("the last restore drill failed"), "{r}");
    fs::write(&dump, &good).unwrap();
}

fn the_drill_timer_runs_the_drill(c: &Host) {
    c.step("the drill timer, enabled as docs/drill.md says, runs the drill");
    c.sh("systemctl enable --now dump-database-drill@shop.timer");
    let r = c.exec(&["timerapps", "status", "--json", "dump-database@shop"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["jobs"][0]["drill"]["enabled"], "enabled");
    assert_eq!(json["jobs"][0]["drill"]["period_seconds"], 7 * 86400);
    let before = record(&record_in(c, "dump-database@shop")).started;
    c.sh(
        "mkdir -p /run/systemd/system/dump-database-drill@shop.timer.d
          printf '[Timer]\\nOnActiveSec=1s\\nAccuracySec=1s\\nRandomizedDelaySec=0\\n' \
            > /run/systemd/system/dump-database-drill@shop.timer.d/soon.conf
          systemctl daemon-reload
          systemctl restart dump-database-drill@shop.timer",
    );
    wait_for("the timer's drill", Duration::from_secs(90), || {
        let rec = record(&record_in(c, "dump-database@shop"));
        rec.started > before && rec.result == DrillResult::Passed
    });
    let r = c.exec(&["timerapps", "status", "dump-database@shop"]);
    assert_eq!(r.code(), Some(0), "{r}");
}

fn a_drill_killed_mid_restore_leaves_no_server(c: &Host) {
    c.step("a drill killed mid-restore: no server outlives its unit");
    // Slowed down, so that it is still restoring when it is killed.
    c.sh(
        "mkdir -p /run/systemd/system/dump-database-drill@shop.service.d
          printf '[Service]\\nCPUQuota=5%%\\n' \
            > /run/systemd/system/dump-database-drill@shop.service.d/slow.conf
          systemctl daemon-reload
          systemctl start --no-block dump-database-drill@shop.service",
    );
    // initdb comes first, slowed as much: on a loaded machine that takes long.
    wait_for("the drill's restore", Duration::from_secs(240), || {
        drill_user_processes(c).lines().any(|p| p == "psql")
    });
    c.sh("systemctl kill --signal=KILL dump-database-drill@shop.service");
    wait_for("the drill's unit to stop", Duration::from_secs(30), || {
        c.state("is-active", "dump-database-drill@shop.service") != "active"
            && c.state("is-active", "dump-database-drill@shop.service") != "activating"
            && c.state("is-active", "dump-database-drill@shop.service") != "deactivating"
    });
    assert_eq!(drill_user_processes(c), "", "no server outlives the unit");
    assert_eq!(
        c.show("dump-database-drill@shop.service", "Result"),
        "signal"
    );
    c.sh(
        "rm -r /run/systemd/system/dump-database-drill@shop.service.d
          systemctl daemon-reload",
    );
    let r = c.exec(&["timerapps", "drill", "dump-database@shop"]);
    assert_eq!(r.code(), Some(0), "{r}");
}

fn a_mariadb_dumps_drill_runs_in_the_same_sandbox(c: &Host) {
    c.step("a MariaDB dump's drill: mariadbd in the same sandbox");
    let db = Mariadb::start(&c.sb);
    db.sql(
        "",
        "CREATE DATABASE shop; USE shop; CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT seq, concat('item ', seq) FROM seq_1_to_3000",
    );
    sh(&format!(
        "mariadb-dump --no-defaults --socket='{}' --user=root shop > '{}'",
        db.socket.display(),
        c.path("/srv/shop.sql").display()
    ));
    drop(db);
    fs::write(
        c.path("/etc/timerapps/dump-database/maria.conf"),
        "DUMP_COMMAND=\"cat /srv/shop.sql\"\n",
    )
    .unwrap();
    c.sh("chmod 644 /srv/shop.sql; systemctl start dump-database@maria.service");
    let r = c.exec(&["timerapps", "drill", "dump-database@maria"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(
        r.stdout.contains(" into MariaDB ")
            && r.stdout
                .contains(": 1 table, 3000 rows; every table's rows equal"),
        "{r}"
    );
    assert_eq!(drill_user_processes(c), "", "nothing outlives the drill");
}

/// The drill user, as a script run inside a drill's unit is.
const AS_USER: &str = "setpriv --reuid=timerapps --regid=timerapps --clear-groups";
/// Reads another instance's dumps.
const REACH: &str = "cat /var/lib/timerapps/dumps/right/*.manifest.json >/dev/null";
/// Writes another instance's drill record.
const FORGE: &str = "echo forged > /var/lib/timerapps/drills/dump-database@right/drill.json";

/// The drill `unit`, started, while its sqlite3 restores: that process.
fn running(c: &Container, unit: &str) -> String {
    c.sh(&format!("systemctl start --no-block {unit}"));
    let mut pids = Vec::new();
    wait_for(
        &format!("{unit}'s sqlite3"),
        Duration::from_secs(120),
        || {
            pids = drill_user_pids(c, "sqlite3");
            !pids.is_empty()
        },
    );
    pids.swap_remove(0)
}

/// `script` run as the drill user in the mounts of process `pid`.
fn inside(c: &Container, pid: &str, script: &str) -> Run {
    c.exec(&[
        "sh",
        "-c",
        &format!("nsenter -t {pid} -m {AS_USER} sh -c '{script}'"),
    ])
}

fn a_running_drill_sees_no_other_instances_dumps(c: &Host) {
    c.step("a running drill sees no other instance's dumps, nor writes its record");
    fs::write(
        c.path("/srv/left.sql"),
        // Restoring never ends: the drill is running while it is looked into.
        sqlite_stream(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT max(i) FROM c;",
        ),
    )
    .unwrap();
    fs::write(
        c.path("/etc/timerapps/dump-database/left.conf"),
        "DUMP_COMMAND=\"cat /srv/left.sql\"\n",
    )
    .unwrap();
    fs::write(
        c.path("/etc/timerapps/dump-database/right.conf"),
        "DUMP_COMMAND=\"sqlite3 -readonly /srv/right.db .dump\"\n",
    )
    .unwrap();
    c.sh(
        "sqlite3 /srv/right.db 'CREATE TABLE r (n int); INSERT INTO r VALUES (7);'
          chmod 644 /srv/left.sql /srv/right.db
          systemctl start dump-database@left.service dump-database@right.service",
    );
    let r = c.exec(&["timerapps", "drill", "dump-database@right"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let right_record = fs::read(record_in(c, "dump-database@right")).unwrap();
    // Outside a drill's unit, the user reaches both.
    c.sh(&format!("{AS_USER} sh -c '{REACH}'"));
    let left = running(c, "dump-database-drill@left.service");
    // Its own: the dumps read, its record's directory written.
    let own = inside(
        c,
        &left,
        "ls -A /var/lib/timerapps/dumps /var/lib/timerapps/drills
         cat /var/lib/timerapps/dumps/left/*.manifest.json >/dev/null
         touch /var/lib/timerapps/drills/dump-database@left/probe
         rm /var/lib/timerapps/drills/dump-database@left/probe",
    );
    assert_eq!(own.code(), Some(0), "{own}");
    assert_eq!(
        own.stdout,
        "/var/lib/timerapps/drills:\ndump-database@left\n\n/var/lib/timerapps/dumps:\nleft\n",
        "{own}"
    );
    for script in [REACH, FORGE] {
        let r = inside(c, &left, script);
        assert_ne!(r.code(), Some(0), "{script}\n{r}");
    }
    c.sh("systemctl stop dump-database-drill@left.service");
    assert_eq!(
        fs::read(record_in(c, "dump-database@right")).unwrap(),
        right_record
    );
    assert_eq!(drill_user_processes(c), "", "nothing outlives the drill");
}

fn the_default_jobs_running_drill_sees_only_its_own_dumps(c: &Host) {
    c.step("the default job's running drill sees its own dumps and no instance's");
    c.sh(
        "echo 'DUMP_COMMAND=\"cat /srv/left.sql\"' >> /etc/default/dump-database
          systemctl start dump-database.service",
    );
    let default = running(c, "dump-database-drill.service");
    let own = inside(
        c,
        &default,
        &format!("ls -A /var/lib/timerapps/dumps; cat {DEFAULT_DIR}/*.manifest.json >/dev/null"),
    );
    assert_eq!(
        (own.code(), own.stdout.as_str()),
        (Some(0), "dump-database\n"),
        "{own}"
    );
    for script in [REACH, "ls /var/lib/timerapps/dumps/left"] {
        let r = inside(c, &default, script);
        assert_ne!(r.code(), Some(0), "{script}\n{r}");
    }
    c.sh("systemctl stop dump-database-drill.service");
    assert_eq!(drill_user_processes(c), "", "nothing outlives the drill");
}

fn no_instance_is_named_as_the_default_job(c: &Host) {
    c.step("no instance is named as the default job, whose directory that is");
    let before = fs::read_dir(c.path(DEFAULT_DIR)).unwrap().count();
    fs::write(
        c.path("/etc/timerapps/dump-database/dump-database.conf"),
        "DUMP_COMMAND=\"cat /srv/left.sql\"\n",
    )
    .unwrap();
    for unit in [
        "dump-database@dump-database.service",
        "dump-database-drill@dump-database.service",
    ] {
        let r = c.exec(&["systemctl", "start", unit]);
        assert_ne!(r.code(), Some(0), "{unit}: {r}");
        assert_eq!(c.show(unit, "ExecMainStatus"), "2", "{unit}");
        let journal = c.journal(unit);
        assert!(
            journal.contains("an instance may not be named dump-database"),
            "{journal}"
        );
    }
    assert_eq!(fs::read_dir(c.path(DEFAULT_DIR)).unwrap().count(), before);
    fs::remove_file(c.path("/etc/timerapps/dump-database/dump-database.conf")).unwrap();
}

fn purge_removes_the_drills_results_and_keeps_the_dumps(c: &Host) {
    c.step("purge removes the drills' results and links, and keeps the dumps");
    c.sh("apt-get purge -y timerapps </dev/null");
    assert!(!c.path("/var/lib/timerapps/drills").exists());
    assert!(!c
        .path("/etc/systemd/system/timers.target.wants/dump-database-drill@shop.timer")
        .exists());
    assert!(c.path("/var/lib/timerapps/dumps/shop").exists());
}

#[test]
#[ignore = "boots a container: tests/run"]
fn drill_units_on_debian_12() {
    drill_units(Release::Bookworm);
}

#[test]
#[ignore = "boots a container: tests/run"]
fn drill_units_on_debian_13() {
    drill_units(Release::Trixie);
}
