//! Off-host copies: every good dump copied into a restic repository served
//! by `rclone serve restic` on a second host (a network namespace reached
//! over a veth link), verified, kept by its own rules on this job's
//! snapshots only, by the job's identity (machine ID and unit), restorable;
//! an outage, a SIGKILL mid-upload and bad settings never lose a dump, and
//! the next run catches up in order. Copies run as their units run them:
//! in a cgroup named as the unit, and, for another host, with another
//! `/etc/machine-id` (`harness::in_unit`).

use crate::command::valid_status;
use crate::container::{Container, Host, Release};
use crate::dump::{dump_job, gunzip, postgres_with_shop, published, with_pg};
use crate::harness::{
    cheap_restic_key, cmd, in_unit, is_root, job, run, sh, snapshot, start, wait_for, Run, Sandbox,
    PATH, TIMEOUT,
};
use crate::mariadb::Mariadb;
use crate::monitoring::{came_by_smtp, listed_and_served, listening, mails, scrape, value};
use chrono::TimeZone;
use jobkit::dumpfile::{Dump, Form, Manifest, Names, Stamp, DEFAULT_DIR};
use jobkit::identity::{Identity, APP_ID};
use jobkit::record::copy::{CheckResult, CopyResult, DestinationKind, Record};
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const PASSWORD: &str = "correct horse battery staple";

/// A second host: a network namespace of its own, linked to this one by a
/// veth pair, serving a restic repository over HTTP with rclone.
pub struct Remote {
    ns: String,
    link: String,
    pub addr: String,
    /// The repository's files, as the remote host stores them.
    pub dir: PathBuf,
    server: Option<Child>,
}

impl Remote {
    /// A remote host linked to this one.
    pub fn new(sb: &Sandbox) -> Remote {
        Remote::linked(sb, None)
    }

    /// A remote host linked to the network of the process `pid` (a
    /// container's), or to this host's.
    pub fn linked(sb: &Sandbox, pid: Option<i32>) -> Remote {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        // Twenty a process, whose remote hosts live at once in parallel tests.
        let id = (std::process::id() as usize % 50) * 20 + n % 20;
        let (ns, link, peer) = (
            format!("timerapps-remote-{id}"),
            format!("trh{id}"),
            format!("trr{id}"),
        );
        // A /30 of its own: the dumping host's side first, the remote's second.
        let (third, fourth) = (id / 64, (id % 64) * 4);
        let host_addr = format!("10.231.{third}.{}", fourth + 1);
        let addr = format!("10.231.{third}.{}", fourth + 2);
        let (move_link, inside) = match pid {
            Some(pid) => (
                format!("ip link set {link} netns {pid}"),
                format!("nsenter -t {pid} -n"),
            ),
            None => (String::new(), String::new()),
        };
        sh(&format!(
            "ip netns del {ns} 2>/dev/null || true; ip link del {link} 2>/dev/null || true
             ip netns add {ns}
             ip link add {link} type veth peer name {peer}
             ip link set {peer} netns {ns}
             {move_link}
             {inside} ip addr add {host_addr}/30 dev {link}
             {inside} ip link set {link} up
             ip -n {ns} addr add {addr}/30 dev {peer}
             ip -n {ns} link set {peer} up
             ip -n {ns} link set lo up"
        ));
        Remote {
            ns,
            link,
            addr,
            dir: sb.mkdir("remote-repository"),
            server: None,
        }
    }

    pub fn url(&self) -> String {
        format!("rest:http://{}:8000/", self.addr)
    }

