//! The copy's settings, read once from the environment: the job's own dump
//! settings, where its copies go, which of them the repository keeps, and
//! where to record the result.

use jobkit::catalogue::COPY;
use jobkit::config::{self, non_empty, Source};
use jobkit::dumpfile::Location;
use jobkit::restic::Repository;
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
    Restic(ResticDestination),
    /// COPY_COMMAND, in words.
    Command(Vec<String>),
}

#[derive(Debug)]
pub struct ResticDestination {
    /// A password file of None fails the copy, naming the file the admin is
    /// to create.
    pub repository: Repository,
    pub policy: Policy,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Config> {
        let location = Location::from_env(env)?;
        let location_policy = Policy::from_env(env)?;
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
            (Some(location), None) => Some(Destination::Restic(ResticDestination {
                repository: Repository::from_env(env, location)?,
                policy: Policy::prefixed(env, "COPY_KEEP", &location_policy)?,
            })),
            (None, Some(command)) => Some(Destination::Command(command)),
            (None, None) => None,
        };
        let variable = COPY.record_variable;
        let result = match env.get(variable) {
            None => None,
            Some(_) => Some(config::absolute_path(env, variable, "")?),
        };
        Ok(Config {
            location,
            destination,
            result,
        })
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
        assert!(!r.repository.host.is_empty());
        assert_eq!(r.repository.password_file, None);
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
