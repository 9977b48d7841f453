//! Root opens nothing the `timerapps` user can turn against it, on a real
//! systemd: a symlink to /etc/shadow, a FIFO, /dev/zero (as a link and as a
//! device node) and a 1 GiB file planted as a drill record, a copy record
//! and a dump's manifest leave `status` unknown (exit 3) with the path,
//! and `write-metrics`, `verify` and `restore` neither hang nor grow;
//! `accept` changes nothing while a run holds the dump name's lock, gives
//! its manifest to the job's user on the descriptor before the rename, and
//! writes a manifest from the dump for one that cannot be trusted.

use crate::container::{Container, Host, Release};
use crate::harness::{cmd, dump_files, names, Run, Sandbox};
use jobkit::dumpfile::manifest::{Check, Verdict};
use jobkit::dumpfile::Manifest;
use jobkit::family::sqlite;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

const DUMPS: &str = jobkit::dumpfile::DEFAULT_DIR;
const METRICS: &str = "/var/lib/prometheus/node-exporter/timerapps-dump-database.prom";
/// What a command may take; a read that hangs on a FIFO takes it all.
const DEADLINE: Duration = Duration::from_secs(30);
/// The most memory a command may take: the whole of /dev/zero or of the
/// 1 GiB file would be far more.
const MAX_RSS_KIB: u64 = 64 * 1024;

