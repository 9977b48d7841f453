use crate::child::{DumpProcess, Stop};
use crate::compress;
use crate::config::Config;
use crate::stream::Failure;
use crate::supervise::Supervisor;
use jobkit::dumpfile::manifest::{self, Check, Hashing, Manifest, Verdict};
use jobkit::dumpfile::write::{Baseline, DumpDir, Pruned, Temp};
use jobkit::family::check::{self, Checked, Failed, Scanned, Scanner};
use jobkit::family::Families;
use jobkit::human::{si, span};
use jobkit::{errln, outln, Error, Exit, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitStatus;
use std::time::Instant;

/// Runs the dump and tells the service manager how it went: what was
/// published, or why nothing was. Returns the run's last line.
pub fn run(cfg: &Config) -> Result<String> {
    let supervisor = Supervisor::start();
    let result = dump(cfg, &supervisor);
    supervisor.done(&match &result {
        Ok(published) => published.status.clone(),
        Err(e) => format!("failed: {e}"),
    });
    result.map(|published| format!("dump-database: {}", published.line))
}

/// What a run published: for the status line, and the run's last line.
struct Published {
    status: String,
    line: String,
}

/// The run itself; returns what was published.
fn dump(cfg: &Config, supervisor: &Supervisor) -> Result<Published> {
    let started = Instant::now();
    let dir = DumpDir::open(&cfg.location)?;
    let lock = dir.lock()?;
    let stop = Stop::install()?;
    dir.remove_stale_temps()?;
    let stamp = dir.free_stamp();
    let form = cfg.compression.form();
    let temp = dir.create_temp(&stamp, form)?;
    stop.check()?;
    let name = cfg.location.names.dump(&stamp, form);
    let mut manifest = stream(cfg, &temp, &stop, supervisor, name)?;
    let baseline = dir.baseline(&stamp)?;
    manifest.reason = suspect(&manifest, &baseline, cfg.shrink_limit);
    if manifest.reason.is_some() {
        manifest.verdict = Verdict::Suspect;
    }
    temp.sync()?;
    // A stop asked for until now still discards the dump.
    stop.check()?;
    let discarded = "this run's dump was discarded and nothing was published or pruned";
    lock.check_held(discarded)?;

    dir.write_manifest(&stamp, form, &manifest)?;
    let path = dir.publish(temp)?;
    // Published: a stop asked for from here on ends the run after pruning.
    lock.check_held(&format!(
        "{} was published, old dumps were not pruned",
        path.display()
    ))?;
    let pruned = dir.prune(&cfg.policy, &stamp)?;
    report(&pruned);
    let (read, written) = (manifest.read, manifest.stored);
    let secs = started.elapsed().as_secs_f64();
    let removed = pruned.removed.len();
    let line = format!(
        "published {}: read {read} bytes, wrote {written} bytes, ratio {:.2}, {secs:.2} s, \
         {:.1} MB/s, pruned {removed} old dump{}",
        path.display(),
        read as f64 / written.max(1) as f64,
        read as f64 / 1e6 / secs.max(1e-6),
        if removed == 1 { "" } else { "s" },
    );
    // What was published is said either way; an error after it is the
    // run's last line.
    let said = || outln!("{line}");
    stop.check_after(&format!(
        "{} was published and old dumps pruned before stopping",
        path.display()
    ))
    .inspect_err(|_| said())?;
    if let Some(reason) = &manifest.reason {
        said();
        return Err(Error::new(
            Exit::Suspect,
            format!(
                "{} was published as suspect: {reason}; it counts toward no retention \
                 rule, so no good dump was removed for it; if the database really is \
                 this small now, run `timerapps accept` for this job",
                path.display()
            ),
        ));
    }
    Ok(Published {
        status: format!(
            "published {}: {} read, {} written in {secs:.1} s, pruned {removed} old dump{}",
            path.display(),
            si(read),
            si(written),
            if removed == 1 { "" } else { "s" },
        ),
        line,
    })
}

/// Runs DUMP_COMMAND into `temp`, checking and hashing its stream on the
/// way, and waits for it; returns the manifest of the dump `name`, good
/// until compared with the dumps kept.
fn stream(
    cfg: &Config,
    temp: &Temp,
    stop: &Stop,
    supervisor: &Supervisor,
    name: String,
) -> Result<Manifest> {
    let mut child = DumpProcess::spawn(&cfg.command, stop)?;
    let progress = supervisor.progress();
    let families = Families::default();
    let mut scanner = cfg
        .check
        .then(|| Scanner::new(families.clone(), families.written_by(&cfg.command)));
    let mut hashed = Hashing::new(progress.writer(temp.file()));
    let mut content = Hashing::new(progress.reader(child.stdout()));
    let streamed = compress(
        Scanned::new(&mut content, scanner.as_mut()),
        &mut hashed,
        temp.path(),
        cfg,
    );
    if streamed.is_err() {
        child.terminate();
    }
    let status = child.wait()?;
    supervisor.finishing(
        cfg.finish_timeout,
        Error::new(
            Exit::Failure,
            format!(
                "flushing, publishing and pruning in {} took longer than \
                 DUMP_FINISH_TIMEOUT={} s: its file system does not answer; the run was \
                 stopped where it was, earlier dumps are untouched and the next run removes \
                 its temp file; check the file system, or raise DUMP_FINISH_TIMEOUT",
                cfg.location.dir.display(),
                cfg.finish_timeout.as_secs()
            ),
        ),
    );
    stop.check()?;
    let (read, written) = streamed?;
    check_status(status)?;
    if read == 0 {
        return Err(Error::new(
            Exit::Failure,
            "DUMP_COMMAND exited successfully but wrote nothing; an empty dump is not \
             published, earlier dumps are untouched",
        ));
    }
    let outcome = match scanner {
        Some(scanner) => scanner.finish().map_err(incomplete)?,
        None => Checked {
            format: None,
            check: Check::Off,
            tables: None,
        },
    };
    let mut manifest = Manifest {
        version: manifest::VERSION,
        dump: name,
        form: cfg.compression.form(),
        read,
        stored: written,
        sha256: hashed.hex(),
        content_sha256: Some(content.hex()),
        format: outcome.format,
        check: outcome.check,
        tables: outcome.tables,
        verdict: Verdict::Good,
        reason: None,
        accepted: None,
    };
    if manifest.fit(manifest::MAX_BYTES) {
        errln!(
            "the manifest would be larger than {} with the rows of every table: it is \
             written without them, so this dump's rows are not compared",
            si(manifest::MAX_BYTES)
        );
    }
    Ok(manifest)
}

/// Says what pruning removed, and what it left because it is named in the
/// future.
fn report(pruned: &Pruned) {
    for old in &pruned.removed {
        outln!("removed old dump {}", old.display());
    }
    for (future, ahead) in &pruned.future {
        errln!(
            "{} is named {} later than this run's dump, probably written while the clock \
             was ahead: it does not count toward DUMP_KEEP and is never removed by this job; \
             check it and remove it by hand",
            future.display(),
            span(*ahead)
        );
    }
}

/// Streams the command's output in the chosen form into `out`; returns the
/// bytes read and written.
fn compress(
    mut input: impl Read,
    mut out: impl Write,
    path: &Path,
    cfg: &Config,
) -> Result<(u64, u64)> {
    compress::compress(&mut input, &mut out, cfg.compression, cfg.threads).map_err(|failure| {
        match failure {
            Failure::Read(e) => Error::new(
                Exit::Failure,
                format!("cannot read the output of DUMP_COMMAND: {e}"),
            ),
            Failure::Write(e) => Error::io(
                Exit::Failure,
                "cannot write the dump to",
                path,
                &e,
                "check free space in DUMP_DIR; earlier dumps are untouched",
            ),
        }
    })
}

fn check_status(status: ExitStatus) -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return Ok(());
    }
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with {status}"),
    };
    Err(Error::new(
        Exit::Failure,
        format!(
            "DUMP_COMMAND {how} (its messages are above); the dump was discarded, earlier \
             dumps are untouched"
        ),
    ))
}

