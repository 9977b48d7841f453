//! The one list of the jobs: which jobs there are, the units each ships in
//! which service manager, their settings files, state directories and man
//! pages, and the drop-in `timerapps schedule` writes.
//!
//! Everything else reads it: the unit files in `systemd/` are written from
//! it (`packaging/debian/units.rs`), the maintainer scripts are filled in
//! from it (`packaging/debian/main.rs`), and the `timerapps` command and the
//! tests take their jobs from it. A job added here needs no edit to any
//! maintainer script.

use std::fmt;

/// What a job's program does, which decides its service's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// Appends a line to a log (`myapp`, `otherapp`).
    Logger,
    /// Dumps a database (`dump-database`).
    Dump,
}

/// Which service manager a unit is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Manager {
    /// The system's: units in `/usr/lib/systemd/system`, run as the user
    /// `timerapps`.
    System,
    /// Each user's own (`systemctl --user`): units in
    /// `/usr/lib/systemd/user`, run as that user, enabled for nobody.
    User,
}

/// A job's units in one manager: `NAME.service` and `NAME.timer`, or the
/// templates `NAME@.service` and `NAME@.timer` of its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    Plain,
    Template,
}

/// One pair of units a job ships: its service and its timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    pub manager: Manager,
    pub shape: Shape,
}

/// How often a job's timer starts it, and how it spreads the starts.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// `OnActiveSec=`: the first run after the timer starts.
    pub first: &'static str,
    /// `OnUnitActiveSec=`, and the same in words for its Description.
    pub every: (&'static str, &'static str),
    /// `AccuracySec=`, when the job needs better than systemd's minute.
    pub accuracy: Option<&'static str>,
    /// `RandomizedDelaySec=`: so that many machines do not start at once.
    pub spread: &'static str,
}

/// A job: a program in `/usr/bin`, its man page, and the units that run it.
#[derive(Debug)]
pub struct Job {
    /// The program, and the base name of its units and settings files.
    pub name: &'static str,
    pub program: Program,
    /// The man page in section 1 the units point to.
    pub man: &'static str,
    /// The units it ships, in the order they are listed.
    pub variants: &'static [Variant],
    pub schedule: Schedule,
}

const SYSTEM: Variant = Variant {
    manager: Manager::System,
    shape: Shape::Plain,
};
const SYSTEM_TEMPLATE: Variant = Variant {
    manager: Manager::System,
    shape: Shape::Template,
};
const USER: Variant = Variant {
    manager: Manager::User,
    shape: Shape::Plain,
};
const USER_TEMPLATE: Variant = Variant {
    manager: Manager::User,
    shape: Shape::Template,
};

/// Every job.
pub const JOBS: &[Job] = &[
    Job {
        name: "dump-database",
        program: Program::Dump,
        man: "dump-database",
        // A user has no default database: they name each one.
        variants: &[SYSTEM, SYSTEM_TEMPLATE, USER_TEMPLATE],
        schedule: Schedule {
            first: "1min",
            every: ("10min", "10 minutes"),
            accuracy: None,
            spread: "30s",
        },
    },
    Job {
        name: "myapp",
        program: Program::Logger,
        man: "myapp",
        variants: &[SYSTEM, USER],
        schedule: Schedule {
            first: "5s",
            every: ("5min", "5 minutes"),
            accuracy: Some("1s"),
            spread: "10s",
        },
    },
    Job {
        name: "otherapp",
        program: Program::Logger,
        man: "otherapp",
        variants: &[SYSTEM, USER],
        schedule: Schedule {
            first: "5s",
            every: ("10min", "10 minutes"),
            accuracy: Some("1s"),
            spread: "20s",
        },
    },
];

