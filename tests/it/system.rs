//! The package end to end on a real systemd: install, timers, manual runs,
//! dumps of a PostgreSQL inside the container, a failing dump, every
//! service in the jobs' slice with its limits, an upgrade, remove and purge. One test, because each step builds on the one before.

use crate::budget;
use crate::container::{Container, Host, Release, NEXT_DEB};
use crate::harness::{dump_files, names, wait_for};
use crate::package::packaged;
use chrono::Utc;
use jobkit::catalogue::{Kind, Manager};
use jobkit::dumpfile::{Form, Stamp};
use jobkit::host::budget::{Load, Share, SLICE, SLICE_SHARES};
use jobkit::human::binary;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The default job's dumps, in the directory of every dump unit's.
const DUMPS: &str = jobkit::dumpfile::DEFAULT_DIR;
const ALL_DUMPS: &str = jobkit::catalogue::DUMPS_DIR;

/// Paths under the container's root that a package could leave behind,
/// leaving out what changes on its own (journal, caches, database files).
fn tree(c: &Container) -> BTreeSet<String> {
    let skip = [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/tmp",
        "var/cache",
        "var/lib/apt",
        "var/log/journal",
        "var/log/apt",
        "var/log/dpkg.log",
        "var/log/alternatives.log",
        "var/lib/postgresql",
        "var/log/postgresql",
        "var/lib/dpkg/triggers",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/status",
        "var/lib/dpkg/status-old",
        "var/lib/dpkg/lock",
        "var/lib/dpkg/lock-frontend",
        "var/lib/dpkg/diversions",
        "var/lib/dpkg/diversions-old",
        "var/lib/dpkg/available",
        "var/lib/systemd/random-seed",
    ];
    walkdir::WalkDir::new(c.root())
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(c.root()).unwrap();
            !skip.iter().any(|s| rel == Path::new(s))
        })
        .map(|e| {
            format!(
                "/{}",
                e.unwrap().path().strip_prefix(c.root()).unwrap().display()
            )
        })
        .collect()
}

