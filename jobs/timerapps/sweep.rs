//! `sweep-run-files` (hidden, for the package's removal): the lock and temp
//! files that dump runs leave in the system's dump directories, found by
//! the library's own definition, so that removing the package leaves only
//! dumps there; and the jobs' metrics files, which would otherwise be
//! scraped, ageing, for ever.

use jobkit::catalogue::DUMPS_DIR;
use jobkit::dumpfile::write::sweep_run_files;
use jobkit::{errln, Error, Exit, Result};
use std::fs;
use std::io;
use std::path::Path;

/// Removes the run files in each directory directly below the dumps
/// directory (the default job's and each instance's) and at its top (where
/// an earlier version kept the default job's), and the metrics files; true
/// if every one could be removed.
pub fn run() -> Result<bool> {
    let metrics = crate::status::remove_metrics(None)
        .inspect_err(|e| errln!("timerapps: {e}"))
        .is_ok();
    Ok(run_files()? && metrics)
}

fn run_files() -> Result<bool> {
    let top = Path::new(DUMPS_DIR);
    let mut dirs = vec![top.to_owned()];
    match fs::read_dir(top) {
        Ok(entries) => dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(Error::io(Exit::Failure, "cannot list", top, &e, "")),
    }
    let mut all = true;
    for dir in dirs {
        for (path, e) in sweep_run_files(&dir) {
            errln!("timerapps: cannot remove {}: {e}", path.display());
            all = false;
        }
    }
    Ok(all)
}
