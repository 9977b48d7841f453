//! Per-user timers: the package's user units in an ordinary user's own
//! manager, kept running without a login by lingering, in its
//! timerapps.slice with their limits, on a real systemd in a container
//! with the package installed.

use crate::budget;
use crate::command::job as row;
use crate::container::{Container, Host, Release};
use crate::harness::{dump_files, names};
use crate::harness::{wait_for, Run};
use crate::package::units;
use jobkit::catalogue::Manager;
use std::fs;
use std::time::Duration;

const USER: &str = "alice";
const HOME: &str = "/home/alice";

#[test]
#[ignore = "boots a container: tests/run"]
fn users_timers_on_debian_12() {
    users_timers_on(Release::Bookworm);
}

#[test]
#[ignore = "boots a container: tests/run"]
fn users_timers_on_debian_13() {
    users_timers_on(Release::Trixie);
}

/// A user's login environment, without a session: what `systemctl --user`
/// and `timerapps --user` need to find the user's manager.
struct User<'a> {
    c: &'a Container,
    uid: String,
}

impl User<'_> {
    /// The user's manager, as a unit of the system's.
    fn manager(&self) -> String {
        format!("user@{}.service", self.uid)
    }

    fn exec(&self, script: &str) -> Run {
        self.c.exec(&[
            "runuser",
            "-u",
            USER,
            "--",
            "env",
            &format!("HOME={HOME}"),
            &format!("XDG_RUNTIME_DIR=/run/user/{}", self.uid),
            "sh",
            "-ec",
            script,
        ])
    }

    /// Runs `script` as the user; it must succeed. Returns its stdout.
    #[track_caller]
    fn sh(&self, script: &str) -> String {
        let r = self.exec(script);
        assert_eq!(r.code(), Some(0), "{r}");
        r.stdout
    }

    /// The rows of `timerapps --user status --json`.
    fn status(&self) -> serde_json::Value {
        let r = self.exec("timerapps --user status --json");
        let value: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{r}"));
        crate::command::valid_status(&r.stdout);
        value["jobs"].clone()
    }

    /// The value of `key` in the environment of a unit in the user's manager.
    fn env_of(&self, unit: &str, key: &str) -> String {
        let env = self.sh(&format!(
            "systemctl --user show --value -p Environment {unit}"
        ));
        env.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{unit} sets no {key}: {env}"))
            .to_owned()
    }
}

/// The classes of the open sessions but the user managers' own (systemd
/// 256 and later list a "manager" session for each).
fn login_sessions(c: &Container) -> String {
    c.sh(
        "for s in $(loginctl list-sessions --no-legend | awk '{print $1}'); do
              loginctl show-session \"$s\" -p Class --value
          done | grep -v '^manager' || true",
    )
}

fn lines(c: &Container, file: &str) -> usize {
    c.sh(&format!("cat '{file}' 2>/dev/null || true"))
        .lines()
        .count()
}

fn users_timers_on(release: Release) {
    let c = Host::boot("user", release);
    c.install();
    let system_before = system_state(&c);
    assert_eq!(system_before, vec!["enabled active"; system_before.len()]);
    let alice = an_ordinary_user_with_a_database_of_their_own(&c);
    lingering_starts_the_users_manager_without_a_login(&c, &alice);
    the_user_units_verify_clean_where_they_run(&c, &alice);
    let log = myapp_in_the_users_manager_writes_the_users_own_log(&c, &alice);
    let newest = a_users_instance_dumps_their_sqlite_database(&c, &alice);
    the_users_own_drill_restores_in_the_users_manager(&c, &alice);
    user_status_shows_both_jobs_with_their_runs(&c, &alice);
    a_users_failed_run_is_mailed_to_the_address_they_set(&c, &alice);
    user_enable_and_disable_touch_the_users_manager_alone(&c, &alice);
    every_user_service_runs_in_the_users_slice(&c, &alice);
    let dropin = user_schedule_puts_the_users_timer_on_a_calendar(&c, &alice, &log);
    an_upgrade_has_user_managers_read_changed_units(&c, &alice);
    remove_and_purge_stop_the_users_timers_and_keep_their_files(&c, &alice, &log, &newest, &dropin);
    a_reinstall_starts_the_timer_the_user_enabled(&c, &alice, &log);
    without_lingering_the_users_timers_stop(&c, &alice, &log, &system_before);
}

