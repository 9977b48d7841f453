//! The drill's settings, read once from the environment: the job's own
//! dump settings, where to make the throwaway server and where to record
//! the result.

use jobkit::config::{self, Source};
use jobkit::dumpfile::Location;
use jobkit::Result;
use std::path::PathBuf;

#[derive(Debug)]
pub struct Config {
    pub location: Location,
    pub tmpdir: PathBuf,
    pub result: Option<PathBuf>,
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Config> {
        let location = Location::from_env(env)?;
        let tmpdir = config::absolute_path(env, "DRILL_TMPDIR", "/var/tmp")?;
        let result = match env.get("DRILL_RESULT") {
            None => None,
            Some(_) => Some(config::absolute_path(env, "DRILL_RESULT", "")?),
        };
        Ok(Config {
            location,
            tmpdir,
            result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_malformed_values() {
        let c = Config::from_env(&[("DUMP_NAME", "shop")]).unwrap();
        assert_eq!(c.tmpdir, PathBuf::from("/var/tmp"));
        assert_eq!(c.result, None);
        assert_eq!(c.location.names.name(), "shop");
        for (name, value) in [("DRILL_TMPDIR", "tmp"), ("DRILL_RESULT", "r.json")] {
            let e = Config::from_env(&[(name, value)]).unwrap_err();
            assert_eq!(e.exit(), jobkit::Exit::Usage);
            assert!(e.to_string().starts_with(&format!("{name}=")), "{e}");
        }
    }
}