    pub fn start(&mut self) {
        let server = cmd("ip")
            .args(["netns", "exec", &self.ns, "rclone", "serve", "restic"])
            .arg("--addr")
            .arg(format!("{}:8000", self.addr))
            .arg(&self.dir)
            .args(["--config", "/dev/null", "--log-level", "ERROR"])
            .stdout(Stdio::null())
            .spawn()
            .expect("rclone starts");
        self.server = Some(server);
        // Asked on the remote host itself: this host may not route there.
        let probe = format!("exec 3<>/dev/tcp/{}/8000", self.addr);
        wait_for("rclone serve restic to listen", TIMEOUT, || {
            cmd("ip")
                .args(["netns", "exec", &self.ns, "bash", "-c", &probe])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Slows this host's side of the link to `rate` (tc's words), or back
    /// to full speed with `None`.
    pub fn throttle(&self, rate: Option<&str>) {
        let link = &self.link;
        match rate {
            Some(rate) => sh(&format!(
                "tc qdisc replace dev {link} root tbf rate {rate} burst 32kbit latency 2s"
            )),
            None => sh(&format!("tc qdisc del dev {link} root 2>/dev/null || true")),
        };
    }

    /// Makes the repository, with a key that opens in milliseconds; the
    /// test's restic reads it where the remote host keeps it.
    pub fn init(&self, sb: &Sandbox) -> Restic {
        let restic = Restic::new(sb, &self.dir.to_string_lossy());
        restic.run(&["init"]).ok();
        let master = restic.run(&["cat", "masterkey"]).ok().stdout.clone();
        cheap_restic_key(&self.dir, PASSWORD, &master);
        restic
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.stop();
        // A link moved into a container is gone with it already.
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// restic run by the test, as a host that lost everything but the
/// repository's password would run it.
pub struct Restic {
    repository: String,
    pub password: PathBuf,
    program: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub hostname: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl Restic {
    pub fn new(sb: &Sandbox, repository: &str) -> Restic {
        let password = sb.path("restic-password");
        fs::write(&password, PASSWORD).unwrap();
        Restic {
            repository: repository.to_owned(),
            password,
            program: PathBuf::from("restic"),
        }
    }

    pub fn command(&self) -> Command {
        let mut c = cmd(&self.program);
        c.env("RESTIC_REPOSITORY", &self.repository)
            .env("RESTIC_PASSWORD_FILE", &self.password)
            .arg("--no-cache");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.command().args(args))
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        let out = self.run(&["snapshots", "--json"]).ok().stdout.clone();
        serde_json::from_str::<Option<Vec<Snapshot>>>(&out)
            .unwrap()
            .unwrap_or_default()
    }

    /// The one file of snapshot `id`, written to `to`.
    pub fn restore(&self, snapshot: &Snapshot, to: &Path) {
        let mut c = self.command();
        c.args(["dump", &snapshot.id, &snapshot.paths[0]])
            .stdout(fs::File::create(to).unwrap());
        let status = c.status().unwrap();
        assert!(status.success(), "restic dump {}", snapshot.id);
    }
}

impl Snapshot {
    pub fn stamp(&self) -> Option<&str> {
        self.tags.iter().find_map(|t| t.strip_prefix("stamp="))
    }

    /// Whether it carries the identity of `job`.
    fn of(&self, job: &Job) -> bool {
        job.tags().iter().all(|t| self.tags.contains(t))
    }

    /// Made before copies carried an identity.
    fn legacy(&self) -> bool {
        !self
            .tags
            .iter()
            .any(|t| t.starts_with("machine=") || t.starts_with("unit="))
    }
}

/// A dump job as its copy unit sees it: the unit, and the machine it runs
/// on (None: this one; Some: a file with another machine's ID).
struct Job {
    copy_unit: String,
    machine: Option<PathBuf>,
}

impl Job {
    fn new(copy_unit: &str, machine: Option<PathBuf>) -> Job {
        Job {
            copy_unit: copy_unit.to_owned(),
            machine,
        }
    }

    /// The job's identity, its machine's as `systemd-id128` derives it.
    fn identity(&self) -> Identity {
        let mut id = cmd("systemd-id128");
        id.args(["machine-id", &format!("--app-specific={APP_ID}")]);
        let machine = run(&mut in_unit(
            &id,
            "timerapps-it.service",
            self.machine.as_deref(),
        ))
        .ok()
        .stdout
        .trim()
        .to_owned();
        let unit = jobkit::identity::dump_unit_of_copy(&self.copy_unit).unwrap();
        Identity { machine, unit }
    }

    fn tags(&self) -> Vec<String> {
        self.identity().tags().to_vec()
    }

    /// `c`, run as this job's copy unit runs it.
    fn run(&self, c: &Command) -> Command {
        in_unit(c, &self.copy_unit, self.machine.as_deref())
    }
}

/// Another machine's ID, in a file of the sandbox.
fn other_machine(sb: &Sandbox, id: &str) -> PathBuf {
    let path = sb.path(&format!("machine-id-{id}"));
    fs::write(&path, format!("{}\n", id.repeat(32 / id.len()))).unwrap();
    path
}

/// The copy of the dumps of `name` in `dir`, as its unit runs it: the copy
/// unit of the instance `name` on this machine.
fn copy(sb: &Sandbox, dir: &Path, name: &str, repository: &str, password: &Path) -> Command {
    let job = Job::new(&format!("dump-database-copy@{name}.service"), None);
    copy_of(&job, sb, dir, name, repository, password)
}

/// The copy of the dumps of `name` in `dir`, as `job`'s unit runs it.
fn copy_of(
    job: &Job,
    sb: &Sandbox,
    dir: &Path,
    name: &str,
    repository: &str,
    password: &Path,
) -> Command {
    let mut c = crate::harness::job("dump-database-copy");
    c.env("DUMP_DIR", dir)
        .env("DUMP_NAME", name)
        .env("COPY_REPOSITORY", repository)
        .env("COPY_PASSWORD_FILE", password)
        .env("COPY_HOST", "db1")
        .env("COPY_RESULT", sb.path(&format!("copy-{name}.json")))
        .env("CACHE_DIRECTORY", sb.mkdir("cache"));
    job.run(&c)
}

fn record(sb: &Sandbox, name: &str) -> Record {
    jobkit::record::read::<Record>(&sb.path(&format!("copy-{name}.json")))
        .unwrap()
        .expect("a copy record")
}

/// The good dumps of `name` in `dir`, oldest first.
fn local_dumps(dir: &Path, name: &str) -> Vec<Dump> {
    let mut dumps = Names::new(name, "sql").dumps(dir).unwrap();
    dumps.reverse();
    dumps
}

fn stamps(dumps: &[Dump]) -> Vec<String> {
    dumps.iter().map(|d| d.stamp.to_string()).collect()
}

fn snapshot_stamps(snapshots: &[Snapshot]) -> Vec<String> {
    snapshots
        .iter()
        .map(|s| s.stamp().unwrap_or_default().to_owned())
        .collect()
}

/// The restic processes `pid` runs, by their pids.
fn restic_children(pid: i32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter(|child| {
            fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|c| c == "restic\n")
        })
        .collect()
}

/// A SQLite database whose dump grows by a row at each call of `grow`.
struct Sqlite {
    db: PathBuf,
}

impl Sqlite {
    fn new(sb: &Sandbox) -> Sqlite {
        Sqlite::named(sb, "shop")
    }

    /// A database of its own, `NAME.db`.
    fn named(sb: &Sandbox, name: &str) -> Sqlite {
        let db = sb.path(&format!("{name}.db"));
        sh(&format!(
            "sqlite3 '{}' \"CREATE TABLE t (n int, s text); \
             WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500) \
             INSERT INTO t SELECT n, 'row ' || n FROM c;\"",
            db.display()
        ));
        Sqlite { db }
    }

    fn grow(&self) {
        sh(&format!(
            "sqlite3 '{}' \"INSERT INTO t SELECT max(n) + 1, 'row' FROM t;\"",
            self.db.display()
        ));
    }

    fn dump(&self, dir: &Path) -> Command {
        let mut c = dump_job(
            dir,
            &format!("sqlite3 -readonly {} .dump", self.db.display()),
        );
        c.env("DUMP_NAME", "shop");
        c
    }

    fn rows(db: &Path) -> String {
        sh(&format!(
            "sqlite3 '{}' 'SELECT * FROM t ORDER BY n'",
            db.display()
        ))
    }
}

/// A sandbox, a remote host serving restic, and its new repository.
fn remote_repository(test: &str) -> (Sandbox, Remote, Restic) {
    assert!(is_root(), "run as root: tests/run");
    let sb = Sandbox::new(test);
    let mut remote = Remote::new(&sb);
    remote.start();
    let restic = remote.init(&sb);
    (sb, remote, restic)
}

/// `n` dumps of a SQLite database that grows before each, in `dumps`.
fn sqlite_dumps(sb: &Sandbox, n: usize) -> (Sqlite, PathBuf) {
    let db = Sqlite::new(sb);
    let dir = sb.mkdir("dumps");
    for _ in 0..n {
        db.grow();
        published(&run(&mut db.dump(&dir)));
    }
    (db, dir)
}

#[test]
#[ignore = "needs root for the remote host's network namespace, restic and rclone: tests/run"]
fn good_dumps_are_copied_verified_tagged_and_restore_to_equal_tables() {
    let (sb, remote, restic) = remote_repository("copy-sqlite");
    let (db, dir) = sqlite_dumps(&sb, 3);
    let local = local_dumps(&dir, "shop");
    let before = snapshot(&dir);

    let r = run(&mut copy(
        &sb,
        &dir,
        "shop",
        &remote.url(),
        &restic.password,
    ));
    r.ok();
    assert_eq!(r.stdout.matches("read back and verified").count(), 3, "{r}");
    assert!(
        r.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("dump-database-copy: 3 dump(s) copied to rest:http://"),
        "{r}"
    );
    assert_eq!(snapshot(&dir), before, "the copy changed a local dump\n{r}");
    let snapshots = restic.snapshots();
    assert_eq!(snapshot_stamps(&snapshots), stamps(&local), "{r}");
    // The job's identity: this machine's ID for timerapps, as systemd
    // derives it, and the dump unit whose copy unit ran it.
    let [machine, unit] = Job::new("dump-database-copy@shop.service", None)
        .identity()
        .tags();
    assert_eq!(unit, "unit=dump-database@shop.service");
    for (s, dump) in snapshots.iter().zip(&local) {
        assert_eq!(s.hostname, "db1");
        assert_eq!(
            s.tags,
            [
                "timerapps".to_owned(),
                "dump=shop".to_owned(),
                machine.clone(),
                unit.clone(),
                format!("stamp={}", dump.stamp)
            ]
        );
        let raw = Names::new("shop", "sql").dump(&dump.stamp, Form::None);
        assert_eq!(s.paths, [format!("/{raw}")]);
    }
    let rec = record(&sb, "shop");
    assert_eq!(rec.result, CopyResult::Copied);
    assert_eq!(rec.destination, DestinationKind::Restic);
    assert_eq!(rec.copied.len(), 3);
    assert_eq!(rec.waiting, 0);
    assert_eq!(
        rec.newest.as_ref().map(|n| n.stamp),
        Some(local[2].stamp.unix_seconds())
    );
    let check = rec.kind.check.expect("the first run checks the repository");
    assert!(check.subset.ends_with("/30"), "{}", check.subset);
    assert!(check.last_success.is_some());

    // A second run copies nothing twice, and checks again only tomorrow.
    let again = run(&mut copy(
        &sb,
        &dir,
        "shop",
        &remote.url(),
        &restic.password,
    ));
    again.ok();
    assert!(again.stdout.contains(" 0 dump(s) copied"), "{again}");
    assert!(!again.stdout.contains("checked the repository"), "{again}");
    assert_eq!(restic.snapshots().len(), 3);

    // Restored by restic alone, each copy is its dump's contents, and the
    // newest gives the database's tables.
    for (s, dump) in restic.snapshots().iter().zip(&local) {
        let restored = sb.path("restored.sql");
        restic.restore(s, &restored);
        let manifest = dump.manifest().unwrap().unwrap();
        assert_eq!(
            sha256(&restored),
            manifest.content_sha256.clone().unwrap(),
            "{}",
            s.id
        );
    }
    let newest = restic.snapshots().pop().unwrap();
    let restored = sb.path("restored.sql");
    restic.restore(&newest, &restored);
    let copy_db = sb.path("restored.db");
    sh(&format!(
        "sqlite3 -bail '{}' < '{}'",
        copy_db.display(),
        restored.display()
    ));
    assert_eq!(Sqlite::rows(&copy_db), Sqlite::rows(&db.db));
    assert_eq!(Sqlite::rows(&copy_db).lines().count(), 503);
}

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    jobkit::dumpfile::manifest::hex(&Sha256::digest(fs::read(path).unwrap()))
}

#[test]
#[ignore = "needs root, PostgreSQL, MariaDB, restic and rclone: tests/run"]
fn postgres_and_mariadb_dumps_restore_from_the_repository_to_equal_tables() {
    let (sb, remote, restic) = remote_repository("copy-servers");

    let pg = postgres_with_shop(&sb);
    let pg_dir = sb.mkdir("pg-dumps");
    let command = format!("{} --no-password shop", pg.program("pg_dump").display());
    let mut c = dump_job(&pg_dir, &command);
    c.env("DUMP_NAME", "pg");
    published(&run(with_pg(&mut c, &pg, "postgres")));
    run(&mut copy(
        &sb,
        &pg_dir,
        "pg",
        &remote.url(),
        &restic.password,
    ))
    .ok();

    let maria = Mariadb::start(&sb);
    maria.sql("", "CREATE DATABASE shop");
    maria.sql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text, price decimal(10,2)); \
         INSERT INTO items SELECT seq, concat('item ', seq), seq * 1.5 FROM seq_1_to_2000;",
    );
    let maria_dir = sb.mkdir("maria-dumps");
    let mut c = dump_job(
        &maria_dir,
        &format!(
            "mariadb-dump --no-defaults --socket={} --user=root shop",
            maria.socket.display()
        ),
    );
    c.env("DUMP_NAME", "maria");
    published(&run(&mut c));
    run(&mut copy(
        &sb,
        &maria_dir,
        "maria",
        &remote.url(),
        &restic.password,
    ))
    .ok();

    let snapshots = restic.snapshots();
    let of = |name: &str| {
        snapshots
            .iter()
            .find(|s| s.tags.contains(&format!("dump={name}")))
            .unwrap_or_else(|| panic!("no snapshot of {name}: {snapshots:?}"))
    };
    let pg_sql = sb.path("pg-restored.sql");
    restic.restore(of("pg"), &pg_sql);
    pg.restore(&pg_sql, "restored").ok();
    for table in ["customers", "orders"] {
        let query = format!("COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT");
        let original = pg.sql("shop", &query);
        assert!(original.lines().count() >= 3000);
        assert_eq!(original, pg.sql("restored", &query), "table {table}");
    }

