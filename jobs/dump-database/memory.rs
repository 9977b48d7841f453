//! Settings never ask for more memory than the job may use. What the
//! compression settings need ([`Compression::memory`]) is held, before
//! anything is written, to half of the job's limit: the smaller of its
//! cgroup's (`MemoryMax=`/`MemoryHigh=` of its unit and slices) and
//! DUMP_MEMORY_MAX. The other half is the dump command's, which runs in the
//! same cgroup (pg_dump holds the catalog of every object it dumps,
//! mysqldump without `--quick` a whole table), and the dump file's pages,
//! which the kernel charges to the cgroup until they are written out.

use crate::compress::Compression;
use crate::config::Config;
use jobkit::host::cgroup::MemoryLimit;
use jobkit::human::binary;
use jobkit::{Error, Exit, Result};

/// What the job takes besides compression: its code, the command's pipe,
/// hashing and the format check's state before tables are counted.
const BASE: u64 = 8 << 20;

/// The limit that binds, and where it was set.
#[derive(Debug)]
enum Limit {
    Cgroup(MemoryLimit),
    Variable(u64),
}

impl Limit {
    fn bytes(&self) -> u64 {
        match self {
            Limit::Cgroup(limit) => limit.bytes,
            Limit::Variable(bytes) => *bytes,
        }
    }
}

/// What compressing with `cfg`'s settings takes, the job's own code and
/// buffers included.
pub fn need(cfg: &Config) -> u64 {
    BASE + cfg.compression.memory(cfg.threads)
}

