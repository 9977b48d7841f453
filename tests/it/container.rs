//! A real systemd booted with systemd-nspawn, on each Debian release the
//! package is proved on: a root file system built once per release by
//! mmdebstrap and cached, a fresh copy per container, commands run inside
//! with nsenter. [`Host`] is where every container test starts: a release
//! booted with the built package in it, installed or not yet.

use crate::harness::{cmd, run, stop, wait_for, Run, Sandbox};
use crate::package::built_deb;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What the image holds besides minbase; change `IMAGE_REVISION` with it.
const PACKAGES: &str =
    "systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,adduser,postgresql,sqlite3,restic,\
     prometheus-node-exporter,exim4-daemon-light,mariadb-server-core,mariadb-client-core";
const IMAGE_REVISION: u32 = 5;
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The Debian releases the package is proved on.
#[derive(Clone, Copy, Debug)]
pub enum Release {
    /// Debian 12: systemd 252, PostgreSQL 15.
    Bookworm,
    /// Debian 13: systemd 257, PostgreSQL 17.
    Trixie,
}

impl Release {
    pub fn suite(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
        }
    }
}

/// The root file system tarball of `release` for the containers.
pub fn image(release: Release) -> PathBuf {
    let name = format!("{}-timerapps-{IMAGE_REVISION}.tar", release.suite());
    rootfs(release, PACKAGES, &name)
}

/// A minbase root file system of `release` with `packages`, built by
/// mmdebstrap on first use and kept as `file` (its ending, .tar or
/// .tar.gz, picks the format).
pub fn rootfs(release: Release, packages: &str, file: &str) -> PathBuf {
    // Tests run in threads: two building the same image at once would write
    // one partial file together and boot a corrupt system.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e");
    let tar = dir.join(file);
    if !tar.exists() {
        fs::create_dir_all(&dir).unwrap();
        let partial = dir.join(format!("partial-{file}"));
        let _ = fs::remove_file(&partial);
        run(cmd("mmdebstrap")
            .args(["--variant=minbase", "--quiet"])
            .arg(format!("--include={packages}"))
            .arg(release.suite())
            .arg(&partial))
        .ok();
        fs::rename(&partial, &tar).unwrap();
    }
    tar
}

pub struct Container {
    root: PathBuf,
    nspawn: Child,
    pid1: i32,
    log: PathBuf,
    /// The container's own cgroups, removed once it has stopped.
    cgroups: Vec<PathBuf>,
}

/// Shell commands that move the shell into `cgroups`.
fn join(cgroups: &[PathBuf]) -> String {
    cgroups
        .iter()
        .map(|c| format!("echo $$ > '{}/cgroup.procs'; ", c.display()))
        .collect()
}

/// Where this machine mounts its cgroup hierarchies that systemd uses: the
/// unified one alone, or systemd's named one and the unified one beside the
/// v1 controllers.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_owned()];
    }
    ["systemd", "unified"]
        .map(|h| root.join(h))
        .into_iter()
        .filter(|h| h.join("cgroup.procs").exists())
        .collect()
}

