//! Issue 4, check 9, through the scheduler's own Chronos endpoints: every job in
//! `../shared/conformance/chronos/valid/` is accepted by the endpoint it belongs to
//! (`/scheduler/dependency` when it has parents, `/scheduler/iso8601` otherwise), and
//! every job in `chronos/invalid/` is refused with a 4xx and creates nothing. The corpus
//! is read in place; when it is absent the test says it skipped.
//!
//! Chronos refuses a dependent job whose parents do not exist, so before a dependent job
//! the test creates each missing parent as a plain scheduled job, as the corpus's own
//! environment had them.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use drover_cluster_tests::{Cluster, ClusterOptions};

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
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

async fn post(url: &str, body: String) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn job_names(base: &str) -> Vec<(String, bool)> {
    let jobs: serde_json::Value = reqwest::get(format!("{base}/scheduler/jobs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let dependent = j["parents"].as_array().is_some_and(|p| !p.is_empty());
            (j["name"].as_str().unwrap().to_string(), dependent)
        })
        .collect()
}

/// Deletes every job, dependents first (a parent with children cannot be deleted).
async fn delete_all(base: &str) {
    for _ in 0..5 {
        let jobs = job_names(base).await;
        if jobs.is_empty() {
            return;
        }
        let mut ordered = jobs.clone();
        ordered.sort_by_key(|(_, dependent)| !dependent);
        for (name, _) in ordered {
            let _ = reqwest::Client::new()
                .delete(format!("{base}/scheduler/job/{name}"))
                .send()
                .await;
        }
    }
    assert!(job_names(base).await.is_empty(), "jobs left after cleanup");
}

#[tokio::test(flavor = "multi_thread")]
async fn chronos_corpus_through_the_chronos_endpoints() {
    let Some(corpus) = conformance_dir() else {
        eprintln!("SKIPPED: ../shared/conformance is absent; the Chronos corpus was not run");
        return;
    };
    let mut cluster = Cluster::start(ClusterOptions {
        agents: 1,
        ..Default::default()
    })
    .await;
    cluster.start_scheduler(&[]);
    let base = cluster.scheduler_url();

    let mut accepted = 0;
    let mut failures = Vec::new();
    for file in json_files(&corpus.join("chronos/valid")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let job: serde_json::Value = serde_json::from_str(&text).unwrap();
        let parents: Vec<String> = job["parents"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let existing: Vec<String> = job_names(&base).await.into_iter().map(|(n, _)| n).collect();
        for parent in parents.iter().filter(|p| !existing.contains(p)) {
            let placeholder = serde_json::json!({
                "name": parent, "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D", "epsilon": "PT1M"
            });
            let (s, body) = post(
                &format!("{base}/scheduler/iso8601"),
                placeholder.to_string(),
            )
            .await;
            assert!(
                (200..300).contains(&s),
                "placeholder parent {parent}: {s} {body}"
            );
        }
        let endpoint = if parents.is_empty() {
            "iso8601"
        } else {
            "dependency"
        };
        let (s, body) = post(&format!("{base}/scheduler/{endpoint}"), text).await;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if (200..300).contains(&s) {
            accepted += 1;
            println!("accepted  {name} via /scheduler/{endpoint}");
        } else {
            failures.push(format!("{name} via /scheduler/{endpoint}: {s} {body}"));
        }
        delete_all(&base).await;
    }

    let mut refused = 0;
    for file in json_files(&corpus.join("chronos/invalid")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let has_parents = text.contains("\"parents\"");
        let endpoint = if has_parents { "dependency" } else { "iso8601" };
        let (s, body) = post(&format!("{base}/scheduler/{endpoint}"), text).await;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if (400..500).contains(&s) {
            refused += 1;
            println!("refused   {name}: {s} {body}");
        } else {
            failures.push(format!("invalid {name} was answered {s}: {body}"));
        }
        assert!(
            job_names(&base).await.is_empty(),
            "a refused job created something"
        );
    }
    println!(
        "chronos corpus through the endpoints: {accepted} valid accepted, {refused} invalid refused"
    );
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
}
