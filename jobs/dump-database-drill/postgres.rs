//! A throwaway PostgreSQL cluster: `initdb` and `postgres` of the newest
//! major version installed, trust authentication on a Unix socket in the
//! drill's directory and no TCP port. Plain dumps are restored by
//! `psql -v ON_ERROR_STOP=1`, cluster dumps too, custom-format dumps by
//! `pg_restore --exit-on-error`.
//!
//! A plain dump names the roles that own its objects but does not create
//! them: they live in the production cluster, outside the dump. So that
//! such a dump restores as it is, each role it names is created, empty,
//! just before the statement that first names it. A cluster dump creates
//! every role, the superuser the new cluster already has too: its `CREATE
//! ROLE`s pass over a role that exists. A custom-format dump is restored
//! without owners and privileges instead, as pg_restore can do.

use crate::engine::{self, Engine, Found, Restore};
use jobkit::dumpfile::manifest::Format;
use jobkit::process::{self, Child};
use jobkit::{Error, Exit, Result};
use std::collections::HashSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs each major version's programs.
const VERSIONS: &str = "/usr/lib/postgresql";
/// The database a plain or custom-format dump is restored into.
const DATABASE: &str = "drill";

pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    format: Format,
    version: String,
    server: Option<Child>,
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
pub fn dumped_by(format: Format, head: &[u8]) -> Option<u32> {
    let version = match format {
        Format::PostgresqlCustom => custom_header_version(head)?,
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
    /// whose decompressed stream begins with `head`.
    pub fn start(dir: &Path, format: Format, head: &[u8]) -> Result<Postgres> {
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
        if jobkit::euid() == 0 {
            return Err(Error::new(
                Exit::NoPermission,
                "PostgreSQL's server does not run as root: run the drill as the job's \
                 user, as its unit does (timerapps drill JOB)",
            ));
        }
        let data = dir.join("data");
        let socket = dir.join("s");
        engine::mkdir(&socket)?;
        let initdb = [
            "--auth=trust",
            "--username=postgres",
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
            // A throwaway cluster: nothing of it needs to survive a crash.
            "fsync=off".to_owned(),
            "synchronous_commit=off".to_owned(),
            "full_page_writes=off".to_owned(),
            "max_wal_size=64MB".to_owned(),
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
        };
        pg.wait_ready(&data)?;
        let version = pg.sql("postgres", "SHOW server_version")?;
        pg.version = version.split_whitespace().next().unwrap_or("").to_owned();
        Ok(pg)
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
            .env("PGUSER", "postgres")
            .env("PGDATABASE", database);
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
        if self.format != Format::PostgresqlCluster {
            self.sql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
        }
        let (mut c, name) = match self.format {
            Format::PostgresqlCustom => {
                let mut c = self.client("pg_restore", DATABASE);
                c.args([
                    "--exit-on-error",
                    "--no-owner",
                    "--no-privileges",
                    "-d",
                    DATABASE,
                ]);
                (c, "pg_restore")
            }
            Format::PostgresqlCluster => {
                let mut c = self.client("psql", "postgres");
                c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
                (c, "psql")
            }
            _ => {
                let mut c = self.client("psql", DATABASE);
                c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
                (c, "psql")
            }
        };
        let mut tool = process::spawn(c.stdin(Stdio::piped()), name)?;
        let stdin = tool.stdin().expect("piped");
        let input: Box<dyn Write> = match self.format {
            Format::PostgresqlCustom => Box::new(BufWriter::with_capacity(1 << 17, stdin)),
            _ => Box::new(BufWriter::with_capacity(
                1 << 17,
                Roles::new(BufWriter::with_capacity(1 << 17, stdin)),
            )),
        };
        Ok(Restore { tool, input })
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

/// Passes a plain or cluster dump through, creating each role it names in an
/// `OWNER TO`, `GRANT … TO`, `REVOKE … FROM` or `FOR ROLE` statement just
/// before that statement. Only statements that start after a blank line
/// are looked at, as pg_dump writes them, and never the data of a `COPY`.
pub struct Roles<W: Write> {
    out: W,
    line: Vec<u8>,
    blank_before: bool,
    in_copy: bool,
    made: HashSet<String>,
}

impl<W: Write> Roles<W> {
    pub fn new(out: W) -> Roles<W> {
        Roles {
            out,
            line: Vec::new(),
            blank_before: false,
            in_copy: false,
            made: HashSet::new(),
        }
    }

    fn take(&mut self, line: &[u8]) -> io::Result<()> {
        if self.in_copy {
            if line == b"\\.\n" {
                self.in_copy = false;
            }
            return self.out.write_all(line);
        }
        if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;\n") {
            self.in_copy = true;
        } else if let Some(role) = created_role(line) {
            // A cluster dump creates every role, the new cluster's own
            // superuser too.
            self.made.insert(role.clone());
            self.blank_before = false;
            return self.create(&role);
        } else if self.blank_before {
            for role in roles_named(&String::from_utf8_lossy(line)) {
                if self.made.insert(role.clone()) {
                    self.create(&role)?;
                }
            }
        }
        self.blank_before = line == b"\n";
        self.out.write_all(line)
    }

    /// Creates `role` unless the cluster has it.
    fn create(&mut self, role: &str) -> io::Result<()> {
        writeln!(
            self.out,
            "DO $drill$BEGIN CREATE ROLE {role}; EXCEPTION WHEN duplicate_object THEN NULL; \
             END$drill$;"
        )
    }
}

impl<W: Write> Write for Roles<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let (line, tail) = rest.split_at(end + 1);
            if self.line.is_empty() {
                self.take(line)?;
            } else {
                let mut whole = std::mem::take(&mut self.line);
                whole.extend_from_slice(line);
                self.take(&whole)?;
            }
            rest = tail;
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.out.write_all(&line)?;
        }
        self.out.flush()
    }
}