/// The system user the system's units run as (`packaging/debian/sysusers.conf`).
pub const USER_NAME: &str = "timerapps";
/// The system user the system's failure mail ([`MAIL_TEMPLATE`]) runs as
/// (`packaging/debian/sysusers.conf`).
pub const MAIL_USER_NAME: &str = "timerapps-mail";
/// The loggers' `LogsDirectory=`: below `/var/log`, or a user's `%L`.
pub const LOGS_SUBDIR: &str = "timerapps";
/// Where the dumps' `StateDirectory=`s are: below `/var/lib`, or a user's
/// `%S`. It holds only directories, one per dump unit: the plain job's
/// named as the job ([`Job::dumps_name`]), each instance's as the instance,
/// so that a unit shown its own directory sees no other unit's dumps.
pub const DUMPS_SUBDIR: &str = "timerapps/dumps";
/// The logs of the system's loggers.
pub const LOG_DIR: &str = "/var/log/timerapps";
/// The system's dump directories, in a directory of root's
/// (`packaging/debian` postinst): no job's DUMP_DIR.
pub const DUMPS_DIR: &str = "/var/lib/timerapps/dumps";
/// The admin's settings beside `/etc/default`: a directory per template.
pub const CONFIG_DIR: &str = "/etc/timerapps";

/// What every job's failures and metrics go by: where failure mail goes
/// and where metrics are written (`usage::MONITORING`).
pub fn monitoring_settings(manager: Manager) -> &'static str {
    match manager {
        Manager::System => "/etc/default/timerapps",
        // %E: $XDG_CONFIG_HOME, or ~/.config, as for the user's jobs.
        Manager::User => "%E/timerapps/timerapps.conf",
    }
}

/// A dump job's companion: a program and units of its own, named as the
/// job's with its suffix (`dump-database-drill`, `dump-database-copy@.timer`),
/// in each of the job's variants whose manager it exists in. Its service
/// records each run's result in the file its record variable names; its
/// timer is enabled by the admin, per job. Units, status, health, metrics
/// and the maintainer scripts take the companions from [`COMPANIONS`].
#[derive(Debug)]
pub struct Companion {
    /// What its kind-specific code matches on.
    pub role: Role,
    /// Its word: its command, its record's writer and its metrics file's
    /// name.
    pub word: &'static str,
    /// What it is called in messages: one, with its article, and many.
    pub noun: (&'static str, &'static str, &'static str),
    /// What it does to the dumps, in messages.
    pub verb: &'static str,
    /// Its program's and units' suffix to the dump job's name.
    pub suffix: &'static str,
    /// The service managers it exists in.
    pub managers: &'static [Manager],
    pub schedule: CompanionSchedule,
    /// What its service adds to the hardening of every service.
    pub hardening: &'static [Setting],
    /// The variable its units set to the file of its record.
    pub record_variable: &'static str,
    /// Its records: below `/var/lib`, or a user's `%S`. In the system's
    /// manager a directory per dump unit (`dump-database@NAME/`), holding
    /// [`Companion::record`], which only that unit's companion can write;
    /// in a user's, one file per dump unit, `dump-database@NAME.json`.
    pub records_subdir: &'static str,
    /// The record's file in its dump unit's directory.
    pub record: &'static str,
    /// The system's records, which purge removes.
    pub records_dir: &'static str,
}

/// Which companion it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Restores the newest good dump into a throwaway server.
    Drill,
    /// Sends the good dumps off the host.
    Copy,
}

/// When an enabled companion timer runs its companion.
#[derive(Clone, Copy, Debug)]
pub struct CompanionSchedule {
    /// `OnCalendar=`, and the same in words for its Description.
    pub every: (&'static str, &'static str),
    /// `RandomizedDelaySec=`.
    pub spread: &'static str,
}

/// Which managers a hardening setting is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Only {
    Every,
    /// Left out of users' own managers. Such a manager sets up a namespace
    /// only inside a user namespace of its own (`PrivateUsers=yes`), where
    /// `PrivateDevices=`, `CapabilityBoundingSet=` and
    /// `ProtectKernelLogs=` fail the unit; an unprivileged user can neither
    /// read the kernel log nor hold capabilities anyway.
    System,
    /// Only in users' own managers.
    User,
}

/// One hardening line of a service, and the managers it is for.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub line: &'static str,
    pub only: Only,
}

