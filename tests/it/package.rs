//! The built .deb, as users get it: its contents, lintian, and its units
//! checked by systemd-analyze.

use crate::container::{rootfs, Release};
use crate::harness::{cmd, run, sh, start, Sandbox};
use jobkit::catalogue::{
    self, Kind, Manager, Program, Shape, Variant, COPY, DRILL, JOBS, MAIL_SENDMAIL_DROP_IN,
    MAIL_SENDMAIL_EXAMPLE, MAIL_TEMPLATE,
};
use jobkit::host::budget::SLICE;
use std::path::{Path, PathBuf};

/// The package built by packaging/build, or the one TIMERAPPS_DEB names.
pub fn built_deb() -> PathBuf {
    let deb = std::env::var_os("TIMERAPPS_DEB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
                "target/debian/timerapps_{}-1_amd64.deb",
                env!("CARGO_PKG_VERSION")
            ))
        });
    assert!(
        deb.exists(),
        "{} is missing: build it with packaging/build",
        deb.display()
    );
    deb
}

/// The commit of the package users have today: the last one released.
pub const RELEASED: &str = "84f601cab1bd089741ec2f7ca7b526066453fa90";

/// The package as released at [`RELEASED`], built from this clone's
/// history by that commit's own packaging/build, once, into a tree of its
/// own.
pub fn released_deb() -> PathBuf {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("released-{RELEASED}"));
    let deb = dir.join(format!(
        "target/debian/timerapps_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    if deb.exists() {
        return deb;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    sh(&format!(
        "git -C '{}' archive --format=tar {RELEASED} | tar -x -C '{}'",
        env!("CARGO_MANIFEST_DIR"),
        dir.display()
    ));
    // Its own Rust toolchain and crates, as the tests' own build has them.
    let mut build = cmd(dir.join("packaging/build"));
    for var in [
        "HOME",
        "PATH",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
    ] {
        if let Some(value) = std::env::var_os(var) {
            build.env(var, value);
        }
    }
    start(&mut build)
        .wait(std::time::Duration::from_secs(1800))
        .ok();
    assert!(deb.exists(), "{} was not built", deb.display());
    deb
}

fn field(deb: &Path, name: &str) -> String {
    run(cmd("dpkg-deb").arg("-f").arg(deb).arg(name))
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// The jobs' units the package ships for `manager`, from the jobs'
/// manifest, and the slice they run in.
pub fn units(manager: Manager) -> Vec<String> {
    let mut units: Vec<String> = JOBS
        .iter()
        .flat_map(|j| {
            j.variants
                .iter()
                .filter(move |v| v.manager == manager)
                .map(move |v| (j, v))
        })
        .flat_map(|(j, v)| Kind::ALL.map(|k| j.unit(v.shape, k)))
        .chain([SLICE.to_owned()])
        .collect();
    units.sort();
    units
}

/// The system's packaged units of one kind but the templates.
pub fn packaged(kind: Kind) -> Vec<String> {
    catalogue::plain_units(Manager::System, kind)
}

#[test]
#[ignore = "needs the .deb: tests/run"]
fn the_package_holds_the_jobs_units_settings_and_docs() {
    let deb = built_deb();
    let listing = run(cmd("dpkg-deb").arg("-c").arg(&deb)).ok().stdout.clone();
    for path in &shipped_paths() {
        assert!(
            listing.lines().any(|l| {
                let entry = l.split(" -> ").next().unwrap_or(l);
                entry.ends_with(&format!(" {path}"))
            }),
            "{path} missing from the package:\n{listing}"
        );
    }
    let sb = Sandbox::new("deb-control");
    its_control_files_hold_conffiles_sums_and_every_token(&deb, &sb);
    its_units_are_systemds_and_its_jobs_static(&deb, &sb);
    eprintln!(
        "package size: {} bytes",
        std::fs::metadata(&deb).unwrap().len()
    );
}

/// Every path the package must hold, as `dpkg-deb -c` shows it.
fn shipped_paths() -> Vec<String> {
    let jobs: Vec<&str> = JOBS.iter().map(|j| j.name).collect();
    let mut expected: Vec<String> = jobs
        .iter()
        .flat_map(|b| [format!("./usr/bin/{b}"), format!("./etc/default/{b}")])
        .collect();
    for manager in [Manager::System, Manager::User] {
        let dir = manager.unit_dir();
        expected.extend(units(manager).iter().map(|u| format!(".{dir}/{u}")));
    }
    // Each job's man page, a file or a link to the page it shares.
    expected.extend(
        JOBS.iter()
            .map(|j| format!("./usr/share/man/man1/{}.1.gz", j.man)),
    );
    expected.push(format!(".{MAIL_SENDMAIL_EXAMPLE}"));
    expected.extend(
        [
            "./usr/lib/sysusers.d/timerapps.conf",
            "./usr/bin/timerapps",
            "./etc/default/timerapps",
            "./usr/lib/systemd/system/timerapps-mail@.service",
            "./usr/lib/systemd/user/timerapps-mail@.service",
            "./usr/share/doc/timerapps/examples/timerapps.rules.yml",
            "./usr/share/doc/timerapps/status.schema.json",
            "./usr/share/man/man1/timerapps.1.gz",
            "./usr/share/bash-completion/completions/timerapps",
            "./usr/share/doc/timerapps/copyright",
            "./usr/share/doc/timerapps/changelog.Debian.gz",
        ]
        .map(String::from),
    );
    // The README and the pages it links to, as in the source tree.
    expected.push("./usr/share/doc/timerapps/README.md".to_owned());
    for page in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")).unwrap() {
        let name = page.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            expected.push(format!("./usr/share/doc/timerapps/docs/{name}"));
        }
    }
    expected
}

