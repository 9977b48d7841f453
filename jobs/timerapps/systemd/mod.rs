//! The service manager, as the commands see it: the one place that speaks
//! D-Bus (`dbus`), reads the journal (`journal`) and runs `systemd-analyze`
//! (`calendar`). The rest asks a [`Bus`] and gets plain structs back, so
//! that unit tests can drive it with a fake.

pub mod calendar;
mod dbus;
#[cfg(test)]
pub mod fake;
pub mod journal;

pub use dbus::connect;
use jobkit::catalogue::Manager;
use jobkit::{Error, Exit, Result};
use std::env;
use std::path::PathBuf;

/// What the commands ask of a service manager. Each reading loads the
/// unit if need be.
pub trait Bus {
    /// Which manager this is.
    fn scope(&self) -> Scope;
    /// A unit's states.
    fn unit(&self, name: &str) -> Reading<UnitState>;
    /// A timer's schedule and elapses.
    fn timer(&self, name: &str) -> Reading<TimerState>;
    /// How a service's last run went.
    fn last_run(&self, name: &str) -> Reading<LastRun>;
    /// What a service runs, and with which environment.
    fn setup(&self, name: &str) -> Reading<Setup>;
    /// The drop-ins in effect for a unit, in the order systemd applies them.
    fn drop_ins(&self, name: &str) -> Reading<Vec<String>>;
    /// Keeps a unit loaded for as long as this connection lives, so that
    /// its last run outlasts it.
    fn hold(&self, name: &str) -> Reading<()>;
    /// The loaded units whose names match `pattern`.
    fn loaded(&self, pattern: &str) -> Result<Vec<Loaded>>;
    /// Enables a unit file; what was linked, as systemctl says it.
    fn enable(&self, unit: &str) -> Result<Vec<Change>>;
    /// Disables a unit file; what was unlinked.
    fn disable(&self, unit: &str) -> Result<Vec<Change>>;
    /// Reloads the units from disk (`daemon-reload`).
    fn reload(&self) -> Result<()>;
    /// Asks for `verb` on `unit` and waits until systemd has done it;
    /// returns the job's result ("done", "failed", "canceled", ...). For a
    /// oneshot service, the start job ends with its run.
    fn job(&self, verb: Verb, unit: &str) -> Result<String>;
}

/// What a reading gives: the value, or why it is not there.
pub type Reading<T> = std::result::Result<T, Unread>;

/// Why a reading failed.
#[derive(Debug)]
pub enum Unread {
    /// The unit could not be loaded or reached: the whole error.
    Unit(Error),
    /// A property could not be read: the reason, to follow what was being
    /// read.
    Property(String),
}

impl Unread {
    /// The error for a failed reading, saying what was being read.
    pub fn reading(self, what: &str) -> Error {
        match self {
            Unread::Unit(e) => e,
            Unread::Property(reason) => Error::new(Exit::Failure, format!("{what}: {reason}")),
        }
    }
}

/// [`Unread::reading`], for `map_err`.
pub fn read(what: &str) -> impl Fn(Unread) -> Error {
    let what = what.to_owned();
    move |unread| unread.reading(&what)
}

/// A reading's value, or its default where only a property could not be
/// read; a unit that cannot be loaded or reached is an error still.
pub fn or_default<T: Default>(reading: Reading<T>) -> Result<T> {
    match reading {
        Ok(value) => Ok(value),
        Err(Unread::Unit(e)) => Err(e),
        Err(Unread::Property(_)) => Ok(T::default()),
    }
}

/// A unit's states.
#[derive(Clone, Debug, Default)]
pub struct UnitState {
    /// active, inactive, failed, activating, ...
    pub active: String,
    /// The unit file's state: enabled, disabled, static, ...
    pub file: String,
}

/// When a timer elapses, as systemd has it now.
#[derive(Clone, Debug, Default)]
pub struct TimerState {
    /// The normalized `OnCalendar=` expressions.
    pub calendar: Vec<String>,
    /// The monotonic settings: (base such as `OnUnitActiveUSec`, µs).
    pub monotonic: Vec<(String, u64)>,
    /// The next elapse in real time, µs since the epoch; 0 or `u64::MAX`
    /// none.
    pub next_realtime: u64,
    /// The next monotonic elapse, µs since boot; 0 or `u64::MAX` none.
    pub next_monotonic: u64,
    /// When it last started its service, µs since the epoch; 0 never.
    pub last_trigger: u64,
}

/// A service's last run.
#[derive(Clone, Debug, Default)]
pub struct LastRun {
    /// Its invocation ID, in hex; empty when it never ran.
    pub invocation: String,
    /// success, exit-code, signal, watchdog, timeout, ... as systemd says.
    pub result: String,
    /// When its main process started and exited, µs since the epoch; 0
    /// when not known.
    pub started: u64,
    pub exited: u64,
    /// Its exit status, or the signal that killed it.
    pub status: i32,
    /// How the main process ended, as waitid(2) says: 1 exited, 2 killed,
    /// 3 dumped core; 0 when it never ran.
    pub code: i32,
    /// Its main process; 0 when not known.
    pub pid: u32,
}

/// What a service runs, and with which environment.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// The programs of its `ExecStart=`, in order.
    pub programs: Vec<String>,
    /// Its `Environment=`, `KEY=VALUE`.
    pub environment: Vec<String>,
    /// Its `EnvironmentFile=`s: (path, whether optional).
    pub environment_files: Vec<(String, bool)>,
}

/// A loaded unit, as `ListUnitsByPatterns` lists it.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub name: String,
    /// active, inactive, failed, activating, ...
    pub active: String,
}

/// A link made or removed by enabling or disabling a unit file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// symlink, unlink, ...
    pub kind: String,
    pub link: String,
    pub target: String,
}

/// What to ask of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

impl Verb {
    fn word(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
        }
    }
}

/// Which service manager: the system's, or the caller's own (`--user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

impl Scope {
    /// The manager's name in the job catalogue.
    pub fn manager(self) -> Manager {
        match self {
            Scope::System => Manager::System,
            Scope::User => Manager::User,
        }
    }

    /// Where this manager reads the admin's (or the user's) units and
    /// drop-ins, as `systemctl edit` writes them.
    pub fn config_dir(self) -> Result<PathBuf> {
        match self {
            Scope::System => Ok(PathBuf::from("/etc/systemd/system")),
            Scope::User => config_home().map(|c| c.join("systemd/user")),
        }
    }
}

/// A user's configuration home, as systemd finds it for `%E`:
/// $XDG_CONFIG_HOME, or ~/.config.
pub fn config_home() -> Result<PathBuf> {
    env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".config"))
        })
        .ok_or_else(|| {
            Error::new(
                Exit::Failure,
                "neither XDG_CONFIG_HOME nor HOME is set: cannot tell where your settings are",
            )
        })
}
