//! What every kind of throwaway server does for the drill: take the dump on
//! a restoring tool's standard input, then tell which tables it holds and
//! their rows.

use jobkit::family::Format;
use jobkit::host::process::{Child, Signaller};
use jobkit::{Error, Exit, Result};
use std::io::{self, Write};
use std::path::Path;
use std::thread::JoinHandle;

/// A table found in the restored server, and its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub database: String,
    /// The table's name in parts, unquoted: `["public", "t"]`, `["t"]`.
    pub table: Vec<String>,
    pub rows: u64,
}

/// A restore under way: the tool, and where the dump goes.
pub struct Restore {
    pub tool: Child,
    pub input: Box<dyn Write>,
    /// A tool that takes the dump first and feeds the restoring one.
    pub feeder: Option<Feeder>,
}

/// The first tool of a pipeline (`pg_restore -f -`), and the thread that
/// copies its output into the restoring tool.
pub struct Feeder {
    pub child: Child,
    pub pump: JoinHandle<io::Result<()>>,
}

/// Hands `take` each whole line of `buf`, its newline included: the first
/// joined to what an earlier write left in `partial`, which keeps what is
/// left after the last newline. The guards read a dump line by line as
/// its blocks come.
pub fn each_line(
    partial: &mut Vec<u8>,
    buf: &[u8],
    mut take: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut rest = buf;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let (line, tail) = rest.split_at(end + 1);
        if partial.is_empty() {
            take(line)?;
        } else {
            let mut whole = std::mem::take(partial);
            whole.extend_from_slice(line);
            take(&whole)?;
        }
        rest = tail;
    }
    partial.extend_from_slice(rest);
    Ok(())
}

/// Whether an error of the stream into a restoring tool is the guard's
/// refusal of what the dump holds.
pub fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

impl Restore {
    /// Kill switches for every tool of the restore, for the watch over the
    /// file system.
    pub fn signallers(&mut self) -> Result<Vec<Signaller>> {
        let mut tools = vec![&mut self.tool];
        if let Some(feeder) = &mut self.feeder {
            tools.push(&mut feeder.child);
        }
        let mut signallers = Vec::new();
        for tool in tools {
            signallers.extend(tool.signaller(libc::SIGKILL)?);
        }
        Ok(signallers)
    }

    /// Stops every tool of the restore at once, before they see the end
    /// of their input.
    pub fn kill(self) {
        let Restore {
            mut tool,
            input,
            feeder,
        } = self;
        tool.kill();
        if let Some(mut feeder) = feeder {
            feeder.child.kill();
            let _ = feeder.pump.join();
        }
        drop(input);
    }

    /// Ends the dump's input and waits for the tools; the failure that
    /// says most wins: the guard's refusal, the restoring tool's error, the
    /// feeder's.
    pub fn finish(self) -> std::result::Result<(), Finished> {
        let Restore {
            mut tool,
            input,
            feeder,
        } = self;
        drop(input);
        let Some(feeder) = feeder else {
            return tool.wait().map_err(Finished::Tool);
        };
        let fed = feeder.child.wait();
        let pumped = feeder
            .pump
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the pump thread panicked")));
        match pumped {
            Err(e) if refused(&e) => {
                tool.kill();
                Err(Finished::Refused(e))
            }
            pumped => {
                tool.wait().map_err(Finished::Tool)?;
                fed.map_err(Finished::Tool)?;
                pumped.map_err(|e| {
                    Finished::Tool(Error::new(
                        Exit::Failure,
                        format!("cannot pass pg_restore's output to psql: {e}"),
                    ))
                })
            }
        }
    }
}

/// How a restore failed.
pub enum Finished {
    /// The guard refused what the dump holds.
    Refused(io::Error),
    /// A tool failed.
    Tool(Error),
}

pub trait Engine {
    /// The server and its version, for the record: `PostgreSQL 15.14`.
    fn server(&self) -> String;
    /// Starts the tool that restores the dump from its input.
    fn restore(&mut self) -> Result<Restore>;
    /// How to stop the server at once from another thread, with all its
    /// processes: for the watch over the file system. None where the
    /// restoring tool writes the database itself.
    fn halt(&mut self) -> Result<Option<Signaller>>;
    /// Every table restored, with its rows.
    fn inventory(&mut self) -> Result<Vec<Found>>;
    /// The roles the restore made empty because the dump only names them
    /// (as owners or grantees): what a restore on a new host lacks until
    /// the roles are restored first. `None` where the dump makes its own
    /// roles, or the server has none to make.
    fn empty_roles(&mut self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }
    /// Stops the server cleanly; dropping the engine kills it instead
    /// (`process::Child` kills on drop).
    fn stop(&mut self) -> Result<()>;
}

