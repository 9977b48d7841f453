//! A throwaway MariaDB server: `mariadb-install-db` and `mariadbd
//! --skip-networking` with a socket in the drill's directory, which nothing
//! else reaches. Its file statements (`SELECT … INTO OUTFILE`, `LOAD DATA
//! INFILE`, `LOAD_FILE()`) reach only an empty directory of its own
//! (`--secure-file-priv`), it loads no plugin (`--plugin-dir`, empty too),
//! and it ignores `DATA DIRECTORY` (`--skip-symbolic-links`).
//!
//! The dump is restored by an account `drill` that may make and fill any
//! database, table, view, routine, trigger or event, with any definer (`SET
//! USER`), but holds no `SUPER`, `FILE`, `RELOAD` or `GRANT OPTION`: no
//! `SET GLOBAL` (the server's log files), no plugin, no privilege to hand
//! out. Every other account is dropped first, so that a definer of the dump
//! (`root@localhost`) names no one, and what runs as a definer has no rights.
//! The `mariadb` client takes the dump as SQL alone: in binary mode it
//! parses no client command but `DELIMITER` and `\C` (its sandbox still
//! leaves `edit` and `pager`, which start programs), its sandbox stays on
//! for what `-e` runs, `LOAD DATA LOCAL` is off, and it stops at the first
//! error.

use crate::engine::{self, Engine, Found, Kind, Restore};
use jobkit::family::{mariadb, Format};
use jobkit::host::process::{self, Child, Signaller};
use jobkit::{Error, Exit, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/sbin/mariadbd";
/// The database a dump of one database, without `CREATE DATABASE`, goes to.
const DATABASE: &str = "drill";
/// The account that restores, and what it may do.
const ACCOUNT: &str = "drill";
const PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, \
                          ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, \
                          SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, \
                          DELETE HISTORY, SET USER";

pub const KIND: Kind = Kind {
    name: mariadb::ENGINE,
    overhead: 160 << 20,
    start,
};

fn start(dir: &Path, _: Format, _: &[u8], _: u64) -> Result<Box<dyn Engine>> {
    Ok(Box::new(Mariadb::start(dir)?))
}

pub struct Mariadb {
    dir: PathBuf,
    socket: PathBuf,
    version: String,
    /// The account the client logs in as: `root` until [`ACCOUNT`] is made.
    user: &'static str,
    server: Option<Child>,
}

impl Mariadb {
    pub fn start(dir: &Path) -> Result<Mariadb> {
        let install = Path::new("/usr/bin/mariadb-install-db");
        if !Path::new(SERVER).exists() || !install.exists() {
            return Err(Error::new(
                Exit::NotConfigured,
                format!(
                    "no MariaDB server is installed ({SERVER}) to restore the dump into: \
                     install the Debian package mariadb-server"
                ),
            ));
        }
        let data = dir.join("data");
        let socket = dir.join("s.sock");
        let files = dir.join("files");
        let plugins = dir.join("plugins");
        engine::mkdir(&files)?;
        engine::mkdir(&plugins)?;
        process::output(
            process::command(install, dir)
                .args([
                    "--no-defaults",
                    "--skip-test-db",
                    "--skip-name-resolve",
                    // root without a password, for the drill's own socket,
                    // until it has made the drill's account.
                    "--auth-root-authentication-method=normal",
                ])
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", dir.display())),
            "mariadb-install-db",
        )?;
        let mut server = process::command(SERVER, dir);
        server
            .args([
                "--no-defaults",
                "--skip-networking",
                "--skip-symbolic-links",
                // A throwaway server: nothing of it needs to survive a
                // crash, and it takes what the host's database leaves.
                "--skip-log-bin",
                "--skip-innodb-doublewrite",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-log-file-size=16M",
                "--innodb-buffer-pool-size=128M",
                "--max-connections=10",
            ])
            .arg(format!("--secure-file-priv={}", files.display()))
            .arg(format!("--plugin-dir={}", plugins.display()))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()));
        let mut db = Mariadb {
            server: Some(process::spawn(&mut server, "mariadbd")?),
            dir: dir.to_owned(),
            socket,
            version: String::new(),
            user: "root",
        };
        db.wait_ready()?;
        let version = db.sql("SELECT VERSION()")?;
        db.version = version.trim().split('-').next().unwrap_or("").to_owned();
        db.sql(&format!(
            "CREATE USER {ACCOUNT}@localhost; GRANT {PRIVILEGES} ON *.* TO {ACCOUNT}@localhost"
        ))?;
        let others = db.sql(&format!(
            "SELECT CONCAT('DROP USER ', QUOTE(user), '@', QUOTE(host), ';') \
             FROM mysql.global_priv WHERE NOT (user = '{ACCOUNT}' AND host = 'localhost')"
        ))?;
        db.sql(&others)?;
        db.user = ACCOUNT;
        Ok(db)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let server = self.server.as_mut().expect("started");
            if server.exited().is_some() {
                return Err(Error::new(
                    Exit::Failure,
                    format!("the MariaDB server did not start: {}", server.said()),
                ));
            }
            if self.socket.exists() && self.sql("SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    Exit::Failure,
                    "the MariaDB server was not ready after 120 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self) -> Command {
        let mut c = process::command("/usr/bin/mariadb", &self.dir);
        c.arg("--no-defaults")
            .arg("--sandbox")
            .arg("--binary-mode")
            .arg("--local-infile=0")
            .arg("--protocol=socket")
            .arg(format!("--socket={}", self.socket.display()))
            .arg(format!("--user={}", self.user));
        c
    }

    fn sql(&self, sql: &str) -> Result<String> {
        process::output(
            self.client()
                .args(["--batch", "--skip-column-names", "-e", sql]),
            "mariadb",
        )
    }
}

