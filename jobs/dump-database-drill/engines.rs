//! Every kind of throwaway server the drill can start, and the drill's one
//! choice among them: by the name a dump's family gives its engine.

use crate::engine::Kind;
use crate::{mariadb, postgres, sqlite};
use jobkit::family::Format;
use jobkit::{Error, Exit, Result};

/// Every kind of server the drill can start.
pub static KINDS: &[Kind] = &[postgres::KIND, mariadb::KIND, sqlite::KIND];

/// The kind of `kinds` that restores `format`: the drill's one choice of
/// engine.
pub fn kind(format: Format, kinds: &[Kind]) -> Result<&Kind> {
    kinds
        .iter()
        .find(|k| k.name == format.engine())
        .ok_or_else(|| {
            Error::new(
                Exit::Failure,
                format!(
                    "the drill has no engine {:?} to restore a {format} dump into",
                    format.engine()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use jobkit::family::{sqlite, Families};
    use std::path::Path;

    fn start_other(dir: &Path, format: Format, _: &[u8], _: u64) -> Result<Box<dyn Engine>> {
        Err(Error::new(
            Exit::Failure,
            format!("another engine started for {format} in {}", dir.display()),
        ))
    }

    /// The family's name for its engine, and nothing else, picks the kind
    /// of server (tests/it/family.rs: a family added in a test names its own).
    #[test]
    fn the_drill_starts_the_engine_its_family_names() {
        for format in Families::default().iter() {
            assert_eq!(kind(format, KINDS).unwrap().name, format.engine());
        }
        let e = kind(sqlite::SQLITE, &KINDS[..1]).err().unwrap();
        assert_eq!(
            e.to_string(),
            "the drill has no engine \"sqlite\" to restore a sqlite dump into"
        );
        let kinds = [
            postgres::KIND,
            Kind {
                name: sqlite::ENGINE,
                overhead: 1,
                start: start_other,
            },
        ];
        let chosen = kind(sqlite::SQLITE, &kinds).unwrap();
        let e = (chosen.start)(Path::new("/drill"), sqlite::SQLITE, b"", 0)
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "another engine started for sqlite in /drill");
    }
}
