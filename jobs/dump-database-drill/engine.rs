//! What every kind of throwaway server does for the drill: take the dump on
//! a restoring tool's standard input, then tell which tables it holds and
//! their rows.

use crate::process::Child;
use jobkit::Result;
use std::io::Write;
use std::path::Path;

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
}

pub trait Engine {
    /// The server and its version, for the record: `PostgreSQL 15.14`.
    fn server(&self) -> String;
    /// Starts the tool that restores the dump from its input.
    fn restore(&mut self) -> Result<Restore>;
    /// Every table restored, with its rows.
    fn inventory(&mut self) -> Result<Vec<Found>>;
    /// Stops the server cleanly; dropping the engine kills it instead.
    fn stop(&mut self) -> Result<()>;
}

/// The space a server of this kind needs besides the restored data, in
/// bytes: its own files, logs and journal.
pub fn overhead(kind: Kind) -> u64 {
    const MIB: u64 = 1 << 20;
    match kind {
        Kind::Postgresql => 128 * MIB,
        Kind::Mariadb => 160 * MIB,
        Kind::Sqlite => MIB,
    }
}

/// The kinds of server, by the dump's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgresql,
    Mariadb,
    Sqlite,
}

/// Statements made of numbered counts, so that names need no quoting in
/// what comes back: `SELECT 0, count(*) FROM a UNION ALL SELECT 1, …`.
pub fn count_query(tables: &[String]) -> String {
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| format!("SELECT {i}, count(*) FROM {t}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Reads `INDEX<tab>ROWS` lines of [`count_query`] back onto `names`.
pub fn counted(
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
    fn counts_come_back_by_number() {
        let q = count_query(&["\"a\"".into(), "\"b\"\"c\"".into()]);
        assert_eq!(
            q,
            "SELECT 0, count(*) FROM \"a\" UNION ALL SELECT 1, count(*) FROM \"b\"\"c\""
        );
        let names = vec![vec!["a".to_owned()], vec!["b\"c".to_owned()]];
        let found = counted("1\t7\n0\t3\n", "main", names.clone()).unwrap();
        assert_eq!(found[0].rows, 3);
        assert_eq!(found[1].rows, 7);
        assert!(counted("0\t3\n", "main", names).is_err());
        assert_eq!(quoted("b\"c", '"'), "\"b\"\"c\"");
    }
}
