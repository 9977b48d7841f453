//! Completeness, read from the stream as it passes (DUMP_CHECK): the dump
//! format is recognised from the first bytes, the rows of each table are
//! counted where the format shows them, and at the end the format's closing
//! line must be there. A dump whose end is missing was cut short (a pipe
//! without pipefail, `--force`, a wrapper script) and is never published.
//! What each format looks like is its family's (the markers, as the real
//! tools write them, are checked in tests/it/check.rs).

use super::{Families, Format, Rows, Table, Tables, MAX_LINE};
use serde::{Deserialize, Serialize};
use std::io::{self, Read};

/// How much of the stream's start is looked at to recognise it.
const HEAD: usize = 256;
/// How much of its end is kept to find the closing line.
const TAIL: usize = 4096;

/// How far the stream was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Complete,
    Header,
    Unchecked,
    Off,
}

impl Check {
    pub fn word(self) -> &'static str {
        match self {
            Check::Complete => "complete",
            Check::Header => "header",
            Check::Unchecked => "unchecked",
            Check::Off => "off",
        }
    }
}

/// What a finished stream turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
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

/// Watches a stream go by.
pub struct Scanner {
    families: Families,
    expected: Option<Format>,
    /// The stream's first bytes, kept for messages.
    head: Vec<u8>,
    /// Set once the head was looked at: the format's counter, if it has one.
    rows: Option<Option<(Box<dyn Rows>, Tables)>>,
    format: Option<Format>,
    /// The unfinished last line, when a read ended inside it.
    partial: Vec<u8>,
    /// Whether the unfinished line outgrew MAX_LINE, and its last byte.
    long: bool,
    last: u8,
    tail: Vec<u8>,
}

impl Scanner {
    /// A scanner for a stream of one of `families`, which must be of
    /// `expected` if that is set.
    pub fn new(families: Families, expected: Option<Format>) -> Scanner {
        Scanner {
            families,
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
        self.format = self.families.recognise(&self.head);
        self.rows = Some(
            self.format
                .and_then(|f| f.rows())
                .map(|rows| (rows, Tables::default())),
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
        let (mut rows, mut tables) = match self.rows.take() {
            Some(Some(rows)) => rows,
            other => {
                self.rows = other;
                return;
            }
        };
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', bytes) {
            if self.partial.is_empty() && end - start <= MAX_LINE {
                rows.line(&bytes[start..end], false, &mut tables);
            } else {
                self.take(&bytes[start..end]);
                let mut line = std::mem::take(&mut self.partial);
                if self.long {
                    line.push(self.last);
                }
                rows.line(&line, self.long, &mut tables);
                line.clear();
                self.partial = line;
                self.long = false;
            }
            start = end + 1;
        }
        self.take(&bytes[start..]);
        self.rows = Some(Some((rows, tables)));
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
    pub fn finish(mut self) -> Result<Checked, Failed> {
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
            return Ok(Checked {
                format: None,
                check: Check::Unchecked,
                tables: None,
            });
        };
        if format.closing().is_none() {
            return Ok(Checked {
                format: Some(format),
                check: Check::Header,
                tables: None,
            });
        }
        if let Err(seen) = ends_complete(format, &self.tail) {
            return Err(Failed::Incomplete(Incomplete { format, seen }));
        }
        let tables = self.rows.flatten().map(|(_, t)| t.tables);
        Ok(Checked {
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
pub fn closing(format: Format) -> String {
    match format.closing() {
        Some(line) => format!("\"{line}\""),
        None => "none".to_owned(),
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
    if tail.last() != Some(&b'\n') || !format.closes(&mut lines) {
        return Err(seen());
    }
    Ok(())
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
pub(super) mod tests {
    use super::*;

    pub fn scan(text: &[u8], chunk: usize, expected: Option<Format>) -> Result<Checked, Failed> {
        let mut s = Scanner::new(Families::default(), expected);
        for part in text.chunks(chunk.max(1)) {
            s.feed(part);
        }
        s.finish()
    }

    pub fn rows(outcome: &Checked) -> Vec<(Option<&str>, &str, Option<u64>)> {
        outcome
            .tables
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| (t.database.as_deref(), t.table.as_str(), t.rows))
            .collect()
    }

    #[test]
    fn other_streams_are_unchecked_unless_the_command_asked_for_a_format() {
        let o = scan(b"just some bytes\n", 4, None).unwrap();
        assert_eq!((o.format, o.check), (None, Check::Unchecked));
        let e = scan(
            b"pg_dump: error: connection failed\n",
            4,
            Some(super::super::postgresql::CUSTOM),
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
        let e = scan(&text, 4096, Some(super::super::postgresql::PLAIN)).unwrap_err();
        assert!(
            matches!(&e, Failed::Unexpected(u) if u.seen == "<html>an error page xxxxxxxxxxxxxxxxxxxx"),
            "{e:?}"
        );
    }

    #[test]
    fn closing_lines_are_quoted_for_messages() {
        let quoted: Vec<String> = Families::default().iter().map(closing).collect();
        assert_eq!(
            quoted,
            [
                "\"-- PostgreSQL database dump complete\"",
                "\"-- PostgreSQL database cluster dump complete\"",
                "none",
                "\"-- Dump completed on …\"",
                "\"COMMIT;\""
            ]
        );
    }
}
