use crate::compress::Compression;
use jobkit::config::{self, Source};
use jobkit::dumpfile::{Form, Location};
use jobkit::retention::Policy;
use jobkit::{Error, Exit, Result};
use std::path::Path;
use std::time::Duration;

/// Where the settings are, for messages, when DUMP_SETTINGS is unset.
pub const DEFAULT_SETTINGS: &str = "/etc/default/dump-database";
/// Replaced in DUMP_COMMAND by where systemd put the service's credentials.
const CREDENTIALS: &str = "${CREDENTIALS_DIRECTORY}";

pub struct Config {
    /// Program and arguments, run without a shell.
    pub command: Vec<String>,
    /// DUMP_DIR, DUMP_NAME and DUMP_EXTENSION.
    pub location: Location,
    /// The DUMP_KEEP rules.
    pub policy: Policy,
    pub compression: Compression,
    pub threads: usize,
    /// DUMP_MEMORY_MAX: the memory the job may use, where its cgroup sets
    /// no lower limit.
    pub memory_max: Option<u64>,
    /// DUMP_CHECK: whether the stream is checked and its rows counted.
    pub check: bool,
    /// DUMP_SHRINK_LIMIT: the percentage of the newest good dump's raw size
    /// below which a dump is suspect; 0 for no limit.
    pub shrink_limit: u32,
    /// DUMP_FINISH_TIMEOUT: how long flushing, publishing and pruning may
    /// take once the command has ended.
    pub finish_timeout: Duration,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Config> {
        // Malformed values are reported before a missing DUMP_COMMAND, so the
        // whole file is right once the job stops saying "not configured".
        let location = Location::from_env(env)?;
        let policy = Policy::from_env(env)?;
        let compression = compression(env)?;
        let threads = config::number(
            env,
            "DUMP_THREADS",
            1,
            64,
            default_threads(available_cpus()),
        )?;
        let memory_max = config::size(env, "DUMP_MEMORY_MAX", 1 << 20)?;
        let check = check(env)?;
        let shrink_limit = config::number(env, "DUMP_SHRINK_LIMIT", 0, 100, 50)?;
        let finish_timeout = config::number(env, "DUMP_FINISH_TIMEOUT", 1, 86_400, 600)?;
        let settings = config::absolute_path(env, "DUMP_SETTINGS", DEFAULT_SETTINGS)?;
        let command = command(env, &settings)?;
        Ok(Config {
            command,
            location,
            policy,
            compression,
            threads: threads as usize,
            memory_max,
            check,
            shrink_limit,
            finish_timeout: Duration::from_secs(finish_timeout.into()),
        })
    }
}

/// DUMP_COMPRESS and the level of what it chose. Both levels are checked
/// whichever is chosen, so that a file is found wrong before it matters.
fn compression(env: &dyn Source) -> Result<Compression> {
    let gzip = config::number(env, "DUMP_GZIP_LEVEL", 1, 9, 6)?;
    // Levels above 19 need zstd's --ultra windows, of up to 128 MiB each.
    let zstd = config::number(env, "DUMP_ZSTD_LEVEL", 1, 19, 3)?;
    let form = match env.get("DUMP_COMPRESS") {
        None => Form::Gzip,
        Some(value) => Form::ALL
            .into_iter()
            .find(|f| value.to_str() == Some(f.setting()))
            .ok_or_else(|| {
                config::invalid(
                    "DUMP_COMPRESS",
                    &value,
                    "expected gzip, zstd or none (default gzip)",
                )
            })?,
    };
    Ok(match form {
        Form::Gzip => Compression::Gzip { level: gzip },
        Form::Zstd => Compression::Zstd {
            level: i32::try_from(zstd).expect("at most 19"),
        },
        Form::None => Compression::None,
    })
}

