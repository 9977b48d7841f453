//! COPY_COMMAND: any other engine (rsync, rclone, a script), run once per
//! good dump it has not taken yet, oldest first. What it took is kept in
//! the record, as the repository keeps it for restic; retention at its
//! destination is its own business.

use crate::send::{send, Report};
use jobkit::dumpfile::manifest::Manifest;
use jobkit::dumpfile::Dump;
use jobkit::host::process;
use jobkit::record::copy::Newest;
use jobkit::{outln, Error, Exit, Result};
use std::io;
use std::process::{Command, Stdio};

pub fn run(
    words: &[String],
    local: Vec<(Dump, Option<Manifest>)>,
    report: &mut Report,
) -> Result<String> {
    // Only stamps still on this host: the list cannot grow without end.
    let on_host: Vec<String> = local.iter().map(|(d, _)| d.stamp.to_string()).collect();
    report.sent.retain(|s| on_host.contains(s));
    let due: Vec<&(Dump, Option<Manifest>)> = local
        .iter()
        .filter(|(d, _)| !report.sent.contains(&d.stamp.to_string()))
        .collect();
    report.waiting = due.len() as u64;
    for (dump, manifest) in due {
        // A damaged dump is never handed on.
        let (_, sha256) = send(dump, manifest.as_ref(), &mut io::sink())?;
        let vars = [
            ("COPY_DUMP", dump.path.to_string_lossy().into_owned()),
            ("COPY_STAMP", dump.stamp.to_string()),
            ("COPY_SIZE", dump.size.to_string()),
            ("COPY_SHA256", sha256),
        ];
        // No shell runs it: ${COPY_DUMP} and the others in its words are
        // replaced here.
        let words: Vec<String> = words
            .iter()
            .map(|w| {
                vars.iter()
                    .fold(w.clone(), |w, (k, v)| w.replace(&format!("${{{k}}}"), v))
            })
            .collect();
        let mut c = Command::new(&words[0]);
        c.args(&words[1..])
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        process::die_with_parent(&mut c);
        let name = dump
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        process::spawn(&mut c, &words[0])
            .and_then(process::Child::wait)
            .map_err(|e| {
                Error::new(
                    Exit::Failure,
                    format!("COPY_COMMAND did not take {name}: {e}; the next run tries again"),
                )
            })?;
        outln!("COPY_COMMAND took {name}");
        report.sent.push(dump.stamp.to_string());
        report.copied.push(name.clone());
        report.newest = Some(Newest {
            dump: name,
            stamp: dump.stamp.unix_seconds(),
        });
        report.waiting -= 1;
    }
    Ok(format!(
        "dump-database-copy: COPY_COMMAND took {} dump(s); newest {}",
        report.copied.len(),
        report.newest.as_ref().map_or("none", |n| n.dump.as_str())
    ))
}
