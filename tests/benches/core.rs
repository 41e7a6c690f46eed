//! Core figures, measured on real processes on loopback (a bench, not a test):
//!
//! - launch latency: from the master accepting `POST /v1/tasks` (the task's `stagedAt`)
//!   to the task's process started (`startedAt`, stamped by the agent's shim), median and
//!   p99 over sequential launches;
//! - the idle agent's resident memory and CPU use;
//! - the master's resident memory with 2 agents and 100 tasks.
//!
//! Run with `cargo build --release --bins && cargo bench -p drover-cluster-tests --bench core`
//! (set `DROVER_BIN_DIR=target/release` to measure release binaries).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use drover_api::Resources;
use drover_api::task::{LaunchRequest, TaskDefinition, TaskFilter, TaskState};
use drover_cluster_tests::{Cluster, ClusterOptions, wait_for};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU ticks of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name: state is 0, utime is 11, stime is 12.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; this bench has no tests
    }
    let cluster = Cluster::start(ClusterOptions {
        agents: 2,
        ports_per_agent: 10,
        ..Default::default()
    })
    .await;

    // Idle agent: let it settle, then sample memory and CPU over 10 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let agent_pid = cluster.agents[0].pid();
    let t0 = cpu_ticks(agent_pid);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ticks = cpu_ticks(agent_pid) - t0;
    let hz = 100.0; // USER_HZ on Linux
    let cpu_pct = ticks as f64 / hz / start.elapsed().as_secs_f64() * 100.0;
    let agent_rss = rss_kib(agent_pid);

    // Launch latency: 100 sequential launches of a short sleeper, alternating nodes.
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    for i in 0..100 {
        let node = format!("agent-{}", i % 2);
        let def = TaskDefinition {
            name: format!("bench{i}"),
            cmd: Some("exec sleep 600".into()),
            resources: Resources::new(0.001, 1.0, 0.0),
            kill_grace_period_seconds: 1.0,
            ..Default::default()
        };
        let task = cluster
            .client
            .launch(&LaunchRequest {
                node,
                id: None,
                task: def,
            })
            .await
            .unwrap();
        let id = task.id().clone();
        let running = wait_for("bench task running", Duration::from_secs(30), || {
            let client = cluster.client.clone();
            let id = id.clone();
            async move {
                client
                    .task(&id)
                    .await
                    .ok()
                    .filter(|t| t.state == TaskState::Running)
            }
        })
        .await;
        let started = running.started_at.unwrap();
        latencies.push(
            (started - running.staged_at)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0,
        );
        ids.push(id);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));

    // Baseline in the same run: a bare fork+exec+wait of `true` from this process, the
    // floor any launch path pays.
    let mut baseline: Vec<f64> = (0..100)
        .map(|_| {
            let t = Instant::now();
            std::process::Command::new("true").status().unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    baseline.sort_by(|a, b| a.total_cmp(b));
    let active = cluster
        .client
        .tasks(&TaskFilter {
            active: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let master_rss = rss_kib(cluster.master.pid());

    println!(
        "drover core bench ({} binaries)",
        std::env::var("DROVER_BIN_DIR").unwrap_or_else(|_| "debug".into())
    );
    println!(
        "launch latency (accepted -> process started), {} launches: median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    println!(
        "baseline (fork+exec+wait of `true`): median {:.2} ms, p99 {:.2} ms; launch median is {:.0}x the baseline",
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.99),
        percentile(&latencies, 0.5) / percentile(&baseline, 0.5)
    );
    println!(
        "idle agent: {:.1} MiB resident, {:.2}% of one core over 10 s",
        agent_rss as f64 / 1024.0,
        cpu_pct
    );
    println!(
        "master with 2 agents and {} active tasks: {:.1} MiB resident",
        active.len(),
        master_rss as f64 / 1024.0
    );
    for id in &ids {
        let _ = cluster.client.kill(id).await;
    }
}
