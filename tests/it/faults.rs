//! dump-database under faults and operator mistakes that once lost good
//! dumps or stopped every later run: a lost lock, a replaced temp file, a
//! clock that was ahead, a run as root, a planted lock file, a closed
//! stdout, signals while publishing, and odd entries named like the job's.

use crate::dump::{dump_job, dumps, hanging_dump, old_dumps, published, temps, two_good_dumps};
use crate::harness::{
    bin, cmd, dump_name, is_root, names, run, sh, start, user_ids, wait_for, Run, Sandbox,
};
use chrono::Utc;
use jobkit::dumpfile::{Form, Stamp};
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The stamp of the good dump some tests start with.
const GOOD: &str = "20260101T000000Z";

/// A directory holding one good gzip dump, stamped `GOOD`; returns it and
/// its bytes.
fn one_good_dump(sb: &Sandbox) -> (PathBuf, Vec<u8>) {
    let dir = sb.mkdir("dumps");
    let good = dump_name(GOOD, Form::Gzip);
    sh(&format!(
        "echo 'the good dump' | gzip > '{}'",
        dir.join(&good).display()
    ));
    let bytes = fs::read(dir.join(&good)).unwrap();
    (dir, bytes)
}

#[track_caller]
fn only_the_good_dump(dir: &Path, bytes: &[u8], runs: &[&Run]) {
    let all: String = runs.iter().map(|r| format!("{r}\n")).collect();
    let good = dump_name(GOOD, Form::Gzip);
    assert_eq!(dumps(dir), [good.as_str()], "{all}");
    assert_eq!(fs::read(dir.join(&good)).unwrap(), bytes, "{all}");
    run(cmd("gzip").arg("-t").arg(dir.join(&good))).ok();
}

/// Sleeps until the start of the next second, so that two runs started
/// within it draw the same stamp.
fn at_the_start_of_a_second() {
    let into = Utc::now().timestamp_subsec_nanos();
    std::thread::sleep(Duration::from_nanos(u64::from(1_000_000_000 - into)));
}

/// The reproduction: run A holds the lock, the lock file is deleted,
/// run B takes a new one in the same second and sweeps A's temp file. A must
/// publish nothing and prune nothing, whether B fails or is killed.
#[test]
fn a_run_that_lost_its_lock_publishes_and_prunes_nothing() {
    for b_is_killed in [false, true] {
        let sb = Sandbox::new("lost-lock");
        let (dir, good) = one_good_dump(&sb);
        let pidfile = sb.path("b.pid");
        at_the_start_of_a_second();
        let a = start(dump_job(&dir, "sh -c 'sleep 1; echo A-complete'").env("DUMP_KEEP", "1"));
        std::thread::sleep(Duration::from_millis(200));
        fs::remove_file(dir.join(names("dump").lock())).unwrap();
        let b_command = format!(
            "sh -c 'echo $$ > {}; echo B-partial; sleep 3; exit 1'",
            pidfile.display()
        );
        let b = start(dump_job(&dir, &b_command).env("DUMP_KEEP", "1"));
        let b = if b_is_killed {
            wait_for("B's command", Duration::from_secs(10), || {
                fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
            });
            let group: i32 = fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            b.signal(libc::SIGKILL);
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let b = b.wait(Duration::from_secs(30));
            assert_eq!(b.status.code(), None, "{b}");
            b
        } else {
            b.wait(Duration::from_secs(30))
        };
        let a = a.wait(Duration::from_secs(30));
        a.expect(75)
            .stderr_has("lost the lock")
            .stderr_has("nothing was published or pruned");
        assert!(!a.stdout.contains("published"), "{a}");
        if !b_is_killed {
            b.expect(1).stderr_has("exited with status 1");
        }
        only_the_good_dump(&dir, &good, &[&a, &b]);
    }
}

