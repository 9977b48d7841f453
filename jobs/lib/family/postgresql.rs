//! PostgreSQL: `pg_dump` in the plain and custom formats, and `pg_dumpall`.
//!
//! The plain and cluster dumps end with `-- PostgreSQL database dump
//! complete` (`… cluster dump complete`), then at most comments, blank
//! lines and `\unrestrict KEY`; their rows are the lines between `COPY …
//! FROM stdin;` and `\.`, and a cluster dump's `\connect` lines say which
//! database they are in. A custom-format archive starts with `PGDMP` and
//! has no end to check nor rows to read.

use super::{identifier, text, Family, Format, Rows, Tables};

/// The drill engine of every PostgreSQL format.
pub const ENGINE: &str = "postgresql";

/// `pg_dump` in the plain format.
pub const PLAIN: Format = Format::new(&Postgresql::Plain);
/// `pg_dumpall`.
pub const CLUSTER: Format = Format::new(&Postgresql::Cluster);
/// `pg_dump -Fc`.
pub const CUSTOM: Format = Format::new(&Postgresql::Custom);
pub const FORMATS: &[Format] = &[PLAIN, CLUSTER, CUSTOM];

/// The formats, for the drill's engine, which restores each its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Postgresql {
    Plain,
    Cluster,
    Custom,
}

impl Postgresql {
    /// Which of them `format` is, if it is PostgreSQL's.
    pub fn of(format: Format) -> Option<Postgresql> {
        [Postgresql::Plain, Postgresql::Cluster, Postgresql::Custom]
            .into_iter()
            .find(|p| p.word() == format.word())
    }

    fn marker(self) -> &'static str {
        match self {
            Postgresql::Plain => "-- PostgreSQL database dump complete",
            Postgresql::Cluster => "-- PostgreSQL database cluster dump complete",
            Postgresql::Custom => "",
        }
    }
}

/// The format `pg_dump` writes with `args`: its last `-F`/`--format`;
/// directory and tar archives are not checked.
fn pg_dump_writes(args: &[String]) -> Option<Postgresql> {
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
        None => Some(Postgresql::Plain),
        Some(f) if f == "p" || f == "plain" => Some(Postgresql::Plain),
        Some(f) if f == "c" || f == "custom" => Some(Postgresql::Custom),
        Some(_) => None,
    }
}

impl Family for Postgresql {
    fn word(&self) -> &'static str {
        match self {
            Postgresql::Plain => "postgresql",
            Postgresql::Cluster => "postgresql-cluster",
            Postgresql::Custom => "postgresql-custom",
        }
    }

    fn tool(&self) -> &'static str {
        match self {
            Postgresql::Plain => "pg_dump",
            Postgresql::Cluster => "pg_dumpall",
            Postgresql::Custom => "pg_dump -Fc",
        }
    }

    fn recognise(&self, head: &[u8]) -> bool {
        head.starts_with(match self {
            Postgresql::Plain => b"--\n-- PostgreSQL database dump\n".as_slice(),
            Postgresql::Cluster => b"--\n-- PostgreSQL database cluster dump\n",
            Postgresql::Custom => b"PGDMP",
        })
    }

    fn written_by(&self, program: &str, args: &[String]) -> bool {
        match self {
            Postgresql::Cluster => program == "pg_dumpall",
            _ => program == "pg_dump" && pg_dump_writes(args) == Some(*self),
        }
    }

    fn closing(&self) -> Option<&'static str> {
        (*self != Postgresql::Custom).then_some(self.marker())
    }

    fn closes(&self, last: &mut dyn Iterator<Item = &str>) -> bool {
        // pg_dump 15.14, 16.10, 17.6 and later end with `\unrestrict KEY`.
        for line in last {
            if line != "--" && !line.starts_with("\\unrestrict ") {
                return line == self.marker();
            }
        }
        false
    }

    fn rows(&self) -> Option<Box<dyn Rows>> {
        match self {
            Postgresql::Custom => None,
            _ => Some(Box::new(CopyRows::default())),
        }
    }

    fn engine(&self) -> &'static str {
        ENGINE
    }
}

/// Counts the rows between `COPY … FROM stdin;` and `\.`.
#[derive(Default)]
struct CopyRows {
    within: bool,
}

impl Rows for CopyRows {
    fn line(&mut self, line: &[u8], _long: bool, tables: &mut Tables) {
        if self.within {
            if line == b"\\." {
                self.within = false;
            } else {
                tables.add(1);
            }
            return;
        }
        let line = text(line);
        if let Some(rest) = line.strip_prefix("COPY ") {
            if line.ends_with(" FROM stdin;") {
                tables.table(identifier(rest, b'"'));
                self.within = true;
            }
        } else if let Some(rest) = line.strip_prefix("\\connect ") {
            tables.database = Some(database(rest));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::super::check::tests::{rows, scan};
    use super::super::check::{Check, Failed, Incomplete};
    use super::super::Families;
    use super::*;

    const PG: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
        SET x = 1;\n\nCOPY public.e (n) FROM stdin;\n\\.\n\n\
        COPY public.t (n, s) FROM stdin;\n1\tx1\n2\tx2\n3\tx3\n\\.\n\n\
        COPY s2.\"odd name\" (a) FROM stdin;\nline\\nbreak\ntab\\there\n\\.\n\n\
        --\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    #[test]
    fn a_whole_pg_dump_is_complete_with_its_rows_whatever_the_reads() {
        for chunk in [1, 2, 7, 64, 4096] {
            let o = scan(PG.as_bytes(), chunk, Some(PLAIN)).unwrap();
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
                matches!(e, Failed::Incomplete(Incomplete { format, .. }) if format == PLAIN),
                "{cut}: {e:?}"
            );
        }
    }

    #[test]
    fn a_custom_archive_has_its_header_checked() {
        let o = scan(b"PGDMP\x01\x0e\0", 4, Some(CUSTOM)).unwrap();
        assert_eq!((o.format, o.check), (Some(CUSTOM), Check::Header));
    }

    #[test]
    fn the_command_names_the_format() {
        let c = |s: &str| {
            Families::default().written_by(&s.split(' ').map(String::from).collect::<Vec<_>>())
        };
        assert_eq!(c("pg_dump shop"), Some(PLAIN));
        assert_eq!(c("/usr/bin/pg_dump -Fc shop"), Some(CUSTOM));
        assert_eq!(c("pg_dump --format=custom shop"), Some(CUSTOM));
        assert_eq!(c("pg_dump -F c shop"), Some(CUSTOM));
        assert_eq!(c("pg_dump -Ft shop"), None);
        assert_eq!(c("pg_dumpall"), Some(CLUSTER));
        assert_eq!(c("sh -c pg_dump"), None);
    }

    #[test]
    fn connect_lines_name_the_database() {
        assert_eq!(database("shop"), "shop");
        assert_eq!(database("\"odd \"\"name\""), "odd \"name");
        assert_eq!(database("-reuse-previous=on \"dbname='it\\'s'\""), "it's");
    }
}
