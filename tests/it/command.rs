//! The `timerapps` command: against a real systemd in a container with the
//! package installed (status, schedule, run, verify, enable, disable across
//! an upgrade, purge), and on this machine where no systemd runs.

use crate::container::{Container, Host, Release};
use crate::harness::{bin, cmd, cpu_hog, dump_files, is_root, names, run, wait_for, Run};
use jobkit::catalogue::{self, Manager, Shape, Variant};
use jobkit::dumpfile::{Form, Stamp};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// The default job's dumps.
const DUMPS: &str = jobkit::dumpfile::DEFAULT_DIR;
const INSTANCES: &str = jobkit::catalogue::DUMPS_DIR;

fn drop_in(timer: &str) -> String {
    format!(
        "/etc/systemd/system/{timer}.d/{}",
        catalogue::SCHEDULE_DROP_IN
    )
}

/// `timerapps status --json ARGS`: its exit status and its rows, checked
/// against the documented schema, each with a state.
fn json(c: &Container, args: &str) -> (Option<i32>, serde_json::Value) {
    let r = c.exec(&["sh", "-c", &format!("timerapps status --json {args}")]);
    let value: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{r}"));
    valid_status(&r.stdout);
    let rows = value["jobs"].clone();
    for row in rows.as_array().unwrap_or_else(|| panic!("no jobs\n{r}")) {
        let healthy = row["state"] == "healthy";
        assert!(
            healthy == (row["healthy"] == true) && (healthy || row["problems"][0].is_string()),
            "{row:#}"
        );
    }
    (r.code(), rows)
}