fn lines(c: &Container, path: &str) -> usize {
    fs::read_to_string(c.path(path))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn dumps(c: &Container) -> Vec<String> {
    dump_files(&names("dump"), &c.path(DUMPS))
}

fn hashes(c: &Container) -> String {
    c.sh(&format!("cd {DUMPS} && ls -A | sort | xargs sha256sum"))
}

#[test]
#[ignore = "boots a container: tests/run"]
fn the_package_on_debian_12() {
    the_package_on(Release::Bookworm);
}

#[test]
#[ignore = "boots a container: tests/run"]
fn the_package_on_debian_13() {
    the_package_on(Release::Trixie);
}

fn the_package_on(release: Release) {
    let (c, next) = Host::boot_with_next("e2e", release);
    let before = tree(&c);

    let (installed, uid) = install_enables_and_starts_the_timers(&c);
    both_logs_get_a_first_line_written_by_timerapps(&c, installed, uid);
    starting_myapp_appends_a_line(&c);
    seven_dumps_leave_five_and_the_newest_restores(&c, uid);
    a_failing_dump_command_fails_and_keeps_the_dumps(&c);
    let (legacy, rolled) = a_policy_keeps_older_days_and_dumps_made_before_manifests(&c);
    a_suspect_dump_shows_and_is_accepted(&c, &legacy, rolled);
    every_service_runs_in_the_slice(&c);
    c.step(
        "5d: settings that need more memory than the unit's limit allows exit 2 \
         and name both; raised by systemctl edit, they publish within it",
    );
    memory_limit(&c);
    an_upgrade_keeps_a_disabled_timer_and_an_edited_conffile(&c, &next);
    let (kept, foreign) = remove_stops_and_disables_the_timers(&c);
    purge_leaves_only_the_dumps(&c, &before, &kept, foreign);
}

/// Returns when it was installed, and the uid of its user.
fn install_enables_and_starts_the_timers(c: &Host) -> (Instant, u32) {
    c.step("1: apt install enables and starts the timers");
    c.install();
    let installed = Instant::now();
    // Every installed file matches the package's md5sums.
    assert_eq!(c.sh("dpkg --verify timerapps"), "");
    let listed = c.sh("systemctl list-timers --all --no-pager");
    for t in &packaged(Kind::Timer) {
        assert_eq!(c.state("is-enabled", t), "enabled");
        assert_eq!(c.state("is-active", t), "active");
        assert!(listed.contains(t), "{t} not listed:\n{listed}");
    }
    let passwd = fs::read_to_string(c.path("/etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("timerapps:"))
        .expect("user timerapps");
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");
    assert!(!fields[5].starts_with("/home"), "{user}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {user}");
    // Its first run (60 to 90 s after install) must not race the manual
    // dumps of steps 4 and 5.
    c.quiet(&["dump-database.timer"]);
    (installed, uid)
}

fn both_logs_get_a_first_line_written_by_timerapps(c: &Host, installed: Instant, uid: u32) {
    c.step("2: both logs get a first line within 30 s, written by timerapps");
    for app in ["myapp", "otherapp"] {
        let log = format!("/var/log/timerapps/{app}.log");
        let remaining = Duration::from_secs(30).saturating_sub(installed.elapsed());
        wait_for(&format!("a first line in {log}"), remaining, || {
            lines(c, &log) >= 1
        });
        assert_eq!(
            fs::metadata(c.path(&log)).unwrap().uid(),
            uid,
            "{log} owner"
        );
        let text = fs::read_to_string(c.path(&log)).unwrap();
        assert!(text.starts_with(&format!("[{app}] executed at ")), "{text}");
        // The timer ran it, 5 s after it started, not the install.
        let timer = c.show(&format!("{app}.timer"), "ActiveEnterTimestampMonotonic");
        let service = c.show(&format!("{app}.service"), "ExecMainStartTimestampMonotonic");
        let delay = service.parse::<i64>().unwrap() - timer.parse::<i64>().unwrap();
        assert!(
            delay >= 4_000_000,
            "{app}.service started {delay} µs after its timer"
        );
    }
    c.quiet(&["myapp.timer", "otherapp.timer"]);
    // Not configured yet: the dump is skipped, not failed, and says why.
    c.sh("systemctl start dump-database.service");
    assert_ne!(c.state("is-failed", "dump-database.service"), "failed");
    let messages = c.journal("dump-database.service");
    assert!(
        messages.contains("DUMP_COMMAND is not set")
            && messages.contains("/etc/default/dump-database"),
        "{messages}"
    );
}

fn starting_myapp_appends_a_line(c: &Host) {
    c.step("3: systemctl start myapp.service appends a line");
    let n = lines(c, "/var/log/timerapps/myapp.log");
    c.sh("systemctl start myapp.service");
    assert_eq!(lines(c, "/var/log/timerapps/myapp.log"), n + 1);
    let messages = c.journal("myapp.service");
    assert!(
        messages.contains("[myapp] wrote to /var/log/timerapps/myapp.log"),
        "{messages}"
    );
}

fn seven_dumps_leave_five_and_the_newest_restores(c: &Host, uid: u32) {
    c.step("4: seven dumps of a PostgreSQL inside leave five; the newest restores");
    c.sh("runuser -u postgres -- psql -q -c 'CREATE ROLE timerapps LOGIN'
          runuser -u postgres -- createdb -O timerapps shop
          runuser -u timerapps -- psql -q -v ON_ERROR_STOP=1 -d shop -c \"
            CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2));
            INSERT INTO items SELECT i, 'item ' || md5(i::text), i * 0.5 FROM generate_series(1, 5000) i;\"");
    c.sh("echo 'DUMP_COMMAND=\"pg_dump --no-password shop\"' >> /etc/default/dump-database");
    for _ in 0..7 {
        c.sh("systemctl start dump-database.service");
    }
    let kept = dumps(c);
    assert_eq!(kept.len(), 5, "{kept:?}");
    for d in &kept {
        let meta = fs::metadata(c.path(DUMPS).join(d)).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600), "{d}");
    }
    // The job's own directory, in one of root's that holds only such.
    assert_eq!(
        c.sh(&format!(
            "stat -c '%a %U' {ALL_DUMPS} {DUMPS}; ls -A {ALL_DUMPS}"
        )),
        "755 root\n700 timerapps\ndump-database\n"
    );
    let newest = format!("{DUMPS}/{}", kept.last().unwrap());
    c.sh(&format!(
        "runuser -u postgres -- createdb restored
         gzip -dc {newest} | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d restored >/dev/null"
    ));
    let table = |db: &str| {
        c.sh(&format!("runuser -u postgres -- psql -At -d {db} -c 'COPY (SELECT * FROM items ORDER BY id) TO STDOUT'"))
    };
    let original = table("shop");
    assert_eq!(original.lines().count(), 5000);
    assert_eq!(
        original,
        table("restored"),
        "the newest dump does not restore the table"
    );
}

