//! The three forms a dump is stored in (DUMP_COMPRESS): parallel gzip,
//! zstd on the reference library's own worker threads, or the command's
//! bytes as they are. Each streams with memory that does not depend on the
//! size of the dump.

use crate::pgzip;
use crate::stream::{Failure, STACK};
use jobkit::dumpfile::Form;
use std::io::{self, Read, Write};
use zstd::stream::raw::CParameter;
use zstd::zstd_safe::{zstd_sys, Strategy};

/// What DUMP_COMPRESS, DUMP_GZIP_LEVEL and DUMP_ZSTD_LEVEL chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip { level: u32 },
    Zstd { level: i32 },
    None,
}

impl Compression {
    pub fn form(self) -> Form {
        match self {
            Compression::Gzip { .. } => Form::Gzip,
            Compression::Zstd { .. } => Form::Zstd,
            Compression::None => Form::None,
        }
    }

    /// The most memory compressing in this form on `threads` threads can
    /// take, in bytes: an upper bound, which `tests/it/memory.rs` holds to
    /// the peak measured on a real dump.
    pub fn memory(self, threads: usize) -> u64 {
        let threads = threads.max(1) as u64;
        match self {
            Compression::Gzip { .. } => pgzip::memory(threads),
            Compression::Zstd { level } => zstd_memory(level, threads),
            Compression::None => READ_BLOCK as u64,
        }
    }
}

/// zstd's multithreaded compressor on `threads` workers (zstdmt_compress.c):
/// each worker's context, the ring of input it compresses from, and the
/// output of every job not yet written.
fn zstd_memory(level: i32, threads: u64) -> u64 {
    // SAFETY: both compute from their arguments alone; 0 is an unknown
    // source size, which gives the largest tables.
    let (context, params) = unsafe {
        (
            zstd_sys::ZSTD_estimateCCtxSize(level),
            zstd_sys::ZSTD_getCParams(level, 0, 0),
        )
    };
    // Each job starts with the end of the one before it as its prefix: the
    // whole window at the strongest strategy, down to an eighth of it at
    // the fastest ones (ZSTDMT_overlapLog_default); a job is at least that.
    let window = 1u64 << params.windowLog;
    let overlap = window
        >> match params.strategy {
            Strategy::ZSTD_btultra2 => 0,
            Strategy::ZSTD_btultra | Strategy::ZSTD_btopt => 1,
            Strategy::ZSTD_btlazy2 | Strategy::ZSTD_lazy2 => 2,
            _ => 3,
        };
    let job = u64::from(ZSTD_JOB).max(overlap);
    // The input ring holds a job per worker, two more and the prefix.
    let input = (threads + 3) * job;
    // Each entry of the job table, a power of two above threads + 1, may
    // hold its job's output until it is written; incompressible data takes
    // the whole bound.
    let bound = zstd::zstd_safe::compress_bound(job as usize) as u64;
    let output = (threads + 2).next_power_of_two() * bound;
    threads * (context as u64 + STACK) + input + output
}

/// Reads a block at a time: the size zstd's streaming API asks for, and
/// large enough that a plain copy costs a few system calls per megabyte.
const READ_BLOCK: usize = 128 * 1024;
/// The input each zstd worker compresses at once.
const ZSTD_JOB: u32 = 4 << 20;

/// Streams all of `input` into `out` in the chosen form on `threads`
/// threads; returns the bytes read and the bytes written.
pub fn compress(
    input: &mut impl Read,
    out: &mut impl Write,
    how: Compression,
    threads: usize,
) -> Result<(u64, u64), Failure> {
    match how {
        Compression::Gzip { level } => pgzip::compress(input, out, level, threads),
        Compression::Zstd { level } => zstd(input, out, level, threads),
        Compression::None => {
            let mut out = CountingWriter::new(out);
            let read = copy(input, &mut out)?;
            out.flush().map_err(Failure::Write)?;
            Ok((read, out.count))
        }
    }
}

fn zstd(
    input: &mut impl Read,
    out: &mut impl Write,
    level: i32,
    threads: usize,
) -> Result<(u64, u64), Failure> {
    let mut out = CountingWriter::new(out);
    let mut encoder = zstd::stream::write::Encoder::new(&mut out, level).map_err(Failure::Write)?;
    // The frame carries a checksum of the contents, which `zstd -t` and
    // `timerapps verify` check, as gzip's CRC-32 is checked.
    encoder.include_checksum(true).map_err(Failure::Write)?;
    // Workers compress while this thread reads the command's output and
    // writes what they finished, as pgzip's workers do.
    encoder
        .multithread(u32::try_from(threads.max(1)).unwrap_or(u32::MAX))
        .map_err(Failure::Write)?;
    // Each worker holds a job of input and its output: zstd's default of 4
    // windows (8 MiB at level 3) costs 12 MiB a thread, this a little over
    // half that, at the same speed and ratio.
    encoder
        .set_parameter(CParameter::JobSize(ZSTD_JOB))
        .map_err(Failure::Write)?;
    let read = copy(input, &mut encoder)?;
    encoder.finish().map_err(Failure::Write)?;
    Ok((read, out.count))
}

/// Copies `input` to `out` a block at a time, telling a failed read from a
/// failed write.
fn copy(input: &mut impl Read, out: &mut impl Write) -> Result<u64, Failure> {
    let mut buf = vec![0; READ_BLOCK];
    let mut read = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(read),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(Failure::Write)?;
        read += n as u64;
    }
}

/// Counts what reaches the file.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W> CountingWriter<W> {
    fn new(inner: W) -> Self {
        CountingWriter { inner, count: 0 }
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| format!("row {} {}\n", i, i * 7919 % 1013))
            .flat_map(String::into_bytes)
            .take(len)
            .collect()
    }

    #[test]
    fn zstd_roundtrips_with_a_checksum_on_any_threads() {
        for len in [0, 1, READ_BLOCK - 1, READ_BLOCK + 1, 3 << 20] {
            for threads in [1, 2, 4] {
                let data = sample(len);
                let mut out = Vec::new();
                let how = Compression::Zstd { level: 3 };
                let (read, written) = compress(&mut &data[..], &mut out, how, threads).unwrap();
                assert_eq!((read, written), (len as u64, out.len() as u64));
                assert_eq!(zstd::decode_all(&out[..]).unwrap(), data, "{len} {threads}");
                // Frame header descriptor: bit 2 is the content checksum flag.
                assert_ne!(out[4] & 0b100, 0, "no checksum");
            }
        }
    }

    #[test]
    fn none_copies_the_bytes_as_they_are() {
        let data = sample(READ_BLOCK * 3 + 5);
        let mut out = Vec::new();
        let counts = compress(&mut &data[..], &mut out, Compression::None, 2).unwrap();
        assert_eq!(counts, (data.len() as u64, data.len() as u64));
        assert_eq!(out, data);
    }

    #[test]
    fn errors_say_which_side_failed() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("read"))
            }
        }
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("write"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = sample(3 << 20);
        for how in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
            Compression::None,
        ] {
            let r = compress(&mut Broken, &mut Vec::new(), how, 2);
            assert!(matches!(r, Err(Failure::Read(_))), "{how:?}");
            let r = compress(&mut &data[..], &mut Broken, how, 2);
            assert!(matches!(r, Err(Failure::Write(_))), "{how:?}");
        }
    }
}
