//! Job figures, measured on real processes on loopback (a bench, not a test):
//!
//! - lateness of scheduled starts with 1,000 jobs due within the same 3 seconds: the
//!   master runs every one of them for real (`true` on two agents). Three figures per
//!   job, median and p99: the scheduler's launch decision (`launchedAt - scheduledFor`,
//!   what the goal is about), the master's acceptance of the task (`stagedAt`),
//!   and the process start on the agent (`startedAt`, which on a small host mostly
//!   measures how fast two agents fork 1,000 processes);
//! - the scheduler's resident memory, idle and with 10,000 defined jobs.
//!
//! Run with `cargo build --release --bins && DROVER_BIN_DIR=target/release cargo bench
//! -p drover-cluster-tests --bench jobs` (debug binaries work too, slower).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use drover_api::client::SchedulerClient;
use drover_api::task::TaskFilter;
use drover_cluster_tests::{Cluster, ClusterOptions, wait_for};
use futures::StreamExt;
use serde_json::json;

const DUE_JOBS: usize = 1_000;
const DEFINED_JOBS: usize = 10_000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn report(what: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{what:<44} n={:<5} median {:>8.1} ms   p99 {:>8.1} ms   max {:>8.1} ms",
        v.len(),
        percentile(&v, 0.5) * 1000.0,
        percentile(&v, 0.99) * 1000.0,
        v.last().copied().unwrap_or(f64::NAN) * 1000.0
    );
}

