//! dump-database against real databases and gzip: restores equal in every
//! form, rotation, foreign files untouched, failures that keep earlier dumps.

use crate::harness::{
    cmd, dump_files, dump_name, is_root, job, measure, names, run, sh, snapshot, start, wait_for,
    Run, Running, Sandbox,
};
use crate::mariadb::Mariadb;
use crate::postgres::Postgres;
use jobkit::dumpfile::{Form, Names, Stamp};
use regex_lite::Regex;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The stamp of the foreign files the rotation tests plant.
const OLD: &str = "20000101T000000Z";

pub fn dump_job(dir: &Path, command: &str) -> Command {
    let mut c = job("dump-database");
    c.env("DUMP_DIR", dir).env("DUMP_COMMAND", command);
    c
}

/// The dumps in `dir` in every form, oldest first.
pub fn dumps(dir: &Path) -> Vec<String> {
    dump_files(&names("dump"), dir)
}

pub fn temps(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .into_keys()
        .filter(|n| n.ends_with(".part"))
        .collect()
}

/// Checks the summary line of a successful run; returns the file published
/// and the number of dumps pruned.
#[track_caller]
pub fn published(r: &Run) -> (PathBuf, usize) {
    r.ok();
    let re = Regex::new(
        r"^dump-database: published (\S+): read (\d+) bytes, wrote (\d+) bytes, ratio \d+\.\d\d, \d+\.\d\d s, \d+\.\d MB/s, pruned (\d+) old dumps?$",
    )
    .unwrap();
    let last = r.stdout.lines().last().unwrap_or_default();
    let caps = re
        .captures(last)
        .unwrap_or_else(|| panic!("bad summary line\n{r}"));
    let path = PathBuf::from(&caps[1]);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        caps[3].parse::<u64>().unwrap(),
        "{r}"
    );
    assert!(caps[2].parse::<u64>().unwrap() > 0, "{r}");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600,
        "{r}"
    );
    let name = path.to_string_lossy();
    if name.ends_with(".gz") {
        run(cmd("gzip").arg("-t").arg(&path)).ok();
    } else if name.ends_with(".zst") {
        run(cmd("zstd").arg("-qt").arg(&path)).ok();
    }
    (path, caps[4].parse().unwrap())
}

pub fn gunzip(path: &Path) -> String {
    run(cmd("gzip").arg("-dc").arg(path)).ok().stdout.clone()
}

/// The dump directory without its lock file, which the job keeps.
pub fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = snapshot(dir);
    files.remove(&names("dump").lock());
    files
}

/// A PostgreSQL cluster with the database `shop` filled by [`SHOP`].
pub fn postgres_with_shop(sb: &Sandbox) -> Postgres {
    let pg = Postgres::start(sb);
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql("shop", SHOP);
    pg
}

pub const SHOP: &str = r#"
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text, joined timestamptz);
CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers,
                     total numeric(12,2), items jsonb, raw bytea);
INSERT INTO customers (name, note, joined)
  SELECT 'customer ' || i,
         CASE WHEN i % 7 = 0 THEN NULL ELSE E'quote '' tab \t backslash \\ newline \n é ✓ ' || md5(i::text) END,
         timestamptz '2024-01-01 00:00:00+00' + i * interval '37 minutes'
  FROM generate_series(1, 3000) i;
INSERT INTO orders (customer, total, items, raw)
  SELECT 1 + i % 3000, i * 1.25, jsonb_build_object('sku', i, 'tags', jsonb_build_array('a', i % 5)),
         decode(md5(i::text), 'hex')
  FROM generate_series(1, 6000) i;
"#;

fn table(pg: &Postgres, db: &str, table: &str) -> String {
    pg.sql(
        db,
        &format!("COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT"),
    )
}

pub fn with_pg<'a>(c: &'a mut Command, pg: &Postgres, user: &str) -> &'a mut Command {
    c.env("PGHOST", &pg.socket).env("PGUSER", user)
}