/// Why a finished stream is not published.
fn incomplete(failed: Failed) -> Error {
    let message = match failed {
        Failed::Incomplete(i) => format!(
            "the dump is incomplete: it is a {} dump, whose last line must be {}, but its \
             last line is {}; the command exited successfully anyway (a pipe without \
             pipefail, --force, a wrapper script?); the dump was discarded, earlier dumps are \
             untouched; DUMP_CHECK=off turns this check off",
            i.format.tool(),
            check::closing(i.format),
            i.seen
        ),
        Failed::Unexpected(u) => format!(
            "DUMP_COMMAND runs {}, but its output is not such a dump: it starts with {:?}; \
             the dump was discarded, earlier dumps are untouched; DUMP_CHECK=off turns this \
             check off",
            u.expected.tool(),
            u.seen
        ),
    };
    Error::new(Exit::Failure, message)
}

/// Why `dump` is suspect against `baseline`, the largest good dumps kept,
/// if it is: its raw size, or its rows, below `shrink_limit` percent of
/// theirs (0: no limit), or no rows where that dump had some.
fn suspect(dump: &Manifest, baseline: &Baseline, shrink_limit: u32) -> Option<String> {
    let below = |now: u64, before: u64| {
        shrink_limit > 0 && u128::from(now) * 100 < u128::from(before) * u128::from(shrink_limit)
    };
    if let Some(largest) = baseline.size.as_ref().filter(|b| below(dump.read, b.read)) {
        return Some(format!(
            "its raw size, {} bytes, is below DUMP_SHRINK_LIMIT={shrink_limit}% of the {} bytes \
             of the largest good dump kept, {}",
            dump.read, largest.read, largest.dump
        ));
    }
    let (Some(rows), Some(most)) = (dump.total_rows(), baseline.rows.as_ref()) else {
        return None;
    };
    let before = most.total_rows().unwrap_or(0);
    if rows == 0 && before > 0 {
        return Some(format!(
            "its tables hold no rows, where the good dump {} held {before}",
            most.dump
        ));
    }
    below(rows, before).then(|| {
        format!(
            "its tables hold {rows} rows, below DUMP_SHRINK_LIMIT={shrink_limit}% of the \
             {before} rows of the good dump kept with the most, {}",
            most.dump
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobkit::dumpfile::manifest::{Table, VERSION};
    use jobkit::dumpfile::Form;

    fn manifest(name: &str, read: u64, rows: Option<u64>) -> Manifest {
        Manifest {
            version: VERSION,
            dump: name.into(),
            form: Form::Gzip,
            read,
            stored: 1,
            sha256: String::new(),
            content_sha256: None,
            format: None,
            check: Check::Complete,
            tables: rows.map(|rows| {
                vec![Table {
                    database: None,
                    table: "t".into(),
                    rows: Some(rows),
                }]
            }),
            verdict: Verdict::Good,
            reason: None,
            accepted: None,
        }
    }

    #[test]
    fn a_dump_is_suspect_against_the_largest_by_size_and_by_rows() {
        let baseline = Baseline {
            size: Some(manifest("big", 20_000, Some(1000))),
            rows: Some(manifest("many", 10_000, Some(2000))),
        };
        let judge = |read, rows| suspect(&manifest("new", read, rows), &baseline, 50);
        assert_eq!(judge(10_000, Some(1000)), None);
        assert_eq!(
            judge(9_999, Some(1000)).unwrap(),
            "its raw size, 9999 bytes, is below DUMP_SHRINK_LIMIT=50% of the 20000 bytes of \
             the largest good dump kept, big"
        );
        assert_eq!(
            judge(10_000, Some(999)).unwrap(),
            "its tables hold 999 rows, below DUMP_SHRINK_LIMIT=50% of the 2000 rows of the \
             good dump kept with the most, many"
        );
        assert_eq!(
            judge(10_000, Some(0)).unwrap(),
            "its tables hold no rows, where the good dump many held 2000"
        );
        // Rows not shown in the new dump: only its size is compared.
        assert_eq!(judge(10_000, None), None);
        // No limit: only "no rows where it had some" is left.
        let off = |read, rows| suspect(&manifest("new", read, rows), &baseline, 0);
        assert_eq!(off(1, Some(1)), None);
        assert!(off(1, Some(0)).unwrap().contains("no rows"));
        // Nothing to compare with.
        let none = Baseline {
            size: None,
            rows: None,
        };
        assert_eq!(suspect(&manifest("new", 1, Some(0)), &none, 50), None);
    }
}