/// Validates `status --json` output against `docs/status.schema.json` with
/// python3-jsonschema.
pub fn valid_status(json: &str) {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/status.schema.json");
    let mut child = cmd("python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator(schema).validate(json.load(sys.stdin))",
            schema,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "status --json does not follow {schema}:\n{}\n{json}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `timerapps ARGS` run by an ordinary user, `nobody`.
fn as_nobody(c: &Container, args: &[&str]) -> Run {
    let command = ["runuser", "-u", "nobody", "--", "timerapps"];
    c.exec(&[&command[..], args].concat())
}

/// The row of job `name` in `timerapps status --json`.
pub fn job<'a>(rows: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["job"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {rows:#}"))
}

fn log_lines(c: &Container) -> Vec<String> {
    fs::read_to_string(c.path("/var/log/timerapps/myapp.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn configure(c: &Container, file: &str, command: &str) {
    fs::write(
        c.path(file),
        format!("DUMP_COMMAND=\"{command}\"\nDUMP_KEEP=3\n"),
    )
    .unwrap();
}

/// A dump command that writes terminal escapes (clear the screen, set the
/// window's title, colours, a carriage return) and fails.
pub const HOSTILE: &str = "/usr/local/bin/hostile-db";
pub const HOSTILE_SCRIPT: &str = "#!/bin/sh\n\
    printf 'db-unreachable \\033[2J\\033]0;owned\\007 \\033[31mred\\033[0m\\r\\n' >&2\n\
    exit 3\n";

/// `text` shows what [`HOSTILE`] wrote, its escapes as text and none raw.
#[track_caller]
pub fn assert_escaped(text: &str) {
    assert!(
        text.contains("db-unreachable \\x1b[2J\\x1b]0;owned\\x07 \\x1b[31mred\\x1b[0m"),
        "{text}"
    );
    assert!(!text.contains(['\x1b', '\x07', '\r']), "{text:?}");
}

#[test]
#[ignore = "boots a container: tests/run"]
fn the_command_on_debian_12() {
    the_command_on(Release::Bookworm);
}

#[test]
#[ignore = "boots a container: tests/run"]
fn the_command_on_debian_13() {
    the_command_on(Release::Trixie);
}

fn the_command_on(release: Release) {
    let (c, _) = Host::boot_with_next("command", release);
    c.install();
    c.quiet(&["otherapp.timer", "dump-database.timer"]);

    status_shows_every_job_as_root_and_as_another_user(&c);
    bash_completes_the_commands(&c);
    changing_anything_needs_root(&c);
    a_calendar_schedule_runs_on_its_marks(&c);
    an_invalid_expression_changes_nothing(&c);
    default_brings_back_the_packaged_schedule(&c);
    an_admins_override_wins_and_schedule_says_so(&c);
    run_shows_control_characters_as_escapes(&c);
    run_under_load_fails_with_its_message_or_publishes(&c);
    let damaged = verify_finds_a_truncated_and_a_flipped_dump(&c);
    zstd_and_uncompressed_dumps_count_with_the_gzip_ones(&c, &damaged);
    restore_verifies_a_dump_whole_before_a_byte_goes_out(&c);
    restore_checks_room_before_writing(&c);
    an_instance_without_settings_is_not_enabled_and_a_hung_one_shows_watchdog(&c);
    a_dump_older_than_two_periods_stands_out(&c);
    disable_survives_an_upgrade_and_purge_removes_only_its_drop_ins(&c);
    c.step("done");
}

fn status_shows_every_job_as_root_and_as_another_user(c: &Host) {
    c.step("status shows every job, as root and as another user");
    let (code, rows) = json(c, "");
    // The default dump job runs, enabled, and dumps nothing: it says so.
    assert_eq!(code, Some(1), "{rows:#}");
    let dump = job(&rows, "dump-database");
    assert_eq!(dump["state"], "not-configured", "{dump:#}");
    assert_eq!(
        dump["problems"][0],
        "not configured: set DUMP_COMMAND in /etc/default/dump-database, then run \
         timerapps run dump-database",
        "{dump:#}"
    );
    assert_eq!(dump["dumps"]["count"], 0, "{dump:#}");
    assert_eq!(job(&rows, "myapp")["state"], "healthy", "{rows:#}");
    let shown: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["job"].clone())
        .collect();
    let plain: Vec<_> = Variant::jobs(Manager::System, Shape::Plain)
        .map(|j| j.name)
        .collect();
    assert_eq!(shown, plain, "{rows:#}");
    assert_eq!(job(&rows, "myapp")["enabled"], "enabled");
    assert_eq!(
        job(&rows, "myapp")["schedule"],
        "every 5 min, first 5 s after start"
    );
    // A report that cannot be written is no report.
    let r = c.exec(&["sh", "-c", "timerapps status --json > /dev/full"]);
    assert_eq!(r.code(), Some(3), "{r}");
    assert!(r.stderr.contains("cannot write the status"), "{r}");
    let table = as_nobody(c, &[]);
    assert_eq!(table.code(), Some(1), "{table}");
    assert!(table.stdout.starts_with("JOB "), "{table}");
    assert!(table.stdout.contains("\nmyapp "), "{table}");
    assert!(table.stdout.contains("not configured"), "{table}");
    assert!(!table.stdout.contains("os error"), "{table}");
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.contains("no dumps yet"), "{r}");
    assert!(!r.stderr.contains("os error"), "{r}");
    assert!(!table.stdout.contains('\x1b'), "color when piped: {table}");
}

fn bash_completes_the_commands(c: &Host) {
    c.step("bash completes the commands");
    let completed = c.sh("bash -c '. /usr/share/bash-completion/completions/timerapps
                  COMP_WORDS=(timerapps sch); COMP_CWORD=1; COMP_LINE=\"timerapps sch\"
                  _timerapps timerapps sch timerapps; echo \"${COMPREPLY[*]}\"'");
    assert_eq!(completed.trim(), "schedule");
}

fn changing_anything_needs_root(c: &Host) {
    c.step("changing anything needs root");
    let r = as_nobody(c, &["schedule", "myapp", "daily"]);
    assert_eq!(r.code(), Some(77), "{r}");
    assert!(r.stderr.contains("needs root"), "{r}");
    assert!(!c.path(&drop_in("myapp.timer")).exists());
    let before = c.sh("find /etc/systemd /run/systemd/system | sort");
    for name in ["dump-database@..", "dump-database@a:b"] {
        let r = c.exec(&["timerapps", "schedule", name, "daily"]);
        assert_eq!(r.code(), Some(2), "{r}");
    }
    let after = c.sh("find /etc/systemd /run/systemd/system | sort");
    assert_eq!(
        before, after,
        "a refused instance name changed systemd's files"
    );
    let r = c.exec(&["timerapps", "enable", "nope"]);
    assert_eq!(r.code(), Some(2), "{r}");
    assert!(r.stderr.contains("dump-database@NAME"), "{r}");
}

fn a_calendar_schedule_runs_on_its_marks(c: &Host) {
    c.step("a calendar schedule: runs on its marks, next run as systemd computes it");
    let r = c.exec(&["timerapps", "schedule", "myapp.timer", "*:*:0/10"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stdout.contains("OnCalendar=*-*-* *:*:00/10"), "{r}");
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("  ")).count(),
        3,
        "{r}"
    );
    let before = log_lines(c).len();
    // "[myapp] executed at YYYY-MM-DD HH:MM:SS.ffffff": on a 10 s mark,
    // within AccuracySec=1s.
    let on_mark = |line: &String| {
        let second: u32 = line[line.len() - 9..line.len() - 7].parse().unwrap();
        second % 10 <= 1
    };
    wait_for(
        "two runs on the new schedule",
        Duration::from_secs(40),
        || log_lines(c)[before..].iter().filter(|l| on_mark(l)).count() >= 2,
    );
    // Persistent=true may catch up at once on the mark that passed since the
    // timer last ran: that run alone may come first, off a mark.
    let new = log_lines(c)[before..].to_vec();
    for (i, line) in new.iter().enumerate() {
        assert!(on_mark(line) || i == 0, "not on a mark: {line}\n{new:#?}");
    }
    wait_for(
        "status to agree with systemd-analyze",
        Duration::from_secs(10),
        || {
            let analyzed = c.sh(
                "date -d \"$(systemd-analyze calendar '*:*:0/10' | sed -n 's/^ *Next elapse: //p')\" +%s",
            );
            let (_, rows) = json(c, "myapp");
            // Just as the timer elapses, systemd has no next run yet.
            let next = job(&rows, "myapp")["next_run"]["usec"].as_u64();
            next.is_some_and(|n| analyzed.trim().parse::<u64>().unwrap() == n / 1_000_000)
        },
    );
    let (_, rows) = json(c, "myapp");
    assert_eq!(job(&rows, "myapp")["calendar"][0], "*-*-* *:*:00/10");
}

