//! Monitoring on real parts: each run's metrics as Debian's
//! prometheus-node-exporter serves them over HTTP, failure mail delivered by
//! a real exim4 into a mailbox, and the shipped alert rules checked and
//! tested by promtool.

use crate::command::{assert_escaped, HOSTILE, HOSTILE_SCRIPT};
use crate::container::{Container, Host, Release};
use crate::harness::{cmd, run, wait_for, Sandbox};
use jobkit::catalogue::{MAIL_SENDMAIL_DROP_IN, MAIL_SENDMAIL_EXAMPLE};
use jobkit::dumpfile::DEFAULT_DIR;
use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where node_exporter reads the jobs' metrics from.
const METRICS_DIR: &str = "/var/lib/prometheus/node-exporter";
/// The labels of the default job's series.
const JOB: [(&str, &str); 1] = [("job_name", "dump-database")];
const MAIL_UNIT: &str = "timerapps-mail@dump-database.service";

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/monitoring/timerapps.rules.yml"
);
const RULES_TEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/monitoring/timerapps.rules.test.yml"
);

#[test]
#[ignore = "needs promtool (Debian package prometheus): tests/run"]
fn promtool_checks_and_tests_the_alert_rules() {
    let r = run(cmd("promtool").args(["check", "rules", RULES]));
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains("SUCCESS: 14 rules found"), "{r}");
    let r = run(cmd("promtool").args(["test", "rules", RULES_TEST]));
    assert_eq!(r.code(), Some(0), "{r}");
}

/// The unit tests of the rules fail when an alert does not fire as they
/// expect: a rule loosened so that it never fires is caught.
#[test]
#[ignore = "needs promtool (Debian package prometheus): tests/run"]
fn promtool_catches_a_rule_that_never_fires() {
    let sb = Sandbox::new("rules-broken");
    let text = fs::read_to_string(RULES).unwrap();
    let broken = text.replace(
        "expr: timerapps_dumps_suspect > 0",
        "expr: timerapps_dumps_suspect > 1000",
    );
    assert_ne!(broken, text);
    fs::create_dir_all(sb.path("docs/monitoring")).unwrap();
    fs::create_dir_all(sb.path("tests/monitoring")).unwrap();
    fs::write(sb.path("docs/monitoring/timerapps.rules.yml"), broken).unwrap();
    fs::copy(RULES_TEST, sb.path("tests/monitoring/test.yml")).unwrap();
    let r = run(cmd("promtool")
        .args(["test", "rules", "test.yml"])
        .current_dir(sb.path("tests/monitoring")));
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stderr.contains("alertname: TimerappsSuspectDump"), "{r}");
}

/// node_exporter's `/metrics`, fetched over HTTP on the container's
/// loopback (bash's /dev/tcp: the image has no HTTP client).
pub fn scrape(c: &Container) -> String {
    let r = c.exec(&[
        "bash",
        "-ec",
        "exec 3<>/dev/tcp/127.0.0.1/9100
         printf 'GET /metrics HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3
         cat <&3",
    ]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.starts_with("HTTP/1.0 200 OK"), "{r}");
    r.stdout.clone()
}

/// The value of the series `name{labels}` whose labels include `has`.
pub fn value(metrics: &str, name: &str, has: &[(&str, &str)]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| has.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse().unwrap())
}

/// The value of the series `name` of `job` with one more label: a state
/// or a result.
fn labelled(metrics: &str, name: &str, job: &str, label: (&str, &str)) -> Option<f64> {
    value(metrics, name, &[("job_name", job), label])
}

