//! The drill's settings, read once from the environment: the job's own
//! dump settings, where to make the throwaway server, the free space it
//! keeps there, and where to record the result.

use jobkit::catalogue::DRILL;
use jobkit::config::{self, Source};
use jobkit::dumpfile::Location;
use jobkit::human::si;
use jobkit::retention::Policy;
use jobkit::Result;
use std::path::PathBuf;

#[derive(Debug)]
pub struct Config {
    pub location: Location,
    pub tmpdir: PathBuf,
    pub reserve: Reserve,
    pub result: Option<PathBuf>,
}

/// The free space a drill leaves on DRILL_TMPDIR's file system
/// (`DRILL_RESERVE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// 10 % of the file system, at least [`FLOOR`], at most a quarter of it:
    /// on a small disk a tenth is too little to keep its other users
    /// going, and on a tiny one a fixed floor would leave the drill no room.
    Default,
    /// This percentage of the file system.
    Percent(u8),
    /// This many bytes.
    Bytes(u64),
}

/// The default reserve's absolute floor.
pub const FLOOR: u64 = 1 << 30;

impl Reserve {
    /// The bytes it keeps free on a file system of `total` bytes.
    pub fn of(self, total: u64) -> u64 {
        match self {
            Reserve::Default => (total / 10).max(FLOOR.min(total / 4)),
            Reserve::Percent(p) => total / 100 * u64::from(p),
            Reserve::Bytes(b) => b,
        }
    }

    /// How it reads in a message.
    pub fn said(self) -> String {
        match self {
            Reserve::Default => format!(
                "the default of DRILL_RESERVE: 10 % of the file system, at least {} and at \
                 most a quarter of it",
                si(FLOOR)
            ),
            Reserve::Percent(p) => format!("DRILL_RESERVE={p}%"),
            Reserve::Bytes(b) => format!("DRILL_RESERVE={}", si(b)),
        }
    }

    fn from_env(env: &dyn Source) -> Result<Reserve> {
        let Some(value) = env.get("DRILL_RESERVE") else {
            return Ok(Reserve::Default);
        };
        value.to_str().and_then(parse_reserve).ok_or_else(|| {
            config::invalid(
                "DRILL_RESERVE",
                &value,
                "expected a percentage of the file system from 0% to 90%, or a size in \
                 bytes with an optional K, M, G or T (powers of 1024), such as 2G (default \
                 10 %, at least 1 GiB, at most a quarter of the file system)",
            )
        })
    }
}

fn parse_reserve(text: &str) -> Option<Reserve> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(percent) = text.strip_suffix('%') {
        return digits(percent)
            .then(|| percent.parse::<u8>().ok())
            .flatten()
            .filter(|p| *p <= 90)
            .map(Reserve::Percent);
    }
    config::bytes(text).map(Reserve::Bytes)
}

impl Config {
    pub fn from_env(env: &dyn Source) -> Result<Config> {
        let location = Location::from_env(env)?;
        // The dump job's rules, read from the same settings: malformed,
        // they fail the drill as they fail the job.
        Policy::from_env(env)?;
        let tmpdir = config::absolute_path(env, "DRILL_TMPDIR", "/var/tmp")?;
        let reserve = Reserve::from_env(env)?;
        let variable = DRILL.record_variable;
        let result = match env.get(variable) {
            None => None,
            Some(_) => Some(config::absolute_path(env, variable, "")?),
        };
        Ok(Config {
            location,
            tmpdir,
            reserve,
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
        assert_eq!(c.reserve, Reserve::Default);
        assert_eq!(c.result, None);
        assert_eq!(c.location.names.name(), "shop");
        for (name, value) in [
            ("DRILL_TMPDIR", "tmp"),
            ("DRILL_RESULT", "r.json"),
            ("DRILL_RESERVE", "ten"),
        ] {
            let e = Config::from_env(&[(name, value)]).unwrap_err();
            assert_eq!(e.exit(), jobkit::Exit::Usage);
            assert!(e.to_string().starts_with(&format!("{name}=")), "{e}");
        }
    }

    #[test]
    fn the_reserve_is_a_percentage_or_a_size() {
        let reserve = |v: &str| Config::from_env(&[("DRILL_RESERVE", v)]).map(|c| c.reserve);
        for (value, expected) in [
            ("10%", Reserve::Percent(10)),
            ("0%", Reserve::Percent(0)),
            ("90%", Reserve::Percent(90)),
            ("0", Reserve::Bytes(0)),
            ("4096", Reserve::Bytes(4096)),
            ("512K", Reserve::Bytes(512 << 10)),
            ("64M", Reserve::Bytes(64 << 20)),
            ("2G", Reserve::Bytes(2 << 30)),
            ("1T", Reserve::Bytes(1 << 40)),
        ] {
            assert_eq!(reserve(value).unwrap(), expected, "{value}");
        }
        for bad in [
            "",
            "91%",
            "-1%",
            "1.5%",
            "%",
            "10 %",
            "G",
            "2g",
            "2GB",
            "1.5G",
            "+2G",
            " 2G",
            "99999999999T",
        ] {
            let e = reserve(bad).unwrap_err();
            assert_eq!(e.exit(), jobkit::Exit::Usage);
            let text = e.to_string();
            assert!(text.starts_with(&format!("DRILL_RESERVE={bad:?} is invalid")));
            assert!(!text.contains('\n'), "{text}");
        }
    }

    #[test]
    fn the_default_reserve_is_a_tenth_at_least_a_gib_at_most_a_quarter() {
        const GIB: u64 = 1 << 30;
        for (total, kept) in [
            (100 * GIB, 10 * GIB),
            (20 * GIB, 2 * GIB),
            (8 * GIB, GIB),
            (2 * GIB, GIB / 2),
            (256 << 20, 64 << 20),
        ] {
            assert_eq!(Reserve::Default.of(total), kept, "{total}");
        }
        assert_eq!(Reserve::Percent(10).of(1000), 100);
        assert_eq!(Reserve::Bytes(5).of(1000), 5);
    }
}
