//! No app instance is launched twice when the master dies after a launch batch is
//! durable and before the scheduler reads its answer: the real master, agents and
//! scheduler on loopback, the master made to abort in exactly that window by its test
//! hook (`DROVER_TEST_CRASH_AFTER_LAUNCH_COMMIT=1`), then started again without it.
//! The scheduler must send the same launches again (same task ids), and the master must
//! answer them with the tasks it already has.
//!
//! Build the binaries first: `cargo build --workspace --bins`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use drover_api::client::SchedulerClient;
use drover_api::task::{Task, TaskFilter, TaskState, labels};
use drover_cluster_tests::{Cluster, ClusterOptions, Server, bin_path, wait_for};
use serde_json::json;

/// Trials, each a fresh app whose first launch batch takes the master down.
const TRIALS: usize = 20;
/// Instances of each trial's app.
const INSTANCES: usize = 5;
/// Generous: a loaded machine is slow, and a timeout names what it waited for.
const LONG: Duration = Duration::from_secs(60);

/// The cluster's master started again on its address and data, with the crash hook or
/// without; the process it replaces must be gone already.
fn start_master(c: &Cluster, addr: &str, crash_after_launch_commit: bool) -> Server {
    let opts = ClusterOptions::default();
    let args = vec![
        "--listen".to_string(),
        addr.to_string(),
        "--data-dir".to_string(),
        c.dir.path().join("master").display().to_string(),
        "--heartbeat-interval".to_string(),
        opts.heartbeat_interval.to_string(),
        "--heartbeat-timeout".to_string(),
        opts.heartbeat_timeout.to_string(),
    ];
    let envs: Vec<(String, String)> = if crash_after_launch_commit {
        vec![(
            "DROVER_TEST_CRASH_AFTER_LAUNCH_COMMIT".to_string(),
            "1".to_string(),
        )]
    } else {
        Vec::new()
    };
    Server::start(
        &bin_path("drover-master"),
        &args,
        &envs,
        &c.dir.path().join("master.log"),
    )
}

/// Every task the master keeps (active and ended) of app `id`.
async fn app_tasks(c: &Cluster, id: &str) -> Vec<Task> {
    let filter = TaskFilter {
        label: Some(format!("{}={id}", labels::APP_ID)),
        ..TaskFilter::default()
    };
    c.client.tasks(&filter).await.unwrap()
}

/// Waits until app `id` runs exactly its instances, all running, with no deployment.
async fn settled(s: &SchedulerClient, id: &str) {
    let what = format!("app {id} runs {INSTANCES} instances with no deployment");
    wait_for(&what, LONG, || async {
        let d = s.app(id).await.ok()?;
        let st = d.status?;
        (d.deployment.is_none()
            && st.tasks.running as usize == INSTANCES
            && st.tasks.total() as usize == INSTANCES)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_crash_after_a_durable_launch_batch_launches_nothing_twice() {
    let mut c = Cluster::start(ClusterOptions::default()).await;
    c.start_scheduler(&[]);
    let addr = c.master.url.trim_start_matches("http://").to_string();
    let sched = c.scheduler_client();
    // (trial, tasks ever created, of them killed)
    let mut outcomes: Vec<(usize, usize, usize)> = Vec::new();
    for trial in 0..TRIALS {
        // A master that aborts once its next launch batch is durable.
        c.master.stop();
        c.master = start_master(&c, &addr, true);
        c.wait_nodes("every agent back", |nodes| {
            nodes
                .iter()
                .filter(|n| n.state == drover_api::node::NodeState::Ready)
                .count()
                == 2
        })
        .await;

        let id = format!("/once/t{trial}");
        let app = json!({
            "id": id,
            "cmd": "sleep 600",
            "instances": INSTANCES,
            "cpus": 0.01,
            "mem": 16,
            "taskKillGracePeriodSeconds": 1
        });
        let before = unanswered_launches(&c).await;
        sched.create_app(&app, false).await.unwrap();
        let what = format!("trial {trial}: the master aborts after the launch batch");
        wait_for(&what, LONG, || {
            let exited = c.master.child.try_wait().ok().flatten().is_some();
            async move { exited.then_some(()) }
        })
        .await;
        assert!(
            !master_answers(&c).await,
            "the aborted master still answers"
        );
        // Start it again only once the scheduler has seen it down and tried again: its
        // view of the master then predates the launches, the case that used to launch
        // them twice.
        let what = format!("trial {trial}: the scheduler sends the launches again");
        wait_for(&what, LONG, || async {
            (unanswered_launches(&c).await >= before + 2.0 * INSTANCES as f64).then_some(())
        })
        .await;
        c.master = start_master(&c, &addr, false);

        settled(&sched, &id).await;
        let tasks = app_tasks(&c, &id).await;
        let killed = tasks
            .iter()
            .filter(|t| t.state == TaskState::Killed)
            .count();
        eprintln!(
            "trial {trial}: {} task(s) created for {INSTANCES} instances, {killed} killed",
            tasks.len()
        );
        outcomes.push((trial, tasks.len(), killed));

        // Clean up before the next trial, so only its app launches anything.
        sched.delete_app(&id, false).await.unwrap();
        let what = format!("trial {trial}: app {id} deleted and its tasks ended");
        wait_for(&what, LONG, || async {
            let gone = matches!(sched.app(&id).await, Err(e) if e.status() == Some(404));
            let active = app_tasks(&c, &id).await.iter().any(|t| t.state.is_active());
            (gone && !active).then_some(())
        })
        .await;
    }
    let doubled: Vec<_> = outcomes
        .iter()
        .filter(|(_, created, killed)| *created != INSTANCES || *killed != 0)
        .collect();
    assert!(
        doubled.is_empty(),
        "{} of {TRIALS} trials launched instances twice (trial, tasks created, killed): {doubled:?}\n--- scheduler log, last lines ---\n{}",
        doubled.len(),
        tail(&c.scheduler.as_ref().unwrap().log_text(), 200)
    );
}

/// The scheduler's count of app launches the master refused or left unanswered.
async fn unanswered_launches(c: &Cluster) -> f64 {
    let url = format!("{}/metrics", c.scheduler_url());
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("drover_scheduler_app_launch_refusals_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Whether the master answers at all.
async fn master_answers(c: &Cluster) -> bool {
    c.client.nodes().await.is_ok()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