    let maria_sql = sb.path("maria-restored.sql");
    restic.restore(of("maria"), &maria_sql);
    maria.sql("", "CREATE DATABASE restored");
    sh(&format!(
        "mariadb --no-defaults --socket='{}' --user=root restored < '{}'",
        maria.socket.display(),
        maria_sql.display()
    ));
    let query = "SELECT * FROM items ORDER BY id";
    let original = maria.sql("shop", query);
    assert_eq!(original.lines().count(), 2000);
    assert_eq!(original, maria.sql("restored", query));
}

#[test]
#[ignore = "needs root for the remote host's network namespace, restic and rclone: tests/run"]
fn with_the_remote_down_dumps_go_on_the_copy_fails_and_then_catches_up_in_order() {
    let (sb, mut remote, restic) = remote_repository("copy-outage");
    let (db, dir) = sqlite_dumps(&sb, 1);
    run(&mut copy(
        &sb,
        &dir,
        "shop",
        &remote.url(),
        &restic.password,
    ))
    .ok();
    let first = record(&sb, "shop");

    remote.stop();
    for _ in 0..3 {
        db.grow();
        published(&run(&mut db.dump(&dir)));
        let before = snapshot(&dir);
        let r = run(&mut copy(
            &sb,
            &dir,
            "shop",
            &remote.url(),
            &restic.password,
        ));
        r.expect(1);
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
        assert!(r.stderr.contains("connection refused"), "{r}");
        assert_eq!(snapshot(&dir), before, "{r}");
    }
    let failed = record(&sb, "shop");
    assert_eq!(failed.result, CopyResult::Failed);
    assert!(failed
        .reason
        .as_deref()
        .unwrap()
        .contains("connection refused"));
    assert_eq!(failed.waiting, 3);
    assert_eq!(failed.last_success, first.last_success);
    assert_eq!(failed.newest, first.newest);

    remote.start();
    let r = run(&mut copy(
        &sb,
        &dir,
        "shop",
        &remote.url(),
        &restic.password,
    ));
    r.ok();
    let local = local_dumps(&dir, "shop");
    let copied: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("copied "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let missed: Vec<String> = local[1..]
        .iter()
        .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(copied, missed, "the missed dumps, oldest first\n{r}");
    assert_eq!(snapshot_stamps(&restic.snapshots()), stamps(&local));
    let caught_up = record(&sb, "shop");
    assert_eq!(caught_up.result, CopyResult::Copied);
    assert_eq!(caught_up.waiting, 0);
}

#[test]
#[ignore = "needs root for the remote host's network namespace, restic and rclone: tests/run"]
fn a_copy_killed_mid_upload_leaves_no_snapshot_and_the_next_run_copies_it_again() {
    let (sb, remote, restic) = remote_repository("copy-killed");
    // 30 MB of dump that restic cannot compress away.
    let db = sb.path("big.db");
    sh(&format!(
        "sqlite3 '{}' \"CREATE TABLE b (x blob); \
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 15000) \
         INSERT INTO b SELECT randomblob(1000) FROM c;\"",
        db.display()
    ));
    let dir = sb.mkdir("dumps");
    let mut c = dump_job(&dir, &format!("sqlite3 -readonly {} .dump", db.display()));
    c.env("DUMP_NAME", "big");
    published(&run(&mut c));

    remote.throttle(Some("4mbit"));
    let copying = start(&mut copy(&sb, &dir, "big", &remote.url(), &restic.password));
    let data = remote.dir.join("data");
    // Killed once restic has sent part of the dump's data.
    wait_for("restic to upload a pack", TIMEOUT, || {
        walkdir::WalkDir::new(&data)
            .into_iter()
            .flatten()
            .any(|e| e.file_type().is_file())
    });
    let restics = restic_children(copying.pid());
    assert!(!restics.is_empty(), "the copy runs restic");
    copying.signal(libc::SIGKILL);
    let killed = copying.wait(TIMEOUT);
    assert_eq!(killed.code(), None, "{killed}");
    // restic dies with it: nothing more arrives, and no snapshot counts.
    // Its lock is stale only once its process is gone, reaped too (restic
    // asks whether its PID still exists): wait for that, by its pid.
    wait_for("the killed copy's restic to be gone", TIMEOUT, || {
        restics
            .iter()
            .all(|pid| !Path::new("/proc").join(pid).exists())
    });
    remote.throttle(None);
    assert!(restic.snapshots().is_empty());

    let r = run(&mut copy(&sb, &dir, "big", &remote.url(), &restic.password));
    r.ok();
    assert_eq!(r.stdout.matches("read back and verified").count(), 1, "{r}");
    let snapshots = restic.snapshots();
    assert_eq!(
        snapshot_stamps(&snapshots),
        stamps(&local_dumps(&dir, "big"))
    );
    restic.run(&["check", "--read-data"]).ok();
}

/// A copy that does not hold what the dump command wrote is no copy: it
/// is removed again and the run fails; a repository with a damaged pack
/// fails its check, which the record keeps.
#[test]
#[ignore = "needs root for the remote host's network namespace, restic and rclone: tests/run"]
fn a_copy_that_differs_is_removed_and_a_damaged_repository_fails_its_check() {
    let (sb, remote, restic) = remote_repository("copy-differs");
    let (_, dir) = sqlite_dumps(&sb, 2);
    let dumps = local_dumps(&dir, "shop");
    let again = || {
        run(&mut copy(
            &sb,
            &dir,
            "shop",
            &remote.url(),
            &restic.password,
        ))
    };
    let newest = dumps[1].manifest_path();
    let mut m = Manifest::from_json(&fs::read_to_string(&newest).unwrap()).unwrap();
    let truth = m.content_sha256.replace("0".repeat(64)).unwrap();
    fs::write(&newest, m.to_json()).unwrap();
    let r = again();
    r.expect(1);
    assert!(
        r.stderr
            .contains("decompresses to other bytes than its manifest's content_sha256"),
        "{r}"
    );
    // The older dump is in, the one that differed is not.
    assert_eq!(snapshot_stamps(&restic.snapshots()), stamps(&dumps[..1]));
    assert_eq!(record(&sb, "shop").result, CopyResult::Failed);
    m.content_sha256 = Some(truth);
    fs::write(&newest, m.to_json()).unwrap();
    again().ok();
    assert_eq!(snapshot_stamps(&restic.snapshots()), stamps(&dumps));

    // A pack cut short on the remote host, and the day's check due.
    let pack = walkdir::WalkDir::new(remote.dir.join("data"))
        .into_iter()
        .flatten()
        .find(|e| e.file_type().is_file())
        .unwrap();
    let bytes = fs::read(pack.path()).unwrap();
    fs::write(pack.path(), &bytes[..bytes.len() - 1]).unwrap();
    let path = sb.path("copy-shop.json");
    let text = fs::read_to_string(&path).unwrap();
    let mut rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    rec["check"]["started"] = 0.into();
    fs::write(&path, rec.to_string()).unwrap();
    let r = again();
    r.expect(1);
    assert!(r.stderr.contains("restic check on "), "{r}");
    let check = record(&sb, "shop").kind.check.unwrap();
    assert_eq!(check.result, CheckResult::Failed);
    assert!(check.reason.is_some());
    // When a check last passed: the first run's, kept.
    assert!(check.last_success.is_some_and(|at| at < check.started));
}

#[test]
#[ignore = "needs root for the remote host's network namespace, restic and rclone: tests/run"]
fn bad_settings_fail_with_one_line_naming_the_problem_and_touch_no_dump() {
    let (sb, remote, restic) = remote_repository("copy-bad");
    let (_, dir) = sqlite_dumps(&sb, 1);
    let before = snapshot(&dir);
    let wrong = sb.path("wrong-password");
    fs::write(&wrong, "not the password").unwrap();
    let missing = sb.path("credentials/timerapps_restic-password");
    let nowhere = format!("{}nothing-here", remote.url());
    for (repository, password, code, says) in [
        (
            remote.url(),
            wrong.as_path(),
            1,
            "wrong password or no key found; check the repository password",
        ),
        (
            remote.url(),
            missing.as_path(),
            78,
            "put the repository's password in \
             /etc/timerapps/credentials/copies/dump-database@shop/restic-password",
        ),
        (
            nowhere,
            restic.password.as_path(),
            1,
            "is there a repository at COPY_REPOSITORY? Create it once with \"restic init\"",
        ),
    ] {
        let r = run(&mut copy(&sb, &dir, "shop", &repository, password));
        r.expect(code);
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
        assert!(r.stderr.contains(says), "{r}");
        assert!(r.stderr.starts_with("dump-database-copy: "), "{r}");
        assert_eq!(snapshot(&dir), before, "{r}");
        assert_eq!(record(&sb, "shop").result, CopyResult::Failed);
    }
    assert!(restic.snapshots().is_empty());
}

#[test]
#[ignore = "needs root for the remote host's network namespace, restic and rclone: tests/run"]
fn retention_removes_only_this_jobs_own_snapshots_beyond_its_rules() {
    let (sb, remote, restic) = remote_repository("copy-scope");
    let (db, dir) = sqlite_dumps(&sb, 4);
    // Another host's copies of a job of the same name (its own machine ID),
    // and another job's copies from this host, in the same repository.
    let db2 = Job::new(
        "dump-database-copy@shop.service",
        Some(other_machine(&sb, "d2")),
    );
    let mut other_host = copy_of(&db2, &sb, &dir, "shop", &remote.url(), &restic.password);
    other_host
        .env("COPY_HOST", "db2")
        .env("COPY_RESULT", sb.path("other-host.json"));
    run(&mut other_host).ok();
    let other_dir = sb.mkdir("other");
    for _ in 0..3 {
        let mut c = db.dump(&other_dir);
        c.env("DUMP_NAME", "other");
        published(&run(&mut c));
    }
    run(&mut copy(
        &sb,
        &other_dir,
        "other",
        &remote.url(),
        &restic.password,
    ))
    .ok();
    run(&mut copy(
        &sb,
        &dir,
        "shop",
        &remote.url(),
        &restic.password,
    ))
    .ok();
    let count = |host: &str, job: &str| {
        restic
            .snapshots()
            .iter()
            .filter(|s| s.hostname == host && s.tags.contains(&format!("dump={job}")))
            .count()
    };
    assert_eq!(
        (
            count("db1", "shop"),
            count("db2", "shop"),
            count("db1", "other")
        ),
        (4, 4, 3)
    );

    let mut keep_two = copy(&sb, &dir, "shop", &remote.url(), &restic.password);
    keep_two.env("COPY_KEEP", "2");
    let r = run(&mut keep_two);
    r.ok();
    assert!(r.stdout.contains("forgot 2 snapshot(s)"), "{r}");
    assert_eq!(
        (
            count("db1", "shop"),
            count("db2", "shop"),
            count("db1", "other")
        ),
        (2, 4, 3),
        "{r}"
    );
    let local = local_dumps(&dir, "shop");
    let kept: Vec<String> = restic
        .snapshots()
        .iter()
        .filter(|s| s.hostname == "db1" && s.tags.contains(&"dump=shop".to_owned()))
        .map(|s| s.stamp().unwrap().to_owned())
        .collect();
    assert_eq!(kept, stamps(&local[2..]), "the two newest stay\n{r}");

    // The dumps the repository's rules would forget at once are not sent
    // again: a second run copies nothing and forgets nothing.
    let mut again = copy(&sb, &dir, "shop", &remote.url(), &restic.password);
    again.env("COPY_KEEP", "2");
    let r = run(&mut again);
    assert!(r.ok().stdout.contains(" 0 dump(s) copied"), "{r}");
    assert!(!r.stdout.contains("forgot"), "{r}");

    // Another host's backup holds the repository's lock: the copies still
    // go in, and retention waits for the next run.
    let mut holder = restic.command();
    holder
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "slow",
            "--host",
            "db3",
        ])
        .stdin(Stdio::piped());
    let mut holder = start(&mut holder);
    let locks = remote.dir.join("locks");
    wait_for("the other host's lock", TIMEOUT, || {
        fs::read_dir(&locks).is_ok_and(|mut d| d.next().is_some())
    });
    db.grow();
    published(&run(&mut db.dump(&dir)));
    let mut keep_one = copy(&sb, &dir, "shop", &remote.url(), &restic.password);
    keep_one.env("COPY_KEEP", "1");
    let r = run(&mut keep_one);
    r.ok();
    assert!(r.stdout.contains("1 dump(s) copied"), "{r}");
    assert!(
        r.stdout
            .contains("another restic holds the repository's lock (another host's backup?)"),
        "{r}"
    );
    assert_eq!(count("db1", "shop"), 3, "{r}");
    // Its input ends, empty: it stores nothing, and lets go.
    drop(holder.child.stdin.take());
    holder.wait(TIMEOUT);
    let r = run(&mut keep_one);
    assert!(r.ok().stdout.contains("forgot 2 snapshot(s)"), "{r}");
    assert_eq!(count("db1", "shop"), 1, "{r}");
    let local = local_dumps(&dir, "shop");
    let kept: Vec<String> = restic
        .snapshots()
        .iter()
        .filter(|s| s.hostname == "db1" && s.tags.contains(&"dump=shop".to_owned()))
        .map(|s| s.stamp().unwrap().to_owned())
        .collect();
    assert_eq!(kept, stamps(&local[local.len() - 1..]), "{r}");
}

