//! The variable and exit-status tables of `jobkit::usage` are the ones the
//! `//!` docs and the pages of `docs/` show, and the man pages and settings
//! files name the same variables and statuses; every relative link of the
//! README and `docs/` leads somewhere, and every path the architecture map
//! names exists. `UPDATE_DOCS=1 cargo test docs` writes the tables into the
//! `//!` docs and the pages.

use jobkit::host::budget;
use jobkit::usage::{self, Usage};
use std::fs;
use std::path::{Path, PathBuf};

fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The lines of the two tables that start at the `nth` variable table of
/// `text` (each line without `prefix`): where they are and what they say.
fn tables(text: &str, prefix: &str, nth: usize) -> Option<(usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.strip_prefix(prefix) == Some("| variable | meaning | default |"))
        .map(|(i, _)| i)
        .nth(nth)?;
    let is_row = |l: &str| l.strip_prefix(prefix).is_some_and(|l| l.starts_with('|'));
    let mut end = start;
    while end < lines.len() && is_row(lines[end]) {
        end += 1;
    }
    // A blank line, then the exit table.
    if lines.get(end).map(|l| l.trim_end()) != Some(prefix.trim_end()) {
        return None;
    }
    end += 1;
    while end < lines.len() && is_row(lines[end]) {
        end += 1;
    }
    let found = lines[start..end]
        .iter()
        .map(|l| format!("{}\n", l.strip_prefix(prefix).unwrap_or("").trim_end()))
        .collect();
    Some((start, end, found))
}

/// Checks (or, with UPDATE_DOCS set, writes) the tables of `usage` in
/// `file`; returns what is wrong.
fn check_tables(file: &str, prefix: &str, nth: usize, usage: &Usage) -> Option<String> {
    let path = source(file);
    let text = fs::read_to_string(&path).unwrap();
    let expected = usage::markdown(usage);
    let Some((start, end, found)) = tables(&text, prefix, nth) else {
        return Some(format!("{file}: no variable and exit tables (table {nth})"));
    };
    if found == expected {
        return None;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let new = expected
            .lines()
            .map(|l| format!("{prefix}{l}").trim_end().to_owned());
        lines.splice(start..end, new);
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        return None;
    }
    Some(format!(
        "{file}: the tables differ from jobkit::usage; run UPDATE_DOCS=1 cargo test docs\n\
         --- found\n{found}--- expected\n{expected}"
    ))
}

