//! Completeness, read from the stream as it passes (DUMP_CHECK): the dump
//! format is recognised from the first bytes, the rows of each table are
//! counted where the format shows them, and at the end the format's closing
//! line must be there. A dump whose end is missing was cut short (a pipe
//! without pipefail, `--force`, a wrapper script) and is never published.
//!
//! The markers, as the real tools write them (checked in tests/it/check.rs):
//! - `pg_dump`: `-- PostgreSQL database dump complete`, then at most
//!   comments, blank lines and `\unrestrict KEY`;
//! - `pg_dumpall`: `-- PostgreSQL database cluster dump complete`, likewise;
//! - `pg_dump -Fc`: starts with `PGDMP`; the format has no closing marker;
//! - `mariadb-dump`/`mysqldump`: last line `-- Dump completed on …`;
//! - `sqlite3 .dump`: last line `COMMIT;`.

use jobkit::dumpfile::manifest::{Check, Format, Table};
use std::io::{self, Read};

/// How much of the stream's start is looked at to recognise it.
const HEAD: usize = 256;
/// How much of its end is kept to find the closing line.
const TAIL: usize = 4096;
/// Longer lines are not parsed for table names (data, not statements).
const MAX_LINE: usize = 4096;

/// What a finished stream turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub format: Option<Format>,
    pub check: Check,
    pub tables: Option<Vec<Table>>,
}

/// A stream whose format was recognised but whose end is missing.
#[derive(Debug, PartialEq, Eq)]
pub struct Incomplete {
    pub format: Format,
    /// What the last line was instead of the closing line.
    pub seen: String,
}

/// A stream that is not of the format the command was asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Unexpected {
    pub expected: Format,
    /// The start of what it was.
    pub seen: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Failed {
    Incomplete(Incomplete),
    Unexpected(Unexpected),
}

/// The format `command` (program and arguments) writes, when it runs a
/// dump tool directly: the stream must then be of that format.
pub fn expected(command: &[String]) -> Option<Format> {
    let (program, args) = command.split_first()?;
    let base = program.rsplit('/').next().unwrap_or(program);
    match base {
        "pg_dump" => {
            let mut format = None;
            let mut args = args.iter();
            while let Some(a) = args.next() {
                let value = match a.as_str() {
                    "-F" | "--format" => args.next().map(String::as_str),
                    _ => a.strip_prefix("--format=").or_else(|| a.strip_prefix("-F")),
                };
                if value.is_some() {
                    format = value;
                }
            }
            match format.map(|f| f.to_ascii_lowercase()) {
                None => Some(Format::Postgresql),
                Some(f) if f == "p" || f == "plain" => Some(Format::Postgresql),
                Some(f) if f == "c" || f == "custom" => Some(Format::PostgresqlCustom),
                // Directory and tar archives are not checked.
                Some(_) => None,
            }
        }
        "pg_dumpall" => Some(Format::PostgresqlCluster),
        "mariadb-dump" | "mysqldump" => Some(Format::Mariadb),
        "sqlite3" if args.iter().any(|a| a.starts_with(".dump")) => Some(Format::Sqlite),
        _ => None,
    }
}

/// Where the row counter is in a statement that spans lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum In {
    Statements,
    /// Between `COPY … FROM stdin;` and `\.`.
    Copy,
    /// A MariaDB `INSERT … VALUES` with one row a line, until its `;`.
    Values,
}

/// Counts tables and rows, line by line.
struct Rows {
    format: Format,
    tables: Vec<Table>,
    database: Option<String>,
    within: In,
    /// The table rows are counted for.
    current: usize,
}

impl Rows {
    /// The table named `name` in the current database, added if new; it
    /// is the one rows are counted for from now on.
    fn table(&mut self, name: String) -> usize {
        let database = &self.database;
        let found = self
            .tables
            .iter()
            .rposition(|t| t.table == name && t.database == *database);
        let i = found.unwrap_or_else(|| {
            self.tables.push(Table {
                database: database.clone(),
                table: name,
                rows: Some(0),
            });
            self.tables.len() - 1
        });
        self.current = i;
        i
    }

