//! The memory this process may use, as the kernel's cgroups limit it: the
//! smallest limit of its own cgroup and every ancestor, which is where
//! systemd writes a unit's and its slices' `MemoryMax=` and `MemoryHigh=`.
//! On cgroup v2 those are `memory.max` and `memory.high`; `memory.high`
//! counts as a limit too: above it the kernel throttles the cgroup and
//! reclaims its pages, so a job that needs more crawls instead of failing.
//! Where the memory controller is cgroup v1's (a legacy or hybrid layout),
//! systemd writes `MemoryMax=` to `memory.limit_in_bytes` and has nowhere
//! to put `MemoryHigh=`. Anything unreadable means no limit is known.

use std::fs;
use std::path::Path;

const ROOT: &str = "/sys/fs/cgroup";

/// The limit that binds: how much, which file says so, and in which cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    pub bytes: u64,
    /// `memory.max`, `memory.high` or `memory.limit_in_bytes`.
    pub file: &'static str,
    /// The cgroup's path below the root, `/system.slice/dump-database.service`.
    pub cgroup: String,
}

impl MemoryLimit {
    /// The unit whose setting this is, when the cgroup is a unit's:
    /// `dump-database.service`, `timerapps.slice`.
    pub fn unit(&self) -> Option<&str> {
        let leaf = self.cgroup.rsplit('/').next()?;
        [".service", ".slice", ".scope"]
            .iter()
            .any(|kind| leaf.len() > kind.len() && leaf.ends_with(kind))
            .then_some(leaf)
    }

    /// The unit setting that writes `file`.
    pub fn setting(&self) -> &'static str {
        match self.file {
            "memory.high" => "MemoryHigh=",
            _ => "MemoryMax=",
        }
    }
}

/// The smallest memory limit of this process's cgroup and its ancestors;
/// None when there is none or it cannot be read.
pub fn memory_limit() -> Option<MemoryLimit> {
    let root = Path::new(ROOT);
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    // Only a unified hierarchy mounted at the root has its controllers there.
    if root.join("cgroup.controllers").exists() {
        smallest(root, unified_path(&own)?, &UNIFIED)
    } else {
        smallest(&root.join("memory"), legacy_path(&own)?, &LEGACY)
    }
}

/// The files that hold a limit on cgroup v2.
const UNIFIED: [&str; 2] = ["memory.max", "memory.high"];

/// The file that holds a limit in cgroup v1's memory hierarchy.
const LEGACY: [&str; 1] = ["memory.limit_in_bytes"];

/// The path of the unified hierarchy's line (`0::PATH`) of
/// `/proc/self/cgroup`.
fn unified_path(cgroup: &str) -> Option<&str> {
    cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|path| path.starts_with('/'))
}

/// The path of the memory controller's line (`4:memory:PATH`) of
/// `/proc/self/cgroup` on cgroup v1.
fn legacy_path(cgroup: &str) -> Option<&str> {
    cgroup
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _id = fields.next()?;
            let controllers = fields.next()?;
            let path = fields.next()?;
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then_some(path)
        })
        .filter(|path| path.starts_with('/'))
}

/// cgroup v1 shows "no limit" as the largest multiple of the page size
/// its counters hold, about 2^63; no real limit comes near 2^62 bytes.
const UNLIMITED: u64 = 1 << 62;