fn an_invalid_expression_changes_nothing(c: &Host) {
    c.step("an invalid expression changes nothing");
    let written = fs::read(c.path(&drop_in("myapp.timer"))).unwrap();
    let r = c.exec(&["timerapps", "schedule", "myapp", "*:*:0/10 bogus"]);
    assert_eq!(r.code(), Some(2), "{r}");
    assert!(
        r.stderr.contains("Failed to parse calendar specification"),
        "{r}"
    );
    let r = c.exec(&[
        "timerapps",
        "schedule",
        "myapp",
        "daily\nExecStart=/bin/false",
    ]);
    assert_eq!(r.code(), Some(2), "{r}");
    assert_eq!(fs::read(c.path(&drop_in("myapp.timer"))).unwrap(), written);
}

fn default_brings_back_the_packaged_schedule(c: &Host) {
    c.step("--default brings back the packaged schedule");
    let r = c.exec(&["timerapps", "schedule", "myapp", "--default"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(!c.path(&drop_in("myapp.timer")).exists());
    assert_eq!(c.show("myapp.timer", "TimersCalendar"), "");
    assert!(c
        .show("myapp.timer", "TimersMonotonic")
        .contains("OnUnitActiveUSec=5min"));
}

fn an_admins_override_wins_and_schedule_says_so(c: &Host) {
    c.step("an admin's override.conf wins: schedule says so, with systemd's real next runs");
    c.sh("mkdir -p /etc/systemd/system/myapp.timer.d
          printf '[Timer]\nOnCalendar=\nOnCalendar=*-*-* 03:00\n' \
            > /etc/systemd/system/myapp.timer.d/override.conf");
    let r = c.exec(&["timerapps", "schedule", "myapp", "hourly"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(
        r.stderr.contains(
            "warning: /etc/systemd/system/myapp.timer.d/override.conf overrides \
             OnCalendar=*-*-* *:00:00: systemd runs myapp.timer daily at 03:00"
        ),
        "{r}"
    );
    assert!(r.stdout.starts_with("myapp.timer: daily at 03:00\n"), "{r}");
    let next = c.sh("systemd-analyze calendar --iterations=3 '*-*-* 03:00' | sed -n 's/^ *\\(Next elapse\\|Iter[a-z.]* #[0-9]*\\): //p'");
    let printed: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .collect();
    assert_eq!(printed, next.lines().collect::<Vec<_>>(), "{r}");
    assert_eq!(
        c.show("myapp.timer", "TimersCalendar")
            .matches("OnCalendar=")
            .count(),
        1
    );
    // Without it, what was asked is in effect again.
    c.sh("rm -r /etc/systemd/system/myapp.timer.d/override.conf");
    let r = c.exec(&["timerapps", "schedule", "myapp", "--default"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert!(r.stderr.is_empty(), "{r}");
    c.quiet(&["myapp.timer"]);
}

fn run_shows_control_characters_as_escapes(c: &Host) {
    c.step("run shows the control characters a dump command wrote as escapes");
    fs::write(c.path(HOSTILE), HOSTILE_SCRIPT).unwrap();
    c.sh(&format!("chmod 755 {HOSTILE}"));
    configure(c, "/etc/default/dump-database", HOSTILE);
    let r = c.exec(&["timerapps", "run", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert_escaped(&r.stdout);
    assert!(r.stdout.contains("dump-database: DUMP_COMMAND"), "{r}");
}

fn run_under_load_fails_with_its_message_or_publishes(c: &Host) {
    c.step("run, on a machine under load: a failing dump fails with its own message, a good one publishes");
    // Every line of every run, however late journald stores them.
    let hog = cpu_hog();
    configure(
        c,
        "/etc/default/dump-database",
        "sh -c 'echo cannot-reach-db >&2; exit 3'",
    );
    let r = c.exec(&["timerapps", "run", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.contains("cannot-reach-db"), "{r}");
    assert!(
        r.stdout.contains("dump-database: DUMP_COMMAND"),
        "the job's own error line: {r}"
    );
    let (code, rows) = json(c, "dump-database");
    assert_eq!(code, Some(1), "{rows:#}");
    assert_eq!(
        job(&rows, "dump-database")["last_run"]["result"],
        "exit-code"
    );
    configure(c, "/etc/default/dump-database", "seq 1 200000");
    for _ in 0..5 {
        let r = c.exec(&["timerapps", "run", "dump-database.service"]);
        assert_eq!(r.code(), Some(0), "{r}");
        assert!(r.stdout.contains("dump-database: published "), "{r}");
        assert!(!r.stdout.contains("did not have all"), "{r}");
        std::thread::sleep(Duration::from_millis(1100));
    }
    drop(hog);
    let (code, rows) = json(c, "dump-database");
    assert_eq!(code, Some(0), "{rows:#}");
    // Another user cannot read the dumps (0700): unknown, never healthy,
    // while the job they can read shows as it is.
    let r = as_nobody(c, &["status", "dump-database", "myapp"]);
    assert_eq!(r.code(), Some(3), "{r}");
    assert!(r.stdout.contains("\n? dump-database "), "{r}");
    assert!(r.stdout.contains("\nmyapp "), "{r}");
    assert!(r.stdout.contains("Permission denied"), "{r}");
    let dumps = &job(&rows, "dump-database")["dumps"];
    assert_eq!(
        (dumps["count"].as_u64(), dumps["keep"].as_u64()),
        (Some(3), Some(3))
    );
    let newest = dumps["newest"]["file"].as_str().unwrap().to_owned();
    assert_eq!(
        names("dump").parse(&newest).map(|(_, f)| f),
        Some(Form::Gzip),
        "{dumps:#}"
    );
}

/// Returns the dumps it damaged, the truncated one first, and the one it
/// left whole.
fn verify_finds_a_truncated_and_a_flipped_dump(c: &Host) -> Vec<PathBuf> {
    c.step("verify finds a truncated and a flipped dump and passes the other");
    let files: Vec<_> = dump_files(&names("dump"), &c.path(DUMPS))
        .iter()
        .map(|f| c.path(DUMPS).join(f))
        .collect();
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{r}"
    );
    let truncated = fs::read(&files[0]).unwrap();
    fs::write(&files[0], &truncated[..truncated.len() * 2 / 3]).unwrap();
    let mut flipped = fs::read(&files[1]).unwrap();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    fs::write(&files[1], &flipped).unwrap();
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(1), "{r}");
    for (file, state) in [
        (&files[0], "DAMAGED"),
        (&files[1], "DAMAGED"),
        (&files[2], "ok"),
    ] {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(state) && l.contains(name)),
            "{name} should be {state}: {r}"
        );
    }
    let r = c.exec(&["timerapps", "verify", "myapp"]);
    assert_eq!(r.code(), Some(2), "{r}");
    files
}

fn zstd_and_uncompressed_dumps_count_with_the_gzip_ones(c: &Host, files: &[PathBuf]) {
    c.step("zstd and uncompressed dumps count with the gzip ones; status and verify read them");
    for compress in ["zstd", "none"] {
        let file = c.path("/etc/default/dump-database");
        let settings = fs::read_to_string(&file).unwrap();
        fs::write(&file, format!("{settings}DUMP_COMPRESS={compress}\n")).unwrap();
        let r = c.exec(&["timerapps", "run", "dump-database"]);
        assert_eq!(r.code(), Some(0), "{r}");
        std::thread::sleep(Duration::from_millis(1100));
        configure(c, "/etc/default/dump-database", "seq 1 200000");
    }
    // The flipped gzip dump, the oldest trusted one, was pruned. The
    // truncated one no longer has the size its manifest says: untrusted,
    // it is kept until removed by hand, as status says.
    let (code, rows) = json(c, "dump-database");
    assert_eq!(code, Some(1));
    let dumps = &job(&rows, "dump-database")["dumps"];
    assert_eq!(
        (dumps["count"].as_u64(), dumps["untrusted"].as_u64()),
        (Some(4), Some(1)),
        "{dumps:#}"
    );
    assert!(files[0].exists() && !files[1].exists());
    let (stamp, form) = names("dump")
        .parse(files[0].file_name().unwrap().to_str().unwrap())
        .unwrap();
    fs::remove_file(&files[0]).unwrap();
    fs::remove_file(c.path(DUMPS).join(names("dump").manifest(&stamp, form))).unwrap();
    let (_, rows) = json(c, "dump-database");
    let dumps = &job(&rows, "dump-database")["dumps"];
    assert_eq!(dumps["count"].as_u64(), Some(3), "{dumps:#}");
    assert_eq!(dumps["newest"]["form"], "none", "{dumps:#}");
    let newest = dumps["newest"]["file"].as_str().unwrap();
    assert_eq!(
        names("dump").parse(newest).map(|(_, f)| f),
        Some(Form::None),
        "{dumps:#}"
    );
    let r = c.exec(&["timerapps", "verify", "dump-database"]);
    assert_eq!(r.code(), Some(0), "{r}");
    for form in Form::ALL {
        assert!(
            r.stdout.lines().any(|l| l.starts_with("ok ")
                && l.split_whitespace()
                    .nth(1)
                    .and_then(|f| f.rsplit('/').next())
                    .and_then(|f| names("dump").parse(f))
                    .is_some_and(|(_, f)| f == form)),
            "no ok line for {form}: {r}"
        );
    }
    assert!(r.stdout.contains("no checksum of its own to check"), "{r}");
}

fn restore_verifies_a_dump_whole_before_a_byte_goes_out(c: &Host) {
    c.step(
        "restore verifies a dump whole before a byte goes out: damaged in its last block, nothing",
    );
    for form in Form::ALL {
        let file = dump_files(&names("dump"), &c.path(DUMPS))
            .into_iter()
            .find(|f| names("dump").parse(f).is_some_and(|(_, f)| f == form))
            .unwrap();
        let (stamp, _) = names("dump").parse(&file).unwrap();
        let path = c.path(DUMPS).join(&file);
        let manifest =
            fs::read_to_string(c.path(DUMPS).join(names("dump").manifest(&stamp, form))).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        let contents = manifest["content_sha256"].as_str().unwrap().to_owned();
        let out = c.sh(&format!(
            "timerapps restore dump-database {stamp} | sha256sum"
        ));
        assert_eq!(out.split_whitespace().next(), Some(&*contents), "{form}");
        // The last block: a byte before gzip's 8-byte trailer, before
        // zstd's 4-byte checksum, or the last byte of a dump kept as is.
        let good = fs::read(&path).unwrap();
        let mut damaged = good.clone();
        let at = good.len()
            - match form {
                Form::Gzip => 9,
                Form::Zstd => 5,
                Form::None => 1,
            };
        damaged[at] ^= 0x01;
        fs::write(&path, &damaged).unwrap();
        let r = c.exec(&[
            "sh",
            "-c",
            &format!("timerapps restore dump-database {stamp} > /root/restored"),
        ]);
        assert_eq!(r.code(), Some(1), "{form}: {r}");
        assert!(r.stderr.contains("nothing was written"), "{form}: {r}");
        assert_eq!(
            fs::metadata(c.path("/root/restored")).unwrap().len(),
            0,
            "{form}"
        );
        let r = c.exec(&[
            "sh",
            "-c",
            &format!("timerapps restore dump-database {stamp} | wc -c"),
        ]);
        assert_eq!(r.stdout.trim(), "0", "{form}: {r}");
        fs::write(&path, &good).unwrap();
        // Contents longer than the manifest recorded (a decompression bomb)
        // stop at that size, in the spool.
        let manifest_path = c.path(DUMPS).join(names("dump").manifest(&stamp, form));
        let text = fs::read_to_string(&manifest_path).unwrap();
        let mut short: serde_json::Value = serde_json::from_str(&text).unwrap();
        short["read"] = (short["read"].as_u64().unwrap() - 1).into();
        fs::write(&manifest_path, short.to_string()).unwrap();
        let r = c.exec(&[
            "sh",
            "-c",
            &format!("timerapps restore dump-database {stamp} | wc -c"),
        ]);
        assert_eq!(r.stdout.trim(), "0", "{form}: {r}");
        assert!(
            r.stderr.contains("contents run past the ") && r.stderr.contains("nothing was written"),
            "{form}: {r}"
        );
        fs::write(&manifest_path, text).unwrap();
    }
}

/// Room for the contents is checked before anything is written.
fn restore_checks_room_before_writing(c: &Host) {
    let stamp = names("dump")
        .parse(&dump_files(&names("dump"), &c.path(DUMPS))[0])
        .unwrap()
        .0;
    c.sh("mkdir -p /mnt/small && mount -t tmpfs -o size=256k tmpfs /mnt/small");
    let r = c.exec(&[
        "sh",
        "-c",
        &format!("TMPDIR=/mnt/small timerapps restore dump-database {stamp} | wc -c"),
    ]);
    assert_eq!(r.stdout.trim(), "0", "{r}");
    assert!(
        r.stderr.contains("/mnt/small has ") && r.stderr.contains("set TMPDIR"),
        "{r}"
    );
    let r = c.exec(&[
        "sh",
        "-c",
        &format!("TMPDIR=tmp timerapps restore dump-database {stamp} | wc -c"),
    ]);
    assert!(r.stderr.contains("TMPDIR=\"tmp\" is invalid"), "{r}");
}

fn an_instance_without_settings_is_not_enabled_and_a_hung_one_shows_watchdog(c: &Host) {
    c.step("an instance without settings is not enabled; a hung one shows watchdog");
    let r = c.exec(&["timerapps", "enable", "dump-database@ghost"]);
    assert_eq!(r.code(), Some(78), "{r}");
    assert!(
        r.stderr.contains("/etc/timerapps/dump-database/ghost.conf"),
        "{r}"
    );
    assert_eq!(
        c.state("is-enabled", "dump-database@ghost.timer"),
        "disabled"
    );
    configure(
        c,
        "/etc/timerapps/dump-database/slow.conf",
        "sh -c 'head -c 1000 /dev/urandom; exec sleep 600'",
    );
    c.sh("mkdir -p /etc/systemd/system/dump-database@slow.service.d
          printf '[Service]\\nWatchdogSec=3s\\n' > /etc/systemd/system/dump-database@slow.service.d/test.conf
          systemctl daemon-reload");
    let r = c.exec(&["timerapps", "enable", "dump-database@slow"]);
    assert_eq!(r.code(), Some(0), "{r}");
    assert_eq!(c.state("is-enabled", "dump-database@slow.timer"), "enabled");
    c.quiet(&["dump-database@slow.timer"]);
    let r = c.exec(&["timerapps", "run", "dump-database@slow"]);
    assert_eq!(r.code(), Some(1), "{r}");
    assert!(r.stdout.contains("watchdog"), "{r}");
    let (code, rows) = json(c, "");
    assert_eq!(code, Some(1), "{rows:#}");
    let slow = job(&rows, "dump-database@slow");
    assert_eq!(slow["last_run"]["result"], "watchdog", "{slow:#}");
    assert_eq!(slow["healthy"], false);
    assert_eq!(job(&rows, "myapp")["healthy"], true);
    let table = c.exec(&["timerapps"]);
    eprintln!("{}", table.stdout);
    assert_eq!(table.code(), Some(1), "{table}");
    assert!(table.stdout.contains("\n! dump-database@slow "), "{table}");
    assert!(
        table
            .stdout
            .contains("dump-database@slow: last run failed: watchdog"),
        "{table}"
    );
    c.sh("timerapps disable dump-database@slow");
}

fn a_dump_older_than_two_periods_stands_out(c: &Host) {
    c.step("a dump older than two periods stands out");
    configure(c, "/etc/timerapps/dump-database/old.conf", "true");
    let old_dump = names("old").dump(&Stamp::parse("20200101T000000Z").unwrap(), Form::Gzip);
    c.sh(&format!(
        "install -d -o timerapps -g timerapps -m 0700 {INSTANCES}/old
          echo x | gzip > {INSTANCES}/old/{old_dump}"
    ));
    let (code, rows) = json(c, "dump-database@old");
    assert_eq!(code, Some(1), "{rows:#}");
    let old = job(&rows, "dump-database@old");
    assert_eq!(old["period_seconds"], 600, "{old:#}");
    assert_eq!(old["dumps"]["newest"]["file"], old_dump.as_str());
    assert!(
        old["problems"][0]
            .as_str()
            .unwrap()
            .contains("more than two periods (20 min)"),
        "{old:#}"
    );
    // A dump named in the future (the clock was ahead) hides nothing: it
    // is not the newest, the stale dump still stands out, and it is a
    // problem of its own.
    let ahead = names("old").dump(&Stamp::parse("20990101T000000Z").unwrap(), Form::Gzip);
    c.sh(&format!("echo x | gzip > {INSTANCES}/old/{ahead}"));
    let (code, rows) = json(c, "dump-database@old");
    assert_eq!(code, Some(1), "{rows:#}");
    let old = job(&rows, "dump-database@old");
    assert_eq!(old["dumps"]["newest"]["file"], old_dump.as_str(), "{old:#}");
    assert_eq!(old["dumps"]["future"], 1, "{old:#}");
    let problems = old["problems"].to_string();
    assert!(
        problems.contains("more than two periods") && problems.contains("named in the future"),
        "{old:#}"
    );
}

fn disable_survives_an_upgrade_and_purge_removes_only_its_drop_ins(c: &Host) {
    c.step("disable survives an upgrade; purge removes only the command's drop-ins");
    let r = c.exec(&["timerapps", "disable", "otherapp"]);
    assert_eq!(r.code(), Some(0), "{r}");
    let r = c.exec(&["timerapps", "schedule", "otherapp", "daily"]);
    assert_eq!(r.code(), Some(0), "{r}");
    c.sh("apt-get install -y /root/timerapps-next.deb </dev/null");
    assert_eq!(c.state("is-enabled", "otherapp.timer"), "disabled");
    assert_eq!(c.state("is-active", "otherapp.timer"), "inactive");
    assert_eq!(c.state("is-enabled", "myapp.timer"), "enabled");
    let ours = drop_in("otherapp.timer");
    assert!(c.path(&ours).exists(), "an upgrade keeps the schedule");
    let admins = "/etc/systemd/system/myapp.timer.d/override.conf";
    c.sh(&format!(
        "mkdir -p /etc/systemd/system/myapp.timer.d
          printf '[Timer]\\nAccuracySec=2s\\n' > /etc/systemd/system/myapp.timer.d/override.conf
          cp /etc/systemd/system/myapp.timer.d/override.conf {}",
        drop_in("myapp.timer")
    ));
    c.sh("apt-get purge -y timerapps </dev/null");
    assert!(!c.path(&ours).exists());
    assert!(!c.path("/etc/systemd/system/otherapp.timer.d").exists());
    assert!(c.path(admins).exists(), "purge removed the admin's drop-in");
    assert!(
        c.path(&drop_in("myapp.timer")).exists(),
        "purge removed a file the command did not write"
    );
}

/// Where no systemd runs (a private /run here), the command says so
/// at once instead of hanging.
#[test]
#[ignore = "needs root: tests/run"]
fn without_systemd_the_command_says_so() {
    assert!(is_root(), "the test needs root for a mount namespace");
    let r = run(cmd("timeout")
        .args(["20", "unshare", "-m", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs none /run && exec {} status",
            bin("timerapps")
        )));
    assert_eq!(r.code(), Some(3), "unknown, as monitoring plugins say: {r}");
    assert!(r.stderr.contains("systemd is not running"), "{r}");
    assert_eq!(r.stderr.lines().count(), 1, "{r}");
}

/// An instance is named as its dumps are: a name that cannot be a
/// DUMP_NAME is refused before anything is asked or written, by every
/// command and for every user.
#[test]
fn instance_names_follow_the_dump_name_rule() {
    let long = format!("dump-database@{}", "a".repeat(100));
    for name in ["dump-database@..", "dump-database@a:b", long.as_str()] {
        for args in [
            &["schedule", name, "daily"][..],
            &["enable", name],
            &["disable", name],
            &["run", name],
            &["verify", name],
            &["status", name],
            &["--user", "schedule", name, "daily"],
        ] {
            let r = run(cmd(bin("timerapps")).args(args));
            assert_eq!(r.code(), Some(2), "{r}");
            r.stderr_has("invalid instance name")
                .stderr_has(jobkit::dumpfile::NAME_RULE);
            assert_eq!(r.stderr.lines().count(), 1, "{r}");
        }
        for dir in ["/etc/systemd/system", "/run/systemd/system"] {
            let made = std::path::Path::new(dir).join(format!("{name}.timer.d"));
            assert!(!made.exists(), "{} was created", made.display());
        }
    }
}

/// The default job's own dump directory is named as the job: no instance
/// may take that name, in any command, for any user.
#[test]
fn no_instance_is_named_as_the_default_job() {
    let name = "dump-database@dump-database";
    for args in [
        &["schedule", name, "daily"][..],
        &["enable", name],
        &["run", name],
        &["drill", name],
        &["status", name],
        &["--user", "enable", name],
    ] {
        let r = run(cmd(bin("timerapps")).args(args));
        assert_eq!(r.code(), Some(2), "{r}");
        r.stderr_has("may not be named as the default job");
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
    }
}

#[test]
fn unknown_jobs_and_arguments_are_usage_errors() {
    let r = run(cmd(bin("timerapps")).args(["status", "nope"]));
    assert_eq!(r.code(), Some(2), "{r}");
    let jobs = Variant::jobs(Manager::System, Shape::Plain)
        .map(|j| j.name.to_owned())
        .chain(
            catalogue::templates(Manager::System)
                .into_iter()
                .map(|t| format!("{t}NAME")),
        );
    for job in jobs {
        assert!(r.stderr.contains(&job), "{job} not listed: {r}");
    }
    let r = run(cmd(bin("timerapps")).arg("frobnicate"));
    assert_eq!(r.code(), Some(2), "{r}");
    let r = run(cmd(bin("timerapps")).args(["schedule", "myapp", "not a calendar"]));
    assert_eq!(r.code(), Some(2), "{r}");
    assert!(
        r.stderr.contains("Failed to parse calendar specification"),
        "{r}"
    );
    let r = run(cmd(bin("timerapps")).args(["schedule", "myapp"]));
    assert_eq!(r.code(), Some(2), "{r}");
}