/// Every DUMP_COMPRESS value, as the tests of failures run them.
pub const FORMS: [&str; 3] = ["gzip", "zstd", "none"];

#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn postgres_dump_restores_to_equal_tables_in_every_form() {
    let sb = Sandbox::new("pg-roundtrip");
    let pg = postgres_with_shop(&sb);
    let command = format!("{} --no-password shop", pg.program("pg_dump").display());
    for form in Form::ALL {
        let compress = form.setting();
        let dir = sb.mkdir(compress);
        let mut c = dump_job(&dir, &command);
        c.env("DUMP_COMPRESS", compress);
        let r = run(with_pg(&mut c, &pg, "postgres"));
        let (path, pruned) = published(&r);
        assert_eq!(pruned, 0);
        assert_eq!(dumps(&dir).len(), 1);
        let file = path.file_name().unwrap().to_string_lossy();
        assert_eq!(
            names("dump").parse(&file).map(|(_, f)| f),
            Some(form),
            "{r}"
        );

        let restored = format!("restored_{compress}");
        pg.restore(&path, &restored).ok();
        for t in ["customers", "orders"] {
            let original = table(&pg, "shop", t);
            assert!(original.lines().count() >= 3000, "{t}: {original:.200}");
            assert_eq!(
                original,
                table(&pg, &restored, t),
                "table {t} differs after restoring the {compress} dump"
            );
        }
    }
}

/// `pg_dump -Fc` compresses itself: kept as it wrote it, under the
/// extension asked for, it restores with pg_restore.
#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn a_custom_format_dump_is_kept_as_written_and_restores_with_pg_restore() {
    let sb = Sandbox::new("pg-custom");
    let pg = postgres_with_shop(&sb);
    let dir = sb.mkdir("dumps");
    let command = format!("{} -Fc --no-password shop", pg.program("pg_dump").display());
    let mut c = dump_job(&dir, &command);
    c.env("DUMP_COMPRESS", "none").env("DUMP_EXTENSION", "dump");
    let r = run(with_pg(&mut c, &pg, "postgres"));
    let (path, _) = published(&r);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        Names::new("dump", "dump").parse(&name).map(|(_, f)| f),
        Some(Form::None),
        "{r}"
    );
    let bytes = fs::read(&path).unwrap();
    assert!(
        bytes.starts_with(b"PGDMP"),
        "not a custom-format archive\n{r}"
    );
    pg.restore(&path, "restored").ok();
    for t in ["customers", "orders"] {
        assert_eq!(table(&pg, "shop", t), table(&pg, "restored", t), "{t}");
    }
}

/// Changing DUMP_COMPRESS rotates the old form out in time order: every
/// form of the name counts toward DUMP_KEEP, and nothing else is touched.
#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn switching_compression_keeps_exactly_dump_keep_dumps_across_forms() {
    let sb = Sandbox::new("pg-switch");
    let pg = Postgres::start(&sb);
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql("shop", "CREATE TABLE t (n int); INSERT INTO t VALUES (1)");
    let dir = sb.mkdir("dumps");
    // Files of other forms, and another name's dumps.
    let other = |form| names("other").dump(&Stamp::parse(OLD).unwrap(), form);
    for foreign in [
        "dump-20000101T000000Z.sql.xz".to_owned(),
        "dump-20000101T000000Z.dump".to_owned(),
        other(Form::Zstd),
        other(Form::None),
    ] {
        fs::write(dir.join(&foreign), &foreign).unwrap();
    }
    let foreign = snapshot(&dir);
    let command = format!("{} --no-password shop", pg.program("pg_dump").display());
    let mut published_in_order = Vec::new();
    for (i, compress) in [
        "gzip", "gzip", "gzip", "zstd", "zstd", "none", "none", "none",
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = dump_job(&dir, &command);
        c.env("DUMP_COMPRESS", compress).env("DUMP_KEEP", "3");
        let (path, pruned) = published(&run(with_pg(&mut c, &pg, "postgres")));
        assert_eq!(pruned, usize::from(i >= 3), "run {i} ({compress})");
        published_in_order.push(path.file_name().unwrap().to_string_lossy().into_owned());
        let newest = &published_in_order[published_in_order.len().saturating_sub(3)..];
        assert_eq!(dumps(&dir), newest, "run {i} ({compress})");
    }
    let kept = dumps(&dir);
    assert!(kept.iter().all(|n| n.ends_with(".sql")), "{kept:?}");
    let mut left = snapshot(&dir);
    left.retain(|name, _| foreign.contains_key(name));
    assert_eq!(left, foreign, "files of other names or forms changed");
}

