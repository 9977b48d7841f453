//! The built .deb, as users get it: its contents, lintian, and its units
//! checked by systemd-analyze.

use crate::container::{rootfs, Release};
use crate::harness::{cmd, run, sh, Sandbox};
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

fn field(deb: &Path, name: &str) -> String {
    run(cmd("dpkg-deb").arg("-f").arg(deb).arg(name))
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// The units in systemd/, all of which the package ships: the one list of
/// the jobs' units.
pub fn units() -> Vec<String> {
    units_in("systemd")
}

/// The units for users' own managers, in systemd/user/.
pub fn user_units() -> Vec<String> {
    units_in("systemd/user")
}

fn units_in(dir: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut units: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    units.sort();
    units
}

/// The packaged units of one kind (`timer`, `service`) but the templates.
pub fn packaged(kind: &str) -> Vec<String> {
    but_templates(units(), kind)
}

fn but_templates(units: Vec<String>, kind: &str) -> Vec<String> {
    let suffix = format!(".{kind}");
    units
        .into_iter()
        .filter(|u| u.ends_with(&suffix) && !u.contains('@'))
        .collect()
}

/// The jobs: one binary, settings file and service each.
pub fn jobs() -> Vec<String> {
    packaged("service")
        .iter()
        .map(|s| s.trim_end_matches(".service").to_owned())
        .collect()
}

#[test]
fn the_package_holds_the_jobs_units_settings_and_docs() {
    let deb = built_deb();
    let listing = run(cmd("dpkg-deb").arg("-c").arg(&deb)).ok().stdout.clone();
    let jobs = jobs();
    assert_eq!(jobs, ["dump-database", "myapp", "otherapp"]);
    let mut expected: Vec<String> = jobs
        .iter()
        .flat_map(|b| [format!("./usr/bin/{b}"), format!("./etc/default/{b}")])
        .collect();
    expected.extend(
        units()
            .iter()
            .map(|u| format!("./usr/lib/systemd/system/{u}")),
    );
    let user_units = user_units();
    assert_eq!(
        user_units,
        [
            "dump-database@.service",
            "dump-database@.timer",
            "myapp.service",
            "myapp.timer",
            "otherapp.service",
            "otherapp.timer"
        ]
    );
    expected.extend(
        user_units
            .iter()
            .map(|u| format!("./usr/lib/systemd/user/{u}")),
    );
    expected.extend(
        [
            "./usr/lib/sysusers.d/timerapps.conf",
            "./usr/share/man/man1/myapp.1.gz",
            "./usr/share/man/man1/otherapp.1.gz -> myapp.1.gz",
            "./usr/share/man/man1/dump-database.1.gz",
            "./usr/bin/timerapps",
            "./usr/share/man/man1/timerapps.1.gz",
            "./usr/share/bash-completion/completions/timerapps",
            "./usr/share/doc/timerapps/copyright",
            "./usr/share/doc/timerapps/changelog.Debian.gz",
        ]
        .map(String::from),
    );
    for path in &expected {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "{path} missing from the package:\n{listing}"
        );
    }
    let sb = Sandbox::new("deb-control");
    run(cmd("dpkg-deb").arg("-e").arg(&deb).arg(sb.path("DEBIAN"))).ok();
    let conffiles = std::fs::read_to_string(sb.path("DEBIAN/conffiles")).unwrap();
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort_unstable();
    assert_eq!(
        conffiles,
        [
            "/etc/default/dump-database",
            "/etc/default/myapp",
            "/etc/default/otherapp",
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
    assert_eq!(field(&deb, "Package"), "timerapps");
    assert_eq!(field(&deb, "Architecture"), "amd64");
    assert!(field(&deb, "Depends").contains("systemd"));
    let postinst = std::fs::read_to_string(sb.path("DEBIAN/postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers"), "{postinst}");
    // packaging/build wrote the packaged units into the scripts.
    for (script, kinds, user_kinds) in [
        ("postinst", &["timer"][..], &["timer"][..]),
        (
            "prerm",
            &["timer", "service"][..],
            &["timer", "service"][..],
        ),
        ("postrm", &["timer"][..], &[][..]),
    ] {
        let text = std::fs::read_to_string(sb.path("DEBIAN").join(script)).unwrap();
        let lines = kinds
            .iter()
            .map(|k| (format!("{}S", k.to_uppercase()), packaged(k)))
            .chain(user_kinds.iter().map(|k| {
                (
                    format!("USER_{}S", k.to_uppercase()),
                    but_templates(user_units.clone(), k),
                )
            }));
        for (var, units) in lines {
            let line = format!("{var}=\"{}\"", units.join(" "));
            assert!(text.contains(&line), "{script} lacks {line}\n{text}");
        }
    }
    let root = sb.path("root");
    run(cmd("dpkg-deb").arg("-x").arg(&deb).arg(&root)).ok();
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
    eprintln!(
        "package size: {} bytes",
        std::fs::metadata(&deb).unwrap().len()
    );
}

#[test]
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

#[test]
fn every_unit_verifies_clean() {
    let sb = Sandbox::new("verify");
    let root = installed_root(&sb);
    let units = units();
    let units: Vec<&str> = units.iter().map(String::as_str).collect();
    let r = verify(&root, &units);
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

#[test]
fn services_are_hardened() {
    let sb = Sandbox::new("security");
    let root = installed_root(&sb);
    for (service, limit) in [
        ("myapp.service", 1.0),
        ("otherapp.service", 1.0),
        ("dump-database.service", 1.5),
        ("dump-database@.service", 1.5),
    ] {
        let r = run(cmd("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(root.join("usr/lib/systemd/system").join(service)));
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
        eprintln!("{service}: exposure {score} (limit {limit})");
        assert!(score <= limit, "{service} exposure {score} > {limit}\n{r}");
    }
}

/// The lines of a unit file that are settings, not comments or blanks.
fn settings(unit: &str) -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(unit),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// An instance is the default dump job but for where its settings, name
/// and dumps are, and for an unconfigured instance failing: the template
/// repeats the plain unit's hardening and supervision, and must not drift
/// from it.
#[test]
fn an_instance_runs_as_the_default_dump_job_does() {
    for (plain, template, differs) in [
        (
            "dump-database.service",
            "dump-database@.service",
            &[
                "Description=",
                "Environment=",
                "EnvironmentFile=",
                "StateDirectory=",
                "SuccessExitStatus=",
            ][..],
        ),
        (
            "dump-database.timer",
            "dump-database@.timer",
            &["Description="][..],
        ),
    ] {
        let keep = |lines: Vec<String>| -> Vec<String> {
            lines
                .into_iter()
                .filter(|l| !differs.iter().any(|d| l.starts_with(d)))
                .collect()
        };
        assert_eq!(
            keep(settings(plain)),
            keep(settings(template)),
            "{template}"
        );
        let instance = settings(template);
        for line in [
            "EnvironmentFile=-/etc/timerapps/dump-database/%i.conf",
            "Environment=DUMP_NAME=%i DUMP_DIR=/var/lib/timerapps/dumps/%i",
            "StateDirectory=timerapps/dumps/%i",
        ] {
            if template.ends_with(".service") {
                assert!(
                    instance.iter().any(|l| l == line),
                    "{template} lacks {line}"
                );
            }
        }
    }
}

/// Debian's own check of install and purge (piuparts), in a chroot of each
/// release: the maintainer scripts run without a booted systemd there, and
/// purge must leave no file of the package behind. The base has systemd,
/// as every system the package is for does, so that only the package's
/// own files are judged.
#[test]
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
