//! A throwaway SQLite database: a file in the drill's directory, the dump
//! read by `sqlite3 -safe -bail`, then `PRAGMA integrity_check`. In safe
//! mode the shell refuses the SQL that reaches outside the database
//! (`ATTACH`, `VACUUM INTO`, `readfile()`, `writefile()`, extensions);
//! `-bail` makes the first refusal fail the drill. Safe mode still runs some
//! dot-commands that write files (`.trace`, `.testcase`) and the function
//! `fsdir()`, which reads them, and a dump made by `.dump` holds neither:
//! the shell never sees one ([`DotGuard`]), nor reads `~/.sqliterc`.

use crate::engine::{self, Engine, Found, Kind, Restore};
use jobkit::family::{sqlite, Format};
use jobkit::host::process::{self, Signaller};
use jobkit::{Error, Exit, Result};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SQLITE: &str = "/usr/bin/sqlite3";

pub const KIND: Kind = Kind {
    name: sqlite::ENGINE,
    overhead: 1 << 20,
    start,
};

fn start(dir: &Path, _: Format, _: &[u8], _: u64) -> Result<Box<dyn Engine>> {
    Ok(Box::new(Sqlite::start(dir)?))
}

pub struct Sqlite {
    dir: PathBuf,
    file: PathBuf,
    version: String,
}

impl Sqlite {
    pub fn start(dir: &Path) -> Result<Sqlite> {
        if !Path::new(SQLITE).exists() {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "the SQLite shell ({SQLITE}) is not installed to restore the dump with: \
                     install the Debian package sqlite3"
                ),
            ));
        }
        let version = process::output(
            process::command(SQLITE, dir).args(["-init", "/dev/null", "--version"]),
            "sqlite3",
        )?;
        Ok(Sqlite {
            dir: dir.to_owned(),
            file: dir.join("drill.db"),
            version: version.split_whitespace().next().unwrap_or("").to_owned(),
        })
    }

    fn shell(&self) -> Command {
        let mut c = process::command(SQLITE, &self.dir);
        // -init: the shell reads ~/.sqliterc (found by the passwd entry,
        // not HOME) before safe mode is on.
        c.args(["-init", "/dev/null", "-safe", "-bail", "-batch"])
            .arg(&self.file);
        c
    }

    fn sql(&self, sql: &str) -> Result<String> {
        process::output(
            self.shell()
                .args(["-noheader", "-separator", "\t"])
                .arg(sql),
            "sqlite3",
        )
    }
}

impl Engine for Sqlite {
    fn server(&self) -> String {
        format!("SQLite {}", self.version)
    }

    fn restore(&mut self) -> Result<Restore> {
        let mut tool = process::spawn(self.shell().stdin(Stdio::piped()), "sqlite3")?;
        let stdin = tool.stdin().expect("piped");
        let input: Box<dyn Write> =
            Box::new(DotGuard::new(BufWriter::with_capacity(1 << 17, stdin)));
        Ok(Restore {
            tool,
            input,
            feeder: None,
        })
    }

    fn halt(&mut self) -> Result<Option<Signaller>> {
        // No server: sqlite3, the restoring tool, writes the file.
        Ok(None)
    }