/// The one result `timerapps_job_last_run_result` of `job` says (1), of
/// all it lists (0 for the others).
#[track_caller]
fn result(metrics: &str, job: &str) -> String {
    let prefix = format!("timerapps_job_last_run_result{{job_name=\"{job}\",result=\"");
    let series: Vec<(&str, &str)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.split_once("\"} "))
        .collect();
    let on: Vec<&str> = series
        .iter()
        .filter(|(_, v)| *v == "1")
        .map(|(r, _)| *r)
        .collect();
    assert!(
        on.len() == 1 && series.len() >= 10 && series.iter().all(|(_, v)| ["0", "1"].contains(v)),
        "{metrics}"
    );
    on[0].to_owned()
}

/// node_exporter read the textfile directory without error.
#[track_caller]
fn scraped_cleanly(metrics: &str) {
    assert_eq!(
        value(metrics, "node_textfile_scrape_error", &[]),
        Some(0.0),
        "{metrics}"
    );
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `service` to its end (a failure is expected of some) and returns
/// the metrics once node_exporter serves those of this run: its start time
/// changed from `before`.
fn after_run(c: &Container, service: &str, job: &str) -> String {
    let before = value(
        &scrape(c),
        "timerapps_job_last_run_timestamp_seconds",
        &[("job_name", job)],
    );
    c.exec(&["systemctl", "start", service]);
    let mut metrics = String::new();
    wait_for(
        &format!("the metrics of a new run of {job}"),
        Duration::from_secs(20),
        || {
            metrics = scrape(c);
            let at = value(
                &metrics,
                "timerapps_job_last_run_timestamp_seconds",
                &[("job_name", job)],
            );
            at.is_some() && at != before
        },
    );
    metrics
}

fn configure(c: &Container, file: &str, command: &str) {
    fs::write(
        c.path(file),
        format!("DUMP_COMMAND=\"{command}\"\nDUMP_SHRINK_LIMIT=0\n"),
    )
    .unwrap();
}

/// The metrics docs/metrics.md lists and those `metrics` serves for the job
/// `dump-database`, without their `timerapps_` prefix, of the names `of`
/// keeps.
pub fn listed_and_served(
    metrics: &str,
    of: impl Fn(&str) -> bool,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let page = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let listed = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `timerapps_"))
        .map(|l| l[..l.find(['{', '`']).unwrap()].to_owned())
        .filter(|n| of(n))
        .collect();
    let served = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("timerapps_"))
        .filter(|l| l.contains("job_name=\"dump-database\""))
        .map(|l| l[..l.find('{').unwrap()].to_owned())
        .filter(|n| of(n))
        .collect();
    (listed, served)
}

pub fn mails(c: &Container) -> String {
    fs::read_to_string(c.path("/var/mail/ops")).unwrap_or_default()
}

/// Waits until something in the container takes connections on
/// 127.0.0.1:`port` (bash's /dev/tcp).
pub fn listening(c: &Container, port: u16, what: &str) {
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    wait_for(
        &format!("{what} to listen on 127.0.0.1:{port}"),
        Duration::from_secs(30),
        || c.exec(&["bash", "-c", &probe]).code() == Some(0),
    );
}

/// The first failure mail in `mail` came by SMTP from the loopback, as
/// exim records it (`from [::1] (helo=vm) by vm with esmtp`), with the
/// envelope's sender `from` qualified with the container's /etc/mailname.
#[track_caller]
pub fn came_by_smtp(c: &Container, mail: &str, from: &str) {
    let domain = fs::read_to_string(c.path("/etc/mailname")).unwrap();
    let domain = domain.trim();
    let received = mail
        .split("\nReceived: from ")
        .nth(1)
        .unwrap_or_else(|| panic!("no Received: header\n{mail}"));
    let received = &received[..received.find(";").unwrap_or(received.len())];
    assert!(
        (received.starts_with("[::1]")
            || received.starts_with("[127.0.0.1]")
            || received.starts_with("localhost ("))
            && received.contains(&format!("by {domain} with esmtp ")),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("(envelope-from <{from}@{domain}>)")),
        "{mail}"
    );
}

