//! A real MariaDB server for one test, from Debian's `mariadb-server-core`:
//! its own data directory in the sandbox, a Unix socket and no network.
//! Run as root, it is told so (`--user=root`); root logs in through the
//! socket, other accounts with a password.

use crate::harness::{cmd, run, stop, wait_for, Sandbox};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Mariadb {
    server: Child,
    pub socket: PathBuf,
}

impl Mariadb {
    pub fn start(sandbox: &Sandbox) -> Mariadb {
        let data = sandbox.mkdir("mariadb/data");
        let socket = sandbox.path("mariadb/socket");
        run(cmd("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display())))
        .ok();
        let server = cmd("mariadbd")
            .args([
                "--no-defaults",
                "--user=root",
                "--skip-networking",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
            ])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--log-error={}",
                sandbox.path("mariadb/error.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd (Debian package mariadb-server-core) must be installed");
        let db = Mariadb { server, socket };
        wait_for("the MariaDB socket", Duration::from_secs(60), || {
            run(db.client("mariadb").args(["-e", "SELECT 1"])).code() == Some(0)
        });
        db
    }

    /// A client program connected as root through the socket.
    fn client(&self, program: &str) -> Command {
        let mut c = cmd(program);
        c.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .arg("--user=root");
        c
    }

    /// Runs SQL as root, in `db` if given.
    #[track_caller]
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let mut c = self.client("mariadb");
        c.args(["--batch", "--skip-column-names", "-e", sql]);
        if !db.is_empty() {
            c.arg(db);
        }
        run(&mut c).ok().stdout.clone()
    }

    /// Restores a gzip-compressed SQL dump into a new database `db`.
    #[track_caller]
    pub fn restore(&self, dump: &Path, db: &str) {
        self.sql("", &format!("CREATE DATABASE {db}"));
        let script = format!(
            "gzip -dc '{}' | mariadb --no-defaults --socket='{}' --user=root {db}",
            dump.display(),
            self.socket.display()
        );
        run(cmd("sh").arg("-ec").arg(script)).ok();
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        stop(&mut self.server);
    }
}
