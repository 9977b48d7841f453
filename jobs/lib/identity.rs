//! Whose dumps and copies are whose: a job is known by the machine it runs
//! on and the systemd unit it runs in, never by a name that two jobs or two
//! hosts can share (`DUMP_NAME`, the host name).
//!
//! - The machine: `/etc/machine-id`, as an application-specific ID
//!   (`systemd-id128 machine-id --app-specific=APP_ID`), so that the
//!   machine's own ID never leaves it (machine-id(5)).
//! - The unit: what the kernel says this process runs in
//!   (`/proc/self/cgroup`); a run by hand, outside any service, has none.
//! - A dump name in a directory belongs to the unit that first dumped it
//!   there: the dump job records that unit in the name's lock file
//!   (`.NAME.lock`), and a job of another unit that would write the same
//!   names into the same directory is refused, as is its copy.

use crate::catalogue::{self, COPY, JOBS};
use crate::{Error, Exit, Result};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// This application's ID, from which the machine's ID for timerapps is
/// derived (`systemd-id128 machine-id --app-specific=APP_ID`).
pub const APP_ID: &str = "96523827dbc84463a5a190d5e70ec42e";
const MACHINE_ID: &str = "/etc/machine-id";
/// The most a lock file's owner line may take: a unit's name is at most
/// 255 bytes.
const OWNER_MAX: usize = 256;

/// A job's identity: the machine and the dump job's unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 32 hex digits: the machine's ID for timerapps.
    pub machine: String,
    /// The dump job's service: `dump-database.service`,
    /// `dump-database@NAME.service`.
    pub unit: String,
}

impl Identity {
    /// The dump job `unit` (`dump-database@NAME.service`) of this machine.
    pub fn of(unit: &str) -> Result<Identity> {
        let text = std::fs::read_to_string(MACHINE_ID).map_err(|e| {
            Error::io(
                Exit::NotConfigured,
                "cannot read this machine's ID from",
                Path::new(MACHINE_ID),
                &e,
                "the off-host copies are told apart by it: run systemd-machine-id-setup",
            )
        })?;
        let machine = app_specific(text.trim()).ok_or_else(|| {
            Error::new(
                Exit::NotConfigured,
                format!(
                    "{MACHINE_ID} holds no machine ID (32 hex digits); the off-host copies are \
                     told apart by it: run systemd-machine-id-setup"
                ),
            )
        })?;
        Ok(Identity {
            machine,
            unit: unit.to_owned(),
        })
    }

    /// The identity of the dump job whose copy this process runs as, from
    /// the copy unit it runs in; None outside a copy unit.
    pub fn of_this_copy() -> Result<Option<Identity>> {
        match own_unit().as_deref().and_then(dump_unit_of_copy) {
            Some(unit) => Identity::of(&unit).map(Some),
            None => Ok(None),
        }
    }

    /// The tags that say so on a snapshot: `machine=ID`, `unit=UNIT`.
    pub fn tags(&self) -> [String; 2] {
        [
            format!("{MACHINE_TAG}{}", self.machine),
            format!("{UNIT_TAG}{}", self.unit),
        ]
    }

    /// The dump unit's name as the credentials' files are named:
    /// `dump-database@NAME`.
    pub fn job(&self) -> &str {
        self.unit.strip_suffix(".service").unwrap_or(&self.unit)
    }
}

/// The tags' prefixes.
pub const MACHINE_TAG: &str = "machine=";
pub const UNIT_TAG: &str = "unit=";