#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn postgres_password_comes_from_a_pgpass_file() {
    let sb = Sandbox::new("pg-pgpass");
    let pg = Postgres::start(&sb);
    let password = "Pa55-word-never-on-argv";
    pg.sql(
        "postgres",
        &format!("CREATE ROLE app LOGIN PASSWORD '{password}'"),
    );
    pg.sql("postgres", "CREATE DATABASE appdb OWNER app");
    pg.sql(
        "appdb",
        "SET ROLE app; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)",
    );
    let hba = sb.path("pg/data/pg_hba.conf");
    let rules = fs::read_to_string(&hba).unwrap();
    fs::write(&hba, format!("local all app scram-sha-256\n{rules}")).unwrap();
    pg.sql("postgres", "SELECT pg_reload_conf()");

    let dir = sb.mkdir("dumps");
    let command = format!("{} --no-password appdb", pg.program("pg_dump").display());
    let r = run(with_pg(&mut dump_job(&dir, &command), &pg, "app"));
    r.expect(1).stderr_has("password");
    assert!(dumps(&dir).is_empty() && temps(&dir).is_empty(), "{r}");

    let pgpass = sb.path("pgpass");
    fs::write(&pgpass, format!("*:*:appdb:app:{password}\n")).unwrap();
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = dump_job(&dir, &command);
    let r = run(with_pg(&mut c, &pg, "app").env("PGPASSFILE", &pgpass));
    let (path, _) = published(&r);
    assert!(gunzip(&path).contains("CREATE TABLE public.t"), "{r}");
    assert!(
        !r.stdout.contains(password) && !r.stderr.contains(password),
        "{r}"
    );
}

