//! Integration tests: the jobs as built, run against real gzip, SQLite and
//! PostgreSQL.

mod config;
mod dump;
mod harness;
mod logger;
mod postgres;
