//! `verify`: each kept dump of a job decompressed end to end, or read to
//! its end where it is kept as the command wrote it, and its SHA-256
//! compared with its manifest's.

use crate::dumps;
use crate::jobs::Job;
use crate::systemd::Scope;
use flate2::read::MultiGzDecoder;
use jobkit::dumpfile::{manifest, Dump, Form};
use jobkit::human::si;
use jobkit::{outln, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};

/// Prints a line per dump, newest first; true if every one is intact and
/// there is at least one.
pub fn run(job: &Job, scope: Scope) -> Result<bool> {
    let location = dumps::location(job, scope, "verify")?;
    let planned = dumps::plan(&location, scope)?;
    if planned.is_empty() {
        outln!(
            "{}: no dumps yet of {} in {}",
            job.name(),
            location.names.name(),
            location.dir.display()
        );
        return Ok(false);
    }
    let mut intact = true;
    for p in &planned {
        let dump = &p.dump;
        let manifest = p.manifest.as_ref().ok().and_then(Option::as_ref);
        let suspect = if p.good() { "" } else { "; suspect" };
        let result = check(dump).and_then(|(size, sha256)| match manifest {
            Some(m) if m.sha256 != sha256 => Err(invalid(&format!(
                "its SHA-256 is {sha256}, not the {} its manifest recorded when it was written",
                m.sha256
            ))),
            _ => Ok(size),
        });
        let hashed = if manifest.is_some() {
            ", SHA-256 as in its manifest"
        } else {
            ", no manifest (made before manifests)"
        };
        match result {
            Ok(size) if dump.form == Form::None => outln!(
                "ok       {}  {}, read to its end{hashed}{suspect}; kept as the command \
                 wrote it, so there is no checksum of its own to check: check it with the \
                 tool that reads it",
                dump.path.display(),
                si(size)
            ),
            Ok(size) => outln!(
                "ok       {}  {} → {}{hashed}{suspect}",
                dump.path.display(),
                si(dump.size),
                si(size)
            ),
            Err(e) => {
                intact = false;
                outln!("DAMAGED  {}: {e}", dump.path.display());
            }
        }
    }
    Ok(intact)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads `dump` to its end: decompressed, checking the checksums of its
/// form (gzip's CRC-32 and length of each member, zstd's frame checksum),
/// or as it is for a dump kept as written. Returns the size of the contents
/// and the SHA-256 of the file, taken in the same pass.
fn check(dump: &Dump) -> io::Result<(u64, String)> {
    let (magic, name): (&[u8], _) = match dump.form {
        Form::Gzip => (&[0x1f, 0x8b], "gzip"),
        Form::Zstd => (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        Form::None => (&[], ""),
    };
    let mut file = File::open(&dump.path)?;
    let mut start = vec![0; magic.len()];
    file.read_exact(&mut start)
        .map_err(|_| invalid(&format!("too short to be {name}")))?;
    if start != magic {
        return Err(invalid(&format!("not in {name} format")));
    }
    let mut file = Hashing {
        inner: File::open(&dump.path)?,
        hash: Sha256::new(),
    };
    let truncated = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            invalid(&format!("truncated: the {name} stream ends early"))
        }
        _ => e,
    };
    let size = match dump.form {
        Form::Gzip => {
            io::copy(&mut MultiGzDecoder::new(&mut file), &mut io::sink()).map_err(truncated)?
        }
        Form::Zstd => {
            io::copy(&mut zstd::Decoder::new(&mut file)?, &mut io::sink()).map_err(truncated)?
        }
        Form::None => match io::copy(&mut file, &mut io::sink())? {
            0 => return Err(invalid("empty")),
            size => size,
        },
    };
    // What the decoder did not need (padding after the stream) is part of
    // the file too.
    io::copy(&mut file, &mut io::sink())?;
    let sha256 = manifest::hex(&file.hash.finalize());
    Ok((size, sha256))
}

/// Reads through, hashing what it read.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::path::Path;

    fn dump(dir: &Path, form: Form, bytes: &[u8]) -> Dump {
        let path = dir.join(format!("dump.{form}"));
        std::fs::write(&path, bytes).unwrap();
        Dump {
            stamp: jobkit::dumpfile::Stamp::parse("20261122T000000Z").unwrap(),
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
            let (size, sha256) = check(&dump(&dir, form, bytes)).unwrap();
            assert_eq!(size, text.len() as u64, "{form}");
            assert_eq!(sha256, manifest::hex(&Sha256::digest(bytes)), "{form}");
        }
        for (form, bytes) in [(Form::Gzip, &gz), (Form::Zstd, &zst_checked)] {
            let [truncated, flipped, empty] = damaged(bytes);
            let e = check(&dump(&dir, form, &truncated)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("truncated: the {form} stream ends early")
            );
            // The checksum catches it: gzip's CRC-32, zstd's xxHash64.
            assert!(check(&dump(&dir, form, &flipped)).is_err(), "{form}");
            let e = check(&dump(&dir, form, &empty)).unwrap_err();
            assert_eq!(e.to_string(), format!("too short to be {form}"));
            let e = check(&dump(&dir, form, &text)).unwrap_err();
            assert_eq!(e.to_string(), format!("not in {form} format"));
        }
        let e = check(&dump(&dir, Form::None, b"")).unwrap_err();
        assert_eq!(e.to_string(), "empty");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
