use crate::child::{Child, Stop};
use crate::config::Config;
use crate::pgzip::{self, Failure};
use crate::store::DumpDir;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Instant;
use timerapps::{Error, Exit, Result};

pub fn run(cfg: &Config) -> Result<()> {
    let started = Instant::now();
    let dir = DumpDir::open(&cfg.dir, &cfg.name)?;
    let _lock = dir.lock()?;
    let stop = Stop::install()?;
    dir.remove_stale_temps()?;
    let stamp = dir.free_stamp();
    let temp = dir.create_temp(&stamp)?;
    stop.check()?;

    let mut child = Child::spawn(&cfg.command, &stop)?;
    let streamed = compress(child.stdout(), temp.file(), temp.path(), cfg);
    if streamed.is_err() {
        child.terminate();
    }
    let status = child.wait()?;
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
    // A stop asked for while the command was ending still discards the dump.
    stop.check()?;

    let path = dir.publish(temp, &stamp)?;
    let removed = dir.prune(cfg.keep, &path)?;
    for old in &removed {
        println!("removed old dump {}", old.display());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "dump-database: published {}: read {read} bytes, wrote {written} bytes, ratio {:.2}, \
         {secs:.2} s, {:.1} MB/s, pruned {} old dump{}",
        path.display(),
        read as f64 / written.max(1) as f64,
        read as f64 / 1e6 / secs.max(1e-6),
        removed.len(),
        if removed.len() == 1 { "" } else { "s" },
    );
    Ok(())
}

/// Streams the command's output through parallel gzip into `out`; returns
/// the bytes read and written.
fn compress(mut input: impl Read, mut out: &File, path: &Path, cfg: &Config) -> Result<(u64, u64)> {
    pgzip::compress(&mut input, &mut out, cfg.level, cfg.threads).map_err(|failure| match failure {
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
