//! The memory this process may use, as the kernel's cgroup v2 limits it:
//! the smallest `memory.max` or `memory.high` of its own cgroup and every
//! ancestor, which is where systemd writes a unit's and its slices'
//! `MemoryMax=` and `MemoryHigh=`. `memory.high` counts as a limit too:
//! above it the kernel throttles the cgroup and reclaims its pages, so a
//! job that needs more crawls instead of failing. cgroup v1 (or a hybrid
//! layout, whose memory controller is v1's) and anything unreadable mean no
//! limit is known.

use std::fs;
use std::path::Path;

const ROOT: &str = "/sys/fs/cgroup";

/// The limit that binds: how much, which file says so, and in which cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    pub bytes: u64,
    /// `memory.max` or `memory.high`.
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
    // Only a unified hierarchy mounted at the root has its controllers there.
    if !root.join("cgroup.controllers").exists() {
        return None;
    }
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    smallest(root, unified_path(&own)?)
}

/// The path of the unified hierarchy's line (`0::PATH`) of
/// `/proc/self/cgroup`.
fn unified_path(cgroup: &str) -> Option<&str> {
    cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|path| path.starts_with('/'))
}

/// The smallest limit on `path` and its ancestors below `root`.
fn smallest(root: &Path, path: &str) -> Option<MemoryLimit> {
    let mut cgroup = path.trim_end_matches('/');
    let mut found: Option<MemoryLimit> = None;
    loop {
        let dir = root.join(cgroup.trim_start_matches('/'));
        for file in ["memory.max", "memory.high"] {
            let Some(bytes) = read_limit(&dir.join(file)) else {
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
        let limit = smallest(&root, "/timerapps.slice/dump-database.service").unwrap();
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
        let limit = smallest(&root, "/timerapps.slice/other.service").unwrap();
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
        assert_eq!(smallest(&root, "/a/b"), None);
        assert_eq!(smallest(&root, "/"), None);
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
