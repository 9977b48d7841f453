//! A small harness: a fresh directory per test, commands run with a clean
//! environment and a timeout, and every failure printed with its context.

use jobkit::dumpfile::{Form, Names, Stamp, DEFAULT_EXTENSION};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const TIMEOUT: Duration = Duration::from_secs(120);

pub fn bin(name: &str) -> &'static str {
    match name {
        "myapp" => env!("CARGO_BIN_EXE_myapp"),
        "otherapp" => env!("CARGO_BIN_EXE_otherapp"),
        "dump-database" => env!("CARGO_BIN_EXE_dump-database"),
        "dump-database-drill" => env!("CARGO_BIN_EXE_dump-database-drill"),
        "dump-database-copy" => env!("CARGO_BIN_EXE_dump-database-copy"),
        "timerapps" => env!("CARGO_BIN_EXE_timerapps"),
        _ => panic!("no binary {name}"),
    }
}

/// The dump files of DUMP_NAME `name` with the default DUMP_EXTENSION, as
/// the library names them: the tests never spell a dump's name.
pub fn names(name: &str) -> Names {
    Names::new(name, DEFAULT_EXTENSION)
}

/// The name of the default job's dump stamped `stamp` (`YYYYMMDDTHHMMSSZ`).
pub fn dump_name(stamp: &str, form: Form) -> String {
    names("dump").dump(&Stamp::parse(stamp).expect("a valid stamp"), form)
}