/// The newest copy of `job`'s dumps of `name`, as `timerapps restore
/// --offsite` chooses and reads it, into a file; the library's own call.
fn restored(sb: &Sandbox, job: &Job, name: &str, url: &str, restic: &Restic) -> PathBuf {
    let repository = jobkit::restic::Repository {
        location: url.to_owned(),
        password_file: Some(restic.password.clone()),
        host: "db1".to_owned(),
        connect_timeout: TIMEOUT,
        env: Vec::new(),
    };
    let names = Names::new(name, "sql");
    let opened = jobkit::restic::Restic::open(repository, &names, job.identity()).unwrap();
    let (stamp, snapshot) = opened.copy_of(None).unwrap().expect("a copy of the job");
    let to = sb.path(&format!("restored-{}.sql", job.copy_unit));
    opened
        .dump(&snapshot.id, &stamp, &mut fs::File::create(&to).unwrap())
        .unwrap();
    to
}

/// Two jobs of one DUMP_NAME on one host (the default job and the instance
/// named like its dumps), and the same job on a second host of the same
/// host name (another machine ID): in one repository, each keeps and
/// restores its own copies only.
#[test]
#[ignore = "needs root for the remote host's network namespace, cgroups, restic and rclone: tests/run"]
fn jobs_of_one_dump_name_and_hosts_of_one_host_name_keep_and_restore_their_own_copies() {
    let (sb, remote, restic) = remote_repository("copy-identity");
    let jobs = [
        Job::new("dump-database-copy.service", None),
        Job::new("dump-database-copy@dump.service", None),
        Job::new("dump-database-copy.service", Some(other_machine(&sb, "0f"))),
    ];
    let dbs: Vec<Sqlite> = (0..jobs.len())
        .map(|i| Sqlite::named(&sb, &format!("db{i}")))
        .collect();
    let dirs: Vec<PathBuf> = (0..jobs.len())
        .map(|i| sb.mkdir(&format!("dumps-{i}")))
        .collect();
    for round in 0..3 {
        for (i, job) in jobs.iter().enumerate() {
            dbs[i].grow();
            let mut dump = dbs[i].dump(&dirs[i]);
            dump.env("DUMP_NAME", "dump");
            published(&run(&mut dump));
            let mut c = copy_of(job, &sb, &dirs[i], "dump", &remote.url(), &restic.password);
            c.env("COPY_KEEP", "2")
                .env("COPY_RESULT", sb.path(&format!("copy-{i}.json")));
            let r = run(&mut c);
            r.ok();
            assert!(r.stdout.contains(" 1 dump(s) copied"), "round {round}\n{r}");
        }
    }
    let snapshots = restic.snapshots();
    assert_eq!(snapshots.len(), 6, "two each\n{snapshots:#?}");
    for (i, job) in jobs.iter().enumerate() {
        let own: Vec<Snapshot> = snapshots.iter().filter(|s| s.of(job)).cloned().collect();
        let local = local_dumps(&dirs[i], "dump");
        assert_eq!(
            snapshot_stamps(&own),
            stamps(&local[local.len() - 2..]),
            "job {i}, {}: its two newest, whatever the others forgot\n{snapshots:#?}",
            job.copy_unit
        );
        let newest = local.last().unwrap().manifest().unwrap().unwrap();
        assert_eq!(
            sha256(&restored(&sb, job, "dump", &remote.url(), &restic)),
            newest.content_sha256.unwrap(),
            "job {i}, {}: restore --offsite gives its own newest dump",
            job.copy_unit
        );
    }
}

/// Raising COPY_KEEP sends the older good dumps the rules now keep, and a
/// suspect dump made good by `timerapps accept` (its manifest rewritten as
/// accept does) is sent: each is counted once, held or not.
#[test]
#[ignore = "needs root for the remote host's network namespace, cgroups, restic and rclone: tests/run"]
fn raising_copy_keep_and_accepting_a_dump_send_what_the_rules_keep_now() {
    let (sb, remote, restic) = remote_repository("copy-keep");
    let db = Sqlite::new(&sb);
    let dir = sb.mkdir("dumps");
    let dump = |expect: i32| {
        let r = run(&mut db.dump(&dir));
        r.expect(expect);
    };
    dump(0);
    dump(0);
    // Most rows gone: far smaller than the dumps before, so suspect.
    sh(&format!(
        "sqlite3 '{}' 'DELETE FROM t WHERE n > 10'",
        db.db.display()
    ));
    dump(65);
    sh(&format!(
        "sqlite3 '{}' \"WITH RECURSIVE c(n) AS (SELECT 11 UNION ALL SELECT n + 1 FROM c \
         WHERE n < 600) INSERT INTO t SELECT n, 'row ' || n FROM c;\"",
        db.db.display()
    ));
    dump(0);
    dump(0);
    let all = local_dumps(&dir, "shop");
    assert_eq!(all.len(), 5);
    let copy_keeping = |keep: &str| {
        let mut c = copy(&sb, &dir, "shop", &remote.url(), &restic.password);
        c.env("COPY_KEEP", keep);
        let r = run(&mut c);
        r.ok();
        r
    };
    let held = || snapshot_stamps(&restic.snapshots());
    copy_keeping("2");
    assert_eq!(held(), stamps(&all[3..]));
    let r = copy_keeping("4");
    assert!(r.stdout.contains(" 2 dump(s) copied"), "{r}");
    let good = [&all[0], &all[1], &all[3], &all[4]].map(|d| d.stamp.to_string());
    assert_eq!(held(), good, "{r}");

    let suspect = all[2].manifest_path();
    let mut m = Manifest::from_json(&fs::read_to_string(&suspect).unwrap()).unwrap();
    assert_eq!(m.verdict, jobkit::dumpfile::manifest::Verdict::Suspect);
    m.verdict = jobkit::dumpfile::manifest::Verdict::Good;
    fs::write(&suspect, m.to_json()).unwrap();
    let r = copy_keeping("4");
    assert!(r.stdout.contains(" 1 dump(s) copied"), "{r}");
    assert!(r.stdout.contains("forgot 1 snapshot(s)"), "{r}");
    assert_eq!(held(), stamps(&all[1..]), "{r}");
    let again = copy_keeping("4");
    assert!(again.stdout.contains(" 0 dump(s) copied"), "{again}");
    assert!(!again.stdout.contains("forgot"), "{again}");
}