/// `is-enabled` and `is-active` of each timer the package enables in the
/// system's manager.
fn system_state(c: &Container) -> Vec<String> {
    crate::package::packaged(jobkit::catalogue::Kind::Timer)
        .iter()
        .map(|t| format!("{} {}", c.state("is-enabled", t), c.state("is-active", t)))
        .collect()
}

fn an_ordinary_user_with_a_database_of_their_own(c: &Host) -> User<'_> {
    c.step("an ordinary user with a database of their own and no session");
    c.sh(&format!(
        "adduser --disabled-password --gecos '' {USER} >/dev/null"
    ));
    let uid = c.sh(&format!("id -u {USER}")).trim().to_owned();
    let alice = User { c, uid };
    alice.sh("mkdir -p ~/.config/timerapps/dump-database
         sqlite3 ~/sales.db \"create table t(id integer primary key, word text);
                              insert into t(word) values ('one'), ('two'), ('été');\"
         printf '%s\\n' 'DUMP_COMMAND=\"sqlite3 -readonly '\"$HOME\"'/sales.db .dump\"' \
                        'DUMP_KEEP=2' > ~/.config/timerapps/dump-database/sales.conf");
    alice
}

fn lingering_starts_the_users_manager_without_a_login(c: &Host, alice: &User) {
    c.step("lingering starts the user's manager without a login");
    c.sh(&format!("loginctl enable-linger {USER}"));
    let manager = alice.manager();
    wait_for(
        "the user's manager and bus",
        Duration::from_secs(30),
        || {
            c.state("is-active", &manager) == "active"
                && c.exec(&["test", "-S", &format!("/run/user/{}/bus", alice.uid)])
                    .code()
                    == Some(0)
        },
    );
    assert_eq!(login_sessions(c), "");
}

fn the_user_units_verify_clean_where_they_run(c: &Host, alice: &User) {
    c.step("the user units verify clean where they run");
    let units: Vec<String> = units(Manager::User)
        .iter()
        .map(|u| format!("{}/{u}", Manager::User.unit_dir()))
        .collect();
    let r = alice.exec(&format!(
        "systemd-analyze --user verify --man=no {}",
        units.join(" ")
    ));
    assert!(
        r.code() == Some(0) && r.stdout.is_empty() && r.stderr.is_empty(),
        "{r}"
    );
    // Not blind: a unit of the same kind whose program is missing fails.
    let r = alice.exec(
        "sed 's|^ExecStart=.*|ExecStart=/usr/bin/missing|' /usr/lib/systemd/user/myapp.service \
             > /tmp/broken.service
         systemd-analyze --user verify --man=no /tmp/broken.service",
    );
    assert!(
        r.code() != Some(0) && r.stderr.contains("/usr/bin/missing"),
        "{r}"
    );
}

fn myapp_in_the_users_manager_writes_the_users_own_log(c: &Host, alice: &User) -> String {
    c.step("myapp.timer in the user's manager writes the user's own log");
    alice.sh("systemctl --user enable --now myapp.timer");
    let log = alice.env_of("myapp.service", "LOGFILE");
    assert!(log.starts_with(&format!("{HOME}/")), "{log}");
    // First run 5 s after the start, plus up to 10 s of random delay.
    wait_for("the first line", Duration::from_secs(40), || {
        lines(c, &log) >= 1
    });
    let text = c.sh(&format!("cat '{log}'"));
    assert!(text.starts_with("[myapp] executed at "), "{text}");
    assert_eq!(c.sh(&format!("stat -c %U '{log}'")).trim(), USER);
    assert_eq!(login_sessions(c), "");
    log
}

fn a_users_instance_dumps_their_sqlite_database(c: &Host, alice: &User) -> String {
    c.step("a dump-database@ instance of the user dumps their SQLite database");
    let r = alice.exec("timerapps --user enable dump-database@sales");
    assert_eq!(r.code(), Some(0), "{r}");
    for _ in 0..3 {
        let r = alice.exec("timerapps --user run dump-database@sales");
        assert_eq!(r.code(), Some(0), "{r}");
        assert!(
            r.stdout.contains("published"),
            "{r}\nthe user's journal:\n{}\nthe system's:\n{}",
            alice.exec("journalctl --user --no-pager -n 12 -o verbose"),
            c.exec(&[
                "journalctl",
                "--no-pager",
                "-n",
                "12",
                "-o",
                "verbose",
                "_UID=1000"
            ])
        );
        // One stamp a second.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let dir = alice.env_of("dump-database@sales.service", "DUMP_DIR");
    assert!(dir.starts_with(&format!("{HOME}/")), "{dir}");
    let dumps = dump_files(&names("sales"), &c.path(&dir));
    assert_eq!(dumps.len(), 2, "DUMP_KEEP=2: {dumps:?}");
    let newest = format!("{dir}/{}", dumps.last().unwrap());
    assert_eq!(c.sh(&format!("stat -c %U '{newest}'")).trim(), USER);
    alice.sh(&format!(
        "gzip -t '{newest}'
         gzip -dc '{newest}' | sqlite3 /tmp/restored.db
         sqlite3 ~/sales.db .dump > /tmp/a; sqlite3 /tmp/restored.db .dump > /tmp/b
         cmp /tmp/a /tmp/b"
    ));
    let r = alice.exec("timerapps --user verify dump-database@sales");
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("ok ")).count(), 2);
    newest
}

