//! Parallel gzip, the way pigz does it: the input is cut into blocks that
//! worker threads deflate at once, each primed with the 32 KiB before it as
//! dictionary (so the ratio stays that of plain gzip) and ended with a sync
//! flush (so the blocks concatenate into one deflate stream). The result is
//! one ordinary gzip member that gzip, zcat and every library read.
//!
//! At most `2 × threads` blocks are between the reader and the file at any
//! time, so memory does not depend on the size of the input.

use crate::stream::{Failure, STACK};
use flate2::{Compress, Compression, Crc, FlushCompress};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, PoisonError};

/// The input each worker deflates at once.
const GZIP_JOB: usize = 128 * 1024;
/// Deflate's window: what a block may refer back to.
const WINDOW: usize = 32 * 1024;

/// What one worker's deflate state takes (zlib-rs: a double window, the
/// hash chains and head, the pending and symbol buffers).
const DEFLATE_STATE: u64 = 384 << 10;

/// The most memory compressing on `threads` workers takes: each worker's
/// deflate state and stack, and every block between the reader and the
/// file (those in flight and the one being read), each with its dictionary
/// and its output, which grows by doubling up to twice the block for
/// incompressible input.
pub fn memory(threads: u64) -> u64 {
    let block = (GZIP_JOB + WINDOW + 2 * GZIP_JOB) as u64;
    threads * (DEFLATE_STATE + STACK) + (2 * threads + 1) * block
}

/// Compresses all of `input` into `out` with `threads` workers at `level`
/// (1–9); returns the bytes read and the bytes written.
pub fn compress(
    input: &mut impl Read,
    out: &mut impl Write,
    level: u32,
    threads: usize,
) -> Result<(u64, u64), Failure> {
    let level = Compression::new(level);
    let threads = threads.max(1);
    let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
    let queue = Mutex::new(queue);
    let (done, results) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done = done.clone();
            let queue = &queue;
            s.spawn(move || worker(queue, done, level));
        }
        drop(done);
        // Returning drops `jobs`, which lets the workers finish, also on error.
        produce(
            input,
            Output::new(out, results, level)?,
            jobs,
            2 * threads as u64,
        )
    })
}

struct Job {
    seq: u64,
    dictionary: Vec<u8>,
    data: Vec<u8>,
    /// Where the deflated block goes: a buffer from an earlier block.
    bytes: Vec<u8>,
}

struct Deflated {
    seq: u64,
    bytes: Vec<u8>,
    crc: Crc,
    /// The input buffer, handed back for a later block.
    data: Vec<u8>,
}

/// Buffers of written blocks, reused so that the job does not allocate (and
/// the kernel does not map and zero) fresh memory for every block.
#[derive(Default)]
struct Spare {
    data: Vec<Vec<u8>>,
    bytes: Vec<Vec<u8>>,
}

fn produce<W: Write>(
    input: &mut impl Read,
    mut out: Output<'_, W>,
    jobs: SyncSender<Job>,
    max_in_flight: u64,
) -> Result<(u64, u64), Failure> {
    let mut read = 0;
    let mut dispatched = 0;
    let mut window = Vec::new();
    loop {
        let data = fill(input, out.spare.data.pop().unwrap_or_default())?;
        if data.is_empty() {
            break;
        }
        read += data.len() as u64;
        let full = data.len() == GZIP_JOB;
        let tail = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let job = Job {
            seq: dispatched,
            dictionary: std::mem::replace(&mut window, tail),
            data,
            bytes: out.spare.bytes.pop().unwrap_or_default(),
        };
        while dispatched - out.next >= max_in_flight {
            out.write_next()?;
        }
        jobs.send(job).map_err(|_| Failure::Write(worker_lost()))?;
        dispatched += 1;
        out.write_ready()?;
        if !full {
            break;
        }
    }
    drop(jobs);
    while out.next < dispatched {
        out.write_next()?;
    }
    out.finish(read).map(|written| (read, written))
}

/// Reads a whole block into `data`, or what is left before the end of the input.
fn fill(input: &mut impl Read, mut data: Vec<u8>) -> Result<Vec<u8>, Failure> {
    data.resize(GZIP_JOB, 0);
    let mut len = 0;
    while len < GZIP_JOB {
        match input.read(&mut data[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Read(e)),
        }
    }
    data.truncate(len);
    Ok(data)
}

fn worker_lost() -> io::Error {
    io::Error::other("a compression thread stopped")
}

fn worker(queue: &Mutex<Receiver<Job>>, done: Sender<io::Result<Deflated>>, level: Compression) {
    let mut deflate = Compress::new(level, false);
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        if done.send(deflate_block(&mut deflate, job)).is_err() {
            return;
        }
    }
}