/// Dumps of `name` in `dir` stamped `stamps`: copies of the real dump
/// `base`, file and manifest, named as the library names them.
fn stamped_dumps(base: &Dump, name: &str, dir: &Path, stamps: &[Stamp]) {
    let names = Names::new(name, "sql");
    let mut m = base.manifest().unwrap().unwrap();
    for stamp in stamps {
        let file = names.dump(stamp, base.form);
        fs::copy(&base.path, dir.join(&file)).unwrap();
        m.dump = file;
        fs::write(dir.join(names.manifest(stamp, base.form)), m.to_json()).unwrap();
    }
}

/// `COPY_KEEP=1 COPY_KEEP_DAILY=7` over ten days of two dumps a day, a
/// run after each: every dump is sent at most once, the repository holds
/// what restic's own forget keeps, and it is pruned once a day at most.
/// `binary`: restic of another version than the host's, first in PATH.
fn a_daily_policy_sends_each_dump_once(test: &str, binary: Option<PathBuf>) {
    let (sb, remote, restic) = remote_repository(test);
    let (_, dir) = sqlite_dumps(&sb, 1);
    let base = local_dumps(&dir, "shop").pop().unwrap();
    let week = sb.mkdir("week");
    let path = match binary {
        Some(binary) => {
            let bin = sb.mkdir("restic-bin");
            std::os::unix::fs::symlink(binary, bin.join("restic")).unwrap();
            format!("{}:{PATH}", bin.display())
        }
        None => PATH.to_owned(),
    };
    let version = run(cmd("restic").env("PATH", &path).arg("version"))
        .ok()
        .stdout
        .clone();
    eprintln!("{version}");
    let today = chrono::Local::now().date_naive();
    let at = |days: u64, hour: u32| {
        let local = (today - chrono::Days::new(days))
            .and_hms_opt(hour, 0, 0)
            .unwrap();
        let time = chrono::Local
            .from_local_datetime(&local)
            .earliest()
            .unwrap();
        Stamp::of(time.with_timezone(&chrono::Utc))
    };
    // Each run's copied dumps into `copied`; how many runs pruned.
    let copy_day = |days: u64, copied: &mut Vec<String>| {
        let mut pruned = 0;
        for hour in [8, 19] {
            stamped_dumps(&base, "shop", &week, &[at(days, hour)]);
            let mut c = copy(&sb, &week, "shop", &remote.url(), &restic.password);
            c.env("COPY_KEEP", "1")
                .env("COPY_KEEP_DAILY", "7")
                .env("PATH", &path);
            let r = run(&mut c);
            r.ok();
            copied.extend(
                r.stdout
                    .lines()
                    .filter_map(|l| l.strip_prefix("copied "))
                    .map(|l| l.split(' ').next().unwrap().to_owned()),
            );
            pruned += r.stdout.matches("pruned the repository").count();
        }
        pruned
    };
    let mut copied = Vec::new();
    let pruned: usize = (2..=10).rev().map(|d| copy_day(d, &mut copied)).sum();
    let mut once = copied.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), copied.len(), "a dump sent twice: {copied:#?}");
    assert_eq!(pruned, 1, "pruned once, the same day");
    // The newest dump of each of the last seven days, as restic's forget
    // keeps them.
    let newest_of_days: Vec<String> = (2..=8).rev().map(|d| at(d, 19).to_string()).collect();
    assert_eq!(snapshot_stamps(&restic.snapshots()), newest_of_days);
    let mut forget = restic.command();
    forget.env("PATH", &path).args([
        "forget",
        "--dry-run",
        "--json",
        "--group-by",
        "",
        "--keep-last",
        "1",
        "--keep-daily",
        "7",
    ]);
    let judged = run(&mut forget).ok().stdout.clone();
    assert!(!judged.contains("\"remove\":[{"), "{judged}");

    // A day after the last prune, the next forget prunes again, once.
    let record = sb.path("copy-shop.json");
    let mut rec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    let at_prune = rec["pruned"].as_i64().expect("a prune recorded");
    rec["pruned"] = (at_prune - 86_400).into();
    fs::write(&record, rec.to_string()).unwrap();
    assert_eq!(copy_day(1, &mut copied), 1);
    let mut once = copied.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), copied.len(), "a dump sent twice: {copied:#?}");
}

#[test]
#[ignore = "needs root for the remote host's network namespace, cgroups, restic and rclone: tests/run"]
fn a_daily_policy_sends_each_dump_once_with_restic_0_14() {
    a_daily_policy_sends_each_dump_once("copy-daily-0.14", None);
}

#[test]
#[ignore = "needs root, restic and rclone, and the Debian 13 image for its restic: tests/run"]
fn a_daily_policy_sends_each_dump_once_with_restic_0_18() {
    a_daily_policy_sends_each_dump_once("copy-daily-0.18", Some(crate::retention::restic_binary()));
}

/// The hour clocks go back (Berlin, 2026-10-25, 02:00 to 03:00 twice):
/// dumps made in either 02:30 are stored at their own instants, so restic's
/// forget keeps what the copy expects, and nothing is sent twice.
#[test]
#[ignore = "needs root for the remote host's network namespace, cgroups, restic and rclone: tests/run"]
fn dumps_of_the_hour_clocks_go_back_are_sent_once() {
    let (sb, remote, restic) = remote_repository("copy-dst");
    let (_, dir) = sqlite_dumps(&sb, 1);
    let base = local_dumps(&dir, "shop").pop().unwrap();
    let dst = sb.mkdir("dst");
    let mut copied = Vec::new();
    let mut copy_now = || {
        let mut c = copy(&sb, &dst, "shop", &remote.url(), &restic.password);
        c.env("COPY_KEEP", "1").env("TZ", "Europe/Berlin");
        let r = run(&mut c);
        r.ok();
        copied.extend(
            r.stdout
                .lines()
                .filter_map(|l| l.strip_prefix("copied "))
                .map(|l| l.split(' ').next().unwrap().to_owned()),
        );
    };
    // 02:30 and 02:50 summer time, then 02:10 and 02:30 winter time.
    let stamps: Vec<Stamp> = [
        "20261025T003000Z",
        "20261025T005000Z",
        "20261025T011000Z",
        "20261025T013000Z",
    ]
    .iter()
    .map(|s| Stamp::parse(s).unwrap())
    .collect();
    for stamp in &stamps {
        stamped_dumps(&base, "shop", &dst, std::slice::from_ref(stamp));
        copy_now();
    }
    copy_now();
    copy_now();
    let mut once = copied.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), copied.len(), "a dump sent twice: {copied:#?}");
    assert_eq!(once.len(), stamps.len(), "{copied:#?}");
    assert_eq!(
        snapshot_stamps(&restic.snapshots()),
        [stamps[3].to_string()]
    );
}