/// The role of a `CREATE ROLE name;` line, as pg_dumpall writes it.
fn created_role(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    let role = line.strip_prefix("CREATE ROLE ")?.strip_suffix(";\n")?;
    let quoted = role.len() > 2 && role.starts_with('"') && role.ends_with('"');
    (quoted || !role.contains([' ', '"', ';'])).then(|| role.to_owned())
}

/// The roles a pg_dump statement names, as written (quoted or not),
/// leaving out `PUBLIC`, the superuser and the special role names.
fn roles_named(statement: &str) -> Vec<String> {
    let s = statement.trim_end().trim_end_matches(';');
    let mut roles = Vec::new();
    let mut after = |marker: &str| {
        if let Some(at) = s.rfind(marker) {
            let role = s[at + marker.len()..]
                .split(" WITH ")
                .next()
                .unwrap_or("")
                .split(" GRANTED BY ")
                .next()
                .unwrap_or("")
                .trim_end_matches(" CASCADE")
                .trim();
            roles.push(role.to_owned());
        }
    };
    if s.starts_with("ALTER ") && s.contains(" OWNER TO ") {
        after(" OWNER TO ");
    } else if s.starts_with("GRANT ") || s.starts_with("ALTER DEFAULT PRIVILEGES ") {
        after(" TO ");
    } else if s.starts_with("REVOKE ") {
        after(" FROM ");
    }
    if let Some(rest) = s.strip_prefix("ALTER DEFAULT PRIVILEGES FOR ROLE ") {
        roles.push(rest.split(' ').next().unwrap_or("").to_owned());
    }
    roles.retain(|r| {
        let quoted = r.len() > 2 && r.starts_with('"') && r.ends_with('"');
        !r.is_empty()
            && (quoted || !r.contains([' ', ',', ';', '(', ')', '"']))
            && !matches!(
                r.to_ascii_lowercase().as_str(),
                "public" | "postgres" | "current_user" | "session_user" | "current_role"
            )
    });
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_made_before_the_statements_that_name_them() {
        let dump = "CREATE ROLE postgres;\nCREATE TABLE public.t (a int);\n\n\n\
                    ALTER TABLE public.t OWNER TO app;\n\n\
                    COPY public.t (a) FROM stdin;\n\nGRANT x TO y;\n\\.\n\n\
                    GRANT SELECT ON TABLE public.t TO \"Read Only\" WITH GRANT OPTION;\n\n\
                    REVOKE ALL ON SCHEMA public FROM PUBLIC;\n\n\
                    ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO reporter;\n\n\
                    ALTER TABLE public.u OWNER TO app;\n";
        let mut out = Vec::new();
        let mut roles = Roles::new(&mut out);
        // Written in pieces that split lines.
        for chunk in dump.as_bytes().chunks(7) {
            roles.write_all(chunk).unwrap();
        }
        roles.flush().unwrap();
        let out = String::from_utf8(out).unwrap();
        let made: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("DO $drill$BEGIN CREATE ROLE "))
            .map(|l| l.split(';').next().unwrap())
            .collect();
        assert_eq!(
            made,
            ["postgres", "app", "\"Read Only\"", "reporter"],
            "{out}"
        );
        assert_eq!(
            out.lines()
                .filter(|l| !l.starts_with("DO "))
                .collect::<Vec<_>>(),
            dump.lines().skip(1).collect::<Vec<_>>()
        );
        let app = out.find("CREATE ROLE app").unwrap();
        assert!(app < out.find("OWNER TO app").unwrap());
    }

    #[test]
    fn the_version_that_dumped() {
        let plain = b"--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 15.14 (Debian)\n-- Dumped by pg_dump version 17.6 (Debian 17.6-0+deb13u1)\n";
        assert_eq!(dumped_by(Format::Postgresql, plain), Some(17));
        assert_eq!(dumped_by(Format::Postgresql, b"--\n"), None);
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
        assert_eq!(dumped_by(Format::PostgresqlCustom, &h), Some(15));
        assert_eq!(dumped_by(Format::PostgresqlCustom, &h[..30]), None);
    }
}
