//! A throwaway PostgreSQL cluster: `initdb` and `postgres` of the newest
//! major version installed, trust authentication on a Unix socket in the
//! drill's directory and no TCP port. Every dump goes through `psql -v
//! ON_ERROR_STOP=1` behind the guard (`pgguard.rs`), which runs each
//! object's statements as the role that owned it in the dump: plain and
//! cluster dumps as they are, custom-format dumps as `pg_restore -f -`
//! writes them out.
//!
//! The cluster's superuser has a random name. A plain or custom-format dump
//! is restored into a database `drill` that a plain stand-in role owns; a
//! cluster dump makes its own databases and roles.

use crate::engine::{self, Engine, Feeder, Found, Kind, Restore};
use crate::pgguard::{random_word, Guard, Names};
use jobkit::family::postgresql::{self, Postgresql};
use jobkit::family::Format;
use jobkit::host::process::{self, Child, Signaller};
use jobkit::{Error, Exit, Result};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs each major version's programs.
const VERSIONS: &str = "/usr/lib/postgresql";
/// The database a plain or custom-format dump is restored into.
const DATABASE: &str = "drill";

/// Every session's settings, ahead of what the dump's roles and databases
/// set for themselves: catalog names resolve in pg_catalog alone, strings
/// are standard (the guard quotes for that), and writing is on.
const OPTIONS: &str = "-c search_path=pg_catalog -c standard_conforming_strings=on \
                       -c default_transaction_read_only=off";

pub const KIND: Kind = Kind {
    name: postgresql::ENGINE,
    overhead: 128 << 20,
    start,
};

fn start(dir: &Path, format: Format, head: &[u8], room: u64) -> Result<Box<dyn Engine>> {
    let format = Postgresql::of(format).ok_or_else(|| {
        Error::new(
            Exit::Failure,
            format!("a {format} dump is not PostgreSQL's to restore"),
        )
    })?;
    Ok(Box::new(Postgres::start(dir, format, head, room)?))
}

pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    format: Postgresql,
    version: String,
    names: Names,
    server: Option<Child>,
}

/// The first psql of each major version that has `\restrict`, with which
/// the guard keeps psql from running the dump's backslash commands.
const RESTRICT_SINCE: [(u32, u32); 5] = [(13, 22), (14, 19), (15, 14), (16, 10), (17, 6)];

/// Whether psql `version` (`15.14`) has `\restrict`.
fn restricts(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return false;
    };
    major >= 18
        || RESTRICT_SINCE
            .iter()
            .any(|&(m, since)| m == major && minor >= since)
}

/// The newest major version with a server installed, and its programs.
fn newest_server() -> Result<(u32, PathBuf)> {
    let missing = || {
        Error::new(
            Exit::NotConfigured,
            format!(
                "no PostgreSQL server is installed (no {VERSIONS}/*/bin/postgres) to restore \
                 the dump into: install the Debian package postgresql"
            ),
        )
    };
    let entries = fs::read_dir(VERSIONS).map_err(|_| missing())?;
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "postgres", "psql", "pg_restore"]
                .iter()
                .all(|p| bin.join(p).exists())
                .then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .ok_or_else(missing)
}

/// The major version of the pg_dump that wrote the dump, from its first
/// bytes: the plain format's `-- Dumped by pg_dump version 17.6` comment,
/// or the custom format's header.
pub fn dumped_by(format: Postgresql, head: &[u8]) -> Option<u32> {
    let version = match format {
        Postgresql::Custom => custom_header_version(head)?,
        _ => {
            let text = String::from_utf8_lossy(head);
            let at = text.find("-- Dumped by pg_dump version ")?;
            text[at..].split_whitespace().nth(5)?.to_owned()
        }
    };
    version.split('.').next()?.parse().ok()
}