/// A repository filled before copies carried an identity: the job's old
/// snapshots (host, `dump=NAME`, `stamp=`) of dumps still here are read
/// back once and become the job's, nothing is sent again; another job's of
/// the same name and host is left as it is, never forgotten, never
/// restored.
#[test]
#[ignore = "needs root for the remote host's network namespace, cgroups, restic and rclone: tests/run"]
fn copies_made_before_the_identity_are_recognised_and_not_sent_again() {
    let (sb, remote, restic) = remote_repository("copy-legacy");
    let (_, dir) = sqlite_dumps(&sb, 3);
    let local = local_dumps(&dir, "shop");
    let names = Names::new("shop", "sql");
    // As the copy made them before: the dump as its command wrote it.
    let old_copy = |stamp: &Stamp, content: &str| {
        let time = chrono::Local
            .from_utc_datetime(&stamp.utc())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let mut c = restic.command();
        c.args(["backup", "--quiet", "--stdin", "--stdin-filename"])
            .arg(names.dump(stamp, Form::None))
            .args(["--host", "db1", "--tag"])
            .arg(format!("timerapps,dump=shop,stamp={stamp}"))
            .args(["--time", &time])
            .stdin(Stdio::piped());
        let mut running = start(&mut c);
        use std::io::Write as _;
        let mut stdin = running.child.stdin.take().unwrap();
        stdin.write_all(content.as_bytes()).unwrap();
        drop(stdin);
        running.wait(TIMEOUT).ok();
    };
    for dump in [&local[0], &local[2]] {
        old_copy(&dump.stamp, &gunzip(&dump.path));
    }
    // Another job's, of the same name and host: one of a stamp that is
    // also one of this job's dumps, which this job never copied, one older.
    old_copy(&local[1].stamp, "another job's dump\n");
    let older = Stamp::parse("20200101T000000Z").unwrap();
    old_copy(&older, "another job's older dump\n");
    let job = Job::new("dump-database-copy@shop.service", None);
    let keeping = |keep: &str| {
        let mut c = copy(&sb, &dir, "shop", &remote.url(), &restic.password);
        c.env("COPY_KEEP", keep);
        let r = run(&mut c);
        r.ok();
        r
    };

    let r = keeping("5");
    assert!(r.stdout.contains(" 1 dump(s) copied"), "{r}");
    assert_eq!(
        r.stdout.matches("it is this job's copy of it now").count(),
        2,
        "{r}"
    );
    assert_eq!(
        r.stdout.matches("holds another job's dump").count(),
        1,
        "{r}"
    );
    let sent = names.dump(&local[1].stamp, local[1].form);
    assert!(r.stdout.contains(&format!("copied {sent} ")), "{r}");
    let snapshots = restic.snapshots();
    let ours: Vec<Snapshot> = snapshots.iter().filter(|s| s.of(&job)).cloned().collect();
    assert_eq!(snapshot_stamps(&ours), stamps(&local), "{snapshots:#?}");
    let theirs: Vec<Snapshot> = snapshots.iter().filter(|s| s.legacy()).cloned().collect();
    assert_eq!(
        snapshot_stamps(&theirs),
        [older.to_string(), local[1].stamp.to_string()]
    );

    // Once: the next run reads nothing back.
    let r = keeping("5");
    assert!(r.stdout.contains(" 0 dump(s) copied"), "{r}");
    assert!(!r.stdout.contains("before copies carried"), "{r}");
    assert_eq!(record(&sb, "shop").not_ours, [theirs[1].id.clone()]);

    // Retention forgets this job's own only; restore gives its own.
    let r = keeping("1");
    assert!(r.stdout.contains("forgot 2 snapshot(s)"), "{r}");
    let snapshots = restic.snapshots();
    assert_eq!(snapshots.iter().filter(|s| s.of(&job)).count(), 1);
    assert_eq!(snapshots.iter().filter(|s| s.legacy()).count(), 2);
    let newest = local[2].manifest().unwrap().unwrap();
    assert_eq!(
        sha256(&restored(&sb, &job, "shop", &remote.url(), &restic)),
        newest.content_sha256.unwrap()
    );
}

/// A DUMP_DIR and DUMP_NAME belong to the unit that dumped them first: a
/// job of another unit that would write the same dump names into the same
/// directory is refused, and so is its copy; a run by hand still works.
#[test]
#[ignore = "needs root for cgroups: tests/run"]
fn a_second_unit_writing_the_same_dump_names_into_one_directory_is_refused() {
    assert!(is_root(), "run as root: tests/run");
    let sb = Sandbox::new("copy-owner");
    let dir = sb.mkdir("dumps");
    let dump = |unit: Option<&str>| {
        let mut c = dump_job(&dir, "printf 'a dump\\n'");
        c.env("DUMP_NAME", "shop").env("DUMP_CHECK", "off");
        match unit {
            Some(unit) => run(&mut in_unit(&c, unit, None)),
            None => run(&mut c),
        }
    };
    published(&dump(Some("dump-database@shop.service")));
    published(&dump(Some("dump-database@shop.service")));
    let before = snapshot(&dir);
    let r = dump(Some("dump-database@other.service"));
    r.expect(73);
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    for says in [
        "\"dump-database@shop.service\"",
        "not dump-database@other.service's",
        "set another DUMP_NAME or DUMP_DIR",
        &dir.join(".shop.lock").display().to_string(),
    ] {
        assert!(r.stderr.contains(says), "{says}\n{r}");
    }
    assert_eq!(snapshot(&dir), before, "{r}");
    published(&dump(None));

    let log = sb.path("took");
    let copy_as = |unit: &str| {
        let mut c = job("dump-database-copy");
        c.env("DUMP_DIR", &dir)
            .env("DUMP_NAME", "shop")
            .env(
                "COPY_COMMAND",
                format!("sh -c 'echo \"$COPY_STAMP\" >> {}'", log.display()),
            )
            .env("COPY_RESULT", sb.path(&format!("{unit}.json")));
        run(&mut in_unit(&c, unit, None))
    };
    let r = copy_as("dump-database-copy@other.service");
    r.expect(78);
    assert!(
        r.stderr.contains("not dump-database@other.service's"),
        "{r}"
    );
    assert!(!log.exists(), "{r}");
    let r = copy_as("dump-database-copy@shop.service");
    assert!(r.ok().stdout.contains("took 3 dump(s)"), "{r}");
}

/// The default job's own dump directory is named as the job: in an
/// instance of that name the dump, its drill and its copy are refused
/// before they read or write anything; a run by hand is not.
#[test]
#[ignore = "needs root for cgroups: tests/run"]
fn an_instance_named_as_the_default_job_is_refused() {
    assert!(is_root(), "run as root: tests/run");
    let sb = Sandbox::new("reserved-instance");
    let dir = sb.mkdir("dumps");
    let mut dump = dump_job(&dir, "printf 'a dump\\n'");
    dump.env("DUMP_CHECK", "off");
    let mut drill = job("dump-database-drill");
    drill.env("DUMP_DIR", &dir);
    let mut copy = job("dump-database-copy");
    copy.env("DUMP_DIR", &dir).env("COPY_COMMAND", "true");
    for (c, unit) in [
        (&dump, "dump-database@dump-database.service"),
        (&drill, "dump-database-drill@dump-database.service"),
        (&copy, "dump-database-copy@dump-database.service"),
    ] {
        let r = run(&mut in_unit(c, unit, None));
        r.expect(2);
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
        assert!(
            r.stderr
                .contains("an instance may not be named dump-database"),
            "{r}"
        );
    }
    assert!(snapshot(&dir).is_empty());
    published(&run(&mut dump));
}

#[test]
fn copy_command_takes_each_good_dump_once_oldest_first_and_retries_a_failure() {
    let sb = Sandbox::new("copy-command");
    let dir = sb.mkdir("dumps");
    for n in 0..3 {
        let mut c = dump_job(&dir, &format!("printf 'dump {n}\\n'"));
        c.env("DUMP_CHECK", "off");
        published(&run(&mut c));
    }
    let dest = sb.mkdir("elsewhere");
    let log = sb.path("calls");
    let script = sb.path("send");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\n[ ! -e '{fail}' ]\ncp \"$1\" '{dest}/'\n\
             echo \"$COPY_STAMP $COPY_SIZE $COPY_SHA256\" >> '{log}'\n",
            fail = sb.path("fail").display(),
            dest = dest.display(),
            log = log.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x '{}'", script.display()));
    let send = |sb: &Sandbox| {
        let mut c = job("dump-database-copy");
        c.env("DUMP_DIR", &dir)
            .env(
                "COPY_COMMAND",
                format!("'{}' ${{COPY_DUMP}}", script.display()),
            )
            .env("COPY_RESULT", sb.path("copy.json"));
        run(&mut c)
    };
    let r = send(&sb);
    r.ok();
    let local = local_dumps(&dir, "dump");
    let calls = fs::read_to_string(&log).unwrap();
    let expected: Vec<String> = local
        .iter()
        .map(|d| {
            let m: Manifest = d.manifest().unwrap().unwrap();
            format!("{} {} {}", d.stamp, d.size, m.sha256)
        })
        .collect();
    assert_eq!(calls.lines().collect::<Vec<_>>(), expected, "{r}");
    assert_eq!(snapshot(&dest).len(), 3);
    let rec = jobkit::record::read::<Record>(&sb.path("copy.json"))
        .unwrap()
        .unwrap();
    assert_eq!(rec.destination, DestinationKind::Command);
    assert_eq!(rec.sent, stamps(&local));

    // Nothing twice; a failing command fails the run and is retried.
    assert!(send(&sb).ok().stdout.contains("took 0 dump(s)"));
    let mut c = dump_job(&dir, "printf 'dump 4\\n'");
    c.env("DUMP_CHECK", "off");
    published(&run(&mut c));
    fs::write(sb.path("fail"), "").unwrap();
    let r = send(&sb);
    r.expect(1);
    assert!(r.stderr.contains("COPY_COMMAND did not take"), "{r}");
    let rec = jobkit::record::read::<Record>(&sb.path("copy.json"))
        .unwrap()
        .unwrap();
    assert_eq!((rec.result, rec.waiting), (CopyResult::Failed, 1));
    fs::remove_file(sb.path("fail")).unwrap();
    let r = send(&sb);
    assert!(r.ok().stdout.contains("took 1 dump(s)"), "{r}");
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 4);
}

#[test]
fn with_no_destination_the_copy_does_nothing_and_succeeds() {
    let sb = Sandbox::new("copy-none");
    let dir = sb.mkdir("dumps");
    let before = sb.tree();
    let mut c = job("dump-database-copy");
    c.env("DUMP_DIR", &dir)
        .env("COPY_RESULT", sb.path("copy.json"));
    let r = run(&mut c);
    r.ok();
    assert!(
        r.stdout
            .contains("nothing to do: neither COPY_REPOSITORY nor COPY_COMMAND is set"),
        "{r}"
    );
    assert_eq!(sb.tree(), before, "{r}");
}