/// DUMP_CHECK: `auto` (the default) or `off`.
fn check(env: &dyn Source) -> Result<bool> {
    match env.get("DUMP_CHECK") {
        None => Ok(true),
        Some(v) if v == "auto" => Ok(true),
        Some(v) if v == "off" => Ok(false),
        Some(v) => Err(config::invalid(
            "DUMP_CHECK",
            &v,
            "expected auto or off (default auto)",
        )),
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

fn command(env: &dyn Source, settings: &Path) -> Result<Vec<String>> {
    let Some(value) = env.get("DUMP_COMMAND").filter(|v| !v.is_empty()) else {
        return Err(Error::new(
            Exit::NotConfigured,
            format!(
                "DUMP_COMMAND is not set, so there is nothing to dump; set it in {}, for \
                 example DUMP_COMMAND=\"pg_dump --no-password mydb\"",
                settings.display()
            ),
        ));
    };
    let words = value.to_str().map(shell_words::split);
    let words = match words {
        Some(Ok(words)) if !words.is_empty() => words,
        Some(Ok(_)) => {
            return Err(config::invalid(
                "DUMP_COMMAND",
                &value,
                "expected a command",
            ))
        }
        Some(Err(_)) => {
            return Err(config::invalid(
                "DUMP_COMMAND",
                &value,
                "a quote is not closed; quote words as a shell would",
            ))
        }
        None => {
            return Err(config::invalid(
                "DUMP_COMMAND",
                &value,
                "expected UTF-8 text",
            ))
        }
    };
    if !words.iter().any(|w| w.contains(CREDENTIALS)) {
        return Ok(words);
    }
    let credentials = env
        .get("CREDENTIALS_DIRECTORY")
        .and_then(|d| d.into_string().ok())
        .filter(|d| d.starts_with('/'));
    let Some(credentials) = credentials else {
        return Err(config::invalid(
            "DUMP_COMMAND",
            &value,
            "it uses ${CREDENTIALS_DIRECTORY}, which systemd sets only for a service with \
             LoadCredential=; start the job through its service",
        ));
    };
    Ok(words
        .into_iter()
        .map(|w| w.replace(CREDENTIALS, &credentials))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobkit::dumpfile::DEFAULT_DIR;
    use std::path::PathBuf;

    #[test]
    fn defaults() {
        let cfg = Config::from_env(&[("DUMP_COMMAND", "pg_dump 'my db'")]).unwrap();
        assert_eq!(cfg.command, ["pg_dump", "my db"]);
        assert_eq!(cfg.location.dir, PathBuf::from(DEFAULT_DIR));
        let (keep, name) = (cfg.policy.last, cfg.location.names.name());
        assert_eq!((keep, name), (5, "dump"));
        assert_eq!(cfg.compression, Compression::Gzip { level: 6 });
        assert_eq!((cfg.check, cfg.shrink_limit), (true, 50));
        assert_eq!(cfg.memory_max, None);
        let cfg = Config::from_env(&[
            ("DUMP_COMMAND", "x"),
            ("DUMP_CHECK", "off"),
            ("DUMP_SHRINK_LIMIT", "0"),
            ("DUMP_MEMORY_MAX", "1536M"),
        ])
        .unwrap();
        assert_eq!((cfg.check, cfg.shrink_limit), (false, 0));
        assert_eq!(cfg.memory_max, Some(1536 << 20));
        for bad in [
            ("DUMP_CHECK", "on"),
            ("DUMP_SHRINK_LIMIT", "101"),
            ("DUMP_MEMORY_MAX", "2GB"),
        ] {
            let err = Config::from_env(&[("DUMP_COMMAND", "x"), bad]).err();
            assert_eq!(err.map(|e| e.exit()), Some(Exit::Usage), "{bad:?}");
        }
    }

    #[test]
    fn compression_and_its_levels() {
        let with = |vars: &[(&str, &str)]| {
            let mut env = [("DUMP_COMMAND", "x"); 4];
            env[..vars.len()].copy_from_slice(vars);
            Config::from_env(&env).map(|c| c.compression)
        };
        assert_eq!(
            with(&[("DUMP_COMPRESS", "zstd")]).unwrap(),
            Compression::Zstd { level: 3 }
        );
        assert_eq!(
            with(&[("DUMP_COMPRESS", "zstd"), ("DUMP_ZSTD_LEVEL", "19")]).unwrap(),
            Compression::Zstd { level: 19 }
        );
        assert_eq!(
            with(&[("DUMP_COMPRESS", "gzip"), ("DUMP_GZIP_LEVEL", "9")]).unwrap(),
            Compression::Gzip { level: 9 }
        );
        assert_eq!(
            with(&[("DUMP_COMPRESS", "none")]).unwrap(),
            Compression::None
        );
        for bad in [
            [("DUMP_COMPRESS", "xz"), ("DUMP_GZIP_LEVEL", "6")],
            [("DUMP_COMPRESS", "ZSTD"), ("DUMP_GZIP_LEVEL", "6")],
            [("DUMP_COMPRESS", ""), ("DUMP_GZIP_LEVEL", "6")],
            [("DUMP_COMPRESS", "zstd"), ("DUMP_ZSTD_LEVEL", "0")],
            [("DUMP_COMPRESS", "zstd"), ("DUMP_ZSTD_LEVEL", "22")],
            [("DUMP_COMPRESS", "zstd"), ("DUMP_ZSTD_LEVEL", "-1")],
            // A bad level is an error whichever compression is chosen.
            [("DUMP_COMPRESS", "none"), ("DUMP_ZSTD_LEVEL", "fast")],
            [("DUMP_COMPRESS", "zstd"), ("DUMP_GZIP_LEVEL", "10")],
        ] {
            let err = with(&bad).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{bad:?}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
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
    fn credentials_directory_is_put_into_the_command() {
        let cfg = Config::from_env(&[
            (
                "DUMP_COMMAND",
                "mariadb-dump '--defaults-extra-file=${CREDENTIALS_DIRECTORY}/my.cnf' db",
            ),
            (
                "CREDENTIALS_DIRECTORY",
                "/run/credentials/dump-database.service",
            ),
        ])
        .unwrap();
        assert_eq!(
            cfg.command,
            [
                "mariadb-dump",
                "--defaults-extra-file=/run/credentials/dump-database.service/my.cnf",
                "db"
            ]
        );
        let err = Config::from_env(&[("DUMP_COMMAND", "x ${CREDENTIALS_DIRECTORY}/a")])
            .err()
            .unwrap();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(err.to_string().contains("LoadCredential="), "{err}");
        // Other variables are the command's own business.
        let cfg =
            Config::from_env(&[("DUMP_COMMAND", "x ${HOME} $CREDENTIALS_DIRECTORY")]).unwrap();
        assert_eq!(cfg.command, ["x", "${HOME}", "$CREDENTIALS_DIRECTORY"]);
    }

    #[test]
    fn not_configured_names_the_settings_file() {
        let err = Config::from_env(&[("DUMP_SETTINGS", "/etc/timerapps/dump-database/sales.conf")])
            .err()
            .unwrap();
        assert_eq!(err.exit(), Exit::NotConfigured);
        assert!(
            err.to_string()
                .contains("set it in /etc/timerapps/dump-database/sales.conf"),
            "{err}"
        );
    }
}