fn its_control_files_hold_conffiles_sums_and_every_token(deb: &Path, sb: &Sandbox) {
    let jobs: Vec<&str> = JOBS.iter().map(|j| j.name).collect();
    run(cmd("dpkg-deb").arg("-e").arg(deb).arg(sb.path("DEBIAN"))).ok();
    let conffiles = std::fs::read_to_string(sb.path("DEBIAN/conffiles")).unwrap();
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort_unstable();
    assert_eq!(
        conffiles,
        [
            "/etc/default/dump-database",
            "/etc/default/myapp",
            "/etc/default/otherapp",
            "/etc/default/timerapps",
            "/etc/timerapps/dump-database/NAME.conf.example",
        ]
    );
    let md5sums = std::fs::read_to_string(sb.path("DEBIAN/md5sums")).unwrap();
    for b in &jobs {
        assert!(md5sums.contains(&format!("  usr/bin/{b}\n")), "{md5sums}");
    }
    assert!(
        !md5sums.contains("etc/default"),
        "conffiles have no md5sums entry\n{md5sums}"
    );
    assert_eq!(field(deb, "Package"), "timerapps");
    assert_eq!(field(deb, "Architecture"), "amd64");
    assert!(field(deb, "Depends").contains("systemd"));
    let postinst = std::fs::read_to_string(sb.path("DEBIAN/postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers"), "{postinst}");
    // packaging/build filled in every token from the catalogue.
    for script in ["postinst", "prerm", "postrm"] {
        let text = std::fs::read_to_string(sb.path("DEBIAN").join(script)).unwrap();
        assert!(!text.contains("=\"#"), "{script} has a token left\n{text}");
    }
    let timers = format!("TIMERS='{}'", packaged(Kind::Timer).join(" "));
    assert!(
        postinst.contains(&timers),
        "postinst lacks {timers}\n{postinst}"
    );
}

