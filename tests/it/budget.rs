//! What the jobs may take of the host, on a real systemd: every service
//! the package ships runs in its slice, and systemd reports the weights
//! and limits of `jobkit::host::budget` on the slice and on each service. Run
//! by the package's container tests, for the system's manager and a
//! user's.

use crate::harness::Run;
use jobkit::host::budget::{self, Load, Share, PRIORITY, SLICE, SLICE_SHARES};

/// One service manager in a container, as a test reaches it.
pub struct Manager<'a> {
    /// `systemctl` or `systemctl --user`.
    pub systemctl: &'a str,
    /// Runs a shell script as the manager's user.
    pub exec: &'a dyn Fn(&str) -> Run,
    /// Where the manager reads the admin's (or the user's) drop-ins.
    pub drop_ins: &'a str,
    /// The cgroup the manager's own units are in: empty for the system's.
    pub cgroup: &'a str,
}

impl Manager<'_> {
    #[track_caller]
    fn sh(&self, script: &str) -> String {
        let r = (self.exec)(script);
        assert_eq!(r.code(), Some(0), "{r}");
        r.stdout
    }

    /// `properties` of `unit`, as `systemctl show` prints them.
    fn show(&self, unit: &str, properties: &[&str]) -> Vec<String> {
        let text = self.sh(&format!(
            "{} show -p {} {unit}",
            self.systemctl,
            properties.join(",")
        ));
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }
}

/// The service files of the package for `m`, as dpkg lists them
/// (`myapp.service`, `dump-database@.service`).
pub fn services(m: &Manager, unit_dir: &str) -> Vec<String> {
    let listed = m.sh("dpkg -L timerapps");
    let services: Vec<String> = listed
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{unit_dir}/")))
        .filter(|name| name.ends_with(".service") && !name.contains('/'))
        .map(str::to_owned)
        .collect();
    assert!(!services.is_empty(), "{listed}");
    services
}

/// How `systemctl show` prints `share` on a host of `ram` bytes in pages
/// of `page` bytes.
fn shown(share: &Share, ram: u64, page: u64) -> String {
    let value = match share.key {
        "MemoryHigh" | "MemoryMax" => budget::bytes(share.value, ram, page)
            .unwrap_or_else(|| panic!("{share:?}"))
            .to_string(),
        // As the kernel numbers the classes (IOPRIO_CLASS_*).
        "IOSchedulingClass" => ["none", "realtime", "best-effort", "idle"]
            .iter()
            .position(|class| *class == share.value)
            .unwrap_or_else(|| panic!("{share:?}"))
            .to_string(),
        _ => share.value.to_owned(),
    };
    format!("{}={value}", share.key)
}

/// The drop-in that has a unit note its cgroup, for this test only.
const DROP_IN: &str = "zz-timerapps-test-cgroup.conf";

/// Each service of `services` (an instance `instance` of a template), run
/// once, ran in the slice; systemd reports the slice's shares, and each
/// service's priority and its load's limits.
pub fn every_service_runs_in_the_slice(m: &Manager, services: &[String], instance: &str) {
    let number = |name: &str| -> u64 { m.sh(&format!("getconf {name}")).trim().parse().unwrap() };
    let page = number("PAGESIZE");
    let ram = number("_PHYS_PAGES") * page;
    let expected = |shares: &mut dyn Iterator<Item = &Share>| -> Vec<String> {
        let mut lines: Vec<String> = shares.map(|s| shown(s, ram, page)).collect();
        lines.sort();
        lines
    };
    let keys = |shares: &[Share]| -> Vec<&str> { shares.iter().map(|s| s.key).collect() };
    assert_eq!(
        m.show(SLICE, &keys(SLICE_SHARES)),
        expected(&mut SLICE_SHARES.iter()),
        "{SLICE}"
    );
    // Each run notes its cgroup in the unified hierarchy, as the kernel
    // has it, from the unit's first process (all of a unit's processes
    // share its cgroup), in the manager's runtime directory (%t).
    let record = "${XDG_RUNTIME_DIR:-/run}/timerapps-cgroups";
    for service in services {
        m.sh(&format!(
            "mkdir -p {dir}/{service}.d
             cat > {dir}/{service}.d/{DROP_IN} <<'EOF'
[Service]
ExecStartPre=+/bin/sh -c 'echo \"%n $$(grep ^0:: /proc/self/cgroup)\" >> %t/timerapps-cgroups'
EOF",
            dir = m.drop_ins
        ));
    }
    m.sh(&format!("rm -f {record}; {} daemon-reload", m.systemctl));
    let units: Vec<String> = services
        .iter()
        .map(|s| s.replace("@.", &format!("@{instance}.")))
        .collect();
    for unit in &units {
        // Whether the job itself succeeds is not the point: some have
        // nothing to do here.
        (m.exec)(&format!("{} start {unit}", m.systemctl));
    }
    let ran = m.sh(&format!("cat {record}"));
    for unit in &units {
        let line = format!("{unit} 0::{}/{SLICE}/{unit}", m.cgroup);
        assert!(ran.lines().any(|l| l == line), "{line} not in:\n{ran}");
        let load = Load::of_unit(unit).unwrap_or_else(|| panic!("{unit}: of no job"));
        let own: Vec<Share> = PRIORITY.iter().chain(load.shares()).copied().collect();
        let mut properties = keys(&own);
        properties.push("Slice");
        let mut wanted = expected(&mut own.iter());
        wanted.push(format!("Slice={SLICE}"));
        wanted.sort();
        assert_eq!(m.show(unit, &properties), wanted, "{unit}");
    }
    for service in services {
        m.sh(&format!(
            "rm {dir}/{service}.d/{DROP_IN}; rmdir --ignore-fail-on-non-empty {dir}/{service}.d",
            dir = m.drop_ins
        ));
    }
    m.sh(&format!(
        "rm {record}; {0} daemon-reload; {0} reset-failed",
        m.systemctl
    ));
}