    fn add(&mut self, rows: u64) {
        if let Some(t) = self.tables.get_mut(self.current) {
            t.rows = t.rows.map(|r| r + rows);
        }
    }

    /// One line without its newline. A line longer than [`MAX_LINE`] comes
    /// cut to its first bytes and its last one, with `long` set: only a
    /// line's start and end say anything here.
    fn line(&mut self, line: &[u8], long: bool) {
        match self.within {
            In::Copy => {
                if line == b"\\." {
                    self.within = In::Statements;
                } else {
                    self.add(1);
                }
                return;
            }
            In::Values => {
                if line.first() == Some(&b'(') {
                    self.add(1);
                }
                if line.ends_with(b";") {
                    self.within = In::Statements;
                }
                return;
            }
            In::Statements => {}
        }
        let start = &line[..line.len().min(MAX_LINE)];
        let line = match std::str::from_utf8(start) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&start[..e.valid_up_to()]).unwrap_or_default(),
        };
        match self.format {
            Format::Postgresql | Format::PostgresqlCluster => {
                if let Some(rest) = line.strip_prefix("COPY ") {
                    if line.ends_with(" FROM stdin;") {
                        let name = identifier(rest, b'"');
                        self.table(name);
                        self.within = In::Copy;
                    }
                } else if let Some(rest) = line.strip_prefix("\\connect ") {
                    self.database = Some(database(rest));
                }
            }
            Format::Sqlite => {
                if let Some(rest) = line.strip_prefix("INSERT INTO ") {
                    let name = identifier(rest, b'"');
                    self.table(name);
                    self.add(1);
                } else if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
                    self.table(identifier(rest, b'"'));
                }
            }
            Format::Mariadb => {
                if let Some(rest) = line.strip_prefix("INSERT INTO ") {
                    let name = identifier(rest, b'`');
                    let i = self.table(name);
                    if line.ends_with(" VALUES") {
                        self.within = In::Values;
                    } else if long || line.contains("),(") {
                        // Rows on one line: counting them would mean parsing
                        // every quoted string.
                        self.tables[i].rows = None;
                    } else {
                        self.add(1);
                    }
                } else if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
                    self.table(identifier(rest, b'`'));
                }
            }
            Format::PostgresqlCustom => {}
        }
    }
}

