//! Opening a file in a directory that another user can write, as root does
//! when `status`, `write-metrics`, `verify`, `restore` and `accept` read
//! the manifests, records and dumps the `timerapps` user writes: never
//! through a symbolic link (`O_NOFOLLOW`), never waiting on a FIFO
//! (`O_NONBLOCK`), regular files only (`fstat` on the descriptor opened),
//! and never more bytes read than such a file can need.

use crate::human::si;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading if it is a regular file. A symlink, FIFO,
/// device, socket or directory is refused with what it is; a missing file
/// keeps its `NotFound`.
pub fn open(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        // O_CLOEXEC is the standard library's default.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused("it is a symbolic link, which is never followed"),
            _ => e,
        })?;
    let kind = file.metadata()?.file_type();
    let what = if kind.is_file() {
        return Ok(file);
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    };
    Err(refused(&format!("it is {what}, not a regular file")))
}

/// The whole of the regular file `path`, refused if it is larger than
/// `limit` bytes, the most such a file can need.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large(size, limit));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // It may grow while it is read: never past the limit.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

fn too_large(size: u64, limit: u64) -> io::Error {
    refused(&format!(
        "it is {} or more, larger than the {} such a file can be",
        si(size),
        si(limit)
    ))
}

fn refused(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = std::env::temp_dir().join(format!("jobkit-safe-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("file");
        fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read(&file, 10).unwrap(), b"0123456789");
        let e = read(&file, 9).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is 10 B or more, larger than the 9 B such a file can be"
        );
        let link = dir.join("link");
        symlink(&file, &link).unwrap();
        let e = read(&link, 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a symbolic link, which is never followed"
        );
        let fifo = dir.join("fifo");
        let path = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        // Opened without a writer, it neither blocks nor is read.
        let e = read(&fifo, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a FIFO, not a regular file");
        let e = read(&dir, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a directory, not a regular file");
        let e = read(Path::new("/dev/null"), 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file"
        );
        let e = read(&dir.join("missing"), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        fs::remove_dir_all(&dir).unwrap();
    }
}
