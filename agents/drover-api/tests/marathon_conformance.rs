//! Conformance against the peer corpus of Marathon app definitions.
//!
//! The corpus lives outside the repository, at `../shared/conformance` next to the
//! workspace root, and is read in place. Every app in `marathon/valid/` must be accepted,
//! or refused with an error that names a field of a feature Drover refuses
//! ([`drover_api::app::REFUSED_FEATURES`]); every app in `marathon/invalid/` must be refused.
//! When the corpus is absent the test prints that it skipped and passes.

use std::path::{Path, PathBuf};

use drover_api::ApiError;
use drover_api::app::{AppDefinition, REFUSED_FEATURES, is_unsupported, parse_app_json};

/// The corpus directory, found by walking up from this crate to the workspace root.
fn corpus() -> Option<PathBuf> {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|s| s.contains("[workspace]")) {
            let c = dir.join("../shared/conformance");
            return c.is_dir().then_some(c);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A refusal that names an unsupported feature and the field that uses it.
fn is_refusal(e: &ApiError) -> bool {
    is_unsupported(e) && e.field.is_some()
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn marathon_corpus() {
    let Some(root) = corpus() else {
        println!(
            "marathon conformance: skipped (no ../shared/conformance next to the workspace root)"
        );
        return;
    };
    let valid = json_files(&root.join("marathon/valid"));
    let invalid = json_files(&root.join("marathon/invalid"));
    assert!(
        !valid.is_empty() && !invalid.is_empty(),
        "corpus at {} has no marathon apps",
        root.display()
    );

    let mut accepted = 0;
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut ignored_count = std::collections::BTreeMap::<String, usize>::new();
    for p in &valid {
        let body = std::fs::read_to_string(p).unwrap_or_default();
        match parse_app_json(&body) {
            Ok((app, ignored)) => {
                accepted += 1;
                // Each accepted app must also turn into a valid task definition.
                let conv = app.to_task_definition();
                if let Err(e) = conv.task.validate("task.") {
                    failures.push(format!(
                        "{}: accepted but its task is invalid: {e}",
                        name(p)
                    ));
                }
                check_round_trip(&app, p, &mut failures);
                for i in ignored {
                    *ignored_count.entry(i).or_default() += 1;
                }
            }
            Err(e) => {
                if is_refusal(&e) {
                    refused.push((name(p), e.message.clone()));
                } else {
                    failures.push(format!(
                        "{}: valid app refused without naming an unsupported feature: {e}",
                        name(p)
                    ));
                }
            }
        }
    }
    let mut rejected = 0;
    for p in &invalid {
        let body = std::fs::read_to_string(p).unwrap_or_default();
        match parse_app_json(&body) {
            Ok(_) => {
                let reason =
                    std::fs::read_to_string(p.with_extension("reason.txt")).unwrap_or_default();
                let why = reason
                    .lines()
                    .find(|l| l.starts_with("violation:"))
                    .unwrap_or("")
                    .to_string();
                failures.push(format!("{}: invalid app accepted ({why})", name(p)));
            }
            Err(e) => {
                rejected += 1;
                // Some invalid apps also use a refused feature, which is then what they are
                // told about; say so, so the count is not read as Marathon's own reasons.
                let note = if is_refusal(&e) {
                    " (refused feature)"
                } else {
                    ""
                };
                println!("  rejected {}{note}: {}", name(p), e.message);
            }
        }
    }

    // The apps nested in valid group definitions (ids may be relative to their group:
    // Drover takes them from the root, which changes no verdict).
    let mut group_apps = 0;
    for p in json_files(&root.join("marathon/groups/valid")) {
        let body = std::fs::read_to_string(&p).unwrap_or_default();
        let Ok(group) = serde_json::from_str::<serde_json::Value>(&body) else {
            failures.push(format!("groups/{}: not JSON", name(&p)));
            continue;
        };
        let mut apps = Vec::new();
        collect_group_apps(&group, &mut apps);
        for app in apps {
            group_apps += 1;
            if let Err(e) = AppDefinition::from_marathon(app)
                && !is_refusal(&e)
            {
                failures.push(format!(
                    "groups/{}: app in a valid group refused: {e}",
                    name(&p)
                ));
            }
        }
    }

    println!("marathon conformance against {}", root.display());
    println!(
        "  apps nested in valid groups: {group_apps}, none refused except for a listed feature"
    );
    println!(
        "  valid:   {} files, {accepted} accepted, {} refused for an unsupported feature",
        valid.len(),
        refused.len()
    );
    for (f, why) in &refused {
        println!("    refused {f}: {why}");
    }
    println!("  invalid: {} files, {rejected} rejected", invalid.len());
    println!("  features Drover refuses:");
    for (f, why) in REFUSED_FEATURES {
        println!("    - {f}: {why}");
    }
    println!("  fields accepted but ignored (count of valid apps):");
    for (f, n) in &ignored_count {
        println!("    - {f}: {n}");
    }
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
}

fn collect_group_apps<'v>(group: &'v serde_json::Value, out: &mut Vec<&'v serde_json::Value>) {
    if let Some(apps) = group.get("apps").and_then(|a| a.as_array()) {
        out.extend(apps);
    }
    if let Some(groups) = group.get("groups").and_then(|g| g.as_array()) {
        for g in groups {
            collect_group_apps(g, out);
        }
    }
}

fn check_round_trip(app: &AppDefinition, p: &Path, failures: &mut Vec<String>) {
    match serde_json::to_string(app).map(|s| serde_json::from_str::<AppDefinition>(&s)) {
        Ok(Ok(back)) if back == *app => {}
        other => failures.push(format!(
            "{}: does not round-trip through serde: {other:?}",
            name(p)
        )),
    }
}