#[test]
#[ignore = "boots a container: tests/run"]
fn metrics_and_mail_on_debian_12() {
    let c = Host::installed("monitoring", Release::Bookworm);
    c.sh("useradd --create-home ops");
    listening(&c, 9100, "node_exporter");
    listening(&c, 25, "exim4");
    fs::write(c.path("/etc/default/timerapps"), "MAIL_TO=ops\n").unwrap();

    a_good_run_is_served_by_node_exporter(&c);
    let sent = drills_pass_and_fail_served_with_the_jobs_name(&c);
    a_failed_run_keeps_the_last_success_and_is_mailed(&c, &sent);
    exims_daemon_stopped_needs_the_example_drop_in(&c);
    an_instance_has_a_file_of_its_own(&c);
    a_run_killed_with_sigkill(&c);
    a_run_stopped_by_the_watchdog(&c);
    a_disabled_job_takes_its_metrics_away(&c);
    a_loggers_run_has_metrics_too(&c);
    without_mail_to_nothing_is_sent(&c);
    without_the_textfile_directory_nothing_is_written(&c);
    removing_the_package_removes_every_jobs_metrics(&c);
}

fn a_good_run_is_served_by_node_exporter(c: &Host) {
    c.step("a good run of the default job: its metrics, served by node_exporter");
    configure(c, "/etc/default/dump-database", "seq 1 1000");
    let m = after_run(c, "dump-database.service", "dump-database");
    let v = |name: &str| value(&m, name, &JOB).unwrap_or_else(|| panic!("no {name}:\n{m}"));
    assert_eq!(v("timerapps_job_last_run_success"), 1.0, "{m}");
    assert_eq!(result(&m, "dump-database"), "success", "{m}");
    assert_eq!(v("timerapps_job_last_run_exit_status"), 0.0);
    assert!((now() - v("timerapps_job_last_success_timestamp_seconds")).abs() < 60.0);
    assert!((now() - v("timerapps_job_last_run_timestamp_seconds")).abs() < 60.0);
    assert!(v("timerapps_job_last_run_duration_seconds") < 30.0);
    assert_eq!(v("timerapps_job_interval_seconds"), 600.0);
    let next = v("timerapps_job_next_run_timestamp_seconds");
    assert!(next > now() && next < now() + 700.0, "next run {next}\n{m}");
    assert_eq!(v("timerapps_dumps_kept"), 1.0);
    assert_eq!(v("timerapps_dumps_suspect"), 0.0);
    assert_eq!(v("timerapps_dumps_future"), 0.0);
    let dump = c
        .sh(&format!("ls {DEFAULT_DIR} | grep -v manifest"))
        .trim()
        .to_owned();
    let size = fs::metadata(c.path(DEFAULT_DIR).join(&dump)).unwrap().len();
    assert_eq!(v("timerapps_dump_newest_good_size_bytes"), size as f64);
    assert!((now() - v("timerapps_dump_newest_good_timestamp_seconds")).abs() < 60.0);
    assert_eq!(
        labelled(
            &m,
            "timerapps_job_state",
            "dump-database",
            ("state", "healthy")
        ),
        Some(1.0),
        "{m}"
    );
    scraped_cleanly(&m);
    assert_eq!(mails(c), "", "a good run sends no mail");
    let file = c.path(&format!("{METRICS_DIR}/timerapps-dump-database.prom"));
    assert_eq!(
        fs::metadata(&file)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap(),
        0o644
    );
}

