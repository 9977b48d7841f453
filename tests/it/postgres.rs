//! A real PostgreSQL cluster for one test: initdb and pg_ctl from Debian's
//! `postgresql`, listening only on a Unix socket inside the sandbox.

use crate::harness::{cmd, is_root, run, user_ids, Run, Sandbox};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub socket: PathBuf,
    /// The OS user the server runs as: initdb refuses to run as root.
    owner: Option<(u32, u32)>,
}

fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: apt-get install postgresql (tests/run does)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        let v = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        v.parse::<u32>().unwrap_or(0)
    });
    versions
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

impl Postgres {
    pub fn start(sandbox: &Sandbox) -> Postgres {
        let data = sandbox.mkdir("pg/data");
        let socket = sandbox.mkdir("pg/socket");
        let owner = is_root().then(|| user_ids("postgres"));
        if let Some((uid, gid)) = owner {
            for dir in [data.parent().unwrap(), &data, &socket] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
            }
        }
        let pg = Postgres {
            bin: server_bin(),
            data,
            socket,
            owner,
        };
        let initdb = [
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
        ];
        run(pg
            .server("initdb", &initdb)
            .args(["--no-sync", "-D"])
            .arg(&pg.data))
        .ok();
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories={} -c fsync=off",
            pg.socket.display()
        );
        run(pg
            .server("pg_ctl", &["-w", "-D"])
            .arg(&pg.data)
            .arg("-l")
            .arg(pg.data.join("server.log"))
            .args(["-o", &options, "start"]))
        .ok();
        pg
    }

    fn server(&self, program: &str, args: &[&str]) -> Command {
        let mut c = cmd(self.bin.join(program));
        c.args(args);
        if let Some((uid, gid)) = self.owner {
            c.uid(uid).gid(gid).env("HOME", self.data.parent().unwrap());
        }
        c
    }

    /// Runs SQL in `db` as the superuser, stopping at the first error.
    #[track_caller]
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let args = [
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ];
        run(self.superuser(cmd(self.bin.join("psql"))).args(args))
            .ok()
            .stdout
            .clone()
    }

    /// Restores a dump of any form into a new database `db`.
    #[track_caller]
    pub fn restore(&self, dump: &Path, db: &str) -> Run {
        self.sql("postgres", &format!("CREATE DATABASE {db}"));
        let name = dump.to_string_lossy();
        // By the dump's form: a custom-format archive goes to pg_restore,
        // SQL to psql, through its decompressor.
        let script = if name.ends_with(".dump") {
            format!(
                "'{}' --exit-on-error -d {db} '{name}'",
                self.bin.join("pg_restore").display()
            )
        } else {
            let cat = if name.ends_with(".gz") {
                "gzip -dc"
            } else if name.ends_with(".zst") {
                "zstd -dcq"
            } else {
                "cat"
            };
            format!(
                "{cat} '{name}' | '{}' -X -q -v ON_ERROR_STOP=1 -d {db}",
                self.bin.join("psql").display()
            )
        };
        run(self.superuser(cmd("sh")).arg("-ec").arg(script))
    }

    /// `c` with the environment that connects libpq clients as the superuser.
    pub fn superuser(&self, mut c: Command) -> Command {
        c.env("PGHOST", &self.socket).env("PGUSER", "postgres");
        c
    }

    /// Where a PostgreSQL program (pg_dump, pgbench, ...) is.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stop = ["-w", "-m", "immediate", "-D"];
        run(self.server("pg_ctl", &stop).arg(&self.data).arg("stop"));
    }
}
