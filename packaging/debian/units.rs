//! How each job's units are written: one description per job's program,
//! from which every variant (the system's manager or a user's, plain or
//! template) is rendered into `systemd/`. What differs between variants is
//! said once, here, with the reason.
//!
//! `cargo run -p timerapps-deb -- units systemd` writes them; the test
//! below, `packaging/build` and `tests/it/package.rs` fail when a file in
//! `systemd/` is not what this renders.

use jobkit::catalogue::{
    credentials_dir, every, keys_file, password_file, system, user, Companion, CompanionSchedule,
    Job, Kind, Manager, Only, Program, Role, Setting, Shape, Variant, COMPANIONS, COPY,
    COPY_CACHE_DIR, COPY_CACHE_SUBDIR, CREDENTIALS_DIR, CREDENTIALS_ID, DUMPS_DIR, DUMPS_SUBDIR,
    JOBS, LOGS_SUBDIR, MAIL_SENDMAIL_DROP_IN, MAIL_SENDMAIL_EXAMPLE, MAIL_TEMPLATE, MAIL_USER_NAME,
    PASSWORD_FILE, USER_NAME,
};
use jobkit::host::budget::{Load, Share, PRIORITY, SLICE, SLICE_SHARES};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The hardening of every service of every job.
pub const HARDENING: &[Setting] = &[
    // Needed in a user manager for any of the namespace options below to
    // take effect (they are silently ignored without it).
    every("PrivateUsers=yes"),
    every("NoNewPrivileges=yes"),
    every("ProtectSystem=strict"),
    system("ProtectHome=yes"),
    // A user's own jobs read their database files and settings in home.
    user("ProtectHome=read-only"),
    every("PrivateTmp=yes"),
    system("PrivateDevices=yes"),
    every("PrivateMounts=yes"),
    every("ProtectKernelTunables=yes"),
    every("ProtectKernelModules=yes"),
    system("ProtectKernelLogs=yes"),
    every("ProtectControlGroups=yes"),
    every("ProtectClock=yes"),
    every("ProtectHostname=yes"),
    every("ProtectProc=invisible"),
    every("ProcSubset=pid"),
    every("RestrictNamespaces=yes"),
    every("RestrictRealtime=yes"),
    every("RestrictSUIDSGID=yes"),
    every("LockPersonality=yes"),
    every("MemoryDenyWriteExecute=yes"),
    every("RemoveIPC=yes"),
    system("CapabilityBoundingSet="),
    every("AmbientCapabilities="),
    every("DevicePolicy=closed"),
    every("SystemCallArchitectures=native"),
    every("SystemCallFilter=@system-service"),
    every("SystemCallErrorNumber=EPERM"),
];

/// What a logger adds: it writes one local file and needs no network.
pub const LOGGER_HARDENING: &[Setting] = &[
    every("SystemCallFilter=~@privileged @resources"),
    every("PrivateNetwork=yes"),
    every("RestrictAddressFamilies=none"),
    every("IPAddressDeny=any"),
];

/// What a dump adds: its command reaches the database over a Unix socket
/// or the network.
pub const DUMP_HARDENING: &[Setting] = &[
    every("SystemCallFilter=~@privileged"),
    every("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"),
];

/// The hardening lists a rendering uses: [`HARDENING`] and the program's
/// own, unless a test gives others; a companion's own is in the catalogue
/// ([`Companion::hardening`]).
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub common: &'a [Setting],
    pub logger: &'a [Setting],
    pub dump: &'a [Setting],
}

pub const SOURCE: Source<'static> = Source {
    common: HARDENING,
    logger: LOGGER_HARDENING,
    dump: DUMP_HARDENING,
};

/// Where below `systemd/` the units of `manager` are.
fn manager_dir(manager: Manager) -> PathBuf {
    match manager {
        Manager::System => PathBuf::new(),
        Manager::User => PathBuf::from("user"),
    }
}

/// Every unit file the package ships, by its path below `systemd/`
/// (`myapp.service`, `user/myapp.timer`), with its text.
pub fn render_all(source: Source) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    for job in JOBS {
        for &variant in job.variants {
            let dir = manager_dir(variant.manager);
            for kind in Kind::ALL {
                let text = match kind {
                    Kind::Service => service(job, variant, source),
                    Kind::Timer => timer(job, variant),
                };
                files.insert(dir.join(job.unit(variant.shape, kind)), text);
            }
            for companion in COMPANIONS.iter().filter(|c| c.in_manager(variant.manager)) {
                let Some(program) = job.companion(companion) else {
                    continue;
                };
                let base = match variant.shape {
                    Shape::Plain => program,
                    Shape::Template => format!("{program}@"),
                };
                files.insert(
                    dir.join(format!("{base}.service")),
                    companion_service(job, companion, variant, source),
                );
                let timer = Unit::companion(job, companion, variant, Kind::Timer);
                files.insert(
                    dir.join(format!("{base}.timer")),
                    companion_timer(timer, companion.schedule),
                );
            }
        }
    }
    for manager in [Manager::System, Manager::User] {
        let dir = manager_dir(manager);
        files.insert(
            dir.join(format!("{MAIL_TEMPLATE}.service")),
            mail(manager, source),
        );
        files.insert(dir.join(SLICE), slice(manager));
    }
    let example = Path::new(MAIL_SENDMAIL_EXAMPLE).file_name().unwrap();
    files.insert(
        Path::new(EXAMPLES).join(example),
        mail_sendmail(&mail(Manager::System, source)),
    );
    files
}

