//! The maintainer scripts' tokens: `#NAME#` in `maintainer-scripts/`,
//! filled in from the job catalogue, so that no script spells a job, a
//! template or a path the catalogue knows.

use jobkit::catalogue::{
    self, Kind, Manager, Program, Shape, Variant, COMPANIONS, CONFIG_DIR, COPY, COPY_CACHE_DIR,
    CREDENTIALS_DIR, DUMPS_DIR, LOG_DIR, PASSWORD_FILE, SCHEDULE_DROP_IN, SCHEDULE_MARK,
};
use std::fs;
use std::path::Path;

/// Every token and its value.
pub fn tokens() -> Vec<(&'static str, String)> {
    let units = |manager, kind| catalogue::plain_units(manager, kind).join(" ");
    let instance_dirs: Vec<String> = Variant::jobs(Manager::System, Shape::Template)
        .map(|j| j.instances_dir())
        .collect();
    // The plain dump job, whose dumps an earlier version kept at the top of
    // DUMPS_DIR.
    let plain_dump = Variant::jobs(Manager::System, Shape::Plain)
        .find(|j| j.program == Program::Dump)
        .expect("the default dump job");
    // The plain jobs whose copies the package's units make.
    let copy_jobs: Vec<&str> = Variant::jobs(Manager::System, Shape::Plain)
        .filter(|j| j.companion(&COPY).is_some())
        .map(|j| j.name)
        .collect();
    vec![
        ("TIMERS", units(Manager::System, Kind::Timer)),
        ("SERVICES", units(Manager::System, Kind::Service)),
        ("USER_TIMERS", units(Manager::User, Kind::Timer)),
        ("USER_SERVICES", units(Manager::User, Kind::Service)),
        (
            "BY_HAND",
            catalogue::enabled_by_hand(Manager::System).join(" "),
        ),
        (
            "USER_BY_HAND",
            catalogue::enabled_by_hand(Manager::User).join(" "),
        ),
        ("LOG_DIR", LOG_DIR.to_owned()),
        ("DUMPS_DIR", DUMPS_DIR.to_owned()),
        (
            "DEFAULT_DUMPS",
            format!("{DUMPS_DIR}/{}", plain_dump.dumps_name(Shape::Plain)),
        ),
        (
            "DEFAULT_SETTINGS",
            plain_dump.settings_file(Variant {
                manager: Manager::System,
                shape: Shape::Plain,
            }),
        ),
        (
            "COMPANION_RECORDS",
            system_companions()
                .map(|c| format!("{}:{}", c.records_dir, c.record))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        (
            "COMPANION_RECORDS_DIRS",
            system_companions()
                .map(|c| c.records_dir)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("CREDENTIALS_DIR", CREDENTIALS_DIR.to_owned()),
        ("PASSWORD_FILE", PASSWORD_FILE.to_owned()),
        ("COPY_JOBS", copy_jobs.join(" ")),
        ("COPY_CACHE_DIR", COPY_CACHE_DIR.to_owned()),
        ("CONFIG_DIR", CONFIG_DIR.to_owned()),
        ("INSTANCE_DIRS", instance_dirs.join(" ")),
        ("SCHEDULE_DROP_IN", SCHEDULE_DROP_IN.to_owned()),
        ("SCHEDULE_MARK", SCHEDULE_MARK.to_owned()),
    ]
}

/// The companions whose records the system's manager keeps.
fn system_companions() -> impl Iterator<Item = &'static catalogue::Companion> {
    COMPANIONS
        .iter()
        .copied()
        .filter(|c| c.in_manager(Manager::System))
}

/// Fills in the tokens of `postinst`, `prerm` and `postrm` in `dir`.
pub fn fill(dir: &Path) -> Result<(), String> {
    let tokens = tokens();
    for (name, value) in &tokens {
        // The scripts quote every value in single quotes.
        if value.contains('\'') {
            return Err(format!("#{name}# would hold a single quote: {value}"));
        }
    }
    for script in ["postinst", "prerm", "postrm"] {
        let path = dir.join(script);
        let mut text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (name, value) in &tokens {
            text = text.replace(&format!("#{name}#"), value);
        }
        if let Some(left) = unknown_token(&text) {
            return Err(format!("{}: unknown token #{left}#", path.display()));
        }
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A `#NAME#` left in `text`.
fn unknown_token(text: &str) -> Option<&str> {
    text.match_indices('#').find_map(|(at, _)| {
        let rest = &text[at + 1..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
            .count();
        (len > 0 && rest.as_bytes().get(len) == Some(&b'#')).then(|| &rest[..len])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_spell_no_job_template_or_known_path() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("maintainer-scripts");
        let mut known: Vec<String> = catalogue::JOBS.iter().map(|j| j.name.to_owned()).collect();
        known.extend(
            tokens()
                .into_iter()
                .filter(|(name, _)| !name.ends_with("TIMERS") && !name.ends_with("SERVICES"))
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty()),
        );
        for c in COMPANIONS {
            known.extend([c.records_dir.to_owned(), c.record.to_owned()]);
        }
        for script in ["postinst", "prerm", "postrm"] {
            let text = fs::read_to_string(dir.join(script)).unwrap();
            for word in &known {
                assert!(!text.contains(word.as_str()), "{script} spells {word:?}");
            }
        }
    }

    #[test]
    fn the_default_jobs_dumps_move_where_the_job_looks() {
        let tokens = tokens();
        let token = |name: &str| &tokens.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(token("DEFAULT_DUMPS"), jobkit::dumpfile::DEFAULT_DIR);
        assert_eq!(token("DEFAULT_SETTINGS"), "/etc/default/dump-database");
    }

    #[test]
    fn unknown_tokens_are_found() {
        assert_eq!(unknown_token("a #B# c"), Some("B"));
        assert_eq!(
            unknown_token("# comment\nX=\"#TIMERS_X#\""),
            Some("TIMERS_X")
        );
        assert_eq!(unknown_token("# Comment # and #\n#!/bin/sh"), None);
    }
}
