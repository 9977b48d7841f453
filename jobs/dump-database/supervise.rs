//! What the service manager sees of a run (sd_notify(3)): the dump's
//! progress in the unit's status line (`systemctl status`), about once a
//! second, and watchdog pings while the dump command's output advances. A
//! dump that hangs (a lock wait, a database host that stopped answering)
//! then misses its pings, and systemd stops it after `WatchdogSec=`,
//! instead of leaving the unit active and every later timer run skipped.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) nothing is sent. Pings are sent only
//! when `WATCHDOG_USEC` is set for this process; the first one, at the start,
//! arms the watchdog, so a command that never writes a byte is caught too.

use jobkit::human::si;
use jobkit::Error;
use sd_notify::NotifyState;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the status line is refreshed, at most.
const TICK: Duration = Duration::from_secs(1);

/// The bytes read from the dump command and written to the temp file.
#[derive(Default)]
pub struct Progress {
    read: AtomicU64,
    written: AtomicU64,
}

impl Progress {
    pub fn reader<R: Read>(&self, inner: R) -> Metered<'_, R> {
        Metered {
            inner,
            count: &self.read,
        }
    }

    pub fn writer<W: Write>(&self, inner: W) -> Metered<'_, W> {
        Metered {
            inner,
            count: &self.written,
        }
    }

    fn get(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
        )
    }
}

/// A reader or writer that adds the bytes it moves to the progress meter.
pub struct Metered<'a, T> {
    inner: T,
    count: &'a AtomicU64,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<W: Write> Write for Metered<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The command runs: ping only while its output advances.
    Dumping,
    /// The job's own work (flush, publish, prune): ping.
    Finishing,
    /// The job's own work outlasted its bound: never ping again.
    Hung,
    Done,
}

struct Shared {
    progress: Progress,
    phase: Mutex<Phase>,
    changed: Condvar,
}

impl Shared {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reports a run to the service manager from a thread of its own.
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    deadline: Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    /// Starts reporting, if there is a service manager to report to.
    pub fn start() -> Supervisor {
        let shared = Arc::new(Shared {
            progress: Progress::default(),
            phase: Mutex::new(Phase::Dumping),
            changed: Condvar::new(),
        });
        let thread = std::env::var_os("NOTIFY_SOCKET").map(|_| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || report(&shared, sd_notify::watchdog_enabled()))
        });
        Supervisor {
            shared,
            thread,
            deadline: Mutex::new(None),
        }
    }

    pub fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    /// The command has ended; what follows is the job's own work, which
    /// must end within `bound`: a file system that stops answering (a hung
    /// NFS server) would otherwise hold the run, pinging the watchdog, for
    /// ever. Past it, from a thread of its own (the main one is stuck in
    /// its system call), the run says `failure`, has systemd's watchdog
    /// fire now (the unit fails with result watchdog and is stopped), and
    /// exits. A call the kernel will not interrupt, as a hard-mounted or
    /// FUSE file system's may be, holds the process until it returns; the
    /// unit is failed meanwhile.
    pub fn finishing(&self, bound: Duration, failure: Error) {
        *self.shared.phase() = Phase::Finishing;
        let shared = Arc::clone(&self.shared);
        let mut deadline = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        *deadline = Some(std::thread::spawn(move || {
            let mut phase = shared.phase();
            (phase, _) = shared
                .changed
                .wait_timeout_while(phase, bound, |p| *p == Phase::Finishing)
                .unwrap_or_else(PoisonError::into_inner);
            if *phase == Phase::Finishing {
                *phase = Phase::Hung;
                drop(phase);
                if sd_notify::watchdog_enabled().is_some() {
                    send(&[
                        NotifyState::Status(&format!("failed: {failure}")),
                        NotifyState::WatchdogTrigger,
                    ]);
                }
                jobkit::abort_job("dump-database", &failure);
            }
        }));
    }

    /// Stops reporting progress and leaves `status` as the last word.
    pub fn done(mut self, status: &str) {
        *self.shared.phase() = Phase::Done;
        self.shared.changed.notify_all();
        let deadline = self.deadline.lock().map(|mut d| d.take());
        if let Ok(Some(deadline)) = deadline {
            let _ = deadline.join();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            send(&[NotifyState::Status(status)]);
        }
    }
}

/// Nothing the service manager does not take may fail the dump.
fn send(states: &[NotifyState]) {
    let _ = sd_notify::notify(states);
}

fn report(shared: &Shared, watchdog: Option<Duration>) {
    // Several pings per period, so that one late tick never trips it.
    let tick = watchdog.map_or(TICK, |period| TICK.min(period / 4));
    let started = Instant::now();
    let mut last = (0, 0);
    let mut last_at = started;
    send(&[NotifyState::Status("starting DUMP_COMMAND")]);
    if watchdog.is_some() {
        send(&[NotifyState::Watchdog]);
    }
    loop {
        let phase = {
            let phase = shared.phase();
            let (phase, _) = shared
                .changed
                .wait_timeout_while(phase, tick, |p| *p != Phase::Done)
                .unwrap_or_else(PoisonError::into_inner);
            *phase
        };
        if phase == Phase::Done {
            return;
        }
        let now = Instant::now();
        let (read, written) = shared.progress.get();
        let rate = (read - last.0) as f64 / now.duration_since(last_at).as_secs_f64();
        let status = match phase {
            Phase::Dumping => format!(
                "dumping: {} read, {} written, {}/s",
                si(read),
                si(written),
                si(rate as u64)
            ),
            _ => format!(
                "publishing: {} read, {} written in {:.0} s",
                si(read),
                si(written),
                started.elapsed().as_secs_f64()
            ),
        };
        if phase == Phase::Hung {
            continue;
        }
        let ping = watchdog.is_some() && (read != last.0 || phase == Phase::Finishing);
        if ping {
            send(&[NotifyState::Status(&status), NotifyState::Watchdog]);
        } else {
            send(&[NotifyState::Status(&status)]);
        }
        (last, last_at) = ((read, written), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metered_readers_and_writers_add_up() {
        let progress = Progress::default();
        let mut out = Vec::new();
        io::copy(
            &mut progress.reader(&b"0123456789"[..]),
            &mut progress.writer(&mut out),
        )
        .unwrap();
        assert_eq!(progress.get(), (10, 10));
        assert_eq!(out, b"0123456789");
    }
}
