//! The dump store: the one owner of a dump directory. What a dump file is
//! is defined here once, with the names that dump-database publishes,
//! prunes and sweeps, so that every part that looks at a dump directory
//! agrees on which files are dumps and which are not; the store lists them
//! with their manifests and the retention plan ([`plan`]), reads them back
//! ([`read`]), and makes every write there ([`write`]).
//!
//! For `DUMP_NAME` NAME and `DUMP_EXTENSION` EXT, in its `DUMP_DIR`:
//! - a dump is `NAME-YYYYMMDDTHHMMSSZ.EXT` followed by the suffix of its
//!   [`Form`]: `.gz`, `.zst` or nothing. It is stamped with the UTC second
//!   its run started; the stamp must be a real date and time. Dumps of
//!   every form count together, so that changing the compression rotates
//!   the old form out in time order;
//! - the file a run writes before publishing a dump or a manifest is its
//!   name with a dot before it and `.TAG.part` after it, TAG being 8 lowercase hex digits
//!   drawn by that run (0.1.0 wrote `.NAME-STAMP.sql.gz.part`, still
//!   recognised so that an upgrade sweeps what it left);
//! - a dump's manifest ([`manifest`]) is its name followed by
//!   `.manifest.json`; a manifest whose dump is gone is pruned. It is read
//!   only as a regular file, never through a symlink, at most
//!   [`manifest::MAX_BYTES`], and trusted only when it names its dump, form
//!   and stored size ([`Dump::manifest`]; else a [`Flaw`]);
//! - the lock of the runs of NAME is `.NAME.lock`; `timerapps accept` takes
//!   it too before it rewrites a manifest.
//!
//! [`Location`] reads where a job's dumps are from the variables the job
//! and the `timerapps` command both read.

pub mod manifest;
pub mod plan;
pub mod read;
pub mod write;

pub use manifest::Manifest;

use crate::catalogue::DUMPS_DIR;
use crate::config::{self, Source};
use crate::host::safe;
use crate::Result;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where dumps go when DUMP_DIR is unset: the default job's
/// `StateDirectory=`, its own directory in [`DUMPS_DIR`], beside the
/// instances' (`catalogue::Job::dumps_name`).
pub const DEFAULT_DIR: &str = "/var/lib/timerapps/dumps/dump-database";

/// Where one job keeps its dumps: DUMP_DIR, DUMP_NAME and DUMP_EXTENSION.
#[derive(Clone, Debug)]
pub struct Location {
    pub dir: PathBuf,
    pub names: Names,
}

impl Location {
    pub fn from_env(env: &dyn Source) -> Result<Location> {
        let dir = config::absolute_path(env, "DUMP_DIR", DEFAULT_DIR)?;
        // Every unit there is shown its own directory only: dumps kept in it
        // would be hidden from their own drill and copy.
        if dir == Path::new(DUMPS_DIR) {
            return Err(config::invalid(
                "DUMP_DIR",
                dir.as_os_str(),
                &format!(
                    "it holds the dump directories of every job and instance, not dumps: \
                     unset DUMP_DIR to keep the default job's dumps in {DEFAULT_DIR} (an \
                     instance's in {DUMPS_DIR}/NAME), and move its dumps there"
                ),
            ));
        }
        Ok(Location {
            dir,
            names: Names::new(&name(env)?, &extension(env)?),
        })
    }
}

/// DUMP_EXTENSION: one word, so that the form's suffix is always the last
/// one and a name reads the same to the job and to the admin.
fn extension(env: &dyn Source) -> Result<String> {
    let Some(value) = env.get("DUMP_EXTENSION") else {
        return Ok(DEFAULT_EXTENSION.to_owned());
    };
    match value.to_str().filter(|s| valid_extension(s)) {
        Some(s) => Ok(s.to_owned()),
        None => Err(config::invalid(
            "DUMP_EXTENSION",
            &value,
            "expected 1 to 16 letters, digits, '_' or '-', without dots and other than gz, \
             zst, part or lock: the compression adds its own suffix (default sql)",
        )),
    }
}

