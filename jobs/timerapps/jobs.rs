//! Which jobs there are, and what each one is configured with. The jobs are
//! those of the catalogue (`jobkit::catalogue`); the instances of a template
//! are found from systemd and from the directory its units read their
//! settings from.

use crate::systemd::{self, or_default, read, Bus, Scope};
use jobkit::catalogue::{self, Companion, Program, Shape, Variant, COMPANIONS};
use jobkit::config::Source;
use jobkit::dumpfile::{self, NAME_RULE};
use jobkit::{Error, Exit, Result};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// An instance loaded only to learn where a template's instances keep their
/// settings; systemd forgets it again once nothing refers to it.
const PROBE: &str = "timerapps-probe";

/// A job: a timer and the service it starts, `NAME.timer` and `NAME.service`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerJob {
    name: String,
}

impl TimerJob {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn timer(&self) -> String {
        format!("{}.timer", self.name)
    }

    pub fn service(&self) -> String {
        format!("{}.service", self.name)
    }

    /// The job as in the catalogue: `dump-database` for its instances too.
    pub fn program(&self) -> &str {
        self.name.split('@').next().unwrap_or_default()
    }

    /// The service of its `companion` (the restore drill, the off-host
    /// copy), for a job that keeps dumps: `dump-database-drill@NAME.service`.
    pub fn companion_service(&self, companion: &Companion) -> Option<String> {
        let base = catalogue::Job::named(self.program())?.companion(companion)?;
        Some(match self.instance() {
            Some(instance) => format!("{base}@{instance}.service"),
            None => format!("{base}.service"),
        })
    }

    /// The timer of its `companion`.
    pub fn companion_timer(&self, companion: &Companion) -> Option<String> {
        let service = self.companion_service(companion)?;
        Some(format!("{}.timer", service.strip_suffix(".service")?))
    }

    /// The job whose companion `unit` is, and which companion:
    /// `dump-database@NAME` and the drill for
    /// `dump-database-drill@NAME.service`.
    pub fn of_companion(unit: &str) -> Option<(TimerJob, &'static Companion)> {
        let base = unit.strip_suffix(".service").unwrap_or(unit);
        let (companion_base, instance) = match base.split_once('@') {
            Some((b, instance)) => (b, Some(instance)),
            None => (base, None),
        };
        let (job, companion) = catalogue::JOBS.iter().find_map(|j| {
            COMPANIONS
                .iter()
                .find(|c| j.companion(c).as_deref() == Some(companion_base))
                .map(|&c| (j, c))
        })?;
        if instance.is_some_and(|i| !valid_instance(i)) {
            return None;
        }
        Some((
            TimerJob {
                name: match instance {
                    Some(i) => format!("{}@{i}", job.name),
                    None => job.name.to_owned(),
                },
            },
            companion,
        ))
    }

    /// `NAME` of an instance `TEMPLATE@NAME`.
    pub fn instance(&self) -> Option<&str> {
        self.name.split_once('@').map(|(_, i)| i)
    }

    /// What the user typed: `myapp`, `myapp.timer`, `myapp.service` or
    /// `dump-database@NAME` (with either suffix too), among the jobs of
    /// `scope`'s manager.
    pub fn parse(arg: &str, scope: Scope) -> std::result::Result<TimerJob, Unknown> {
        let base = arg
            .strip_suffix(".timer")
            .or_else(|| arg.strip_suffix(".service"))
            .unwrap_or(arg);
        let manager = scope.manager();
        let (name, shape, instance) = match base.split_once('@') {
            None => (base, Shape::Plain, None),
            Some((template, instance)) => (template, Shape::Template, Some(instance)),
        };
        let known = catalogue::Job::named(name).is_some_and(|j| j.has(Variant { manager, shape }));
        if !known {
            return Err(Unknown::NoSuchJob);
        }
        if instance.is_some_and(|i| !valid_instance(i)) {
            return Err(Unknown::BadInstance);
        }
        if instance.is_some_and(catalogue::reserved_instance) {
            return Err(Unknown::ReservedInstance);
        }
        Ok(TimerJob {
            name: base.to_owned(),
        })
    }

    /// Parses `arg`, or says which jobs there are (asking systemd for the
    /// instances, if it can be reached).
    pub fn resolve(arg: &str, scope: Scope) -> Result<TimerJob> {
        match TimerJob::parse(arg, scope) {
            Ok(job) => Ok(job),
            Err(Unknown::BadInstance) => Err(Error::new(
                Exit::Usage,
                format!(
                    "invalid instance name in {arg:?}: an instance is named as its dumps are \
                     (DUMP_NAME), with {NAME_RULE}; nothing was changed"
                ),
            )),
            Err(Unknown::ReservedInstance) => Err(Error::new(
                Exit::Usage,
                format!(
                    "invalid instance name in {arg:?}: an instance may not be named as the \
                     default job, whose own dump directory has that name; nothing was changed"
                ),
            )),
            Err(Unknown::NoSuchJob) => {
                let listed = systemd::connect(scope).and_then(|sd| all(&sd));
                let mut known: Vec<String> = match listed {
                    Ok(jobs) => jobs.into_iter().map(|j| j.name).collect(),
                    Err(_) => plain(scope).into_iter().map(|j| j.name).collect(),
                };
                known.extend(templates(scope).map(|t| format!("{t}NAME")));
                Err(Error::new(
                    Exit::Usage,
                    format!("unknown job {arg:?}; the jobs are: {}", known.join(", ")),
                ))
            }
        }
    }
}