/// Returns the mails sent so far.
fn drills_pass_and_fail_served_with_the_jobs_name(c: &Host) -> String {
    c.step("restore drills: a pass and a failure, served with the job's name");
    c.sh(
        "sqlite3 /srv/shop.db 'CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3)'
          chmod 644 /srv/shop.db
          systemctl enable --now dump-database-drill.timer",
    );
    configure(
        c,
        "/etc/default/dump-database",
        "sqlite3 -readonly /srv/shop.db .dump",
    );
    c.sh("systemctl start dump-database.service");
    let drill = |expect: &str| {
        // A record's time is in whole seconds: a drill in the same second
        // as the last would look like it.
        std::thread::sleep(Duration::from_millis(1100));
        let before = value(
            &scrape(c),
            "timerapps_drill_last_run_timestamp_seconds",
            &JOB,
        );
        let r = c.exec(&["timerapps", "drill", "dump-database"]);
        assert_eq!(
            r.code(),
            Some(if expect == "passed" { 0 } else { 1 }),
            "{r}"
        );
        let mut m = String::new();
        wait_for("the drill's metrics", Duration::from_secs(20), || {
            m = scrape(c);
            let at = value(&m, "timerapps_drill_last_run_timestamp_seconds", &JOB);
            at.is_some() && at != before
        });
        m
    };
    let m = drill("passed");
    let d = |m: &str, name: &str| value(m, name, &JOB).unwrap_or_else(|| panic!("no {name}:\n{m}"));
    assert_eq!(d(&m, "timerapps_drill_last_passed"), 1.0, "{m}");
    assert_eq!(d(&m, "timerapps_drill_rows_restored"), 3.0, "{m}");
    assert_eq!(d(&m, "timerapps_drill_tables_restored"), 1.0, "{m}");
    assert_eq!(
        d(&m, "timerapps_drill_interval_seconds"),
        7.0 * 86400.0,
        "{m}"
    );
    assert!(d(&m, "timerapps_drill_duration_seconds") < 60.0);
    let passed = d(&m, "timerapps_drill_last_success_timestamp_seconds");
    assert!((now() - passed).abs() < 60.0, "{m}");
    assert!(c
        .path(&format!("{METRICS_DIR}/timerapps-dump-database-drill.prom"))
        .exists());
    scraped_cleanly(&m);
    // docs/metrics.md's list is the list served: the job's file and its drill's
    // (the copy's are held to it in copy.rs).
    let (listed, served) = listed_and_served(&m, |name| !name.starts_with("offsite_"));
    assert_eq!(listed, served, "docs/metrics.md's metrics and those served");
    // A damaged newest dump: the drill fails, the last pass stays.
    c.sh(&format!(
        "f=$(ls {DEFAULT_DIR}/dump-*.sql.gz | tail -n 1)
          printf 'garbage' | dd of=$f bs=1 seek=20 conv=notrunc status=none"
    ));
    let m = drill("failed");
    assert_eq!(d(&m, "timerapps_drill_last_passed"), 0.0, "{m}");
    assert_eq!(
        d(&m, "timerapps_drill_last_success_timestamp_seconds"),
        passed
    );
    let r = c.exec(&["timerapps", "status", "dump-database"]);
    assert!(r.stdout.contains("the last restore drill failed"), "{r}");
    wait_for("the drill's failure mail", Duration::from_secs(30), || {
        mails(c).contains("dump-database-drill.service failed")
    });
    c.sh(&format!(
        "rm -f {DEFAULT_DIR}/dump-* ; systemctl disable --now dump-database-drill.timer"
    ));
    mails(c)
}

