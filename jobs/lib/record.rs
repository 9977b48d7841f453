//! The small JSON records the drill and the copy keep of their last run
//! (`DRILL_RESULT`, `COPY_RESULT`): read by `timerapps status` and the
//! metrics, replaced atomically after every run.

use crate::{atomic, Error, Exit, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::{fs, io};

pub fn to_json(record: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(record).expect("a record serialises");
    text.push('\n');
    text
}

/// The record at `path`; `None` where no run has recorded one yet.
pub fn read<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the record at `path`; a failure says that status and the
/// metrics do not show this run of `what` (`drill`, `copy`).
pub fn write(path: &Path, record: &impl Serialize, what: &str) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    atomic::replace(dir, name, to_json(record).as_bytes(), 0o644).map_err(|e| {
        Error::io(
            Exit::CantCreate,
            &format!("cannot record the {what}'s result in"),
            path,
            &e,
            &format!("status and the metrics do not show this {what}"),
        )
    })
}
