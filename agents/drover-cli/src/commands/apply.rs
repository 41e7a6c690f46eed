//! `drover apply -f FILE_OR_DIR`: create or update everything a file or a folder of
//! JSON files describes.
//!
//! Each file is classified by its shape ([`classify`]): a Chronos job (it has `schedule`
//! or `parents`) goes to the scheduler's job API; a Marathon app (it has `id` and `cmd`,
//! `args` or `container`) is created or updated with `PUT /v1/apps/{id}` (an app whose
//! definition is unchanged but for `instances` is only rescaled). Jobs are sent parents first, so a folder
//! holding a whole dependency chain applies in one go. Every file is tried; the command
//! fails at the end if any file failed.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::Value;

use crate::cli::ApplyArgs;
use crate::context::Context;
use crate::output;

/// What a file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A Chronos job.
    Job,
    /// A Marathon app.
    App,
}

/// A file's kind by its fields, or `None` when it is neither.
pub fn classify(v: &Value) -> Option<Kind> {
    let has = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
    if has("schedule") || has("parents") {
        Some(Kind::Job)
    } else if has("id") && (has("cmd") || has("args") || has("container")) {
        Some(Kind::App)
    } else {
        None
    }
}

/// The `*.json` files at `path` (itself, if a file), sorted, subfolders included.
pub fn json_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let p = entry
                .with_context(|| format!("cannot list {}", dir.display()))?
                .path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Orders jobs so that each comes after the parents defined in the same set; jobs in a
/// cycle or waiting for parents outside the set keep their order at the end (the
/// scheduler then says what is wrong).
pub fn parents_first(jobs: Vec<(PathBuf, Value)>) -> Vec<(PathBuf, Value)> {
    let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
    let names: std::collections::HashSet<String> =
        jobs.iter().filter_map(|(_, v)| name(v)).collect();
    let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut left = jobs;
    let mut out = Vec::new();
    loop {
        let before = left.len();
        let (ready, rest): (Vec<_>, Vec<_>) = left.into_iter().partition(|(_, v)| {
            v.get("parents")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(Value::as_str)
                        .all(|p| !names.contains(p) || done.contains(p))
                })
                .unwrap_or(true)
        });
        for (p, v) in ready {
            if let Some(n) = name(&v) {
                done.insert(n);
            }
            out.push((p, v));
        }
        left = rest;
        if left.is_empty() || left.len() == before {
            break;
        }
    }
    out.extend(left);
    out
}

/// One file's outcome, for `--json`.
#[derive(Debug, Serialize)]
struct Outcome {
    file: String,
    kind: Option<Kind>,
    name: Option<String>,
    result: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored_fields: Vec<String>,
}

impl Outcome {
    /// A file that failed before it reached the cluster (unread, not JSON, neither kind).
    fn unsent(file: &Path, name: Option<String>, result: String) -> Outcome {
        Outcome {
            file: file.display().to_string(),
            kind: None,
            name,
            result,
            ignored_fields: Vec::new(),
        }
    }
}