impl Engine for Mariadb {
    fn server(&self) -> String {
        format!("MariaDB {}", self.version)
    }

    fn restore(&mut self) -> Result<Restore> {
        self.sql(&format!("CREATE DATABASE {DATABASE}"))?;
        let mut c = self.client();
        c.args(["--batch", DATABASE]).stdin(Stdio::piped());
        let mut tool = process::spawn(&mut c, "mariadb")?;
        let stdin = tool.stdin().expect("piped");
        let input: Box<dyn Write> = Box::new(BufWriter::with_capacity(1 << 17, stdin));
        Ok(Restore {
            tool,
            input,
            feeder: None,
        })
    }

    fn halt(&mut self) -> Result<Option<Signaller>> {
        // One process: killed, its threads write no more.
        match &mut self.server {
            Some(server) => server.signaller(libc::SIGKILL),
            None => Ok(None),
        }
    }

    fn inventory(&mut self) -> Result<Vec<Found>> {
        let tables = self.sql(
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN \
             ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
        )?;
        let mut found = Vec::new();
        let mut by_database: Vec<(String, Vec<Vec<String>>)> = Vec::new();
        for (database, table) in tables.lines().filter_map(|l| l.split_once('\t')) {
            match by_database.last_mut() {
                Some((d, names)) if d == database => names.push(vec![table.to_owned()]),
                _ => by_database.push((database.to_owned(), vec![vec![table.to_owned()]])),
            }
        }
        for (database, names) in by_database {
            let quoted: Vec<String> = names
                .iter()
                .map(|n| {
                    format!(
                        "{}.{}",
                        engine::quoted(&database, '`'),
                        engine::quoted(&n[0], '`')
                    )
                })
                .collect();
            found.extend(engine::count_rows(
                names,
                &quoted,
                &database,
                "mariadb",
                |q| self.sql(q),
            )?);
        }
        Ok(found)
    }

    fn stop(&mut self) -> Result<()> {
        // SIGTERM: a clean shutdown.
        match self.server.take() {
            Some(mut server) => server.stop(libc::SIGTERM, "MariaDB"),
            None => Ok(()),
        }
    }
}
