//! Writes the lists of jobs, taken from the timers in systemd/ and
//! systemd/user/ (the one list of the jobs' units), for the `timerapps`
//! command: `$OUT_DIR/jobs.rs`.

use std::fs;
use std::path::Path;

/// The timers in `dir`, without `.timer`, sorted.
fn timers(dir: &str) -> Vec<String> {
    let mut jobs: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir} holds the units: {e}"))
        .filter_map(|e| {
            let name = e.expect("the units' directory is listable").file_name();
            name.to_str()?.strip_suffix(".timer").map(str::to_owned)
        })
        .collect();
    jobs.sort();
    jobs
}

fn main() {
    println!("cargo::rerun-if-changed=systemd");
    println!("cargo::rerun-if-changed=systemd/user");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("jobs.rs");
    fs::write(
        out,
        format!(
            "/// Every job's timer in the system's manager, without `.timer`; a\n\
             /// template ends in `@`.\n\
             pub const JOBS: &[&str] = &{:?};\n\
             /// The same for users' own managers.\n\
             pub const USER_JOBS: &[&str] = &{:?};\n",
            timers("systemd"),
            timers("systemd/user")
        ),
    )
    .expect("OUT_DIR is writable");
}