fn a_failed_run_keeps_the_last_success_and_is_mailed(c: &Host, sent: &str) {
    c.step("a failed run: metrics say how, the last success stays, a mail arrives");
    let succeeded = value(
        &scrape(c),
        "timerapps_job_last_success_timestamp_seconds",
        &JOB,
    )
    .unwrap();
    fs::write(c.path(HOSTILE), HOSTILE_SCRIPT).unwrap();
    c.sh(&format!("chmod 755 {HOSTILE}"));
    configure(c, "/etc/default/dump-database", HOSTILE);
    let m = after_run(c, "dump-database.service", "dump-database");
    let v = |name: &str| value(&m, name, &JOB).unwrap_or_else(|| panic!("no {name}:\n{m}"));
    assert_eq!(v("timerapps_job_last_run_success"), 0.0, "{m}");
    assert_eq!(result(&m, "dump-database"), "exit-code", "{m}");
    let status: f64 = c
        .show("dump-database.service", "ExecMainStatus")
        .parse()
        .unwrap();
    assert_eq!(v("timerapps_job_last_run_exit_status"), status);
    assert_ne!(status, 0.0);
    assert_eq!(v("timerapps_job_last_success_timestamp_seconds"), succeeded);
    assert_eq!(
        labelled(
            &m,
            "timerapps_job_state",
            "dump-database",
            ("state", "failing")
        ),
        Some(1.0),
        "{m}"
    );
    wait_for("the failure mail", Duration::from_secs(30), || {
        mails(c).contains("db-unreachable")
    });
    let mail = mails(c);
    let host = c.sh("cat /proc/sys/kernel/hostname").trim().to_owned();
    assert!(
        mail.contains(&format!(
            "Subject: [{host}] dump-database.service failed: exit-code, exit status {status}"
        )),
        "{mail}"
    );
    assert!(
        mail.contains("\nAuto-Submitted: auto-generated\n"),
        "{mail}"
    );
    assert!(
        mail.contains("dump-database: DUMP_COMMAND"),
        "the job's error line:\n{mail}"
    );
    assert_eq!(
        mail.matches("\nSubject: ").count(),
        2,
        "the drill's and this one\n{mail}"
    );
    assert!(mail.starts_with(sent), "{mail}");
    the_mail_is_escaped_and_came_by_smtp_from_its_own_user(c, &mail, sent);
}

/// `mail`, every mail so far, ends with the failure's, after those `sent`.
fn the_mail_is_escaped_and_came_by_smtp_from_its_own_user(c: &Host, mail: &str, sent: &str) {
    // What the command wrote, escaped; the mail came to exim by SMTP, from
    // the unit's own user, not root (journald records the unit's
    // processes), in a sandbox that systemd-analyze rates 4.0 at most.
    assert_escaped(mail);
    came_by_smtp(c, &mail[sent.len()..], "timerapps-mail");
    let uid = c.sh("id -u timerapps-mail").trim().to_owned();
    assert_ne!(uid, "0");
    // The unit says so after the MTA has taken the mail, which may deliver
    // it first.
    let mut sent_by: Vec<(String, String)> = Vec::new();
    wait_for("the mail unit's last line", Duration::from_secs(30), || {
        let entries = c.sh(&format!("journalctl -u {MAIL_UNIT} -o json --no-pager"));
        sent_by = entries
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| {
                let m = e["MESSAGE"].as_str()?;
                m.starts_with("mailed the failure").then(|| {
                    (
                        m.to_owned(),
                        e["_UID"].as_str().unwrap_or_default().to_owned(),
                    )
                })
            })
            .collect();
        !sent_by.is_empty()
    });
    assert!(
        sent_by
            .iter()
            .all(|(m, u)| *u == uid && m.ends_with(" by SMTP to localhost:25")),
        "the mail unit's uid {uid}: {sent_by:?}"
    );
    crate::package::exposed(
        MAIL_UNIT,
        &c.exec(&["systemd-analyze", "security", "--no-pager", MAIL_UNIT]),
        4.0,
    );
}

