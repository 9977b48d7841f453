//! Each program's environment variables and exit statuses, stated once.
//! `--help` is written from these tables; the `//!` docs of each
//! `jobs/NAME/main.rs` and the program's page in `docs/` hold them as
//! [`markdown`] renders them, and the man pages and settings files name
//! the same variables and statuses (`tests/it/docs.rs` checks all of
//! these).

/// An environment variable a program reads.
pub struct Variable {
    pub name: &'static str,
    /// What it sets, in Markdown.
    pub meaning: &'static str,
    /// Its value when unset, in Markdown; `NAME` stands for the program.
    pub default: &'static str,
}

/// An exit status and what it means.
pub struct Status {
    /// A number, or numbers joined by ", ".
    pub code: &'static str,
    pub meaning: &'static str,
}

/// What a program reads and how it exits.
pub struct Usage {
    pub variables: &'static [Variable],
    pub statuses: &'static [Status],
}

/// `myapp` and `otherapp`.
pub const LOGGER: Usage = Usage {
    variables: &[Variable {
        name: "LOGFILE",
        meaning: "absolute path of the log file",
        default: "`/var/tmp/NAME_timer.log`",
    }],
    statuses: &[
        Status {
            code: "0",
            meaning: "the line was written",
        },
        Status {
            code: "1",
            meaning: "locking or writing `LOGFILE` failed, or the clock is set so far ahead \
                      that it has no calendar date",
        },
        Status {
            code: "2",
            meaning: "bad argument, or `LOGFILE` empty or relative; nothing written",
        },
        Status {
            code: "73",
            meaning: "`LOGFILE` cannot be opened: missing directory, a directory, not \
                      writable, not a regular file, or a symlink in a world-writable sticky \
                      directory",
        },
    ],
};

