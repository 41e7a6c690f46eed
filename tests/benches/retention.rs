//! Memory under a steady stream of job runs, measured on real processes on loopback (a
//! bench, not a test): a master, two agents and a `drover-scheduler` running jobs at
//! the minimum period (1 s, `true` as the command), sampled every few seconds for the
//! scheduler's resident memory (`VmRSS`), its store file's size and the master's
//! resident memory. Four runs, each on a fresh cluster:
//!
//! - 1 job and 50 jobs at 1 s,
//! - each with the retention policy (`--job-history N`, default 20 so that a short run
//!   reaches it) and with pruning off (`--job-history` huge, `--job-history-max-age 0`)
//!   as the baseline.
//!
//! For each it prints the first, median and last samples and the slope after warm-up
//! (least squares over the samples after the first quarter of the run), in MiB per
//! minute. Flat memory with the policy and growth without it is the expected shape.
//!
//! The master runs with `--task-history 1000` in every run: the scheduler keeps the
//! master's task list (active and ended tasks) in its view, so with the master's
//! default of 10,000 both grow for the first few minutes of 50 runs a second, until
//! that history is full, and hide the job records' share.
//!
//! Settings (environment): `DROVER_BENCH_SECONDS` (per run, default 120; 600 for the
//! ten-minute figure), `DROVER_BENCH_JOB_HISTORY` (default 20),
//! `DROVER_BENCH_TASK_HISTORY` (the master's, default 1000),
//! `DROVER_BENCH_SAMPLE_SECONDS` (default 5), `DROVER_BENCH_JOBS` (the job counts, one
//! pair of runs each, default `1,50`), `DROVER_BENCH_BASELINE=0` (leave out the runs
//! without pruning).
//!
//! Run with `cargo build --release --bins && DROVER_BIN_DIR=target/release cargo bench
//! -p drover-cluster-tests --bench retention` (debug binaries work too:
//! `DROVER_BIN_DIR=target/debug cargo bench --profile dev ...`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use drover_cluster_tests::{Cluster, ClusterOptions};
use serde_json::json;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

/// One sample: seconds since the jobs were put, and the measured values.
struct Sample {
    at: f64,
    scheduler_rss: f64,
    store_file: f64,
    master_rss: f64,
}

/// Least-squares slope of `y` over `x` (per unit of `x`); NaN with fewer than 2 points.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return f64::NAN;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let num: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    num / den
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(what: &str, samples: &[Sample], warm_up: f64, value: impl Fn(&Sample) -> f64) {
    let first = samples.first().map(&value).unwrap_or(f64::NAN);
    let last = samples.last().map(&value).unwrap_or(f64::NAN);
    let mid = median(samples.iter().map(&value).collect());
    let after: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at >= warm_up)
        .map(|s| (s.at / 60.0, value(s)))
        .collect();
    println!(
        "  {what:<22} first {first:>8.1} MiB   median {mid:>8.1} MiB   last {last:>8.1} MiB   slope {:>+7.2} MiB/min",
        slope(&after)
    );
}

struct Settings {
    seconds: u64,
    history: u64,
    task_history: u64,
    every: u64,
}

async fn run(jobs: usize, pruned: bool, settings: &Settings) {
    let Settings {
        seconds,
        history,
        task_history,
        every,
    } = *settings;
    let mut cluster = Cluster::start(ClusterOptions {
        agents: 2,
        ports_per_agent: 10,
        master_args: vec!["--task-history".into(), task_history.to_string()],
        ..Default::default()
    })
    .await;
    let history_flag = if pruned {
        history.to_string()
    } else {
        "1000000000".to_string()
    };
    let age_flag = if pruned { "7d" } else { "0" };
    cluster.start_scheduler(&[
        "--job-history",
        &history_flag,
        "--job-history-max-age",
        age_flag,
    ]);
    let sched = cluster.scheduler_client();
    let scheduler_pid = cluster.scheduler.as_ref().unwrap().pid();
    let master_pid = cluster.master.pid();
    let store = cluster.dir.path().join("scheduler").join("scheduler.redb");
    let start = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    for i in 0..jobs {
        sched
            .put_job(&json!({
                "name": format!("tick-{i:02}"),
                "command": "true",
                "schedule": format!("R/{start}/PT1S"),
                "cpus": 0.001, "mem": 1, "disk": 0.1,
                "retries": 0,
            }))
            .await
            .unwrap();
    }
    let t0 = Instant::now();
    let mut samples = Vec::new();
    while t0.elapsed() < Duration::from_secs(seconds) {
        samples.push(Sample {
            at: t0.elapsed().as_secs_f64(),
            scheduler_rss: rss_mib(scheduler_pid),
            store_file: file_mib(&store),
            master_rss: rss_mib(master_pid),
        });
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
    samples.push(Sample {
        at: t0.elapsed().as_secs_f64(),
        scheduler_rss: rss_mib(scheduler_pid),
        store_file: file_mib(&store),
        master_rss: rss_mib(master_pid),
    });
    let mut records = 0;
    let mut counted = 0;
    for i in 0..jobs {
        let name = format!("tick-{i:02}");
        records += sched
            .job_runs(&name, Some(usize::MAX))
            .await
            .map(|r| r.len())
            .unwrap_or(0);
        counted += sched
            .job_stats(&name)
            .await
            .map(|s| s.success_count + s.error_count + s.killed_count + s.skipped_count)
            .unwrap_or(0);
    }
    let policy = if pruned {
        format!("--job-history {history}")
    } else {
        "pruning off".to_string()
    };
    println!(
        "{jobs} job(s) at 1 s, {policy}, {seconds} s: {counted} runs counted (succeeded, failed, killed, skipped), {records} records stored, {} samples",
        samples.len()
    );
    let warm_up = seconds as f64 / 4.0;
    report("scheduler RSS", &samples, warm_up, |s| s.scheduler_rss);
    report("scheduler store file", &samples, warm_up, |s| s.store_file);
    report("master RSS", &samples, warm_up, |s| s.master_rss);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; this bench has no tests
    }
    let settings = Settings {
        seconds: env_number("DROVER_BENCH_SECONDS", 120),
        history: env_number("DROVER_BENCH_JOB_HISTORY", 20),
        task_history: env_number("DROVER_BENCH_TASK_HISTORY", 1000),
        every: env_number("DROVER_BENCH_SAMPLE_SECONDS", 5).max(1),
    };
    let counts: Vec<usize> = std::env::var("DROVER_BENCH_JOBS")
        .unwrap_or_else(|_| "1,50".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!(
        "master --task-history {} in every run (the scheduler mirrors the master's tasks)",
        settings.task_history
    );
    let baseline = env_number("DROVER_BENCH_BASELINE", 1) != 0;
    for jobs in counts {
        for pruned in [true, false] {
            if !pruned && !baseline {
                continue;
            }
            run(jobs, pruned, &settings).await;
        }
    }
}