fn the_users_own_drill_restores_in_the_users_manager(c: &Host, alice: &User) {
    c.step("the user's own restore drill restores that dump in the user's manager");
    let r = alice.exec("timerapps --user drill dump-database@sales");
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(
        r.stdout.contains(" into SQLite 3.") && r.stdout.contains("every table's rows equal"),
        "{r}"
    );
}

fn user_status_shows_both_jobs_with_their_runs(c: &Host, alice: &User) {
    c.step("timerapps --user status shows both jobs with their last and next runs");
    let rows = alice.status();
    assert_eq!(
        row(&rows, "dump-database@sales")["drill"]["last"]["result"],
        "passed"
    );
    for job in ["myapp", "dump-database@sales"] {
        let r = row(&rows, job);
        assert_eq!(r["enabled"], "enabled", "{r:#}");
        assert_eq!(r["last_run"]["result"], "success", "{r:#}");
        assert!(r["next_run"]["usec"].as_u64().unwrap() > 0, "{r:#}");
        assert_eq!(r["healthy"], true, "{r:#}");
    }
    assert_eq!(row(&rows, "dump-database@sales")["dumps"]["count"], 2);
    assert_eq!(row(&rows, "otherapp")["enabled"], "disabled");
    let table = alice.sh("timerapps --user");
    assert!(table.contains("\ndump-database@sales "), "{table}");
}