/// The smallest limit in `files` on `path` and its ancestors below `root`.
fn smallest(root: &Path, path: &str, files: &[&'static str]) -> Option<MemoryLimit> {
    let mut cgroup = path.trim_end_matches('/');
    let mut found: Option<MemoryLimit> = None;
    loop {
        let dir = root.join(cgroup.trim_start_matches('/'));
        for &file in files {
            let Some(bytes) = read_limit(&dir.join(file)).filter(|&b| b < UNLIMITED) else {
                continue;
            };
            if found.as_ref().is_none_or(|f| bytes < f.bytes) {
                found = Some(MemoryLimit {
                    bytes,
                    file,
                    cgroup: if cgroup.is_empty() { "/" } else { cgroup }.to_owned(),
                });
            }
        }
        match cgroup.rsplit_once('/') {
            Some((parent, _)) => cgroup = parent,
            None => return found,
        }
    }
}

/// A limit file's value; None for `max` and for what cannot be read.
fn read_limit(file: &Path) -> Option<u64> {
    fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unified_line_of_proc_self_cgroup() {
        let v2 = "0::/system.slice/dump-database.service\n";
        assert_eq!(
            unified_path(v2),
            Some("/system.slice/dump-database.service")
        );
        let hybrid = "9:name=systemd:/system.slice/x.service\n4:memory:/a\n0::/\n";
        assert_eq!(unified_path(hybrid), Some("/"));
        assert_eq!(unified_path("4:memory:/a\n"), None);
    }

    #[test]
    fn the_memory_line_of_proc_self_cgroup_on_cgroup_v1() {
        let hybrid = "9:name=systemd:/system.slice/x.service\n4:memory:/system.slice/x.service\n\
                      0::/system.slice/x.service\n";
        assert_eq!(legacy_path(hybrid), Some("/system.slice/x.service"));
        assert_eq!(legacy_path("3:cpu,memory:/a\n"), Some("/a"));
        assert_eq!(legacy_path("3:memory_x:/a\n0::/\n"), None);
    }

    #[test]
    fn cgroup_v1_limits_and_its_unlimited_value() {
        let root = tree(
            "legacy",
            &[
                ("memory.limit_in_bytes", "9223372036854771712"),
                (
                    "timerapps.slice/memory.limit_in_bytes",
                    "9223372036854771712",
                ),
                (
                    "timerapps.slice/dump-database.service/memory.limit_in_bytes",
                    "2147483648",
                ),
                // Read only on cgroup v2.
                ("timerapps.slice/dump-database.service/memory.high", "1"),
            ],
        );
        let limit = smallest(&root, "/timerapps.slice/dump-database.service", &LEGACY).unwrap();
        assert_eq!(
            (limit.bytes, limit.file),
            (2 << 30, "memory.limit_in_bytes")
        );
        assert_eq!(limit.unit(), Some("dump-database.service"));
        assert_eq!(limit.setting(), "MemoryMax=");
        assert_eq!(
            smallest(&root, "/timerapps.slice/other.service", &LEGACY),
            None
        );
        fs::remove_dir_all(&root).unwrap();
    }

    /// A directory laid out as cgroupfs lays out these files.
    fn tree(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let root =
            std::env::temp_dir().join(format!("jobkit-cgroup-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (path, value) in files {
            let file = root.join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(file, format!("{value}\n")).unwrap();
        }
        root
    }

    #[test]
    fn the_smallest_limit_of_the_cgroup_and_its_ancestors() {
        let root = tree(
            "smallest",
            &[
                ("timerapps.slice/memory.max", "max"),
                ("timerapps.slice/memory.high", "4294967296"),
                (
                    "timerapps.slice/dump-database.service/memory.max",
                    "2147483648",
                ),
                (
                    "timerapps.slice/dump-database.service/memory.high",
                    "1610612736",
                ),
            ],
        );
        let limit = smallest(&root, "/timerapps.slice/dump-database.service", &UNIFIED).unwrap();
        assert_eq!(
            limit,
            MemoryLimit {
                bytes: 1536 << 20,
                file: "memory.high",
                cgroup: "/timerapps.slice/dump-database.service".to_owned(),
            }
        );
        assert_eq!(limit.unit(), Some("dump-database.service"));
        assert_eq!(limit.setting(), "MemoryHigh=");
        // A slice's limit binds when it is the smaller.
        let limit = smallest(&root, "/timerapps.slice/other.service", &UNIFIED).unwrap();
        assert_eq!((limit.bytes, limit.file), (4 << 30, "memory.high"));
        assert_eq!(limit.unit(), Some("timerapps.slice"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_limit_when_every_file_says_max_or_is_missing() {
        let root = tree(
            "none",
            &[("a/memory.max", "max"), ("a/b/memory.high", "max")],
        );
        assert_eq!(smallest(&root, "/a/b", &UNIFIED), None);
        assert_eq!(smallest(&root, "/", &UNIFIED), None);
        fs::remove_dir_all(&root).unwrap();
        let limit = MemoryLimit {
            bytes: 1,
            file: "memory.max",
            cgroup: "/timerapps-it-1/job".to_owned(),
        };
        assert_eq!(limit.unit(), None);
        assert_eq!(limit.setting(), "MemoryMax=");
    }
}