#[test]
fn the_docs_show_the_tables_of_jobkit_usage() {
    let checks = [
        ("jobs/myapp/main.rs", "//! ", 0, "myapp"),
        ("jobs/otherapp/main.rs", "//! ", 0, "otherapp"),
        ("jobs/dump-database/main.rs", "//! ", 0, "dump-database"),
        ("jobs/timerapps/main.rs", "//! ", 0, "timerapps"),
        (
            "jobs/dump-database-drill/main.rs",
            "//! ",
            0,
            "dump-database-drill",
        ),
        (
            "jobs/dump-database-copy/main.rs",
            "//! ",
            0,
            "dump-database-copy",
        ),
        ("docs/myapp.md", "", 0, "myapp"),
        ("docs/dump-database.md", "", 0, "dump-database"),
        ("docs/timerapps.md", "", 0, "timerapps"),
        ("docs/drill.md", "", 0, "dump-database-drill"),
        ("docs/copy.md", "", 0, "dump-database-copy"),
    ];
    let wrong: Vec<String> = checks
        .iter()
        .filter_map(|(file, prefix, nth, program)| {
            check_tables(file, prefix, *nth, usage::of(program).unwrap())
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// docs/monitoring.md shows the monitoring settings as jobkit states them.
#[test]
fn the_monitoring_page_shows_the_monitoring_settings() {
    let page = fs::read_to_string(source("docs/monitoring.md")).unwrap();
    let table = usage::variables_markdown(usage::MONITORING);
    assert!(
        page.contains(&format!("/etc/default/timerapps`:\n\n{table}")),
        "docs/monitoring.md's table differs from jobkit::usage::MONITORING:\n{table}"
    );
}

/// docs/production.md shows every value of jobkit::host::budget and its reason;
/// `UPDATE_DOCS=1` writes the table.
#[test]
fn the_production_page_shows_what_each_job_may_take() {
    let path = source("docs/production.md");
    let page = fs::read_to_string(&path).unwrap();
    let table = budget::markdown();
    let header = table.lines().next().unwrap();
    let start = page.find(&format!("\n{header}\n")).expect("the table") + 1;
    let end = page[start..]
        .find("\n\n")
        .map_or(page.len(), |e| start + e + 1);
    if page[start..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        fs::write(&path, format!("{}{table}{}", &page[..start], &page[end..])).unwrap();
        return;
    }
    panic!(
        "docs/production.md's table differs from jobkit::host::budget; \
         run UPDATE_DOCS=1 cargo test docs\n{table}"
    );
}

/// The `.TP`/`.B` entries of a man page section, in order.
fn man_entries(page: &str, section: &str) -> Vec<String> {
    let text = fs::read_to_string(source(&format!("packaging/debian/man/{page}"))).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != format!(".SH {section}"))
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .filter_map(|w| w[1].strip_prefix(".B "))
        .map(|e| e.replace("\\-", "-").trim_matches('"').to_owned())
        .collect()
}

#[test]
fn the_man_pages_name_every_variable_and_exit_status() {
    for (page, program) in [
        ("myapp.1", "myapp"),
        ("dump-database.1", "dump-database"),
        ("timerapps.1", "timerapps"),
        ("dump-database-drill.1", "dump-database-drill"),
        ("dump-database-copy.1", "dump-database-copy"),
    ] {
        let usage = usage::of(program).unwrap();
        let names: Vec<&str> = usage.variables.iter().map(|v| v.name).collect();
        assert_eq!(
            man_entries(page, "ENVIRONMENT"),
            names,
            "{page} ENVIRONMENT"
        );
        let codes: Vec<&str> = usage.statuses.iter().map(|s| s.code).collect();
        assert_eq!(
            man_entries(page, "EXIT STATUS"),
            codes,
            "{page} EXIT STATUS"
        );
    }
    let monitoring: Vec<&str> = usage::MONITORING.iter().map(|v| v.name).collect();
    assert_eq!(
        man_entries("timerapps.1", "MONITORING"),
        monitoring,
        "timerapps.1 MONITORING"
    );
}

/// The settings files the package installs document each variable a job
/// reads from them (DUMP_SETTINGS is the units' to set).
#[test]
fn the_settings_files_document_every_variable() {
    for (file, program) in [
        ("packaging/debian/default/myapp", "myapp"),
        ("packaging/debian/default/otherapp", "otherapp"),
        ("packaging/debian/default/dump-database", "dump-database"),
        ("packaging/debian/default/timerapps", "timerapps"),
        (
            "packaging/debian/instances/dump-database.conf.example",
            "dump-database",
        ),
    ] {
        let text = fs::read_to_string(source(file)).unwrap();
        let mut variables: Vec<&usage::Variable> = match program {
            "timerapps" => usage::MONITORING.iter().collect(),
            program => usage::of(program).unwrap().variables.iter().collect(),
        };
        // The drill and the copy read the dump job's settings file too.
        if program == "dump-database" {
            variables.extend(usage::DRILL.variables);
            variables.extend(usage::COPY.variables);
        }
        for v in variables {
            // Set by the units.
            if matches!(
                v.name,
                "DUMP_SETTINGS" | "DRILL_RESULT" | "COPY_RESULT" | "COPY_PASSWORD_FILE"
            ) {
                continue;
            }
            assert!(
                text.lines().any(|l| l.starts_with(&format!("# {}", v.name))
                    || l.starts_with(&format!("#{}=", v.name))),
                "{file} does not document {}",
                v.name
            );
        }
    }
}

/// The README and every page of `docs/`, as paths from the source's root.
fn pages() -> Vec<String> {
    let mut pages: Vec<String> = fs::read_dir(source("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    pages.insert(0, "README.md".to_owned());
    pages
}

/// The lines of a Markdown text outside its fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The anchors GitHub gives the headings of a Markdown text: lower case,
/// spaces as hyphens, other punctuation dropped, repeats numbered.
fn anchors(text: &str) -> Vec<String> {
    let mut anchors: Vec<String> = Vec::new();
    for line in prose(text) {
        let heading = line.trim_start_matches('#');
        if heading.len() == line.len() || !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .flat_map(char::to_lowercase)
            .collect();
        let repeats = anchors
            .iter()
            .filter(|a| **a == slug || a.strip_prefix(&slug).is_some_and(|r| r.starts_with('-')))
            .count();
        anchors.push(match repeats {
            0 => slug,
            n => format!("{slug}-{n}"),
        });
    }
    anchors
}

/// The targets of the inline links `[text](target)` of a Markdown text.
fn links(text: &str) -> Vec<String> {
    prose(text)
        .iter()
        .flat_map(|line| line.split("](").skip(1))
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_owned()))
        .collect()
}

#[test]
fn every_relative_link_of_the_docs_leads_to_a_file_and_heading_that_exist() {
    let mut wrong = Vec::new();
    for page in pages() {
        let text = fs::read_to_string(source(&page)).unwrap();
        let dir = Path::new(&page).parent().unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if file.is_empty() {
                source(&page)
            } else {
                source(dir.join(file).to_str().unwrap())
            };
            if !linked.exists() {
                wrong.push(format!("{page}: {target}: no such file"));
            } else if !anchor.is_empty()
                && !anchors(&fs::read_to_string(&linked).unwrap()).contains(&anchor.to_owned())
            {
                wrong.push(format!("{page}: {target}: no such heading"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Whether `path`, relative to `dir`, names something that exists: a
/// segment in capitals (`NAME`) or with `*` stands for any entry.
fn exists(dir: &Path, path: &str) -> bool {
    let (first, rest) = path.split_once('/').unwrap_or((path, ""));
    if first.is_empty() {
        return dir.exists();
    }
    let wild = first.contains('*') || first.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    if !wild {
        return exists_below(&dir.join(first), rest);
    }
    let (head, tail) = first.split_once('*').unwrap_or(("", ""));
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.map(|e| e.unwrap()).any(|e| {
        let name = e.file_name().into_string().unwrap();
        name.starts_with(head) && name.ends_with(tail) && exists_below(&e.path(), rest)
    })
}

fn exists_below(path: &Path, rest: &str) -> bool {
    if rest.is_empty() {
        path.exists()
    } else {
        path.is_dir() && exists(path, rest)
    }
}

#[test]
fn every_path_the_architecture_names_exists() {
    let text = fs::read_to_string(source("docs/ARCHITECTURE.md")).unwrap();
    let roots = ["jobs/", "packaging/", "systemd/", "tests/", "docs/", ".ci/"];
    let named: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "`()[],;:\"'".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| roots.iter().any(|r| w.starts_with(r)) || *w == "Cargo.toml")
        .collect();
    assert!(named.len() > 20, "{named:?}");
    let missing: Vec<&&str> = named.iter().filter(|p| !exists(&source(""), p)).collect();
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}
