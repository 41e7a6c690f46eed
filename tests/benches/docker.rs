//! Docker executor figures: the launch latency of a container task (accepted by the
//! master to reported running, image present) and the agent's added memory per running
//! container (its RSS with 0 and with N containers).
//!
//! Latency is the master's `stagedAt` (it accepted `POST /v1/tasks`) to the task's
//! `startedAt` (the container's start, from the engine's inspect), over N sequential
//! launches; the time until the master *reports* it running is printed beside it, and
//! where it goes (before the engine's `Created`, and the engine's create-to-start). The
//! 50 ask 0.01 CPU each, a hard quota their start-up runs under; 10 more launches with a
//! whole CPU give the unthrottled figure.
//!
//! Run with `cargo build --release --bins && DROVER_BIN_DIR=target/release cargo bench -p
//! drover-cluster-tests --bench docker` (as root). Runs its own dockerd in a network
//! namespace it creates, as the tests do.

#![allow(clippy::unwrap_used)] // bench: a panic is the failure report

use std::time::{Duration, Instant};

use drover_api::Resources;
use drover_api::task::{LaunchRequest, TaskDefinition, TaskState};
use drover_cluster_tests::docker::run_in_netns;
use drover_cluster_tests::{Cluster, ClusterOptions, wait_for};
use serde_json::json;

