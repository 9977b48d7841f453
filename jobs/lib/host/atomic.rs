//! Replacing a small file so that a crash or a failed write leaves either
//! the old file or the new one, never a part of either, and no temp file;
//! its owner and mode set on the descriptor, before it has its name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `contents` to `dir/name` with permissions `mode`, the umask
/// notwithstanding: a temp file in
/// the same directory, written and flushed to disk (fdatasync), renamed over
/// the old file, then the directory flushed so that the rename itself is on
/// disk. On any failure the temp file is removed and the old file is as it was.
pub fn replace(dir: &Path, name: &str, contents: &[u8], mode: u32) -> io::Result<()> {
    let temp = format!(".{name}.{}.tmp", std::process::id());
    replace_as(dir, name, &temp, contents, mode, None)
}

/// [`replace`] through the temp file `temp`, which must not exist, given
/// to `owner` (uid, gid) and `mode` on its descriptor before it is written
/// and renamed: under its final name the file is never root's, and no
/// name that another user can swap for a symlink is ever chowned.
pub fn replace_as(
    dir: &Path,
    name: &str,
    temp: &str,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let temp = dir.join(temp);
    let written = OpenOptions::new()
        .write(true)
        // O_EXCL: never through a symlink, never a file already there.
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
            // Exactly `mode`, whatever the umask (a service's may be 0077).
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.write_all(contents)?;
            file.sync_data()
        });
    if let Err(e) = written.and_then(|()| fs::rename(&temp, dir.join(name))) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Removes `dir/name` if it is there, durably; true if it was.
pub fn remove(dir: &Path, name: &str) -> io::Result<bool> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::path::PathBuf;

    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("timerapps-atomic-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Mounts a tmpfs of `size` on `dir` in a mount namespace of this test's
    /// own thread (so no other test and nothing outside sees it), with the
    /// mount options given. Needs root, as the test suite runs.
    fn mount_tmpfs(dir: &Path, options: &str) {
        // SAFETY: unshare and mount with valid, NUL-terminated arguments.
        // CLONE_NEWNS also unshares this thread's filesystem context only.
        unsafe {
            assert_eq!(
                libc::unshare(libc::CLONE_NEWNS),
                0,
                "unshare(CLONE_NEWNS) needs root: {}",
                io::Error::last_os_error()
            );
            let root = CString::new("/").unwrap();
            let none = CString::new("none").unwrap();
            assert_eq!(
                libc::mount(
                    none.as_ptr(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null()
                ),
                0
            );
            let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
            let fstype = CString::new("tmpfs").unwrap();
            let data = CString::new(options).unwrap();
            assert_eq!(
                libc::mount(
                    fstype.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ptr(),
                    0,
                    data.as_ptr().cast()
                ),
                0,
                "mount tmpfs {options}: {}",
                io::Error::last_os_error()
            );
        }
    }

    #[test]
    fn replaces_and_removes() {
        let dir = scratch("replace");
        replace(&dir, "a.conf", b"one\n", 0o644).unwrap();
        replace(&dir, "a.conf", b"two\n", 0o644).unwrap();
        assert_eq!(fs::read(dir.join("a.conf")).unwrap(), b"two\n");
        assert_eq!(listing(&dir), ["a.conf"]);
        assert!(remove(&dir, "a.conf").unwrap());
        assert!(!remove(&dir, "a.conf").unwrap());
        assert!(listing(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[ignore = "needs root (chown); tests/run runs it"]
    fn the_owner_and_mode_are_set_on_the_descriptor() {
        let dir = scratch("owner");
        replace_as(
            &dir,
            "m.json",
            ".m.part",
            b"{}\n",
            0o600,
            Some((65534, 65534)),
        )
        .unwrap();
        let meta = fs::metadata(dir.join("m.json")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (65534, 65534, 0o600)
        );
        // A temp name that is taken (here by a symlink) is never written through.
        std::os::unix::fs::symlink("/etc/passwd", dir.join(".m.part")).unwrap();
        let e = replace_as(&dir, "m.json", ".m.part", b"x", 0o600, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(fs::read(dir.join("m.json")).unwrap(), b"{}\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[ignore = "needs root (a mount namespace); tests/run runs it"]
    fn a_write_that_fails_part_way_keeps_the_old_file_and_leaves_no_temp() {
        let dir = scratch("full");
        // Scoped threads: the mount namespace dies with the thread.
        std::thread::scope(|s| {
            s.spawn(|| {
                mount_tmpfs(&dir, "size=64k");
                replace(&dir, "a.conf", b"old\n", 0o644).unwrap();
                // Fill the file system, leaving less than the new contents.
                let mut filler = File::create(dir.join("filler")).unwrap();
                let block = vec![b'x'; 4096];
                while filler.write_all(&block).is_ok() {}
                let _ = filler.write_all(b"x");
                let new = vec![b'n'; 16 * 1024];
                let err = replace(&dir, "a.conf", &new, 0o644).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
                assert_eq!(fs::read(dir.join("a.conf")).unwrap(), b"old\n");
                assert_eq!(listing(&dir), ["a.conf", "filler"]);
            })
            .join()
            .unwrap();
        });
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[ignore = "needs root (a mount namespace); tests/run runs it"]
    fn a_read_only_directory_keeps_the_old_file() {
        let dir = scratch("ro");
        std::thread::scope(|s| {
            s.spawn(|| {
                mount_tmpfs(&dir, "size=64k");
                replace(&dir, "a.conf", b"old\n", 0o644).unwrap();
                let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: remount of this thread's own mount, read-only.
                let r = unsafe {
                    libc::mount(
                        std::ptr::null(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_REMOUNT | libc::MS_RDONLY,
                        std::ptr::null(),
                    )
                };
                assert_eq!(r, 0, "remount read-only: {}", io::Error::last_os_error());
                let err = replace(&dir, "a.conf", b"new\n", 0o644).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
                assert_eq!(fs::read(dir.join("a.conf")).unwrap(), b"old\n");
                assert_eq!(listing(&dir), ["a.conf"]);
            })
            .join()
            .unwrap();
        });
        fs::remove_dir_all(&dir).unwrap();
    }
}