pub const fn every(line: &'static str) -> Setting {
    Setting {
        line,
        only: Only::Every,
    }
}

pub const fn system(line: &'static str) -> Setting {
    Setting {
        line,
        only: Only::System,
    }
}

pub const fn user(line: &'static str) -> Setting {
    Setting {
        line,
        only: Only::User,
    }
}

/// The restore drill: weekly, spread over the night. Its throwaway server
/// listens on a Unix socket in the drill's own directory, so it needs no
/// network at all, and the production servers' sockets are out of its
/// reach.
pub const DRILL: Companion = Companion {
    role: Role::Drill,
    word: "drill",
    noun: ("restore drill", "a restore drill", "restore drills"),
    verb: "restores",
    suffix: "-drill",
    managers: &[Manager::System, Manager::User],
    schedule: CompanionSchedule {
        every: ("weekly", "every week"),
        spread: "4h",
    },
    hardening: &[
        every("SystemCallFilter=~@privileged"),
        every("PrivateNetwork=yes"),
        every("RestrictAddressFamilies=AF_UNIX"),
        every("IPAddressDeny=any"),
        every("InaccessiblePaths=-/run/postgresql -/run/mysqld"),
    ],
    record_variable: "DRILL_RESULT",
    records_subdir: "timerapps/drills",
    record: "drill.json",
    records_dir: "/var/lib/timerapps/drills",
};

/// The off-host copy, in the system's manager only: its service is also
/// started by the dump service's `OnSuccess=`; its timer retries. restic
/// reaches its repository over the network; the databases' sockets are
/// none of its business.
pub const COPY: Companion = Companion {
    role: Role::Copy,
    word: "copy",
    noun: ("off-host copy", "an off-host copy", "off-host copies"),
    verb: "copies",
    suffix: "-copy",
    managers: &[Manager::System],
    schedule: CompanionSchedule {
        every: ("hourly", "every hour"),
        spread: "15min",
    },
    hardening: &[
        every("SystemCallFilter=~@privileged"),
        every("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"),
        every("InaccessiblePaths=-/run/postgresql -/run/mysqld"),
    ],
    record_variable: "COPY_RESULT",
    records_subdir: "timerapps/copies",
    record: "copy.json",
    records_dir: "/var/lib/timerapps/copies",
};

/// Every companion of a dump job, in the order status and the units list
/// them.
pub const COMPANIONS: &[&Companion] = &[&DRILL, &COPY];

impl Companion {
    /// Whether it exists in `manager`.
    pub fn in_manager(&self, manager: Manager) -> bool {
        self.managers.contains(&manager)
    }

    /// The companion whose role is `role`.
    pub fn of(role: Role) -> &'static Companion {
        match role {
            Role::Drill => &DRILL,
            Role::Copy => &COPY,
        }
    }
}

/// The copies' restic caches: `CacheDirectory=` below `/var/cache`, a
/// directory per dump unit.
pub const COPY_CACHE_SUBDIR: &str = "timerapps/restic";
/// The system's copy cache, which purge removes.
pub const COPY_CACHE_DIR: &str = "/var/cache/timerapps/restic";
/// Where the admin keeps the off-host copies' secrets, root's alone (mode
/// 0700): each dump unit's repository password in a directory of the
/// unit's own, `UNIT/restic-password` (root, mode 0600), which only that
/// unit's copy loads as credentials of [`CREDENTIALS_ID`], so that a job
/// without a password still starts and says what is missing; its backend's
/// keys in `UNIT.env`, which systemd reads as root for that unit only. It is
/// apart from the dump units' own credentials beside it (database
/// passwords), which the copies never see.
pub const CREDENTIALS_DIR: &str = "/etc/timerapps/credentials/copies";
pub const CREDENTIALS_ID: &str = "timerapps";
/// The repository password's file in a unit's credentials directory.
pub const PASSWORD_FILE: &str = "restic-password";

/// The directory of the copy credentials of the dump unit `unit`
/// (`dump-database`, `dump-database@shop`), below [`CREDENTIALS_DIR`].
pub fn credentials_dir(unit: &str) -> String {
    format!("{CREDENTIALS_DIR}/{unit}")
}

