//! The watch over DRILL_TMPDIR's file system. The space check before the
//! restore is an estimate: a dump can grow many times over when restored (a
//! materialized view, an index), and the file system is shared with other
//! users, often the production database. While the server restores and
//! the tables are counted, a thread polls the file system's free space, and
//! before it falls below the reserve the drill keeps (`DRILL_RESERVE`), it
//! stops the server and the restoring tools at once.
//!
//! It polls every [`POLL`] and acts once the free space is within a margin
//! of the reserve: [`MIN_MARGIN`], or what the file system would fill in
//! [`LOOKAHEAD`] at the fastest rate the watch has seen, whichever is more.
//! The margin covers what is written between the last poll that saw room
//! enough and the end of the server's processes: one poll and the moment a
//! signal takes. So the reserve holds at any rate up to 3 GB/s (64 MiB in
//! 20 ms), and at a steady rate however fast once the watch has seen it for
//! one poll. Faster bursts, or a watch kept from running for longer, can
//! take a part of the reserve.
//! Free space is what `statvfs` gives an unprivileged user (`f_bavail`),
//! which ext4 and XFS lower as soon as a write is in the page cache.

use jobkit::host::process::Signaller;
use jobkit::human::si;
use jobkit::{Error, Exit};
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the watch reads the free space.
pub const POLL: Duration = Duration::from_millis(10);
/// The least margin above the reserve at which the watch acts.
pub const MIN_MARGIN: u64 = 64 << 20;
/// How far ahead of the fastest filling seen the watch acts.
pub const LOOKAHEAD: Duration = Duration::from_millis(100);

/// A file system's size and free space, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Space {
    pub total: u64,
    pub free: u64,
}

impl Space {
    pub fn of(dir: &Path) -> io::Result<Space> {
        let s = fs2::statvfs(dir)?;
        Ok(Space {
            total: s.total_space(),
            free: s.available_space(),
        })
    }
}

/// The margin above the reserve at which the watch acts, when the file
/// system has filled at most at `rate` bytes a second.
fn margin(rate: f64) -> u64 {
    MIN_MARGIN.max((rate * LOOKAHEAD.as_secs_f64()) as u64)
}

/// What the watch saw when it stopped the drill.
#[derive(Clone, Copy, Debug)]
pub struct Short {
    /// The space the drill had taken since it began.
    pub taken: u64,
    /// The space left free.
    pub free: u64,
}

#[derive(Default)]
struct State {
    ended: bool,
    /// What to stop: the server and the restoring tools.
    stops: Vec<Signaller>,
    short: Option<Short>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watching thread, until [`Watch::end`].
pub struct Watch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Watches the file system of `dir`, which had `before` bytes free when
    /// the drill began, and keeps `reserve` bytes of it free.
    pub fn start(dir: &Path, before: u64, reserve: u64) -> Watch {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let dir = dir.to_owned();
        let watching = Arc::clone(&shared);
        let thread = std::thread::spawn(move || watch(&watching, &dir, before, reserve));
        Watch {
            shared,
            thread: Some(thread),
        }
    }

    /// Adds processes to stop when the space runs short; stops them at
    /// once if it already has.
    pub fn stop_too(&self, signallers: impl IntoIterator<Item = Signaller>) {
        let mut state = self.shared.lock();
        for signaller in signallers {
            if state.short.is_some() {
                signaller.send();
            }
            state.stops.push(signaller);
        }
    }

    /// Ends the watch; whether it stopped the drill.
    pub fn end(mut self) -> Option<Short> {
        self.finish();
        self.shared.lock().short
    }

    fn finish(&mut self) {
        self.shared.lock().ended = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A drill that leaves on an error stops its watch too.
impl Drop for Watch {
    fn drop(&mut self) {
        self.finish();
    }
}

fn watch(shared: &Shared, dir: &Path, before: u64, reserve: u64) {
    // The fastest the free space fell between two polls, in bytes a second.
    let mut rate: f64 = 0.0;
    let mut last: Option<(Instant, u64)> = None;
    loop {
        // A statvfs that fails tells nothing: the next poll tries again.
        if let Ok(space) = Space::of(dir) {
            let now = Instant::now();
            if let Some((then, was)) = last {
                let secs = now.duration_since(then).as_secs_f64();
                if was > space.free && secs > 0.0 {
                    rate = rate.max((was - space.free) as f64 / secs);
                }
            }
            last = Some((now, space.free));
            if space.free <= reserve.saturating_add(margin(rate)) {
                let mut state = shared.lock();
                for stop in &state.stops {
                    stop.send();
                }
                state.short = Some(Short {
                    taken: before.saturating_sub(space.free),
                    free: space.free,
                });
                return;
            }
        }
        let state = shared.lock();
        if state.ended {
            return;
        }
        let (state, _) = shared
            .wake
            .wait_timeout(state, POLL)
            .unwrap_or_else(|e| e.into_inner());
        if state.ended {
            return;
        }
    }
}

impl Short {
    /// The drill's failure: `tmpdir`, what the drill had taken of it, and
    /// the reserve.
    pub fn error(&self, tmpdir: &Path, reserve: u64, said: &str) -> Error {
        Error::new(
            Exit::CantCreate,
            format!(
                "stopped the restore before {} ran short: the drill had taken {} of it and \
                 {} was left free, near the {} the drill keeps free ({said}); the restore \
                 was stopped and its files removed: set DRILL_TMPDIR to a directory on a \
                 larger disk",
                tmpdir.display(),
                si(self.taken),
                si(self.free),
                si(reserve)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_covers_the_fastest_filling_for_the_lookahead() {
        assert_eq!(margin(0.0), MIN_MARGIN);
        assert_eq!(margin(1e9), 100_000_000);
        // The documented guarantee: the least margin covers 3 GB/s for one
        // poll and as long again for the server to die.
        assert!(MIN_MARGIN as f64 >= 3e9 * 2.0 * POLL.as_secs_f64());
    }

    #[test]
    fn a_watch_that_finds_too_little_room_stops_what_it_was_given() {
        let dir = std::env::temp_dir();
        let free = Space::of(&dir).unwrap().free;
        let mut sleeper = jobkit::host::process::spawn(
            jobkit::host::process::command("sleep", &dir).arg("60"),
            "sleep",
        )
        .unwrap();
        // A reserve no disk has: other processes' files come and go in the
        // temp directory, so the space free now may not stay.
        let reserve = free + (1 << 50);
        let watch = Watch::start(&dir, free, reserve);
        watch.stop_too(sleeper.signaller(libc::SIGKILL).unwrap());
        let e = sleeper.wait().unwrap_err();
        assert!(e.to_string().contains("signal: 9"), "{e}");
        let short = watch.end().expect("stopped");
        assert!(short.free < reserve);
        let line = short.error(&dir, reserve, "DRILL_RESERVE=1%").to_string();
        assert!(
            line.contains(&format!("before {} ran short", dir.display())),
            "{line}"
        );
        assert!(!line.contains('\n'));

        // Room enough: it ends when asked, and stops nothing.
        let watch = Watch::start(&dir, free, 0);
        std::thread::sleep(POLL * 3);
        assert!(watch.end().is_none());
    }
}