/// A possibly qualified, possibly quoted name at the start of `text`, as
/// written: `public.t`, `s2."odd name"`, `` `t` ``.
fn identifier(text: &str, quote: u8) -> String {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == quote {
            i += 1;
            while i < b.len() {
                if b[i] == quote {
                    if b.get(i + 1) == Some(&quote) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if b[i] == b'.' || b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80 {
            i += 1;
        } else {
            break;
        }
    }
    text[..i.min(text.len())].to_owned()
}

/// The database a `\connect` line switches to: `\connect shop`,
/// `\connect "odd name"`, or `\connect -reuse-previous=on "dbname='x'"`.
fn database(rest: &str) -> String {
    if let Some(conninfo) = rest.strip_prefix("-reuse-previous=on ") {
        let inner = conninfo.trim_matches('"');
        if let Some(name) = inner.strip_prefix("dbname='") {
            return name
                .strip_suffix('\'')
                .unwrap_or(name)
                .replace("\\'", "'")
                .replace("\\\\", "\\");
        }
        return inner.to_owned();
    }
    match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => rest.to_owned(),
    }
}

/// Watches a stream go by.
pub struct Scanner {
    expected: Option<Format>,
    /// The stream's first bytes, kept for messages.
    head: Vec<u8>,
    /// Set once the head was looked at.
    rows: Option<Option<Rows>>,
    format: Option<Format>,
    /// The unfinished last line, when a read ended inside it.
    partial: Vec<u8>,
    /// Whether the unfinished line outgrew MAX_LINE, and its last byte.
    long: bool,
    last: u8,
    tail: Vec<u8>,
}

impl Scanner {
    pub fn new(expected: Option<Format>) -> Scanner {
        Scanner {
            expected,
            head: Vec::with_capacity(HEAD),
            rows: None,
            format: None,
            partial: Vec::new(),
            long: false,
            last: 0,
            tail: Vec::with_capacity(2 * TAIL),
        }
    }

    /// Looks at the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.keep_tail(bytes);
        if self.rows.is_none() {
            let want = HEAD - self.head.len();
            self.head.extend_from_slice(&bytes[..want.min(bytes.len())]);
            if self.head.len() < HEAD {
                return;
            }
            self.start();
            let head = self.head.clone();
            self.lines(&head);
            self.lines(&bytes[want.min(bytes.len())..]);
            return;
        }
        self.lines(bytes);
    }

    fn start(&mut self) {
        self.format = Format::recognise(&self.head);
        self.rows = Some(
            self.format
                .filter(|f| *f != Format::PostgresqlCustom)
                .map(|format| Rows {
                    format,
                    tables: Vec::new(),
                    database: None,
                    within: In::Statements,
                    current: 0,
                }),
        );
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&bytes[bytes.len() - TAIL..]);
        } else {
            if self.tail.len() + bytes.len() > 2 * TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
            self.tail.extend_from_slice(bytes);
        }
    }

    fn lines(&mut self, bytes: &[u8]) {
        let mut rows = match self.rows.take() {
            Some(Some(rows)) => rows,
            other => {
                self.rows = other;
                return;
            }
        };
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', bytes) {
            if self.partial.is_empty() && end - start <= MAX_LINE {
                rows.line(&bytes[start..end], false);
            } else {
                self.take(&bytes[start..end]);
                let mut line = std::mem::take(&mut self.partial);
                if self.long {
                    line.push(self.last);
                }
                rows.line(&line, self.long);
                line.clear();
                self.partial = line;
                self.long = false;
            }
            start = end + 1;
        }
        self.take(&bytes[start..]);
        self.rows = Some(Some(rows));
    }

    /// Adds `piece` to the unfinished line, keeping at most its first
    /// [`MAX_LINE`] bytes and its last one.
    fn take(&mut self, piece: &[u8]) {
        let Some(&last) = piece.last() else {
            return;
        };
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&piece[..room.min(piece.len())]);
        self.long |= piece.len() > room;
        self.last = last;
    }

    /// The verdict once the stream has ended.
    pub fn finish(mut self) -> Result<Outcome, Failed> {
        if self.rows.is_none() {
            self.start();
            let head = self.head.clone();
            self.lines(&head);
        }
        if let Some(expected) = self.expected {
            if self.format != Some(expected) {
                return Err(Failed::Unexpected(Unexpected {
                    expected,
                    seen: printable(&self.head),
                }));
            }
        }
        let Some(format) = self.format else {
            return Ok(Outcome {
                format: None,
                check: Check::Unchecked,
                tables: None,
            });
        };
        if format == Format::PostgresqlCustom {
            return Ok(Outcome {
                format: Some(format),
                check: Check::Header,
                tables: None,
            });
        }
        if let Err(seen) = ends_complete(format, &self.tail) {
            return Err(Failed::Incomplete(Incomplete { format, seen }));
        }
        let tables = self.rows.flatten().map(|r| r.tables);
        Ok(Outcome {
            format: Some(format),
            check: Check::Complete,
            tables,
        })
    }
}

