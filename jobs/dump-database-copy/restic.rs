//! restic, run as a child: the repository and its password reach it only
//! through its environment, never on a command line; its snapshots of one
//! job are told apart by the host and two tags.

use crate::config;
use chrono::TimeZone;
use jobkit::dumpfile::manifest::Hashing;
use jobkit::dumpfile::{Names, Stamp};
use jobkit::manifest::{password_file, CREDENTIALS_DIR, CREDENTIALS_ID};
use jobkit::process::{self, Child};
use jobkit::retention::Policy;
use jobkit::{Error, Exit, Result};
use serde::Deserialize;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tag every snapshot timerapps makes carries.
pub const TAG: &str = "timerapps";

/// A repository, as this job uses it.
pub struct Restic<'a> {
    config: &'a config::Restic,
    password: PathBuf,
    cache: Option<OsString>,
    /// `dump=NAME`: the job's snapshots, with [`TAG`] and the host.
    job_tag: String,
}

/// A snapshot as `restic snapshots --json` shows it.
#[derive(Debug, Deserialize)]
pub struct Snapshot {
    pub id: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Snapshot {
    /// The dump it holds, by its `stamp=` tag.
    pub fn stamp(&self) -> Option<Stamp> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix("stamp="))
            .and_then(Stamp::parse)
    }
}

/// What `restic backup --json` says last.
#[derive(Debug, Deserialize)]
struct Summary {
    message_type: String,
    #[serde(default)]
    snapshot_id: Option<String>,
    #[serde(default)]
    data_added: u64,
}

/// A dump sent: its snapshot, the SHA-256 of what was sent, and what the
/// repository grew by.
pub struct Sent {
    pub id: String,
    pub sha256: String,
    pub size: u64,
    pub added: u64,
}