/// The dumps of `names` in `dir`, oldest first, by file name.
pub fn dump_files(names: &Names, dir: &Path) -> Vec<String> {
    let mut dumps = names.dumps(dir).unwrap_or_default();
    dumps.reverse();
    dumps
        .iter()
        .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A fresh directory for one test, kept for inspection when the test fails.
pub struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    pub fn new(test: &str) -> Sandbox {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let root =
            std::env::temp_dir().join(format!("timerapps-it-{}-{n}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        // Traversable by the users some tests switch to (postgres, nobody).
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        Sandbox { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Every path below the sandbox with its size and mode, to prove that a
    /// run wrote nothing.
    pub fn tree(&self) -> String {
        let list = format!(
            "cd '{}' && find . -printf '%p %s %m\\n' | sort",
            self.root.display()
        );
        sh(&list)
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sandbox kept for inspection: {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// A command with an empty environment but PATH: tests name every variable.
pub fn cmd(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", PATH).stdin(Stdio::null());
    c
}

pub fn job(name: &str) -> Command {
    cmd(bin(name))
}

/// What a finished command did, printable as the context of a failure.
pub struct Run {
    pub context: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code(), Some(code), "unexpected exit status\n{self}");
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        self.expect(0)
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Run {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}\n{self}");
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--- command\n{}\n--- status: {}\n--- stdout\n{}--- stderr\n{}---",
            self.context, self.status, self.stdout, self.stderr
        )
    }
}

fn describe(c: &Command) -> String {
    let mut s = String::new();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={:?} ", k.to_string_lossy(), v));
        }
    }
    s.push_str(&format!("{:?}", c.get_program()));
    for a in c.get_args() {
        s.push_str(&format!(" {a:?}"));
    }
    if let Some(dir) = c.get_current_dir() {
        s.push_str(&format!("  (in {})", dir.display()));
    }
    s
}

/// Busy loops on every CPU and one more, for as long as it lives: a
/// machine under load, for what must not depend on timing.
pub struct CpuHog(Vec<Child>);

pub fn cpu_hog() -> CpuHog {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    CpuHog(
        (0..=cpus)
            .map(|_| {
                cmd("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    )
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A started command whose output is being collected.
pub struct Running {
    pub child: Child,
    context: String,
    out: JoinHandle<String>,
    err: JoinHandle<String>,
}

fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

pub fn start(c: &mut Command) -> Running {
    let context = describe(c);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {context}: {e}"));
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    Running {
        child,
        context,
        out,
        err,
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(
            unsafe { libc::kill(self.pid(), signal) },
            0,
            "kill {}",
            self.context
        );
    }

    /// Waits up to `timeout`; a command still running then is killed and
    /// the test fails with what it printed.
    pub fn wait(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let timed_out = status.is_none();
        let status = status.unwrap_or_else(|| self.child.wait().unwrap());
        let run = Run {
            context: self.context,
            status,
            stdout: self.out.join().unwrap(),
            stderr: self.err.join().unwrap(),
        };
        assert!(!timed_out, "timed out after {timeout:?}\n{run}");
        run
    }
}

pub fn run(c: &mut Command) -> Run {
    start(c).wait(TIMEOUT)
}

/// Runs a helper command that must succeed, returning its stdout.
#[track_caller]
pub fn sh(script: &str) -> String {
    run(cmd("sh").arg("-ec").arg(script)).ok().stdout.clone()
}

/// One finished run: its wall time and its peak resident memory.
#[derive(Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub rss_kib: u64,
}

/// Runs `c`, which must succeed; the peak RSS is wait4's: the largest of
/// the process and the children it waited for.
pub fn measure(c: &mut Command) -> Sample {
    let started = Instant::now();
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child,
    // which it also reaps (so the Child is only dropped afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let wall = started.elapsed();
    drop(child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{c:?} failed: {status}"
    );
    Sample {
        wall,
        rss_kib: usage.ru_maxrss as u64,
    }
}

/// Stops a server the test started: SIGTERM, 30 s to exit, then SIGKILL.
pub fn stop(child: &mut Child) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for _ in 0..300 {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `cond` until it holds, failing the test after `timeout`.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file below `dir` with its bytes, to prove a run changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let content = if meta.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            format!("<{:?}>", meta.file_type()).into_bytes()
        };
        files.insert(name, content);
    }
    files
}

/// The uid and gid of a system user, from the passwd database.
pub fn user_ids(name: &str) -> (u32, u32) {
    let id = |flag: &str| sh(&format!("id {flag} {name}")).trim().parse().unwrap();
    (id("-u"), id("-g"))
}

/// `c` as a unit of that name runs it: in a cgroup named `unit`
/// (`dump-database-copy@shop.service`), where a job finds its unit in
/// `/proc/self/cgroup` as in a service, and, when `machine` is given, with
/// that file bind-mounted over `/etc/machine-id` in a mount namespace of
/// its own: the same job on another host. Nothing in the jobs is there for
/// tests: they read only what the kernel says. Root only.
pub fn in_unit(c: &Command, unit: &str, machine: Option<&Path>) -> Command {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let root = Path::new("/sys/fs/cgroup");
    // The unified hierarchy: the whole tree, or beside v1's controllers.
    let unified = if root.join("cgroup.controllers").exists() {
        root.to_owned()
    } else {
        root.join("unified")
    };
    // The cgroups of earlier test processes, gone now, empty.
    SWEPT.call_once(|| {
        for entry in fs::read_dir(&unified).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("timerapps-it-") else {
                continue;
            };
            if Path::new("/proc").join(pid).exists() {
                continue;
            }
            for leaf in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                if leaf.path().is_dir() {
                    let _ = fs::remove_dir(leaf.path());
                }
            }
            let _ = fs::remove_dir(entry.path());
        }
    });
    let leaf = unified
        .join(format!("timerapps-it-{}", std::process::id()))
        .join(unit);
    fs::create_dir_all(&leaf).unwrap();
    let mut script = format!("echo $$ > '{}/cgroup.procs'\n", leaf.display());
    let mut w = cmd("sh");
    match machine {
        Some(id) => {
            script.push_str(
                "m=$1; shift\nexec unshare --mount --propagation private sh -ec \
                 'mount --bind \"$0\" /etc/machine-id; exec \"$@\"' \"$m\" \"$@\"",
            );
            w.arg("-ec").arg(script).arg("sh").arg(id);
        }
        None => {
            script.push_str("exec \"$@\"");
            w.arg("-ec").arg(script).arg("sh");
        }
    }
    w.arg(c.get_program()).args(c.get_args());
    for (key, value) in c.get_envs() {
        if let Some(value) = value {
            w.env(key, value);
        }
    }
    if let Some(dir) = c.get_current_dir() {
        w.current_dir(dir);
    }
    w
}

/// Gives the restic repository in `repo` a key for `password` that opens
/// in milliseconds (`restic-cheap-key.py`), from its `master` key as
/// `restic cat masterkey` prints it.
pub fn cheap_restic_key(repo: &Path, password: &str, master: &str) {
    let mut key = cmd(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/restic-cheap-key.py"));
    key.arg(repo).arg(password).stdin(Stdio::piped());
    let mut child = key.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(master.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}
