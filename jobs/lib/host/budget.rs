//! What the jobs may take of the host they share with its database: the
//! slice every job's service runs in, with its share of CPU and disk and
//! its memory and task limits, and each service's own priority and
//! limits by what it runs. Each value says why it was chosen.
//!
//! `packaging/debian/units.rs` writes these into the units, with the
//! reasons as comments; the table of `docs/production.md` is checked
//! against [`markdown`]; the container tests hold what systemd
//! reports to the same values.

use crate::catalogue::{Companion, Job, Program, Role, Shape, COMPANIONS, JOBS, MAIL_TEMPLATE};

/// The slice of every job's service, in the system's manager and in
/// users' own. Its name has no dash, so it sits at the top of its
/// manager's tree, beside `system.slice` (where the database runs) rather
/// than inside it.
pub const SLICE: &str = "timerapps.slice";

/// One setting of what a unit may take, and why it has that value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// The setting's name, as in a unit file and `systemctl show -p`.
    pub key: &'static str,
    pub value: &'static str,
    pub why: &'static str,
}

const fn share(key: &'static str, value: &'static str, why: &'static str) -> Share {
    Share { key, value, why }
}

/// The slice's: what all the jobs may take together, whatever runs at once.
pub const SLICE_SHARES: &[Share] = &[
    share(
        "CPUWeight",
        "20",
        "a sixth of a CPU the slice beside it (at 100) wants too; all when idle",
    ),
    share(
        "IOWeight",
        "20",
        "the same of a busy disk, where BFQ or io.cost schedules it",
    ),
    share(
        "MemoryHigh",
        "30%",
        "above this share of RAM the jobs' own memory and cache are reclaimed",
    ),
    share(
        "MemoryMax",
        "40%",
        "the most all jobs may hold at once; the rest of RAM is the database's",
    ),
    share(
        "TasksMax",
        "2048",
        "processes and threads of all jobs at once: the database can still fork",
    ),
];

/// Every service's: how its processes are scheduled.
pub const PRIORITY: &[Share] = &[
    share(
        "Nice",
        "10",
        "below the database's 0; 19 could stall a dump on a busy host",
    ),
    share(
        "IOSchedulingClass",
        "best-effort",
        "not idle, which a busy disk can hold back for hours",
    ),
    share(
        "IOSchedulingPriority",
        "7",
        "the lowest of its class; heeded by BFQ only",
    ),
];

/// A logger's run appends one line; its metrics hook runs after it.
const LOGGER: &[Share] = &[
    share(
        "MemoryHigh",
        "32M",
        "a run takes under 1 MB; its metrics hook a few MB",
    ),
    share(
        "MemoryMax",
        "64M",
        "many times what a run and its metrics hook need",
    ),
    share(
        "TasksMax",
        "16",
        "one process, then its metrics hook's few threads",
    ),
];

/// A dump: the dump command, and the job compressing what it writes.
const DUMP: &[Share] = &[
    share(
        "MemoryHigh",
        "1536M",
        "three quarters of MemoryMax: slowed and reclaimed before it is killed",
    ),
    share(
        "MemoryMax",
        "2G",
        "compression may take half of MemoryHigh: zstd -19 on 4 threads fits",
    ),
    share(
        "TasksMax",
        "128",
        "up to 64 compression threads, the job's own and the command's",
    ),
];

/// A drill: a whole throwaway server, the restoring client and the job.
const DRILL: &[Share] = &[
    share(
        "MemoryHigh",
        "1G",
        "above it the restored files' cache is reclaimed, not the database's",
    ),
    share(
        "MemoryMax",
        "2G",
        "a whole server: buffers, index builds, the client, the decompressor",
    ),
    share(
        "TasksMax",
        "256",
        "a server's processes or threads: workers, one per connection",
    ),
];

/// An off-host copy: restic.
const COPY: &[Share] = &[
    share(
        "MemoryHigh",
        "1G",
        "restic holds the repository's index: some 100 MB per TiB stored",
    ),
    share(
        "MemoryMax",
        "2G",
        "a repository of about 10 TiB, and restic's upload buffers",
    ),
    share(
        "TasksMax",
        "512",
        "Go's threads, one per CPU and more; without one, restic dies",
    ),
];

/// The failure mail: the mail, journalctl, and a sendmail where no MTA listens.
const MAIL: &[Share] = &[
    share(
        "MemoryHigh",
        "64M",
        "the mail, journalctl reading the run's lines, an MTA's sendmail",
    ),
    share(
        "MemoryMax",
        "128M",
        "twice that, for a sendmail that forks a delivery",
    ),
    share(
        "TasksMax",
        "32",
        "the mail's threads, journalctl, and the MTA's processes",
    ),
];

/// What a service runs, which decides how much it may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// `myapp`, `otherapp`: one line to a log.
    Logger,
    /// `dump-database`: the dump command and the compression.
    Dump,
    /// `dump-database-drill`: a whole throwaway database server.
    Drill,
    /// `dump-database-copy`: restic.
    Copy,
    /// `timerapps-mail@`: the failure mail.
    Mail,
}

impl Load {
    pub const ALL: [Load; 5] = [
        Load::Logger,
        Load::Dump,
        Load::Drill,
        Load::Copy,
        Load::Mail,
    ];

