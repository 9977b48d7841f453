//! The small JSON records the drill and the copy keep of their last run
//! (`DRILL_RESULT`, `COPY_RESULT`): read by `timerapps status` and the
//! metrics, replaced atomically after every run, mode 0640, since a reason
//! can quote what a failing command printed.

use crate::{atomic, safe, Error, Exit, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::path::Path;

/// The most a record may be. A record is a few lines and, for a copy, the
/// names of the kept dumps it sent: 16 MiB holds some 150,000 names, more
/// than a century of hourly dumps. Root reads records after every run
/// (`write-metrics`): a larger file, or one that is no regular file, is
/// refused, not read.
pub const MAX_BYTES: u64 = 16 << 20;

/// Records are the job user's and its group's to read.
const MODE: u32 = 0o640;

pub fn to_json(record: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(record).expect("a record serialises");
    text.push('\n');
    text
}

/// The record at `path`; `None` where no run has recorded one yet. It is
/// opened as [`safe::read`] opens a file: never through a symbolic link,
/// a regular file only, at most [`MAX_BYTES`].
pub fn read<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match safe::read(path, MAX_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes)
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
    let text = to_json(record);
    let written = if text.len() as u64 > MAX_BYTES {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the record would be {} bytes, more than the {MAX_BYTES} that status reads",
                text.len()
            ),
        ))
    } else {
        atomic::replace(dir, name, text.as_bytes(), MODE)
    };
    written.map_err(|e| {
        Error::io(
            Exit::CantCreate,
            &format!("cannot record the {what}'s result in"),
            path,
            &e,
            &format!("status and the metrics do not show this {what}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn records_are_written_0640_and_read_only_as_regular_files() {
        let dir = std::env::temp_dir().join(format!("jobkit-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        write(&path, &vec![1, 2, 3], "drill").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(read::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2, 3]));
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let e = read::<Vec<u32>>(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a symbolic link, which is never followed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