#[test]
fn sqlite_dump_restores_to_the_same_database() {
    let sb = Sandbox::new("sqlite-roundtrip");
    let db = sb.mkdir("my data").join("app.db");
    let schema = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, score REAL, blob BLOB);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
        INSERT INTO notes SELECT i, 'note '''' ' || i || char(10) || 'é', i / 3.0, randomblob(16) FROM n;
        CREATE INDEX notes_score ON notes (score);";
    run(cmd("sqlite3").arg(&db).arg(schema)).ok();
    let dir = sb.mkdir("dumps");
    // The path has a space: DUMP_COMMAND is split with shell quoting rules.
    let command = format!("sqlite3 -readonly '{}' .dump", db.display());
    let (path, _) = published(&run(&mut dump_job(&dir, &command)));

    let restored = sb.path("restored.db");
    sh(&format!(
        "gzip -dc '{}' | sqlite3 '{}'",
        path.display(),
        restored.display()
    ));
    let dump_of = |db: &Path| run(cmd("sqlite3").arg(db).arg(".dump")).ok().stdout.clone();
    let original = dump_of(&db);
    assert!(original.contains("INSERT INTO notes"), "{original:.300}");
    assert_eq!(original, dump_of(&restored));
}

#[test]
fn a_dump_of_many_blocks_is_one_gzip_stream_whatever_the_threads() {
    let sb = Sandbox::new("threads");
    let dir = sb.mkdir("dumps");
    let expected = sh("seq 1 2000000");
    for threads in ["1", "3"] {
        let mut c = dump_job(&dir, "seq 1 2000000");
        let (path, _) = published(&run(c.env("DUMP_THREADS", threads)));
        assert!(
            gunzip(&path) == expected,
            "DUMP_THREADS={threads}: content differs"
        );
        // One member: this decoder stops after the first, where gzip would
        // silently go on through several.
        let mut first = String::new();
        flate2::read::GzDecoder::new(fs::File::open(&path).unwrap())
            .read_to_string(&mut first)
            .unwrap();
        assert!(
            first == expected,
            "DUMP_THREADS={threads}: more than one gzip member"
        );
    }
}

#[test]
fn seven_runs_keep_the_five_newest_and_no_foreign_file_is_touched() {
    let sb = Sandbox::new("rotation");
    let dir = sb.mkdir("dumps");
    let other = names("other").dump(&Stamp::parse(OLD).unwrap(), Form::Gzip);
    for foreign in [
        "notes.txt",
        "dump-latest.sql.gz",
        &other,
        "dump-20000101T000000Z.sql.xz",
        "dump-20000101T000000Z.dump",
        "dump-20000101T000000Z.sql.gz.bak",
        ".dump-20000101T000000Z.sql.gz",
    ] {
        fs::write(dir.join(foreign), foreign).unwrap();
    }
    fs::create_dir(dir.join(dump_name("19990101T000000Z", Form::Gzip))).unwrap();
    let foreign = snapshot(&dir);

    let mut names = Vec::new();
    for i in 1..=7 {
        let (path, pruned) = published(&run(&mut dump_job(&dir, &format!("echo run {i}"))));
        assert_eq!(pruned, usize::from(i > 5), "run {i}");
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(dumps(&dir), names[2..], "the five newest remain");
    for (i, name) in names[2..].iter().enumerate() {
        assert_eq!(gunzip(&dir.join(name)), format!("run {}\n", i + 3));
    }
    let mut left = snapshot(&dir);
    left.retain(|name, _| foreign.contains_key(name));
    assert_eq!(left, foreign, "foreign files changed");
}

/// Fills `dir` with dumps named for the given times, oldest first.
pub fn old_dumps(dir: &Path, stamps: &[&str]) -> Vec<String> {
    stamps
        .iter()
        .map(|s| {
            let name = dump_name(s, Form::Gzip);
            fs::write(dir.join(&name), s).unwrap();
            name
        })
        .collect()
}

#[test]
fn dump_keep_decides_how_many_dumps_remain() {
    let stamps = [
        "20240101T000000Z",
        "20240201T000000Z",
        "20240301T000000Z",
        "20250101T120000Z",
    ];
    for keep in [1usize, 2, 4, 5, 10] {
        let sb = Sandbox::new(&format!("keep-{keep}"));
        let dir = sb.mkdir("dumps");
        let mut expected = old_dumps(&dir, &stamps);
        let mut c = dump_job(&dir, "echo fresh");
        let (path, pruned) = published(&run(c.env("DUMP_KEEP", keep.to_string())));
        expected.push(path.file_name().unwrap().to_string_lossy().into_owned());
        let kept = expected.split_off(expected.len().saturating_sub(keep));
        assert_eq!(dumps(&dir), kept, "DUMP_KEEP={keep}");
        assert_eq!(pruned, expected.len(), "DUMP_KEEP={keep}");
    }
}

/// A directory with two good dumps, and its contents.
pub fn two_good_dumps(sb: &Sandbox, rel: &str) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let dir = sb.mkdir(rel);
    for i in 1..=2 {
        published(&run(&mut dump_job(&dir, &format!("echo good {i}"))));
    }
    let before = contents(&dir);
    assert_eq!(before.len(), 4, "two dumps and their manifests");
    (dir, before)
}

#[track_caller]
pub fn untouched(dir: &Path, before: &BTreeMap<String, Vec<u8>>, r: &Run) {
    assert_eq!(
        &contents(dir),
        before,
        "earlier dumps changed or a temp file is left\n{r}"
    );
}

#[test]
fn a_failed_dump_keeps_earlier_dumps_and_leaves_no_temp_file() {
    let sb = Sandbox::new("failures");
    let (dir, before) = two_good_dumps(&sb, "dumps");
    for compress in FORMS {
        for (command, why) in [
            ("sh -c 'echo partial; exit 3'", "exited with status 3"),
            ("sh -c 'echo partial; kill -9 $$'", "killed by signal 9"),
            (
                "/nonexistent/pg_dump mydb",
                "cannot run DUMP_COMMAND program \"/nonexistent/pg_dump\"",
            ),
            ("true", "wrote nothing"),
        ] {
            let r = run(dump_job(&dir, command).env("DUMP_COMPRESS", compress));
            r.expect(1)
                .stderr_has(why)
                .stderr_has("earlier dumps are untouched");
            untouched(&dir, &before, &r);
        }
    }
}

#[test]
fn a_write_error_keeps_earlier_dumps() {
    let sb = Sandbox::new("write-error");
    let (dir, before) = two_good_dumps(&sb, "dumps");
    // A file-size limit makes write(2) fail with EFBIG past 64 KiB.
    let script = format!(
        "trap '' XFSZ; ulimit -f 128; exec '{}'",
        crate::harness::bin("dump-database")
    );
    for compress in FORMS {
        let mut c = cmd("sh");
        c.env("DUMP_DIR", &dir)
            .env("DUMP_COMPRESS", compress)
            .env("DUMP_COMMAND", "head -c 4000000 /dev/urandom");
        let r = run(c.args(["-c", &script]));
        r.expect(1)
            .stderr_has("cannot write the dump")
            .stderr_has("File too large");
        untouched(&dir, &before, &r);
    }
}

/// A tmpfs mounted with `options` at a directory, unmounted when dropped.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    pub fn mount(dir: PathBuf, options: &str) -> SmallDisk {
        let disk = SmallDisk(dir);
        run(cmd("mount")
            .args(["-t", "tmpfs", "-o", options, "timerapps-test"])
            .arg(&disk.0))
        .ok();
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = run(cmd("umount").arg("-l").arg(&self.0));
    }
}

#[test]
#[ignore = "needs root: tests/run"]
fn a_full_disk_keeps_earlier_dumps() {
    assert!(
        is_root(),
        "this test mounts a tmpfs and must run as root, as CI does"
    );
    let sb = Sandbox::new("disk-full");
    let _disk = SmallDisk::mount(sb.mkdir("disk"), "size=1m,mode=0755");
    let (dir, mut before) = two_good_dumps(&sb, "disk/dumps");
    for compress in FORMS {
        let mut c = dump_job(&dir, "head -c 4000000 /dev/urandom");
        let r = run(c.env("DUMP_COMPRESS", compress));
        r.expect(1).stderr_has("No space left on device");
        untouched(&dir, &before, &r);
        // The temp file is gone, so its space is free again.
        let mut c = dump_job(&dir, "echo after");
        published(&run(c.env("DUMP_COMPRESS", compress).env("DUMP_KEEP", "2")));
        before = contents(&dir);
    }
}

/// Starts a dump in the form DUMP_COMPRESS names whose command writes its
/// pid to `pidfile` and some data, then hangs; returns once the job has
/// read the data and written what it writes of it before the end.
pub fn hanging_dump(dir: &Path, pidfile: &Path, compress: &str) -> (Running, i32) {
    const DATA: u64 = 100_000;
    let command = format!(
        "sh -c 'echo $$ > {}; head -c {DATA} /dev/urandom; exec sleep 60'",
        pidfile.display()
    );
    let running = start(dump_job(dir, &command).env("DUMP_COMPRESS", compress));
    wait_for("the dump command to start", Duration::from_secs(30), || {
        fs::read_to_string(pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    // Less than one block of input: gzip has written its header and holds
    // the rest until the block fills, zstd holds it all until its job
    // fills, none has written it all. The temp file then stays as it is
    // while the command sleeps.
    let (read, held) = match compress {
        "gzip" => (0, 10),
        "zstd" => (DATA, 0),
        _ => (DATA, DATA),
    };
    let io = format!("/proc/{}/io", running.pid());
    wait_for("the job to take the data", Duration::from_secs(30), || {
        let has_read = fs::read_to_string(&io).is_ok_and(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= read)
        });
        let part = temps(dir).pop().map(|name| dir.join(name));
        has_read
            && part
                .and_then(|p| fs::metadata(p).ok())
                .is_some_and(|m| m.len() == held)
    });
    let pid = fs::read_to_string(pidfile).unwrap().trim().parse().unwrap();
    (running, pid)
}

pub fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn sigterm_and_sigint_stop_the_command_and_discard_the_dump() {
    let sb = Sandbox::new("signals");
    let (dir, before) = two_good_dumps(&sb, "dumps");
    for (signal, name, code, compress) in [
        (libc::SIGTERM, "SIGTERM", 143, "gzip"),
        (libc::SIGINT, "SIGINT", 130, "gzip"),
        (libc::SIGTERM, "SIGTERM", 143, "zstd"),
        (libc::SIGTERM, "SIGTERM", 143, "none"),
    ] {
        let pidfile = sb.path(&format!("{name}-{compress}.pid"));
        let (running, child) = hanging_dump(&dir, &pidfile, compress);
        assert_eq!(temps(&dir).len(), 1);
        running.signal(signal);
        let r = running.wait(Duration::from_secs(30));
        r.expect(code).stderr_has(&format!("stopped by {name}"));
        wait_for("the dump command to exit", Duration::from_secs(10), || {
            !alive(child)
        });
        untouched(&dir, &before, &r);
    }
}

/// The crash sweep removes what a killed run left, whatever its form.
#[test]
fn after_sigkill_earlier_dumps_are_intact_and_the_next_run_cleans_up() {
    let sb = Sandbox::new("sigkill");
    let (dir, _) = two_good_dumps(&sb, "dumps");
    for compress in FORMS {
        let before = contents(&dir);
        let (running, child) = hanging_dump(&dir, &sb.path(&format!("{compress}.pid")), compress);
        running.signal(libc::SIGKILL);
        // The job had no chance to stop its command, which still holds the
        // job's stderr: stop it here before collecting the job's output.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(-child, libc::SIGKILL) };
        let r = running.wait(Duration::from_secs(30));
        assert_eq!(
            temps(&dir).len(),
            1,
            "a killed run leaves its temp file\n{r}"
        );
        let mut earlier = contents(&dir);
        earlier.retain(|name, _| !name.ends_with(".part"));
        assert_eq!(earlier, before, "earlier dumps changed\n{r}");

        // No smaller than the good dumps: the largest is held apart.
        let r = run(dump_job(&dir, "echo good next").env("DUMP_KEEP", "2"));
        published(&r);
        r.stderr_has("left by an interrupted run");
        assert!(temps(&dir).is_empty(), "{r}");
        assert_eq!(dumps(&dir).len(), 2);
    }
}

#[test]
fn a_second_run_while_one_holds_the_lock_exits_75_and_changes_nothing() {
    let sb = Sandbox::new("lock");
    let (dir, _) = two_good_dumps(&sb, "dumps");
    let (running, _) = hanging_dump(&dir, &sb.path("dump.pid"), "gzip");
    let during = snapshot(&dir);
    let r = run(&mut dump_job(&dir, "echo second"));
    r.expect(75).stderr_has("another dump-database run holds");
    assert_eq!(snapshot(&dir), during, "{r}");
    running.signal(libc::SIGTERM);
    running.wait(Duration::from_secs(30)).expect(143);
}

#[test]
fn memory_does_not_grow_with_the_dump() {
    let sb = Sandbox::new("memory");
    let dir = sb.mkdir("dumps");
    let dump = |compress: &str, mib: u32| {
        let command = format!("sh -c 'yes \"INSERT INTO t VALUES (42, 0.5);\" | head -c {mib}M'");
        let mut c = dump_job(&dir, &command);
        // Small and large dumps alternate here on purpose.
        c.env("DUMP_SHRINK_LIMIT", "0");
        measure(c.env("DUMP_GZIP_LEVEL", "1").env("DUMP_COMPRESS", compress))
    };
    // zstd's workers reach their full buffers once each has had a 4 MiB job.
    for (compress, small) in [("gzip", 1), ("zstd", 32), ("none", 1)] {
        let (small, large) = (dump(compress, small), dump(compress, 256));
        eprintln!(
            "{compress}: small dump {} KiB peak, {:?}; 256 MiB dump: {} KiB peak, {:?}",
            small.rss_kib, small.wall, large.rss_kib, large.wall
        );
        let (small, large) = (small.rss_kib, large.rss_kib);
        assert!(
            large < small + 4096,
            "{compress}: memory grew with the dump: {small} KiB -> {large} KiB"
        );
    }
}

/// MariaDB, as docs/dump-database.md documents it: the password in an option file
/// the job gets from the service's credentials directory, never on a
/// command line.
#[test]
#[ignore = "starts MariaDB as root: tests/run"]
fn mariadb_dump_with_an_option_file_restores_to_equal_tables() {
    let sb = Sandbox::new("mariadb-roundtrip");
    let db = Mariadb::start(&sb);
    let password = "Pa55-in-an-option-file";
    db.sql(
        "",
        &format!(
            "CREATE DATABASE shop;
             CREATE USER backup@localhost IDENTIFIED BY '{password}';
             GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON shop.* TO backup@localhost;"
        ),
    );
    db.sql(
        "shop",
        "CREATE TABLE customers (id INT PRIMARY KEY, name TEXT NOT NULL, note TEXT,
                                 joined DATETIME) CHARACTER SET utf8mb4;
         CREATE TABLE orders (id INT PRIMARY KEY, customer INT, total DECIMAL(12,2), raw BLOB);
         INSERT INTO customers
           SELECT seq, CONCAT('customer ', seq),
                  IF(seq % 7 = 0, NULL, CONCAT('quote '' tab \\t backslash \\\\ é ✓ ', MD5(seq))),
                  '2024-01-01' + INTERVAL seq MINUTE
           FROM seq_1_to_3000;
         INSERT INTO orders SELECT seq, 1 + seq % 3000, seq * 1.25, UNHEX(MD5(seq))
           FROM seq_1_to_6000;",
    );
    let credentials = sb.mkdir("credentials");
    let option_file = credentials.join("my.cnf");
    fs::write(
        &option_file,
        format!(
            "[client]\nuser=backup\npassword={password}\nsocket={}\n",
            db.socket.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&option_file, fs::Permissions::from_mode(0o600)).unwrap();
    let dir = sb.mkdir("dumps");
    let command =
        "mariadb-dump --defaults-extra-file=${CREDENTIALS_DIRECTORY}/my.cnf --single-transaction shop";
    let r = run(dump_job(&dir, command).env("CREDENTIALS_DIRECTORY", &credentials));
    let (path, _) = published(&r);
    assert!(!r.stderr.contains(password), "{r}");

    db.restore(&path, "restored");
    for table in ["customers", "orders"] {
        let select = format!("SELECT * FROM {table} ORDER BY id");
        let original = db.sql("shop", &select);
        assert!(original.lines().count() >= 3000, "{table}: {original:.200}");
        assert_eq!(
            original,
            db.sql("restored", &select),
            "table {table} differs after restore"
        );
    }
}
