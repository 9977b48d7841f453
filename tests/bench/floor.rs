//! The least a job can cost: an empty program built with the same release
//! profile as the jobs, which the benchmark compares them with.

fn main() {}