fn valid_extension(s: &str) -> bool {
    (1..=16).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        && !Form::ALL.iter().any(|f| f.suffix().get(1..) == Some(s))
        && !matches!(s, "part" | "lock")
}

/// The rule for a DUMP_NAME, and so for an instance's name: 1 to 64
/// letters, digits, `.`, `_` or `-`, starting with a letter or digit. Such a
/// name needs no escaping in a unit name or a file name, and cannot be
/// mistaken for a hidden file, a path or an option.
pub const NAME_RULE: &str =
    "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit";

/// Whether `name` follows [`NAME_RULE`].
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn name(env: &dyn Source) -> Result<String> {
    let Some(value) = env.get("DUMP_NAME") else {
        return Ok("dump".to_owned());
    };
    match value.to_str().filter(|s| valid_name(s)) {
        Some(s) => Ok(s.to_owned()),
        None => Err(config::invalid(
            "DUMP_NAME",
            &value,
            &format!("expected {NAME_RULE} (default dump)"),
        )),
    }
}

/// A published dump: a regular file named as a dump of its name.
#[derive(Clone, Debug)]
pub struct Dump {
    pub stamp: Stamp,
    pub form: Form,
    pub path: PathBuf,
    pub size: u64,
}

impl Dump {
    /// Where its manifest is.
    pub fn manifest_path(&self) -> PathBuf {
        let mut path = self.path.clone().into_os_string();
        path.push(manifest::SUFFIX);
        PathBuf::from(path)
    }

    /// Its manifest, if it has one that reads and matches it: one that
    /// names this file, its form and its stored size. It is read as
    /// [`safe::read`] reads: never through a symbolic link, a regular file
    /// only, at most [`manifest::MAX_BYTES`]. `Ok(None)`: it has none.
    pub fn manifest(&self) -> std::result::Result<Option<Manifest>, Flaw> {
        let path = self.manifest_path();
        let bytes = match safe::read(&path, manifest::MAX_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Flaw::Unreadable(format!(
                    "its manifest {} cannot be read: {e}",
                    path.display()
                )))
            }
        };
        let manifest = Manifest::from_slice(&bytes).map_err(|e| {
            Flaw::Damaged(format!("its manifest {} is damaged: {e}", path.display()))
        })?;
        let file = self.path.file_name().unwrap_or_default().to_string_lossy();
        let differs = if manifest.dump != file {
            Some(format!("it is the manifest of {}", manifest.dump))
        } else if manifest.form != self.form {
            Some(format!(
                "it says {}, the file is {}",
                manifest.form, self.form
            ))
        } else if manifest.stored != self.size {
            Some(format!(
                "it says {} bytes were stored, the file has {}",
                manifest.stored, self.size
            ))
        } else {
            None
        };
        match differs {
            Some(how) => Err(Flaw::Mismatch(format!(
                "its manifest {} does not match it: {how}",
                path.display()
            ))),
            None => Ok(Some(manifest)),
        }
    }
}

/// Why a dump's manifest cannot be trusted. Such a dump is never compared
/// with, never counted toward a retention rule, and never removed by one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// It has none, where an older dump has one: a dump made since
    /// manifests exist always has its own.
    Missing,
    /// Not a manifest: cut short, overwritten, not JSON of one.
    Damaged(String),
    /// A manifest of another file, form or size.
    Mismatch(String),
    /// It cannot be read: a symbolic link, FIFO, device or other file that
    /// is no regular file, larger than a manifest can be, or an I/O error.
    Unreadable(String),
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flaw::Missing => f.write_str("it has no manifest, where an older dump has one"),
            Flaw::Damaged(why) | Flaw::Mismatch(why) | Flaw::Unreadable(why) => f.write_str(why),
        }
    }
}

/// How a dump's bytes are stored: compressed by the job, or as the dump
/// command wrote them (`none`, for a command that compresses itself, such
/// as `pg_dump -Fc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    Gzip,
    Zstd,
    None,
}

