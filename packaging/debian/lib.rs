//! No code: this crate carries the cargo-deb metadata of the timerapps
//! Debian package in its Cargo.toml, apart from the jobs' own manifest.