/// The lock holds, but the temp file's name is made to point at other
/// bytes while the dump is written: only what the run wrote may be
/// published, so here nothing is.
#[test]
fn a_temp_file_replaced_by_name_is_never_published() {
    let sb = Sandbox::new("replaced-temp");
    let (dir, good) = one_good_dump(&sb);
    let command = "sh -c 'head -c 1000 /dev/urandom; sleep 2; echo end'";
    let job = start(dump_job(&dir, command).env("DUMP_KEEP", "1"));
    wait_for("the temp file", Duration::from_secs(30), || {
        temps(&dir).len() == 1
    });
    let temp = dir.join(temps(&dir).pop().unwrap());
    fs::remove_file(&temp).unwrap();
    sh(&format!("echo not-a-dump | gzip > '{}'", temp.display()));
    let r = job.wait(Duration::from_secs(30));
    r.expect(1)
        .stderr_has("was removed while the dump was written")
        .stderr_has("nothing was published");
    only_the_good_dump(&dir, &good, &[&r]);
    assert_eq!(
        run(cmd("gzip").arg("-dc").arg(&temp)).ok().stdout,
        "not-a-dump\n",
        "the file in its place is left alone\n{r}"
    );
}

/// Dumps named after this run's own stamp (a clock that was ahead) do not
/// hold DUMP_KEEP's places and are never pruned; each run names them.
#[test]
fn dumps_named_in_the_future_neither_count_nor_are_pruned() {
    let sb = Sandbox::new("future");
    let dir = sb.mkdir("dumps");
    let future = old_dumps(
        &dir,
        &["20990101T000000Z", "20990201T000000Z", "20990301T000000Z"],
    );
    old_dumps(&dir, &["20240101T000000Z", "20240201T000000Z"]);
    let mut real = Vec::new();
    for i in 1..=3 {
        let r = run(dump_job(&dir, &format!("echo run {i}")).env("DUMP_KEEP", "3"));
        let (path, pruned) = published(&r);
        real.push(path.file_name().unwrap().to_string_lossy().into_owned());
        // Three real dumps fill DUMP_KEEP; then each run prunes an old one.
        assert_eq!(pruned, usize::from(i >= 2), "run {i}\n{r}");
        let warned: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| {
                l.contains(
                    " later than this run's dump, probably written while the clock was \
                            ahead: it does not count toward DUMP_KEEP and is never removed by \
                            this job",
                )
            })
            .collect();
        assert_eq!(warned.len(), future.len(), "run {i}\n{r}");
        for (line, name) in warned.iter().zip(&future) {
            assert!(line.contains(&format!("/{name} is named ")), "run {i}\n{r}");
        }
    }
    let mut expected = real.clone();
    expected.extend(future);
    assert_eq!(dumps(&dir), expected);
}

/// A dump directory owned by nobody, a copy of the job that nobody can
/// run, and nobody's uid.
fn nobodys_dir(sb: &Sandbox) -> (PathBuf, PathBuf, u32) {
    assert!(is_root(), "this test switches users and must run as root");
    let copy = sb.path("dump-database");
    fs::copy(bin("dump-database"), &copy).unwrap();
    let dir = sb.mkdir("dumps");
    let (uid, gid) = user_ids("nobody");
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    (dir, copy, uid)
}

fn as_nobody(copy: &Path, dir: &Path, command: &str) -> Command {
    let (uid, gid) = user_ids("nobody");
    let mut c = cmd(copy);
    std::os::unix::process::CommandExt::uid(&mut c, uid);
    std::os::unix::process::CommandExt::gid(&mut c, gid);
    c.env("DUMP_DIR", dir).env("DUMP_COMMAND", command);
    c
}

/// An admin's first manual run as root must not leave files that lock the
/// service's own user out: root refuses another user's DUMP_DIR, and says
/// how to run the job instead; run that way, it works.
#[test]
#[ignore = "needs root: tests/run"]
fn root_refuses_a_dump_dir_of_another_user_and_says_how_to_run_it() {
    let sb = Sandbox::new("root-run");
    let (dir, copy, uid) = nobodys_dir(&sb);
    let before = sb.tree();
    let r = run(&mut dump_job(&dir, "echo data"));
    r.expect(77)
        .stderr_has(&format!("belongs to nobody (uid {uid})"))
        .stderr_has("nothing was changed")
        .stderr_has("systemctl start dump-database")
        .stderr_has("runuser -u nobody -- dump-database");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
    assert_eq!(sb.tree(), before, "root wrote into the directory\n{r}");

    let (path, _) = published(&run(&mut as_nobody(&copy, &dir, "echo data")));
    assert_eq!(fs::metadata(path).unwrap().uid(), uid);
}