/// The start of the stream, for a message.
fn printable(head: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(&head[..head.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    text.trim().to_owned()
}

/// The closing line of `format`, for messages.
pub fn closing(format: Format) -> &'static str {
    match format {
        Format::Postgresql => "\"-- PostgreSQL database dump complete\"",
        Format::PostgresqlCluster => "\"-- PostgreSQL database cluster dump complete\"",
        Format::Mariadb => "\"-- Dump completed on …\"",
        Format::Sqlite => "\"COMMIT;\"",
        Format::PostgresqlCustom => "none",
    }
}

/// Whether `tail`, the end of a stream, closes as `format` does; else the
/// last line seen.
fn ends_complete(format: Format, tail: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(tail);
    let mut lines = text.lines().rev().filter(|l| !l.trim().is_empty());
    let last = lines.clone().next().unwrap_or("").to_owned();
    let seen = || {
        if last.is_empty() {
            "nothing but blank lines".to_owned()
        } else {
            let cut: String = last.chars().take(60).collect();
            format!("{cut:?}")
        }
    };
    // A closing line cut short has no newline.
    if tail.last() != Some(&b'\n') {
        return Err(seen());
    }
    let marker = match format {
        Format::Postgresql => "-- PostgreSQL database dump complete",
        Format::PostgresqlCluster => "-- PostgreSQL database cluster dump complete",
        Format::Mariadb => {
            return last
                .starts_with("-- Dump completed")
                .then_some(())
                .ok_or_else(seen);
        }
        Format::Sqlite => return (last == "COMMIT;").then_some(()).ok_or_else(seen),
        Format::PostgresqlCustom => return Ok(()),
    };
    // pg_dump 15.14, 16.10, 17.6 and later end with `\unrestrict KEY`.
    let closing = lines.find(|l| *l != "--" && !l.starts_with("\\unrestrict "));
    match closing {
        Some(line) if line == marker => Ok(()),
        _ => Err(seen()),
    }
}

/// Reads through to `inner`, showing each block to a scanner.
pub struct Scanned<'a, R> {
    inner: R,
    scanner: Option<&'a mut Scanner>,
}

impl<'a, R: Read> Scanned<'a, R> {
    pub fn new(inner: R, scanner: Option<&'a mut Scanner>) -> Scanned<'a, R> {
        Scanned { inner, scanner }
    }
}

impl<R: Read> Read for Scanned<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(scanner) = self.scanner.as_deref_mut() {
            scanner.feed(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &[u8], chunk: usize, expected: Option<Format>) -> Result<Outcome, Failed> {
        let mut s = Scanner::new(expected);
        for part in text.chunks(chunk.max(1)) {
            s.feed(part);
        }
        s.finish()
    }

    fn rows(outcome: &Outcome) -> Vec<(Option<&str>, &str, Option<u64>)> {
        outcome
            .tables
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| (t.database.as_deref(), t.table.as_str(), t.rows))
            .collect()
    }