/// The copy units on a real systemd: started by the dump unit's
/// `OnSuccess=` with the password as a credential, shown by status and
/// node_exporter; with the remote host down the dump goes on, the copy
/// unit fails and is mailed, and `timerapps copy` catches up.
fn copy_units(release: Release) {
    let c = Host::installed("copy-units", release);
    c.sh("useradd --create-home ops");
    fs::write(c.path("/etc/default/timerapps"), "MAIL_TO=ops\n").unwrap();
    let mut remote = Remote::linked(&c.sb, Some(c.pid()));
    remote.start();
    let restic = remote.init(&c.sb);
    assert_eq!(
        c.sh("cd /etc/timerapps/credentials && stat -c '%a %U' . copies copies/dump-database"),
        "700 root\n700 root\n700 root\n"
    );
    let password = c.path("/etc/timerapps/credentials/copies/dump-database/restic-password");
    fs::copy(&restic.password, &password).unwrap();
    c.sh("chmod 600 /etc/timerapps/credentials/copies/dump-database/restic-password");
    c.sh(
        "sqlite3 /srv/shop.db 'CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3);'
          chmod 644 /srv/shop.db",
    );
    fs::write(
        c.path("/etc/default/dump-database"),
        format!(
            "DUMP_COMMAND=\"sqlite3 -readonly /srv/shop.db .dump\"\nDUMP_SHRINK_LIMIT=0\n\
             COPY_REPOSITORY={}\nCOPY_HOST=db1\nCOPY_CONNECT_TIMEOUT=10\n",
            remote.url()
        ),
    )
    .unwrap();
    a_good_dump_starts_the_copy_unit_which_copies_and_verifies_it(&c, &restic);
    status_and_node_exporter_show_the_copy(&c);
    the_remote_host_down_the_dump_goes_on_and_the_copy_fails(&c, &mut remote);
    back_up_timerapps_copy_catches_up(&c, &mut remote, &restic);
    restore_takes_a_kept_dump_or_its_copy_off_the_host(&c);
    the_timer_retries_and_a_missing_password_is_named(&c, &password);
    c.step("each copy unit sees its own password, dumps and record only");
    instances_apart(&c);
    purge_removes_the_copies_records_and_keeps_the_keys(&c);
}

