//! What a job may take of the host it shares with its database, and how it
//! touches the host: the budget of the slice and the units ([`budget`]),
//! the memory limit its cgroup sets ([`cgroup`]), the child processes it
//! starts ([`process`]), opening files another user can write ([`safe`]),
//! and replacing a file atomically ([`atomic`]).

pub mod atomic;
pub mod budget;
pub mod cgroup;
pub mod process;
pub mod safe;
