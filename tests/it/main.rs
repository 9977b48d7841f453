//! Integration tests: the jobs as built, run against real gzip, SQLite,
//! PostgreSQL and MariaDB; the .deb checked by lintian, systemd-analyze and
//! piuparts; and the package installed, used, upgraded and purged on a real
//! systemd. Plain `cargo test` runs the tests that need no root, server,
//! package or container; the others are ignored with the reason, and
//! `tests/run` runs them all.

/// Helper: every shipped service runs in the jobs' slice, with its weights and limits.
mod budget;
/// Only complete dumps are published; manifests count rows; suspects never count.
mod check;
/// `timerapps` refuses bad jobs and names up front, and works on a real systemd.
mod command;
/// A malformed setting exits 2 with one line naming it, and writes nothing.
mod config;
/// Helper: systemd booted in a container, on Debian 12 and 13.
mod container;
/// Good dumps are copied off the host into restic, verified, kept by their own rules.
mod copy;
/// The docs: jobkit's tables wherever they are shown, links that lead somewhere, a map of real paths.
mod docs;
/// Restore drills restore the newest good dump into a throwaway server and hold it to its manifest.
mod drill;
/// dump-database publishes, rotates and restores real dumps in every form.
mod dump;
/// A database family added in one file is reached by the dump, the check, the manifest and the drill.
mod family;
/// dump-database never loses a good dump to faults or operator mistakes.
mod faults;
/// Helper: a fresh directory per test, clean environments, timeouts.
mod harness;
/// Instances run one database each, with root-only credentials.
mod instances;
/// The loggers write the reference scripts' line, whole, in local time.
mod logger;
/// Helper: a real MariaDB server for one test.
mod mariadb;
/// Compression settings never ask for more memory than the job may use.
mod memory;
/// No crate's modules import each other in a cycle.
mod modules;
/// Every run's metrics reach node_exporter, failures are mailed, alert rules pass promtool.
mod monitoring;
/// dump-database's status and watchdog pings reach the service manager.
mod notify;
/// The .deb holds what it should, and lintian, systemd-analyze and piuparts pass it.
mod package;
/// Helper: a real PostgreSQL cluster for one test.
mod postgres;
/// Retention keeps exactly what restic's forget keeps, history by history.
mod retention;
/// The watchdog stops a hung dump on a real systemd, and progress shows.
mod supervision;
/// The package end to end: install, runs, upgrade, remove and purge.
mod system;
/// Root reads no file planted where it reads; accept leaves no window.
mod trust;
/// An upgrade from the released package keeps every dump it made.
mod upgrade;
/// Users' own timers run in their managers and leave the system's alone.
mod user;