/// A kind of throwaway server, by the name a family gives its engine
/// ([`jobkit::family::Family::engine`]).
pub struct Kind {
    pub name: &'static str,
    /// The space it needs besides the restored data, in bytes: its own
    /// files, logs and journal.
    pub overhead: u64,
    pub start: Start,
}

/// Starts a server in the drill's directory for a dump of the format whose
/// decompressed stream begins with the bytes given, with the room of its
/// file system, in bytes, that the drill may take.
pub type Start = fn(&Path, Format, &[u8], u64) -> Result<Box<dyn Engine>>;

/// How many tables one counting statement names: SQLite allows at most
/// 500 terms in a compound SELECT.
const PER_QUERY: usize = 200;

/// Every table of `names` (quoted for the server as `quoted`) in
/// `database`, with its rows, counted by `sql` in statements of numbered
/// counts, so that names need no quoting in what comes back:
/// `SELECT 0, count(*) FROM a UNION ALL SELECT 1, …`. `tool` names the
/// client in errors.
pub fn count_rows(
    names: Vec<Vec<String>>,
    quoted: &[String],
    database: &str,
    tool: &str,
    mut sql: impl FnMut(&str) -> Result<String>,
) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    for (names, quoted) in names.chunks(PER_QUERY).zip(quoted.chunks(PER_QUERY)) {
        let query = quoted
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT {i}, count(*) FROM {t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let output = sql(&query)?;
        found.extend(
            counted(&output, database, names.to_vec())
                .map_err(|e| Error::new(Exit::Failure, format!("{tool}: {e}")))?,
        );
    }
    Ok(found)
}

/// Reads `INDEX<tab>ROWS` lines of a counting statement back onto `names`.
fn counted(
    output: &str,
    database: &str,
    names: Vec<Vec<String>>,
) -> std::result::Result<Vec<Found>, String> {
    let mut rows = vec![None; names.len()];
    for line in output.lines() {
        let (i, n) = line
            .split_once('\t')
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.trim().parse::<u64>().ok()?)))
            .ok_or_else(|| format!("unexpected count line {line:?}"))?;
        if let Some(slot) = rows.get_mut(i) {
            *slot = Some(n);
        }
    }
    names
        .into_iter()
        .zip(rows)
        .map(|(table, rows)| {
            Ok(Found {
                database: database.to_owned(),
                rows: rows.ok_or_else(|| format!("no count for {}", table.join(".")))?,
                table,
            })
        })
        .collect()
}

/// Quotes `name` as an SQL identifier with `quote` (`"` or `` ` ``).
pub fn quoted(name: &str, quote: char) -> String {
    let doubled = name.replace(quote, &format!("{quote}{quote}"));
    format!("{quote}{doubled}{quote}")
}

/// A directory for the server below the drill's own.
pub fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir(dir).map_err(|e| {
        jobkit::Error::io(
            jobkit::Exit::CantCreate,
            "cannot make the directory",
            dir,
            &e,
            "",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_back_by_number_in_statements_of_at_most_200_tables() {
        let names: Vec<Vec<String>> = (0..450).map(|i| vec![format!("t{i}")]).collect();
        let as_sql: Vec<String> = names.iter().map(|n| quoted(&n[0], '"')).collect();
        let mut statements = Vec::new();
        let found = count_rows(names, &as_sql, "main", "sqlite3", |q| {
            let terms = q.split(" UNION ALL ").count();
            assert!(q.starts_with("SELECT 0, count(*) FROM \"t"), "{q}");
            statements.push(terms);
            // Each table's rows: its number, answered out of order.
            let first: usize = q[q.find("\"t").unwrap() + 2..]
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            Ok((0..terms)
                .rev()
                .map(|i| format!("{i}\t{}\n", first + i))
                .collect())
        })
        .unwrap();
        assert_eq!(statements, [200, 200, 50]);
        assert_eq!(found.len(), 450);
        assert!(found
            .iter()
            .enumerate()
            .all(|(i, f)| f.rows == i as u64 && f.table == [format!("t{i}")]));
        let e = count_rows(
            vec![vec!["a".into()]],
            &["a".into()],
            "main",
            "psql",
            |_| Ok(String::new()),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "psql: no count for a");
        assert_eq!(quoted("b\"c", '"'), "\"b\"\"c\"");
    }
}