/// A lock file this run's user cannot open (as a run as root of an older
/// version left) is named, with its owner and what to do.
#[test]
#[ignore = "needs root: tests/run"]
fn a_lock_file_of_another_user_is_named_with_its_owner() {
    let sb = Sandbox::new("foreign-lock");
    let (dir, copy, uid) = nobodys_dir(&sb);
    let lock = dir.join(names("dump").lock());
    fs::write(&lock, "").unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).unwrap();
    let before = sb.tree();
    let r = run(&mut as_nobody(&copy, &dir, "echo data"));
    r.expect(73)
        .stderr_has(&format!("cannot open the lock file {}", lock.display()))
        .stderr_has("Permission denied")
        .stderr_has(&format!(
            "belongs to root (uid 0), not to nobody (uid {uid})"
        ))
        .stderr_has("remove it");
    assert!(!r.stderr.contains("must be writable"), "{r}");
    assert_eq!(sb.tree(), before, "{r}");
    fs::remove_file(&lock).unwrap();
    published(&run(&mut as_nobody(&copy, &dir, "echo data")));
}

/// The lock is a regular file the job made: never a symlink followed (to
/// lock, and later prune, a dump, or to create a file named like one),
/// never a FIFO, a directory or a socket.
#[test]
fn the_lock_is_never_taken_through_a_symlink_or_on_anything_but_a_file() {
    let sb = Sandbox::new("odd-lock");
    let dir = sb.mkdir("dumps");
    old_dumps(&dir, &["20240101T000000Z"]);
    let lock = dir.join(names("dump").lock());
    type Plant = fn(&Path, &Path);
    let cases: [(&str, Plant, &str); 5] = [
        (
            "a symlink to a dump",
            |lock, dir| symlink(dir.join(dump_name("20240101T000000Z", Form::Gzip)), lock).unwrap(),
            "is a symbolic link, which this job never follows",
        ),
        (
            "a dangling symlink named like a dump",
            |lock, dir| symlink(dir.join(dump_name("20990101T000000Z", Form::Gzip)), lock).unwrap(),
            "is a symbolic link, which this job never follows",
        ),
        (
            "a FIFO",
            |lock, _| {
                sh(&format!("mkfifo '{}'", lock.display()));
            },
            "is not a regular file",
        ),
        (
            "a directory",
            |lock, _| fs::create_dir(lock).unwrap(),
            "it is not a regular file",
        ),
        (
            "a socket",
            |lock, _| drop(std::os::unix::net::UnixListener::bind(lock).unwrap()),
            "it is not a regular file",
        ),
    ];
    for (what, plant, why) in cases {
        plant(&lock, &dir);
        let before = sb.tree();
        let r = run(dump_job(&dir, "echo data").env("DUMP_KEEP", "1"));
        r.expect(73)
            .stderr_has(&format!("the lock file {}", lock.display()))
            .stderr_has(why);
        assert_eq!(sb.tree(), before, "{what}: the directory changed\n{r}");
        let meta = lock.symlink_metadata().unwrap();
        if meta.is_dir() {
            fs::remove_dir(&lock).unwrap();
        } else {
            fs::remove_file(&lock).unwrap();
        }
    }
}

/// A pipe whose reading end is closed: every write to it fails (EPIPE).
fn broken_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into fds, which we own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

/// Reporting is not the dump: a closed or broken stdout or stderr neither
/// fails a published dump nor turns a failure into a crash.
#[test]
fn a_closed_or_broken_stdout_does_not_fail_the_dump() {
    let sb = Sandbox::new("closed-stdout");
    let dir = sb.mkdir("dumps");
    let script = format!("exec '{}' >&-", bin("dump-database"));
    let mut closed = dump_job(&dir, "echo data");
    closed.env("DUMP_KEEP", "1");
    let mut closed_run = cmd("sh");
    for (k, v) in closed.get_envs() {
        closed_run.env(k, v.unwrap());
    }
    let r = run(closed_run.args(["-c", &script]));
    r.ok();
    assert_eq!(dumps(&dir).len(), 1, "{r}");

    for (command, code) in [("echo data", 0), ("sh -c 'exit 3'", 1)] {
        let before = dumps(&dir);
        let status = dump_job(&dir, command)
            .env("DUMP_KEEP", "1")
            .stdout(Stdio::from(broken_pipe()))
            .stderr(Stdio::from(broken_pipe()))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "{command}: {status}");
        let after = dumps(&dir);
        if code == 0 {
            assert_eq!(after.len(), 1);
            assert_ne!(after, before, "a new dump replaced the old one");
            run(cmd("gzip").arg("-t").arg(dir.join(&after[0]))).ok();
        } else {
            assert_eq!(after, before);
        }
    }
    assert!(temps(&dir).is_empty());
}