/// `dump-database`.
pub const DUMP: Usage = Usage {
    variables: &[
        Variable {
            name: "DUMP_COMMAND",
            meaning: "the dump command; split into words with shell quoting rules and run \
                      without a shell; its stdout is the dump, its stderr goes to the \
                      journal; `${CREDENTIALS_DIRECTORY}` in it becomes the service's \
                      credentials directory (`LoadCredential=`)",
            default: "required",
        },
        Variable {
            name: "DUMP_DIR",
            meaning: "absolute path of the directory the dumps are kept in; must exist",
            default: "`/var/lib/timerapps/dumps/dump-database`",
        },
        Variable {
            name: "DUMP_KEEP",
            meaning: "how many of the newest good dumps to keep, at least 1; also how many \
                      suspect dumps are kept",
            default: "`5`",
        },
        Variable {
            name: "DUMP_KEEP_HOURLY",
            meaning: "for the last N hours that have a good dump, keep the newest of each \
                      (local time, as restic's `forget --keep-hourly`)",
            default: "`0`",
        },
        Variable {
            name: "DUMP_KEEP_DAILY",
            meaning: "the same for the last N days",
            default: "`0`",
        },
        Variable {
            name: "DUMP_KEEP_WEEKLY",
            meaning: "the same for the last N ISO weeks",
            default: "`0`",
        },
        Variable {
            name: "DUMP_KEEP_MONTHLY",
            meaning: "the same for the last N months",
            default: "`0`",
        },
        Variable {
            name: "DUMP_NAME",
            meaning: "file-name prefix, and an instance's name: 1 to 64 letters, digits, \
                      `.`, `_` or `-`, starting with a letter or digit",
            default: "`dump`",
        },
        Variable {
            name: "DUMP_COMPRESS",
            meaning: "`gzip`, `zstd`, or `none` to keep the command's bytes as they are \
                      (for `pg_dump -Fc`)",
            default: "`gzip`",
        },
        Variable {
            name: "DUMP_GZIP_LEVEL",
            meaning: "gzip level, 1 (fastest) to 9 (smallest)",
            default: "`6`",
        },
        Variable {
            name: "DUMP_ZSTD_LEVEL",
            meaning: "zstd level, 1 (fastest) to 19 (smallest)",
            default: "`3`",
        },
        Variable {
            name: "DUMP_EXTENSION",
            meaning: "what the dump is, before the compression's suffix: letters, digits, \
                      `_`, `-` (`dump` for `pg_dump -Fc`)",
            default: "`sql`",
        },
        Variable {
            name: "DUMP_CHECK",
            meaning: "`auto`: recognise the dump format and fail a dump whose end is \
                      missing, count each table's rows; `off`: neither",
            default: "`auto`",
        },
        Variable {
            name: "DUMP_SHRINK_LIMIT",
            meaning: "a dump whose raw size or rows are below this percentage of those of \
                      the largest good dump kept (since the newest accepted one) is suspect; \
                      `0` turns this off, a dump without rows where that one had some is \
                      suspect all the same",
            default: "`50`",
        },
        Variable {
            name: "DUMP_FINISH_TIMEOUT",
            meaning: "seconds that flushing, publishing and pruning may take once the \
                      command has ended, 1 to 86400; a file system that does not answer \
                      for longer ends the run with exit 1, earlier dumps untouched",
            default: "`600`",
        },
        Variable {
            name: "DUMP_THREADS",
            meaning: "compression threads, 1 to 64",
            default: "the CPUs the job may use, at most 4",
        },
        Variable {
            name: "DUMP_MEMORY_MAX",
            meaning: "the memory the job may use, as `MemoryMax=` takes it (`2G`, `1536M`), \
                      for where its cgroup sets none or more (a run by hand, cgroup v1, \
                      which has no `MemoryHigh=`): compression may take half of the smaller \
                      of this and the cgroup's `memory.high` or `memory.max` (cgroup v1: \
                      `memory.limit_in_bytes`), and settings that need more exit 2",
            default: "none: the cgroup's limit alone",
        },
        Variable {
            name: "DUMP_SETTINGS",
            meaning: "the file these are set in, named when `DUMP_COMMAND` is missing; set \
                      by the units",
            default: "`/etc/default/dump-database`",
        },
    ],
    statuses: &[
        Status {
            code: "0",
            meaning: "the dump was published and old dumps pruned",
        },
        Status {
            code: "1",
            meaning: "the dump failed: command failed, was killed or wrote nothing, its \
                      format's end is missing or it is not the format the command writes, \
                      read or write error (disk full), temp file removed meanwhile, publish \
                      or prune failed",
        },
        Status {
            code: "2",
            meaning: "bad argument or malformed variable, `DUMP_DIR` the directory of every \
                      job's dump directory, an instance named `dump-database`, the default \
                      job's own directory, or compression settings that need more than half \
                      the job's memory limit (the level and `DUMP_THREADS`, against \
                      `MemoryHigh=`/`MemoryMax=` or `DUMP_MEMORY_MAX`); nothing written",
        },
        Status {
            code: "65",
            meaning: "the dump was published but is suspect: far smaller, in raw size or \
                      rows, than the largest good dump kept, or no rows where that one had \
                      some; it counts toward no retention rule (`timerapps accept` makes it \
                      good)",
        },
        Status {
            code: "73",
            meaning: "`DUMP_DIR` missing, not a directory, or not writable; or its lock file \
                      `.NAME.lock` cannot be opened or is not a regular file (the message \
                      says why and what to remove); or it names another unit, whose job \
                      writes these dump names into this directory (set another `DUMP_NAME` \
                      or `DUMP_DIR`; a run by hand, outside a unit, is never refused)",
        },
        Status {
            code: "75",
            meaning: "another run of the same `DUMP_NAME`, or `timerapps accept`, holds \
                      the lock, or this run lost it; nothing published or pruned",
        },
        Status {
            code: "77",
            meaning: "run as root on a `DUMP_DIR` that another user owns; nothing written",
        },
        Status {
            code: "78",
            meaning: "`DUMP_COMMAND` is not set; nothing written",
        },
        Status {
            code: "130, 143",
            meaning: "stopped by SIGINT or SIGTERM, which is passed on to the command; the \
                      dump was discarded, or, when the signal came after it was published, \
                      old dumps were pruned first and the message says so",
        },
    ],
};

/// What the drill and the copy read of the dump job's own settings.
const JOB_DUMP_NAME: Variable = Variable {
    name: "DUMP_NAME",
    meaning: "the job's dumps' file-name prefix, as for `dump-database`",
    default: "`dump`",
};
const JOB_DUMP_EXTENSION: Variable = Variable {
    name: "DUMP_EXTENSION",
    meaning: "what the dump is, before the compression's suffix, as for `dump-database`",
    default: "`sql`",
};

