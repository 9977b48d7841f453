//! `verify`: each kept dump of a job decompressed end to end.

use crate::jobs::{Job, Settings};
use crate::systemd::{Scope, Systemd};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use timerapps::dumpfile::Location;
use timerapps::human::si;
use timerapps::{outln, Error, Exit, Result};

/// Prints a line per dump, newest first; true if every one is intact and
/// there is at least one.
pub fn run(arg: &str, scope: Scope) -> Result<bool> {
    let job = Job::resolve(arg, scope)?;
    let sd = Systemd::connect(scope)?;
    let settings = Settings::of(&sd, &job)?;
    if !settings.keeps_dumps {
        return Err(Error::new(
            Exit::Usage,
            format!(
                "{} keeps no dumps; verify checks the dumps of dump-database jobs",
                job.name()
            ),
        ));
    }
    let location = Location::from_env(&settings)?;
    let dumps = location.names.dumps(&location.dir).map_err(|e| {
        // A user's own dumps are theirs; the system's are the job user's.
        let hint = if e.kind() == io::ErrorKind::PermissionDenied && scope == Scope::System {
            "run it as root"
        } else {
            ""
        };
        Error::io(
            Exit::Failure,
            "cannot list the dumps in",
            &location.dir,
            &e,
            hint,
        )
    })?;
    if dumps.is_empty() {
        outln!(
            "{}: no dumps of {} in {}",
            job.name(),
            location.names.name(),
            location.dir.display()
        );
        return Ok(false);
    }
    let mut intact = true;
    for dump in &dumps {
        match check(&dump.path) {
            Ok(size) => outln!(
                "ok       {}  {} → {}",
                dump.path.display(),
                si(dump.size),
                si(size)
            ),
            Err(e) => {
                intact = false;
                outln!("DAMAGED  {}: {e}", dump.path.display());
            }
        }
    }
    Ok(intact)
}

/// Decompresses `path` to its end, checking each member's CRC-32 and
/// length; returns the size of the contents.
fn check(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    file.read_exact(&mut magic)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "too short to be gzip"))?;
    if magic != [0x1f, 0x8b] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not in gzip format",
        ));
    }
    let file = File::open(path)?;
    io::copy(&mut MultiGzDecoder::new(file), &mut io::sink()).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            io::Error::new(e.kind(), "truncated: the gzip stream ends early")
        }
        _ => e,
    })
}