/// Why a name is not a job.
#[derive(Debug, PartialEq, Eq)]
pub enum Unknown {
    NoSuchJob,
    BadInstance,
    /// Named as the default job ([`catalogue::reserved_instance`]).
    ReservedInstance,
}

/// An instance is named as its dumps are: its name is its DUMP_NAME.
fn valid_instance(instance: &str) -> bool {
    dumpfile::valid_name(instance) && instance != PROBE
}

fn plain(scope: Scope) -> Vec<TimerJob> {
    Variant::jobs(scope.manager(), Shape::Plain)
        .map(|j| TimerJob {
            name: j.name.to_owned(),
        })
        .collect()
}

fn templates(scope: Scope) -> impl Iterator<Item = String> {
    catalogue::templates(scope.manager()).into_iter()
}

/// Every job: the plain ones, then each template's instances that have a
/// settings file, or whose timer is enabled or running.
pub fn all(sd: &dyn Bus) -> Result<Vec<TimerJob>> {
    let scope = sd.scope();
    let mut jobs = plain(scope);
    for template in templates(scope) {
        let mut names: Vec<String> = configured(sd, &template)?
            .into_iter()
            .map(|i| format!("{template}{i}"))
            .collect();
        for unit in sd.loaded(&format!("{template}*.timer"))? {
            let Some(job) = unit
                .name
                .strip_suffix(".timer")
                .and_then(|n| TimerJob::parse(n, scope).ok())
            else {
                continue;
            };
            let enabled = or_default(sd.unit(&unit.name))?.file == "enabled";
            if enabled || unit.active == "active" {
                names.push(job.name);
            }
        }
        names.sort();
        names.dedup();
        jobs.extend(names.into_iter().map(|name| TimerJob { name }));
    }
    Ok(jobs)
}

/// The instances of `template` that have a settings file.
fn configured(sd: &dyn Bus, template: &str) -> Result<Vec<String>> {
    let files = or_default(sd.setup(&format!("{template}{PROBE}.service")))?.environment_files;
    let mut instances = Vec::new();
    for (file, _) in files {
        let Some((dir, pattern)) = file.rsplit_once('/') else {
            continue;
        };
        let Some((before, after)) = pattern.split_once(PROBE) else {
            continue;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let instance = name
                .to_str()
                .and_then(|n| n.strip_prefix(before))
                .and_then(|n| n.strip_suffix(after));
            if let Some(instance) = instance.filter(|i| valid_instance(i)) {
                instances.push(instance.to_owned());
            }
        }
    }
    Ok(instances)
}

/// What a job's service runs with: its `Environment=` and the files of its
/// `EnvironmentFile=`, read as systemd reads them (the files win).
pub struct Settings {
    vars: Vec<(String, String)>,
    /// Files named by `EnvironmentFile=`: (path, optional, exists).
    pub files: Vec<(PathBuf, bool, bool)>,
    /// Files that could not be read, with why.
    pub unreadable: Vec<String>,
    pub keeps_dumps: bool,
}

impl Source for Settings {
    fn get(&self, name: &str) -> Option<std::ffi::OsString> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into())
    }
}

impl Settings {
    pub fn of(sd: &dyn Bus, job: &TimerJob) -> Result<Settings> {
        let unit = job.service();
        let setup = sd
            .setup(&unit)
            .map_err(read(&format!("cannot read the settings of {unit}")))?;
        let keeps_dumps = setup.programs.first().is_some_and(|path| {
            let program = Path::new(path).file_name().and_then(|n| n.to_str());
            program
                .and_then(catalogue::Job::named)
                .is_some_and(|j| j.program == Program::Dump)
        });
        let mut vars: Vec<(String, String)> = setup
            .environment
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        for (file, optional) in setup.environment_files {
            let path = PathBuf::from(&file);
            match fs::read_to_string(&path) {
                Ok(text) => {
                    vars.extend(parse_env_file(&text));
                    files.push((path, optional, true));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    files.push((path, optional, false))
                }
                Err(e) => {
                    unreadable.push(format!("cannot read {file}: {e}"));
                    files.push((path, optional, true));
                }
            }
        }
        Ok(Settings {
            vars,
            files,
            unreadable,
            keeps_dumps,
        })
    }