impl Form {
    pub const ALL: [Form; 3] = [Form::Gzip, Form::Zstd, Form::None];

    /// The DUMP_COMPRESS value that chooses it.
    pub fn setting(self) -> &'static str {
        match self {
            Form::Gzip => "gzip",
            Form::Zstd => "zstd",
            Form::None => "none",
        }
    }

    /// What follows the extension in the name of a dump of this form.
    pub fn suffix(self) -> &'static str {
        match self {
            Form::Gzip => ".gz",
            Form::Zstd => ".zst",
            Form::None => "",
        }
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.setting())
    }
}

/// DUMP_EXTENSION when unset.
pub const DEFAULT_EXTENSION: &str = "sql";
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

    /// The UTC time it names.
    pub fn utc(&self) -> NaiveDateTime {
        self.0
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.and_utc().timestamp()
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

/// The files of one `DUMP_NAME` with one `DUMP_EXTENSION`.
#[derive(Clone, Debug)]
pub struct Names {
    name: String,
    extension: String,
}

impl Names {
    pub fn new(name: &str, extension: &str) -> Names {
        Names {
            name: name.to_owned(),
            extension: extension.to_owned(),
        }
    }

    pub fn dump(&self, stamp: &Stamp, form: Form) -> String {
        format!("{}-{stamp}.{}{}", self.name, self.extension, form.suffix())
    }

    pub fn temp(&self, stamp: &Stamp, form: Form, tag: u32) -> String {
        format!(".{}.{tag:08x}{TEMP_SUFFIX}", self.dump(stamp, form))
    }

    /// The manifest of the dump `stamp` in `form`.
    pub fn manifest(&self, stamp: &Stamp, form: Form) -> String {
        format!("{}{}", self.dump(stamp, form), manifest::SUFFIX)
    }

    /// The temp file a manifest is written to before it is published.
    pub fn manifest_temp(&self, stamp: &Stamp, form: Form, tag: u32) -> String {
        format!(".{}.{tag:08x}{TEMP_SUFFIX}", self.manifest(stamp, form))
    }

    /// The stamp and form of the dump whose manifest `file` is named as.
    pub fn parse_manifest(&self, file: &str) -> Option<(Stamp, Form)> {
        self.parse(file.strip_suffix(manifest::SUFFIX)?)
    }

    pub fn lock(&self) -> String {
        format!(".{}.lock", self.name)
    }

    /// The stamp and form of `file` if it is named as a dump of this name.
    pub fn parse(&self, file: &str) -> Option<(Stamp, Form)> {
        let rest = file.strip_prefix(self.name.as_str())?.strip_prefix('-')?;
        let (stamp, rest) = (rest.get(..16)?, rest.get(16..)?);
        let suffix = rest
            .strip_prefix('.')?
            .strip_prefix(self.extension.as_str())?;
        let form = Form::ALL.into_iter().find(|f| f.suffix() == suffix)?;
        Some((Stamp::parse(stamp)?, form))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dumps of this name in `dir`, newest first. Entries named as
    /// dumps that are not regular files (symlinks included) are not dumps.
    pub fn dumps(&self, dir: &Path) -> io::Result<Vec<Dump>> {
        let mut dumps = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let Some((stamp, form)) = entry.file_name().to_str().and_then(|f| self.parse(f)) else {
                continue;
            };
            let path = entry.path();
            match path.symlink_metadata() {
                Ok(meta) if meta.is_file() => dumps.push(Dump {
                    stamp,
                    form,
                    path,
                    size: meta.len(),
                }),
                _ => {}
            }
        }
        dumps.sort_unstable_by_key(|d| std::cmp::Reverse(d.stamp));
        Ok(dumps)
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
        self.parse(untagged).is_some() || self.parse_manifest(untagged).is_some()
    }
}

/// Whether `file` is a lock or a temp file that runs of some DUMP_NAME
/// with some DUMP_EXTENSION leave in their DUMP_DIR: the files that are
/// never dumps, which the package sweeps when it is removed.
pub fn is_run_file(file: &str) -> bool {
    if let Some(name) = file.strip_prefix('.').and_then(|f| f.strip_suffix(".lock")) {
        if valid_name(name) {
            return true;
        }
    }
    // `.NAME-STAMP.EXT[.gz|.zst][.TAG].part`: NAME may hold '-', so try
    // each one as the one before the stamp.
    let Some(temp) = file
        .strip_prefix('.')
        .and_then(|f| f.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    temp.match_indices('-').any(|(at, _)| {
        let (name, rest) = (&temp[..at], &temp[at + 1..]);
        // After the stamp and its dot: the extension, up to the next dot.
        let ext = rest.get(17..).and_then(|r| r.split('.').next());
        valid_name(name)
            && ext.is_some_and(|ext| valid_extension(ext) && Names::new(name, ext).is_temp(file))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Manager, Program, Shape};
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
        let names = Names::new("dump", "sql");
        let s = stamp("20261121T101500Z");
        assert_eq!(names.dump(&s, Form::Gzip), "dump-20261121T101500Z.sql.gz");
        assert_eq!(names.dump(&s, Form::Zstd), "dump-20261121T101500Z.sql.zst");
        assert_eq!(names.dump(&s, Form::None), "dump-20261121T101500Z.sql");
        for form in Form::ALL {
            assert_eq!(names.parse(&names.dump(&s, form)), Some((s, form)));
        }
        assert_eq!(names.lock(), ".dump.lock");
        for other in [
            "dump-20261121T101500Z.sql.bz2",
            "dump-20261121T101500Z.sql.gz.zst",
            "dump-20261121T101500Z.dump",
            "dump-20261121T101500Z.sqlx",
            "dump-20261121T101500Z.gz",
            "dump-20261121T101500Z",
            "dump-20261121T1015Z.sql.gz",
            "dump-20261399T101500Z.sql.gz",
            "dump-other-20261121T101500Z.sql.gz",
            "xdump-20261121T101500Z.sql.gz",
            "dump-20261121T101500Z.sql.gz.part",
            ".dump.lock",
            "notes.txt",
        ] {
            assert_eq!(names.parse(other), None, "{other}");
        }
        let custom = Names::new("dump", "dump");
        assert_eq!(
            custom.parse("dump-20261121T101500Z.dump"),
            Some((s, Form::None))
        );
        assert_eq!(custom.parse("dump-20261121T101500Z.sql"), None);
        let temp = names.temp(&s, Form::Gzip, 0xab12);
        assert_eq!(temp, ".dump-20261121T101500Z.sql.gz.0000ab12.part");
        let zst = names.temp(&s, Form::Zstd, 7);
        let plain = names.temp(&s, Form::None, 7);
        for own in [
            temp.as_str(),
            &zst,
            &plain,
            ".dump-20261121T101500Z.sql.gz.part",
        ] {
            assert!(names.is_temp(own), "{own}");
        }
        for other in [
            "dump-20261121T101500Z.sql.gz",
            ".dump-20261121T101500Z.sql.gz.0000AB12.part",
            ".dump-20261121T101500Z.sql.gz.ab12.part",
            ".dump-20261121T101500Z.sql.gz.x.part",
            ".dump-20261121T101500Z.sql.xz.00000007.part",
            ".other-20261121T101500Z.sql.gz.0000ab12.part",
            ".dump-20261121T101500Z.sql.gz",
        ] {
            assert!(!names.is_temp(other), "{other}");
        }
    }

    #[test]
    fn run_files_of_any_name_and_extension() {
        let s = stamp("20261121T101500Z");
        let names = Names::new("db-main.x", "dump");
        for own in [
            ".dump.lock".to_owned(),
            names.lock(),
            names.temp(&s, Form::Gzip, 0xab12),
            names.temp(&s, Form::None, 1),
            Names::new("dump", "sql").temp(&s, Form::Zstd, 7),
            ".dump-20261121T101500Z.sql.gz.part".to_owned(),
        ] {
            assert!(is_run_file(&own), "{own}");
        }
        for other in [
            names.dump(&s, Form::Gzip),
            ".lock".to_owned(),
            "..lock".to_owned(),
            ".-x.lock".to_owned(),
            ".notes.part".to_owned(),
            ".dump-20261121T101500Z.sql.xz.part".to_owned(),
            ".dump-2026.sql.gz.part".to_owned(),
            "dump.lock".to_owned(),
            ".bash_history".to_owned(),
        ] {
            assert!(!is_run_file(&other), "{other}");
        }
    }

    #[test]
    fn extensions() {
        let loc = Location::from_env(&[("DUMP_EXTENSION", "dump")]).unwrap();
        assert_eq!(
            loc.names.dump(&stamp("20261121T101500Z"), Form::None),
            "dump-20261121T101500Z.dump"
        );
        for bad in [
            "",
            "sql.gz",
            ".sql",
            "gz",
            "zst",
            "part",
            "lock",
            "a/b",
            "x y",
            "abcdefghijklmnopq",
        ] {
            let err = Location::from_env(&[("DUMP_EXTENSION", bad)]).unwrap_err();
            assert!(err.to_string().starts_with("DUMP_EXTENSION="), "{err}");
        }
    }

    #[test]
    fn locations() {
        for good in ["dump", "db1.main", "a-b_c"] {
            let loc = Location::from_env(&[("DUMP_NAME", good)]).unwrap();
            assert_eq!(loc.names.name(), good);
        }
        for bad in ["", ".x", "-x", "a/b", "a b", "é"] {
            assert!(Location::from_env(&[("DUMP_NAME", bad)]).is_err(), "{bad}");
        }
        let loc = Location::from_env(&[("DUMP_DIR", "/srv/d")]).unwrap();
        assert_eq!(loc.dir, PathBuf::from("/srv/d"));
    }

    #[test]
    fn the_default_jobs_dumps_are_in_a_directory_of_their_own() {
        let plain = crate::catalogue::Variant::jobs(Manager::System, Shape::Plain)
            .find(|j| j.program == Program::Dump)
            .unwrap();
        assert_eq!(
            DEFAULT_DIR,
            format!("{DUMPS_DIR}/{}", plain.dumps_name(Shape::Plain))
        );
        assert!(crate::catalogue::reserved_instance(plain.name));
        assert!(!crate::catalogue::reserved_instance("shop"));
        let loc = Location::from_env(&[("DUMP_NAME", "shop")]).unwrap();
        assert_eq!(loc.dir, PathBuf::from(DEFAULT_DIR));
        for usage in [
            &crate::usage::DUMP,
            &crate::usage::DRILL,
            &crate::usage::COPY,
        ] {
            let dir = usage
                .variables
                .iter()
                .find(|v| v.name == "DUMP_DIR")
                .unwrap();
            assert_eq!(dir.default, format!("`{DEFAULT_DIR}`"));
        }
    }

    #[test]
    fn no_job_keeps_its_dumps_beside_the_others_directories() {
        for parent in [
            DUMPS_DIR,
            "/var/lib/timerapps/dumps/",
            "/var/lib//timerapps/dumps",
        ] {
            let e = Location::from_env(&[("DUMP_DIR", parent)]).unwrap_err();
            assert_eq!(e.exit(), crate::Exit::Usage);
            let said = e.to_string();
            assert!(said.starts_with("DUMP_DIR=\"/var/lib/"), "{said}");
            assert!(
                said.contains(&format!(
                    "unset DUMP_DIR to keep the default job's dumps in {DEFAULT_DIR}"
                )),
                "{said}"
            );
        }
        Location::from_env(&[("DUMP_DIR", "/var/lib/timerapps/dumps/shop")]).unwrap();
    }
}
