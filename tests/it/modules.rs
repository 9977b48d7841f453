//! No module imports a module that imports it back, in any crate of the
//! tree: each crate's modules form layers (docs/ARCHITECTURE.md). A module
//! may use its own submodules and its ancestors' items; what counts is a
//! path through siblings that comes back.

use crate::harness::Sandbox;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module by its path in its crate: `["dumpfile", "write"]`.
type Module = Vec<String>;

fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every module of the crate whose root is in `dir`, with its file.
fn modules(dir: &Path) -> BTreeMap<Module, PathBuf> {
    let mut found = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir) {
        let path = entry.unwrap().into_path();
        let Ok(rel) = path.strip_prefix(dir) else {
            continue;
        };
        let Some(rel) = rel.to_str().and_then(|r| r.strip_suffix(".rs")) else {
            continue;
        };
        let mut parts: Module = rel.split('/').map(str::to_owned).collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts != ["main"] && parts != ["lib"] {
            found.insert(parts, path);
        }
    }
    found
}

/// The modules of `known` that `text` (module `from`'s file, its tests
/// left out) names through `crate::` or `super::`.
fn uses(from: &Module, text: &str, known: &BTreeMap<Module, PathBuf>) -> BTreeSet<Module> {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut named = BTreeSet::new();
    for (anchor, base) in [
        ("crate::", Vec::new()),
        ("super::", from[..from.len().saturating_sub(1)].to_vec()),
    ] {
        for (at, _) in text.match_indices(anchor) {
            let rest = &text[at + anchor.len()..];
            let mut paths: Vec<Vec<&str>> = Vec::new();
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(0)];
                paths.extend(
                    group
                        .split(',')
                        .map(|item| item.trim().split("::").collect()),
                );
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                paths.push(rest[..end].split("::").collect());
            }
            for path in paths {
                let mut module = base.clone();
                module.extend(path.iter().map(|p| (*p).to_owned()));
                // The longest prefix that is a module.
                while !module.is_empty() && !known.contains_key(&module) {
                    module.pop();
                }
                if !module.is_empty() && !nested(&module, from) {
                    named.insert(module);
                }
            }
        }
    }
    named
}

/// Whether one module contains the other (or is it).
fn nested(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Each pair of modules of the crate in `dir` that reach each other (or
/// each other's submodules).
fn cycles(dir: &Path) -> Vec<String> {
    let known = modules(dir);
    let graph: BTreeMap<&Module, BTreeSet<Module>> = known
        .iter()
        .map(|(m, path)| (m, uses(m, &fs::read_to_string(path).unwrap(), &known)))
        .collect();
    let reaches = |from: &Module, to: &Module| {
        let mut seen = BTreeSet::new();
        let mut next = vec![from.clone()];
        while let Some(m) = next.pop() {
            if m.starts_with(to) {
                return true;
            }
            if seen.insert(m.clone()) {
                next.extend(graph.get(&m).into_iter().flatten().cloned());
            }
        }
        false
    };
    let mut found = Vec::new();
    for (from, used) in &graph {
        for to in used {
            if from < &to && reaches(to, from) {
                found.push(format!("{} <-> {}", from.join("::"), to.join("::")));
            }
        }
    }
    found
}

#[test]
fn no_crate_has_an_import_cycle() {
    let crates = [
        "jobs/lib",
        "jobs/dump-database",
        "jobs/dump-database-copy",
        "jobs/dump-database-drill",
        "jobs/timerapps",
        "jobs/myapp",
        "jobs/otherapp",
        "packaging/debian",
    ];
    let mut found = Vec::new();
    for dir in crates {
        assert!(
            !modules(&source(dir)).is_empty() || dir.ends_with("app"),
            "{dir}"
        );
        found.extend(
            cycles(&source(dir))
                .into_iter()
                .map(|c| format!("{dir}: {c}")),
        );
    }
    assert!(
        found.is_empty(),
        "modules that import each other: {found:#?}"
    );
}

/// The check itself: a cycle through siblings is found, a parent's use of
/// its child is not one.
#[test]
fn the_cycle_check_finds_a_cycle() {
    let sb = Sandbox::new("modules");
    let dir = sb.mkdir("crate");
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::write(dir.join("main.rs"), "mod a;\nmod b;\n").unwrap();
    fs::write(
        dir.join("a/mod.rs"),
        "mod c;\nuse crate::b::X;\nuse self::c::Y;\n",
    )
    .unwrap();
    fs::write(dir.join("a/c.rs"), "use super::Z;\n").unwrap();
    fs::write(dir.join("b.rs"), "use crate::{a::c::Y, b};\n").unwrap();
    assert_eq!(cycles(&dir), ["a <-> b"]);
    fs::write(dir.join("b.rs"), "pub struct X;\n").unwrap();
    assert!(cycles(&dir).is_empty());
}