    /// The file an admin sets the job's variables in: the last of its
    /// `EnvironmentFile=`s, which wins.
    pub fn file_to_edit(&self) -> String {
        self.files.last().map_or_else(
            || "its settings file".to_owned(),
            |(path, ..)| path.display().to_string(),
        )
    }
}

/// `KEY=VALUE` lines as systemd's `EnvironmentFile=` reads them: `#` and
/// `;` start comments, a value may be quoted ('…' as is, "…" with
/// backslash escapes), a backslash at the end of a line continues it.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        if let Some(continued) = line.strip_suffix('\\') {
            logical.push_str(continued);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let entry = entry.trim();
        if entry.is_empty() || entry.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        vars.push((key.trim().to_owned(), unquote(value.trim())));
    }
    vars
}

fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_jobs() {
        for (arg, name) in [
            ("myapp", "myapp"),
            ("myapp.timer", "myapp"),
            ("otherapp.service", "otherapp"),
            ("dump-database", "dump-database"),
            ("dump-database@sales", "dump-database@sales"),
            ("dump-database@sales.timer", "dump-database@sales"),
        ] {
            assert_eq!(
                TimerJob::parse(arg, Scope::System).map(|j| j.name),
                Ok(name.to_owned()),
                "{arg}"
            );
        }
        for bad in ["nope", "myapp.socket", "myapp@x", "nope@x", "myapp@.."] {
            assert_eq!(
                TimerJob::parse(bad, Scope::System),
                Err(Unknown::NoSuchJob),
                "{bad}"
            );
        }
        let long = format!("dump-database@{}", "a".repeat(65));
        for bad in [
            "dump-database@",
            "dump-database@..",
            "dump-database@.x",
            "dump-database@a:b",
            "dump-database@a\\x2db",
            "dump-database@a/b",
            "dump-database@a b",
            "dump-database@timerapps-probe",
            &long,
        ] {
            assert_eq!(
                TimerJob::parse(bad, Scope::System),
                Err(Unknown::BadInstance),
                "{bad}"
            );
        }
        for scope in [Scope::System, Scope::User] {
            assert_eq!(
                TimerJob::parse("dump-database@dump-database.timer", scope),
                Err(Unknown::ReservedInstance)
            );
        }
    }

    #[test]
    fn users_have_their_own_jobs() {
        for (arg, name) in [
            ("myapp", "myapp"),
            ("otherapp.timer", "otherapp"),
            ("dump-database@mine", "dump-database@mine"),
        ] {
            assert_eq!(
                TimerJob::parse(arg, Scope::User).map(|j| j.name),
                Ok(name.to_owned()),
                "{arg}"
            );
        }
        // The default dump is the system's: a user names each database.
        assert_eq!(
            TimerJob::parse("dump-database", Scope::User),
            Err(Unknown::NoSuchJob)
        );
    }

    #[test]
    fn instances_are_those_with_a_settings_file_or_an_enabled_or_running_timer() {
        use crate::systemd::fake::{scratch, Fake};
        use crate::systemd::{Loaded, Setup};
        let dir = scratch("jobs-instances");
        for file in ["sales.env", "a b.env", "notes.txt"] {
            fs::write(dir.join(file), "").unwrap();
        }
        let mut fake = Fake::new(Scope::User)
            .unit("dump-database@hr.timer", "inactive", "enabled")
            .unit("dump-database@ops.timer", "active", "disabled")
            .unit("dump-database@old.timer", "inactive", "disabled");
        fake.setups.insert(
            format!("dump-database@{PROBE}.service"),
            Setup {
                environment_files: vec![(format!("{}/{PROBE}.env", dir.display()), true)],
                ..Setup::default()
            },
        );
        fake.loaded = ["hr", "ops", "old"]
            .iter()
            .map(|i| Loaded {
                name: format!("dump-database@{i}.timer"),
                active: fake.units.borrow()[&format!("dump-database@{i}.timer")]
                    .active
                    .clone(),
            })
            .collect();
        let names: Vec<String> = all(&fake).unwrap().into_iter().map(|j| j.name).collect();
        assert_eq!(
            names,
            [
                "myapp",
                "otherapp",
                "dump-database@hr",
                "dump-database@ops",
                "dump-database@sales"
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn environment_files_read_as_systemd_reads_them() {
        let text = "# comment\n; also\nA=1\n B = two words \nC='single $x'\nD=\"dq \\\"x\\\"\"\nE=con\\\ntinued\nnot a var\n";
        let vars = parse_env_file(text);
        let get = |k: &str| {
            vars.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("single $x"));
        assert_eq!(get("D"), Some("dq \"x\""));
        assert_eq!(get("E"), Some("continued"));
        assert_eq!(vars.len(), 5);
    }
}