fn a_failing_dump_command_fails_and_keeps_the_dumps(c: &Host) {
    c.step("5: a failing DUMP_COMMAND fails the service and keeps the dumps");
    let hashed = hashes(c);
    c.sh("sed -i 's/pg_dump --no-password shop/pg_dump --no-password nosuchdb/' /etc/default/dump-database");
    let r = c.exec(&["systemctl", "start", "dump-database.service"]);
    assert_ne!(r.code(), Some(0), "{r}");
    assert_eq!(c.state("is-failed", "dump-database.service"), "failed");
    let messages = c.journal("dump-database.service");
    assert!(
        messages.contains("\"nosuchdb\" does not exist")
            && messages.contains("DUMP_COMMAND exited with status 1"),
        "{messages}"
    );
    assert_eq!(hashes(c), hashed, "the dumps changed");
}

/// Returns the dumps it made as before manifests, and whether the day
/// changed since the first dumps.
fn a_policy_keeps_older_days_and_dumps_made_before_manifests(c: &Host) -> (Vec<String>, bool) {
    c.step(
        "5b: a daily and weekly policy keeps dumps of older days and those made \
         before manifests; a suspect dump shows and is accepted",
    );
    // Dumps as the package before manifests wrote them: no manifest.
    let before_policy = dumps(c);
    let newest_good = format!("{DUMPS}/{}", before_policy.last().unwrap());
    let legacy: Vec<String> = [2, 9]
        .iter()
        .map(|days| {
            let stamp = Stamp::of(Utc::now() - chrono::Duration::days(*days));
            names("dump").dump(&stamp, Form::Gzip)
        })
        .collect();
    for name in &legacy {
        c.sh(&format!(
            "install -o timerapps -m 0600 {newest_good} {DUMPS}/{name}"
        ));
    }
    c.sh("sed -i 's/pg_dump --no-password nosuchdb/pg_dump --no-password shop/' /etc/default/dump-database
          printf 'DUMP_KEEP=2\nDUMP_KEEP_DAILY=7\nDUMP_KEEP_WEEKLY=4\n' >> /etc/default/dump-database
          systemctl start dump-database.service");
    let kept = dumps(c);
    // Unless the day changed since step 4, which leaves one more daily dump.
    let today = Utc::now().format("-%Y%m%dT").to_string();
    let rolled = !before_policy[0].contains(&today);
    assert!(
        kept.len() == 4 || rolled,
        "2 newest, and the older days' dumps: {kept:?}"
    );
    for name in &legacy {
        assert!(kept.contains(name), "{name} was pruned: {kept:?}");
    }
    let listing = c.sh("timerapps keep dump-database");
    for name in &legacy {
        let line = listing.lines().find(|l| l.contains(name.as_str())).unwrap();
        assert!(
            line.contains("daily") && line.contains("unchecked (no manifest)"),
            "{listing}"
        );
    }
    assert!(listing.contains("2 newest, 7 daily, 4 weekly"), "{listing}");
    (legacy, rolled)
}

fn a_suspect_dump_shows_and_is_accepted(c: &Host, legacy: &[String], rolled: bool) {
    // The database emptied by mistake: the dump is kept but suspect, the
    // run fails with 65, and status says so.
    c.sh("runuser -u timerapps -- psql -q -d shop -c 'TRUNCATE items'");
    let r = c.exec(&["systemctl", "start", "dump-database.service"]);
    assert_ne!(r.code(), Some(0), "{r}");
    assert_eq!(c.show("dump-database.service", "ExecMainStatus"), "65");
    assert_eq!(
        dumps(c).len(),
        5,
        "the suspect dump is kept besides the good ones"
    );
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(
        r.stdout.contains(", suspect")
            && r.stdout.contains("5 (1 suspect, 2 unchecked)")
            && r.stdout.contains("the newest dump is suspect"),
        "{r}"
    );
    // Unhealthy: it exits 1, and prints the JSON all the same.
    let json = c
        .exec(&["timerapps", "status", "--json", "dump-database"])
        .stdout
        .clone();
    assert!(json.contains("\"verdict\": \"suspect\""), "{json}");
    assert!(json.contains("\"newest_good\""), "{json}");
    let r = c.exec(&["timerapps", "accept", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains("is good now"), "{r}");
    // Compared with the accepted dump, the next one is good, and the good
    // dumps before the accepted one rotate out as usual.
    let accepted = dumps(c).last().unwrap().clone();
    c.sh("systemctl start dump-database.service");
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let now_kept = dumps(c);
    assert!(
        now_kept.len() == 4 || rolled,
        "the older days', the accepted one and the newest: {now_kept:?}"
    );
    assert_eq!(now_kept[now_kept.len() - 2], accepted);
    for name in legacy {
        assert!(now_kept.contains(name), "{name} was pruned: {now_kept:?}");
    }
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains("SHA-256 as in its manifest"), "{r}");
    assert!(
        r.stdout.contains("no manifest (made before manifests)"),
        "{r}"
    );
}

fn every_service_runs_in_the_slice(c: &Host) {
    c.step(
        "5c: every service the package ships runs in timerapps.slice, with the \
         weights and limits of jobkit::host::budget",
    );
    let exec = |script: &str| c.exec(&["sh", "-ec", script]);
    let system = budget::Manager {
        systemctl: "systemctl",
        exec: &exec,
        drop_ins: "/etc/systemd/system",
        cgroup: "",
    };
    let services = budget::services(&system, Manager::System.unit_dir());
    budget::every_service_runs_in_the_slice(&system, &services, "slice");
}

fn an_upgrade_keeps_a_disabled_timer_and_an_edited_conffile(c: &Host, next: &str) {
    c.step("6: an upgrade keeps a disabled timer and an edited conffile");
    let hashed = hashes(c);
    c.sh("systemctl disable --now otherapp.timer
          echo LOGFILE=/var/log/timerapps/edited.log >> /etc/default/myapp");
    let edited = fs::read(c.path("/etc/default/myapp")).unwrap();
    c.sh(&format!("apt-get install -y {NEXT_DEB} </dev/null"));
    assert_eq!(c.sh("dpkg-query -W -f '${Version}' timerapps"), next);
    assert_eq!(c.state("is-enabled", "otherapp.timer"), "disabled");
    assert_eq!(c.state("is-active", "otherapp.timer"), "inactive");
    for t in ["myapp.timer", "dump-database.timer"] {
        assert_eq!(c.state("is-enabled", t), "enabled");
        assert_eq!(c.state("is-active", t), "active");
    }
    assert_eq!(fs::read(c.path("/etc/default/myapp")).unwrap(), edited);
    assert_eq!(
        hashes(c),
        hashed,
        "the upgrade changed a dump or a manifest"
    );
    // The upgrade restarted myapp.timer, which may have added a line of
    // its own before it was stopped: count from here.
    c.quiet(&["myapp.timer", "dump-database.timer"]);
    let edited_log = "/var/log/timerapps/edited.log";
    let n = lines(c, edited_log);
    c.sh("systemctl start myapp.service");
    assert_eq!(lines(c, edited_log), n + 1, "the edited setting is used");
}

/// Returns the dumps kept, and a file that only looks temporary.
fn remove_stops_and_disables_the_timers(c: &Host) -> (Vec<String>, &'static str) {
    c.step("7: remove stops and disables the timers; purge leaves only the dumps");
    // What an interrupted run leaves, and a file that only looks hidden
    // and temporary: remove sweeps the first by the library's definition.
    let stamp = jobkit::dumpfile::Stamp::parse("20260101T000000Z").unwrap();
    let temp = names("dump").temp(&stamp, jobkit::dumpfile::Form::Gzip, 0xabcd);
    let foreign = ".notes.part";
    for file in [temp.as_str(), foreign] {
        c.sh(&format!(
            "install -o timerapps -m 0600 /dev/null {DUMPS}/{file}"
        ));
    }
    let lock = format!("{DUMPS}/{}", names("dump").lock());
    assert!(c.path(&lock).exists(), "the runs left no lock");
    let kept = dumps(c);
    c.sh("apt-get remove -y timerapps </dev/null");
    assert!(!c.path(&lock).exists(), "remove left the lock");
    assert!(
        !c.path(&format!("{DUMPS}/{temp}")).exists(),
        "remove left {temp}"
    );
    assert!(
        c.path(&format!("{DUMPS}/{foreign}")).exists(),
        "remove took {foreign}"
    );
    let listed = c.sh("systemctl list-timers --all --no-pager");
    for t in &packaged(Kind::Timer) {
        assert_ne!(c.state("is-active", t), "active");
        assert!(
            !c.path("/etc/systemd/system/timers.target.wants")
                .join(t)
                .exists(),
            "{t} still enabled"
        );
        assert!(!listed.contains(t), "{t} still listed:\n{listed}");
    }
    (kept, foreign)
}

/// Purge keeps the user, the `kept` dumps with their manifests and the
/// `foreign` file, and leaves nothing else that was not there `before`.
fn purge_leaves_only_the_dumps(
    c: &Host,
    before: &BTreeSet<String>,
    kept: &[String],
    foreign: &str,
) {
    let r = c.exec(&["apt-get", "purge", "-y", "timerapps"]);
    assert_eq!(r.code(), Some(0), "{r}");
    // apt passes the maintainer script's stderr on to its own output.
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains(&format!("dumps are kept in {ALL_DUMPS}")),
        "{r}"
    );
    assert_eq!(dumps(c), kept, "purge must keep every dump");
    let after = tree(c);
    let removed: Vec<_> = before.difference(&after).collect();
    assert!(
        removed.is_empty(),
        "purge removed what was there before: {removed:#?}"
    );
    let manifest = |d: &String| {
        let (stamp, form) = names("dump").parse(d).unwrap();
        names("dump").manifest(&stamp, form)
    };
    let kept_paths: BTreeSet<String> = ["/var/lib/timerapps", ALL_DUMPS, DUMPS]
        .iter()
        .map(|p| p.to_string())
        .chain(kept.iter().map(|d| format!("{DUMPS}/{d}")))
        .chain(kept.iter().map(|d| format!("{DUMPS}/{}", manifest(d))))
        .chain([format!("{DUMPS}/{foreign}")])
        .collect();
    // The user stays (Debian practice); creating it leaves the usual backups.
    let user_files = [
        "/etc/passwd-",
        "/etc/group-",
        "/etc/shadow-",
        "/etc/gshadow-",
        "/etc/.pwd.lock",
    ];
    let left: Vec<_> = after
        .difference(before)
        .filter(|p| !kept_paths.contains(*p) && !user_files.contains(&p.as_str()))
        .collect();
    assert!(
        left.is_empty(),
        "purge left files of the package: {left:#?}"
    );
    assert!(passwd_has_user(c), "purge keeps the user");
    eprintln!("end-to-end wall time: {:.1} s", c.elapsed().as_secs_f64());
}

/// `DUMP_ZSTD_LEVEL=19` on 64 threads under the shipped memory limits:
/// refused with one line naming both, nothing written; with the limits
/// raised by drop-ins, as `systemctl edit` writes them, a dump is
/// published and the cgroup's peak stays under the limit. Where the host
/// binds the memory controller to cgroup v1, the container's systemd
/// cannot apply `MemoryHigh=` or `MemoryMax=` at all and the job rightly
/// sees no limit; there the limit is DUMP_MEMORY_MAX, set by drop-ins the
/// same way.
fn memory_limit(c: &Container) {
    let settings = "/etc/default/dump-database";
    let saved = fs::read(c.path(settings)).unwrap();
    c.sh(&format!(
        "printf 'DUMP_COMPRESS=zstd\nDUMP_ZSTD_LEVEL=19\nDUMP_THREADS=64\n' >> {settings}"
    ));
    let controlled = c
        .sh("cat /sys/fs/cgroup/cgroup.controllers")
        .split_whitespace()
        .any(|controller| controller == "memory");
    let limit = memory_limit_named(c, controlled);
    refused_over_the_limit(c, &limit);
    published_with_the_limit_raised(c, controlled);
    fs::write(c.path(settings), saved).unwrap();
    for unit in [SERVICE, SLICE] {
        for file in ["override.conf", "50-memory.conf"] {
            let _ = fs::remove_file(drop_ins(c, unit).join(file));
        }
        let _ = fs::remove_dir(drop_ins(c, unit));
    }
    c.sh("systemctl daemon-reload");
}

const SERVICE: &str = "dump-database.service";

/// Where `systemctl edit` writes the drop-ins of `unit`.
fn drop_ins(c: &Container, unit: &str) -> PathBuf {
    c.path(&format!("/etc/systemd/system/{unit}.d"))
}

/// How the refusal names the limit that binds: the smaller MemoryHigh=,
/// or, where the container's cgroups have no memory controller,
/// DUMP_MEMORY_MAX set by a drop-in.
fn memory_limit_named(c: &Container, controlled: bool) -> String {
    let service = SERVICE;
    let dir = |unit: &str| drop_ins(c, unit);
    if controlled {
        // The smaller MemoryHigh= binds: the service's, or on a host of
        // little RAM the slice's share of it.
        let number =
            |name: &str| -> u64 { c.sh(&format!("getconf {name}")).trim().parse().unwrap() };
        let page = number("PAGESIZE");
        let ram = number("_PHYS_PAGES") * page;
        let high = |shares: &[Share]| {
            let share = shares.iter().find(|s| s.key == "MemoryHigh").unwrap();
            jobkit::host::budget::bytes(share.value, ram, page).unwrap()
        };
        let (bytes, unit) = [
            (high(Load::Dump.shares()), service),
            (high(SLICE_SHARES), SLICE),
        ]
        .into_iter()
        .min()
        .unwrap();
        format!(
            "more than the {} it may take: half of the {} MemoryHigh= of {unit}",
            binary(bytes / 2),
            binary(bytes)
        )
    } else {
        eprintln!(
            "the container's cgroups have no memory controller (the host's is cgroup v1's): \
             the limit is DUMP_MEMORY_MAX"
        );
        fs::create_dir_all(dir(service)).unwrap();
        fs::write(
            dir(service).join("50-memory.conf"),
            "[Service]\nEnvironment=DUMP_MEMORY_MAX=2G\n",
        )
        .unwrap();
        c.sh("systemctl daemon-reload");
        "more than the 1.00 GiB it may take: half of DUMP_MEMORY_MAX (2.00 GiB)".to_owned()
    }
}

/// One line, exit 2, nothing written.
fn refused_over_the_limit(c: &Container, limit: &str) {
    let service = SERVICE;
    let before = hashes(c);
    let r = c.exec(&["systemctl", "start", service]);
    assert_ne!(r.code(), Some(0), "{r}");
    assert_eq!(c.show(service, "ExecMainStatus"), "2");
    let invocation = c.show(service, "InvocationID");
    let messages = c.sh(&format!(
        "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID={invocation}"
    ));
    let refusal: Vec<&str> = messages
        .lines()
        .filter(|l| l.starts_with("dump-database: "))
        .collect();
    assert_eq!(refusal.len(), 1, "{messages}");
    for shown in [
        "DUMP_ZSTD_LEVEL=19 with DUMP_THREADS=64 needs up to ",
        limit,
        "lower DUMP_ZSTD_LEVEL or DUMP_THREADS",
    ] {
        assert!(refusal[0].contains(shown), "{shown:?} in:\n{messages}");
    }
    assert_eq!(hashes(c), before, "the refused run wrote something");
}

/// Raised by drop-ins for the service and its slice, the limit lets a
/// dump publish, and the cgroup's peak stays under it.
fn published_with_the_limit_raised(c: &Container, controlled: bool) {
    let service = SERVICE;
    let dir = |unit: &str| drop_ins(c, unit);
    let raised = if controlled {
        vec![
            (SLICE, "[Slice]\nMemoryHigh=16G\nMemoryMax=16G\n"),
            (
                service,
                // With the cgroup's peak, read before systemd removes it.
                "[Service]\nMemoryHigh=16G\nMemoryMax=16G\nExecStopPost=+/bin/sh -c 'cat \
                 /sys/fs/cgroup$$(sed -n s/^0:://p /proc/self/cgroup)/memory.peak \
                 >/run/dump-database.peak'\n",
            ),
        ]
    } else {
        vec![(service, "[Service]\nEnvironment=DUMP_MEMORY_MAX=16G\n")]
    };
    for (unit, text) in &raised {
        fs::create_dir_all(dir(unit)).unwrap();
        fs::write(dir(unit).join("override.conf"), text).unwrap();
    }
    c.sh(&format!(
        "systemctl daemon-reload; systemctl start {service}"
    ));
    let newest = dumps(c).last().unwrap().clone();
    assert!(newest.ends_with(".zst"), "{newest}");
    c.sh("timerapps verify dump-database");
    if controlled {
        let peak: u64 = c.sh("cat /run/dump-database.peak").trim().parse().unwrap();
        eprintln!(
            "zstd 19 on 64 threads: the service's cgroup peaked at {}",
            binary(peak)
        );
        assert!(peak < 16 << 30, "{peak}");
    }
}

fn passwd_has_user(c: &Container) -> bool {
    fs::read_to_string(c.path("/etc/passwd"))
        .unwrap()
        .lines()
        .any(|l| l.starts_with("timerapps:"))
}