fn deflate_block(deflate: &mut Compress, job: Job) -> io::Result<Deflated> {
    deflate.reset();
    if !job.dictionary.is_empty() {
        deflate
            .set_dictionary(&job.dictionary)
            .map_err(io::Error::other)?;
    }
    let mut bytes = job.bytes;
    bytes.clear();
    bytes.reserve(job.data.len() / 2 + 64);
    let mut consumed = 0;
    // A sync flush is complete once deflate leaves output space unused.
    loop {
        if bytes.capacity() - bytes.len() < 64 {
            bytes.reserve(bytes.capacity());
        }
        let before = deflate.total_in();
        deflate
            .compress_vec(&job.data[consumed..], &mut bytes, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        consumed += (deflate.total_in() - before) as usize;
        if consumed == job.data.len() && bytes.len() < bytes.capacity() {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(&job.data);
    Ok(Deflated {
        seq: job.seq,
        bytes,
        crc,
        data: job.data,
    })
}

/// The gzip member being written: blocks go out in input order.
struct Output<'a, W> {
    out: &'a mut W,
    results: Receiver<io::Result<Deflated>>,
    ready: BTreeMap<u64, Deflated>,
    spare: Spare,
    next: u64,
    crc: Crc,
    written: u64,
    level: Compression,
}

impl<'a, W: Write> Output<'a, W> {
    fn new(
        out: &'a mut W,
        results: Receiver<io::Result<Deflated>>,
        level: Compression,
    ) -> Result<Self, Failure> {
        let mut output = Output {
            out,
            results,
            ready: BTreeMap::new(),
            spare: Spare::default(),
            next: 0,
            crc: Crc::new(),
            written: 0,
            level,
        };
        // RFC 1952 header: deflate, no name, no time, OS Unix; XFL as gzip sets it.
        let xfl = match level.level() {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        output.put(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
        Ok(output)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.out.write_all(bytes).map_err(Failure::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn accept(&mut self, result: io::Result<Deflated>) -> Result<(), Failure> {
        let block = result.map_err(Failure::Write)?;
        self.ready.insert(block.seq, block);
        Ok(())
    }

    /// Writes the next block in order, waiting for it if it is not done yet.
    fn write_next(&mut self) -> Result<(), Failure> {
        while !self.ready.contains_key(&self.next) {
            let result = self
                .results
                .recv()
                .map_err(|_| Failure::Write(worker_lost()))?;
            self.accept(result)?;
        }
        self.write_ready()
    }

    /// Writes the blocks that are done and next in order, without waiting.
    fn write_ready(&mut self) -> Result<(), Failure> {
        while let Ok(result) = self.results.try_recv() {
            self.accept(result)?;
        }
        while let Some(block) = self.ready.remove(&self.next) {
            self.put(&block.bytes)?;
            self.crc.combine(&block.crc);
            self.next += 1;
            self.spare.data.push(block.data);
            self.spare.bytes.push(block.bytes);
        }
        Ok(())
    }

    /// Ends the deflate stream with an empty final block, then the trailer.
    fn finish(mut self, read: u64) -> Result<u64, Failure> {
        let mut last = Vec::with_capacity(64);
        Compress::new(self.level, false)
            .compress_vec(&[], &mut last, FlushCompress::Finish)
            .map_err(|e| Failure::Write(io::Error::other(e)))?;
        self.put(&last)?;
        let mut trailer = [0; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the input size modulo 2^32.
        trailer[4..].copy_from_slice(&(read as u32).to_le_bytes());
        self.put(&trailer)?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use flate2::write::GzEncoder;

    /// Text that compresses about like a real dump, with some noise in it.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let line = format!(
                "INSERT INTO t VALUES ({}, 'name {:x}', {});\n",
                data.len(),
                state,
                state % 97
            );
            data.extend_from_slice(line.as_bytes());
        }
        data.truncate(len);
        data
    }

    fn roundtrip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let (read, written) = compress(&mut &data[..], &mut out, 6, threads).unwrap();
        assert_eq!((read, written), (data.len() as u64, out.len() as u64));
        let mut back = Vec::new();
        GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data, "{} bytes, {threads} threads", data.len());
        out
    }

    #[test]
    fn one_gzip_member_whatever_the_size_and_threads() {
        for len in [
            0,
            1,
            WINDOW,
            GZIP_JOB - 1,
            GZIP_JOB,
            GZIP_JOB + 1,
            5 * GZIP_JOB + 17,
        ] {
            for threads in [1, 2, 3, 8] {
                roundtrip(&sample(len), threads);
            }
        }
    }

    #[test]
    fn ratio_stays_that_of_single_stream_gzip() {
        let data = sample(40 * GZIP_JOB);
        let parallel = roundtrip(&data, 4).len();
        let mut single = GzEncoder::new(Vec::new(), Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            parallel as f64 <= single as f64 * 1.01,
            "{parallel} vs {single}"
        );
    }
}
