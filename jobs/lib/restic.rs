//! The off-host copies in restic: what a copy of a dump is there (one
//! snapshot per dump, of the file the dump command wrote, with the host and
//! the tags `timerapps`, `dump=NAME`, `stamp=STAMP` and the job's identity,
//! `machine=ID` and `unit=UNIT`), and restic run as a child to make, list,
//! read back, keep and check them. Only the snapshots that carry the job's
//! identity are the job's: listing, retention and restoring filter by it.
//! The repository and its password reach restic only through its
//! environment, never on a command line. The copy sends and keeps;
//! `timerapps restore --offsite` reads back.
//!
//! A tag is safe in both restic 0.14 and 0.18 when it holds no comma (a
//! `--tag` value is split at commas) and starts and ends with no white
//! space (trimmed): machine IDs, unit names and `DUMP_NAME` cannot.

use crate::catalogue::password_file;
use crate::config::{self, Source};
use crate::dumpfile::manifest::Hashing;
use crate::dumpfile::{Form, Names, Stamp};
use crate::host::process::{self, Child};
use crate::identity::{Identity, MACHINE_TAG, UNIT_TAG};
use crate::retention::{self, Candidate, Policy};
use crate::{Error, Exit, Result};
use chrono::{DateTime, Local, LocalResult, Offset, TimeZone};
use serde::Deserialize;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tag every snapshot timerapps makes carries.
pub const TAG: &str = "timerapps";

/// Where a job's copies are, as its settings say.
#[derive(Clone, Debug)]
pub struct Repository {
    /// COPY_REPOSITORY, as restic names it.
    pub location: String,
    /// The password's file; None: not given.
    pub password_file: Option<PathBuf>,
    /// COPY_HOST: the host the snapshots are recorded under.
    pub host: String,
    /// COPY_CONNECT_TIMEOUT: how long restic may take to open the
    /// repository (newer restic retries an unreachable one 15 minutes).
    pub connect_timeout: Duration,
    /// More of restic's environment: a backend's keys, where this process
    /// does not have them already.
    pub env: Vec<(String, String)>,
}

impl Repository {
    /// `location` (COPY_REPOSITORY, set) with the other settings of a
    /// job's copies: COPY_PASSWORD_FILE, COPY_HOST, COPY_CONNECT_TIMEOUT.
    pub fn from_env(env: &dyn Source, location: String) -> Result<Repository> {
        Ok(Repository {
            location,
            password_file: match config::non_empty(env, "COPY_PASSWORD_FILE")? {
                None => None,
                Some(_) => Some(config::absolute_path(env, "COPY_PASSWORD_FILE", "")?),
            },
            host: match config::non_empty(env, "COPY_HOST")? {
                Some(host) => host,
                // As restic itself would record it.
                None => crate::host_name(),
            },
            connect_timeout: Duration::from_secs(u64::from(config::number(
                env,
                "COPY_CONNECT_TIMEOUT",
                1,
                86_400,
                120,
            )?)),
            env: Vec::new(),
        })
    }
}

/// A job's repository, opened: restic runs, the password is there.
pub struct Restic {
    repository: Repository,
    password: PathBuf,
    cache: Option<OsString>,
    names: Names,
    identity: Identity,
    /// restic's version, (major, minor); None when it says none.
    version: Option<(u32, u32)>,
}