impl Container {
    /// Boots a fresh copy of the image of `release`, with no network but
    /// loopback.
    pub fn boot(sb: &Sandbox, release: Release) -> Container {
        let root = sb.mkdir("root");
        run(cmd("tar")
            .arg("-xf")
            .arg(image(release))
            .arg("-C")
            .arg(&root))
        .ok();
        let log = sb.path("console.log");
        static BOOTED: AtomicU32 = AtomicU32::new(0);
        let machine = format!(
            "timerapps-{}-{}",
            std::process::id(),
            BOOTED.fetch_add(1, Ordering::Relaxed)
        );
        // nspawn with --keep-unit makes the container's cgroups under its own
        // cgroup. Left in ours, every container of the suite would share one
        // tree, and one container's systemd would kill or remove another's
        // services (seen as 219/CGROUP and "Failed to spawn executor"), so
        // each gets its own, in every cgroup hierarchy of the machine. The
        // machine name, otherwise the root's directory name "root" for all,
        // keeps their state in /run/systemd/nspawn apart too.
        let cgroups: Vec<PathBuf> = cgroup_hierarchies()
            .into_iter()
            .map(|h| h.join(&machine))
            .collect();
        for cgroup in &cgroups {
            fs::create_dir(cgroup).unwrap();
        }
        assert!(
            Path::new("/usr/bin/systemd-nspawn").exists(),
            "systemd-nspawn (Debian package systemd-container) must be installed"
        );
        let nspawn = cmd("sh")
            .arg("-ec")
            .arg(format!("{}exec \"$@\"", join(&cgroups)))
            .args([
                "sh",
                "systemd-nspawn",
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--quiet",
                "--machine",
                &machine,
                "-D",
            ])
            .arg(&root)
            .args(["-b", "--console=read-only"])
            // cgroup v2 inside, as Debian 12 and 13 boot by default, whatever
            // layout the host has.
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                fs::File::create(sb.path("nspawn.err")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut c = Container {
            root,
            nspawn,
            pid1: 0,
            log,
            cgroups,
        };
        c.wait_until_booted();
        c
    }

    /// Waits for systemd to run as PID 1 and finish booting, cleanly.
    fn wait_until_booted(&mut self) {
        // PID 1 inside is the child of systemd-nspawn once it runs systemd.
        let children = format!("/proc/{0}/task/{0}/children", self.nspawn.id());
        wait_for(
            "systemd to start in the container",
            Duration::from_secs(30),
            || {
                let first = fs::read_to_string(&children).unwrap_or_default();
                self.pid1 = first
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                fs::read_to_string(format!("/proc/{}/comm", self.pid1))
                    .is_ok_and(|comm| comm == "systemd\n")
            },
        );
        // Its bus comes up a moment after; then wait for the boot to finish.
        wait_for(
            "the container's service manager",
            Duration::from_secs(30),
            || {
                // Until /run/systemd/system exists it answers "offline" without
                // trying the bus; then, until the bus is up, it fails to connect.
                let r = self.exec(&["systemctl", "is-system-running"]);
                let state = r.stdout.trim();
                !state.is_empty()
                    && state != "offline"
                    && !r.stderr.contains("Failed to connect to bus")
            },
        );
        let state = self.exec(&["systemctl", "is-system-running", "--wait"]);
        assert!(
            state.stdout.trim() == "running",
            "the container did not boot cleanly\n{state}\n{}\n{}\n--- console\n{}",
            self.exec(&["systemctl", "--failed", "--no-pager"]),
            self.exec(&[
                "journalctl",
                "--no-pager",
                "-b",
                "-p",
                "warning",
                "-n",
                "50"
            ]),
            self.console()
        );
    }

    /// Runs a command inside, as root, with a clean environment, from the
    /// cgroup the container's own cgroups are in, as a process of the host
    /// would be.
    pub fn exec(&self, args: &[&str]) -> Run {
        run(cmd("sh")
            .arg("-ec")
            .arg(format!("{}exec \"$@\"", join(&self.cgroups)))
            .args(["sh", "nsenter", "-t"])
            .arg(self.pid1.to_string())
            .args(["-a", "env", "-i", &format!("PATH={PATH}"), "LC_ALL=C.UTF-8"])
            .arg("DEBIAN_FRONTEND=noninteractive")
            .args(args))
    }

    /// Runs a shell script inside, which must succeed; returns its stdout.
    #[track_caller]
    pub fn sh(&self, script: &str) -> String {
        let r = self.exec(&["sh", "-ec", script]);
        assert_eq!(r.code(), Some(0), "{r}\n--- console\n{}", self.console());
        r.stdout.clone()
    }

    /// A path inside the container, seen from the host.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its PID 1, as the host sees it: `ip link set DEV netns PID` moves a
    /// link into its network.
    pub fn pid(&self) -> i32 {
        self.pid1
    }

    /// A property of a unit, as `systemctl show --value` prints it.
    pub fn show(&self, unit: &str, property: &str) -> String {
        self.sh(&format!("systemctl show --value -p {property} {unit}"))
            .trim()
            .to_owned()
    }

    /// What `systemctl VERB unit` answers, such as is-active or is-enabled.
    pub fn state(&self, verb: &str, unit: &str) -> String {
        self.exec(&["systemctl", verb, unit])
            .stdout
            .trim()
            .to_owned()
    }

    /// The messages of a unit in the journal.
    pub fn journal(&self, unit: &str) -> String {
        self.sh(&format!("journalctl -u {unit} --no-pager -o cat"))
    }

    /// Stops timers whose runs a step does not test, and waits for any run
    /// they started to end, so that none writes while the step checks.
    /// [`Container::quiet`] for every timer the package enables.
    pub fn quiet_all(&self) {
        let timers = crate::package::packaged(jobkit::catalogue::Kind::Timer);
        self.quiet(&timers.iter().map(String::as_str).collect::<Vec<_>>());
    }

    pub fn quiet(&self, timers: &[&str]) {
        for timer in timers {
            self.sh(&format!("systemctl stop {timer}"));
            let service = timer.replace(".timer", ".service");
            wait_for(
                &format!("{service} to end"),
                Duration::from_secs(60),
                || {
                    let jobs = self.sh("systemctl list-jobs --no-legend");
                    !jobs.contains(&service)
                        && !["activating", "deactivating"]
                            .contains(&self.state("is-active", &service).as_str())
                },
            );
        }
    }

    fn console(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        stop(&mut self.nspawn);
        // Whatever the container's systemd left, deepest first; a cgroup
        // that still holds a process stays.
        for cgroup in &self.cgroups {
            for dir in walkdir::WalkDir::new(cgroup)
                .contents_first(true)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_dir())
            {
                let _ = fs::remove_dir(dir.path());
            }
        }
    }
}

