use std::path::PathBuf;
use timerapps::config::{self, Source};
use timerapps::{Error, Exit, Result};

/// Where dumps go when DUMP_DIR is unset: the unit's `StateDirectory=`.
pub const DEFAULT_DIR: &str = "/var/lib/timerapps/dumps";

pub struct Config {
    /// Program and arguments, run without a shell.
    pub command: Vec<String>,
    pub dir: PathBuf,
    pub keep: usize,
    /// File-name prefix: dumps are `NAME-YYYYMMDDTHHMMSSZ.sql.gz`.
    pub name: String,
    pub level: u32,
    pub threads: usize,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Config> {
        // Malformed values are reported before a missing DUMP_COMMAND, so the
        // whole file is right once the job stops saying "not configured".
        let dir = config::absolute_path(env, "DUMP_DIR", DEFAULT_DIR)?;
        let keep = config::number(env, "DUMP_KEEP", 1, u32::MAX, 5)?;
        let level = config::number(env, "DUMP_GZIP_LEVEL", 1, 9, 6)?;
        let threads = config::number(
            env,
            "DUMP_THREADS",
            1,
            64,
            default_threads(available_cpus()),
        )?;
        let name = name(env)?;
        let command = command(env)?;
        Ok(Config {
            command,
            dir,
            keep: usize::try_from(keep).unwrap_or(usize::MAX),
            name,
            level,
            threads: threads as usize,
        })
    }
}

/// The CPUs this process may run on (affinity and cgroup quota included).
fn available_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(64) as u32)
}

/// One thread per CPU, but at most 4: pg_dump writes one stream at about
/// 250 MB/s, which 3 threads at level 6 (about 110 MB/s each) keep up with.
/// More would only take CPUs from the database and memory from the server:
/// each thread costs about 0.7 MiB.
fn default_threads(cpus: u32) -> u32 {
    cpus.clamp(1, 4)
}

fn name(env: &dyn Source) -> Result<String> {
    let Some(value) = env.get("DUMP_NAME") else {
        return Ok("dump".to_owned());
    };
    let valid = value.to_str().filter(|s| {
        (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    match valid {
        Some(s) => Ok(s.to_owned()),
        None => Err(config::invalid(
            "DUMP_NAME",
            &value,
            "expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (default dump)",
        )),
    }
}

fn command(env: &dyn Source) -> Result<Vec<String>> {
    let Some(value) = env.get("DUMP_COMMAND").filter(|v| !v.is_empty()) else {
        return Err(Error::new(
            Exit::NotConfigured,
            "DUMP_COMMAND is not set, so there is nothing to dump; set it in \
             /etc/default/dump-database, for example DUMP_COMMAND=\"pg_dump --no-password mydb\"",
        ));
    };
    let words = value.to_str().map(shell_words::split);
    match words {
        Some(Ok(words)) if !words.is_empty() => Ok(words),
        Some(Ok(_)) => Err(config::invalid(
            "DUMP_COMMAND",
            &value,
            "expected a command",
        )),
        Some(Err(_)) => Err(config::invalid(
            "DUMP_COMMAND",
            &value,
            "a quote is not closed; quote words as a shell would",
        )),
        None => Err(config::invalid(
            "DUMP_COMMAND",
            &value,
            "expected UTF-8 text",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let cfg = Config::from_env(&[("DUMP_COMMAND", "pg_dump 'my db'")]).unwrap();
        assert_eq!(cfg.command, ["pg_dump", "my db"]);
        assert_eq!(cfg.dir, PathBuf::from(DEFAULT_DIR));
        assert_eq!((cfg.keep, cfg.level, cfg.name.as_str()), (5, 6, "dump"));
    }

    #[test]
    fn threads_default_to_the_cpus_but_at_most_four() {
        assert_eq!([0, 1, 2, 4, 5, 64].map(default_threads), [1, 1, 2, 4, 4, 4]);
        let cfg = Config::from_env(&[("DUMP_COMMAND", "x")]).unwrap();
        assert_eq!(cfg.threads as u32, default_threads(available_cpus()));
        let cfg = Config::from_env(&[("DUMP_COMMAND", "x"), ("DUMP_THREADS", "16")]).unwrap();
        assert_eq!(cfg.threads, 16);
    }

    #[test]
    fn missing_command_is_not_configured_but_bad_values_come_first() {
        let err = Config::from_env(&[("DUMP_KEEP", "3")]).err().unwrap();
        assert_eq!(err.exit(), Exit::NotConfigured);
        let err = Config::from_env(&[("DUMP_KEEP", "x")]).err().unwrap();
        assert_eq!(err.exit(), Exit::Usage);
    }

    #[test]
    fn names() {
        for good in ["dump", "db1.main", "a-b_c"] {
            assert!(name(&[("DUMP_NAME", good)]).is_ok(), "{good}");
        }
        for bad in ["", ".x", "-x", "a/b", "a b", "é"] {
            assert!(name(&[("DUMP_NAME", bad)]).is_err(), "{bad}");
        }
    }
}
