//! Typed parsing of the environment variables that configure the jobs.
//! Unset means the default; a set but malformed value is an [`Exit::Usage`]
//! error that names the variable and shows the value.

use crate::{Error, Exit, Result};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// Where variables come from: the process environment in the jobs, a table in
/// unit tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<OsString>;
}

/// The process environment.
pub struct Environment;

impl Source for Environment {
    fn get(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<OsString> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v.into())
    }
}

/// The error for `name=value`, with `expected` saying what would be accepted.
pub fn invalid(name: &str, value: &OsStr, expected: &str) -> Error {
    Error::new(
        Exit::Usage,
        format!(
            "{name}={:?} is invalid: {expected}",
            value.to_string_lossy()
        ),
    )
}

/// The variable's value as one line of text; None when unset or empty.
pub fn non_empty(env: &dyn Source, name: &str) -> Result<Option<String>> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    match value.to_str() {
        Some("") => Ok(None),
        Some(s) if !s.contains(['\n', '\r']) => Ok(Some(s.to_owned())),
        _ => Err(invalid(name, &value, "expected one line of text")),
    }
}

/// An absolute path, or `default` when unset.
pub fn absolute_path(env: &dyn Source, name: &str, default: &str) -> Result<PathBuf> {
    let Some(value) = env.get(name) else {
        return Ok(PathBuf::from(default));
    };
    let path = PathBuf::from(&value);
    if !path.is_absolute() {
        return Err(invalid(
            name,
            &value,
            &format!("expected an absolute path (unset it for the default {default})"),
        ));
    }
    Ok(path)
}

/// A whole number in `min..=max`, or `default` when unset.
pub fn number(env: &dyn Source, name: &str, min: u32, max: u32, default: u32) -> Result<u32> {
    let Some(value) = env.get(name) else {
        return Ok(default);
    };
    let parsed = value
        .to_str()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|n| (min..=max).contains(n));
    parsed.ok_or_else(|| {
        let range = if max == u32::MAX {
            format!("a whole number of at least {min}")
        } else {
            format!("a whole number from {min} to {max}")
        };
        invalid(
            name,
            &value,
            &format!("expected {range} (default {default})"),
        )
    })
}

/// A size in bytes as systemd's `MemoryMax=` takes it: a whole number,
/// optionally followed by `K`, `M`, `G` or `T` (powers of 1024).
pub fn bytes(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 10),
        b'M' => (&text[..text.len() - 1], 20),
        b'G' => (&text[..text.len() - 1], 30),
        b'T' => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A size ([`bytes`]) of at least `min` bytes; None when unset.
pub fn size(env: &dyn Source, name: &str, min: u64) -> Result<Option<u64>> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    let parsed = value.to_str().and_then(bytes).filter(|&n| n >= min);
    parsed.map(Some).ok_or_else(|| {
        invalid(
            name,
            &value,
            &format!(
                "expected a size of at least {} such as 2G or 1536M (K, M, G, T: powers of \
                 1024, as MemoryMax= takes them), or unset",
                crate::human::binary(min)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let env = [
            ("N", "7"),
            ("ZERO", "0"),
            ("SIGN", "+3"),
            ("BIG", "99999999999"),
        ];
        assert_eq!(number(&env, "N", 1, 9, 5).unwrap(), 7);
        assert_eq!(number(&env, "UNSET", 1, 9, 5).unwrap(), 5);
        for bad in ["ZERO", "SIGN", "BIG"] {
            let err = number(&env, bad, 1, 9, 5).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage);
            assert!(err.to_string().starts_with(&format!("{bad}=")), "{err}");
        }
    }

    #[test]
    fn sizes_as_memory_max_takes_them() {
        let env = [
            ("B", "1048576"),
            ("K", "2048K"),
            ("M", "1536M"),
            ("G", "2G"),
            ("T", "1T"),
        ];
        let size = |name| size(&env, name, 1 << 20).unwrap();
        assert_eq!(size("B"), Some(1 << 20));
        assert_eq!(size("K"), Some(2 << 20));
        assert_eq!(size("M"), Some(1536 << 20));
        assert_eq!(size("G"), Some(2 << 30));
        assert_eq!(size("T"), Some(1 << 40));
        assert_eq!(size("UNSET"), None);
        for bad in [
            "",
            "G",
            "2g",
            "2GB",
            "1.5G",
            "-1G",
            " 2G",
            "2 G",
            "1023K",
            "2",
            "99999999T",
        ] {
            let err = super::size(&[("S", bad)], "S", 1 << 20).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{bad}");
            assert!(err.to_string().contains("such as 2G"), "{err}");
        }
    }

    #[test]
    fn paths() {
        let env = [("A", "/x/y"), ("R", "x/y"), ("E", "")];
        assert_eq!(
            absolute_path(&env, "A", "/d").unwrap(),
            PathBuf::from("/x/y")
        );
        assert_eq!(absolute_path(&env, "U", "/d").unwrap(), PathBuf::from("/d"));
        for bad in ["R", "E"] {
            let err = absolute_path(&env, bad, "/d").unwrap_err();
            assert_eq!(err.exit(), Exit::Usage);
        }
    }

    #[test]
    fn messages_stay_on_one_line() {
        let env = [("N", "1\n2")];
        let err = number(&env, "N", 1, 9, 5).unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
