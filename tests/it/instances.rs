//! dump-database@NAME on a real systemd: two instances dump two
//! PostgreSQL databases on their own timers into their own directories,
//! each keeping its own count, with passwords from root-only files handed
//! over by LoadCredential=; broken instances fail alone; upgrade, remove
//! and purge keep every instance's dumps and settings.

use crate::container::{Container, Host, Release};
use crate::harness::{dump_files, names};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

const DUMPS: &str = jobkit::catalogue::DUMPS_DIR;
const INSTANCES: &str = "/etc/timerapps/dump-database";
const PASSWORD: &str = "s3cret-only-root-reads";

/// The dumps of one instance, oldest first.
fn dumps(c: &Container, name: &str) -> Vec<String> {
    dump_files(&names(name), &c.path(&format!("{DUMPS}/{name}")))
}

fn published(c: &Container, name: &str) -> usize {
    c.journal(&format!("dump-database@{name}.service"))
        .lines()
        .filter(|l| l.starts_with("dump-database: published "))
        .count()
}

fn table(c: &Container, db: &str, table: &str) -> String {
    c.sh(&format!(
        "runuser -u postgres -- psql -At -d {db} -c 'COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT'"
    ))
}

#[test]
#[ignore = "boots a container: tests/run"]
fn instances_on_debian_12() {
    instances_on(Release::Bookworm);
}

#[test]
#[ignore = "boots a container: tests/run"]
fn instances_on_debian_13() {
    instances_on(Release::Trixie);
}

fn instances_on(release: Release) {
    let (c, _) = Host::boot_with_next("instances", release);
    c.install();
    c.quiet_all();
    assert!(c.path(&format!("{INSTANCES}/NAME.conf.example")).exists());

    two_databases_readable_only_with_a_password(&c);
    root_only_credentials_handed_over_by_load_credential(&c);
    each_instance_runs_on_its_own_timer(&c);
    a_broken_instance_and_one_without_settings_fail_alone(&c);
    an_upgrade_keeps_the_instances_enabled_and_running(&c);
    remove_stops_them_and_purge_keeps_every_dump_and_instance_file(&c);
    c.step("done");
}

