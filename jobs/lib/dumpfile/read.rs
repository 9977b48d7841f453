//! Reading a dump back: decompressed as a stream, every checksum of its
//! form checked on the way, and the SHA-256 of the stored file taken in the
//! same pass. `timerapps verify` reads into nothing; the restore drill
//! reads into the restoring tool. The file is opened as [`crate::host::safe`]
//! opens one (never through a symbolic link, never a FIFO or a device),
//! once, and read as it streams: no size limit, the memory stays flat.

use super::manifest::Hashing;
use super::{Dump, Form};
use crate::host::safe;
use flate2::read::MultiGzDecoder;
use std::io::{self, Read, Seek, Write};

/// An error about the dump's bytes themselves.
pub fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads `dump` to its end into `out`: decompressed, checking the
/// checksums of its form (gzip's CRC-32 and length of each member, zstd's
/// frame checksum), or as it is for a dump kept as written. Returns the
/// size of the contents and the SHA-256 of the file.
pub fn stream(dump: &Dump, out: &mut dyn Write) -> Result<(u64, String), Failure> {
    let (magic, name): (&[u8], _) = match dump.form {
        Form::Gzip => (&[0x1f, 0x8b], "gzip"),
        Form::Zstd => (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        Form::None => (&[], ""),
    };
    let mut file = safe::open(&dump.path).map_err(Failure::Dump)?;
    let mut start = vec![0; magic.len()];
    file.read_exact(&mut start)
        .map_err(|_| Failure::Dump(invalid(format!("too short to be {name}"))))?;
    if start != magic {
        return Err(Failure::Dump(invalid(format!("not in {name} format"))));
    }
    file.rewind().map_err(Failure::Dump)?;
    let mut file = Hashing::new(file);
    let size = match dump.form {
        Form::Gzip => copy(&mut MultiGzDecoder::new(&mut file), out, name)?,
        Form::Zstd => {
            let mut decoder = zstd::Decoder::new(&mut file).map_err(Failure::Dump)?;
            copy(&mut decoder, out, name)?
        }
        Form::None => match copy(&mut file, out, name)? {
            0 => return Err(Failure::Dump(invalid("empty"))),
            size => size,
        },
    };
    // What the decoder did not need (padding after the stream) is part of
    // the file too.
    io::copy(&mut file, &mut io::sink()).map_err(Failure::Dump)?;
    Ok((size, file.hex()))
}

/// Why a dump could not be read into its reader.
#[derive(Debug)]
pub enum Failure {
    /// The dump: unreadable, damaged, cut short.
    Dump(io::Error),
    /// What it was read into stopped taking it.
    Out(io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dump(e) | Failure::Out(e) => e.fmt(f),
        }
    }
}

/// Copies, telling a read error (the dump) from a write error (`to`).
fn copy(from: &mut dyn Read, to: &mut dyn Write, name: &str) -> Result<u64, Failure> {
    let mut buf = vec![0; 128 * 1024];
    let mut size = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let e = invalid(format!("truncated: the {name} stream ends early"));
                return Err(Failure::Dump(e));
            }
            Err(e) => return Err(Failure::Dump(e)),
        };
        to.write_all(&buf[..n]).map_err(Failure::Out)?;
        size += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dumpfile::manifest;
    use flate2::write::GzEncoder;
    use sha2::{Digest, Sha256};
    use std::io::Write;
    use std::path::Path;

    fn dump(dir: &Path, form: Form, bytes: &[u8]) -> Dump {
        let path = dir.join(format!("dump.{form}"));
        std::fs::write(&path, bytes).unwrap();
        Dump {
            stamp: crate::dumpfile::Stamp::parse("20261122T000000Z").unwrap(),
            form,
            size: bytes.len() as u64,
            path,
        }
    }

    fn damaged(bytes: &[u8]) -> [Vec<u8>; 3] {
        let mut flipped = bytes.to_vec();
        flipped[bytes.len() / 2] ^= 0x40;
        [bytes[..bytes.len() * 2 / 3].to_vec(), flipped, Vec::new()]
    }

    #[test]
    fn every_form_is_checked_to_its_end() {
        let dir = std::env::temp_dir().join(format!("timerapps-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("row {i} {}\n", i * 7919 % 1013).into_bytes())
            .collect();
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&text[..], 3).unwrap();
        let mut zst_checked = zstd::Encoder::new(Vec::new(), 3).unwrap();
        zst_checked.include_checksum(true).unwrap();
        zst_checked.write_all(&text).unwrap();
        let zst_checked = zst_checked.finish().unwrap();
        for (form, bytes) in [
            (Form::Gzip, &gz),
            (Form::Zstd, &zst),
            (Form::Zstd, &zst_checked),
            (Form::None, &text),
        ] {
            let (size, sha256) = stream(&dump(&dir, form, bytes), &mut io::sink()).unwrap();
            assert_eq!(size, text.len() as u64, "{form}");
            assert_eq!(sha256, manifest::hex(&Sha256::digest(bytes)), "{form}");
        }
        for (form, bytes) in [(Form::Gzip, &gz), (Form::Zstd, &zst_checked)] {
            let [truncated, flipped, empty] = damaged(bytes);
            let e = stream(&dump(&dir, form, &truncated), &mut io::sink()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("truncated: the {form} stream ends early")
            );
            // The checksum catches it: gzip's CRC-32, zstd's xxHash64.
            assert!(
                stream(&dump(&dir, form, &flipped), &mut io::sink()).is_err(),
                "{form}"
            );
            let e = stream(&dump(&dir, form, &empty), &mut io::sink()).unwrap_err();
            assert_eq!(e.to_string(), format!("too short to be {form}"));
            let e = stream(&dump(&dir, form, &text), &mut io::sink()).unwrap_err();
            assert_eq!(e.to_string(), format!("not in {form} format"));
        }
        let e = stream(&dump(&dir, Form::None, b""), &mut io::sink()).unwrap_err();
        assert_eq!(e.to_string(), "empty");
        // A dump swapped for a symlink after it was listed is not followed.
        let swapped = dump(&dir, Form::None, &text);
        std::fs::remove_file(&swapped.path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &swapped.path).unwrap();
        let e = stream(&swapped, &mut io::sink()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a symbolic link, which is never followed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