/// The file that holds the repository password of the dump unit `unit`.
pub fn password_file(unit: &str) -> String {
    format!("{}/{PASSWORD_FILE}", credentials_dir(unit))
}

/// The file that holds the backend's keys of the dump unit `unit`.
pub fn keys_file(unit: &str) -> String {
    format!("{CREDENTIALS_DIR}/{unit}.env")
}

/// The template the `OnFailure=` of every job's service starts, with the
/// failed unit's name (`%N`) as its instance.
pub const MAIL_TEMPLATE: &str = "timerapps-mail@";
/// The example drop-in that lets the system's [`MAIL_TEMPLATE`] unit run a
/// setuid or setgid `sendmail`, as the package ships it
/// (`packaging/debian/units.rs` writes it), and where the admin installs it.
pub const MAIL_SENDMAIL_EXAMPLE: &str =
    "/usr/share/doc/timerapps/examples/timerapps-mail-sendmail.conf";
pub const MAIL_SENDMAIL_DROP_IN: &str =
    "/etc/systemd/system/timerapps-mail@.service.d/sendmail.conf";

/// The drop-in `timerapps schedule` writes, and only it: purge removes
/// files of this name that start with [`SCHEDULE_MARK`]. It sorts before
/// `override.conf`, so what an admin sets with `systemctl edit` still wins.
pub const SCHEDULE_DROP_IN: &str = "50-timerapps-schedule.conf";
/// The first line of [`SCHEDULE_DROP_IN`].
pub const SCHEDULE_MARK: &str = "# Written by \"timerapps schedule\"";

/// The kinds of unit a variant is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Service,
    Timer,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Service, Kind::Timer];

    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Timer => "timer",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

impl Manager {
    /// Where the package installs this manager's units.
    pub fn unit_dir(self) -> &'static str {
        match self {
            Manager::System => "/usr/lib/systemd/system",
            Manager::User => "/usr/lib/systemd/user",
        }
    }
}

impl Job {
    /// The job named `name`.
    pub fn named(name: &str) -> Option<&'static Job> {
        JOBS.iter().find(|j| j.name == name)
    }

    /// Whether it ships `variant`.
    pub fn has(&self, variant: Variant) -> bool {
        self.variants.contains(&variant)
    }

    /// The program of its `companion` and the base name of its units, for
    /// a job that keeps dumps: `dump-database-drill`.
    pub fn companion(&self, companion: &Companion) -> Option<String> {
        (self.program == Program::Dump).then(|| format!("{}{}", self.name, companion.suffix))
    }

    /// The unit's base name: `myapp`, or `dump-database@` for a template.
    pub fn unit_base(&self, shape: Shape) -> String {
        match shape {
            Shape::Plain => self.name.to_owned(),
            Shape::Template => format!("{}@", self.name),
        }
    }

    /// The unit's file name: `myapp.timer`, `dump-database@.service`.
    pub fn unit(&self, shape: Shape, kind: Kind) -> String {
        format!("{}.{kind}", self.unit_base(shape))
    }

    /// The file the service of `variant` reads its settings from
    /// (`EnvironmentFile=`), with the unit specifiers systemd fills in.
    pub fn settings_file(&self, variant: Variant) -> String {
        let name = self.name;
        match (variant.manager, variant.shape) {
            (Manager::System, Shape::Plain) => format!("/etc/default/{name}"),
            (Manager::System, Shape::Template) => format!("{}/%i.conf", self.instances_dir()),
            // %E: $XDG_CONFIG_HOME, or ~/.config.
            (Manager::User, Shape::Plain) => format!("%E/timerapps/{name}.conf"),
            (Manager::User, Shape::Template) => format!("%E/timerapps/{name}/%i.conf"),
        }
    }

    /// The directory of the system's instance settings files of this job.
    pub fn instances_dir(&self) -> String {
        format!("{CONFIG_DIR}/{}", self.name)
    }

    /// The name of a dump unit's own directory below [`DUMPS_SUBDIR`]: the
    /// job's for the plain job, which no instance may take
    /// ([`reserved_instance`]), and the instance's (`%i`) for a template.
    pub fn dumps_name(&self, shape: Shape) -> &str {
        match shape {
            Shape::Plain => self.name,
            Shape::Template => "%i",
        }
    }
}

