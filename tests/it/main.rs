//! Integration tests: the jobs as built, run against real gzip, SQLite and
//! PostgreSQL; the .deb checked by lintian and systemd-analyze; and the
//! package installed, used, upgraded and purged on a real systemd.

mod command;
mod config;
mod container;
mod dump;
mod faults;
mod harness;
mod instances;
mod logger;
mod mariadb;
mod notify;
mod package;
mod postgres;
mod supervision;
mod system;
mod user;
