//! `status`: a row per job, as a table or as JSON; healthy or not. Facts are
//! gathered from systemd (`gather`), judged by one rule (`health`), and
//! shown as the JSON model (`model`) or the table view of it (`table`).

mod gather;
mod health;
mod model;
mod table;

use crate::jobs::{self, Job};
use crate::systemd::{Scope, Systemd};
use jobkit::{out, outln, Result};
use model::Row;
use std::io::IsTerminal;

/// Prints the jobs' status; true if every job shown is healthy.
pub fn run(args: &[String], json: bool, scope: Scope) -> Result<bool> {
    let named = args
        .iter()
        .map(|a| Job::resolve(a, scope))
        .collect::<Result<Vec<_>>>()?;
    let sd = Systemd::connect(scope)?;
    let jobs = if named.is_empty() {
        jobs::all(&sd)?
    } else {
        named
    };
    let now = gather::now_usec();
    let rows = jobs
        .iter()
        .map(|job| {
            let facts = gather::facts(&sd, job, now)?;
            Ok(Row::new(&facts, health::problems(&facts, now), now))
        })
        .collect::<Result<Vec<_>>>()?;
    if json {
        let text = serde_json::to_string_pretty(&rows).expect("rows serialize");
        outln!("{text}");
    } else {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        out(format_args!("{}", table::render(&rows, now, color)));
    }
    Ok(rows.iter().all(|r| r.healthy))
}
