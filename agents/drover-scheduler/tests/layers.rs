//! The crate's layers point one way (engine ◀ runtime ◀ http ◀ server) and no file
//! imports one that imports it back. Read from the source as text, so a change that
//! breaks the layout fails here, with the files named, before anyone has to untangle it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `src/`, by its path relative to `src/`.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let src = crate_dir().join("src");
    let mut out = BTreeMap::new();
    walk(&src, &src, &mut out);
    out
}

/// The `crate::a::b::...` paths a file names (imports, calls and doc links alike).
fn crate_paths(text: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `drover_crate::`, not ours
        }
        let rest = &text[i + "crate::".len()..];
        assert!(
            !rest.starts_with('{'),
            "grouped `crate::{{...}}` imports hide which modules a file uses; import one path per line"
        );
        let path: Vec<String> = rest
            .split("::")
            .map_while(|seg| {
                let name: String = seg
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (!name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_lowercase() || c == '_' || c.is_ascii_digit()))
                .then_some(name)
            })
            .collect();
        if !path.is_empty() {
            out.insert(path);
        }
    }
    out
}

/// The file that holds the module a path names: the longest prefix that is a file.
fn file_of(path: &[String], files: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| {
        let base = path[..n].join("/");
        [format!("{base}.rs"), format!("{base}/mod.rs")]
            .into_iter()
            .find(|f| files.contains_key(f))
    })
}

/// Which files each file names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    files
        .iter()
        .map(|(file, text)| {
            let named = crate_paths(text)
                .iter()
                .filter_map(|p| file_of(p, &files))
                .filter(|f| f != file)
                .collect();
            (file.clone(), named)
        })
        .collect()
}

fn layer(file: &str) -> Option<usize> {
    // Lower layers first; `engine` is a crate of its own (re-exported as `crate::engine`).
    let top = file.split('/').next()?;
    match top {
        "runtime" => Some(1),
        "http" => Some(2),
        "server.rs" => Some(3),
        _ => None,
    }
}

#[test]
fn layers_import_only_the_layers_below() {
    let mut wrong = Vec::new();
    for (file, named) in imports() {
        let Some(own) = layer(&file) else { continue };
        for other in named {
            if layer(&other).is_some_and(|l| l > own) {
                wrong.push(format!("{file} names {other}"));
            }
        }
    }
    assert!(wrong.is_empty(), "a layer reaches up: {wrong:#?}");
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let graph = imports();
    let mut cycles = Vec::new();
    for (a, named) in &graph {
        for b in named {
            if a < b && graph.get(b).is_some_and(|back| back.contains(a)) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "files import each other: {cycles:#?}");
}

#[test]
fn the_engine_crate_depends_on_no_io() {
    let manifest =
        std::fs::read_to_string(crate_dir().join("../drover-scheduler-engine/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    for io in [
        "tokio",
        "axum",
        "hyper",
        "reqwest",
        "drover-store",
        "drover-service",
        "futures",
    ] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(io)),
            "the engine must stay pure, but its Cargo.toml depends on {io}"
        );
    }
}

#[test]
fn the_reader_finds_what_a_file_names() {
    let files: BTreeMap<String, String> = [
        ("runtime/apps.rs", ""),
        ("runtime/mod.rs", ""),
        ("http/mod.rs", ""),
    ]
    .into_iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    let paths =
        crate_paths("use crate::runtime::apps::{Apps, Revert};\n/// [`crate::http`]\nmy_crate::x");
    let found: BTreeSet<_> = paths.iter().filter_map(|p| file_of(p, &files)).collect();
    assert_eq!(
        found,
        BTreeSet::from(["runtime/apps.rs".to_string(), "http/mod.rs".to_string()])
    );
}