/// `machine`'s ID for timerapps, as systemd derives it: HMAC-SHA256 keyed
/// with the machine ID over [`APP_ID`], its first 16 bytes made a version 4
/// UUID; None when `machine` is not 32 hex digits.
fn app_specific(machine: &str) -> Option<String> {
    let key = id128(machine)?;
    let app = id128(APP_ID)?;
    let mut block = [0u8; 64];
    block[..16].copy_from_slice(&key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(app)
        .finalize();
    let mac = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&mac[..16]);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

fn id128(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// The service this process runs in, as `/proc/self/cgroup` says; None
/// for a run by hand.
pub fn own_unit() -> Option<String> {
    service_in(&std::fs::read_to_string("/proc/self/cgroup").ok()?)
}

/// The service named by the last part of the cgroup path in `cgroup`
/// (`/proc/self/cgroup`): the unified hierarchy's (`0::PATH`), or
/// systemd's own in a v1 layout (`N:name=systemd:PATH`).
fn service_in(cgroup: &str) -> Option<String> {
    let path = |wanted: &dyn Fn(&str, &str) -> bool| {
        cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            wanted(id, controllers).then_some(path)
        })
    };
    [
        path(&|id, controllers| id == "0" && controllers.is_empty()),
        path(&|_, controllers| controllers == "name=systemd"),
    ]
    .into_iter()
    .flatten()
    .find_map(|path| {
        let leaf = path.rsplit('/').next()?;
        (leaf.len() > ".service".len() && leaf.ends_with(".service")).then(|| leaf.to_owned())
    })
}

/// Refuses to run in an instance named as a plain dump job
/// (`dump-database@dump-database.service`, or its drill's or copy's): that
/// name is the plain job's own dump directory's
/// ([`catalogue::reserved_instance`]). A run by hand is never refused.
pub fn refuse_reserved_instance() -> Result<()> {
    own_unit().map_or(Ok(()), |unit| reserved(&unit))
}

fn reserved(unit: &str) -> Result<()> {
    let instance = unit
        .strip_suffix(".service")
        .and_then(|base| base.split_once('@'))
        .map(|(_, instance)| instance);
    match instance {
        Some(name) if catalogue::reserved_instance(name) => Err(Error::new(
            Exit::Usage,
            format!(
                "{unit}: an instance may not be named {name}, the name of the default job's \
                 own dump directory; name the instance otherwise; nothing was done"
            ),
        )),
        _ => Ok(()),
    }
}

/// The dump unit whose copy `unit` is: `dump-database@NAME.service` for
/// `dump-database-copy@NAME.service`; None for any other unit.
pub fn dump_unit_of_copy(unit: &str) -> Option<String> {
    let base = unit.strip_suffix(".service")?;
    let (copy, instance) = match base.split_once('@') {
        Some((copy, instance)) => (copy, Some(instance)),
        None => (base, None),
    };
    let job = JOBS
        .iter()
        .find(|j| j.companion(&COPY).as_deref() == Some(copy))?;
    Some(match instance {
        Some(i) if !i.is_empty() => format!("{}@{i}.service", job.name),
        Some(_) => return None,
        None => format!("{}.service", job.name),
    })
}

/// The unit recorded in the open lock file `file`; None when none is.
pub fn owner(file: &File) -> io::Result<Option<String>> {
    let mut buf = [0u8; OWNER_MAX];
    let mut len = 0;
    while len < buf.len() {
        match file.read_at(&mut buf[len..], len as u64)? {
            0 => break,
            n => len += n,
        }
    }
    let text = String::from_utf8_lossy(&buf[..len]);
    let line = text.lines().next().unwrap_or_default().trim();
    Ok((!line.is_empty()).then(|| line.to_owned()))
}

/// Records `unit` as the owner of the dump name whose lock `file` (at
/// `path`, held) is, if none is yet; refuses when another unit owns it.
pub fn claim(file: &File, path: &Path, unit: &str) -> Result<()> {
    let failed =
        |e: io::Error| Error::io(Exit::CantCreate, "cannot record the unit in", path, &e, "");
    match owner(file).map_err(failed)? {
        None => {
            file.set_len(0).map_err(failed)?;
            file.write_all_at(format!("{unit}\n").as_bytes(), 0)
                .map_err(failed)
        }
        Some(owner) if owner == unit => Ok(()),
        Some(owner) => Err(taken(path, &owner, unit, Exit::CantCreate)),
    }
}

/// Refuses when the dump name whose lock file is at `path` belongs to a
/// unit other than `unit`; reads it without taking the lock.
pub fn check(path: &Path, unit: &str) -> Result<()> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        // No dump was made yet.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(Exit::NotConfigured, "cannot read", path, &e, "")),
    };
    let failed = |e: io::Error| Error::io(Exit::NotConfigured, "cannot read", path, &e, "");
    if !file.metadata().map_err(failed)?.is_file() {
        return Err(Error::new(
            Exit::NotConfigured,
            format!("{} is not a regular file", path.display()),
        ));
    }
    match owner(&file).map_err(failed)? {
        Some(owner) if owner != unit => Err(taken(path, &owner, unit, Exit::NotConfigured)),
        _ => Ok(()),
    }
}