/// A container test's machine: a fresh sandbox, a container of one release
/// booted in it, the built package as /root/timerapps.deb inside, and the
/// clock its steps are timed by. It derefs to its [`Container`].
pub struct Host {
    // Dropped in this order: the container stops before its root goes.
    container: Container,
    pub sb: Sandbox,
    started: Instant,
}

/// Where [`Host::boot`] puts the built package inside.
pub const DEB: &str = "/root/timerapps.deb";
/// Where [`Host::boot_with_next`] puts the next revision of it.
pub const NEXT_DEB: &str = "/root/timerapps-next.deb";

impl Host {
    /// Boots `release` in a sandbox named for `test` and the release, with
    /// the built package at [`DEB`], not installed.
    pub fn boot(test: &str, release: Release) -> Host {
        let started = Instant::now();
        let deb = built_deb();
        let sb = Sandbox::new(&format!("{test}-{}", release.suite()));
        let container = Container::boot(&sb, release);
        fs::copy(&deb, container.path(DEB)).unwrap();
        let host = Host {
            container,
            sb,
            started,
        };
        host.step("booted");
        host
    }

    /// [`Host::boot`], with the same package as its next Debian revision at
    /// [`NEXT_DEB`], for upgrades; returns that revision's version too.
    pub fn boot_with_next(test: &str, release: Release) -> (Host, String) {
        let host = Host::boot(test, release);
        let (next, deb) = rebuilt_with_next_revision(&host.sb, &built_deb());
        fs::copy(deb, host.path(NEXT_DEB)).unwrap();
        (host, next)
    }

    /// Booted, the package installed, and every timer it enables stopped
    /// so that no run of theirs writes while the test checks.
    pub fn installed(test: &str, release: Release) -> Host {
        let host = Host::boot(test, release);
        host.install();
        host.quiet_all();
        host
    }

    /// `apt-get install` of the built package.
    pub fn install(&self) {
        self.sh(&format!("apt-get install -y {DEB} </dev/null"));
    }

    /// Says which step begins, and when, on the test's output.
    pub fn step(&self, what: &str) {
        eprintln!("[{:6.1} s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// How long since the test began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl std::ops::Deref for Host {
    type Target = Container;

    fn deref(&self) -> &Container {
        &self.container
    }
}

/// The same package with the next Debian revision, as an upgrade.
fn rebuilt_with_next_revision(sb: &Sandbox, deb: &Path) -> (String, PathBuf) {
    let tree = sb.path("upgrade");
    run(cmd("dpkg-deb").arg("-R").arg(deb).arg(&tree)).ok();
    let control = tree.join("DEBIAN/control");
    let text = fs::read_to_string(&control).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .unwrap();
    let (upstream, revision) = version.rsplit_once('-').unwrap();
    let next = format!("{upstream}-{}", revision.parse::<u32>().unwrap() + 1);
    fs::write(
        &control,
        text.replace(
            &format!("Version: {version}\n"),
            &format!("Version: {next}\n"),
        ),
    )
    .unwrap();
    let out = sb.path(&format!("timerapps_{next}_amd64.deb"));
    run(cmd("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&tree)
        .arg(&out))
    .ok();
    (next, out)
}
