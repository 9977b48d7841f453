//! `timerapps-deb`: the package's build tool, run by `packaging/build`.
//!
//! - `units DIR` writes the jobs' unit files into DIR (`systemd/`) from
//!   their description in `units.rs`; `units --check DIR` fails, naming
//!   each file, when DIR holds anything else.
//! - `scripts DIR` fills in the tokens of the maintainer scripts in DIR
//!   (the unpacked package's `DEBIAN/`) from the job catalogue, and fails
//!   on a token it does not know.

mod scripts;
mod units;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["units", dir] => units::write_all(Path::new(dir)).map_err(|e| format!("{dir}: {e}")),
        ["units", "--check", dir] => match units::drift(Path::new(dir), units::SOURCE) {
            drift if drift.is_empty() => Ok(()),
            drift => Err(format!(
                "{dir} drifted from packaging/debian/units.rs; run \"cargo run -p \
                 timerapps-deb -- units {dir}\" and commit the result:\n{}",
                drift.join("\n")
            )),
        },
        ["scripts", dir] => scripts::fill(Path::new(dir)),
        _ => Err("usage: timerapps-deb units [--check] DIR | scripts DIR".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("timerapps-deb: {e}");
            ExitCode::FAILURE
        }
    }
}