/// Where below `systemd/` the example drop-ins are, which the package
/// installs as documentation.
const EXAMPLES: &str = "examples";

/// The settings with which systemd runs a unit that is not root under
/// `NoNewPrivileges=`: each installs a seccomp filter, which a process
/// without `CAP_SYS_ADMIN` may only do so (tried on systemd 252); each with
/// the value that resets it in a drop-in.
const IMPLY_NO_NEW_PRIVILEGES: &[(&str, &str)] = &[
    ("SystemCallFilter=", ""),
    ("SystemCallArchitectures=", ""),
    ("RestrictAddressFamilies=", ""),
    ("RestrictNamespaces=", "no"),
    ("RestrictRealtime=", "no"),
    ("RestrictSUIDSGID=", "no"),
    ("LockPersonality=", "no"),
    ("MemoryDenyWriteExecute=", "no"),
    ("PrivateDevices=", "no"),
    ("ProtectClock=", "no"),
    ("ProtectHostname=", "no"),
    ("ProtectKernelTunables=", "no"),
    ("ProtectKernelModules=", "no"),
    ("ProtectKernelLogs=", "no"),
];

/// The unit every job's `OnFailure=` starts, with the failed unit's name as
/// its instance: it mails the failure (`timerapps mail-failure`).
fn mail(manager: Manager, source: Source) -> String {
    let (edit, user, whose) = match manager {
        Manager::System => ("systemctl edit", "", "a job"),
        Manager::User => ("systemctl --user edit", " --user", "your job"),
    };
    let mut u = Unit::headed(edit, &format!("{MAIL_TEMPLATE}.service"));
    u.line("[Unit]");
    u.line(&format!("Description=Mail the failure of {whose} %i"));
    u.line("Documentation=man:timerapps(1)");
    u.line("StartLimitIntervalSec=0");
    u.line("");
    u.line("[Service]");
    u.line("Type=oneshot");
    u.line(&format!(
        "ExecStart=/usr/bin/timerapps{user} mail-failure %i"
    ));
    u.comment(
        "An MTA that hangs must not leave this unit running; the mail's own waits (for the \
         run's lines in the journal, for the SMTP session) end well before.",
    );
    u.line("TimeoutStartSec=2min");
    u.budget(Load::Mail);
    if manager == Manager::User {
        u.comment(
            "No sandbox: in a user manager it needs PrivateUsers=yes, in which a setuid or \
             setgid sendmail, tried where nothing listens for SMTP, cannot work.",
        );
        return u.0;
    }
    u.comment(
        "Not root: a system user of its own, which reads the run's lines in the journal \
         as a member of systemd-journal.",
    );
    u.line(&format!("User={MAIL_USER_NAME}"));
    u.line(&format!("Group={MAIL_USER_NAME}"));
    u.line("SupplementaryGroups=systemd-journal");
    u.comment(&format!(
        "The mail goes by SMTP to the MTA on localhost (MAIL_SMTP), which takes it from \
         any local user: the unit needs no privilege, and has the jobs' sandbox. Where \
         nothing listens there it goes to the MTA's sendmail, which works here only if it \
         is neither setuid nor setgid (msmtp's): a setuid or setgid program gains nothing \
         under NoNewPrivileges=, which systemd sets in a non-root unit with any of {}. For \
         such a sendmail (exim4 with its daemon off, nullmailer, dma), install {} as {}.",
        IMPLY_NO_NEW_PRIVILEGES
            .iter()
            .map(|(key, _)| *key)
            .collect::<Vec<_>>()
            .join(", "),
        MAIL_SENDMAIL_EXAMPLE,
        MAIL_SENDMAIL_DROP_IN,
    ));
    u.comment(
        "Without PrivateUsers=: the unit's supplementary group, systemd-journal, is \
         outside the user namespace it would make.",
    );
    u.harden(
        source
            .common
            .iter()
            .filter(|s| !s.line.starts_with("PrivateUsers=")),
        manager,
    );
    u.line("SystemCallFilter=~@privileged @resources");
    u.comment("The MTA over TCP; the journal and systemd over Unix sockets.");
    u.line("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6");
    u.comment("Dumps, records and credentials are none of its business.");
    let parent = |dir: &str| Path::new(dir).parent().unwrap().display().to_string();
    u.line(&format!(
        "InaccessiblePaths=-{} -{} -{}",
        parent(DUMPS_DIR),
        parent(COPY_CACHE_DIR),
        parent(CREDENTIALS_DIR)
    ));
    for line in ["PrivateIPC=yes", "KeyringMode=private", "UMask=0077"] {
        u.line(line);
    }
    u.0
}

/// The slice every service of the package runs in: what the jobs may
/// take of the host together.
fn slice(manager: Manager) -> String {
    let (edit, top) = match manager {
        Manager::System => ("systemctl edit", "system.slice, where the database runs"),
        Manager::User => (
            "systemctl --user edit",
            "app.slice, where your own programs run",
        ),
    };
    let mut u = Unit::headed(edit, SLICE);
    u.line("[Unit]");
    u.line("Description=timerapps jobs, in the background");
    u.line("Documentation=man:timerapps(1)");
    u.line("");
    u.line("[Slice]");
    u.comment(&format!(
        "Every job's service runs here. The weights count against the slices beside it, \
         {top}, whose weight is 100; the limits hold for all jobs at once."
    ));
    if manager == Manager::User {
        u.comment(
            "A user manager is given the cpu, memory and pids controllers (user@.service's \
             Delegate=), not io: IOWeight= acts only where the admin adds io to it.",
        );
    }
    u.shares(SLICE_SHARES.iter());
    u.0
}