fn two_databases_readable_only_with_a_password(c: &Host) {
    c.step("two databases, readable only with a password");
    c.sh(&format!(
        "runuser -u postgres -- psql -q -c \"CREATE ROLE backup LOGIN PASSWORD '{PASSWORD}'\"
         runuser -u postgres -- createdb -O backup sales
         runuser -u postgres -- createdb -O backup hr
         runuser -u postgres -- psql -q -d sales -c \"SET ROLE backup;
           CREATE TABLE items (id int PRIMARY KEY, name text);
           INSERT INTO items SELECT i, 'item ' || md5(i::text) FROM generate_series(1, 2000) i;\"
         runuser -u postgres -- psql -q -d hr -c \"SET ROLE backup;
           CREATE TABLE staff (id int PRIMARY KEY, name text);
           INSERT INTO staff SELECT i, 'person ' || i FROM generate_series(1, 700) i;\"
         hba=$(ls -d /etc/postgresql/*/main)/pg_hba.conf
         sed -i '1i local all backup scram-sha-256' \"$hba\"
         systemctl reload postgresql"
    ));
}

fn root_only_credentials_handed_over_by_load_credential(c: &Host) {
    c.step("root-only credentials, handed over by LoadCredential=");
    // A connection service file holds the password: libpq ignores a pgpass
    // file with group access, which credentials have on systemd 257.
    c.sh("install -d -m 0700 /etc/timerapps/credentials");
    for (name, keep) in [("sales", 2), ("hr", 3)] {
        let secret = c.path(&format!(
            "/etc/timerapps/credentials/{name}.pg_service.conf"
        ));
        fs::write(
            &secret,
            format!("[{name}]\nuser=backup\ndbname={name}\npassword={PASSWORD}\n"),
        )
        .unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        let drop_in = c.path(&format!(
            "/etc/systemd/system/dump-database@{name}.service.d"
        ));
        fs::create_dir_all(&drop_in).unwrap();
        fs::write(
            drop_in.join("credentials.conf"),
            format!(
                "[Service]\nLoadCredential=pg_service.conf:/etc/timerapps/credentials/{name}.pg_service.conf\nEnvironment=PGSERVICEFILE=%d/pg_service.conf\n"
            ),
        )
        .unwrap();
        fs::write(
            c.path(&format!("{INSTANCES}/{name}.conf")),
            format!("DUMP_COMMAND=\"pg_dump --no-password service={name}\"\nDUMP_KEEP={keep}\n"),
        )
        .unwrap();
        let meta = fs::metadata(&secret).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    }
    let r = c.exec(&[
        "runuser",
        "-u",
        "timerapps",
        "--",
        "cat",
        "/etc/timerapps/credentials/sales.pg_service.conf",
    ]);
    assert!(
        r.code() != Some(0) && r.stderr.contains("Permission denied"),
        "timerapps can read the original\n{r}"
    );
    // A broken value, and an instance with no file at all.
    fs::write(
        c.path(&format!("{INSTANCES}/broken.conf")),
        "DUMP_COMMAND=\"pg_dump sales\"\nDUMP_KEEP=many\n",
    )
    .unwrap();
}

fn each_instance_runs_on_its_own_timer(c: &Host) {
    c.step("each instance on its own timer");
    c.sh("mkdir -p /etc/systemd/system/dump-database@.timer.d
          printf '[Timer]\\nOnActiveSec=\\nOnActiveSec=1s\\nOnUnitActiveSec=2s\\nAccuracySec=1s\\nRandomizedDelaySec=0\\n' \
            > /etc/systemd/system/dump-database@.timer.d/fast.conf
          systemctl daemon-reload
          systemctl enable --now dump-database@sales.timer dump-database@hr.timer \
            dump-database@broken.timer dump-database@ghost.timer");
    let deadline = Instant::now() + Duration::from_secs(90);
    while published(c, "sales") < 4 || published(c, "hr") < 4 {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for four runs of each instance\n{}\n{}",
            c.exec(&["systemctl", "status", "--no-pager", "dump-database@*"]),
            c.exec(&["journalctl", "--no-pager", "-n", "60"])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    c.quiet(&["dump-database@sales.timer", "dump-database@hr.timer"]);
    assert_eq!(dumps(c, "sales").len(), 2, "{:?}", dumps(c, "sales"));
    assert_eq!(dumps(c, "hr").len(), 3, "{:?}", dumps(c, "hr"));
    for (name, tbl) in [("sales", "items"), ("hr", "staff")] {
        let meta = fs::metadata(c.path(&format!("{DUMPS}/{name}"))).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700, "{name}'s directory");
        let newest = dumps(c, name).pop().unwrap();
        c.sh(&format!(
            "runuser -u postgres -- createdb {name}_restored
             gzip -dc {DUMPS}/{name}/{newest} | runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d {name}_restored >/dev/null"
        ));
        let original = table(c, name, tbl);
        assert!(original.lines().count() >= 700);
        assert_eq!(
            original,
            table(c, &format!("{name}_restored"), tbl),
            "{name}"
        );
    }
}

/// Their timers start them every 2 s: stopped, each shows how its last
/// run ended, not a run in progress.
fn a_broken_instance_and_one_without_settings_fail_alone(c: &Host) {
    c.quiet(&["dump-database@broken.timer", "dump-database@ghost.timer"]);
    let broken = c.journal("dump-database@broken.service");
    assert!(
        broken.contains("dump-database: DUMP_KEEP=\"many\" is invalid"),
        "{broken}"
    );
    let ghost = c.journal("dump-database@ghost.service");
    assert!(
        ghost.contains(&format!("DUMP_COMMAND is not set, so there is nothing to dump; set it in {INSTANCES}/ghost.conf")),
        "{ghost}"
    );
    for name in ["broken", "ghost"] {
        assert_eq!(
            c.state("is-failed", &format!("dump-database@{name}.service")),
            "failed"
        );
    }
    for name in ["sales", "hr"] {
        assert_ne!(
            c.state("is-failed", &format!("dump-database@{name}.service")),
            "failed"
        );
    }
    c.sh("systemctl disable --now dump-database@broken.timer dump-database@ghost.timer");
}

fn an_upgrade_keeps_the_instances_enabled_and_running(c: &Host) {
    c.step("an upgrade keeps the instances enabled and running");
    c.sh("apt-get install -y /root/timerapps-next.deb </dev/null");
    for name in ["sales", "hr"] {
        let timer = format!("dump-database@{name}.timer");
        assert_eq!(c.state("is-enabled", &timer), "enabled");
        assert_eq!(c.state("is-active", &timer), "active");
    }
    c.quiet(&["dump-database@sales.timer", "dump-database@hr.timer"]);
}

fn remove_stops_them_and_purge_keeps_every_dump_and_instance_file(c: &Host) {
    c.step("remove stops them; purge keeps every dump and the instance files");
    let kept = (dumps(c, "sales"), dumps(c, "hr"));
    c.sh("apt-get remove -y timerapps </dev/null");
    for name in ["sales", "hr"] {
        assert_ne!(
            c.state("is-active", &format!("dump-database@{name}.timer")),
            "active"
        );
    }
    let r = c.exec(&["apt-get", "purge", "-y", "timerapps"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains(&format!("dumps are kept in {DUMPS}")), "{r}");
    assert!(
        said.contains(&format!("instances are kept in {INSTANCES}")),
        "{r}"
    );
    assert_eq!(
        (dumps(c, "sales"), dumps(c, "hr")),
        kept,
        "purge kept every dump"
    );
    for file in ["sales.conf", "hr.conf"] {
        assert!(c.path(&format!("{INSTANCES}/{file}")).exists(), "{file}");
    }
    assert!(!c.path(&format!("{INSTANCES}/NAME.conf.example")).exists());
    let links = c.sh("find /etc/systemd/system -name 'dump-database@*.timer' -type l");
    assert!(links.is_empty(), "enablement left behind: {links}");
}
