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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `program` with nothing of the drill's environment but a PATH, `home`
/// as HOME and TMPDIR, and a UTF-8 locale; no input, output discarded,
/// errors kept. Temporary files (a server's temporary tables, SQLite's
/// spills) stay in the drill's own directory, under its watch, and never
/// meet another process's in `/tmp`.
pub fn command(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home)
        .env("TMPDIR", home)
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

    /// A [`Signaller`] that sends it `signal` from any thread; None when
    /// it has already exited.
    pub fn signaller(&mut self, signal: i32) -> Result<Option<Signaller>> {
        // Not reaped yet, so its pid is still its own when the pidfd is
        // opened; `&mut self` keeps any other call from reaping it between.
        if self.exited().is_some() {
            return Ok(None);
        }
        // SAFETY: pidfd_open takes a pid and flags and touches no memory.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid(), 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(Error::new(
                Exit::Failure,
                format!("cannot watch {} (pidfd_open): {e}", self.name),
            ));
        }
        // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Some(Signaller { pidfd, signal }))
    }

    /// Kills it and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal to a child from another thread than the one that waits
/// for it. A pidfd stays bound to the process it was opened for: once that
/// is reaped, sending does nothing, and never reaches a process that took
/// its pid.
pub struct Signaller {
    pidfd: OwnedFd,
    signal: i32,
}

impl Signaller {
    pub fn send(&self) {
        // SAFETY: the descriptor is open and ours; no siginfo is passed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                self.signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_sees_only_its_path_home_temporary_directory_and_locale() {
        let home = Path::new("/");
        let env = output(&mut command("env", home), "env").unwrap();
        let mut lines: Vec<&str> = env.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "HOME=/",
                "LC_ALL=C.UTF-8",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "TMPDIR=/"
            ]
        );
    }

    #[test]
    fn a_signaller_reaches_its_child_from_another_thread_and_nothing_once_it_is_reaped() {
        let mut sleeper = spawn(command("sleep", Path::new("/")).arg("60"), "sleep").unwrap();
        let signaller = sleeper.signaller(libc::SIGKILL).unwrap().unwrap();
        let signaller = std::thread::spawn(move || {
            signaller.send();
            signaller
        })
        .join()
        .unwrap();
        let e = sleeper.wait().unwrap_err();
        assert!(e.to_string().contains("signal: 9"), "{e}");
        // Reaped: the pidfd is stale, and sending reaches nothing.
        signaller.send();
        let mut done = spawn(&mut command("true", Path::new("/")), "true").unwrap();
        while done.exited().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(done.signaller(libc::SIGKILL).unwrap().is_none());
    }
}
