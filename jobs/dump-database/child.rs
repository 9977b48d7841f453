//! The dump command as a child process, and the forwarding of SIGTERM and
//! SIGINT to it, so that stopping the job stops the dump and the job still
//! cleans up.

use jobkit::{Error, Exit, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::{Handle, Signals};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Catches SIGTERM and SIGINT for the life of the run.
pub struct Stop {
    /// The last stop signal received, 0 while none has been. The signal
    /// handler itself stores it, so a check made after the signal reached
    /// this thread sees it, whether or not the forwarding thread has run.
    signal: Arc<AtomicUsize>,
    /// The child's process group while it can still be signalled: cleared
    /// before the child is reaped, so a recycled pid is never hit.
    group: Arc<Mutex<Option<libc::pid_t>>>,
    handle: Handle,
}

fn lock(group: &Mutex<Option<libc::pid_t>>) -> MutexGuard<'_, Option<libc::pid_t>> {
    group.lock().unwrap_or_else(|e| e.into_inner())
}

fn kill_group(group: libc::pid_t, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(-group, signal) };
}

impl Stop {
    pub fn install() -> Result<Stop> {
        let failed = |e: std::io::Error| {
            Error::new(
                Exit::Failure,
                format!("cannot install signal handlers: {e}"),
            )
        };
        let signal = Arc::new(AtomicUsize::new(0));
        // Registered before the iterator's handler, so the signal is
        // recorded before the forwarding thread can wake up for it.
        for s in [SIGTERM, SIGINT] {
            flag::register_usize(s, Arc::clone(&signal), s as usize).map_err(failed)?;
        }
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(failed)?;
        let group = Arc::new(Mutex::new(None));
        let handle = signals.handle();
        let forward_to = Arc::clone(&group);
        std::thread::spawn(move || {
            for signal in signals.forever() {
                if let Some(group) = *lock(&forward_to) {
                    kill_group(group, signal);
                }
            }
        });
        Ok(Stop {
            signal,
            group,
            handle,
        })
    }

    /// The stop signal received so far, if any.
    fn received(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => i32::try_from(s).ok(),
        }
    }

    /// Fails with the signal's exit status once one has been received.
    pub fn check(&self) -> Result<()> {
        self.check_after("the dump was discarded, earlier dumps are untouched")
    }

    /// Like [`Stop::check`], where `done` says what the run did anyway.
    pub fn check_after(&self, done: &str) -> Result<()> {
        match self.received() {
            Some(signal) => Err(Error::new(
                Exit::Signal(signal),
                format!("stopped by {}; {done}", signal_name(signal)),
            )),
            None => Ok(()),
        }
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.handle.close();
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        SIGTERM => "SIGTERM".into(),
        SIGINT => "SIGINT".into(),
        n => format!("signal {n}"),
    }
}

/// The running dump command, in a process group of its own so that a signal
/// reaches every process it started.
pub struct DumpProcess<'a> {
    child: std::process::Child,
    stop: &'a Stop,
}

impl<'a> DumpProcess<'a> {
    pub fn spawn(command: &[String], stop: &'a Stop) -> Result<DumpProcess<'a>> {
        let (program, args) = command.split_first().expect("DUMP_COMMAND has a program");
        let child = Command::new(program)
            .args(args)
            // The job alone speaks to the service manager (NotifyAccess=main).
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::new(
                    Exit::Failure,
                    format!(
                        "cannot run DUMP_COMMAND program {program:?}: {e}; check that it is \
                         installed and in PATH, or give its full path; earlier dumps are untouched"
                    ),
                )
            })?;
        let group = libc::pid_t::try_from(child.id()).expect("pids fit pid_t");
        let mut known = lock(&stop.group);
        *known = Some(group);
        // A signal that came before the group was known is passed on now.
        if let Some(signal) = stop.received() {
            kill_group(group, signal);
        }
        drop(known);
        Ok(DumpProcess { child, stop })
    }

    pub fn stdout(&mut self) -> ChildStdout {
        let stdout = self
            .child
            .stdout
            .take()
            .expect("stdout is piped and taken once");
        // A larger pipe lets the command write ahead while a block is being
        // handed on, with fewer wake-ups. The default still works if refused.
        // SAFETY: fcntl on a pipe descriptor we own; no memory is passed.
        unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        stdout
    }

    /// Asks the command to stop, after a failure on the job's side.
    pub fn terminate(&self) {
        if let Some(group) = *lock(&self.stop.group) {
            kill_group(group, SIGTERM);
        }
    }

    /// Waits for the command to exit and returns its status.
    pub fn wait(mut self) -> Result<ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pids fit pid_t");
        // Wait without reaping, forget the group, and only then reap.
        let waited = loop {
            // SAFETY: waitid writes only into the siginfo_t we own.
            let rc = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                break Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                break Err(err);
            }
        };
        *lock(&self.stop.group) = None;
        waited
            .and_then(|()| self.child.wait())
            .map_err(|e| Error::new(Exit::Failure, format!("cannot wait for DUMP_COMMAND: {e}")))
    }
}
