//! Child processes of the drill and the copy: the throwaway server and the
//! tools that restore into it, restic. Each dies with the job
//! (`PR_SET_PDEATHSIG`), so that a job killed outright leaves nothing
//! running even outside its unit, and its error output is kept for the
//! reason of a failure. The drill's get a clean environment, so that no
//! libpq or MariaDB variable of the job's settings can point them at the
//! production server.

use crate::{Error, Exit, Result};
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `program` with nothing of the drill's environment but a PATH, `home`
/// as HOME, and a UTF-8 locale; no input, output discarded, errors kept.
pub fn command(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home)
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut c);
    c
}

/// Makes the child of `c` die when this process does.
pub fn die_with_parent(c: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The drill died between fork and prctl: follow it now.
            if libc::getppid() == 1 {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
}

/// A running child, its error output kept for the reason of a failure.
pub struct Child {
    name: String,
    child: std::process::Child,
    errors: Option<JoinHandle<Errors>>,
}

/// The first line that says ERROR, FATAL, Fatal: or unable to (restic's
/// lock conflict), and the last few lines.
#[derive(Default)]
struct Errors {
    first: Option<String>,
    last: VecDeque<String>,
}

impl Errors {
    fn read(from: impl Read) -> Errors {
        let mut errors = Errors::default();
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                continue;
            }
            if errors.first.is_none()
                && ["ERROR", "FATAL", "Fatal:", "unable to"]
                    .iter()
                    .any(|w| line.contains(w))
            {
                errors.first = Some(line.clone());
            }
            if errors.last.len() == 3 {
                errors.last.pop_front();
            }
            errors.last.push_back(line);
        }
        errors
    }

    fn summary(self) -> String {
        match self.first {
            Some(line) => line,
            None => Vec::from(self.last).join(" / "),
        }
    }
}

pub fn spawn(c: &mut Command, name: &str) -> Result<Child> {
    let mut child = c.spawn().map_err(|e| {
        Error::new(
            Exit::Failure,
            format!("cannot run {name} ({:?}): {e}", c.get_program()),
        )
    })?;
    let errors = child
        .stderr
        .take()
        .map(|e| std::thread::spawn(move || Errors::read(e)));
    Ok(Child {
        name: name.to_owned(),
        child,
        errors,
    })
}

impl Child {
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects; the child is ours and not reaped.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Whether it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for it; a failure's error names it, its status and what it
    /// said.
    pub fn wait(mut self) -> Result<()> {
        let status = self.child.wait().map_err(|e| {
            Error::new(Exit::Failure, format!("cannot wait for {}: {e}", self.name))
        })?;
        if status.success() {
            return Ok(());
        }
        let said = self.said();
        Err(Error::new(
            Exit::Failure,
            format!("{} failed ({status}): {said}", self.name),
        ))
    }

    /// What it wrote to its error output, in one line; after it exited.
    pub fn said(&mut self) -> String {
        self.errors
            .take()
            .and_then(|h| h.join().ok())
            .map(Errors::summary)
            .unwrap_or_default()
    }

    /// Stops a server with `signal`, its clean shutdown, waiting up to a
    /// minute before it kills it; `server` names it in the error.
    pub fn stop(&mut self, signal: i32, server: &str) -> Result<()> {
        self.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.exited().is_none() {
            if Instant::now() > deadline {
                self.kill();
                return Err(Error::new(
                    Exit::Failure,
                    format!("the {server} server did not stop within 60 s; it was killed"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills it and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child never outlives its handle: a server dropped on any path out of
/// the drill is killed there, not left to `PR_SET_PDEATHSIG` at exit.
impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `c` to its end and returns its output; a failure names `name`.
pub fn output(c: &mut Command, name: &str) -> Result<String> {
    c.stdout(Stdio::piped());
    let mut child = spawn(c, name)?;
    let mut text = String::new();
    if let Some(mut out) = child.child.stdout.take() {
        out.read_to_string(&mut text).map_err(|e| {
            Error::new(Exit::Failure, format!("cannot read what {name} wrote: {e}"))
        })?;
    }
    child.wait()?;
    Ok(text)
}
