//! An upgrade from the package users have today (built from its commit)
//! keeps every dump it made, byte for byte, with its owner, mode and time,
//! moved from the top of the dumps directory into the default job's own
//! directory; they count as good, shown as unchecked, and the next run
//! adds a dump with its manifest.

use crate::container::{Container, Host, Release, NEXT_DEB};
use crate::harness::{dump_files, names};
use crate::package::released_deb;
use jobkit::dumpfile::Manifest;
use std::fs;

/// Where the released package kept the default job's dumps.
const OLD: &str = jobkit::catalogue::DUMPS_DIR;
const DUMPS: &str = jobkit::dumpfile::DEFAULT_DIR;

fn dumps(c: &Container, dir: &str) -> Vec<String> {
    dump_files(&names("dump"), &c.path(dir))
}

/// Each file at the top of `dir`: its name, owner, mode, time and hash.
fn files(c: &Container, dir: &str) -> String {
    c.sh(&format!(
        "cd {dir} && for f in .[!.]* *; do
           [ -f \"$f\" ] && echo \"$f $(stat -c '%U %a %Y' \"$f\") $(sha256sum < \"$f\")\"
         done; true"
    ))
}

#[test]
#[ignore = "builds the released package and boots a container: tests/run"]
fn an_upgrade_from_the_released_package_keeps_every_dump_on_debian_12() {
    upgrade_on(Release::Bookworm);
}

#[test]
#[ignore = "builds the released package and boots a container: tests/run"]
fn an_upgrade_from_the_released_package_keeps_every_dump_on_debian_13() {
    upgrade_on(Release::Trixie);
}

fn upgrade_on(release: Release) {
    // The next revision is newer than the released 0.1.0-1, as an upgrade is.
    let (c, next) = Host::boot_with_next("upgrade", release);
    fs::copy(released_deb(), c.path("/root/released.deb")).unwrap();
    c.sh("apt-get install -y /root/released.deb </dev/null");
    c.quiet_all();
    c.sh(
        "sqlite3 /srv/app.db \"CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3);\"
          echo 'DUMP_COMMAND=\"sqlite3 -readonly /srv/app.db .dump\"' >> /etc/default/dump-database
          for i in 1 2 3; do systemctl start dump-database.service; sleep 1; done",
    );
    let before = dumps(&c, OLD);
    assert_eq!(before.len(), 3, "{before:?}");
    let made = files(&c, OLD);
    assert!(made.contains(" timerapps 600 "), "{made}");

    // The admin edited /etc/default/dump-database and the package's copy
    // changed too: dpkg would ask. A fleet keeps the admin's file, as
    // docs/package.md's "Upgrade" says.
    c.sh(&format!(
        "apt-get install -y -o Dpkg::Options::=--force-confdef \
           -o Dpkg::Options::=--force-confold {NEXT_DEB} </dev/null"
    ));
    assert_eq!(c.sh("dpkg-query -W -f '${Version}' timerapps"), next);
    assert_eq!(files(&c, DUMPS), made, "the upgrade changed the dumps");
    assert_eq!(files(&c, OLD), "");
    assert_eq!(
        c.sh(&format!("stat -c '%a %U' {OLD} {DUMPS}")),
        "755 root\n700 timerapps\n"
    );
    c.quiet_all();
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains(", unchecked"), "{r}");
    let listing = c.sh("timerapps keep dump-database");
    for d in &before {
        let line = listing.lines().find(|l| l.contains(d.as_str())).unwrap();
        assert!(line.contains("unchecked (no manifest)"), "{listing}");
    }

    c.sh("systemctl start dump-database.service");
    let after = dumps(&c, DUMPS);
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(after[..3], before[..], "every earlier dump stays");
    let newest = after.last().unwrap();
    let (stamp, form) = names("dump").parse(newest).unwrap();
    let manifest = c.path(DUMPS).join(names("dump").manifest(&stamp, form));
    let m = Manifest::from_json(&fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m.total_rows(), Some(3), "{m:?}");
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
}