/// `dump-database-drill`.
pub const DRILL: Usage = Usage {
    variables: &[
        Variable {
            name: "DUMP_DIR",
            meaning: "where the job keeps its dumps, as for `dump-database`: the drill reads \
                      the job's own settings file",
            default: "`/var/lib/timerapps/dumps/dump-database`",
        },
        JOB_DUMP_NAME,
        JOB_DUMP_EXTENSION,
        Variable {
            name: "DRILL_TMPDIR",
            meaning: "absolute path of the directory the throwaway server is made in, below \
                      `timerapps-drill-NAME`; it needs about twice the dump's size free \
                      besides `DRILL_RESERVE`",
            default: "`/var/tmp`",
        },
        Variable {
            name: "DRILL_RESERVE",
            meaning: "the free space the drill leaves on `DRILL_TMPDIR`'s file system: a \
                      percentage of it (`5%`, up to `90%`) or a size (`2G`; `K`, `M`, `G`, \
                      `T` are powers of 1024); a restore that comes near it is stopped and \
                      fails the drill",
            default: "10 %, at least 1 GiB, at most a quarter of the file system",
        },
        Variable {
            name: crate::catalogue::DRILL.record_variable,
            meaning: "absolute path of the file the drill records its result in, for \
                      `timerapps status` and the metrics; set by the units; unset: not \
                      recorded",
            default: "unset",
        },
    ],
    statuses: &[
        Status {
            code: "0",
            meaning: "the newest good dump restored, and every table of its manifest has \
                      its rows",
        },
        Status {
            code: "1",
            meaning: "the drill failed: no good dump, the dump is damaged, a statement \
                      failed to restore, a table of the manifest is missing or has other \
                      rows, the server did not start",
        },
        Status {
            code: "2",
            meaning: "bad argument or malformed variable, as for `dump-database`; nothing \
                      done",
        },
        Status {
            code: "73",
            meaning: "`DRILL_TMPDIR` cannot be written, or has too little space free \
                      besides `DRILL_RESERVE` (the message says how much is needed), or the \
                      restore came near the reserve and was stopped",
        },
        Status {
            code: "75",
            meaning: "another drill of the same `DUMP_NAME` is running",
        },
        Status {
            code: "77",
            meaning: "run as root: no drill, server or tool of it runs as root; run it as \
                      the job's user, as its unit does; nothing recorded",
        },
        Status {
            code: "78",
            meaning: "the server the dump needs is not installed, or is older than the \
                      dump, or its psql lacks `\\restrict` (the message names the Debian \
                      package to install)",
        },
    ],
};

/// `dump-database-copy`.
pub const COPY: Usage = Usage {
    variables: &[
        Variable {
            name: "DUMP_DIR",
            meaning: "where the job keeps its dumps, as for `dump-database`: the copy reads \
                      the job's own settings file",
            default: "`/var/lib/timerapps/dumps/dump-database`",
        },
        JOB_DUMP_NAME,
        JOB_DUMP_EXTENSION,
        Variable {
            name: "COPY_REPOSITORY",
            meaning: "the restic repository every good dump is copied into, as restic \
                      names it (`rest:https://…`, `sftp:host:/path`, `s3:…`); unset or \
                      empty: no restic copy",
            default: "unset",
        },
        Variable {
            name: "COPY_PASSWORD_FILE",
            meaning: "absolute path of the repository's password, given to restic as \
                      `RESTIC_PASSWORD_FILE`; set by the units to the credential loaded \
                      from `/etc/timerapps/credentials/copies/UNIT/restic-password`",
            default: "unset",
        },
        Variable {
            name: "COPY_KEEP",
            meaning: "how many of the newest copies the repository keeps, at least 1; \
                      applied with `restic forget` to this job's own snapshots only (this \
                      machine's and this unit's), pruned at most once a day",
            default: "`DUMP_KEEP`'s value",
        },
        Variable {
            name: "COPY_KEEP_HOURLY",
            meaning: "for the last N hours that have a copy, keep the newest of each, as \
                      `DUMP_KEEP_HOURLY` does for the dumps",
            default: "`DUMP_KEEP_HOURLY`'s value",
        },
        Variable {
            name: "COPY_KEEP_DAILY",
            meaning: "the same for the last N days",
            default: "`DUMP_KEEP_DAILY`'s value",
        },
        Variable {
            name: "COPY_KEEP_WEEKLY",
            meaning: "the same for the last N ISO weeks",
            default: "`DUMP_KEEP_WEEKLY`'s value",
        },
        Variable {
            name: "COPY_KEEP_MONTHLY",
            meaning: "the same for the last N months",
            default: "`DUMP_KEEP_MONTHLY`'s value",
        },
        Variable {
            name: "COPY_HOST",
            meaning: "the host name the snapshots are recorded under; which snapshots \
                      are this job's is told by the machine's ID and the unit, not by it",
            default: "this machine's host name",
        },
        Variable {
            name: "COPY_CONNECT_TIMEOUT",
            meaning: "seconds restic may take to open the repository and list its \
                      snapshots, 1 to 86400; restic itself retries an unreachable \
                      repository for up to 15 minutes",
            default: "`120`",
        },
        Variable {
            name: "COPY_COMMAND",
            meaning: "instead of restic, a command run once per good dump not yet sent, \
                      oldest first, split into words with shell quoting rules and run \
                      without a shell; it gets `COPY_DUMP` (the dump's path), \
                      `COPY_STAMP`, `COPY_SIZE` and `COPY_SHA256` (of the stored file) in \
                      its environment, and `${COPY_DUMP}` and the others in its words are \
                      replaced; it must exit 0 once the dump is safely stored; retention \
                      at the destination is its own business",
            default: "unset",
        },
        Variable {
            name: crate::catalogue::COPY.record_variable,
            meaning: "absolute path of the file the copy records its result in, for \
                      `timerapps status` and the metrics; set by the units; unset: not \
                      recorded",
            default: "unset",
        },
    ],
    statuses: &[
        Status {
            code: "0",
            meaning: "every good dump due is in the destination and verified, and the \
                      repository's retention applied; or no destination is configured",
        },
        Status {
            code: "1",
            meaning: "a copy failed: the repository cannot be reached or opened (wrong \
                      password, no repository there), a dump could not be read, restic or \
                      the command failed, the copy read back differs, or `restic check` \
                      found damage; local dumps are never changed",
        },
        Status {
            code: "2",
            meaning: "bad argument or malformed variable, as for `dump-database`; nothing \
                      done",
        },
        Status {
            code: "73",
            meaning: "`COPY_RESULT` cannot be written",
        },
        Status {
            code: "75",
            meaning: "another copy of the same job is running",
        },
        Status {
            code: "78",
            meaning: "`COPY_REPOSITORY` is set but restic is not installed, the \
                      repository password is missing (the message names the file to \
                      create), or the copy runs outside its unit (`timerapps copy JOB` \
                      runs it there); or the job's dumps are another unit's, whose job \
                      writes these dump names into this directory (`.NAME.lock` names it)",
        },
    ],
};

