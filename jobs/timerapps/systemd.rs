//! The service manager over D-Bus: its Manager, Unit, Timer and Service
//! interfaces, and starting or stopping a unit and waiting for the job.
//!
//! Everyone, root too, goes through a bus: the system bus for the system's
//! manager, the user's own bus (dbus-user-session) for their manager.
//! systemd's private sockets label their messages with a well-known name as
//! sender, which zbus refuses (it accepts only unique names there).

use jobkit::manifest::Manager;
use jobkit::{Error, Exit, Result};
use serde::Deserialize;
use std::env;
use std::path::PathBuf;
use std::time::Duration;
use zbus::blocking::proxy::Builder as ProxyBuilder;
use zbus::blocking::{connection, Connection};
use zbus::proxy;
use zbus::proxy::{CacheProperties, Defaults};
use zbus::zvariant::{OwnedObjectPath, Type};

/// Reloading a large system takes seconds; a systemd that answers nothing
/// for this long is stuck, and saying so beats hanging.
const METHOD_TIMEOUT: Duration = Duration::from_secs(90);

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false
)]
pub trait Manager {
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload(&self) -> zbus::Result<()>;
    fn subscribe(&self) -> zbus::Result<()>;
    #[allow(clippy::type_complexity)]
    fn enable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
        force: bool,
    ) -> zbus::Result<(bool, Vec<(String, String, String)>)>;
    fn disable_unit_files(
        &self,
        files: &[&str],
        runtime: bool,
    ) -> zbus::Result<Vec<(String, String, String)>>;
    fn list_units_by_patterns(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> zbus::Result<Vec<UnitRow>>;
    /// A job ended: its id, object path, unit and result ("done",
    /// "failed", "canceled", ...).
    #[zbus(signal)]
    fn job_removed(&self, id: u32, job: OwnedObjectPath, unit: String, result: String);
}

/// One row of `ListUnits`/`ListUnitsByPatterns`, as systemd sends it: every
/// field, in its order, though only some are read.
#[allow(dead_code)]
#[derive(Debug, Deserialize, Type)]
pub struct UnitRow {
    pub name: String,
    pub description: String,
    pub load_state: String,
    /// active, inactive, failed, activating, ...
    pub active_state: String,
    pub sub_state: String,
    pub following: String,
    pub path: OwnedObjectPath,
    pub job_id: u32,
    pub job_type: String,
    pub job_path: OwnedObjectPath,
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

#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
pub trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn unit_file_state(&self) -> zbus::Result<String>;
    #[zbus(property, name = "InvocationID")]
    fn invocation_id(&self) -> zbus::Result<Vec<u8>>;
    /// The drop-ins in effect, in the order systemd applies them.
    #[zbus(property)]
    fn drop_in_paths(&self) -> zbus::Result<Vec<String>>;
    /// Keeps the unit loaded for as long as this connection lives, so that
    /// its properties outlast its run.
    #[zbus(name = "Ref")]
    fn hold(&self) -> zbus::Result<()>;
}

#[proxy(
    interface = "org.freedesktop.systemd1.Timer",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
pub trait Timer {
    /// (base such as `OnUnitActiveUSec`, value in µs, next elapse)
    #[zbus(property)]
    fn timers_monotonic(&self) -> zbus::Result<Vec<(String, u64, u64)>>;
    /// (base `OnCalendar`, normalized expression, next elapse)
    #[zbus(property)]
    fn timers_calendar(&self) -> zbus::Result<Vec<(String, String, u64)>>;
    #[zbus(property, name = "NextElapseUSecRealtime")]
    fn next_elapse_realtime(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "NextElapseUSecMonotonic")]
    fn next_elapse_monotonic(&self) -> zbus::Result<u64>;
    #[zbus(property, name = "LastTriggerUSec")]
    fn last_trigger(&self) -> zbus::Result<u64>;
}

/// One `ExecStart=` command as systemd sends it: every field, in its
/// order, though only the path is read.
#[allow(dead_code)]
#[derive(Debug, Deserialize, Type, zbus::zvariant::Value, zbus::zvariant::OwnedValue)]
pub struct ExecCommand {
    pub path: String,
    pub argv: Vec<String>,
    pub ignore_failure: bool,
    pub start_realtime: u64,
    pub start_monotonic: u64,
    pub exit_realtime: u64,
    pub exit_monotonic: u64,
    pub pid: u32,
    pub code: i32,
    pub status: i32,
}

