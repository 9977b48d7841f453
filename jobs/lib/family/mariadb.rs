//! MariaDB and MySQL: `mariadb-dump` or `mysqldump`. The dump's last line
//! is `-- Dump completed on …`; its rows are its `INSERT INTO` lines, or
//! the lines of an `INSERT … VALUES` statement that hold one row each; a
//! line of several rows leaves its table's rows unknown.

use super::{identifier, text, Family, Format, Rows, Tables};

/// The drill engine of MariaDB's dumps.
pub const ENGINE: &str = "mariadb";

pub const MARIADB: Format = Format::new(&Mariadb);
pub const FORMATS: &[Format] = &[MARIADB];

pub struct Mariadb;

impl Family for Mariadb {
    fn word(&self) -> &'static str {
        "mariadb"
    }

    fn tool(&self) -> &'static str {
        "mariadb-dump"
    }

    fn recognise(&self, head: &[u8]) -> bool {
        // MariaDB 10.11 and later open with a sandbox-mode comment.
        let head = match head.strip_prefix(b"/*M!999999\\- enable the sandbox mode */") {
            Some(rest) => match rest
                .strip_prefix(b" \n")
                .or_else(|| rest.strip_prefix(b"\n"))
            {
                Some(rest) => rest,
                None => return false,
            },
            None => head,
        };
        head.starts_with(b"-- MariaDB dump") || head.starts_with(b"-- MySQL dump")
    }

    fn written_by(&self, program: &str, _args: &[String]) -> bool {
        program == "mariadb-dump" || program == "mysqldump"
    }

    fn closing(&self) -> Option<&'static str> {
        Some("-- Dump completed on …")
    }

    fn closes(&self, last: &mut dyn Iterator<Item = &str>) -> bool {
        last.next()
            .is_some_and(|l| l.starts_with("-- Dump completed"))
    }

    fn rows(&self) -> Option<Box<dyn Rows>> {
        Some(Box::new(Inserts::default()))
    }

    fn engine(&self) -> &'static str {
        ENGINE
    }
}

/// Counts the rows of `INSERT INTO` statements.
#[derive(Default)]
struct Inserts {
    /// Within an `INSERT … VALUES` with one row a line, until its `;`.
    values: bool,
}

impl Rows for Inserts {
    fn line(&mut self, line: &[u8], long: bool, tables: &mut Tables) {
        if self.values {
            if line.first() == Some(&b'(') {
                tables.add(1);
            }
            if line.ends_with(b";") {
                self.values = false;
            }
            return;
        }
        let line = text(line);
        if let Some(rest) = line.strip_prefix("INSERT INTO ") {
            let i = tables.table(identifier(rest, b'`'));
            if line.ends_with(" VALUES") {
                self.values = true;
            } else if long || line.contains("),(") {
                // Rows on one line: counting them would mean parsing every
                // quoted string.
                tables.tables[i].rows = None;
            } else {
                tables.add(1);
            }
        } else if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
            let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
            tables.table(identifier(rest, b'`'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::tests::{rows, scan};
    use super::super::Families;
    use super::*;

    #[test]
    fn a_dump_is_complete_with_the_rows_it_shows() {
        let maria = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\n--\n\
            CREATE TABLE `t` (\n  `n` int\n);\nINSERT INTO `t` VALUES\n(1),\n(2),\n(3);\n\
            CREATE TABLE `u` (\n  `n` int\n);\nINSERT INTO `u` VALUES (1);\nINSERT INTO `u` VALUES (2);\n\
            CREATE TABLE `w` (\n  `n` int\n);\nINSERT INTO `w` VALUES (1),(2);\n\
            -- Dump completed on 2026-12-02  2:24:18\n";
        let o = scan(maria.as_bytes(), 3, Some(MARIADB)).unwrap();
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
    fn the_command_names_the_format() {
        let c = |s: &str| {
            Families::default().written_by(&s.split(' ').map(String::from).collect::<Vec<_>>())
        };
        assert_eq!(c("mariadb-dump shop"), Some(MARIADB));
        assert_eq!(c("/usr/bin/mysqldump shop"), Some(MARIADB));
        assert_eq!(
            Families::default().recognise(b"/*M!999999\\- enable the sandbox mode */x"),
            None
        );
    }
}