    /// Its own limits, within the slice's.
    pub fn shares(self) -> &'static [Share] {
        match self {
            Load::Logger => LOGGER,
            Load::Dump => DUMP,
            Load::Drill => DRILL,
            Load::Copy => COPY,
            Load::Mail => MAIL,
        }
    }

    /// The load of a job's own service.
    pub fn of(program: Program) -> Load {
        match program {
            Program::Logger => Load::Logger,
            Program::Dump => Load::Dump,
        }
    }

    /// The load of a companion's service.
    pub fn of_companion(role: Role) -> Load {
        match role {
            Role::Drill => Load::Drill,
            Role::Copy => Load::Copy,
        }
    }

    /// The load of the package's service `unit` (`myapp.service`,
    /// `dump-database-drill@.service`, `timerapps-mail@x.service`), by the
    /// job or companion it is named after.
    pub fn of_unit(unit: &str) -> Option<Load> {
        let base = unit.split(['@', '.']).next()?;
        if Some(base) == MAIL_TEMPLATE.strip_suffix('@') {
            return Some(Load::Mail);
        }
        JOBS.iter().find_map(|j| {
            if base == j.name {
                Some(Load::of(j.program))
            } else {
                COMPANIONS
                    .iter()
                    .find(|c| Some(base) == j.companion(c).as_deref())
                    .map(|c| Load::of_companion(c.role))
            }
        })
    }

    /// The services of this load, as `docs/production.md` names them: plain and
    /// templates, from the catalogue.
    pub fn units(self) -> String {
        let base = |job: &Job| match self {
            Load::Logger | Load::Dump => {
                (Load::of(job.program) == self).then(|| job.name.to_owned())
            }
            Load::Drill => job.companion(Companion::of(Role::Drill)),
            Load::Copy => job.companion(Companion::of(Role::Copy)),
            Load::Mail => None,
        };
        let mut names: Vec<String> = Vec::new();
        for job in JOBS {
            let Some(base) = base(job) else { continue };
            for shape in [Shape::Plain, Shape::Template] {
                let name = match shape {
                    Shape::Plain => base.clone(),
                    Shape::Template => format!("{base}@NAME"),
                };
                if job.variants.iter().any(|v| v.shape == shape) {
                    names.push(name);
                }
            }
        }
        if self == Load::Mail {
            names.push(MAIL_TEMPLATE.to_owned());
        }
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The bytes a memory setting's `value` stands for on a host of `ram`
/// bytes with pages of `page` bytes, as systemd reads it: a size with a
/// 1024-based suffix, or a percentage of RAM, rounded down to a page.
pub fn bytes(value: &str, ram: u64, page: u64) -> Option<u64> {
    if let Some(percent) = value.strip_suffix('%') {
        let percent: u64 = percent.parse().ok()?;
        return Some((ram / page) * percent * 100 / 10_000 * page);
    }
    crate::config::bytes(value)
}

/// The table of every value and its reason, as `docs/production.md` holds it.
pub fn markdown() -> String {
    let mut text = String::from("| unit | setting | why |\n|---|---|---|\n");
    // Each unit named once, on its first row.
    let mut rows = |units: String, shares: &[Share]| {
        for (i, s) in shares.iter().enumerate() {
            let units = if i == 0 { units.as_str() } else { "" };
            text.push_str(&format!(
                "| {units} | `{}={}` | {} |\n",
                s.key, s.value, s.why
            ));
        }
    };
    rows(format!("`{SLICE}`"), SLICE_SHARES);
    rows("every service".to_owned(), PRIORITY);
    for load in Load::ALL {
        rows(load.units(), load.shares());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_units_load_is_its_jobs_or_companions() {
        assert_eq!(Load::of_unit("myapp.service"), Some(Load::Logger));
        assert_eq!(
            Load::of_unit("dump-database@shop.service"),
            Some(Load::Dump)
        );
        assert_eq!(
            Load::of_unit("dump-database-drill@.service"),
            Some(Load::Drill)
        );
        assert_eq!(
            Load::of_unit("dump-database-copy.service"),
            Some(Load::Copy)
        );
        assert_eq!(
            Load::of_unit("timerapps-mail@dump-database@shop.service"),
            Some(Load::Mail)
        );
        assert_eq!(Load::of_unit("dump.service"), None);
        assert_eq!(Load::of_unit("timerapps.slice"), None);
    }

    #[test]
    fn memory_values_read_as_systemd_reads_them() {
        assert_eq!(bytes("1536M", 0, 4096), Some(1_610_612_736));
        assert_eq!(bytes("2G", 0, 4096), Some(2_147_483_648));
        // 40 % of 8 GiB and a page, rounded down to a page.
        let ram = 8 << 30 | 4096;
        assert_eq!(bytes("40%", ram, 4096), Some(3_435_974_656));
        assert_eq!(bytes("2X", 0, 4096), None);
        assert_eq!(bytes("", 0, 4096), None);
    }

    /// Each service's limits stay within the slice's, and every value is
    /// one systemd reads (a memory size or percentage, a number).
    #[test]
    fn every_service_fits_in_the_slice() {
        let ram = 4 << 30;
        let of = |shares: &[Share], key: &str| {
            let s = shares.iter().find(|s| s.key == key).unwrap();
            match key {
                "MemoryHigh" | "MemoryMax" => bytes(s.value, ram, 4096).unwrap(),
                _ => s.value.parse().unwrap(),
            }
        };
        for load in Load::ALL {
            let own = load.shares();
            assert!(of(own, "MemoryHigh") < of(own, "MemoryMax"), "{load:?}");
            assert!(
                of(own, "TasksMax") < of(SLICE_SHARES, "TasksMax"),
                "{load:?}"
            );
            for s in own {
                assert!(s.why.len() <= 72, "{load:?} {}: a one-line reason", s.key);
            }
        }
        assert!(of(SLICE_SHARES, "MemoryHigh") < of(SLICE_SHARES, "MemoryMax"));
        assert!(of(SLICE_SHARES, "CPUWeight") < 100);
        assert!(of(SLICE_SHARES, "IOWeight") < 100);
        for s in SLICE_SHARES.iter().chain(PRIORITY) {
            assert!(s.why.len() <= 72, "{}: a one-line reason", s.key);
        }
    }
}