fn exims_daemon_stopped_needs_the_example_drop_in(c: &Host) {
    c.step("exim's daemon stopped: its setuid sendmail needs the example drop-in");
    c.sh("systemctl stop exim4");
    let sent = mails(c);
    c.exec(&["systemctl", "start", "dump-database.service"]);
    wait_for("the mail unit to fail", Duration::from_secs(30), || {
        c.state("is-failed", MAIL_UNIT) == "failed"
    });
    let journal = c.journal(MAIL_UNIT);
    assert!(
        journal.contains(&format!(
            "nothing listens on localhost:25, and /usr/sbin/sendmail is setuid or setgid, \
             which needs privileges this unit does not give (NoNewPrivileges=): no mail sent; \
             start the MTA's SMTP service on localhost:25, or install {MAIL_SENDMAIL_EXAMPLE} \
             as {MAIL_SENDMAIL_DROP_IN} and run systemctl daemon-reload"
        )),
        "{journal}"
    );
    assert_eq!(mails(c), sent);
    c.sh(&format!(
        "install -D -m 644 {MAIL_SENDMAIL_EXAMPLE} {MAIL_SENDMAIL_DROP_IN}
         systemctl daemon-reload
         systemctl reset-failed {MAIL_UNIT}"
    ));
    c.exec(&["systemctl", "start", "dump-database.service"]);
    wait_for(
        "the mail through exim's sendmail",
        Duration::from_secs(30),
        || c.journal(MAIL_UNIT).contains("through /usr/sbin/sendmail"),
    );
    let mail = mails(c);
    let mail = &mail[sent.len()..];
    assert!(
        mail.contains("\nReceived: from timerapps-mail by ") && mail.contains(" with local "),
        "{mail}"
    );
    assert!(mail.contains("dump-database.service failed"), "{mail}");
    assert_escaped(mail);
    assert!(
        c.journal(MAIL_UNIT).contains(&format!(
            "to ops@{} through /usr/sbin/sendmail (nothing listens on localhost:25)",
            fs::read_to_string(c.path("/etc/mailname")).unwrap().trim()
        )),
        "{}",
        c.journal(MAIL_UNIT)
    );
    c.sh(&format!(
        "rm -r {}
         systemctl daemon-reload
         systemctl start exim4",
        std::path::Path::new(MAIL_SENDMAIL_DROP_IN)
            .parent()
            .unwrap()
            .display()
    ));
    listening(c, 25, "exim4");
}

fn an_instance_has_a_file_of_its_own(c: &Host) {
    c.step("an instance has a file of its own");
    fs::create_dir_all(c.path("/etc/timerapps/dump-database")).unwrap();
    configure(c, "/etc/timerapps/dump-database/crm.conf", "seq 1 500");
    c.sh("timerapps enable dump-database@crm");
    c.quiet(&["dump-database@crm.timer"]);
    let crm = [("job_name", "dump-database@crm")];
    let m = after_run(c, "dump-database@crm.service", "dump-database@crm");
    assert_eq!(
        value(&m, "timerapps_job_last_run_success", &crm),
        Some(1.0),
        "{m}"
    );
    assert_eq!(value(&m, "timerapps_dumps_kept", &crm), Some(1.0), "{m}");
    assert!(c
        .path(&format!("{METRICS_DIR}/timerapps-dump-database@crm.prom"))
        .exists());
    // The default job's series are still there, from its own file.
    assert_eq!(
        value(&m, "timerapps_job_last_run_success", &JOB),
        Some(0.0),
        "{m}"
    );
    configure(c, "/etc/timerapps/dump-database/crm.conf", "false");
    let m = after_run(c, "dump-database@crm.service", "dump-database@crm");
    assert_eq!(
        value(&m, "timerapps_job_last_run_success", &crm),
        Some(0.0),
        "{m}"
    );
    wait_for(
        "the instance's failure mail",
        Duration::from_secs(30),
        || mails(c).contains("dump-database@crm.service failed"),
    );
}

fn a_run_killed_with_sigkill(c: &Host) {
    c.step("a run killed with SIGKILL");
    configure(c, "/etc/default/dump-database", "sleep 120");
    let before = value(&scrape(c), "timerapps_job_last_run_timestamp_seconds", &JOB);
    c.sh("systemctl start --no-block dump-database.service");
    wait_for("the slow dump to run", Duration::from_secs(20), || {
        c.state("is-active", "dump-database.service") == "activating"
    });
    c.sh("systemctl kill --signal=KILL dump-database.service");
    let mut m = String::new();
    wait_for("the killed run's metrics", Duration::from_secs(20), || {
        m = scrape(c);
        value(&m, "timerapps_job_last_run_timestamp_seconds", &JOB) != before
    });
    assert_eq!(result(&m, "dump-database"), "signal", "{m}");
    assert_eq!(
        value(&m, "timerapps_job_last_run_exit_status", &JOB),
        Some(128.0 + 9.0)
    );
}