#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
pub trait Service {
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn exec_main_start_timestamp(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn exec_main_exit_timestamp(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    /// How the main process ended, as waitid(2) says: 1 exited, 2 killed,
    /// 3 dumped core; 0 when it never ran.
    #[zbus(property)]
    fn exec_main_code(&self) -> zbus::Result<i32>;
    #[zbus(property, name = "ExecMainPID")]
    fn exec_main_pid(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn environment(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn environment_files(&self) -> zbus::Result<Vec<(String, bool)>>;
    #[zbus(property)]
    fn exec_start(&self) -> zbus::Result<Vec<ExecCommand>>;
}

/// Which service manager: the system's, or the caller's own (`--user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    System,
    User,
}

impl Scope {
    /// The manager's name in the jobs' manifest.
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

impl TimerProxy<'_> {
    /// When the timer elapses: its normalized `OnCalendar=` expressions, and
    /// its monotonic settings as (base such as `OnUnitActiveUSec`, µs).
    #[allow(clippy::type_complexity)]
    pub fn schedule(&self) -> zbus::Result<(Vec<String>, Vec<(String, u64)>)> {
        let calendar = self
            .timers_calendar()?
            .into_iter()
            .map(|(_, spec, _)| spec)
            .collect();
        let monotonic = self
            .timers_monotonic()?
            .into_iter()
            .map(|(base, usec, _)| (base, usec))
            .collect();
        Ok((calendar, monotonic))
    }
}

/// A connection to a service manager.
pub struct Systemd {
    conn: Connection,
    scope: Scope,
}

/// The error for a failed call, saying what was being done.
pub fn failed(what: &str) -> impl Fn(zbus::Error) -> Error {
    let what = what.to_string();
    move |e| {
        let (name, reason) = match &e {
            zbus::Error::MethodError(name, text, _) => (
                Some(name.as_str()),
                text.clone().unwrap_or_else(|| name.to_string()),
            ),
            _ => (None, e.to_string()),
        };
        let hint = match name {
            Some(
                "org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
            ) => "; run it as root",
            _ => "",
        };
        Error::new(Exit::Failure, format!("{what}: {reason}{hint}"))
    }
}

impl Systemd {
    pub fn connect(scope: Scope) -> Result<Systemd> {
        if !sd_notify::booted().unwrap_or(false) {
            return Err(Error::new(
                Exit::Unknown,
                "systemd is not running on this machine (no /run/systemd/system): the jobs are \
                 run by systemd timers, and timerapps talks to systemd",
            ));
        }
        let (builder, hint) = match scope {
            Scope::System => (
                connection::Builder::system(),
                "the system bus: is D-Bus (package dbus) installed and running?",
            ),
            // $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus.
            Scope::User => (
                connection::Builder::session(),
                "your user bus ($XDG_RUNTIME_DIR/bus): is the package dbus-user-session \
                 installed, and your user manager running (log in, or \
                 \"loginctl enable-linger\")?",
            ),
        };
        let conn = builder
            .and_then(|b| b.method_timeout(METHOD_TIMEOUT).build())
            .map_err(|e| Error::new(Exit::Unknown, format!("cannot connect to {hint} ({e})")))?;
        Ok(Systemd { conn, scope })
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    pub fn manager(&self) -> Result<ManagerProxy<'_>> {
        ManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .map_err(failed("cannot reach systemd's manager"))
    }

    /// A proxy on `unit`'s object, loading the unit if need be.
    pub fn unit<'a, P>(&'a self, unit: &str) -> Result<P>
    where
        P: From<zbus::Proxy<'a>> + Defaults,
    {
        let path = self
            .manager()?
            .load_unit(unit)
            .map_err(failed(&format!("cannot load {unit}")))?;
        ProxyBuilder::<P>::new(&self.conn)
            .path(path)
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .map_err(failed(&format!("cannot reach {unit}")))
    }

    /// Asks for `verb` on `unit` and waits until systemd has done it;
    /// returns the job's result ("done", "failed", "canceled", ...). For a
    /// oneshot service, the start job ends with its run.
    pub fn job(&self, verb: Verb, unit: &str) -> Result<String> {
        let manager = self.manager()?;
        let follow = failed("cannot follow systemd's jobs");
        manager.subscribe().map_err(&follow)?;
        // Listening before the job exists: it may end before the reply.
        let removed = manager.receive_job_removed().map_err(&follow)?;
        let asked = format!("cannot {} {unit}", verb.word());
        let job = match verb {
            Verb::Start => manager.start_unit(unit, "replace"),
            Verb::Stop => manager.stop_unit(unit, "replace"),
            Verb::Restart => manager.restart_unit(unit, "replace"),
        }
        .map_err(failed(&asked))?;
        for signal in removed {
            let Ok(args) = signal.args() else {
                continue;
            };
            if args.job == job {
                return Ok(args.result);
            }
        }
        Err(Error::new(
            Exit::Failure,
            format!("{asked}: the connection to systemd closed"),
        ))
    }
}
