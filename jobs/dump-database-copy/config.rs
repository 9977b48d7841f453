//! The copy's settings, read once from the environment: the job's own dump
//! settings, where its copies go, which of them the repository keeps, and
//! where to record the result.

use jobkit::config::{self, Source};
use jobkit::dumpfile::Location;
use jobkit::retention::Policy;
use jobkit::Result;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug)]
pub struct Config {
    pub location: Location,
    pub destination: Option<Destination>,
    pub result: Option<PathBuf>,
}

/// Where the copies go.
#[derive(Debug)]
pub enum Destination {
    Restic(Restic),
    /// COPY_COMMAND, in words.
    Command(Vec<String>),
}

#[derive(Debug)]
pub struct Restic {
    pub repository: String,
    /// None: the copy fails, naming the file the admin is to create.
    pub password_file: Option<PathBuf>,
    pub policy: Policy,
    pub host: String,
    /// How long restic may take to open the repository: newer restic
    /// retries an unreachable one for 15 minutes.
    pub connect_timeout: std::time::Duration,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Config> {
        let location = Location::from_env(env)?;
        let repository = non_empty(env, "COPY_REPOSITORY")?;
        let command = match non_empty(env, "COPY_COMMAND")? {
            None => None,
            Some(text) => Some(words(&text)?),
        };
        let destination = match (repository, command) {
            (Some(_), Some(_)) => {
                return Err(jobkit::Error::new(
                    jobkit::Exit::Usage,
                    "COPY_REPOSITORY and COPY_COMMAND are both set: set one of them",
                ))
            }
            (Some(repository), None) => Some(Destination::Restic(Restic {
                repository,
                password_file: match env.get("COPY_PASSWORD_FILE") {
                    None => None,
                    Some(_) => Some(config::absolute_path(env, "COPY_PASSWORD_FILE", "")?),
                },
                policy: Policy::prefixed(env, "COPY_KEEP", &location.policy)?,
                host: match non_empty(env, "COPY_HOST")? {
                    Some(host) => host,
                    None => host_name(),
                },
                connect_timeout: std::time::Duration::from_secs(u64::from(config::number(
                    env,
                    "COPY_CONNECT_TIMEOUT",
                    1,
                    86_400,
                    120,
                )?)),
            })),
            (None, Some(command)) => Some(Destination::Command(command)),
            (None, None) => None,
        };
        let result = match env.get("COPY_RESULT") {
            None => None,
            Some(_) => Some(config::absolute_path(env, "COPY_RESULT", "")?),
        };
        Ok(Config {
            location,
            destination,
            result,
        })
    }
}

/// The variable's value, None when unset or empty; one line of text.
fn non_empty(env: &dyn Source, name: &str) -> Result<Option<String>> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    match value.to_str() {
        Some("") => Ok(None),
        Some(s) if !s.contains(['\n', '\r']) => Ok(Some(s.to_owned())),
        _ => Err(config::invalid(name, &value, "expected one line of text")),
    }
}

fn words(text: &str) -> Result<Vec<String>> {
    match shell_words::split(text) {
        Ok(words) if !words.is_empty() => Ok(words),
        _ => Err(config::invalid(
            "COPY_COMMAND",
            &OsString::from(text),
            "expected a command, quoted as in a shell",
        )),
    }
}

/// This machine's host name, as restic itself would record it.
fn host_name() -> String {
    // SAFETY: uname fills the struct it is given.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return "localhost".to_owned();
    }
    // SAFETY: the kernel NUL-terminates nodename.
    unsafe { std::ffi::CStr::from_ptr(name.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_malformed_values() {
        let c = Config::from_env(&[("DUMP_NAME", "shop")]).unwrap();
        assert!(c.destination.is_none());
        assert_eq!(c.result, None);
        let c = Config::from_env(&[
            ("COPY_REPOSITORY", "rest:http://backup:8000/"),
            ("DUMP_KEEP", "3"),
            ("DUMP_KEEP_DAILY", "7"),
            ("COPY_KEEP_DAILY", "30"),
        ])
        .unwrap();
        let Some(Destination::Restic(r)) = c.destination else {
            panic!("{c:?}")
        };
        assert_eq!((r.policy.last, r.policy.daily), (3, 30));
        assert!(!r.host.is_empty());
        assert_eq!(r.password_file, None);
        let c = Config::from_env(&[("COPY_COMMAND", "rsync -a \"$X\" host:")]).unwrap();
        let Some(Destination::Command(words)) = c.destination else {
            panic!("{c:?}")
        };
        assert_eq!(words, ["rsync", "-a", "$X", "host:"]);
        for env in [
            [("COPY_RESULT", "r.json"), ("COPY_REPOSITORY", "")],
            [("COPY_REPOSITORY", "x"), ("COPY_PASSWORD_FILE", "pw")],
            [("COPY_REPOSITORY", "x"), ("COPY_KEEP", "0")],
            [("COPY_REPOSITORY", "x"), ("COPY_CONNECT_TIMEOUT", "0")],
            [("COPY_REPOSITORY", "x"), ("COPY_COMMAND", "true")],
            [("COPY_COMMAND", "'open"), ("DUMP_NAME", "shop")],
        ] {
            let e = Config::from_env(&env).unwrap_err();
            assert_eq!(e.exit(), jobkit::Exit::Usage, "{env:?}");
        }
    }
}