/// Containers launched one after another (each latency is one sample).
const N: usize = 50;
/// Launches with a whole CPU, one at a time.
const UNTHROTTLED: usize = 10;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; this bench has no tests
    }
    run_in_netns(|d| async move {
        d.import_busybox();
        let c = Cluster::start(ClusterOptions {
            agents: 1,
            agent_args: vec!["--docker-socket".into(), d.socket.display().to_string()],
            ..ClusterOptions::default()
        })
        .await;
        let agent = c.agents[0].pid();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss0 = rss_kib(agent);
        let def = TaskDefinition {
            name: "idle".into(),
            cmd: Some("exec sleep 3600".into()),
            resources: Resources::new(0.01, 8.0, 0.0),
            kill_grace_period_seconds: 0.0,
            container: Some(
                json!({"type": "DOCKER", "docker": {"image": "busybox", "network": "NONE"}}),
            ),
            ..TaskDefinition::default()
        };
        let mut latencies = Vec::new();
        let mut reported = Vec::new();
        let mut ids = Vec::new();
        let mut phases = Vec::new();
        for _ in 0..N {
            let t = c
                .client
                .launch(&LaunchRequest {
                    node: "agent-0".into(),
                    id: None,
                    task: def.clone(),
                })
                .await
                .unwrap();
            let accepted = Instant::now();
            loop {
                let now = c.client.task(&t.spec.id).await.unwrap();
                if now.state == TaskState::Running {
                    break;
                }
                assert!(!now.state.is_terminal(), "{now:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            reported.push(accepted.elapsed());
            let t = c.client.task(&t.spec.id).await.unwrap();
            let started = t.started_at.unwrap() - t.staged_at;
            latencies.push(started.to_std().unwrap_or_default());
            // Where the time goes: before the engine's create (master, agent) and inside
            // the engine (create to start).
            let name = format!("drover-{}", t.spec.id);
            let created = d.inspect(&name, "{{.Created}}");
            let created = chrono::DateTime::parse_from_rfc3339(&created).unwrap();
            let to_create = created.with_timezone(&chrono::Utc) - t.staged_at;
            let to_start = t.started_at.unwrap() - created.with_timezone(&chrono::Utc);
            phases.push((
                to_create.to_std().unwrap_or_default(),
                to_start.to_std().unwrap_or_default(),
            ));
            ids.push(t.spec.id);
        }
        let mut before: Vec<Duration> = phases.iter().map(|p| p.0).collect();
        let mut engine_part: Vec<Duration> = phases.iter().map(|p| p.1).collect();
        before.sort();
        engine_part.sort();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_n = rss_kib(agent);
        latencies.sort();
        reported.sort();
        let median = latencies[latencies.len() / 2];
        let p90 = latencies[latencies.len() * 9 / 10];
        println!("container launch latency (stagedAt -> startedAt, image present), n={N}:");
        println!(
            "  median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms",
            median.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3,
            latencies[0].as_secs_f64() * 1e3,
            latencies[N - 1].as_secs_f64() * 1e3
        );
        println!(
            "  until the master reports it running (polled every 5 ms): median {:.0} ms",
            reported[N / 2].as_secs_f64() * 1e3
        );
        println!(
            "  of which stagedAt -> the engine's Created: median {:.0} ms; Created -> started: median {:.0} ms",
            before[N / 2].as_secs_f64() * 1e3,
            engine_part[N / 2].as_secs_f64() * 1e3
        );
        let per = (rss_n as f64 - rss0 as f64) / N as f64;
        println!(
            "agent RSS: {rss0} KiB with 0 containers, {rss_n} KiB with {N} -> {per:.0} KiB per running container"
        );
        println!("helper processes per container task: 0 (the agent talks to dockerd itself)");
        // The engine's own share, for reference: `docker create` + `docker start` of the
        // same container from the CLI, on the same engine under the same load.
        let mut engine = Vec::new();
        for _ in 0..10 {
            let t0 = Instant::now();
            let out = d.docker_ok(&[
                "create",
                "--network",
                "none",
                "-m",
                "8m",
                "busybox",
                "sleep",
                "3600",
            ]);
            d.docker_ok(&["start", out.trim()]);
            engine.push(t0.elapsed());
            d.docker_ok(&["rm", "-f", out.trim()]);
        }
        engine.sort();
        println!(
            "  reference: docker create + start from the CLI, median {:.0} ms (n=10)",
            engine[5].as_secs_f64() * 1e3
        );
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("  load average while measuring: {}", load.trim());
        for id in &ids {
            let _ = c.client.kill(id).await;
        }
        wait_for(
            "every container task ended",
            Duration::from_secs(120),
            || async {
                let mut all = true;
                for id in &ids {
                    let t = c.client.task(id).await.ok()?;
                    all &= t.state.is_terminal();
                }
                all.then_some(())
            },
        )
        .await;

        // The same launch with a whole CPU: `cpus` is a hard quota (CFS), and at 0.01 of a
        // CPU the container's own start-up (runc's init runs in its cgroup) is throttled.
        // One at a time, each killed before the next.
        let mut unthrottled = Vec::new();
        for _ in 0..UNTHROTTLED {
            let def = TaskDefinition {
                resources: Resources::new(1.0, 8.0, 0.0),
                ..def.clone()
            };
            let t = c
                .client
                .launch(&LaunchRequest {
                    node: "agent-0".into(),
                    id: None,
                    task: def,
                })
                .await
                .unwrap();
            let t = wait_for(
                "a 1-cpu container running",
                Duration::from_secs(60),
                || async {
                    let now = c.client.task(&t.spec.id).await.ok()?;
                    now.started_at.is_some().then_some(now)
                },
            )
            .await;
            unthrottled.push(
                (t.started_at.unwrap() - t.staged_at)
                    .to_std()
                    .unwrap_or_default(),
            );
            let _ = c.client.kill(&t.spec.id).await;
            wait_for(
                "the 1-cpu container ended",
                Duration::from_secs(60),
                || async {
                    let now = c.client.task(&t.spec.id).await.ok()?;
                    now.state.is_terminal().then_some(())
                },
            )
            .await;
        }
        unthrottled.sort();
        println!(
            "container launch latency with cpus 1.0 (unthrottled), n={UNTHROTTLED}: median {:.0} ms, min {:.0} ms, max {:.0} ms",
            unthrottled[UNTHROTTLED / 2].as_secs_f64() * 1e3,
            unthrottled[0].as_secs_f64() * 1e3,
            unthrottled[UNTHROTTLED - 1].as_secs_f64() * 1e3
        );
    });
}
