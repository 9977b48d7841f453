//! A throwaway SQLite database: a file in the drill's directory, the dump
//! read by `sqlite3 -safe -bail`, then `PRAGMA integrity_check`. In safe
//! mode the shell refuses what reaches outside the database (`.shell`,
//! `.system`, `.output`, `.read`, `.open`, `ATTACH`, `readfile()`,
//! `writefile()`, extensions); `-bail` makes the first refusal fail the
//! drill.

use crate::engine::{self, Engine, Found, Restore};
use jobkit::process;
use jobkit::{Error, Exit, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SQLITE: &str = "/usr/bin/sqlite3";

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
        let version = process::output(process::command(SQLITE, dir).arg("--version"), "sqlite3")?;
        Ok(Sqlite {
            dir: dir.to_owned(),
            file: dir.join("drill.db"),
            version: version.split_whitespace().next().unwrap_or("").to_owned(),
        })
    }

    fn shell(&self) -> Command {
        let mut c = process::command(SQLITE, &self.dir);
        c.args(["-safe", "-bail", "-batch"]).arg(&self.file);
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
        let input: Box<dyn Write> = Box::new(BufWriter::with_capacity(1 << 17, stdin));
        Ok(Restore {
            tool,
            input,
            feeder: None,
        })
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