impl<'a> Restic<'a> {
    /// The repository of `config` for the dumps of `names`; fails when the
    /// password or restic itself is missing, before anything is run.
    pub fn open(config: &'a config::Restic, names: &Names) -> Result<Restic<'a>> {
        let missing = || {
            let hint = match config
                .password_file
                .as_ref()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(&format!("{CREDENTIALS_ID}_")))
            {
                Some(name) => format!("{CREDENTIALS_DIR}/{name}"),
                None => format!("{CREDENTIALS_DIR}/{}", password_file("UNIT")),
            };
            format!(
                "put the repository's password in {hint} (owned by root, mode 0600), then \
                 run the copy again"
            )
        };
        let Some(password) = config.password_file.clone() else {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "COPY_REPOSITORY is set but COPY_PASSWORD_FILE is not: restic needs the \
                     repository's password; {}",
                    missing()
                ),
            ));
        };
        match std::fs::metadata(&password) {
            Ok(m) if m.len() > 0 => {}
            Ok(_) => {
                return Err(Error::new(
                    Exit::NotConfigured,
                    format!(
                        "the repository password {} is empty; {}",
                        password.display(),
                        missing()
                    ),
                ))
            }
            Err(e) => {
                return Err(Error::new(
                    Exit::NotConfigured,
                    format!(
                        "no repository password: {}: {e}; {}",
                        password.display(),
                        missing()
                    ),
                ))
            }
        }
        let restic = Restic {
            config,
            password,
            cache: std::env::var_os("CACHE_DIRECTORY"),
            job_tag: format!("dump={}", names.name()),
        };
        let mut version = restic.command();
        version.arg("version");
        if let Err(e) = version.output() {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "COPY_REPOSITORY is set but restic cannot be run: {e}; install it with \
                     \"apt install restic\""
                ),
            ));
        }
        Ok(restic)
    }

    /// The repository as messages name it: a password in its URL hidden.
    pub fn location(&self) -> String {
        redact(&self.config.repository)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("restic");
        for secret in [
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_COMMAND",
            "RESTIC_REPOSITORY_FILE",
        ] {
            c.env_remove(secret);
        }
        c.env("RESTIC_REPOSITORY", &self.config.repository)
            .env("RESTIC_PASSWORD_FILE", &self.password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cache) = &self.cache {
            c.env("RESTIC_CACHE_DIR", cache);
        }
        process::die_with_parent(&mut c);
        c
    }

    /// Runs `restic ARGS`, returning what it wrote; a failure says what
    /// restic said and what to check.
    fn run(&self, args: &[&str]) -> Result<String> {
        let mut c = self.command();
        c.args(args);
        process::output(&mut c, "restic").map_err(|e| self.failed(args[0], &e))
    }

    fn failed(&self, what: &str, e: &Error) -> Error {
        let said = e.to_string();
        let hint = if said.contains("wrong password") {
            "; check the repository password (COPY_PASSWORD_FILE)"
        } else if said.contains("unable to open config file") {
            "; is there a repository at COPY_REPOSITORY? Create it once with \"restic init\""
        } else if said.contains("already locked") {
            "; another restic holds the repository's lock: the next run tries again"
        } else {
            ""
        };
        Error::new(
            Exit::Failure,
            format!("restic {what} on {}: {said}{hint}", self.location()),
        )
    }

    /// This host's snapshots of this job, within COPY_CONNECT_TIMEOUT: the
    /// first call of a run, so that an unreachable repository fails it
    /// before restic's own retries (15 minutes from restic 0.17 on) end.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let tags = format!("{TAG},{}", self.job_tag);
        let args = [
            "snapshots",
            "--json",
            "--host",
            &self.config.host,
            "--tag",
            &tags,
        ];
        let out = self.run_within(&args, self.config.connect_timeout)?;
        serde_json::from_str::<Option<Vec<Snapshot>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                Error::new(
                    Exit::Failure,
                    format!("restic snapshots wrote what is not its JSON: {e}"),
                )
            })
    }

    /// Runs `restic ARGS` as [`Restic::run`] does, killing it after `limit`.
    fn run_within(&self, args: &[&str], limit: Duration) -> Result<String> {
        let mut c = self.command();
        c.args(args);
        let mut child = process::spawn(&mut c, "restic").map_err(|e| self.failed(args[0], &e))?;
        let out = reader(&mut child);
        let deadline = Instant::now() + limit;
        while child.exited().is_none() {
            if Instant::now() > deadline {
                child.kill();
                return Err(Error::new(
                    Exit::Failure,
                    format!(
                        "the repository {} did not answer within COPY_CONNECT_TIMEOUT={} s: {}; \
                         check that it is reachable from this host",
                        self.location(),
                        limit.as_secs(),
                        child.said()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = out.join().unwrap_or_default();
        child.wait().map_err(|e| self.failed(args[0], &e))?;
        Ok(text)
    }

    /// Sends what `write` writes as the file `file_name` of a new snapshot
    /// taken at `stamp`.
    pub fn backup(
        &self,
        file_name: &str,
        stamp: &Stamp,
        write: impl FnOnce(&mut dyn Write) -> Result<u64>,
    ) -> Result<Sent> {
        let time = chrono::Local
            .from_utc_datetime(&stamp.utc())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let tags = format!("{TAG},{},stamp={stamp}", self.job_tag);
        let mut c = self.command();
        c.args([
            "backup",
            "--json",
            "--quiet",
            "--stdin",
            "--stdin-filename",
            file_name,
            "--host",
            &self.config.host,
            "--tag",
            &tags,
            "--time",
            &time,
        ])
        .stdin(Stdio::piped());
        let mut child = process::spawn(&mut c, "restic").map_err(|e| self.failed("backup", &e))?;
        let out = reader(&mut child);
        let mut stdin = Hashing::new(child.stdin().expect("stdin is piped"));
        let written = write(&mut stdin);
        let sha256 = stdin.hex();
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                // Killed before it sees the end of its input, restic makes
                // no snapshot of a part.
                child.kill();
                return Err(e);
            }
        };
        drop(stdin);
        let text = out.join().unwrap_or_default();
        child.wait().map_err(|e| self.failed("backup", &e))?;
        let summary = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Summary>(l).ok())
            .find(|s| s.message_type == "summary")
            .and_then(|s| Some((s.snapshot_id?, s.data_added)));
        let Some((id, added)) = summary else {
            return Err(Error::new(
                Exit::Failure,
                format!(
                    "restic backup on {} ended without naming its snapshot",
                    self.location()
                ),
            ));
        };
        Ok(Sent {
            id,
            sha256,
            size,
            added,
        })
    }

    /// The SHA-256 of the file `file_name` of snapshot `id`, read back.
    pub fn sha256(&self, id: &str, file_name: &str) -> Result<String> {
        let mut c = self.command();
        c.args(["dump", id, &format!("/{file_name}")]);
        let mut child = process::spawn(&mut c, "restic").map_err(|e| self.failed("dump", &e))?;
        let mut stdout = child.stdout().expect("stdout is piped");
        let mut sink = Hashing::new(io::sink());
        let copied = io::copy(&mut stdout, &mut sink);
        child.wait().map_err(|e| self.failed("dump", &e))?;
        copied.map_err(|e| {
            Error::new(
                Exit::Failure,
                format!("cannot read back snapshot {id} from restic: {e}"),
            )
        })?;
        Ok(sink.hex())
    }

    /// Removes the snapshots `ids`, which failed their check.
    pub fn forget_ids(&self, ids: &[&str]) -> Result<()> {
        let mut args = vec!["forget"];
        args.extend(ids);
        self.run(&args).map(drop)
    }

    /// Applies `policy` to this host's snapshots of this job, and nothing
    /// else; returns how many it removed. Locks that a killed restic of
    /// this host left are removed first, so that they never block it.
    pub fn retain(&self, policy: &Policy) -> Result<usize> {
        self.run(&["unlock"])?;
        let counts = [
            ("--keep-last", policy.last),
            ("--keep-hourly", policy.hourly),
            ("--keep-daily", policy.daily),
            ("--keep-weekly", policy.weekly),
            ("--keep-monthly", policy.monthly),
        ]
        .map(|(flag, n)| (flag, n.to_string()));
        let tags = format!("{TAG},{}", self.job_tag);
        let mut args = vec![
            "forget",
            "--json",
            "--host",
            &self.config.host,
            "--tag",
            &tags,
            // One group: the snapshots' paths differ, one per dump.
            "--group-by",
            "host",
        ];
        for (flag, n) in &counts {
            if n != "0" {
                args.extend([*flag, n.as_str()]);
            }
        }
        #[derive(Deserialize)]
        struct Group {
            #[serde(default)]
            remove: Option<Vec<Snapshot>>,
        }
        let out = self.run(&args)?;
        let groups: Vec<Group> = serde_json::from_str(out.trim()).unwrap_or_default();
        let removed = groups
            .iter()
            .map(|g| g.remove.as_ref().map_or(0, Vec::len))
            .sum();
        if removed > 0 {
            self.run(&["prune"])?;
        }
        Ok(removed)
    }

    /// `restic check --read-data-subset=SUBSET`.
    pub fn check(&self, subset: &str) -> Result<()> {
        self.run(&["check", &format!("--read-data-subset={subset}")])
            .map(drop)
    }
}

/// Reads the child's stdout to its end on a thread of its own, so that a
/// full pipe never stops it while it is fed.
fn reader(child: &mut Child) -> std::thread::JoinHandle<String> {
    let stdout = child.stdout();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut out) = stdout {
            let _ = out.read_to_string(&mut text);
        }
        text
    })
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact(repository: &str) -> String {
    let Some(start) = repository.find("://").map(|i| i + 3) else {
        return repository.to_owned();
    };
    let rest = &repository[start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &repository[..start],
                &rest[..colon],
                &rest[at..]
            ),
            None => repository.to_owned(),
        },
        None => repository.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            redact("rest:https://me:secret@host:8000/repo"),
            "rest:https://me:***@host:8000/repo"
        );
        assert_eq!(redact("rest:http://host:8000/"), "rest:http://host:8000/");
        assert_eq!(redact("sftp:me@host:/srv/repo"), "sftp:me@host:/srv/repo");
        assert_eq!(redact("/srv/repo"), "/srv/repo");
    }
}