/// The job run under strace, which sends it SIGTERM as it enters its first
/// `syscall` (strace's fault injection). The call still runs, and the
/// signal reaches the thread making it when the call returns: it lands at
/// that very step, however busy the machine is.
fn sigterm_at(dir: &Path, syscall: &str) -> Command {
    let mut c = cmd("strace");
    c.args(["-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:signal=TERM:when=1"))
        .arg(bin("dump-database"))
        .env("DUMP_DIR", dir)
        .env("DUMP_COMMAND", "echo fresh")
        .env("DUMP_KEEP", "1");
    c
}

/// SIGTERM as the dump is linked in place: the run still prunes, so the
/// directory is as a finished run leaves it, then exits 143 and says what
/// it did.
#[test]
fn sigterm_after_publishing_finishes_the_prune_and_exits_143() {
    let sb = Sandbox::new("sigterm-publish");
    let (dir, _) = one_good_dump(&sb);
    let r = run(&mut sigterm_at(&dir, "linkat"));
    r.expect(143)
        .stderr_has("stopped by SIGTERM")
        .stderr_has("was published and old dumps pruned before stopping");
    let kept = dumps(&dir);
    assert_eq!(kept.len(), 1, "{r}");
    assert_ne!(kept, [dump_name(GOOD, Form::Gzip)], "{r}");
    assert_eq!(
        run(cmd("gzip").arg("-dc").arg(dir.join(&kept[0])))
            .ok()
            .stdout,
        "fresh\n"
    );
    assert!(temps(&dir).is_empty(), "{r}");
}

/// SIGTERM while the finished dump is being flushed, before it is linked:
/// the dump is discarded and nothing is pruned.
#[test]
fn sigterm_while_flushing_discards_the_dump() {
    let sb = Sandbox::new("sigterm-fsync");
    let (dir, good) = one_good_dump(&sb);
    let r = run(&mut sigterm_at(&dir, "fsync"));
    r.expect(143)
        .stderr_has("stopped by SIGTERM")
        .stderr_has("the dump was discarded, earlier dumps are untouched");
    only_the_good_dump(&dir, &good, &[&r]);
    assert!(temps(&dir).is_empty(), "{r}");
}