/// The example drop-in for the system's mail unit `unit` that lets a
/// setuid or setgid sendmail work: each of its settings that implies
/// `NoNewPrivileges=` reset, and what exim4 needs to deliver at once.
fn mail_sendmail(unit: &str) -> String {
    let mut u = Unit(String::new());
    u.comment(&format!(
        "Written by packaging/debian/units.rs of timerapps: a drop-in for \
         {MAIL_TEMPLATE}.service where nothing listens for SMTP on localhost:25 and the \
         MTA's sendmail is setuid or setgid (exim4 with its daemon off, nullmailer, dma), \
         which gains nothing under NoNewPrivileges=. It lifts that and each setting that \
         implies it, and widens what the unit may write to what the MTA writes. Install \
         it with:"
    ));
    u.line("#   sudo install -D -m 644 \\");
    u.line(&format!("#     {MAIL_SENDMAIL_EXAMPLE} \\"));
    u.line(&format!("#     {MAIL_SENDMAIL_DROP_IN}"));
    u.line("#   sudo systemctl daemon-reload");
    u.line("[Service]");
    u.line("NoNewPrivileges=no");
    let mut reset: Vec<&str> = Vec::new();
    for line in unit.lines().filter(|l| !l.starts_with('#')) {
        for (key, value) in IMPLY_NO_NEW_PRIVILEGES {
            if line.starts_with(key) && !reset.contains(key) {
                reset.push(key);
                u.line(&format!("{key}{value}"));
            }
        }
    }
    u.comment(
        "What exim4's setuid-root sendmail needs to deliver at once; with CAP_SETUID \
         CAP_SETGID alone it takes the mail and delivers it at its next queue run. A \
         sendmail that is setuid to another user or setgid (nullmailer, dma, postfix's \
         postdrop) needs none.",
    );
    u.line("CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER");
    u.comment(
        "The MTA writes its queue, the mailboxes and its log below /var; homes stay \
         read-only, so a delivery into a home (a Maildir) waits for its next queue run.",
    );
    u.line("ReadWritePaths=-/var/spool -/var/mail -/var/log");
    u.line("ProtectHome=read-only");
    u.0
}

/// The lines of a unit file as they are built.
struct Unit(String);

impl Unit {
    /// A unit's header and its `[Unit]` section's description.
    fn new(job: &Job, variant: Variant, kind: Kind) -> Unit {
        let edit = match variant.manager {
            Manager::System => "systemctl edit",
            Manager::User => "systemctl --user edit",
        };
        let name = match variant.shape {
            Shape::Plain => job.unit(Shape::Plain, kind),
            Shape::Template => format!("{}NAME.{kind}", job.unit_base(Shape::Template)),
        };
        let mut unit = Unit::headed(edit, &name);
        unit.line("[Unit]");
        unit.line(&format!("Description={}", description(job, variant, kind)));
        unit.line(&format!("Documentation=man:{}(1)", job.man));
        unit
    }

    /// A unit file's first lines: who wrote it, and how to change it.
    fn headed(edit: &str, name: &str) -> Unit {
        let mut unit = Unit(String::new());
        unit.comment(&format!(
            "Written by packaging/debian/units.rs of timerapps. Change a setting with \
             \"{edit} {name}\", not here."
        ));
        unit
    }

    /// The first lines of a unit of `job`'s `companion`, to its `[Unit]`
    /// section's documentation.
    fn companion(job: &Job, companion: &Companion, variant: Variant, kind: Kind) -> Unit {
        let program = job.companion(companion).expect("a job that keeps dumps");
        let (edit, whose) = match variant.manager {
            Manager::System => ("systemctl edit", ""),
            Manager::User => ("systemctl --user edit", "your "),
        };
        let (name, of) = match (variant.shape, companion.role) {
            (Shape::Plain, Role::Drill) => {
                (format!("{program}.{kind}"), format!("{whose}database"))
            }
            (Shape::Plain, Role::Copy) => {
                (format!("{program}.{kind}"), format!("{whose}the database"))
            }
            (Shape::Template, _) => (
                format!("{program}@NAME.{kind}"),
                format!("{whose}database instance %i"),
            ),
        };
        let every = companion.schedule.every.1;
        let description = match (companion.role, kind) {
            (Role::Drill, Kind::Service) => {
                format!("Restore drill of the newest good dump of {of}")
            }
            (Role::Drill, Kind::Timer) => format!("Restore drill of {of} {every}"),
            (Role::Copy, Kind::Service) => format!("Copy the good dumps of {of} off the host"),
            (Role::Copy, Kind::Timer) => format!("Retry the off-host copy of {of} {every}"),
        };
        let mut unit = Unit::headed(edit, &name);
        unit.line("[Unit]");
        unit.line(&format!("Description={description}"));
        unit.line(&format!("Documentation=man:{program}(1)"));
        unit
    }

    /// What a service of `load` may take of the host: the jobs' slice, its
    /// priority and its own limits, each with its reason.
    fn budget(&mut self, load: Load) {
        self.comment(&format!(
            "In {SLICE}, whose weights and limits hold for all jobs together; this \
             service's own are below. /usr/share/doc/timerapps/docs/production.md has them all."
        ));
        self.line(&format!("Slice={SLICE}"));
        self.shares(PRIORITY.iter().chain(load.shares()));
    }

