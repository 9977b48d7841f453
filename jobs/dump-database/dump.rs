use crate::check::{self, Failed, Outcome, Scanned, Scanner};
use crate::child::{Child, Stop};
use crate::compress;
use crate::compress::Failure;
use crate::config::Config;
use crate::store::DumpDir;
use crate::supervise::Supervisor;
use jobkit::dumpfile::manifest::{self, Check, Hashing, Manifest, Verdict};
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
    let temp = dir.create_temp(&stamp, cfg.compression.form())?;
    stop.check()?;

    let mut child = Child::spawn(&cfg.command, &stop)?;
    let progress = supervisor.progress();
    let mut scanner = cfg
        .check
        .then(|| Scanner::new(check::expected(&cfg.command)));
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
        None => Outcome {
            format: None,
            check: Check::Off,
            tables: None,
        },
    };
    let form = cfg.compression.form();
    let mut manifest = Manifest {
        version: manifest::VERSION,
        dump: cfg.location.names.dump(&stamp, form),
        form,
        read,
        stored: written,
        sha256: hashed.hex(),
        content_sha256: Some(content.hex()),
        format: outcome.format,
        check: outcome.check,
        tables: outcome.tables,
        verdict: Verdict::Good,
        reason: None,
    };
    manifest.reason = suspect(&manifest, dir.baseline(&stamp).as_ref(), cfg.shrink_limit);
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
    let pruned = dir.prune(&cfg.location.policy, &stamp)?;
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

/// Why `dump` is suspect against `baseline`, the newest good dump, if it is.
fn suspect(dump: &Manifest, baseline: Option<&Manifest>, shrink_limit: u32) -> Option<String> {
    let baseline = baseline?;
    if shrink_limit > 0
        && u128::from(dump.read) * 100 < u128::from(baseline.read) * u128::from(shrink_limit)
    {
        return Some(format!(
            "its raw size, {} bytes, is below DUMP_SHRINK_LIMIT={shrink_limit}% of the {} bytes \
             of the newest good dump, {}",
            dump.read, baseline.read, baseline.dump
        ));
    }
    if let (Some(0), Some(before @ 1..)) = (dump.total_rows(), baseline.total_rows()) {
        return Some(format!(
            "its tables hold no rows, where the newest good dump, {}, held {before}",
            baseline.dump
        ));
    }
    None
}
