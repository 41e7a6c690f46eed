//! App figure, measured on real processes on loopback (a bench, not a test): the time
//! from `POST /v2/apps` of a 100-instance app to all 100 instances running, with two
//! real agents (`sleep`, 0.01 CPUs and 1 MiB each, no ports), median of a few runs.
//! The pure placement throughput is benched in `agents/drover-scheduler-engine/benches/placement.rs`.
//!
//! Run with `cargo build --release --bins && DROVER_BIN_DIR=target/release cargo bench
//! -p drover-cluster-tests --bench apps` (debug binaries work too, slower).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use drover_api::task::{TaskFilter, TaskState};
use drover_cluster_tests::{Cluster, ClusterOptions, wait_for};
use serde_json::json;

const INSTANCES: usize = 100;
const RUNS: usize = 3;

#[tokio::main]
async fn main() {
    let mut c = Cluster::start(ClusterOptions::default()).await;
    c.start_scheduler(&[]);
    let url = c.scheduler_url();
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for run in 0..RUNS {
        let id = format!("/bench/sleep{run}");
        let app = json!({
            "id": id, "cmd": "exec sleep 3600", "instances": INSTANCES,
            "cpus": 0.01, "mem": 1, "portDefinitions": []
        });
        let t0 = Instant::now();
        let resp = http
            .post(format!("{url}/v2/apps"))
            .header("content-type", "application/json")
            .body(app.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let label = format!("drover.app={id}");
        let client = c.client.clone();
        wait_for("every instance running", Duration::from_secs(300), || {
            let client = client.clone();
            let label = label.clone();
            async move {
                let filter = TaskFilter {
                    label: Some(label),
                    active: Some(true),
                    ..TaskFilter::default()
                };
                let tasks = client.tasks(&filter).await.ok()?;
                let running = tasks
                    .iter()
                    .filter(|t| matches!(t.state, TaskState::Running | TaskState::Healthy))
                    .count();
                (running >= INSTANCES).then_some(())
            }
        })
        .await;
        let took = t0.elapsed();
        println!(
            "run {run}: {INSTANCES} instances running {:.2} s after the POST",
            took.as_secs_f64()
        );
        times.push(took);
        // Delete and wait until every instance stopped, so runs do not add up.
        http.delete(format!("{url}/v2/apps{id}?force=true"))
            .send()
            .await
            .unwrap();
        let client = c.client.clone();
        wait_for(
            "the app's instances stopped",
            Duration::from_secs(300),
            || {
                let client = client.clone();
                async move {
                    let filter = TaskFilter {
                        active: Some(true),
                        ..TaskFilter::default()
                    };
                    let tasks = client.tasks(&filter).await.ok()?;
                    tasks.is_empty().then_some(())
                }
            },
        )
        .await;
    }
    times.sort();
    println!(
        "POST of a {INSTANCES}-instance app to all running (2 real agents, loopback): median {:.2} s over {RUNS} runs (min {:.2} s, max {:.2} s)",
        times[times.len() / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    );
}
