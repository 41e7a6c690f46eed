//! Conformance of `drover_api::job::parse_job` with Chronos, against the shared corpus
//! `../shared/conformance/chronos/{valid,invalid}` (read in place, never copied). Every
//! valid job must be accepted, every invalid one refused with the field its
//! `.reason.txt` points at. When the corpus is absent the test says it skipped and passes.
//! Run with `--nocapture` to see each file's verdict, ignored fields and the counts.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use drover_api::job::{ChronosJob, check_job_graph, parse_job};

fn conformance_dir() -> Option<PathBuf> {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        if std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        {
            let shared = dir.join("../shared/conformance");
            return shared.is_dir().then_some(shared);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The field a refusal must name, read from the `.reason.txt` violation (the corpus
/// words it as Chronos does: "the job's name is invalid", "Cannot parse schedule",
/// "parent does not exist").
fn expected_field(reason: &str) -> Option<&'static str> {
    let violation = reason
        .lines()
        .find(|l| l.starts_with("violation:"))?
        .to_lowercase();
    if violation.contains("name is invalid") {
        Some("name")
    } else if violation.contains("parse schedule") {
        Some("schedule")
    } else if violation.contains("parent") {
        Some("parents")
    } else {
        None
    }
}

#[test]
fn chronos_jobs() {
    let Some(dir) = conformance_dir() else {
        println!("skipped: ../shared/conformance not found next to the workspace");
        return;
    };
    let mut failures = Vec::new();
    let (mut accepted, mut dependent, mut with_ignored) = (0, 0, 0);
    let mut jobs: Vec<ChronosJob> = Vec::new();
    for path in json_files(&dir.join("chronos/valid")) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: not JSON: {e}", name(&path)));
                continue;
            }
        };
        match parse_job(&value) {
            Ok((job, ignored)) => {
                accepted += 1;
                if job.is_dependent() {
                    dependent += 1;
                }
                if !ignored.is_empty() {
                    with_ignored += 1;
                }
                println!(
                    "accepted {:<45} {} ignored: [{}]",
                    name(&path),
                    if job.is_dependent() {
                        "dependent"
                    } else {
                        "scheduled"
                    },
                    ignored.join(", ")
                );
                // What Drover stores must read back to the same job.
                let stored = serde_json::to_value(&job).unwrap_or_default();
                match parse_job(&stored) {
                    Ok((again, _)) if again == job => {}
                    other => {
                        failures.push(format!("{}: does not round-trip: {other:?}", name(&path)))
                    }
                }
                jobs.push(job);
            }
            Err(e) => failures.push(format!(
                "{}: Chronos accepts it, Drover refused: {e}",
                name(&path)
            )),
        }
    }

    let mut refused = 0;
    for path in json_files(&dir.join("chronos/invalid")) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let reason = std::fs::read_to_string(path.with_extension("reason.txt")).unwrap_or_default();
        let want = expected_field(&reason);
        let outcome = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| e.to_string())
            .map(|v| parse_job(&v));
        match outcome {
            Err(e) => {
                refused += 1;
                println!("refused  {:<45} not JSON: {e}", name(&path));
            }
            Ok(Err(e)) if want.is_none() || e.field.as_deref() == want => {
                refused += 1;
                println!(
                    "refused  {:<45} {}: {}",
                    name(&path),
                    e.field.as_deref().unwrap_or("-"),
                    e.message
                );
            }
            Ok(Err(e)) => failures.push(format!(
                "{}: refused on {:?}, the reason points at {want:?}: {e}",
                name(&path),
                e.field
            )),
            Ok(Ok((job, _))) => failures.push(format!(
                "{}: Chronos refuses it, Drover accepted {}",
                name(&path),
                job.name
            )),
        }
    }

    // The corpus's jobs are examples from different places, not one cluster: their
    // parent graph is checked for cycles only, and missing parents are counted.
    let mut by_name: std::collections::BTreeMap<&str, &ChronosJob> =
        std::collections::BTreeMap::new();
    for job in &jobs {
        by_name.entry(job.name.as_str()).or_insert(job);
    }
    let missing = jobs
        .iter()
        .flat_map(|j| &j.parents)
        .filter(|p| !by_name.contains_key(p.as_str()))
        .count();
    let with_parents_present: Vec<&ChronosJob> = by_name
        .values()
        .copied()
        .filter(|j| j.parents.iter().all(|p| by_name.contains_key(p.as_str())))
        .collect();
    if let Err(e) = check_job_graph(with_parents_present) {
        failures.push(format!("corpus parent graph: {e}"));
    }

    println!(
        "chronos jobs: accepted {accepted} of the valid ({dependent} dependent, {with_ignored} with ignored fields reported), refused {refused} of the invalid; {missing} parent link(s) point outside the corpus; failures {}",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
