//! Writes the list of jobs, taken from the timers in systemd/ (the one list
//! of the jobs' units), for the `timerapps` command: `$OUT_DIR/jobs.rs`.

use std::fs;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=systemd");
    let mut jobs: Vec<String> = fs::read_dir("systemd")
        .expect("systemd/ holds the units")
        .filter_map(|e| {
            let name = e.expect("systemd/ is listable").file_name();
            name.to_str()?.strip_suffix(".timer").map(str::to_owned)
        })
        .collect();
    jobs.sort();
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("jobs.rs");
    fs::write(
        out,
        format!(
            "/// Every job's timer without `.timer`; a template ends in `@`.\n\
             pub const JOBS: &[&str] = &{jobs:?};\n"
        ),
    )
    .expect("OUT_DIR is writable");
}