/// The pg_dump version in a custom-format archive's header (archive
/// version 1.10 and later): magic, version, sizes, format, compression, the
/// creation time, then the database's name, the server's version and
/// pg_dump's.
fn custom_header_version(head: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(b"PGDMP")?;
    let (&[major, minor, _revision, int_size, _off_size, _format], mut rest) =
        rest.split_first_chunk::<6>()?;
    let int_size = usize::from(int_size);
    let int = |rest: &mut &[u8]| -> Option<i64> {
        let (&sign, tail) = rest.split_first()?;
        let bytes = tail.get(..int_size)?;
        *rest = &tail[int_size..];
        let value = bytes
            .iter()
            .rev()
            .fold(0i64, |v, &b| (v << 8) | i64::from(b));
        Some(if sign == 0 { value } else { -value })
    };
    let string = |rest: &mut &[u8]| -> Option<String> {
        let len = int(rest)?;
        if len < 0 {
            return Some(String::new());
        }
        let len = usize::try_from(len).ok()?;
        let text = rest.get(..len)?;
        *rest = &rest[len..];
        Some(String::from_utf8_lossy(text).into_owned())
    };
    if (major, minor) < (1, 10) {
        return None;
    }
    // 1.15 (pg_dump 16) and later: the compression algorithm, one byte;
    // before: the compression level, an int.
    if (major, minor) >= (1, 15) {
        rest = rest.get(1..)?;
    } else {
        int(&mut rest)?;
    }
    for _ in 0..7 {
        int(&mut rest)?;
    }
    let _database = string(&mut rest)?;
    let _server = string(&mut rest)?;
    let pg_dump = string(&mut rest)?;
    Some(pg_dump.split_whitespace().next()?.to_owned())
}

