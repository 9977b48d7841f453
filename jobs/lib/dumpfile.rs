//! What a dump file is, defined once: the names that dump-database
//! publishes, prunes and sweeps, so that every part that looks at a dump
//! directory agrees on which files are dumps and which are not.
//!
//! For `DUMP_NAME` NAME, in its `DUMP_DIR`:
//! - a dump is `NAME-YYYYMMDDTHHMMSSZ.sql.gz`, stamped with the UTC second
//!   its run started; the stamp must be a real date and time;
//! - the file a run writes before publishing is
//!   `.NAME-YYYYMMDDTHHMMSSZ.sql.gz.TAG.part`, with TAG 8 lowercase hex digits
//!   drawn by that run (0.1.0 wrote `.NAME-STAMP.sql.gz.part`, still
//!   recognised so that an upgrade sweeps what it left);
//! - the lock of the runs of NAME is `.NAME.lock`.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use std::fmt;
use std::time::Duration;

/// The ending of every dump.
pub const SUFFIX: &str = ".sql.gz";
const TEMP_SUFFIX: &str = ".part";
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// The UTC second in a dump's name. Orders as time does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(NaiveDateTime);

impl Stamp {
    /// The stamp of the second `time` falls in.
    pub fn of(time: DateTime<Utc>) -> Stamp {
        let second = time.naive_utc().with_nanosecond(0);
        Stamp(second.expect("a whole second is a valid time"))
    }

    /// `YYYYMMDDTHHMMSSZ`, exactly 16 characters naming a real time.
    pub fn parse(text: &str) -> Option<Stamp> {
        let b = text.as_bytes();
        let shaped = b.len() == 16
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'T'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'Z';
        if !shaped {
            return None;
        }
        NaiveDateTime::parse_from_str(text, STAMP_FORMAT)
            .ok()
            .map(Stamp)
    }

    /// How much later than `earlier` this stamp is; zero if it is not.
    pub fn after(&self, earlier: &Stamp) -> Duration {
        (self.0 - earlier.0).to_std().unwrap_or_default()
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(STAMP_FORMAT))
    }
}

/// The files of one `DUMP_NAME`.
#[derive(Clone, Debug)]
pub struct Names {
    name: String,
}

impl Names {
    pub fn new(name: &str) -> Names {
        Names {
            name: name.to_owned(),
        }
    }

    pub fn dump(&self, stamp: &Stamp) -> String {
        format!("{}-{stamp}{SUFFIX}", self.name)
    }

    pub fn temp(&self, stamp: &Stamp, tag: u32) -> String {
        format!(".{}.{tag:08x}{TEMP_SUFFIX}", self.dump(stamp))
    }

    pub fn lock(&self) -> String {
        format!(".{}.lock", self.name)
    }

    /// The stamp of `file` if it is named as a dump of this name.
    pub fn dump_stamp(&self, file: &str) -> Option<Stamp> {
        let stamp = file
            .strip_prefix(self.name.as_str())?
            .strip_prefix('-')?
            .strip_suffix(SUFFIX)?;
        Stamp::parse(stamp)
    }

    /// Whether `file` is named as a temp file of a run of this name.
    pub fn is_temp(&self, file: &str) -> bool {
        let Some(rest) = file
            .strip_prefix('.')
            .and_then(|f| f.strip_suffix(TEMP_SUFFIX))
        else {
            return false;
        };
        let untagged = match rest.rsplit_once('.') {
            Some((dump, tag))
                if tag.len() == 8
                    && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                dump
            }
            _ => rest,
        };
        self.dump_stamp(untagged).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn stamp(s: &str) -> Stamp {
        Stamp::parse(s).unwrap()
    }

    #[test]
    fn stamps_parse_print_and_order_as_time() {
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 0).unwrap();
        let s = Stamp::of(t + chrono::Duration::milliseconds(999));
        assert_eq!(s.to_string(), "20261121T101500Z");
        assert_eq!(stamp("20261121T101500Z"), s);
        assert!(stamp("20261121T101500Z") < stamp("20261121T101501Z"));
        assert_eq!(
            stamp("20261122T131700Z").after(&s),
            Duration::from_secs(27 * 3600 + 2 * 60)
        );
        assert_eq!(s.after(&stamp("20261122T131700Z")), Duration::ZERO);
        for bad in [
            "20261121T1015Z",
            "20261121 101500Z",
            "20261321T101500Z",
            "20261121T250000Z",
            "20261121T101500z",
            "2026112１T101500Z",
        ] {
            assert_eq!(Stamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_own_names_match() {
        let names = Names::new("dump");
        let s = stamp("20261121T101500Z");
        assert_eq!(names.dump(&s), "dump-20261121T101500Z.sql.gz");
        assert_eq!(names.dump_stamp("dump-20261121T101500Z.sql.gz"), Some(s));
        assert_eq!(names.lock(), ".dump.lock");
        for other in [
            "dump-20261121T101500Z.sql",
            "dump-20261121T1015Z.sql.gz",
            "dump-20261399T101500Z.sql.gz",
            "dump-other-20261121T101500Z.sql.gz",
            "xdump-20261121T101500Z.sql.gz",
            "dump-20261121T101500Z.sql.gz.part",
            ".dump.lock",
            "notes.txt",
        ] {
            assert_eq!(names.dump_stamp(other), None, "{other}");
        }
        let temp = names.temp(&s, 0xab12);
        assert_eq!(temp, ".dump-20261121T101500Z.sql.gz.0000ab12.part");
        for own in [temp.as_str(), ".dump-20261121T101500Z.sql.gz.part"] {
            assert!(names.is_temp(own), "{own}");
        }
        for other in [
            "dump-20261121T101500Z.sql.gz",
            ".dump-20261121T101500Z.sql.gz.0000AB12.part",
            ".dump-20261121T101500Z.sql.gz.ab12.part",
            ".dump-20261121T101500Z.sql.gz.x.part",
            ".other-20261121T101500Z.sql.gz.0000ab12.part",
            ".dump-20261121T101500Z.sql.gz",
        ] {
            assert!(!names.is_temp(other), "{other}");
        }
    }
}
