//! `status`: a row per job, as a table or as JSON; healthy or not. Facts are
//! gathered from systemd (`gather`), judged by one rule (`health`), and
//! shown as the JSON model (`model`) or the table view of it (`table`).

mod gather;
mod health;
mod model;
mod table;

use crate::jobs::{self, Job};
use crate::systemd::{Scope, Systemd};
use jobkit::{Error, Exit, Result};
use model::{Row, State};
use std::io::{IsTerminal, Write};

/// What `status --json` prints: the rows under a version of their layout,
/// which changes when a field changes meaning or goes away.
#[derive(serde::Serialize)]
struct Report<'a> {
    version: u32,
    jobs: &'a [Row],
}

/// Prints the jobs' status; returns the exit status, as monitoring plugins
/// do: 0 every job healthy, 1 one failed or is stale, 3 one could not be
/// read. A job whose state cannot be read is shown as unknown and the
/// others as they are.
pub fn run(args: &[String], json: bool, scope: Scope) -> Result<u8> {
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
    let rows: Vec<Row> = jobs
        .iter()
        .map(|job| match gather::facts(&sd, job, now) {
            Ok(facts) => Row::new(
                &facts,
                health::problems(&facts, now),
                health::unknowns(&facts),
                now,
            ),
            Err(e) => Row::unknown(job, &e),
        })
        .collect();
    let text = if json {
        let report = Report {
            version: 1,
            jobs: &rows,
        };
        let mut text = serde_json::to_string_pretty(&report).expect("rows serialize");
        text.push('\n');
        text
    } else {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        table::render(&rows, now, color)
    };
    // A report cut short by a full disk or a closed pipe is no report.
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            Error::new(
                Exit::Unknown,
                format!("cannot write the status to standard output: {e}"),
            )
        })?;
    Ok(if rows.iter().any(|r| r.state == State::Failing) {
        1
    } else if rows.iter().any(|r| r.state == State::Unknown) {
        Exit::Unknown.code()
    } else {
        0
    })
}