    /// Each of `shares` with its reason.
    fn shares<'a>(&mut self, shares: impl Iterator<Item = &'a Share>) {
        for share in shares {
            let mut why = share.why.chars();
            let first = why.next().map(|c| c.to_uppercase().to_string());
            self.comment(&format!("{}{}.", first.unwrap_or_default(), why.as_str()));
            self.line(&format!("{}={}", share.key, share.value));
        }
    }

    /// The lines of `settings` that apply in `manager`.
    fn harden<'a>(&mut self, settings: impl Iterator<Item = &'a Setting>, manager: Manager) {
        for setting in settings {
            let applies = match setting.only {
                Only::Every => true,
                Only::System => manager == Manager::System,
                Only::User => manager == Manager::User,
            };
            if applies {
                self.line(setting.line);
            }
        }
    }

    fn line(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }

    /// `text` as comment lines of at most 76 characters.
    fn comment(&mut self, text: &str) {
        let mut line = String::from("#");
        for word in text.split_whitespace() {
            if line.len() + 1 + word.len() > 76 && line.len() > 1 {
                self.line(&line);
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        self.line(&line);
    }
}

/// The instance's words in Descriptions: nothing, `instance %i` or
/// `your instance %i`.
fn description(job: &Job, variant: Variant, kind: Kind) -> String {
    let name = job.name;
    match (job.program, kind, variant.manager, variant.shape) {
        (Program::Logger, Kind::Service, Manager::System, _) => {
            format!("Append a timestamp line to the {name} log")
        }
        (Program::Logger, Kind::Service, Manager::User, _) => {
            format!("Append a timestamp line to your {name} log")
        }
        (Program::Dump, Kind::Service, Manager::System, Shape::Plain) => {
            "Dump a database and keep the newest dumps".to_owned()
        }
        (Program::Dump, Kind::Service, Manager::System, Shape::Template) => {
            "Dump database instance %i and keep its newest dumps".to_owned()
        }
        (Program::Dump, Kind::Service, Manager::User, _) => {
            "Dump your database %i and keep its newest dumps".to_owned()
        }
        (_, Kind::Timer, manager, shape) => {
            let every = job.schedule.every.1;
            match (manager, shape) {
                (Manager::System, Shape::Plain) => format!("Run {name} every {every}"),
                (Manager::User, Shape::Plain) => format!("Run your {name} every {every}"),
                (Manager::System, Shape::Template) => {
                    format!("Run {name} for instance %i every {every}")
                }
                (Manager::User, Shape::Template) => {
                    format!("Run {name} for your instance %i every {every}")
                }
            }
        }
    }
}

fn service(job: &Job, variant: Variant, source: Source) -> String {
    let mut u = Unit::new(job, variant, Kind::Service);
    let (system, template) = (
        variant.manager == Manager::System,
        variant.shape == Shape::Template,
    );
    // Runs started by hand (timerapps run, tests) come in quick succession.
    u.line("StartLimitIntervalSec=0");
    u.comment(
        "A failed run is mailed to MAIL_TO of the monitoring settings, if set; the \
         mail's unit runs apart and never holds up or fails the job.",
    );
    u.line(&format!("OnFailure={MAIL_TEMPLATE}%N.service"));
    if let Some(copy) = job
        .companion(&COPY)
        .filter(|_| COPY.in_manager(variant.manager))
    {
        u.comment(
            "Each good dump is then copied off the host, if a destination is set: in a unit \
             of its own, which never delays or fails the dump.",
        );
        match variant.shape {
            Shape::Plain => u.line(&format!("OnSuccess={copy}.service")),
            Shape::Template => u.line(&format!("OnSuccess={copy}@%i.service")),
        }
    }
    if job.program == Program::Dump && system {
        // A user manager has no network-online.target and no servers.
        u.line("Wants=network-online.target");
        u.line("After=network-online.target postgresql.service mariadb.service");
    }
    u.line("");
    u.line("[Service]");
    u.line("Type=oneshot");
    if system {
        u.line(&format!("User={USER_NAME}"));
        u.line(&format!("Group={USER_NAME}"));
    }
    let settings = job.settings_file(variant);
    match job.program {
        Program::Logger => {
            let logs = match variant.manager {
                Manager::System => "/var/log",
                // %L: ~/.config/log on systemd 252, ~/.local/state/log later.
                Manager::User => "%L",
            };
            u.line(&format!(
                "Environment=LOGFILE={logs}/{LOGS_SUBDIR}/{}.log",
                job.name
            ));
            u.line(&format!("EnvironmentFile=-{settings}"));
            u.line(&format!("ExecStart=/usr/bin/{}", job.name));
            u.line(&format!("LogsDirectory={LOGS_SUBDIR}"));
            // The system's logs are for the admin's tools to read.
            u.line(if system { "UMask=0022" } else { "UMask=0077" });
        }
        Program::Dump => {
            let dumps = match variant.manager {
                Manager::System => format!("/var/lib/{DUMPS_SUBDIR}"),
                // %S: ~/.config on systemd 252, ~/.local/state later.
                Manager::User => format!("%S/{DUMPS_SUBDIR}"),
            };
            if template {
                u.comment(
                    "The instance's own name and directory, unless its settings file sets \
                     them; DUMP_SETTINGS lets the job name that file when it lacks \
                     DUMP_COMMAND, which fails the instance: it was enabled on purpose.",
                );
                u.line(&format!("Environment=DUMP_NAME=%i DUMP_DIR={dumps}/%i"));
                u.line(&format!("Environment=DUMP_SETTINGS={settings}"));
            }
            u.line(&format!("EnvironmentFile=-{settings}"));
            u.line(&format!("ExecStart=/usr/bin/{}", job.name));
            if !template {
                // The default job, unconfigured after install: skipped, with
                // the reason in the journal.
                u.line("SuccessExitStatus=78");
            }
            u.comment(
                "The job reports its progress (systemctl status) and pings the watchdog \
                 while the dump command's output advances. A command silent for \
                 WatchdogSec= is taken as hung: long enough for pg_dump's ordinary lock \
                 waits.",
            );
            u.line("NotifyAccess=main");
            u.line("WatchdogSec=10min");
            u.comment(
                "SIGTERM, not SIGABRT: the job stops the command's process group, removes \
                 its temp file and leaves earlier dumps as they were.",
            );
            u.line("WatchdogSignal=SIGTERM");
            u.comment(
                "Its own directory, as every dump unit has, in one that holds only \
                 these: the plain job's named as the job, an instance's as the instance.",
            );
            u.line(&format!(
                "StateDirectory={DUMPS_SUBDIR}/{}",
                job.dumps_name(variant.shape)
            ));
            u.line("StateDirectoryMode=0700");
            u.line("UMask=0077");
        }
    }
    if system {
        u.comment(
            "After every run, however it ended, its metrics for node_exporter's textfile \
             collector: as root (+), outside the job's sandbox, which stays as tight; \
             never failing the run (-).",
        );
        u.line("ExecStopPost=-+/usr/bin/timerapps write-metrics %n");
    }
    u.budget(Load::of(job.program));
    if !system {
        u.comment(
            "In a user manager PrivateUsers=yes makes the namespace options work; \
             PrivateDevices=, CapabilityBoundingSet= and ProtectKernelLogs= are left out, \
             as they fail there; home is read-only, not hidden.",
        );
    }
    let own = match job.program {
        Program::Logger => source.logger,
        Program::Dump => source.dump,
    };
    u.harden(source.common.iter().chain(own), variant.manager);
    u.0
}

/// The service of `job`'s `companion`: what it does is its own; the
/// hardening it adds is the catalogue's.
fn companion_service(job: &Job, companion: &Companion, variant: Variant, source: Source) -> String {
    let hardening: Vec<&Setting> = source.common.iter().chain(companion.hardening).collect();
    match companion.role {
        Role::Drill => drill_service(job, companion, variant, &hardening),
        Role::Copy => copy_service(job, companion, variant, &hardening),
    }
}

/// The unit of the restore drill of `job`'s dumps: it reads the job's own
/// settings, records its result for status and the metrics, and is mailed
/// and measured like the job.
fn drill_service(job: &Job, c: &Companion, variant: Variant, hardening: &[&Setting]) -> String {
    let drill = job.companion(c).expect("a job that keeps dumps");
    let (system, template) = (
        variant.manager == Manager::System,
        variant.shape == Shape::Template,
    );
    let dump_unit = match variant.shape {
        Shape::Plain => job.unit(Shape::Plain, Kind::Service),
        Shape::Template => format!("{}%i.service", job.unit_base(Shape::Template)),
    };
    let mut u = Unit::companion(job, c, variant, Kind::Service);
    u.line("StartLimitIntervalSec=0");
    u.comment("A failed drill is mailed like a failed run.");
    u.line(&format!("OnFailure={MAIL_TEMPLATE}%N.service"));
    u.line("");
    u.line("[Service]");
    u.line("Type=oneshot");
    if system {
        u.line(&format!("User={USER_NAME}"));
        u.line(&format!("Group={USER_NAME}"));
    }
    let state = match variant.manager {
        Manager::System => "/var/lib",
        Manager::User => "%S",
    };
    if template {
        u.line(&format!(
            "Environment=DUMP_NAME=%i DUMP_DIR={state}/{DUMPS_SUBDIR}/%i"
        ));
    }
    u.comment("The job's own settings: where its dumps are, and DRILL_TMPDIR.");
    u.line(&format!("EnvironmentFile=-{}", job.settings_file(variant)));
    let result = dump_unit.trim_end_matches(".service");
    u.line(&format!("ExecStart=/usr/bin/{drill}"));
    if system {
        u.comment(
            "Its record in a directory of its own, and its job's dumps, read only: it \
             sees no other drill's record and no other job's or instance's dumps.",
        );
        u.line(&format!(
            "Environment={}={state}/{}/{result}/{}",
            c.record_variable, c.records_subdir, c.record
        ));
        u.line(&format!("StateDirectory={}/{result}", c.records_subdir));
        u.line(&format!(
            "TemporaryFileSystem={state}/{}:ro {state}/{DUMPS_SUBDIR}:ro",
            c.records_subdir
        ));
        u.line(&format!(
            "BindReadOnlyPaths=-{state}/{DUMPS_SUBDIR}/{}",
            job.dumps_name(variant.shape)
        ));
    } else {
        u.line(&format!(
            "Environment={}={state}/{}/{result}.json",
            c.record_variable, c.records_subdir
        ));
        u.line(&format!("StateDirectory={}", c.records_subdir));
    }
    u.comment(
        "The server's files: in DRILL_TMPDIR, /var/tmp by default, which PrivateTmp= \
         makes the unit's own and removes when it stops. Stopping the unit kills the \
         server with the drill.",
    );
    u.line("UMask=0077");
    u.comment("Restores take their time; a hung one is stopped.");
    u.line("TimeoutStartSec=6h");
    if system {
        u.comment(
            "The drill's metrics, under the job's name: as root (+), never failing the \
             drill (-).",
        );
        u.line("ExecStopPost=-+/usr/bin/timerapps write-metrics %n");
    }
    u.budget(Load::Drill);
    u.harden(hardening.iter().copied(), variant.manager);
    u.0
}

/// The unit of the off-host copy of `job`'s dumps: it reads the job's own
/// settings and only its dumps, takes its own repository password as a
/// credential and no other's, writes only its own record and cache, and is
/// mailed and measured like the job.
fn copy_service(job: &Job, c: &Companion, variant: Variant, hardening: &[&Setting]) -> String {
    let copy = job.companion(c).expect("a job that keeps dumps");
    let template = variant.shape == Shape::Template;
    let dump_unit = match variant.shape {
        Shape::Plain => job.name.to_owned(),
        Shape::Template => format!("{}%i", job.unit_base(Shape::Template)),
    };
    let mut u = Unit::companion(job, c, variant, Kind::Service);
    u.line("StartLimitIntervalSec=0");
    u.comment("A failed copy is mailed like a failed run.");
    u.line(&format!("OnFailure={MAIL_TEMPLATE}%N.service"));
    u.line("Wants=network-online.target");
    u.line("After=network-online.target");
    u.line("");
    u.line("[Service]");
    u.line("Type=oneshot");
    u.line(&format!("User={USER_NAME}"));
    u.line(&format!("Group={USER_NAME}"));
    let dumps = format!("/var/lib/{DUMPS_SUBDIR}");
    if template {
        u.line(&format!("Environment=DUMP_NAME=%i DUMP_DIR={dumps}/%i"));
    }
    u.comment("The job's own settings: where its dumps are, COPY_REPOSITORY, COPY_KEEP.");
    u.line(&format!("EnvironmentFile=-{}", job.settings_file(variant)));
    u.comment(
        "The other units' records, caches and dumps are not there; its job's dumps are, \
         read only.",
    );
    u.line(&format!(
        "TemporaryFileSystem=/var/lib/{}:ro /var/cache/{COPY_CACHE_SUBDIR}:ro {dumps}:ro",
        c.records_subdir
    ));
    u.line(&format!(
        "BindReadOnlyPaths=-{dumps}/{}",
        job.dumps_name(variant.shape)
    ));
    let credentials = credentials_dir(&dump_unit);
    u.comment(&format!(
        "Secrets stay out of the settings and off command lines, each instance's apart: \
         the backend's keys (AWS_ACCESS_KEY_ID=…) in {}, which systemd reads, and the \
         repository password in {}, loaded from its own directory and no other, both \
         root's, mode 0600. systemd makes the directory (mode 0700, in the root-only {}) \
         when it is missing, so that a job without a password still starts and says so.",
        keys_file(&dump_unit),
        password_file(&dump_unit),
        credentials
            .rsplit_once('/')
            .map_or("", |(parent, _)| parent)
    ));
    u.line(&format!("EnvironmentFile=-{}", keys_file(&dump_unit)));
    u.line(&format!(
        "ConfigurationDirectory={}",
        credentials.trim_start_matches("/etc/")
    ));
    u.line("ConfigurationDirectoryMode=0700");
    u.line(&format!("LoadCredential={CREDENTIALS_ID}:{credentials}"));
    u.line(&format!(
        "Environment=COPY_PASSWORD_FILE=%d/{CREDENTIALS_ID}_{PASSWORD_FILE}"
    ));
    u.line(&format!(
        "Environment={}=/var/lib/{}/{dump_unit}/{}",
        c.record_variable, c.records_subdir, c.record
    ));
    u.line(&format!("ExecStart=/usr/bin/{copy}"));
    u.comment(
        "The dumps are read only (ProtectSystem=strict); the copy writes its own record \
         and restic's cache, and no other instance's.",
    );
    u.line(&format!("StateDirectory={}/{dump_unit}", c.records_subdir));
    u.line("StateDirectoryMode=0700");
    u.line(&format!("CacheDirectory={COPY_CACHE_SUBDIR}/{dump_unit}"));
    u.line("CacheDirectoryMode=0700");
    u.line("UMask=0077");
    u.comment("A first copy of a large dump over a slow link takes its time.");
    u.line("TimeoutStartSec=12h");
    u.comment("The copy's metrics, under the job's name: as root (+), never failing the copy (-).");
    u.line("ExecStopPost=-+/usr/bin/timerapps write-metrics %n");
    u.budget(Load::Copy);
    u.harden(hardening.iter().copied(), variant.manager);
    u.0
}

/// The timer of a companion, enabled by the admin per job: on its
/// calendar, spread, and caught up after the machine was off.
fn companion_timer(mut u: Unit, schedule: CompanionSchedule) -> String {
    u.line("");
    u.line("[Timer]");
    u.line(&format!("OnCalendar={}", schedule.every.0));
    u.line(&format!("RandomizedDelaySec={}", schedule.spread));
    u.line("Persistent=true");
    u.line("");
    u.line("[Install]");
    u.line("WantedBy=timers.target");
    u.0
}

fn timer(job: &Job, variant: Variant) -> String {
    let mut u = Unit::new(job, variant, Kind::Timer);
    let s = job.schedule;
    u.line("");
    u.line("[Timer]");
    u.line(&format!("OnActiveSec={}", s.first));
    u.line(&format!("OnUnitActiveSec={}", s.every.0));
    if let Some(accuracy) = s.accuracy {
        u.line(&format!("AccuracySec={accuracy}"));
    }
    u.line(&format!("RandomizedDelaySec={}", s.spread));
    u.line("");
    u.line("[Install]");
    u.line("WantedBy=timers.target");
    u.0
}

/// How the files in `dir` differ from what [`render_all`] makes: one line
/// per file that is missing, extra or different. Empty when they agree.
pub fn drift(dir: &Path, source: Source) -> Vec<String> {
    let rendered = render_all(source);
    let mut found: Vec<String> = extra_units(dir, &rendered)
        .iter()
        .map(|name| format!("{}: not a unit of any job", name.display()))
        .collect();
    for (name, text) in &rendered {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if &on_disk == text => {}
            Ok(on_disk) => {
                let line = on_disk
                    .lines()
                    .zip(text.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(on_disk.lines().count().min(text.lines().count()));
                found.push(format!(
                    "{}: differs from its source from line {}",
                    name.display(),
                    line + 1
                ));
            }
            Err(e) => found.push(format!("{}: {e}", name.display())),
        }
    }
    found
}

/// The unit files in `dir` (and `dir/user`), and the drop-ins in
/// `dir/examples`, that are not among `rendered`.
fn extra_units(dir: &Path, rendered: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    let mut extra = Vec::new();
    for sub in ["", "user", EXAMPLES] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = PathBuf::from(sub).join(entry.file_name());
            let is_unit = [".service", ".timer", ".slice", ".conf"]
                .iter()
                .any(|s| name.to_string_lossy().ends_with(s));
            if is_unit && !rendered.contains_key(&name) {
                extra.push(name);
            }
        }
    }
    extra
}

