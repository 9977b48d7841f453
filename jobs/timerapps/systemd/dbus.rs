//! The service manager over D-Bus: its Manager, Unit, Timer and Service
//! interfaces, read into the plain structs of [`super`], and starting or
//! stopping a unit and waiting for the job.
//!
//! Everyone, root too, goes through a bus: the system bus for the system's
//! manager, the user's own bus (dbus-user-session) for their manager.
//! systemd's private sockets label their messages with a well-known name as
//! sender, which zbus refuses (it accepts only unique names there).

use super::{
    Bus, Change, LastRun, Loaded, Reading, Scope, Setup, TimerState, UnitState, Unread, Verb,
};
use jobkit::{Error, Exit, Result};
use serde::Deserialize;
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
trait Manager {
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
struct UnitRow {
    name: String,
    description: String,
    load_state: String,
    /// active, inactive, failed, activating, ...
    active_state: String,
    sub_state: String,
    following: String,
    path: OwnedObjectPath,
    job_id: u32,
    job_type: String,
    job_path: OwnedObjectPath,
}

#[proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Unit {
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
trait Timer {
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
struct ExecCommand {
    path: String,
    argv: Vec<String>,
    ignore_failure: bool,
    start_realtime: u64,
    start_monotonic: u64,
    exit_realtime: u64,
    exit_monotonic: u64,
    pid: u32,
    code: i32,
    status: i32,
}

#[proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Service {
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

/// A connection to a service manager.
pub struct Systemd {
    conn: Connection,
    scope: Scope,
}

/// Why a call failed, as systemd says it, with what to do where that is
/// plain.
fn reason(e: &zbus::Error) -> String {
    let (name, reason) = match e {
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
    format!("{reason}{hint}")
}

/// The error for a failed call, saying what was being done.
fn failed(what: &str) -> impl Fn(zbus::Error) -> Error + '_ {
    move |e| Error::new(Exit::Failure, format!("{what}: {}", reason(&e)))
}

/// A property that could not be read.
fn property(e: zbus::Error) -> Unread {
    Unread::Property(reason(&e))
}

/// Connects to `scope`'s service manager.
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

impl Systemd {
    fn manager(&self) -> Result<ManagerProxy<'_>> {
        ManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .map_err(failed("cannot reach systemd's manager"))
    }

    /// A proxy on `unit`'s object, loading the unit if need be.
    fn proxy<'a, P>(&'a self, unit: &str) -> Reading<P>
    where
        P: From<zbus::Proxy<'a>> + Defaults,
    {
        let path = self
            .manager()
            .map_err(Unread::Unit)?
            .load_unit(unit)
            .map_err(failed(&format!("cannot load {unit}")))
            .map_err(Unread::Unit)?;
        ProxyBuilder::<P>::new(&self.conn)
            .path(path)
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .map_err(failed(&format!("cannot reach {unit}")))
            .map_err(Unread::Unit)
    }
}

impl Bus for Systemd {
    fn scope(&self) -> Scope {
        self.scope
    }

    fn unit(&self, name: &str) -> Reading<UnitState> {
        let unit: UnitProxy = self.proxy(name)?;
        Ok(UnitState {
            active: unit.active_state().map_err(property)?,
            file: unit.unit_file_state().map_err(property)?,
        })
    }

    fn timer(&self, name: &str) -> Reading<TimerState> {
        let timer: TimerProxy = self.proxy(name)?;
        Ok(TimerState {
            calendar: timer
                .timers_calendar()
                .map_err(property)?
                .into_iter()
                .map(|(_, spec, _)| spec)
                .collect(),
            monotonic: timer
                .timers_monotonic()
                .map_err(property)?
                .into_iter()
                .map(|(base, usec, _)| (base, usec))
                .collect(),
            next_realtime: timer.next_elapse_realtime().map_err(property)?,
            next_monotonic: timer.next_elapse_monotonic().map_err(property)?,
            last_trigger: timer.last_trigger().map_err(property)?,
        })
    }

    fn last_run(&self, name: &str) -> Reading<LastRun> {
        let unit: UnitProxy = self.proxy(name)?;
        let service: ServiceProxy = self.proxy(name)?;
        let id = unit.invocation_id().map_err(property)?;
        Ok(LastRun {
            invocation: id.iter().map(|b| format!("{b:02x}")).collect(),
            result: service.result().map_err(property)?,
            started: service.exec_main_start_timestamp().map_err(property)?,
            exited: service.exec_main_exit_timestamp().map_err(property)?,
            status: service.exec_main_status().map_err(property)?,
            code: service.exec_main_code().map_err(property)?,
            pid: service.exec_main_pid().map_err(property)?,
        })
    }

    fn setup(&self, name: &str) -> Reading<Setup> {
        let service: ServiceProxy = self.proxy(name)?;
        Ok(Setup {
            programs: service
                .exec_start()
                .map_err(property)?
                .into_iter()
                .map(|c| c.path)
                .collect(),
            environment: service.environment().map_err(property)?,
            environment_files: service.environment_files().map_err(property)?,
        })
    }

    fn drop_ins(&self, name: &str) -> Reading<Vec<String>> {
        let unit: UnitProxy = self.proxy(name)?;
        unit.drop_in_paths().map_err(property)
    }

    fn hold(&self, name: &str) -> Reading<()> {
        let unit: UnitProxy = self.proxy(name)?;
        unit.hold().map_err(property)
    }

    fn loaded(&self, pattern: &str) -> Result<Vec<Loaded>> {
        let rows = self
            .manager()?
            .list_units_by_patterns(&[], &[pattern])
            .map_err(failed("cannot list the instances"))?;
        Ok(rows
            .into_iter()
            .map(|row| Loaded {
                name: row.name,
                active: row.active_state,
            })
            .collect())
    }

    fn enable(&self, unit: &str) -> Result<Vec<Change>> {
        let (_, changes) = self
            .manager()?
            .enable_unit_files(&[unit], false, false)
            .map_err(failed(&format!("cannot enable {unit}")))?;
        Ok(changes.into_iter().map(change).collect())
    }

    fn disable(&self, unit: &str) -> Result<Vec<Change>> {
        let changes = self
            .manager()?
            .disable_unit_files(&[unit], false)
            .map_err(failed(&format!("cannot disable {unit}")))?;
        Ok(changes.into_iter().map(change).collect())
    }

    fn reload(&self) -> Result<()> {
        self.manager()?
            .reload()
            .map_err(failed("cannot reload systemd"))
    }

    fn job(&self, verb: Verb, unit: &str) -> Result<String> {
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

/// (kind, link, target), as systemd sends a change.
fn change((kind, link, target): (String, String, String)) -> Change {
    Change { kind, link, target }
}
