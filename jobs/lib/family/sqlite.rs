//! SQLite: `sqlite3 DB .dump`. The dump's last line is `COMMIT;`; its rows
//! are its `INSERT INTO` lines, one a row.

use super::{identifier, text, Family, Format, Rows, Tables};

/// The drill engine of SQLite's dumps.
pub const ENGINE: &str = "sqlite";

pub const SQLITE: Format = Format::new(&Sqlite);
pub const FORMATS: &[Format] = &[SQLITE];

pub struct Sqlite;

impl Family for Sqlite {
    fn word(&self) -> &'static str {
        "sqlite"
    }

    fn tool(&self) -> &'static str {
        "sqlite3 .dump"
    }

    fn recognise(&self, head: &[u8]) -> bool {
        head.starts_with(b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
    }

    fn written_by(&self, program: &str, args: &[String]) -> bool {
        program == "sqlite3" && args.iter().any(|a| a.starts_with(".dump"))
    }

    fn closing(&self) -> Option<&'static str> {
        Some("COMMIT;")
    }

    fn closes(&self, last: &mut dyn Iterator<Item = &str>) -> bool {
        last.next() == Some("COMMIT;")
    }

    fn rows(&self) -> Option<Box<dyn Rows>> {
        Some(Box::new(Inserts))
    }

    fn engine(&self) -> &'static str {
        ENGINE
    }
}

/// Counts `INSERT INTO` lines.
struct Inserts;

impl Rows for Inserts {
    fn line(&mut self, line: &[u8], _long: bool, tables: &mut Tables) {
        let line = text(line);
        if let Some(rest) = line.strip_prefix("INSERT INTO ") {
            tables.table(identifier(rest, b'"'));
            tables.add(1);
        } else if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
            let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
            tables.table(identifier(rest, b'"'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::tests::{rows, scan};
    use super::super::Families;
    use super::*;

    #[test]
    fn a_dump_is_complete_with_its_rows() {
        let sqlite = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(n int);\n\
            INSERT INTO t VALUES(1);\nINSERT INTO t VALUES(2);\nCREATE TABLE e(n);\n\
            CREATE TABLE IF NOT EXISTS \"odd name\"(a);\nINSERT INTO \"odd name\" VALUES(1);\nCOMMIT;\n";
        let o = scan(sqlite.as_bytes(), 5, None).unwrap();
        assert_eq!(o.format, Some(SQLITE));
        assert_eq!(
            rows(&o),
            [
                (None, "t", Some(2)),
                (None, "e", Some(0)),
                (None, "\"odd name\"", Some(1))
            ]
        );
        assert!(scan(&sqlite.as_bytes()[..sqlite.len() - 8], 5, None).is_err());
    }

    #[test]
    fn the_command_names_the_format() {
        let c = |s: &str| {
            Families::default().written_by(&s.split(' ').map(String::from).collect::<Vec<_>>())
        };
        assert_eq!(c("sqlite3 /var/lib/x.db .dump"), Some(SQLITE));
        assert_eq!(c("sqlite3 /var/lib/x.db .backup"), None);
    }
}
