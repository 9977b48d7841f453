//! What both compressors, zstd's and pgzip's, share: which side of the
//! stream failed, and what a worker thread's stack counts for in the memory
//! a form needs.

use std::io;

/// What each compression thread's stack is counted for: all of the
/// 128 KiB musl gives zstd's threads; of the 2 MiB Rust gives pgzip's only
/// the pages touched are resident, far fewer.
pub const STACK: u64 = 128 << 10;

/// Which side of the stream failed.
#[derive(Debug)]
pub enum Failure {
    Read(io::Error),
    Write(io::Error),
}