/// The copy's record, once the copy unit that started at `after` or later
/// has ended.
fn copy_ended(c: &Container, after: i64) -> Record {
    let record_path = c.path("/var/lib/timerapps/copies/dump-database/copy.json");
    let mut rec = None;
    wait_for("the copy after the dump", TIMEOUT, || {
        let active = c.state("is-active", "dump-database-copy.service");
        rec = jobkit::record::read::<Record>(&record_path)
            .ok()
            .flatten()
            .filter(|r| r.started >= after);
        // Ended, its ExecStopPost= too.
        rec.is_some() && (active == "inactive" || active == "failed")
    });
    rec.unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The labels of the default job's series.
const JOB: [(&str, &str); 1] = [("job_name", "dump-database")];

fn a_good_dump_starts_the_copy_unit_which_copies_and_verifies_it(c: &Host, restic: &Restic) {
    c.step("a good dump starts the copy unit, which copies and verifies it");
    let before = now();
    let r = c.exec(&["timerapps", "run", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let rec = copy_ended(c, before);
    assert_eq!(rec.result, CopyResult::Copied, "{rec:?}");
    assert_eq!(rec.copied.len(), 1);
    let journal = c.journal("dump-database-copy.service");
    assert!(journal.contains("read back and verified"), "{journal}");
    let snapshots = restic.snapshots();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].hostname, "db1");
    assert!(snapshots[0].tags.contains(&"dump=dump".to_owned()));
    // The password reached restic as a credential only: it is on no
    // command line and in no environment the unit shows.
    let shown = c.sh("systemctl show dump-database-copy.service -p Environment");
    assert!(
        shown.contains("COPY_PASSWORD_FILE=%d/timerapps_restic-password")
            || shown.contains(
                "COPY_PASSWORD_FILE=/run/credentials/dump-database-copy.service/timerapps_restic"
            ),
        "{shown}"
    );
    assert!(!shown.contains(&fs::read_to_string(&restic.password).unwrap()));
}

fn status_and_node_exporter_show_the_copy(c: &Host) {
    c.step("status and node_exporter show the copy");
    let r = c.exec(&["timerapps", "status", "--json", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    valid_status(&r.stdout);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let copy = &json["jobs"][0]["copy"];
    assert_eq!(copy["configured"], true, "{copy:#}");
    assert_eq!(copy["last"]["result"], "copied", "{copy:#}");
    assert_eq!(copy["last"]["waiting"], 0, "{copy:#}");
    assert_eq!(copy["last"]["check"]["result"], "passed", "{copy:#}");
    let table = c.exec(&["timerapps", "status", "dump-database"]);
    assert!(
        table.stdout.lines().next().unwrap().ends_with("OFF-HOST"),
        "{table}"
    );
    assert!(
        table.stdout.lines().nth(1).unwrap().ends_with(" old"),
        "{table}"
    );
    let mut m = String::new();
    wait_for("the copy's metrics", TIMEOUT, || {
        m = scrape(c);
        value(&m, "timerapps_offsite_last_copied", &JOB) == Some(1.0)
    });
    assert_eq!(
        value(&m, "timerapps_offsite_dumps_waiting", &JOB),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "timerapps_offsite_check_last_passed", &JOB),
        Some(1.0)
    );
    let newest = value(&m, "timerapps_offsite_newest_copy_timestamp_seconds", &JOB).unwrap();
    assert!((now() as f64 - newest).abs() < 120.0, "{m}");
    let (listed, served) = listed_and_served(&m, |name| name.starts_with("offsite_"));
    assert_eq!(
        listed, served,
        "docs/metrics.md's off-host metrics and those served"
    );
}

fn the_remote_host_down_the_dump_goes_on_and_the_copy_fails(c: &Host, remote: &mut Remote) {
    c.step("the remote host down: the dump goes on, the copy fails and is mailed");
    listening(c, 25, "exim4");
    remote.stop();
    c.sh("sqlite3 /srv/shop.db 'INSERT INTO t VALUES (4);'");
    let before = now();
    let r = c.exec(&["timerapps", "run", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let rec = copy_ended(c, before);
    assert_eq!(rec.result, CopyResult::Failed, "{rec:?}");
    assert_eq!(rec.waiting, 1, "{rec:?}");
    assert_eq!(c.state("is-failed", "dump-database-copy.service"), "failed");
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.contains("the last off-host copy failed"), "{r}");
    assert!(r.stdout.contains("connection refused"), "{r}");
    let mut m = String::new();
    wait_for("the failed copy's metrics", TIMEOUT, || {
        m = scrape(c);
        value(&m, "timerapps_offsite_last_copied", &JOB) == Some(0.0)
    });
    assert_eq!(
        value(&m, "timerapps_offsite_dumps_waiting", &JOB),
        Some(1.0)
    );
    wait_for("the copy's failure mail", TIMEOUT, || {
        mails(c).contains("dump-database-copy.service failed")
    });
    came_by_smtp(c, &mails(c), "timerapps-mail");
}

fn back_up_timerapps_copy_catches_up(c: &Host, remote: &mut Remote, restic: &Restic) {
    c.step("back up, timerapps copy catches up");
    remote.start();
    let r = c.exec(&["timerapps", "copy", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout.matches("read back and verified").count(), 1, "{r}");
    assert_eq!(restic.snapshots().len(), 2);
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
}

fn restore_takes_a_kept_dump_or_its_copy_off_the_host(c: &Host) {
    c.step("timerapps restore: a kept dump and its copy off the host, into sqlite3");
    let dumps = local_dumps(&c.path(DEFAULT_DIR), "dump");
    let first = dumps[0].stamp.to_string();
    let restored = |args: &str| {
        c.sh(&format!(
            "rm -f /tmp/r.db; timerapps restore dump-database {args} | sqlite3 -bail /tmp/r.db
             sqlite3 /tmp/r.db 'SELECT group_concat(n) FROM t'"
        ))
    };
    assert_eq!(restored(""), "1,2,3,4\n");
    assert_eq!(restored("--offsite"), "1,2,3,4\n");
    assert_eq!(restored(&format!("--offsite {first}")), "1,2,3\n");
    assert_eq!(
        c.sh(&format!(
            "timerapps restore dump-database {first} | sha256sum"
        )),
        c.sh(&format!(
            "timerapps restore dump-database --offsite {first} | sha256sum"
        ))
    );
    let r = c.exec(&[
        "timerapps",
        "restore",
        "dump-database",
        "--offsite",
        "20000101T000000Z",
    ]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(
        r.stderr
            .contains("no copy of dump stamped 20000101T000000Z"),
        "{r}"
    );
}

fn the_timer_retries_and_a_missing_password_is_named(c: &Host, password: &Path) {
    c.step("its timer retries; without the password it says which file to make");
    c.sh("systemctl enable --now dump-database-copy.timer");
    let r = c.exec(&["timerapps", "status", "--json", "dump-database"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["jobs"][0]["copy"]["enabled"], "enabled", "{r}");
    fs::remove_file(password).unwrap();
    let r = c.exec(&["timerapps", "copy", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(
        r.stdout.contains(
            "put the repository's password in \
             /etc/timerapps/credentials/copies/dump-database/restic-password"
        ),
        "{r}"
    );
}

fn purge_removes_the_copies_records_and_keeps_the_keys(c: &Host) {
    c.step("purge removes the copies' records and keeps the admin's keys");
    fs::write(
        c.path("/etc/timerapps/credentials/copies/dump-database.env"),
        "AWS_ACCESS_KEY_ID=x\n",
    )
    .unwrap();
    let r = c.exec(&["apt-get", "purge", "-y", "timerapps"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(!c.path("/var/lib/timerapps/copies").exists());
    assert!(!c.path("/var/cache/timerapps").exists());
    assert!(c
        .path("/etc/timerapps/credentials/copies/dump-database.env")
        .exists());
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains(
            "the off-host copies' passwords and keys are kept in /etc/timerapps/credentials/copies"
        ),
        "{r}"
    );
}

/// Instances `a` and `b`, their passwords and records first in the layout
/// before (moved by the package's configure), each copy held running on
/// its COPY_COMMAND, which reads a FIFO, and the default job's too; from
/// inside `a`'s copy unit, as its user, in its namespaces: its own
/// password, dumps and record are there, `b`'s are not; from inside the
/// default job's, its own dumps are there and no instance's. An instance
/// with no destination copies nothing and succeeds, its credentials
/// directory made for it.
fn instances_apart(c: &Container) {
    instances_have_credentials_directories_of_their_own(c);
    let a = holding(c, "dump-database@a");
    holding(c, "dump-database@b");
    a_copy_reaches_its_own_password_dumps_and_record_only(c, &a);
    the_default_jobs_copy_reads_no_instances_dumps(c);
    held_copies_end_having_taken_one_dump(c);
}

const CREDENTIALS: &str = "/etc/timerapps/credentials/copies";

/// Passwords and records in the layout before move into a directory per
/// instance; one with no destination gets an empty one when it runs.
fn instances_have_credentials_directories_of_their_own(c: &Container) {
    let creds = CREDENTIALS;
    c.sh(&format!(
        "for i in a b c; do
           printf 'DUMP_COMMAND=\"sqlite3 -readonly /srv/shop.db .dump\"\nDUMP_SHRINK_LIMIT=0\n' \
             > /etc/timerapps/dump-database/$i.conf
         done
         for i in a b; do
           printf 'password-%s\n' $i > {creds}/dump-database@$i.restic-password
           chmod 600 {creds}/dump-database@$i.restic-password
           echo \"COPY_COMMAND=cat /var/lib/timerapps/dumps/$i/hold\" \
             >> /etc/timerapps/dump-database/$i.conf
           install -d -o timerapps -g timerapps -m 0700 /var/lib/timerapps/dumps/$i
           mkfifo -m 0600 /var/lib/timerapps/dumps/$i/hold
           chown timerapps:timerapps /var/lib/timerapps/dumps/$i/hold
         done
         echo '{{}}' > /var/lib/timerapps/copies/dump-database@b.json
         chown timerapps:timerapps /var/lib/timerapps/copies/dump-database@b.json
         apt-get install --reinstall -y /root/timerapps.deb </dev/null >/dev/null"
    ));
    assert_eq!(
        c.sh(&format!(
            "cd {creds} && stat -c '%n %a %U' dump-database@a/restic-password dump-database@b
             cat /var/lib/timerapps/copies/dump-database@b/copy.json
             ls {creds} | grep -c restic-password || true"
        )),
        "dump-database@a/restic-password 600 root\ndump-database@b 700 root\n{}\n0\n"
    );
    // With no destination, the copy that a good dump starts does nothing
    // and succeeds; systemd made its credentials directory, inside the
    // root-only one.
    c.sh("systemctl start dump-database@c.service");
    wait_for("the copy of c to have run", TIMEOUT, || {
        c.journal("dump-database-copy@c.service")
            .contains("nothing to do")
            && c.state("is-active", "dump-database-copy@c.service") == "inactive"
    });
    assert_eq!(
        c.sh(&format!("stat -c '%a' {creds}/dump-database@c")),
        "700\n"
    );
}

/// The main PID of the copy that the dump unit `job`'s success starts,
/// once its COPY_COMMAND waits on its FIFO.
fn holding(c: &Container, job: &str) -> String {
    c.sh(&format!("systemctl start {job}.service"));
    let unit = format!(
        "{}.service",
        job.replacen("dump-database", "dump-database-copy", 1)
    );
    let mut pid = String::new();
    wait_for(&format!("{unit} to wait on its FIFO"), TIMEOUT, || {
        pid = c.show(&unit, "MainPID");
        let its_cat = format!(
            "for p in $(cat /proc/{pid}/task/*/children); do \
               [ \"$(cat /proc/$p/comm)\" = cat ] && exit 0; done; exit 1"
        );
        c.exec(&["sh", "-c", &its_cat]).code() == Some(0)
    });
    pid
}

/// `script` run as the copy's user in the namespaces of process `pid`.
fn inside_of(c: &Container, pid: &str, script: &str) -> Run {
    c.exec(&[
        "sh",
        "-c",
        &format!(
            "exec nsenter -t {pid} -U -m -S $(id -u timerapps) -G $(id -g timerapps) \
             sh -c '{script}'"
        ),
    ])
}

/// From inside the copy of `a`, held at process `a`: its own password,
/// dumps and record, and nothing of `b`'s.
fn a_copy_reaches_its_own_password_dumps_and_record_only(c: &Container, a: &str) {
    let creds = CREDENTIALS;
    let inside = |script: &str| inside_of(c, a, script);
    let own = "/run/credentials/dump-database-copy@a.service";
    for (script, works) in [
        (format!("cat {own}/timerapps_restic-password"), "password-a"),
        (format!("ls {own}"), "timerapps_restic-password"),
        ("ls /var/lib/timerapps/dumps".to_owned(), "a"),
        (
            "ls /var/lib/timerapps/dumps/a | grep -c sql.gz$".to_owned(),
            "1",
        ),
        (
            "cd /var/lib/timerapps/copies/dump-database@a && touch x && rm x && echo written"
                .to_owned(),
            "written",
        ),
    ] {
        let r = inside(&script);
        assert_eq!(r.code(), Some(0), "{script}\n{r}");
        assert_eq!(r.stdout.trim(), works, "{script}\n{r}");
    }
    for script in [
        "cat /run/credentials/dump-database-copy@b.service/timerapps_restic-password".to_owned(),
        format!("cat {creds}/dump-database@b/restic-password"),
        format!("ls {creds}"),
        "ls /var/lib/timerapps/dumps/b".to_owned(),
        "cat /var/lib/timerapps/copies/dump-database@b/copy.json".to_owned(),
        "touch /var/lib/timerapps/copies/dump-database@b/x".to_owned(),
        "touch /var/lib/timerapps/copies/x".to_owned(),
        "touch /var/cache/timerapps/restic/dump-database@b/x".to_owned(),
    ] {
        let r = inside(&script);
        assert_ne!(r.code(), Some(0), "{script}\n{r}");
    }
}

/// The default job's copy, held likewise: it reads its own dumps, and
/// no instance's, though theirs are in the directory beside its own.
fn the_default_jobs_copy_reads_no_instances_dumps(c: &Container) {
    fs::write(
        c.path("/etc/default/dump-database"),
        format!(
            "DUMP_COMMAND=\"sqlite3 -readonly /srv/shop.db .dump\"\nDUMP_SHRINK_LIMIT=0\n\
             COPY_COMMAND=cat {DEFAULT_DIR}/hold\n"
        ),
    )
    .unwrap();
    c.sh(&format!(
        "mkfifo -m 0600 {DEFAULT_DIR}/hold; chown timerapps:timerapps {DEFAULT_DIR}/hold"
    ));
    let default = holding(c, "dump-database");
    let r = inside_of(
        c,
        &default,
        &format!("ls /var/lib/timerapps/dumps; cat {DEFAULT_DIR}/*.manifest.json >/dev/null"),
    );
    assert_eq!(
        (r.code(), r.stdout.as_str()),
        (Some(0), "dump-database\n"),
        "{r}"
    );
    for script in [
        "ls /var/lib/timerapps/dumps/a",
        "cat /var/lib/timerapps/dumps/a/*.manifest.json",
    ] {
        let r = inside_of(c, &default, script);
        assert_ne!(r.code(), Some(0), "{script}\n{r}");
    }
    c.sh("systemctl stop dump-database-copy.service");
}

/// Let go, the copies of `a` and `b` each take their one dump and end.
fn held_copies_end_having_taken_one_dump(c: &Container) {
    c.sh("for i in a b; do echo > /var/lib/timerapps/dumps/$i/hold; done");
    for i in ["a", "b"] {
        let unit = format!("dump-database-copy@{i}.service");
        wait_for(&format!("{unit} to end"), TIMEOUT, || {
            c.state("is-active", &unit) == "inactive"
        });
        assert!(c.journal(&unit).contains("took 1 dump(s)"));
    }
}

#[test]
#[ignore = "boots a container: tests/run"]
fn copy_units_on_debian_12() {
    copy_units(Release::Bookworm);
}

#[test]
#[ignore = "boots a container: tests/run"]
fn copy_units_on_debian_13() {
    copy_units(Release::Trixie);
}
