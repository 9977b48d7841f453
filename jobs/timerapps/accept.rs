//! `accept`: an admin's word on a dump. A suspect dump is right after all
//! (the database really shrank), or a good one named is the new measure:
//! its manifest says so (`accepted`), and later dumps are compared with it
//! and the good dumps after it only. A dump whose manifest cannot be
//! trusted, named, gets a new manifest written from the dump itself.
//!
//! It works under the lock of the dump's name, the one the job's runs
//! take: no run publishes or prunes while the dumps are read and the
//! manifest replaced, and while a run does, accept changes nothing. The
//! store replaces the manifest ([`Location::replace_manifest`]).

use crate::dumps;
use crate::jobs::TimerJob;
use crate::systemd::Scope;
use chrono::{Local, SecondsFormat};
use jobkit::dumpfile::manifest::{self, Check, Hashing, Manifest, Verdict};
use jobkit::dumpfile::plan::{Planned, Trust};
use jobkit::dumpfile::{read, Flaw, Location};
use jobkit::family::Families;
use jobkit::retention::Rule;
use jobkit::{outln, Error, Exit, Result};
use std::io::{self, Write};

/// Accepts the newest suspect dump of `job`, or the one named `dump` (its
/// file name).
pub fn run(job: &TimerJob, dump: Option<&str>, scope: Scope) -> Result<bool> {
    let (location, policy) = dumps::location(job, scope, "accept")?;
    let Some(lock) = location.lock_to_rewrite()? else {
        // No directory yet, so no dump: said as for an empty one.
        return choose(&[], dump, &location, job).map(|_| false);
    };
    let planned = dumps::plan(&location, &policy, scope)?;
    let target = choose(&planned, dump, &location, job)?;
    let now = Local::now();
    let date = now.format("%Y-%m-%d %H:%M:%S %z");
    let path = target.dump.path.display();
    let (manifest, done) = match &target.trust {
        Trust::Manifest(m) if m.verdict == Verdict::Suspect => {
            let mut m = m.clone();
            m.verdict = Verdict::Good;
            m.reason = Some(format!(
                "accepted with timerapps accept on {date}; it was suspect: {}",
                m.reason.unwrap_or_default()
            ));
            m.accepted = Some(now.to_rfc3339_opts(SecondsFormat::Secs, false));
            let done = format!(
                "{path} is good now: it counts toward retention, and later dumps are compared \
                 with it and the good dumps after it, no more with those before it"
            );
            (m, done)
        }
        Trust::Manifest(m) => {
            let mut m = m.clone();
            m.reason = Some(format!("accepted with timerapps accept on {date}"));
            m.accepted = Some(now.to_rfc3339_opts(SecondsFormat::Secs, false));
            let done = format!(
                "{path} is accepted: later dumps are compared with it and the good dumps after \
                 it, no more with those before it, which only the other retention rules keep"
            );
            (m, done)
        }
        Trust::Legacy => {
            outln!("{path} was made before manifests: it counts as good already");
            return Ok(true);
        }
        Trust::Untrusted(flaw) => {
            let m = from_dump(target, flaw, &date.to_string())?;
            let done = format!(
                "{path} has a new manifest, written from the dump: it is good and counts toward \
                 retention; its rows and whether it is complete are not known (no format's end \
                 was checked), so later dumps are compared with its size only"
            );
            (m, done)
        }
    };
    location.replace_manifest(&lock, &target.dump, &manifest)?;
    outln!("{done}");
    Ok(true)
}

/// The dump named `dump` (its file name), or else the newest suspect one.
fn choose<'a>(
    planned: &'a [Planned],
    dump: Option<&str>,
    location: &Location,
    job: &TimerJob,
) -> Result<&'a Planned> {
    match dump {
        Some(name) => planned
            .iter()
            .find(|p| p.dump.path.file_name().and_then(|f| f.to_str()) == Some(name))
            .ok_or_else(|| {
                Error::new(
                    Exit::Failure,
                    format!(
                        "no dump named {name} of {} in {}; `timerapps keep {}` lists them",
                        location.names.name(),
                        location.dir.display(),
                        job.name()
                    ),
                )
            }),
        None => newest_suspect(planned, location, job),
    }
}

/// The newest suspect dump not named in the future.
fn newest_suspect<'a>(
    planned: &'a [Planned],
    location: &Location,
    job: &TimerJob,
) -> Result<&'a Planned> {
    let present = || planned.iter().filter(|p| !p.rules.contains(&Rule::Future));
    if let Some(p) = present().find(|p| p.suspect()) {
        return Ok(p);
    }
    let untrusted = present()
        .find(|p| p.flaw().is_some())
        .map(|p| format!("; {}", dumps::untrusted(p, job)))
        .unwrap_or_default();
    Err(Error::new(
        Exit::Failure,
        format!(
            "{} has no suspect dump in {}; nothing to accept{untrusted}",
            job.name(),
            location.dir.display()
        ),
    ))
}

/// The first bytes of what passes, enough to recognise a format.
struct Head(Vec<u8>);

impl Write for Head {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = 256usize.saturating_sub(self.0.len()).min(buf.len());
        self.0.extend_from_slice(&buf[..room]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A manifest of what the dump is, read back to its end with its form's
/// checksums: its sizes, both SHA-256s and its format. Its rows and
/// whether its format's end is there, which only the stream of its run
/// showed, are not known.
fn from_dump(target: &Planned, flaw: &Flaw, date: &str) -> Result<Manifest> {
    let dump = &target.dump;
    let mut content = Hashing::new(Head(Vec::new()));
    let (read, sha256) = read::stream(dump, &mut content).map_err(|e| {
        Error::new(
            Exit::Failure,
            format!(
                "cannot read {} back, so no manifest was written: {e}",
                dump.path.display()
            ),
        )
    })?;
    Ok(Manifest {
        version: manifest::VERSION,
        dump: dump
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        form: dump.form,
        read,
        stored: dump.size,
        sha256,
        content_sha256: Some(content.hex()),
        format: Families::default().recognise(&content.get_mut().0),
        check: Check::Unchecked,
        tables: None,
        verdict: Verdict::Good,
        reason: Some(format!(
            "manifest written by timerapps accept on {date} from the dump itself, as {flaw}; its \
             rows and whether it is complete are not known"
        )),
        accepted: None,
    })
}
