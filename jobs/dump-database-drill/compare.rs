//! The restored database against the dump's manifest: every table the
//! manifest lists must be there, with the rows it counted.

use crate::engine::Found;
use jobkit::dumpfile::manifest::Table;

/// What the comparison found.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub tables: u64,
    pub rows: u64,
    /// Whether the manifest listed tables to compare with.
    pub compared: bool,
    /// What was compared, in words.
    pub words: String,
}

/// Compares `found` with the manifest's `tables`; the error says which
/// table differs, and how.
pub fn compare(tables: Option<&[Table]>, found: &[Found]) -> Result<Summary, String> {
    let Some(tables) = tables else {
        return Ok(Summary {
            tables: found.len() as u64,
            rows: found.iter().map(|f| f.rows).sum(),
            compared: false,
            words: "the manifest lists no tables, so there was nothing to compare with".to_owned(),
        });
    };
    let mut problems = Vec::new();
    let mut rows = 0;
    let mut by_name_only = 0;
    for t in tables {
        let parts = split_name(&t.table);
        let mut candidates: Vec<&Found> = found
            .iter()
            .filter(|f| f.table == parts)
            .filter(|f| t.database.as_ref().is_none_or(|d| *d == f.database))
            .collect();
        // A dump of one database is restored into "drill".
        candidates.sort_by_key(|f| f.database != "drill");
        let name = match &t.database {
            Some(d) => format!("{}.{}", d, t.table),
            None => t.table.clone(),
        };
        let Some(f) = candidates.first() else {
            problems.push(format!(
                "table {name} is in the manifest but not in the restored database"
            ));
            continue;
        };
        rows += f.rows;
        match t.rows {
            Some(expected) if expected != f.rows => problems.push(format!(
                "table {name}: {} rows restored, {expected} in the manifest",
                f.rows
            )),
            Some(_) => {}
            None => by_name_only += 1,
        }
    }
    if let Some(first) = problems.first() {
        let more = match problems.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        return Err(format!("{first}{more}"));
    }
    let words = match by_name_only {
        0 => format!(
            "every table's rows equal to the manifest's ({})",
            count(tables.len() as u64, "table")
        ),
        n => format!(
            "the rows of {} equal to the manifest's; {n} more present, whose rows the \
             manifest could not count",
            count((tables.len() - n) as u64, "table")
        ),
    };
    Ok(Summary {
        tables: tables.len() as u64,
        rows,
        compared: true,
        words,
    })
}

/// `n` things, in words: `1 table`, `2 tables`.
pub fn count(n: u64, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// A possibly qualified, possibly quoted name, as the manifest writes it,
/// in unquoted parts: `public."Odd ""x"""` is `["public", "Odd \"x\""]`.
fn split_name(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut quote = None;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                if chars.peek() == Some(&q) {
                    part.push(q);
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some(_) => part.push(c),
            None if c == '"' || c == '`' => quote = Some(c),
            None if c == '.' => parts.push(std::mem::take(&mut part)),
            None => part.push(c),
        }
    }
    parts.push(part);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(database: &str, table: &[&str], rows: u64) -> Found {
        Found {
            database: database.into(),
            table: table.iter().map(|s| s.to_string()).collect(),
            rows,
        }
    }

    fn table(database: Option<&str>, name: &str, rows: Option<u64>) -> Table {
        Table {
            database: database.map(Into::into),
            table: name.into(),
            rows,
        }
    }

    #[test]
    fn names_split_as_written() {
        assert_eq!(split_name("public.t"), ["public", "t"]);
        assert_eq!(
            split_name("public.\"Odd \"\"x\"\".y\""),
            ["public", "Odd \"x\".y"]
        );
        assert_eq!(split_name("`a``b`"), ["a`b"]);
    }

    #[test]
    fn every_table_with_its_rows() {
        let restored = [
            found("drill", &["public", "t"], 3),
            found("postgres", &["public", "t"], 9),
            found("shop", &["public", "u"], 0),
        ];
        let ok = compare(
            Some(&[
                table(None, "public.t", Some(3)),
                table(Some("shop"), "public.u", None),
            ]),
            &restored,
        )
        .unwrap();
        assert_eq!((ok.tables, ok.rows, ok.compared), (2, 3, true));
        let e = compare(Some(&[table(None, "public.t", Some(4))]), &restored).unwrap_err();
        assert_eq!(e, "table public.t: 3 rows restored, 4 in the manifest");
        let e = compare(
            Some(&[
                table(Some("shop"), "public.t", Some(3)),
                table(None, "public.v", Some(1)),
            ]),
            &restored,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "table shop.public.t is in the manifest but not in the restored database \
             (and 1 more)"
        );
        let none = compare(None, &restored).unwrap();
        assert_eq!((none.tables, none.rows, none.compared), (3, 12, false));
    }
}
