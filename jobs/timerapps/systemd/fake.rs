//! A service manager in memory, for unit tests: the units it is given,
//! and everything asked of it, in order. A unit it was not given reads as
//! systemd reads one without a unit file: inactive, never run.

use super::{
    Bus, Change, LastRun, Loaded, Reading, Scope, Setup, TimerState, UnitState, Unread, Verb,
};
use jobkit::Result;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

pub struct Fake {
    pub scope: Scope,
    pub units: RefCell<HashMap<String, UnitState>>,
    pub timers: HashMap<String, TimerState>,
    pub runs: HashMap<String, LastRun>,
    pub setups: HashMap<String, Setup>,
    pub drop_ins: HashMap<String, Vec<String>>,
    pub loaded: Vec<Loaded>,
    /// How each unit's jobs end: "done" where not given.
    pub results: HashMap<String, String>,
    /// Units whose properties cannot be read.
    pub unreadable: HashSet<String>,
    /// What was asked: `enable X`, `reload`, `start X`, `hold X`, ...
    pub asked: RefCell<Vec<String>>,
}

impl Fake {
    pub fn new(scope: Scope) -> Fake {
        Fake {
            scope,
            units: RefCell::default(),
            timers: HashMap::new(),
            runs: HashMap::new(),
            setups: HashMap::new(),
            drop_ins: HashMap::new(),
            loaded: Vec::new(),
            results: HashMap::new(),
            unreadable: HashSet::new(),
            asked: RefCell::default(),
        }
    }

    /// Gives `name` these states.
    pub fn unit(mut self, name: &str, active: &str, file: &str) -> Fake {
        self.units.get_mut().insert(
            name.to_owned(),
            UnitState {
                active: active.to_owned(),
                file: file.to_owned(),
            },
        );
        self
    }

    /// What was asked of it so far.
    pub fn asked(&self) -> Vec<String> {
        self.asked.borrow().clone()
    }

    fn ask(&self, what: String) {
        self.asked.borrow_mut().push(what);
    }

    fn reading<T: Clone + Default>(&self, name: &str, of: &HashMap<String, T>) -> Reading<T> {
        if self.unreadable.contains(name) {
            return Err(Unread::Property("Access denied".to_owned()));
        }
        Ok(of.get(name).cloned().unwrap_or_default())
    }

    fn file_state(&self, unit: &str, file: &str) {
        let mut units = self.units.borrow_mut();
        let state = units.entry(unit.to_owned()).or_insert_with(|| UnitState {
            active: "inactive".to_owned(),
            file: String::new(),
        });
        state.file = file.to_owned();
    }
}

impl Bus for Fake {
    fn scope(&self) -> Scope {
        self.scope
    }

    fn unit(&self, name: &str) -> Reading<UnitState> {
        let units = self.units.borrow();
        let state = self.reading(name, &units)?;
        Ok(if units.contains_key(name) {
            state
        } else {
            UnitState {
                active: "inactive".to_owned(),
                file: String::new(),
            }
        })
    }

    fn timer(&self, name: &str) -> Reading<TimerState> {
        self.reading(name, &self.timers)
    }

    fn last_run(&self, name: &str) -> Reading<LastRun> {
        self.reading(name, &self.runs)
    }

    fn setup(&self, name: &str) -> Reading<Setup> {
        self.reading(name, &self.setups)
    }

    fn drop_ins(&self, name: &str) -> Reading<Vec<String>> {
        self.reading(name, &self.drop_ins)
    }

    fn hold(&self, name: &str) -> Reading<()> {
        self.ask(format!("hold {name}"));
        Ok(())
    }

    fn loaded(&self, pattern: &str) -> Result<Vec<Loaded>> {
        let prefix = pattern.split('*').next().unwrap_or_default();
        Ok(self
            .loaded
            .iter()
            .filter(|l| l.name.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn enable(&self, unit: &str) -> Result<Vec<Change>> {
        self.ask(format!("enable {unit}"));
        self.file_state(unit, "enabled");
        Ok(vec![Change {
            kind: "symlink".to_owned(),
            link: format!("/etc/systemd/system/timers.target.wants/{unit}"),
            target: format!("/usr/lib/systemd/system/{unit}"),
        }])
    }

    fn disable(&self, unit: &str) -> Result<Vec<Change>> {
        self.ask(format!("disable {unit}"));
        self.file_state(unit, "disabled");
        Ok(vec![Change {
            kind: "unlink".to_owned(),
            link: format!("/etc/systemd/system/timers.target.wants/{unit}"),
            target: String::new(),
        }])
    }

    fn reload(&self) -> Result<()> {
        self.ask("reload".to_owned());
        Ok(())
    }

    fn job(&self, verb: Verb, unit: &str) -> Result<String> {
        self.ask(format!("{} {unit}", verb.word()));
        Ok(self
            .results
            .get(unit)
            .cloned()
            .unwrap_or_else(|| "done".to_owned()))
    }
}

/// An empty directory of the test's own, for the files units name.
pub fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("timerapps-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