/// Units unpacked as shipped are the ones in systemd/, which the
/// packaging crate's test holds to their source; the jobs are static.
fn its_units_are_systemds_and_its_jobs_static(deb: &Path, sb: &Sandbox) {
    let jobs: Vec<&str> = JOBS.iter().map(|j| j.name).collect();
    let root = sb.path("root");
    run(cmd("dpkg-deb").arg("-x").arg(deb).arg(&root)).ok();
    for manager in [Manager::System, Manager::User] {
        let sub = match manager {
            Manager::System => "",
            Manager::User => "user",
        };
        for unit in units(manager) {
            let shipped = std::fs::read(root.join(&manager.unit_dir()[1..]).join(&unit)).unwrap();
            let source = std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("systemd")
                    .join(sub)
                    .join(&unit),
            )
            .unwrap();
            assert!(
                shipped == source,
                "{unit} in the package is not systemd/{sub}/{unit}"
            );
        }
    }
    for b in &jobs {
        let file = sh(&format!(
            "file -b '{}'",
            root.join("usr/bin").join(b).display()
        ));
        assert!(
            file.contains("static-pie linked") || file.contains("statically linked"),
            "{b}: {file}"
        );
    }
}

#[test]
#[ignore = "needs the .deb: tests/run"]
fn lintian_finds_no_error_and_no_warning() {
    let deb = built_deb();
    let r = run(cmd("lintian")
        .args(["--display-info", "--pedantic", "--tag-display-limit", "0"])
        .arg(&deb));
    let tags: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.len() > 2 && &l[1..3] == ": ")
        .collect();
    eprintln!("lintian tags:\n{}", tags.join("\n"));
    let bad: Vec<&&str> = tags
        .iter()
        .filter(|t| t.starts_with("E:") || t.starts_with("W:"))
        .collect();
    assert!(bad.is_empty(), "lintian errors or warnings: {bad:#?}\n{r}");
    assert!(
        r.stderr.lines().all(|l| l.contains("root privileges")),
        "{r}"
    );
}

/// The package's files under `root`, beside the host's own units, so that
/// systemd-analyze sees the installed system (and checks ExecStart= there).
fn installed_root(sb: &Sandbox) -> PathBuf {
    let root = sb.path("root");
    run(cmd("dpkg-deb").arg("-x").arg(built_deb()).arg(&root)).ok();
    sh(&format!(
        "cp -an /usr/lib/systemd/system/. '{}/usr/lib/systemd/system/'",
        root.display()
    ));
    root
}