/// The `timerapps` command.
pub const COMMAND: Usage = Usage {
    variables: &[
        Variable {
            name: "NO_COLOR",
            meaning: "set and not empty: no color, even on a terminal",
            default: "unset",
        },
        Variable {
            name: "TMPDIR",
            meaning: "absolute path of the directory where `restore` holds a dump's contents \
                      until they are verified, in a file without a name that is gone when \
                      it ends; it needs room for them",
            default: "`/var/tmp`",
        },
    ],
    statuses: &[
        Status {
            code: "0",
            meaning: "done; for `status`, every job shown is healthy; for `verify`, every \
                      dump is intact",
        },
        Status {
            code: "1",
            meaning: "a job shown failed, its newest dump is suspect or named in the \
                      future, a dump's manifest is missing, damaged or of another file, its \
                      newest good dump is older than two periods, or it is an \
                      enabled dump job not configured, or its last restore drill, off-host \
                      copy or repository check failed, or its good dumps are not off the \
                      host two periods after they were made; the run, the drill or the copy \
                      failed; a dump is damaged or untrusted, or none is kept; `restore` \
                      found no such \
                      dump or copy, or it is damaged; `schedule` was written but another \
                      drop-in overrides it; `accept` found no such dump, cannot read it \
                      back, or cannot open the lock file `.NAME.lock` of its dump name (a \
                      symlink or no regular file); systemd refused",
        },
        Status {
            code: "2",
            meaning: "bad argument: unknown job or command, invalid instance name, \
                      calendar expression, stamp or `TMPDIR`; `restore` to a terminal; \
                      nothing changed",
        },
        Status {
            code: "3",
            meaning: "could not tell: systemd cannot be reached; for `status`, a job's state \
                      cannot be read (it is shown as unknown, the others as they are: a \
                      manifest or record that is a symlink, FIFO, device or too large is \
                      unreadable) or the report cannot be written; for `verify`, a dump's \
                      manifest cannot be read and no dump is damaged",
        },
        Status {
            code: "75",
            meaning: "`accept` while a run of the job holds the lock of its dump name, or \
                      after it lost that lock; nothing changed, try again when the run has \
                      finished",
        },
        Status {
            code: "77",
            meaning: "a command that changes the system's timers or dumps, run by a user \
                      other than root (without `--user`); nothing changed",
        },
        Status {
            code: "78",
            meaning: "`enable` of an instance whose settings file is missing; nothing \
                      changed; `restore --offsite` of a job without `COPY_REPOSITORY` or \
                      without its repository password, or without restic",
        },
    ],
};