/// Writes every rendered unit into `dir`, and removes unit files there that
/// no job has.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    let rendered = render_all(SOURCE);
    for (name, text) in &rendered {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a unit is in a directory"))?;
        std::fs::write(path, text)?;
    }
    for extra in extra_units(dir, &rendered) {
        std::fs::remove_file(dir.join(extra))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn systemd_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd")
    }

    #[test]
    fn the_shipped_units_are_what_their_source_renders() {
        let drift = drift(&systemd_dir(), SOURCE);
        assert!(
            drift.is_empty(),
            "systemd/ drifted from packaging/debian/units.rs; run \
             \"cargo run -p timerapps-deb -- units systemd\" and commit the result:\n{}",
            drift.join("\n")
        );
    }

    #[test]
    fn the_drift_check_sees_a_hand_edit_an_extra_and_a_missing_unit() {
        let dir = std::env::temp_dir().join(format!("timerapps-units-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_all(&dir).unwrap();
        assert_eq!(drift(&dir, SOURCE), Vec::<String>::new());
        let edited = dir.join("user/myapp.service");
        let text = std::fs::read_to_string(&edited).unwrap();
        std::fs::write(&edited, text.replace("ProtectClock=yes\n", "")).unwrap();
        std::fs::write(dir.join("stray.timer"), "").unwrap();
        std::fs::remove_file(dir.join("dump-database@.timer")).unwrap();
        let found = drift(&dir, SOURCE);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("stray.timer: not a unit"),
            "{found:#?}"
        );
        assert!(found[1].starts_with("dump-database@.timer: "), "{found:#?}");
        assert!(
            found[2].starts_with("user/myapp.service: differs"),
            "{found:#?}"
        );
        write_all(&dir).unwrap();
        assert_eq!(drift(&dir, SOURCE), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One edit to the dump's hardening reaches every dump unit, system and
    /// user, plain and template, and no logger.
    #[test]
    fn one_edit_to_a_jobs_hardening_changes_every_variant_of_it() {
        let mut dump = DUMP_HARDENING.to_vec();
        dump.push(every("ProtectHostname=private"));
        let edited = render_all(Source {
            dump: &dump,
            ..SOURCE
        });
        let before = render_all(SOURCE);
        let changed: Vec<String> = edited
            .iter()
            .filter(|(name, text)| *text != &before[*name])
            .inspect(|(name, text)| {
                assert!(
                    text.lines().any(|l| l == "ProtectHostname=private"),
                    "{}",
                    name.display()
                )
            })
            .map(|(name, _)| name.display().to_string())
            .collect();
        assert_eq!(
            changed,
            [
                "dump-database.service",
                "dump-database@.service",
                "user/dump-database@.service"
            ]
        );
    }

    /// The settings of a unit's or drop-in's text, as `(key=, value)`.
    fn settings(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('[') && !l.is_empty())
            .map(|l| {
                let (key, value) = l.split_once('=').unwrap();
                (format!("{key}="), value.to_owned())
            })
            .collect()
    }

    /// The system's mail unit is not root and has the jobs' sandbox; the
    /// example drop-in lifts exactly what a setuid sendmail needs.
    #[test]
    fn the_mail_unit_is_sandboxed_and_its_drop_in_lets_setuid_sendmail_work() {
        let unit = mail(Manager::System, SOURCE);
        let own = settings(&unit);
        let has = |key: &str, value: &str| own.iter().any(|(k, v)| k == key && v == value);
        assert!(has("User=", "timerapps-mail"), "{unit}");
        assert!(has("NoNewPrivileges=", "yes"), "{unit}");
        assert!(has("CapabilityBoundingSet=", ""), "{unit}");
        assert!(has("SystemCallFilter=", "@system-service"), "{unit}");
        assert!(!own.iter().any(|(k, _)| k == "PrivateUsers="), "{unit}");
        let drop_in = mail_sendmail(&unit);
        assert_eq!(
            render_all(SOURCE)[Path::new("examples/timerapps-mail-sendmail.conf")],
            drop_in
        );
        // What systemd runs with the drop-in: the last assignment of each
        // setting (an empty one resets a list).
        let merged: Vec<(String, String)> = own.into_iter().chain(settings(&drop_in)).collect();
        let last = |key: &str| {
            merged
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(last("NoNewPrivileges="), Some("no"));
        for (key, _) in IMPLY_NO_NEW_PRIVILEGES {
            assert!(
                matches!(last(key), None | Some("" | "no")),
                "{key} would stop a setuid sendmail:\n{drop_in}"
            );
        }
        assert_eq!(
            last("CapabilityBoundingSet="),
            Some("CAP_SETUID CAP_SETGID CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER")
        );
        // It changes nothing else but where the MTA writes.
        for (key, _) in settings(&drop_in) {
            assert!(
                key == "NoNewPrivileges="
                    || key == "CapabilityBoundingSet="
                    || key == "ReadWritePaths="
                    || key == "ProtectHome="
                    || IMPLY_NO_NEW_PRIVILEGES.iter().any(|(k, _)| *k == key),
                "{key}"
            );
        }
    }

    /// What differs between variants is only what [`Only`] and the
    /// renderer say: the plain and template dump units share every other
    /// line.
    #[test]
    fn variants_differ_only_where_stated() {
        let units = render_all(SOURCE);
        let settings = |name: &str| -> Vec<String> {
            units[Path::new(name)]
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        let differs = [
            "Description=",
            "OnSuccess=",
            "Environment=",
            "EnvironmentFile=",
            "StateDirectory=",
            "SuccessExitStatus=",
        ];
        let keep = |lines: Vec<String>| -> Vec<String> {
            lines
                .into_iter()
                .filter(|l| !differs.iter().any(|d| l.starts_with(d)))
                .collect()
        };
        assert_eq!(
            keep(settings("dump-database.service")),
            keep(settings("dump-database@.service"))
        );
        let system = settings("myapp.service");
        let user = settings("user/myapp.service");
        for line in [
            "PrivateDevices=yes",
            "CapabilityBoundingSet=",
            "User=timerapps",
        ] {
            assert!(system.iter().any(|l| l == line), "{line}");
            assert!(!user.iter().any(|l| l == line), "{line}");
        }
    }

    /// Every service, system and user, runs in the jobs' slice with the
    /// priority of every service and the limits of what it runs; each
    /// manager has that slice, with the slice's shares.
    #[test]
    fn every_service_runs_in_the_slice_with_its_loads_limits() {
        let units = render_all(SOURCE);
        let lines = |shares: &[Share]| -> Vec<String> {
            shares
                .iter()
                .map(|s| format!("{}={}", s.key, s.value))
                .collect()
        };
        let mut services = 0;
        for (name, text) in &units {
            let name = name.display().to_string();
            let own: Vec<&str> = text.lines().collect();
            let has = |line: &String| own.contains(&line.as_str());
            if name.ends_with(".service") {
                services += 1;
                let expected: Vec<String> = [format!("Slice={SLICE}")]
                    .into_iter()
                    .chain(lines(PRIORITY))
                    .chain(lines(
                        Load::of_unit(name.trim_start_matches("user/"))
                            .unwrap_or_else(|| panic!("{name}: of no job"))
                            .shares(),
                    ))
                    .collect();
                for line in &expected {
                    assert!(has(line), "{name} lacks {line}");
                }
            }
            if name.ends_with(".slice") {
                assert_eq!(Path::new(&name).file_name().unwrap(), SLICE);
                for line in lines(SLICE_SHARES) {
                    assert!(has(&line), "{name} lacks {line}");
                }
            }
        }
        assert_eq!(services, 14);
        assert!(units.contains_key(Path::new(SLICE)));
        assert!(units.contains_key(&Path::new("user").join(SLICE)));
    }

    /// Each system dump unit keeps its dumps in a directory of its own, the
    /// plain job's where the job looks when DUMP_DIR is unset, and its drill
    /// and copy are shown that directory alone.
    #[test]
    fn each_unit_sees_only_its_own_dump_directory() {
        let units = render_all(SOURCE);
        let has = |name: &str, line: &str| {
            assert!(
                units[Path::new(name)].lines().any(|l| l == line),
                "{name} lacks {line}"
            );
        };
        let own = jobkit::dumpfile::DEFAULT_DIR;
        for (suffix, dir) in [("", own), ("@", "/var/lib/timerapps/dumps/%i")] {
            has(
                &format!("dump-database{suffix}.service"),
                &format!("StateDirectory={}", dir.trim_start_matches("/var/lib/")),
            );
            has(
                &format!("dump-database-drill{suffix}.service"),
                "TemporaryFileSystem=/var/lib/timerapps/drills:ro /var/lib/timerapps/dumps:ro",
            );
            has(
                &format!("dump-database-copy{suffix}.service"),
                "TemporaryFileSystem=/var/lib/timerapps/copies:ro \
                 /var/cache/timerapps/restic:ro /var/lib/timerapps/dumps:ro",
            );
            for companion in ["drill", "copy"] {
                has(
                    &format!("dump-database-{companion}{suffix}.service"),
                    &format!("BindReadOnlyPaths=-{dir}"),
                );
            }
        }
    }
}