    fn inventory(&mut self) -> Result<Vec<Found>> {
        let check = self.sql("PRAGMA integrity_check")?;
        if check.trim() != "ok" {
            let first = check.lines().next().unwrap_or("").to_owned();
            return Err(Error::new(
                Exit::Failure,
                format!("the restored database fails PRAGMA integrity_check: {first}"),
            ));
        }
        let tables = self.sql(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?;
        let names: Vec<Vec<String>> = tables.lines().map(|t| vec![t.to_owned()]).collect();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let quoted: Vec<String> = names.iter().map(|n| engine::quoted(&n[0], '"')).collect();
        engine::count_rows(names, &quoted, "main", "sqlite3", |q| self.sql(q))
    }

    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Passes SQL on line by line and refuses a line that the shell could run
/// as a dot-command or skip as a comment: one whose first character but
/// blanks is `.` or `#`, where no statement is under way. It follows the
/// shell's reading of where a statement ends (`;`, or a line of `go` or `/`)
/// outside strings, quoted names and comments. Where the two could differ
/// (a `;` inside a trigger's body), it takes a statement as ended, so that
/// it refuses rather than lets one through. It also refuses NUL bytes and
/// the name `fsdir`.
struct DotGuard<W: Write> {
    out: W,
    line: Vec<u8>,
    /// The quote that closes the string or name the text is in.
    quote: Option<u8>,
    comment: bool,
    /// Text of a statement has come since its last `;`.
    pending: bool,
    /// The name being read, lowercase, as far as [`FSDIR`] and one more.
    word: Vec<u8>,
    number: u64,
}

impl<W: Write> DotGuard<W> {
    fn new(out: W) -> DotGuard<W> {
        DotGuard {
            out,
            line: Vec::new(),
            quote: None,
            comment: false,
            pending: false,
            word: Vec::new(),
            number: 0,
        }
    }

    fn take(&mut self, line: &[u8]) -> io::Result<()> {
        self.number += 1;
        let refuse = |what: String| {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {} {what}, which a dump made by .dump never holds",
                    self.number
                ),
            ))
        };
        // The shell reads lines as C strings: what follows a NUL is
        // invisible to it, and it would read the rest otherwise than here.
        if line.contains(&0) {
            return refuse("holds a NUL byte".into());
        }
        let plain = self.quote.is_none() && !self.comment;
        let text = trim(line);
        if plain && !self.pending {
            if let Some(first @ (b'.' | b'#')) = text.first() {
                let shown = String::from_utf8_lossy(&text[..text.len().min(60)]);
                return refuse(if *first == b'.' {
                    format!("is a dot-command of the sqlite3 shell ({shown:?})")
                } else {
                    format!("is a comment line of the sqlite3 shell ({shown:?})")
                });
            }
        }
        self.scan(line)?;
        // `go` or `/` and then blanks or comments end a statement for the
        // shell; any line that starts so is taken as one.
        let terminator =
            text.starts_with(b"/") || text.get(..2).is_some_and(|t| t.eq_ignore_ascii_case(b"go"));
        if plain && terminator && self.quote.is_none() && !self.comment {
            self.pending = false;
        }
        self.out.write_all(line)
    }

    /// Follows strings, quoted names, comments and statement ends through
    /// `line`.
    fn scan(&mut self, line: &[u8]) -> io::Result<()> {
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            let next = line.get(i + 1).copied();
            if let Some(q) = self.quote {
                if c == q && q != b']' && next == Some(q) {
                    if q != b'\'' {
                        self.name(c);
                    }
                    i += 1;
                } else if c == q {
                    self.quote = None;
                    if q != b'\'' {
                        self.end_name()?;
                    }
                } else if q != b'\'' {
                    self.name(c);
                }
            } else if self.comment {
                if c == b'*' && next == Some(b'/') {
                    self.comment = false;
                    i += 1;
                }
            } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
                self.name(c);
                self.pending = true;
            } else {
                self.end_name()?;
                match c {
                    b'-' if next == Some(b'-') => return Ok(()),
                    b'/' if next == Some(b'*') => {
                        self.comment = true;
                        i += 1;
                    }
                    b'\'' | b'"' | b'`' => {
                        self.quote = Some(c);
                        self.pending = true;
                    }
                    b'[' => {
                        self.quote = Some(b']');
                        self.pending = true;
                    }
                    b';' => self.pending = false,
                    c if blank(c) => {}
                    _ => self.pending = true,
                }
            }
            i += 1;
        }
        if self.quote.is_none() {
            self.end_name()?;
        }
        Ok(())
    }

    /// A byte of a name, kept as far as names are compared.
    fn name(&mut self, c: u8) {
        if self.word.len() <= FSDIR.len() {
            self.word.push(c.to_ascii_lowercase());
        }
    }

    /// `fsdir()`, which lists and reads files, is the one function of the
    /// shell that safe mode leaves: no name in the dump may be it.
    fn end_name(&mut self) -> io::Result<()> {
        let word = std::mem::take(&mut self.word);
        if word == FSDIR {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {} names fsdir, the sqlite3 shell's function that reads files, \
                     which a dump made by .dump never holds",
                    self.number
                ),
            ));
        }
        Ok(())
    }
}

const FSDIR: &[u8] = b"fsdir";

/// `line` without the shell's blanks at either end.
fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|c| !blank(*c)).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|c| !blank(*c))
        .map_or(start, |e| e + 1);
    &line[start..end]
}

/// A blank to the shell: C's isspace() in the C locale.
fn blank(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

impl<W: Write> Write for DotGuard<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut partial = std::mem::take(&mut self.line);
        let taken = engine::each_line(&mut partial, buf, |line| self.take(line));
        self.line = partial;
        taken.map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.take(&line)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::DotGuard;
    use std::io::Write;

    fn guard(stream: &str) -> Result<String, String> {
        let mut g = DotGuard::new(Vec::new());
        // Fed in small pieces: lines cross the writes.
        for piece in stream.as_bytes().chunks(3) {
            g.write_all(piece).map_err(|e| e.to_string())?;
        }
        g.flush().map_err(|e| e.to_string())?;
        Ok(String::from_utf8(g.out).unwrap())
    }

    #[test]
    fn what_sqlite3_dump_writes_passes_unchanged() {
        let dump = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
                    CREATE TABLE \"a;b\"([c\n.d] text, 'e' int);\n\
                    INSERT INTO \"a;b\" VALUES('it''s; a\n.shell line',1);\n\
                    CREATE TRIGGER t AFTER INSERT ON \"a;b\" BEGIN\n SELECT 1;\nEND;\n\
                    /* a comment; with\n.lines */ SELECT 2\n.x;\n\
                    SELECT 3 -- a comment'\n;\nCOMMIT;";
        assert_eq!(guard(dump).unwrap(), dump);
    }

    #[test]
    fn a_dot_command_where_the_shell_would_run_it_is_refused() {
        for stream in [
            ".trace /tmp/x\n",
            "CREATE TABLE t(n);\n.trace /tmp/x\n",
            "SELECT 1; -- ends here\n  .testcase x\n",
            "SELECT 1 /* ; */;\n.shell id\n",
            "SELECT 1\ngo\n.shell id\n",
            "SELECT 1\n/\n.shell id\n",
            "SELECT 1\nGO -- the shell's terminator\n.shell id\n",
            "SELECT 1\n/ /* too */\n.shell id\n",
            "SELECT 'a'';';\n.once x",
            "/* open\n*/\n.system id\n",
        ] {
            let e = guard(stream).unwrap_err();
            assert!(
                e.contains("is a dot-command of the sqlite3 shell"),
                "{stream:?}: {e}"
            );
        }
    }

    #[test]
    fn nothing_after_a_refused_line_goes_on() {
        let mut g = DotGuard::new(Vec::new());
        assert!(g.write_all(b"SELECT 1;\n.shell id\nSELECT 2;\n").is_err());
        assert_eq!(g.out, b"SELECT 1;\n");
    }
}
