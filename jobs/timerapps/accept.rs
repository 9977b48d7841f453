//! `accept`: an admin's word on a dump. A suspect dump is right after all
//! (the database really shrank), or a good one named is the new measure:
//! its manifest says so (`accepted`), and later dumps are compared with it
//! and the good dumps after it only. A dump whose manifest cannot be
//! trusted, named, gets a new manifest written from the dump itself.
//!
//! The manifest is replaced through a temp file given to the dump's owner
//! on its descriptor before it is renamed into place: it is never root's
//! under its name, and no name the job's user can swap is ever chowned.

use crate::dumps;
use crate::jobs::Job;
use crate::systemd::Scope;
use chrono::{Local, SecondsFormat};
use jobkit::dumpfile::manifest::{self, Check, Format, Hashing, Manifest, Verdict};
use jobkit::dumpfile::plan::{Planned, Trust};
use jobkit::dumpfile::{read, Flaw, Location};
use jobkit::retention::Rule;
use jobkit::{atomic, outln, Error, Exit, Result};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;

/// Accepts the newest suspect dump of `job`, or the one named `dump` (its
/// file name).
pub fn run(job: &Job, dump: Option<&str>, scope: Scope) -> Result<bool> {
    let (location, policy) = dumps::location(job, scope, "accept")?;
    let planned = dumps::plan(&location, &policy, scope)?;
    let target = match dump {
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
            })?,
        None => newest_suspect(&planned, &location, job)?,
    };
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
    write(target, &location, &manifest)?;
    outln!("{done}");
    Ok(true)
}

/// The newest suspect dump not named in the future.
fn newest_suspect<'a>(
    planned: &'a [Planned],
    location: &Location,
    job: &Job,
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
        format: Format::recognise(&content.get_mut().0),
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

/// Replaces the manifest of `target`, owned as its dump is.
fn write(target: &Planned, location: &Location, manifest: &Manifest) -> Result<()> {
    let path = target.dump.manifest_path();
    let failed =
        |e: io::Error| Error::io(Exit::Failure, "cannot rewrite the manifest", &path, &e, "");
    // The job's own user must still read and replace it.
    let owner = std::fs::symlink_metadata(&target.dump.path).map_err(failed)?;
    let (stamp, form) = (target.dump.stamp, target.dump.form);
    atomic::replace_as(
        &location.dir,
        &location.names.manifest(&stamp, form),
        // A temp name the job's next run sweeps, should this one be killed.
        &location
            .names
            .manifest_temp(&stamp, form, std::process::id()),
        manifest.to_json().as_bytes(),
        0o600,
        Some((owner.uid(), owner.gid())),
    )
    .map_err(failed)
}