fn taken(path: &Path, owner: &str, unit: &str, exit: Exit) -> Error {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix('.'))
        .and_then(|n| n.strip_suffix(".lock"))
        .unwrap_or_default();
    Error::new(
        exit,
        format!(
            "the dumps named {name} in {} are {owner:?}'s (its lock file {} says so), not \
             {unit}'s: two jobs would write the same dump names into one directory; set \
             another DUMP_NAME or DUMP_DIR in the settings of one of them; if {owner:?} is \
             gone for good, remove {}",
            dir.display(),
            path.display(),
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machines_id_is_systemds_app_specific_one() {
        // systemd-id128 machine-id --app-specific=APP_ID, with this ID in
        // /etc/machine-id.
        assert_eq!(
            app_specific("0123456789abcdef0123456789abcdef").as_deref(),
            Some("d5f27b61f37d4922a80faa7816169a83")
        );
        assert_eq!(app_specific("0123"), None);
        assert_eq!(app_specific(&"g".repeat(32)), None);
    }

    #[test]
    fn the_unit_is_the_leaf_of_the_cgroup_path() {
        let v2 = "0::/system.slice/system-dump\\x2ddatabase\\x2dcopy.slice/\
                  dump-database-copy@shop.service\n";
        assert_eq!(
            service_in(v2).as_deref(),
            Some("dump-database-copy@shop.service")
        );
        let hybrid = "9:name=systemd:/system.slice/dump-database.service\n8:pids:/\n0::/\n";
        assert_eq!(service_in(hybrid).as_deref(), Some("dump-database.service"));
        for none in [
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "0::/\n",
            "",
        ] {
            assert_eq!(service_in(none), None, "{none}");
        }
    }

    #[test]
    fn no_instance_is_named_as_the_default_jobs_dump_directory() {
        for refused in [
            "dump-database@dump-database.service",
            "dump-database-drill@dump-database.service",
            "dump-database-copy@dump-database.service",
        ] {
            let e = reserved(refused).unwrap_err();
            assert_eq!(e.exit(), Exit::Usage);
            assert!(
                e.to_string()
                    .contains("an instance may not be named dump-database"),
                "{e}"
            );
        }
        for allowed in [
            "dump-database.service",
            "dump-database-drill.service",
            "dump-database@shop.service",
            "dump-database@dump-database-2.service",
        ] {
            reserved(allowed).unwrap();
        }
    }

    #[test]
    fn a_copy_unit_names_its_dump_unit() {
        assert_eq!(
            dump_unit_of_copy("dump-database-copy.service").as_deref(),
            Some("dump-database.service")
        );
        assert_eq!(
            dump_unit_of_copy("dump-database-copy@shop.service").as_deref(),
            Some("dump-database@shop.service")
        );
        for other in [
            "dump-database.service",
            "dump-database-drill@shop.service",
            "dump-database-copy@.service",
            "dump-database-copy.timer",
            "cron.service",
        ] {
            assert_eq!(dump_unit_of_copy(other), None, "{other}");
        }
    }

    #[test]
    fn the_first_unit_claims_a_name_and_another_is_refused() {
        let dir = std::env::temp_dir().join(format!("jobkit-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".shop.lock");
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        check(&path, "a.service").unwrap();
        claim(&open(), &path, "a.service").unwrap();
        claim(&open(), &path, "a.service").unwrap();
        assert_eq!(owner(&open()).unwrap().as_deref(), Some("a.service"));
        check(&path, "a.service").unwrap();
        let e = claim(&open(), &path, "b.service").unwrap_err();
        assert_eq!(e.exit(), Exit::CantCreate);
        let said = e.to_string();
        for part in [
            "\"a.service\"",
            "b.service",
            "DUMP_NAME or DUMP_DIR",
            "shop",
        ] {
            assert!(said.contains(part), "{said}");
        }
        assert_eq!(
            check(&path, "b.service").unwrap_err().exit(),
            Exit::NotConfigured
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