/// A snapshot as `restic snapshots --json` shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct Snapshot {
    pub id: String,
    #[serde(default)]
    pub hostname: String,
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

    /// Made before copies carried an identity: no `machine=` or `unit=` tag.
    pub fn is_legacy(&self) -> bool {
        !self
            .tags
            .iter()
            .any(|t| t.starts_with(MACHINE_TAG) || t.starts_with(UNIT_TAG))
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

impl Restic {
    /// `repository`, for the dumps of `names` of the job `identity`; fails
    /// when the password or restic itself is missing, before anything is
    /// run.
    pub fn open(repository: Repository, names: &Names, identity: Identity) -> Result<Restic> {
        let missing = format!(
            "put the repository's password in {} (owned by root, mode 0600), then run the \
             copy again",
            password_file(identity.job())
        );
        let Some(password) = repository.password_file.clone() else {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "COPY_REPOSITORY is set but COPY_PASSWORD_FILE is not: restic needs the \
                     repository's password; {missing}"
                ),
            ));
        };
        match std::fs::metadata(&password) {
            Ok(m) if m.len() > 0 => {}
            Ok(_) => {
                return Err(Error::new(
                    Exit::NotConfigured,
                    format!(
                        "the repository password {} is empty; {missing}",
                        password.display()
                    ),
                ))
            }
            Err(e) => {
                return Err(Error::new(
                    Exit::NotConfigured,
                    format!(
                        "no repository password: {}: {e}; {missing}",
                        password.display()
                    ),
                ))
            }
        }
        let mut restic = Restic {
            repository,
            password,
            cache: std::env::var_os("CACHE_DIRECTORY"),
            names: names.clone(),
            identity,
            version: None,
        };
        let mut version = restic.command();
        version.arg("version");
        match version.output() {
            Ok(out) => restic.version = parse_version(&String::from_utf8_lossy(&out.stdout)),
            Err(e) => {
                return Err(Error::new(
                    Exit::NotConfigured,
                    format!(
                        "COPY_REPOSITORY is set but restic cannot be run: {e}; install it with \
                         \"apt install restic\""
                    ),
                ))
            }
        }
        Ok(restic)
    }

    /// The repository as messages name it: a password in its URL hidden.
    pub fn location(&self) -> String {
        redact(&self.repository.location)
    }

    /// The file a copy of the dump stamped `stamp` holds: the dump's name
    /// as the command wrote it, before compression.
    pub fn file_name(&self, stamp: &Stamp) -> String {
        self.names.dump(stamp, Form::None)
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
        c.envs(self.repository.env.iter().map(|(k, v)| (k, v)))
            .env("RESTIC_REPOSITORY", &self.repository.location)
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

    /// The tags that make a snapshot this job's copy of a dump:
    /// `timerapps,dump=NAME,machine=ID,unit=UNIT`.
    fn job_tags(&self) -> String {
        let [machine, unit] = self.identity.tags();
        format!("{TAG},dump={},{machine},{unit}", self.names.name())
    }

    /// This job's snapshots, by its identity, within COPY_CONNECT_TIMEOUT:
    /// the first call of a run, so that an unreachable repository fails it
    /// before restic's own retries (15 minutes from restic 0.17 on) end.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        self.list(&["--tag", &self.job_tags()])
    }

    /// The snapshots of this job's `DUMP_NAME` and host made before copies
    /// carried an identity: perhaps this job's, perhaps another's of the
    /// same name and host.
    pub fn legacy_snapshots(&self) -> Result<Vec<Snapshot>> {
        let tags = format!("{TAG},dump={}", self.names.name());
        let all = self.list(&["--host", &self.repository.host, "--tag", &tags])?;
        Ok(all.into_iter().filter(Snapshot::is_legacy).collect())
    }

    fn list(&self, filter: &[&str]) -> Result<Vec<Snapshot>> {
        let mut args = vec!["snapshots", "--json"];
        args.extend(filter);
        let out = self.run_within(&args, self.repository.connect_timeout)?;
        serde_json::from_str::<Option<Vec<Snapshot>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                Error::new(
                    Exit::Failure,
                    format!("restic snapshots wrote what is not its JSON: {e}"),
                )
            })
    }

    /// This job's copy of the dump stamped `stamp`, or its newest copy.
    pub fn copy_of(&self, stamp: Option<&Stamp>) -> Result<Option<(Stamp, Snapshot)>> {
        Ok(self
            .snapshots()?
            .into_iter()
            .filter_map(|s| Some((s.stamp()?, s)))
            .filter(|(s, _)| stamp.is_none_or(|want| s == want))
            .max_by_key(|(s, _)| *s))
    }

    /// Makes snapshot `id`, one of [`Restic::legacy_snapshots`] proven to
    /// hold this job's dump, this job's: its identity's tags are added.
    pub fn adopt(&self, id: &str) -> Result<()> {
        let [machine, unit] = self.identity.tags();
        self.run(&["tag", "--add", &format!("{machine},{unit}"), id])
            .map(drop)
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

    /// Sends what `write` writes as the copy of the dump stamped `stamp`: a
    /// new snapshot taken at that time.
    pub fn backup(
        &self,
        stamp: &Stamp,
        write: impl FnOnce(&mut dyn Write) -> Result<u64>,
    ) -> Result<Sent> {
        let file_name = self.file_name(stamp);
        let local = Local.from_utc_datetime(&stamp.utc());
        let time = local.format("%Y-%m-%d %H:%M:%S").to_string();
        let tags = format!("{},stamp={stamp}", self.job_tags());
        let mut c = self.command();
        if let Some(zone) = unambiguous_zone(&local) {
            c.env("TZ", zone);
        }
        c.args([
            "backup",
            "--json",
            "--quiet",
            "--stdin",
            "--stdin-filename",
            &file_name,
            "--host",
            &self.repository.host,
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

    /// The SHA-256 of the copy of the dump stamped `stamp` in snapshot
    /// `id`, read back.
    pub fn sha256(&self, id: &str, stamp: &Stamp) -> Result<String> {
        let mut sink = Hashing::new(io::sink());
        self.dump(id, stamp, &mut sink)?;
        Ok(sink.hex())
    }

    /// Writes the copy of the dump stamped `stamp` in snapshot `id` to `out`.
    pub fn dump(&self, id: &str, stamp: &Stamp, out: &mut dyn Write) -> Result<u64> {
        let mut c = self.command();
        c.args(["dump", id, &format!("/{}", self.file_name(stamp))]);
        let mut child = process::spawn(&mut c, "restic").map_err(|e| self.failed("dump", &e))?;
        let mut stdout = child.stdout().expect("stdout is piped");
        let copied = io::copy(&mut stdout, out);
        // Where `out` stopped taking it, restic ends on its closed pipe.
        drop(stdout);
        let waited = child.wait();
        let size = copied.map_err(|e| {
            Error::new(
                Exit::Failure,
                format!("cannot read back snapshot {id} from restic: {e}"),
            )
        })?;
        waited.map_err(|e| self.failed("dump", &e))?;
        Ok(size)
    }

    /// Removes the snapshots `ids`, which failed their check.
    pub fn forget_ids(&self, ids: &[&str]) -> Result<()> {
        let mut args = vec!["forget"];
        args.extend(ids);
        self.run(&args).map(drop)
    }

    /// Applies `policy` to this job's snapshots, by its identity, and to
    /// nothing else; returns how many it forgot. Their data stays until
    /// [`Restic::prune`]. Locks that a killed restic of this host left are
    /// removed first, so that they never block it.
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
        let tags = self.job_tags();
        let mut args = vec![
            "forget",
            "--json",
            "--tag",
            &tags,
            // One group: the snapshots' paths differ, one per dump, and
            // their host may have been renamed.
            "--group-by",
            "",
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
        Ok(groups
            .iter()
            .map(|g| g.remove.as_ref().map_or(0, Vec::len))
            .sum())
    }

    /// `restic prune`: the data of forgotten snapshots removed.
    pub fn prune(&self) -> Result<()> {
        self.run(&["prune"]).map(drop)
    }

    /// Which of `stamps` (one per snapshot, those of dumps not sent yet
    /// too) this restic's `forget` keeps under `policy`: the rules of
    /// [`retention::decide`], which are restic's from 0.16 on. Older
    /// restic does not keep the oldest snapshot for a rule that has counts
    /// left; that is 0.16's decision with one more snapshot, older than
    /// all and alone in every bucket, which takes that place.
    pub fn keeps(&self, stamps: &[Stamp], policy: &Policy) -> Vec<Stamp> {
        keeps(stamps, policy, self.version.is_none_or(|v| v >= (0, 16)))
    }

    /// `restic check --read-data-subset=SUBSET`.
    /// `restic check --read-data-subset=SUBSET`.
    pub fn check(&self, subset: &str) -> Result<()> {
        self.run(&["check", &format!("--read-data-subset={subset}")])
            .map(drop)
    }
}

fn keeps(stamps: &[Stamp], policy: &Policy, keeps_oldest: bool) -> Vec<Stamp> {
    let mut candidates: Vec<Candidate> = stamps
        .iter()
        .map(|stamp| Candidate {
            made: stamp.utc(),
            good: true,
        })
        .collect();
    let (Some(oldest), Some(now)) = (stamps.iter().min(), stamps.iter().max()) else {
        return Vec::new();
    };
    if !keeps_oldest {
        candidates.push(Candidate {
            made: oldest.utc() - chrono::Duration::days(400),
            good: true,
        });
    }
    retention::decide(&candidates, policy, &now.utc(), &Local)
        .into_iter()
        .zip(stamps)
        .filter(|(rules, _)| !rules.is_empty())
        .map(|(_, stamp)| *stamp)
        .collect()
}

/// `restic 0.14.0 compiled with go1.19.8 on linux/amd64` → (0, 14).
fn parse_version(said: &str) -> Option<(u32, u32)> {
    let number = said
        .split_whitespace()
        .skip_while(|w| *w != "restic")
        .nth(1)
        .unwrap_or_default();
    let mut parts = number.trim_start_matches('v').split('.');
    let mut next = || parts.next().and_then(|p| p.parse().ok());
    Some((next()?, next()?))
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

/// restic reads `--time` as a wall time of its local zone. In the hour that
/// clocks go back, that wall time names two instants and restic takes one
/// of them, so a dump of the other would be stored an hour off, judged in
/// the wrong bucket by `forget`, and sent again. There, the zone of the one
/// offset `local` has (`Etc/GMT-1` for UTC+1) says which instant is meant;
/// None where the wall time is unambiguous, or where no such zone file is
/// installed (restic would fall back to UTC).
fn unambiguous_zone(local: &DateTime<Local>) -> Option<String> {
    if !matches!(
        Local.from_local_datetime(&local.naive_local()),
        LocalResult::Ambiguous(..)
    ) {
        return None;
    }
    let offset = local.offset().fix().local_minus_utc();
    // The Etc zones' sign is POSIX's: west of Greenwich is positive.
    let zone = format!("Etc/GMT{:+}", -offset / 3600);
    (offset % 3600 == 0
        && std::path::Path::new("/usr/share/zoneinfo")
            .join(&zone)
            .is_file())
    .then_some(zone)
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

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n"),
            Some((0, 14))
        );
        assert_eq!(
            parse_version("restic 0.18.0 (v0.18.0-0-g1234) compiled with go1.24 on linux/amd64"),
            Some((0, 18))
        );
        assert_eq!(parse_version("debug: x\n"), None);
    }

    /// Three dumps on one day, the newest kept and 7 days: restic 0.16 and
    /// later keep the oldest too, as the daily rule has counts left; 0.14
    /// does not.
    #[test]
    fn before_0_16_restic_keeps_no_oldest_for_counts_left() {
        let stamps: Vec<Stamp> = ["20250601T100000Z", "20250601T110000Z", "20250601T120000Z"]
            .iter()
            .map(|s| Stamp::parse(s).unwrap())
            .collect();
        let policy = Policy {
            last: 1,
            hourly: 0,
            daily: 7,
            weekly: 0,
            monthly: 0,
        };
        assert_eq!(keeps(&stamps, &policy, true), [stamps[0], stamps[2]]);
        assert_eq!(keeps(&stamps, &policy, false), [stamps[2]]);
        assert_eq!(keeps(&[], &policy, false), []);
    }
}