fn verify(root: &Path, units: &[&str]) -> crate::harness::Run {
    let paths = units
        .iter()
        .map(|u| root.join("usr/lib/systemd/system").join(u));
    run(cmd("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(paths))
}

/// The example drop-in of the failure mail's unit, installed under `root`
/// as the admin installs it.
fn install_mail_drop_in(root: &Path) {
    let drop_in = root.join(&MAIL_SENDMAIL_DROP_IN[1..]);
    std::fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
    std::fs::copy(root.join(&MAIL_SENDMAIL_EXAMPLE[1..]), &drop_in).unwrap();
}

#[test]
#[ignore = "needs the .deb: tests/run"]
fn every_unit_verifies_clean() {
    let sb = Sandbox::new("verify");
    let root = installed_root(&sb);
    let mail = format!("{MAIL_TEMPLATE}.service");
    let mut units = units(Manager::System);
    units.push(mail.clone());
    let units: Vec<&str> = units.iter().map(String::as_str).collect();
    let r = verify(&root, &units);
    assert!(
        r.code() == Some(0) && r.stdout.is_empty() && r.stderr.is_empty(),
        "{r}"
    );
    // The failure mail's unit with its example drop-in, which systemd
    // reads from /etc under the root.
    install_mail_drop_in(&root);
    let r = verify(&root, &[&mail]);
    assert!(
        r.code() == Some(0) && r.stdout.is_empty() && r.stderr.is_empty(),
        "{r}"
    );

    // The check is not blind: a unit whose program is missing fails it.
    std::fs::remove_file(root.join("usr/bin/otherapp")).unwrap();
    let r = verify(&root, &["otherapp.service"]);
    assert!(
        r.code() != Some(0) && r.stderr.contains("/usr/bin/otherapp"),
        "{r}"
    );
}

/// The highest `systemd-analyze security` exposure each variant may have.
/// A user manager's units are scored as the system's would be: without
/// `User=` (they run as their user) and without what a user manager cannot
/// apply (see packaging/debian/units.rs), which the score counts against
/// them.
fn exposure_ceiling(manager: Manager, program: Program) -> f64 {
    match (manager, program) {
        (Manager::System, Program::Logger) => 0.2,
        (Manager::System, Program::Dump) => 1.2,
        (Manager::User, Program::Logger) => 3.1,
        (Manager::User, Program::Dump) => 4.1,
    }
}

#[test]
#[ignore = "needs the .deb: tests/run"]
fn every_service_is_hardened() {
    let sb = Sandbox::new("security");
    let root = installed_root(&sb);
    let mut services = Vec::new();
    for job in JOBS {
        for variant in job.variants {
            let ceiling = exposure_ceiling(variant.manager, job.program);
            services.push((variant, job.unit(variant.shape, Kind::Service), ceiling));
            // The restore drill: no network at all, so tighter than the job.
            if let Some(drill) = job.companion(&DRILL) {
                let at = if variant.shape == Shape::Template {
                    "@"
                } else {
                    ""
                };
                let ceiling = match variant.manager {
                    Manager::System => 0.3,
                    Manager::User => 3.2,
                };
                services.push((variant, format!("{drill}{at}.service"), ceiling));
            }
            // The off-host copy: network to its repository, read-only dumps.
            if let Some(copy) = job
                .companion(&COPY)
                .filter(|_| COPY.in_manager(variant.manager))
            {
                let at = if variant.shape == Shape::Template {
                    "@"
                } else {
                    ""
                };
                services.push((variant, format!("{copy}{at}.service"), 1.2));
            }
        }
    }
    // The failure mail goes by SMTP to the MTA on localhost: no privilege,
    // the jobs' sandbox.
    let system = Variant {
        manager: Manager::System,
        shape: Shape::Template,
    };
    let mail = format!("{MAIL_TEMPLATE}.service");
    services.push((&system, mail.clone(), 1.3));
    for (variant, service, ceiling) in services {
        let path = root.join(&variant.manager.unit_dir()[1..]).join(&service);
        let which = format!("{:?} {service}", variant.manager);
        let r = run(cmd("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path));
        exposed(&which, &r, ceiling);
    }
    // With the example drop-in for a setuid sendmail, which lifts
    // NoNewPrivileges= and every seccomp-based setting.
    install_mail_drop_in(&root);
    let r = run(cmd("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg(mail.replace('@', "@x")));
    exposed(&format!("{mail} with {MAIL_SENDMAIL_DROP_IN}"), &r, 6.2);
}

/// Holds the exposure `systemd-analyze security` printed in `r` to
/// `ceiling`.
pub fn exposed(which: &str, r: &crate::harness::Run, ceiling: f64) {
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default();
    let score: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level\n{r}"));
    eprintln!("{which}: exposure {score} (ceiling {ceiling})");
    assert!(
        score <= ceiling,
        "{which} exposure {score} > {ceiling}\n{r}"
    );
}

/// Debian's own check of install and purge (piuparts), in a chroot of each
/// release: the maintainer scripts run without a booted systemd there, and
/// purge must leave no file of the package behind. The base has systemd,
/// as every system the package is for does, so that only the package's
/// own files are judged.
#[test]
#[ignore = "needs root and the .deb: tests/run"]
fn piuparts_installs_and_purges_cleanly() {
    for release in [Release::Bookworm, Release::Trixie] {
        let base = rootfs(
            release,
            "systemd,systemd-sysv",
            &format!("{}-piuparts-1.tar.gz", release.suite()),
        );
        let sb = Sandbox::new(&format!("piuparts-{release:?}"));
        let r = run(cmd("piuparts")
            .args(["--no-upgrade-test", "--keep-sources-list"])
            // Made by trixie's debconf whenever apt installs anything (the
            // package uses no debconf); Debian 12's piuparts predates it.
            .arg("--ignore=/var/cache/debconf/tmp.ci/")
            .arg(format!("--distribution={}", release.suite()))
            .arg(format!("--basetgz={}", base.display()))
            .arg("--log-file")
            .arg(sb.path("piuparts.log"))
            .arg(built_deb()));
        assert!(
            r.code() == Some(0) && r.stdout.contains("PASS: All tests."),
            "piuparts on {release:?}\n{r}"
        );
    }
}