/// Runs `args` as root inside `c`, failing the test after [`DEADLINE`];
/// returns the run and the peak resident memory of the largest of its
/// processes (wait4's, which nsenter's own wait for the command passes on).
fn measured(c: &Container, args: &[&str]) -> (Run, u64) {
    let mut command = cmd("nsenter");
    command
        .args(["-t", &c.pid().to_string(), "-a", "env", "-i"])
        .arg(format!("PATH={}", crate::harness::PATH))
        .args([
            "LC_ALL=C.UTF-8",
            "SERVICE_RESULT=success",
            "EXIT_CODE=exited",
            "EXIT_STATUS=0",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let context = format!("{args:?}");
    // A group of its own: a command stuck inside is stopped with nsenter.
    let mut child = command.process_group(0).spawn().unwrap();
    let collect = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            text
        })
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as i32;
    let deadline = Instant::now() + DEADLINE;
    let mut timed_out = false;
    // SAFETY: an all-zero rusage is valid.
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        // SAFETY: wait4 on our own child, writing only into status and usage.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        assert_eq!(done, 0, "wait4: {}", std::io::Error::last_os_error());
        if !timed_out && Instant::now() > deadline {
            timed_out = true;
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(child);
    let run = Run {
        context,
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(!timed_out, "still running after {DEADLINE:?}\n{run}");
    let rss = usage.ru_maxrss as u64;
    assert!(
        rss < MAX_RSS_KIB,
        "{} KiB at its peak, more than {MAX_RSS_KIB}\n{run}",
        rss
    );
    (run, rss)
}

/// What the job's user can leave where root reads, made by `script` at
/// `$f`, owned by the user as its own files are.
const PLANTED: [(&str, &str); 5] = [
    ("a symlink to /etc/shadow", "ln -s /etc/shadow \"$f\""),
    ("a FIFO", "mkfifo \"$f\""),
    ("a symlink to /dev/zero", "ln -s /dev/zero \"$f\""),
    ("/dev/zero's device node", "mknod \"$f\" c 1 5"),
    ("a 1 GiB sparse file", "truncate -s 1G \"$f\""),
];

/// The value of `variable` in the environment systemd gives `unit`.
fn environment(c: &Container, unit: &str, variable: &str) -> String {
    let env = c.show(unit, "Environment");
    env.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{variable}=")))
        .unwrap_or_else(|| panic!("no {variable} in {unit}'s environment: {env}"))
        .to_owned()
}

fn dumps(c: &Container) -> Vec<String> {
    dump_files(&names("dump"), &c.path(DUMPS))
}

fn manifest_path(dump: &str) -> String {
    let (stamp, form) = names("dump").parse(dump).unwrap();
    format!("{DUMPS}/{}", names("dump").manifest(&stamp, form))
}

fn manifest(c: &Container, dump: &str) -> Manifest {
    Manifest::from_json(&fs::read_to_string(c.path(&manifest_path(dump))).unwrap()).unwrap()
}

#[test]
#[ignore = "boots a container: tests/run"]
fn root_reads_nothing_planted_and_accepts_without_a_window_on_debian_12() {
    let c = Host::installed("trust", Release::Bookworm);
    let good = two_good_dumps(&c);
    let status = || measured(&c, &["timerapps", "status", "dump-database"]).0;
    let r = status();
    assert_eq!(r.code(), Some(0), "healthy before anything is planted\n{r}");
    for (place, path, unit) in places_root_reads(&c, &good) {
        let had = c.exec(&["cp", "-a", &path, "/root/saved"]).code() == Some(0);
        for (what, script) in PLANTED {
            root_reads_nothing_planted(&c, &good, what, script, place, &path, unit);
        }
        if had {
            c.sh(&format!("cp -a /root/saved {path}"));
        }
    }
    let r = status();
    assert_eq!(r.code(), Some(0), "healthy again\n{r}");
    accept(&c, &c.sb);
}

/// The two good dumps made before anything is planted, oldest first, and
/// their contents.
struct Good {
    dumps: Vec<String>,
    older: Vec<u8>,
    newer: Vec<u8>,
}

fn two_good_dumps(c: &Container) -> Good {
    c.sh("sqlite3 /srv/shop.db 'CREATE TABLE t (n int, s text);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
            INSERT INTO t SELECT i, printf(\"row %d\", i) FROM c;'
          chmod 644 /srv/shop.db
          printf 'DUMP_COMMAND=\"sqlite3 -readonly /srv/shop.db .dump\"\\nDUMP_KEEP=3\\n' \
            > /etc/default/dump-database
          systemctl start dump-database.service
          sqlite3 /srv/shop.db \"INSERT INTO t VALUES (0, 'one more')\"
          systemctl start dump-database.service");
    // Each good run starts the copy: let it end before anything is planted.
    c.quiet(&["dump-database-copy.timer"]);
    let good = dumps(c);
    assert_eq!(good.len(), 2, "{good:?}");
    let content = |dump: &str| gunzip(&fs::read(c.path(&format!("{DUMPS}/{dump}"))).unwrap());
    let (older, newer) = (content(&good[0]), content(&good[1]));
    assert_ne!(older, newer);
    Good {
        dumps: good,
        older,
        newer,
    }
}

/// Where root reads what the job's user writes: each place, its path, and
/// the unit that writes it.
fn places_root_reads(c: &Container, good: &Good) -> [(&'static str, String, &'static str); 3] {
    let drill_record = environment(c, "dump-database-drill.service", "DRILL_RESULT");
    let copy_record = environment(c, "dump-database-copy.service", "COPY_RESULT");
    let newest_manifest = manifest_path(&good.dumps[1]);
    [
        (
            "the drill record",
            drill_record,
            "dump-database-drill.service",
        ),
        ("the copy record", copy_record, "dump-database-copy.service"),
        (
            "the newest dump's manifest",
            newest_manifest,
            "dump-database.service",
        ),
    ]
}

/// `what` planted by `script` as `place`, at `path`, which `unit` writes:
/// status is unknown and names it, the metrics say unknown, verify and
/// restore neither hang nor grow, and a manifest planted leaves the older
/// good dump restored.
fn root_reads_nothing_planted(
    c: &Container,
    good: &Good,
    what: &str,
    script: &str,
    place: &str,
    path: &str,
    unit: &str,
) {
    let case = format!("{what} as {place}");
    c.sh(&format!(
        "f={path}; mkdir -p \"${{f%/*}}\"; rm -f \"$f\"; {script}; chown -h timerapps: \"$f\""
    ));
    let (r, rss) = measured(c, &["timerapps", "status", "dump-database"]);
    eprintln!("{case}: status, {rss} KiB");
    assert_eq!(r.code(), Some(3), "{case}\n{r}");
    assert!(
        r.stdout.contains("? dump-database ") && r.stdout.contains(path),
        "{case}: unknown, with the path\n{r}"
    );
    // The job's own metrics say unknown whichever unit ran last.
    for unit in [unit, "dump-database.service"] {
        let (r, rss) = measured(c, &["timerapps", "write-metrics", unit]);
        eprintln!("{case}: write-metrics {unit}, {rss} KiB");
        assert_eq!(r.code(), Some(0), "{case}\n{r}");
    }
    let metrics = fs::read_to_string(c.path(METRICS)).unwrap();
    assert!(
        metrics.contains("timerapps_job_state{job_name=\"dump-database\",state=\"unknown\"} 1"),
        "{case}\n{metrics}"
    );
    let (r, rss) = measured(c, &["timerapps", "verify", "dump-database"]);
    eprintln!("{case}: verify, {rss} KiB");
    let (restore, rss) = measured(
        c,
        &[
            "sh",
            "-c",
            "timerapps restore dump-database > /root/restored",
        ],
    );
    eprintln!("{case}: restore, {rss} KiB");
    restore.ok();
    let restored = fs::read(c.path("/root/restored")).unwrap();
    if place.ends_with("manifest") {
        // Neither counted nor taken: the older good dump is restored.
        assert_eq!(r.code(), Some(3), "{case}\n{r}");
        assert!(
            r.stdout
                .contains(&format!("UNTRUSTED {DUMPS}/{}", good.dumps[1]))
                && r.stderr.contains(path),
            "{case}\n{r}"
        );
        assert!(
            restored == good.older,
            "{case}: not the older good dump\n{restore}"
        );
    } else {
        r.ok();
        assert!(
            restored == good.newer,
            "{case}: not the newest dump\n{restore}"
        );
    }
    c.sh(&format!("rm -f {path}"));
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// `accept` of a suspect dump: nothing changed while a run holds the
/// lock; then, traced, the new manifest is given to the job's user on its
/// descriptor (fchown) before it is renamed into place, and no path is
/// ever chowned. Then a damaged manifest, named, rewritten from the dump.
fn accept(c: &Container, sb: &Sandbox) {
    let (all, suspect) = a_suspect_dump_is_kept_and_listed(c);
    accept_changes_nothing_while_a_run_holds_the_lock(c, &suspect);
    accept_gives_the_manifest_to_the_user_before_the_rename(c, sb, &suspect);
    the_accepted_dump_is_the_measure(c, &all[1], &suspect);
    a_damaged_manifest_is_untrusted_until_accepted_by_name(c, &all[1]);
}

/// Returns the dumps, oldest first, and the suspect one, the newest.
fn a_suspect_dump_is_kept_and_listed(c: &Container) -> (Vec<String>, String) {
    c.sh("sqlite3 /srv/shop.db 'DELETE FROM t'");
    let r = c.exec(&["systemctl", "start", "dump-database.service"]);
    assert_ne!(r.code(), Some(0), "{r}");
    c.quiet(&["dump-database-copy.timer"]);
    assert_eq!(c.show("dump-database.service", "ExecMainStatus"), "65");
    let all = dumps(c);
    let suspect = all.last().unwrap().clone();
    let keep = c.sh("timerapps keep dump-database");
    let line = |name: &str| {
        keep.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not in\n{keep}"))
            .to_owned()
    };
    assert!(line(&all[1]).starts_with("newest, largest "), "{keep}");
    assert!(line(&suspect).starts_with("suspect "), "{keep}");
    (all, suspect)
}

/// While a run of the job holds the name's lock, accept exits 75 and
/// changes nothing.
fn accept_changes_nothing_while_a_run_holds_the_lock(c: &Container, suspect: &str) {
    fs::write(
        c.path("/usr/local/bin/hold-dump"),
        "#!/bin/sh\necho $$ > /tmp/held.tmp\nmv /tmp/held.tmp /tmp/held\nexec sleep 600\n",
    )
    .unwrap();
    c.sh("chmod 755 /usr/local/bin/hold-dump
          runuser -u timerapps -- env DUMP_COMMAND=/usr/local/bin/hold-dump dump-database \
              >/tmp/held.log 2>&1 </dev/null &
          echo $! > /tmp/run.pid
          for i in $(seq 600); do [ -e /tmp/held ] && break; sleep 0.1; done");
    let before = fs::read(c.path(&manifest_path(suspect))).unwrap();
    let r = c.exec(&["timerapps", "accept", "dump-database"]);
    assert_eq!(r.code(), Some(75), "{r}");
    assert!(
        r.stderr.contains(&format!(
            "a dump-database run holds {DUMPS}/.dump.lock; nothing was changed"
        )),
        "{r}"
    );
    assert_eq!(fs::read(c.path(&manifest_path(suspect))).unwrap(), before);
    c.sh("kill $(cat /tmp/held)
          while kill -0 $(cat /tmp/run.pid) 2>/dev/null; do sleep 0.1; done
          rm /tmp/held /tmp/run.pid /usr/local/bin/hold-dump");
}

fn accept_gives_the_manifest_to_the_user_before_the_rename(
    c: &Container,
    sb: &Sandbox,
    suspect: &str,
) {
    let trace = sb.path("accept.trace");
    let r = crate::harness::run(
        cmd("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&trace)
            .args([
                "-e",
                "trace=chown,fchown,lchown,fchownat,rename,renameat,renameat2",
            ])
            .args(["nsenter", "-t", &c.pid().to_string(), "-a", "env", "-i"])
            .arg(format!("PATH={}", crate::harness::PATH))
            .args(["timerapps", "accept", "dump-database"]),
    );
    r.ok();
    assert!(r.stdout.contains("is good now"), "{r}");
    let trace = fs::read_to_string(&trace).unwrap();
    let calls: Vec<&str> = trace.lines().collect();
    let (uid, gid) = {
        let meta = fs::metadata(c.path(&format!("{DUMPS}/{suspect}"))).unwrap();
        (meta.uid(), meta.gid())
    };
    let final_name = format!("\"{}\")", manifest_path(suspect));
    let renamed = calls
        .iter()
        .position(|l| l.contains("rename") && l.contains(&final_name) && l.ends_with("= 0"))
        .unwrap_or_else(|| panic!("no rename to {final_name}:\n{trace}"));
    let fchown = calls
        .iter()
        .position(|l| l.contains("fchown(") && l.contains(&format!(", {uid}, {gid})")))
        .unwrap_or_else(|| panic!("no fchown to {uid}:{gid}:\n{trace}"));
    assert!(fchown < renamed, "fchown after the rename:\n{trace}");
    assert!(
        !calls
            .iter()
            .any(|l| l.contains(" chown(") || l.contains("lchown(") || l.contains("fchownat(")),
        "a path was chowned:\n{trace}"
    );
    let meta = fs::metadata(c.path(&manifest_path(suspect))).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (uid, gid, 0o600)
    );
    let m = manifest(c, suspect);
    assert_eq!(m.verdict, Verdict::Good);
    assert!(m.accepted.is_some(), "{m:?}");
}

/// From the accepted dump on: the larger dumps before it, such as
/// `previous`, are held no more, the accepted one is the measure.
fn the_accepted_dump_is_the_measure(c: &Container, previous: &str, suspect: &str) {
    let keep = c.sh("timerapps keep dump-database");
    let line = |name: &str| keep.lines().find(|l| l.contains(name)).unwrap_or_default();
    assert!(line(previous).starts_with("newest  "), "{keep}");
    assert!(
        line(suspect).starts_with("newest, largest ") && line(suspect).contains("accepted"),
        "{keep}"
    );
}

/// A damaged manifest: untrusted until accepted by name, then a manifest
/// from the dump, which knows no rows.
fn a_damaged_manifest_is_untrusted_until_accepted_by_name(c: &Container, dump: &str) {
    let damaged = c.path(&manifest_path(dump));
    fs::write(&damaged, "{ \"version\": 1,").unwrap();
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(
        r.stdout
            .contains(&format!("{DUMPS}/{dump} is untrusted: its manifest"))
            && r.stdout
                .contains(&format!("timerapps accept dump-database {dump}")),
        "{r}"
    );
    let r = c.exec(&["timerapps", "status", "--json", "dump-database"]);
    crate::command::valid_status(&r.stdout);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let row = crate::command::job(&json["jobs"], "dump-database");
    assert_eq!(
        (&row["state"], &row["dumps"]["untrusted"]),
        (&serde_json::json!("failing"), &serde_json::json!(1)),
        "{row:#}"
    );
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(
        r.stdout.contains(&format!("UNTRUSTED {DUMPS}/{dump}")),
        "{r}"
    );
    let r = c.exec(&["timerapps", "accept", "dump-database", dump]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(
        r.stdout
            .contains("has a new manifest, written from the dump"),
        "{r}"
    );
    let m = manifest(c, dump);
    let file = fs::read(c.path(&format!("{DUMPS}/{dump}"))).unwrap();
    assert_eq!(
        (m.format, m.check, m.tables.clone(), m.verdict, m.stored),
        (
            Some(sqlite::SQLITE),
            Check::Unchecked,
            None,
            Verdict::Good,
            file.len() as u64
        ),
        "{m:?}"
    );
    let sum = crate::harness::run(cmd("sha256sum").arg(c.path(&format!("{DUMPS}/{dump}"))))
        .ok()
        .stdout
        .clone();
    assert!(sum.starts_with(&m.sha256), "{sum} {m:?}");
    assert_eq!(m.accepted, None, "re-trusting resets no comparison");
    // Compared with the accepted dump, the next empty one is good.
    c.sh("systemctl start dump-database.service");
    c.quiet(&["dump-database-copy.timer"]);
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
}