/// Whether an instance may not be named `name`: the directory of that name
/// below [`DUMPS_SUBDIR`] is a plain dump job's.
pub fn reserved_instance(name: &str) -> bool {
    JOBS.iter().any(|j| {
        j.program == Program::Dump
            && j.name == name
            && j.variants.iter().any(|v| v.shape == Shape::Plain)
    })
}

impl Variant {
    /// The variants of every job that have `manager` and `shape`.
    pub fn jobs(manager: Manager, shape: Shape) -> impl Iterator<Item = &'static Job> {
        JOBS.iter()
            .filter(move |j| j.has(Variant { manager, shape }))
    }
}

/// The units of `kind` that `manager` runs as they are, templates left out
/// (those are enabled per instance by the admin or the user).
pub fn plain_units(manager: Manager, kind: Kind) -> Vec<String> {
    Variant::jobs(manager, Shape::Plain)
        .map(|j| j.unit(Shape::Plain, kind))
        .collect()
}

/// The templates' base names in `manager`: `dump-database@`.
pub fn templates(manager: Manager) -> Vec<String> {
    Variant::jobs(manager, Shape::Template)
        .map(|j| j.unit_base(Shape::Template))
        .collect()
}

/// What the admin (or a user) enables by hand, as the prefixes of its
/// units' names: the templates' instances (`dump-database@`) and the
/// companions' timers, plain and instances (`dump-database-drill`). A unit of the package whose name starts with
/// one of these is enabled only where someone chose to.
pub fn enabled_by_hand(manager: Manager) -> Vec<String> {
    let mut prefixes = templates(manager);
    for job in JOBS {
        let here = COMPANIONS.iter().filter(|c| c.in_manager(manager));
        for companion in here.filter_map(|c| job.companion(c)) {
            let plain = job.has(Variant {
                manager,
                shape: Shape::Plain,
            });
            if plain {
                prefixes.push(companion);
            } else if job.has(Variant {
                manager,
                shape: Shape::Template,
            }) {
                prefixes.push(format!("{companion}@"));
            }
        }
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let dump = Job::named("dump-database").unwrap();
        assert_eq!(
            dump.unit(Shape::Template, Kind::Timer),
            "dump-database@.timer"
        );
        assert_eq!(
            dump.settings_file(SYSTEM_TEMPLATE),
            "/etc/timerapps/dump-database/%i.conf"
        );
        assert_eq!(dump.settings_file(SYSTEM), "/etc/default/dump-database");
        assert_eq!(
            plain_units(Manager::System, Kind::Timer),
            ["dump-database.timer", "myapp.timer", "otherapp.timer"]
        );
        assert_eq!(
            plain_units(Manager::User, Kind::Service),
            ["myapp.service", "otherapp.service"]
        );
        assert_eq!(templates(Manager::User), ["dump-database@"]);
        assert_eq!(
            enabled_by_hand(Manager::System),
            [
                "dump-database@",
                "dump-database-drill",
                "dump-database-copy"
            ]
        );
        assert_eq!(
            enabled_by_hand(Manager::User),
            ["dump-database@", "dump-database-drill@"]
        );
        assert_eq!(LOG_DIR, format!("/var/log/{LOGS_SUBDIR}"));
        assert_eq!(DUMPS_DIR, format!("/var/lib/{DUMPS_SUBDIR}"));
        for c in COMPANIONS {
            assert_eq!(c.records_dir, format!("/var/lib/{}", c.records_subdir));
            assert_eq!(Companion::of(c.role).word, c.word);
        }
        assert_eq!(COPY_CACHE_DIR, format!("/var/cache/{COPY_CACHE_SUBDIR}"));
        assert!(Job::named("timerapps").is_none());
    }
}