fn a_run_stopped_by_the_watchdog(c: &Host) {
    c.step("a run stopped by the watchdog");
    c.sh("mkdir -p /run/systemd/system/dump-database@crm.service.d
          printf '[Service]\\nWatchdogSec=2s\\n' > /run/systemd/system/dump-database@crm.service.d/fast.conf
          systemctl daemon-reload");
    configure(c, "/etc/timerapps/dump-database/crm.conf", "sleep 60");
    let m = after_run(c, "dump-database@crm.service", "dump-database@crm");
    assert_eq!(result(&m, "dump-database@crm"), "watchdog", "{m}");
    scraped_cleanly(&m);
}

fn a_disabled_job_takes_its_metrics_away(c: &Host) {
    c.step("a job disabled on purpose takes its metrics away, so no alert ages");
    let r = c.exec(&["timerapps", "disable", "dump-database@crm"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let crm_file = format!("{METRICS_DIR}/timerapps-dump-database@crm.prom");
    assert!(
        r.stdout
            .contains(&format!("removed its metrics {crm_file}")),
        "{r}"
    );
    assert!(!c.path(&crm_file).exists());
}

fn a_loggers_run_has_metrics_too(c: &Host) {
    c.step("a logger's run, in its tighter sandbox, has metrics too");
    let m = after_run(c, "myapp.service", "myapp");
    assert_eq!(
        value(
            &m,
            "timerapps_job_last_run_success",
            &[("job_name", "myapp")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            "timerapps_job_interval_seconds",
            &[("job_name", "myapp")]
        ),
        Some(300.0),
        "{m}"
    );
}

fn without_mail_to_nothing_is_sent(c: &Host) {
    c.step("without MAIL_TO a failure sends nothing and the mail unit succeeds");
    fs::write(c.path("/etc/default/timerapps"), "MAIL_TO=\n").unwrap();
    let sent = mails(c);
    configure(c, "/etc/default/dump-database", "false");
    c.exec(&["systemctl", "start", "dump-database.service"]);
    wait_for(
        "the mail unit to run and end",
        Duration::from_secs(30),
        || {
            c.journal("timerapps-mail@dump-database.service")
                .contains("no MAIL_TO")
                && c.state("is-failed", "timerapps-mail@dump-database.service") == "inactive"
        },
    );
    // It has ended, successfully, without handing anything to sendmail.
    assert_eq!(mails(c), sent);
}

fn without_the_textfile_directory_nothing_is_written(c: &Host) {
    c.step("without the textfile directory jobs run as before and write nothing");
    c.sh("systemctl stop prometheus-node-exporter; rm -rf /var/lib/prometheus/node-exporter");
    configure(c, "/etc/default/dump-database", "seq 1 1000");
    c.sh("systemctl start dump-database.service");
    assert_eq!(c.show("dump-database.service", "Result"), "success");
    assert!(!c.path(METRICS_DIR).exists());
}

fn removing_the_package_removes_every_jobs_metrics(c: &Host) {
    c.step("removing the package removes every job's metrics");
    c.sh(&format!(
        "mkdir -p {METRICS_DIR}; touch {METRICS_DIR}/node-own.prom"
    ));
    c.sh("systemctl start myapp.service dump-database.service");
    assert!(c
        .path(&format!("{METRICS_DIR}/timerapps-myapp.prom"))
        .exists());
    c.sh("apt-get remove -y timerapps </dev/null");
    assert_eq!(c.sh(&format!("ls -A {METRICS_DIR}")), "node-own.prom\n");
}