    const PG: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
        SET x = 1;\n\nCOPY public.e (n) FROM stdin;\n\\.\n\n\
        COPY public.t (n, s) FROM stdin;\n1\tx1\n2\tx2\n3\tx3\n\\.\n\n\
        COPY s2.\"odd name\" (a) FROM stdin;\nline\\nbreak\ntab\\there\n\\.\n\n\
        --\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    #[test]
    fn a_whole_pg_dump_is_complete_with_its_rows_whatever_the_reads() {
        for chunk in [1, 2, 7, 64, 4096] {
            let o = scan(PG.as_bytes(), chunk, Some(Format::Postgresql)).unwrap();
            assert_eq!(o.check, Check::Complete);
            assert_eq!(
                rows(&o),
                [
                    (None, "public.e", Some(0)),
                    (None, "public.t", Some(3)),
                    (None, "s2.\"odd name\"", Some(2))
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_cut_pg_dump_is_incomplete() {
        for cut in [40, PG.len() / 2, PG.len() - 30] {
            let e = scan(&PG.as_bytes()[..cut], 16, None).unwrap_err();
            assert!(
                matches!(
                    e,
                    Failed::Incomplete(Incomplete {
                        format: Format::Postgresql,
                        ..
                    })
                ),
                "{cut}: {e:?}"
            );
        }
    }

    #[test]
    fn sqlite_and_mariadb() {
        let sqlite = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(n int);\n\
            INSERT INTO t VALUES(1);\nINSERT INTO t VALUES(2);\nCREATE TABLE e(n);\n\
            CREATE TABLE IF NOT EXISTS \"odd name\"(a);\nINSERT INTO \"odd name\" VALUES(1);\nCOMMIT;\n";
        let o = scan(sqlite.as_bytes(), 5, None).unwrap();
        assert_eq!(o.format, Some(Format::Sqlite));
        assert_eq!(
            rows(&o),
            [
                (None, "t", Some(2)),
                (None, "e", Some(0)),
                (None, "\"odd name\"", Some(1))
            ]
        );
        assert!(scan(&sqlite.as_bytes()[..sqlite.len() - 8], 5, None).is_err());

        let maria = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\n--\n\
            CREATE TABLE `t` (\n  `n` int\n);\nINSERT INTO `t` VALUES\n(1),\n(2),\n(3);\n\
            CREATE TABLE `u` (\n  `n` int\n);\nINSERT INTO `u` VALUES (1);\nINSERT INTO `u` VALUES (2);\n\
            CREATE TABLE `w` (\n  `n` int\n);\nINSERT INTO `w` VALUES (1),(2);\n\
            -- Dump completed on 2026-12-02  2:24:18\n";
        let o = scan(maria.as_bytes(), 3, Some(Format::Mariadb)).unwrap();
        assert_eq!(
            rows(&o),
            [
                (None, "`t`", Some(3)),
                (None, "`u`", Some(2)),
                (None, "`w`", None)
            ]
        );
        assert!(scan(&maria.as_bytes()[..maria.len() - 20], 3, None).is_err());
    }

    #[test]
    fn other_streams_are_unchecked_unless_the_command_asked_for_a_format() {
        let o = scan(b"just some bytes\n", 4, None).unwrap();
        assert_eq!((o.format, o.check), (None, Check::Unchecked));
        let o = scan(b"PGDMP\x01\x0e\0", 4, Some(Format::PostgresqlCustom)).unwrap();
        assert_eq!(o.check, Check::Header);
        let e = scan(
            b"pg_dump: error: connection failed\n",
            4,
            Some(Format::PostgresqlCustom),
        )
        .unwrap_err();
        assert!(
            matches!(e, Failed::Unexpected(Unexpected { seen, .. }) if seen.starts_with("pg_dump: error"))
        );
    }

    #[test]
    fn a_long_stream_of_another_format_is_named_by_its_start() {
        let mut text = b"<html>an error page\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 100_000));
        let e = scan(&text, 4096, Some(Format::Postgresql)).unwrap_err();
        assert!(
            matches!(&e, Failed::Unexpected(u) if u.seen == "<html>an error page xxxxxxxxxxxxxxxxxxxx"),
            "{e:?}"
        );
    }

    #[test]
    fn the_command_names_the_format() {
        let c = |s: &str| expected(&s.split(' ').map(String::from).collect::<Vec<_>>());
        assert_eq!(c("pg_dump shop"), Some(Format::Postgresql));
        assert_eq!(
            c("/usr/bin/pg_dump -Fc shop"),
            Some(Format::PostgresqlCustom)
        );
        assert_eq!(
            c("pg_dump --format=custom shop"),
            Some(Format::PostgresqlCustom)
        );
        assert_eq!(c("pg_dump -F c shop"), Some(Format::PostgresqlCustom));
        assert_eq!(c("pg_dump -Ft shop"), None);
        assert_eq!(c("pg_dumpall"), Some(Format::PostgresqlCluster));
        assert_eq!(c("mariadb-dump shop"), Some(Format::Mariadb));
        assert_eq!(c("sqlite3 /var/lib/x.db .dump"), Some(Format::Sqlite));
        assert_eq!(c("sqlite3 /var/lib/x.db .backup"), None);
        assert_eq!(c("sh -c pg_dump"), None);
    }

    #[test]
    fn connect_lines_name_the_database() {
        assert_eq!(database("shop"), "shop");
        assert_eq!(database("\"odd \"\"name\""), "odd \"name");
        assert_eq!(database("-reuse-previous=on \"dbname='it\\'s'\""), "it's");
    }
}