async fn create_jobs(sched: &SchedulerClient, jobs: Vec<serde_json::Value>) -> Duration {
    let t0 = Instant::now();
    futures::stream::iter(jobs)
        .for_each_concurrent(16, |j| {
            let sched = sched.clone();
            async move {
                sched.put_job(&j).await.unwrap();
            }
        })
        .await;
    t0.elapsed()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; this bench has no tests
    }
    let mut cluster = Cluster::start(ClusterOptions {
        agents: 2,
        ports_per_agent: 10,
        ..Default::default()
    })
    .await;
    cluster.start_scheduler(&[]);
    let sched = cluster.scheduler_client();
    let pid = cluster.scheduler.as_ref().unwrap().pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid);

    // 1,000 jobs due within the same 3 seconds, S to S+2 (one run each).
    let s = {
        let t = Utc::now() + TimeDelta::seconds(25);
        DateTime::from_timestamp(t.timestamp(), 0).unwrap()
    };
    let jobs: Vec<_> = (0..DUE_JOBS)
        .map(|i| {
            let at = s + TimeDelta::seconds((i % 3) as i64);
            json!({
                "name": format!("due-{i:04}"),
                "command": "true",
                "schedule": format!("R1/{}/PT1H", at.to_rfc3339_opts(SecondsFormat::Secs, true)),
                "cpus": 0.001, "mem": 1, "disk": 0.1,
                "retries": 0,
            })
        })
        .collect();
    let took = create_jobs(&sched, jobs).await;
    println!(
        "created {DUE_JOBS} jobs in {:.1} s ({:.1} ms each)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / DUE_JOBS as f64
    );
    if Utc::now() > s {
        println!("warning: creating the jobs took past their start; the figures include that");
    }
    // Wait until every job's run was decided and has ended. (Polling /metrics, not the
    // job list, so the wait does not take the scheduler's lock 1,000 times.)
    let names: Vec<String> = (0..DUE_JOBS).map(|i| format!("due-{i:04}")).collect();
    let metrics_url = format!("{}/metrics", cluster.scheduler_url());
    let gauge = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    wait_for("every due job ran", Duration::from_secs(300), || {
        let url = metrics_url.clone();
        async move {
            let text = reqwest::get(url).await.ok()?.text().await.ok()?;
            let decided = gauge(&text, "drover_scheduler_job_lateness_samples");
            let open = gauge(&text, "drover_scheduler_job_open_runs");
            (decided >= DUE_JOBS as f64 && open == 0.0).then_some(())
        }
    })
    .await;
    let mut decided = Vec::new();
    let mut runs_by_task = HashMap::new();
    for name in &names {
        let runs = sched.job_runs(name, Some(10)).await.unwrap();
        let first = runs.iter().find(|r| r.attempt == 1).unwrap();
        decided.push(first.lateness_seconds().unwrap());
        if let Some(t) = &first.task_id {
            runs_by_task.insert(t.clone(), first.scheduled_for);
        }
    }
    let tasks = cluster.client.tasks(&TaskFilter::default()).await.unwrap();
    let mut staged = Vec::new();
    let mut started = Vec::new();
    for t in &tasks {
        if let Some(at) = runs_by_task.get(&t.spec.id) {
            staged.push(((t.staged_at - *at).num_microseconds().unwrap() as f64) / 1e6);
            if let Some(st) = t.started_at {
                started.push(((st - *at).num_microseconds().unwrap() as f64) / 1e6);
            }
        }
    }
    // Tasks that never reported a start (so are missing from the last figure), by state.
    let mut unstarted: HashMap<String, (usize, String)> = HashMap::new();
    for t in tasks
        .iter()
        .filter(|t| runs_by_task.contains_key(&t.spec.id) && t.started_at.is_none())
    {
        let e = unstarted
            .entry(t.state.as_str().to_string())
            .or_insert((0, t.message.clone().unwrap_or_default()));
        e.0 += 1;
    }
    println!("lateness of {DUE_JOBS} scheduled starts due within 3 s (2 agents, `true`):");
    for (state, (n, message)) in &unstarted {
        println!("  {n} tasks {state} without a start time (e.g. {message:?})");
    }
    report("  launch decision (launchedAt - scheduledFor)", decided);
    report("  accepted by the master (stagedAt)", staged);
    report("  process started on the agent (startedAt)", started);
    let metrics = reqwest::get(format!("{}/metrics", cluster.scheduler_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("drover_scheduler_job_lateness"))
    {
        println!("  /metrics: {line}");
    }

    // 10,000 defined jobs (including the 1,000 above), far-future schedules.
    let more: Vec<_> = (DUE_JOBS..DEFINED_JOBS)
        .map(|i| {
            json!({
                "name": format!("defined-{i:05}"),
                "command": "echo nightly work",
                "schedule": "R/2030-01-01T03:00:00Z/P1D",
                "scheduleTimeZone": "Europe/Berlin",
                "owner": "bench@example.com",
                "cpus": 0.1, "mem": 32, "disk": 16,
            })
        })
        .collect();
    let took = create_jobs(&sched, more).await;
    println!(
        "created {} more jobs in {:.1} s ({:.2} ms each)",
        DEFINED_JOBS - DUE_JOBS,
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / (DEFINED_JOBS - DUE_JOBS) as f64
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = rss_kib(pid);
    let t0 = Instant::now();
    let list = sched.jobs().await.unwrap();
    println!(
        "GET /v1/jobs with {} jobs: {:.0} ms",
        list.len(),
        t0.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "scheduler resident memory: idle {:.1} MiB, with {} jobs {:.1} MiB",
        idle_rss as f64 / 1024.0,
        list.len(),
        rss as f64 / 1024.0
    );
    // Restart time with 10,000 jobs: load and first tick.
    let server = cluster.scheduler.as_mut().unwrap();
    server.stop();
    let t0 = Instant::now();
    server.restart();
    let sched = cluster.scheduler_client();
    wait_for(
        "scheduler answers after restart",
        Duration::from_secs(60),
        || {
            let sched = sched.clone();
            async move { sched.job("defined-09999", Some(1)).await.ok() }
        },
    )
    .await;
    println!(
        "restart with {} jobs until the API answers: {:.2} s",
        list.len(),
        t0.elapsed().as_secs_f64()
    );
}