/// Applies every file; fails at the end if any failed.
pub async fn run(ctx: &Context, args: &ApplyArgs) -> anyhow::Result<()> {
    let files = json_files(&args.file)?;
    if files.is_empty() {
        bail!("no .json files under {}", args.file.display());
    }
    let mut outcomes = Vec::new();
    let mut jobs = Vec::new();
    let mut apps = Vec::new();
    let mut failed = 0usize;
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                failed += 1;
                outcomes.push(Outcome::unsent(
                    &f,
                    None,
                    format!("error: cannot read: {e}"),
                ));
                continue;
            }
        };
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failed += 1;
                outcomes.push(Outcome::unsent(
                    &f,
                    None,
                    format!("error: not valid JSON: {e}"),
                ));
                continue;
            }
        };
        let name = value
            .get("name")
            .or_else(|| value.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        match classify(&value) {
            Some(Kind::Job) => jobs.push((f, value)),
            Some(Kind::App) => apps.push((f, value)),
            None => {
                failed += 1;
                outcomes.push(Outcome::unsent(
                    &f,
                    name,
                    "error: neither a job (schedule or parents) nor an app (id and cmd, args or \
                     container)"
                        .into(),
                ));
            }
        }
    }
    if !jobs.is_empty() {
        let sched = ctx.scheduler()?;
        for (f, value) in parents_first(jobs) {
            let name = value
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string);
            let (result, ignored) = match ctx.call_scheduler(sched.put_job(&value)).await {
                Ok(a) => (
                    (if a.created { "created" } else { "updated" }).to_string(),
                    a.ignored_fields,
                ),
                Err(e) => {
                    failed += 1;
                    (format!("error: {e:#}"), Vec::new())
                }
            };
            outcomes.push(Outcome {
                file: f.display().to_string(),
                kind: Some(Kind::Job),
                name,
                result,
                ignored_fields: ignored,
            });
        }
    }
    if !apps.is_empty() {
        let sched = ctx.scheduler()?;
        for (f, value) in apps {
            let id = value.get("id").and_then(Value::as_str).map(str::to_string);
            let Some(app_id) = id.clone() else { continue };
            // PUT creates or updates; an unchanged definition only rescales (no new version).
            let (result, ignored) = match ctx
                .call_scheduler(sched.put_app(&app_id, &value, false))
                .await
            {
                Ok(c) => (
                    format!(
                        "{} (deployment {}, {})",
                        if c.created { "created" } else { "updated" },
                        c.deployment.id,
                        c.deployment.kind
                    ),
                    c.ignored,
                ),
                Err(e) => {
                    failed += 1;
                    (format!("error: {e:#}"), Vec::new())
                }
            };
            outcomes.push(Outcome {
                file: f.display().to_string(),
                kind: Some(Kind::App),
                name: id,
                result,
                ignored_fields: ignored,
            });
        }
    }
    if ctx.json {
        output::print_json(&outcomes)?;
    } else {
        let mut text = String::new();
        for o in &outcomes {
            let what = match o.kind {
                Some(Kind::Job) => "job",
                Some(Kind::App) => "app",
                None => "file",
            };
            text.push_str(&format!(
                "{what} {} ({}): {}\n",
                o.name.as_deref().unwrap_or("?"),
                o.file,
                o.result
            ));
            if !o.ignored_fields.is_empty() {
                text.push_str(&format!(
                    "  note: kept but not acted on: {}\n",
                    o.ignored_fields.join(", ")
                ));
            }
        }
        output::emit(&text)?;
    }
    if failed > 0 {
        bail!("{failed} of {} files failed", outcomes.len());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_are_classified_by_shape() {
        assert_eq!(
            classify(&json!({"name": "a", "schedule": "R//PT1M", "command": "x"})),
            Some(Kind::Job)
        );
        assert_eq!(
            classify(&json!({"name": "a", "parents": ["b"], "command": "x"})),
            Some(Kind::Job)
        );
        assert_eq!(
            classify(&json!({"id": "/web", "cmd": "x", "instances": 2})),
            Some(Kind::App)
        );
        assert_eq!(
            classify(&json!({"id": "/web", "container": {}})),
            Some(Kind::App)
        );
        assert_eq!(classify(&json!({"foo": 1})), None);
    }

    #[test]
    fn parents_come_first() {
        let jobs = vec![
            (
                PathBuf::from("1"),
                json!({"name": "d", "parents": ["b", "c"]}),
            ),
            (PathBuf::from("2"), json!({"name": "b", "parents": ["a"]})),
            (PathBuf::from("3"), json!({"name": "c", "parents": ["a"]})),
            (
                PathBuf::from("4"),
                json!({"name": "a", "schedule": "R//PT1M"}),
            ),
        ];
        let order: Vec<String> = parents_first(jobs)
            .iter()
            .map(|(_, v)| v["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(order, vec!["a", "b", "c", "d"]);
    }
}