impl Postgres {
    /// Makes the cluster in `dir` and starts it, for a dump of `format`
    /// whose decompressed stream begins with `head`, with `room` bytes of
    /// its file system for the drill to take.
    pub fn start(dir: &Path, format: Postgresql, head: &[u8], room: u64) -> Result<Postgres> {
        let (major, bin) = newest_server()?;
        if let Some(dumped) = dumped_by(format, head).filter(|d| *d > major) {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "the dump was made by pg_dump {dumped}, and the newest PostgreSQL server \
                     installed is {major}, which cannot restore it: install the Debian \
                     package postgresql-{dumped}"
                ),
            ));
        }
        let psql = process::output(
            process::command(bin.join("psql"), dir).arg("--version"),
            "psql",
        )?;
        let psql = psql.split_whitespace().nth(2).unwrap_or("").to_owned();
        if !restricts(&psql) {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "psql {psql} cannot be kept from running a dump's backslash commands \
                     (\\restrict came with the point releases of August 2025): install \
                     the current Debian package postgresql-client-{major}"
                ),
            ));
        }
        let names = Names {
            boot: format!("drill_{}", random_word(24)),
            standin: format!("drill_standin_{}", random_word(24)),
        };
        let data = dir.join("data");
        let socket = dir.join("s");
        engine::mkdir(&socket)?;
        let username = format!("--username={}", names.boot);
        let initdb = [
            "--auth=trust",
            &username,
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
            "-D",
        ];
        process::output(
            process::command(bin.join("initdb"), dir)
                .args(initdb)
                .arg(&data),
            "initdb",
        )?;
        let settings = [
            "listen_addresses=".to_owned(),
            format!("unix_socket_directories={}", socket.display()),
            "unix_socket_permissions=0700".to_owned(),
            // A throwaway cluster: nothing of it needs to survive a crash,
            // and it takes what the host's database leaves.
            "fsync=off".to_owned(),
            "synchronous_commit=off".to_owned(),
            "full_page_writes=off".to_owned(),
            // No standby or archive reads its WAL: index builds and
            // materialized views' refreshes write none.
            "wal_level=minimal".to_owned(),
            "max_wal_senders=0".to_owned(),
            "max_wal_size=64MB".to_owned(),
            // A database that lives for minutes needs neither vacuum nor
            // statistics, whose workers would compete with the restore.
            "autovacuum=off".to_owned(),
            // Memory: a quarter of the default shared buffers, one restoring
            // session and the counting ones, and sorts held to their defaults
            // whatever the host's postgresql.conf says.
            "shared_buffers=32MB".to_owned(),
            "max_connections=10".to_owned(),
            "work_mem=4MB".to_owned(),
            "maintenance_work_mem=64MB".to_owned(),
            // No sort or hash spills more than the drill may take of its
            // file system: the query fails before the watch has to act.
            format!("temp_file_limit={}kB", (room / 1024).min(i32::MAX as u64)),
            // JIT needs memory both written and run, which the unit forbids.
            "jit=off".to_owned(),
            "logging_collector=off".to_owned(),
        ];
        let mut server = process::command(bin.join("postgres"), dir);
        server.arg("-D").arg(&data);
        for s in &settings {
            server.arg("-c").arg(s);
        }
        let mut pg = Postgres {
            server: Some(process::spawn(&mut server, "postgres")?),
            bin,
            dir: dir.to_owned(),
            socket,
            format,
            version: String::new(),
            names,
        };
        pg.wait_ready(&data)?;
        let version = pg.sql("postgres", "SHOW server_version")?;
        pg.version = version.split_whitespace().next().unwrap_or("").to_owned();
        pg.prepare()?;
        Ok(pg)
    }

    /// The databases the restore starts in, owned by the stand-in, with
    /// every role allowed to create in them and their `public` schema.
    fn databases(&self) -> &'static [&'static str] {
        match self.format {
            Postgresql::Cluster => &["postgres", "template1"],
            _ => &[DATABASE],
        }
    }

    /// Makes the stand-in and the databases the restore starts in.
    fn prepare(&self) -> Result<()> {
        let standin = &self.names.standin;
        self.sql(
            "postgres",
            &format!("CREATE ROLE {standin} NOSUPERUSER LOGIN"),
        )?;
        for db in self.databases() {
            if *db == DATABASE {
                self.sql("postgres", &format!("CREATE DATABASE {db} OWNER {standin}"))?;
            } else {
                self.sql(
                    "postgres",
                    &format!("ALTER DATABASE {db} OWNER TO {standin}"),
                )?;
            }
            self.sql(
                db,
                &format!(
                    "GRANT CREATE ON DATABASE {db} TO PUBLIC; \
                     GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC"
                ),
            )?;
        }
        Ok(())
    }

    /// Waits until the postmaster says it is ready (its pid file's status
    /// line), or fails with what it said.
    fn wait_ready(&mut self, data: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let server = self.server.as_mut().expect("started");
            if server.exited().is_some() {
                return Err(Error::new(
                    Exit::Failure,
                    format!("the PostgreSQL server did not start: {}", server.said()),
                ));
            }
            let pid_file = fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
            if pid_file.lines().nth(7).map(str::trim) == Some("ready") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    Exit::Failure,
                    "the PostgreSQL server was not ready after 120 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client program of the cluster's version, connected to `database`.
    fn client(&self, program: &str, database: &str) -> Command {
        let mut c = process::command(self.bin.join(program), &self.dir);
        c.env("PGHOST", &self.socket)
            .env("PGPORT", "5432")
            .env("PGUSER", &self.names.boot)
            .env("PGDATABASE", database)
            .env("PGOPTIONS", OPTIONS);
        c
    }

    /// Runs `sql` in `database`, rows as tab-separated lines.
    fn sql(&self, database: &str, sql: &str) -> Result<String> {
        let args = [
            "-X",
            "-q",
            "-At",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ];
        process::output(self.client("psql", database).args(args), "psql")
    }
}

impl Engine for Postgres {
    fn server(&self) -> String {
        format!("PostgreSQL {}", self.version)
    }

