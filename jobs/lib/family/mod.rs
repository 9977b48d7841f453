//! Database families: one file each (`postgresql.rs`, `mariadb.rs`,
//! `sqlite.rs`), holding everything timerapps knows of its dumps: how a
//! stream is recognised, which commands write it, its closing line, how
//! its rows are counted, and which drill engine restores it. The rest of
//! the code asks a [`Format`], or [`Families`] for one; nothing else
//! matches on a format. A new family is a file here and its line in
//! [`SHIPPED`]; a test can read and check with more families
//! ([`Families::with`]) than the package ships.

pub mod check;
pub mod mariadb;
pub mod postgresql;
pub mod sqlite;

use serde::de::{self, Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;

/// Every format of every family the package ships, in the order manifests
/// have always listed them.
pub static SHIPPED: &[&[Format]] = &[postgresql::FORMATS, mariadb::FORMATS, sqlite::FORMATS];

/// One dump format of a database family: what a manifest's `format` names.
pub trait Family: Sync {
    /// Its word in manifests and drill records: `postgresql-cluster`.
    fn word(&self) -> &'static str;
    /// The tool that writes it, for messages: `pg_dumpall`.
    fn tool(&self) -> &'static str;
    /// Whether a stream beginning with `head` is of this format.
    fn recognise(&self, head: &[u8]) -> bool;
    /// Whether `program` (its file name) run with `args` writes this format.
    fn written_by(&self, program: &str, args: &[String]) -> bool;
    /// The line that ends a whole dump, as messages show it; `None` for a
    /// format with no end to check, whose header alone is checked.
    fn closing(&self) -> Option<&'static str>;
    /// Whether the stream's last lines, from the end with blank lines left
    /// out, close it as this format does.
    fn closes(&self, last: &mut dyn Iterator<Item = &str>) -> bool;
    /// A counter of the stream's tables and rows; `None` where the stream
    /// does not show them.
    fn rows(&self) -> Option<Box<dyn Rows>>;
    /// The drill engine that restores it, by name (the drill's table of
    /// engines holds each name once).
    fn engine(&self) -> &'static str;
}

/// A format, as manifests, records and checks carry it: compared, shown,
/// written and read by its word.
#[derive(Clone, Copy)]
pub struct Format(&'static dyn Family);

impl Format {
    pub const fn new(family: &'static dyn Family) -> Format {
        Format(family)
    }
}

impl std::ops::Deref for Format {
    type Target = dyn Family;

    fn deref(&self) -> &(dyn Family + 'static) {
        self.0
    }
}

impl PartialEq for Format {
    fn eq(&self, other: &Format) -> bool {
        self.word() == other.word()
    }
}

impl Eq for Format {}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The formats a run knows: [`SHIPPED`] by default.
#[derive(Clone)]
pub struct Families(Vec<Format>);

impl Default for Families {
    fn default() -> Families {
        Families(SHIPPED.concat())
    }
}

impl Families {
    /// These and `more`.
    pub fn with(mut self, more: &[Format]) -> Families {
        self.0.extend_from_slice(more);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = Format> + '_ {
        self.0.iter().copied()
    }

    /// The format whose word is `word`.
    pub fn named(&self, word: &str) -> Option<Format> {
        self.iter().find(|f| f.word() == word)
    }

    /// The format of a stream beginning with `head`.
    pub fn recognise(&self, head: &[u8]) -> Option<Format> {
        self.iter().find(|f| f.recognise(head))
    }

    /// The format `command` (program and arguments) writes, when it runs a
    /// dump tool directly: the stream must then be of that format.
    pub fn written_by(&self, command: &[String]) -> Option<Format> {
        let (program, args) = command.split_first()?;
        let base = program.rsplit('/').next().unwrap_or(program);
        self.iter().find(|f| f.written_by(base, args))
    }

    /// The tools that write them, for messages: a tool run with other
    /// options (`pg_dump -Fc`) is named once, as itself.
    pub fn tools(&self) -> String {
        let tools: Vec<&str> = self.iter().map(|f| f.tool()).collect();
        tools
            .iter()
            .filter(|t| !tools.iter().any(|o| t.starts_with(&format!("{o} "))))
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs `read` with these as the formats a manifest or record may name.
    pub fn reading<T>(&self, read: impl FnOnce() -> T) -> T {
        let earlier = READING.with(|r| r.replace(Some(self.clone())));
        let result = read();
        READING.with(|r| r.replace(earlier));
        result
    }
}

thread_local! {
    /// What [`Families::reading`] set on this thread.
    static READING: RefCell<Option<Families>> = const { RefCell::new(None) };
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}

/// A format is read as an enum's unit variant would be, so that what a
/// manifest may hold and every error reading it say are what they always
/// were.
impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
        struct Variant;
        impl<'de> Visitor<'de> for Variant {
            type Value = Format;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("variant identifier")
            }
            fn visit_str<E: de::Error>(self, word: &str) -> Result<Format, E> {
                let families = READING.with(|r| r.borrow().clone()).unwrap_or_default();
                families.named(word).ok_or_else(|| {
                    let words: Vec<String> = families.iter().map(|f| format!("`{f}`")).collect();
                    E::custom(format_args!(
                        "unknown variant `{word}`, expected one of {}",
                        words.join(", ")
                    ))
                })
            }
        }
        impl<'de> de::DeserializeSeed<'de> for Variant {
            type Value = Format;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Format, D::Error> {
                d.deserialize_identifier(self)
            }
        }
        struct Unit;
        impl<'de> Visitor<'de> for Unit {
            type Value = Format;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("enum Format")
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Format, A::Error> {
                let (format, variant) = data.variant_seed(Variant)?;
                variant.unit_variant()?;
                Ok(format)
            }
        }
        d.deserialize_enum("Format", &[], Unit)
    }
}