/// A file system that stops answering while the dump is flushed, as a hung
/// NFS server does (`hanging-fs.py`, a FUSE file system whose fsync waits
/// 20 s): the run declares its failure once DUMP_FINISH_TIMEOUT (2 s) has
/// passed, long before the call returns, and exits 1 as soon as the kernel
/// lets it (FUSE waits for an answer it has sent out without interruption).
/// Earlier dumps are untouched; the next run clears its temp file.
#[test]
#[ignore = "mounts a FUSE file system, as root: tests/run"]
fn a_hung_flush_ends_the_run_after_the_finish_timeout() {
    assert!(is_root(), "mounting needs root");
    let sb = Sandbox::new("hung-fsync");
    let (backing, good) = one_good_dump(&sb);
    let mnt = sb.mkdir("mnt");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/hanging-fs.py");
    let fs_daemon = start(cmd("python3").arg(script).arg(&backing).arg(&mnt).arg("20"));
    wait_for("the FUSE mount", Duration::from_secs(10), || {
        fs::read_dir(&mnt).is_ok_and(|d| d.count() == 1)
    });
    let said = sb.path("stderr");
    let mut job = dump_job(&mnt, "echo fresh")
        .env("DUMP_KEEP", "1")
        .env("DUMP_FINISH_TIMEOUT", "2")
        .stderr(fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    let failure = format!(
        "flushing, publishing and pruning in {} took longer than DUMP_FINISH_TIMEOUT=2 s",
        mnt.display()
    );
    wait_for(
        "the job to declare its failure",
        Duration::from_secs(15),
        || fs::read_to_string(&said).is_ok_and(|t| t.contains(&failure)),
    );
    let mut status = None;
    wait_for("the job to exit", Duration::from_secs(60), || {
        status = job.try_wait().unwrap();
        status.is_some()
    });
    let left = temps(&backing);
    let unmounted = run(cmd("umount").arg("--lazy").arg(&mnt));
    fs_daemon.signal(libc::SIGTERM);
    let _ = fs_daemon.wait(Duration::from_secs(10));
    unmounted.ok();
    let said = fs::read_to_string(&said).unwrap();
    assert_eq!(status.unwrap().code(), Some(1), "{said}");
    assert_eq!(left.len(), 1, "the temp file it was flushing: {left:?}");
    assert_eq!(dumps(&backing), [dump_name(GOOD, Form::Gzip)], "{said}");
    assert_eq!(
        fs::read(backing.join(dump_name(GOOD, Form::Gzip))).unwrap(),
        good
    );
    let next = run(&mut dump_job(&backing, "echo fresh"));
    next.ok();
    assert!(temps(&backing).is_empty(), "{next}");
}

/// Entries named like the job's files that the job did not make: a
/// dangling symlink at the name of this second's dump makes the run take
/// the next free second, and a directory named like a temp file is left
/// alone with a word on what to remove. Neither fails the run.
#[test]
fn entries_named_like_the_jobs_own_do_not_fail_the_run() {
    let sb = Sandbox::new("odd-entries");
    let dir = sb.mkdir("dumps");
    let stamp = Stamp::parse(GOOD).unwrap();
    let dirs = [
        // What 0.1.0 named its temp files, which the library still sweeps.
        format!(".{}.part", dump_name(GOOD, Form::Gzip)),
        names("dump").temp(&stamp, Form::Gzip, 0x0bad_c0de),
    ];
    for d in &dirs {
        fs::create_dir(dir.join(d)).unwrap();
    }
    let now = Utc::now();
    let links: Vec<String> = (0..3)
        .map(|s| {
            let at = now + chrono::Duration::seconds(s);
            let name = names("dump").dump(&Stamp::of(at), Form::Gzip);
            symlink("/nonexistent/dump", dir.join(&name)).unwrap();
            name
        })
        .collect();
    // And the manifest of a dump whose publishing failed, the second after.
    let orphan = Stamp::of(now + chrono::Duration::seconds(3));
    fs::write(dir.join(names("dump").manifest(&orphan, Form::Gzip)), "{}").unwrap();
    let r = run(&mut dump_job(&dir, "echo data"));
    let (path, _) = published(&r);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let after = names("dump").dump(&orphan, Form::Gzip);
    assert!(
        name > after,
        "{name} is not after {links:?} and {after}\n{r}"
    );
    // Its dump never came, so the prune removed it.
    assert!(
        !dir.join(names("dump").manifest(&orphan, Form::Gzip))
            .exists(),
        "{r}"
    );
    for d in &dirs {
        r.stderr_has(&format!(
            "{} is named like a temp file of this job but is not a regular file; it is left \
             alone: remove it",
            dir.join(d).display()
        ));
        assert!(dir.join(d).is_dir(), "{r}");
    }
    for l in &links {
        assert!(dir.join(l).symlink_metadata().unwrap().is_symlink(), "{r}");
    }
}

/// The lock belongs to a DUMP_NAME: another name in the same directory
/// runs meanwhile, and each prunes only its own dumps.
#[test]
fn the_lock_is_per_dump_name_not_per_directory() {
    let sb = Sandbox::new("lock-per-name");
    let (dir, _) = two_good_dumps(&sb, "dumps");
    let (running, _) = hanging_dump(&dir, &sb.path("dump.pid"), "gzip");
    let r = run(dump_job(&dir, "echo other")
        .env("DUMP_NAME", "other")
        .env("DUMP_KEEP", "1"));
    let (path, pruned) = published(&r);
    assert!(path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("other-"));
    assert_eq!(pruned, 0, "{r}");
    assert_eq!(dumps(&dir).len(), 2, "the other name's dumps stay\n{r}");
    running.signal(libc::SIGTERM);
    running.wait(Duration::from_secs(30)).expect(143);
}