fn a_users_failed_run_is_mailed_to_the_address_they_set(c: &Host, alice: &User) {
    c.step("a failed run of the user's own job is mailed to the address the user set");
    crate::monitoring::listening(c, 25, "exim4");
    alice.sh("mkdir -p ~/.config/timerapps/dump-database
         echo MAIL_TO=alice > ~/.config/timerapps/timerapps.conf
         echo DUMP_COMMAND=false > ~/.config/timerapps/dump-database/broken.conf");
    let r = alice.exec("timerapps --user run dump-database@broken");
    assert_eq!(r.code(), Some(1), "{r}");
    let mailbox = c.path(&format!("/var/mail/{USER}"));
    wait_for("the user's failure mail", Duration::from_secs(30), || {
        fs::read_to_string(&mailbox)
            .is_ok_and(|m| m.contains("dump-database@broken.service failed"))
    });
    let mail = fs::read_to_string(&mailbox).unwrap();
    assert!(
        mail.contains("\nAuto-Submitted: auto-generated\n"),
        "{mail}"
    );
    assert!(mail.contains("timerapps --user status"), "{mail}");
    // By SMTP too, from the user.
    crate::monitoring::came_by_smtp(c, &mail, USER);
    alice.sh(
        "rm ~/.config/timerapps/timerapps.conf ~/.config/timerapps/dump-database/broken.conf
         systemctl --user reset-failed",
    );
}

fn user_enable_and_disable_touch_the_users_manager_alone(c: &Host, alice: &User) {
    c.step("timerapps --user enable and disable, in the user's manager alone");
    alice.sh("timerapps --user enable otherapp");
    assert_eq!(
        alice
            .sh("systemctl --user is-enabled otherapp.timer")
            .trim(),
        "enabled"
    );
    alice.sh("timerapps --user disable otherapp");
    let r = alice.exec("systemctl --user is-active otherapp.timer");
    assert_eq!(r.stdout.trim(), "inactive", "{r}");
    assert_eq!(c.state("is-enabled", "otherapp.timer"), "enabled");
}

fn every_user_service_runs_in_the_users_slice(c: &Host, alice: &User) {
    c.step("every user service of the package runs in the user's timerapps.slice, with its limits");
    let exec = |script: &str| alice.exec(script);
    let drop_ins = format!("{HOME}/.config/systemd/user");
    let cgroup = format!("/user.slice/user-{0}.slice/user@{0}.service", alice.uid);
    let users = budget::Manager {
        systemctl: "systemctl --user",
        exec: &exec,
        drop_ins: &drop_ins,
        cgroup: &cgroup,
    };
    let services = budget::services(&users, Manager::User.unit_dir());
    budget::every_service_runs_in_the_slice(&users, &services, "slice");
}

fn user_schedule_puts_the_users_timer_on_a_calendar(c: &Host, alice: &User, log: &str) -> String {
    c.step("timerapps --user schedule: the user's timer on a calendar");
    let r = alice.exec("timerapps --user schedule myapp '*:*:0/5'");
    assert_eq!(r.code(), Some(0), "{r}");
    let dropin = format!(
        "{HOME}/.config/systemd/user/myapp.timer.d/{}",
        jobkit::catalogue::SCHEDULE_DROP_IN
    );
    assert!(c.path(&dropin).exists(), "{r}");
    let before = lines(c, log);
    wait_for("runs every 5 s", Duration::from_secs(30), || {
        lines(c, log) >= before + 2
    });
    dropin
}

fn an_upgrade_has_user_managers_read_changed_units(c: &Host, alice: &User) {
    c.step("an upgrade has running user managers read the changed user units");
    c.sh("echo '# changed' >> /usr/lib/systemd/user/myapp.service");
    let reload = || alice.sh("systemctl --user show --value -p NeedDaemonReload myapp.service");
    assert_eq!(reload().trim(), "yes");
    c.sh("apt-get install -y --reinstall /root/timerapps.deb </dev/null");
    assert_eq!(reload().trim(), "no");
    assert_eq!(
        alice.sh("systemctl --user is-active myapp.timer").trim(),
        "active"
    );
}

/// The user's own files stay: the log, the newest dump and the schedule's
/// drop-in among them.
fn remove_and_purge_stop_the_users_timers_and_keep_their_files(
    c: &Host,
    alice: &User,
    log: &str,
    newest: &str,
    dropin: &str,
) {
    c.step("remove and purge stop the user's timers and leave the user's files");
    let kept = [
        log.to_owned(),
        newest.to_owned(),
        dropin.to_owned(),
        format!("{HOME}/.config/timerapps/dump-database/sales.conf"),
        format!("{HOME}/.config/systemd/user/timers.target.wants/myapp.timer"),
        format!("{HOME}/.config/systemd/user/timers.target.wants/dump-database@sales.timer"),
    ];
    c.sh("apt-get purge -y timerapps </dev/null");
    for timer in ["myapp.timer", "dump-database@sales.timer"] {
        let r = alice.exec(&format!("systemctl --user is-active {timer}"));
        assert_ne!(r.stdout.trim(), "active", "{timer} still runs\n{r}");
    }
    for file in &kept {
        assert!(
            c.path(file).symlink_metadata().is_ok(),
            "purge removed {file}"
        );
    }
}

fn a_reinstall_starts_the_timer_the_user_enabled(c: &Host, alice: &User, log: &str) {
    c.step("a reinstall starts the myapp timer the user had enabled");
    c.sh("apt-get install -y /root/timerapps.deb </dev/null");
    assert_eq!(
        alice.sh("systemctl --user is-active myapp.timer").trim(),
        "active"
    );
    let before = lines(c, log);
    wait_for("runs every 5 s again", Duration::from_secs(30), || {
        lines(c, log) > before
    });
}

fn without_lingering_the_users_timers_stop(
    c: &Host,
    alice: &User,
    log: &str,
    system_before: &[String],
) {
    c.step("without lingering the user's timers stop; the system's run on");
    c.sh(&format!("loginctl disable-linger {USER}"));
    let manager = alice.manager();
    // Gone from the user's view at once; on systemd 257 in a container the
    // manager's unit may stay "deactivating" after its processes ended.
    wait_for(
        "the user's manager to stop",
        Duration::from_secs(30),
        || c.state("is-active", &manager) != "active",
    );
    let stopped = lines(c, log);
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(lines(c, log), stopped, "myapp ran without the manager");
    assert_eq!(system_state(c), system_before);
    assert_eq!(
        c.sh("stat -c %U /var/log/timerapps/myapp.log").trim(),
        "timerapps"
    );
}