/// The longest line whose start is read for names: longer ones are data.
pub const MAX_LINE: usize = 4096;

/// Counts one format's tables and rows, line by line.
pub trait Rows {
    /// One line without its newline. A line longer than [`MAX_LINE`] comes
    /// cut to its first bytes and its last one, with `long` set: only a
    /// line's start and end say anything here.
    fn line(&mut self, line: &[u8], long: bool, tables: &mut Tables);
}

/// One table and the rows the dump holds of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub database: Option<String>,
    pub table: String,
    pub rows: Option<u64>,
}

/// The tables counted so far, and the one rows are counted for.
#[derive(Default)]
pub struct Tables {
    pub tables: Vec<Table>,
    /// The database the stream is in, in a dump of several.
    pub database: Option<String>,
    current: usize,
}

impl Tables {
    /// The table named `name` in the current database, added if new; it
    /// is the one rows are counted for from now on.
    pub fn table(&mut self, name: String) -> usize {
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

    /// Adds `rows` to the current table.
    pub fn add(&mut self, rows: u64) {
        if let Some(t) = self.tables.get_mut(self.current) {
            t.rows = t.rows.map(|r| r + rows);
        }
    }
}

/// The start of a line as text: at most [`MAX_LINE`] bytes, up to its first
/// byte that is not UTF-8.
pub fn text(line: &[u8]) -> &str {
    let start = &line[..line.len().min(MAX_LINE)];
    match std::str::from_utf8(start) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&start[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// A possibly qualified, possibly quoted name at the start of `text`, as
/// written: `public.t`, `s2."odd name"`, `` `t` ``.
pub fn identifier(text: &str, quote: u8) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Holder {
        format: Option<Format>,
    }

    /// The format as it was an enum: what manifests could always hold.
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Was {
        Postgresql,
        PostgresqlCluster,
        PostgresqlCustom,
        Mariadb,
        Sqlite,
    }

    #[derive(Deserialize)]
    struct WasHolder {
        format: Option<Was>,
    }

    #[test]
    fn formats_are_written_and_read_as_the_enum_they_were() {
        let words: Vec<&str> = Families::default().iter().map(|f| f.word()).collect();
        assert_eq!(
            words,
            [
                "postgresql",
                "postgresql-cluster",
                "postgresql-custom",
                "mariadb",
                "sqlite"
            ]
        );
        for format in Families::default().iter() {
            let text = serde_json::to_string(&Holder {
                format: Some(format),
            })
            .unwrap();
            assert_eq!(text, format!("{{\"format\":\"{format}\"}}"));
        }
        for value in [
            "null",
            "\"postgresql\"",
            "\"postgresql-cluster\"",
            "\"postgresql-custom\"",
            "\"mariadb\"",
            "\"sqlite\"",
            "{\"sqlite\":null}",
            "\"mongodb\"",
            "\"Sqlite\"",
            "{\"sqlite\": 1}",
            "{\"mongodb\":null}",
            "5",
            "[\"sqlite\"]",
            "\"sqlite",
        ] {
            let text = format!("{{\"format\":{value}}}");
            let now = serde_json::from_str::<Holder>(&text);
            let was = serde_json::from_str::<WasHolder>(&text);
            match (now, was) {
                (Ok(now), Ok(was)) => assert_eq!(
                    now.format.map(|f| f.word()),
                    was.format.map(|w| words[w as usize]),
                    "{text}"
                ),
                (Err(now), Err(was)) => assert_eq!(now.to_string(), was.to_string(), "{text}"),
                (now, was) => panic!("{text}: {:?} against {:?}", now.is_ok(), was.is_ok()),
            }
        }
    }

    #[test]
    fn the_tools_are_named_once_each() {
        assert_eq!(
            Families::default().tools(),
            "pg_dump, pg_dumpall, mariadb-dump, sqlite3 .dump"
        );
    }
}