    fn restore(&mut self) -> Result<Restore> {
        let start = match self.format {
            Postgresql::Cluster => "postgres",
            _ => DATABASE,
        };
        let mut psql = self.client("psql", start);
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped());
        let mut tool = process::spawn(&mut psql, "psql")?;
        let guard = Guard::new(
            BufWriter::with_capacity(1 << 17, tool.stdin().expect("piped")),
            &self.names,
            start,
            self.format == Postgresql::Cluster,
            self.databases(),
        )
        .map_err(|e| Error::new(Exit::Failure, format!("cannot write to psql: {e}")))?;
        if self.format != Postgresql::Custom {
            let input = Box::new(BufWriter::with_capacity(1 << 17, guard));
            return Ok(Restore {
                tool,
                input,
                feeder: None,
            });
        }
        // The archive in, its SQL out through the guard into psql.
        let mut c = self.client("pg_restore", start);
        c.args(["--exit-on-error", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = process::spawn(&mut c, "pg_restore")?;
        let input = Box::new(BufWriter::with_capacity(
            1 << 17,
            child.stdin().expect("piped"),
        ));
        let mut sql = child.stdout().expect("piped");
        let pump = std::thread::spawn(move || {
            let mut guard = BufWriter::with_capacity(1 << 17, guard);
            io::copy(&mut sql, &mut guard)?;
            guard.flush()
        });
        Ok(Restore {
            tool,
            input,
            feeder: Some(Feeder { child, pump }),
        })
    }

    fn halt(&mut self) -> Result<Option<Signaller>> {
        // SIGQUIT: an immediate shutdown, which ends every backend at once.
        // A postmaster killed outright would leave its backends writing.
        match &mut self.server {
            Some(server) => server.signaller(libc::SIGQUIT),
            None => Ok(None),
        }
    }

    fn empty_roles(&mut self) -> Result<Option<Vec<String>>> {
        // A cluster dump makes its roles; a plain or custom one only names
        // them, and the guard made each one it named.
        if self.format == Postgresql::Cluster {
            return Ok(None);
        }
        // Each name as a JSON string, one per line whatever it holds.
        let roles = self.sql(
            "postgres",
            &format!(
                "SELECT to_json(rolname) FROM pg_roles WHERE rolname !~ '^pg_' \
                 AND rolname NOT IN ('{}', '{}') ORDER BY rolname",
                self.names.boot, self.names.standin
            ),
        )?;
        roles
            .lines()
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    Error::new(
                        Exit::Failure,
                        format!("cannot read a role's name from the drill's server: {e}"),
                    )
                })
            })
            .collect::<Result<_>>()
            .map(Some)
    }

    fn inventory(&mut self) -> Result<Vec<Found>> {
        let databases = self.sql(
            "postgres",
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate \
             ORDER BY datname",
        )?;
        let mut found = Vec::new();
        for database in databases.lines() {
            let tables = self.sql(
                database,
                "SELECT n.nspname, c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' \
                 AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2",
            )?;
            let names: Vec<Vec<String>> = tables
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(s, t)| vec![s.to_owned(), t.to_owned()])
                .collect();
            if names.is_empty() {
                continue;
            }
            let quoted: Vec<String> = names
                .iter()
                .map(|n| {
                    n.iter()
                        .map(|p| engine::quoted(p, '"'))
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .collect();
            found.extend(engine::count_rows(names, &quoted, database, "psql", |q| {
                self.sql(database, q)
            })?);
        }
        Ok(found)
    }

    fn stop(&mut self) -> Result<()> {
        // SIGINT: a fast shutdown.
        match self.server.take() {
            Some(mut server) => server.stop(libc::SIGINT, "PostgreSQL"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_restricts_since_the_point_releases_of_august_2025() {
        for (version, yes) in [
            ("15.14", true),
            ("15.13", false),
            ("17.6", true),
            ("17.5", false),
            ("13.22", true),
            ("12.22", false),
            ("18.0", true),
            ("15", false),
            ("", false),
        ] {
            assert_eq!(restricts(version), yes, "{version}");
        }
    }

    #[test]
    fn the_version_that_dumped() {
        let plain = b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.14 (Debian)\n-- Dumped by pg_dump version 17.6 (Debian 17.6-0+deb13u1)\n";
        assert_eq!(dumped_by(Postgresql::Plain, plain), Some(17));
        assert_eq!(dumped_by(Postgresql::Plain, b"--\n"), None);
        // pg_dump 15's header, archive 1.14: level as an int.
        let mut h = b"PGDMP\x01\x0e\x00\x04\x08\x01".to_vec();
        let int = |v: u32| [&[0u8][..], &v.to_le_bytes()[..]].concat();
        let string = |s: &str| [int(s.len() as u32), s.as_bytes().to_vec()].concat();
        h.extend(int(0));
        for _ in 0..7 {
            h.extend(int(1));
        }
        h.extend(string("shop"));
        h.extend(string("15.14 (Debian 15.14-0+deb12u1)"));
        h.extend(string("15.14 (Debian 15.14-0+deb12u1)"));
        assert_eq!(dumped_by(Postgresql::Custom, &h), Some(15));
        assert_eq!(dumped_by(Postgresql::Custom, &h[..30]), None);
    }
}