/// Refuses settings whose compression needs more than half the job's
/// limit: `cgroup`'s, or DUMP_MEMORY_MAX where that is smaller.
pub fn check(cfg: &Config, cgroup: Option<MemoryLimit>) -> Result<()> {
    let (level, value) = match cfg.compression {
        Compression::Gzip { level } => ("DUMP_GZIP_LEVEL", level.to_string()),
        Compression::Zstd { level } => ("DUMP_ZSTD_LEVEL", level.to_string()),
        Compression::None => return Ok(()),
    };
    let limit = match (cgroup, cfg.memory_max) {
        (Some(c), Some(v)) if v < c.bytes => Limit::Variable(v),
        (Some(c), _) => Limit::Cgroup(c),
        (None, Some(v)) => Limit::Variable(v),
        (None, None) => return Ok(()),
    };
    let need = need(cfg);
    let share = limit.bytes() / 2;
    if need <= share {
        return Ok(());
    }
    let (what, raise) = match &limit {
        Limit::Variable(bytes) => (
            format!("DUMP_MEMORY_MAX ({})", binary(*bytes)),
            "raise DUMP_MEMORY_MAX".to_owned(),
        ),
        Limit::Cgroup(c) => match c.unit() {
            Some(unit) => (
                format!("the {} {} of {unit}", binary(c.bytes), c.setting()),
                format!("raise its MemoryHigh= and MemoryMax= with `systemctl edit {unit}`"),
            ),
            None => (
                format!("the {} {} of cgroup {}", binary(c.bytes), c.file, c.cgroup),
                format!("raise that cgroup's {}", c.file),
            ),
        },
    };
    Err(Error::new(
        Exit::Usage,
        format!(
            "{level}={value} with DUMP_THREADS={} needs up to {} of memory to compress, more \
             than the {} it may take: half of {what}, the other half being the dump \
             command's; lower {level} or DUMP_THREADS, or {raise}",
            cfg.threads,
            binary(need),
            binary(share),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let mut env = [("DUMP_COMMAND", "x"); 5];
        env[..vars.len()].copy_from_slice(vars);
        Config::from_env(&env).unwrap()
    }

    fn zstd(level: &str, threads: &str) -> Config {
        config(&[
            ("DUMP_COMPRESS", "zstd"),
            ("DUMP_ZSTD_LEVEL", level),
            ("DUMP_THREADS", threads),
        ])
    }

    fn cgroup(bytes: u64, file: &'static str, cgroup: &str) -> Option<MemoryLimit> {
        Some(MemoryLimit {
            bytes,
            file,
            cgroup: cgroup.to_owned(),
        })
    }

    const UNIT: &str = "/timerapps.slice/dump-database.service";

    #[test]
    fn strong_settings_on_many_threads_need_gigabytes() {
        let strong = need(&zstd("19", "64"));
        assert!(strong > 4 << 30, "{}", binary(strong));
        // The defaults need little: zstd 3 and gzip 6 on 4 threads.
        assert!(need(&zstd("3", "4")) < 100 << 20);
        assert!(need(&config(&[("DUMP_THREADS", "4")])) < 20 << 20);
        // More threads and stronger levels never need less.
        for level in 1..19 {
            let (this, next) = (level.to_string(), (level + 1).to_string());
            assert!(
                need(&zstd(&this, "4")) <= need(&zstd(&next, "4")),
                "{level}"
            );
        }
        assert!(need(&zstd("19", "8")) < need(&zstd("19", "9")));
    }

    #[test]
    fn over_half_the_cgroup_limit_is_refused_naming_both_variables_and_the_unit() {
        let cfg = zstd("19", "64");
        let err = check(&cfg, cgroup(1536 << 20, "memory.high", UNIT)).unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        let msg = err.to_string();
        for shown in [
            "DUMP_ZSTD_LEVEL=19 with DUMP_THREADS=64 needs up to ",
            "more than the 768 MiB it may take: half of the 1.50 GiB MemoryHigh= of \
             dump-database.service",
            "lower DUMP_ZSTD_LEVEL or DUMP_THREADS",
            "`systemctl edit dump-database.service`",
        ] {
            assert!(msg.contains(shown), "{msg}");
        }
        assert!(!msg.contains('\n'));
        // Raised above twice the need, the same settings run.
        let raised = 2 * need(&cfg);
        assert!(check(&cfg, cgroup(raised, "memory.max", UNIT)).is_ok());
        // A cgroup that is no unit's is named by its path.
        let msg = check(&cfg, cgroup(1 << 30, "memory.max", "/box/job"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("memory.max of cgroup /box/job"), "{msg}");
    }

    #[test]
    fn dump_memory_max_counts_where_it_is_the_smaller() {
        let mut cfg = config(&[
            ("DUMP_GZIP_LEVEL", "9"),
            ("DUMP_THREADS", "64"),
            ("DUMP_MEMORY_MAX", "64M"),
        ]);
        let msg = check(&cfg, None).unwrap_err().to_string();
        assert!(
            msg.contains("DUMP_GZIP_LEVEL=9 with DUMP_THREADS=64 needs up to "),
            "{msg}"
        );
        assert!(msg.contains("half of DUMP_MEMORY_MAX (64.0 MiB)"), "{msg}");
        assert!(msg.ends_with("or raise DUMP_MEMORY_MAX"), "{msg}");
        // Above a cgroup's limit it changes nothing: the cgroup's binds.
        let err = check(&cfg, cgroup(32 << 20, "memory.max", UNIT)).unwrap_err();
        assert!(err.to_string().contains("systemctl edit"), "{err}");
        // Below it, it binds.
        let err = check(&cfg, cgroup(1 << 40, "memory.max", UNIT)).unwrap_err();
        assert!(err.to_string().contains("DUMP_MEMORY_MAX"), "{err}");
        cfg.memory_max = Some(2 * need(&cfg));
        assert!(check(&cfg, None).is_ok());
        assert!(check(&cfg, cgroup(1 << 40, "memory.max", UNIT)).is_ok());
    }

    #[test]
    fn no_limit_or_no_compression_is_never_refused() {
        assert!(check(&zstd("19", "64"), None).is_ok());
        let none = config(&[("DUMP_COMPRESS", "none"), ("DUMP_MEMORY_MAX", "1M")]);
        assert!(check(&none, cgroup(1 << 20, "memory.max", UNIT)).is_ok());
    }
}