/// The monitoring settings of every job (`catalogue::monitoring_settings`):
/// `/etc/default/timerapps`, or a user's `~/.config/timerapps/timerapps.conf`.
pub const MONITORING: &[Variable] = &[
    Variable {
        name: "MAIL_TO",
        meaning: "where a failed run is mailed: one address, or several separated by \
                  spaces; an address without a domain takes that of `/etc/mailname`, else \
                  the host's; unset or empty: no mail",
        default: "unset",
    },
    Variable {
        name: "MAIL_SMTP",
        meaning: "`host:port` of the MTA that takes the mail by SMTP, without TLS or \
                  authentication; when nothing listens there, the mail goes to \
                  `/usr/sbin/sendmail`",
        default: "`localhost:25`",
    },
    Variable {
        name: "METRICS_DIR",
        meaning: "absolute path of the directory node_exporter's textfile collector reads; \
                  after each run of a system job its metrics are written there, as \
                  `timerapps-JOB.prom`; skipped when the directory does not exist; empty: \
                  none are written",
        default: "`/var/lib/prometheus/node-exporter`",
    },
];

/// The usage of `program`: `myapp`, `otherapp`, `dump-database`,
/// `dump-database-drill`, `dump-database-copy` or `timerapps`.
pub fn of(program: &str) -> Option<&'static Usage> {
    match program {
        "myapp" | "otherapp" => Some(&LOGGER),
        "dump-database" => Some(&DUMP),
        "dump-database-drill" => Some(&DRILL),
        "dump-database-copy" => Some(&COPY),
        "timerapps" => Some(&COMMAND),
        _ => None,
    }
}

/// The variables' Markdown table.
pub fn variables_markdown(variables: &[Variable]) -> String {
    let mut out = String::from("| variable | meaning | default |\n|---|---|---|\n");
    for v in variables {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            v.name, v.meaning, v.default
        ));
    }
    out
}

/// The two Markdown tables, as the `//!` docs and the pages of `docs/` hold them.
pub fn markdown(usage: &Usage) -> String {
    let mut out = variables_markdown(usage.variables);
    out.push_str("\n| exit | meaning |\n|---|---|\n");
    for s in usage.statuses {
        out.push_str(&format!("| {} | {} |\n", s.code, s.meaning));
    }
    out
}

/// The "Environment:" and "Exit status:" sections of `program`'s `--help`,
/// wrapped to 79 columns.
pub fn help(usage: &Usage, program: &str) -> String {
    let plain = |text: &str| text.replace('`', "");
    let mut out = String::from("Environment:\n");
    let width = usage
        .variables
        .iter()
        .map(|v| v.name.len())
        .max()
        .unwrap_or(0);
    for v in usage.variables {
        let default = plain(v.default).replace("NAME", program);
        let text = format!("{} ({})", plain(v.meaning), plain_default(&default));
        out.push_str(&hanging(&format!("  {:width$}  ", v.name), &text));
    }
    out.push_str("\nExit status:\n");
    let width = usage
        .statuses
        .iter()
        .map(|s| s.code.len())
        .max()
        .unwrap_or(0);
    for s in usage.statuses {
        out.push_str(&hanging(
            &format!("  {:width$}  ", s.code),
            &plain(s.meaning),
        ));
    }
    out
}

/// `required` stays as it is; any other default reads `default X`.
fn plain_default(default: &str) -> String {
    if default == "required" {
        default.to_owned()
    } else {
        format!("default {default}")
    }
}

/// `text` after `head`, wrapped at 79 columns under its first word.
fn hanging(head: &str, text: &str) -> String {
    let indent = head.len();
    let mut out = String::new();
    let mut line = head.to_owned();
    for word in text.split_whitespace() {
        if line.len() + word.len() + 1 > 79 && line.len() > indent {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
        }
        if line.len() > indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_wraps_under_the_first_word_and_names_the_program() {
        let text = help(&LOGGER, "myapp");
        assert!(
            text.starts_with(
                "Environment:\n  LOGFILE  absolute path of the log file (default \
                 /var/tmp/myapp_timer.log)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n  73  LOGFILE cannot be opened: "),
            "{text}"
        );
        for line in help(&DUMP, "dump-database").lines() {
            assert!(line.len() <= 79, "{line}");
        }
        // Meanings start one column past the longest name.
        let longest = DUMP.variables.iter().map(|v| v.name.len()).max().unwrap();
        let first = format!("\n  {:longest$}  the dump command", "DUMP_COMMAND");
        assert!(help(&DUMP, "dump-database").contains(&first));
    }

    #[test]
    fn markdown_tables() {
        let text = markdown(&COMMAND);
        assert!(text.starts_with("| variable | meaning | default |\n|---|---|---|\n| `NO_COLOR` |"));
        assert!(text.contains("\n| exit | meaning |\n|---|---|\n| 0 | done;"));
    }
}
