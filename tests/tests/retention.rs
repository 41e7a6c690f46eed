//! What grows with use stays bounded, against real `drover-master`, `drover-agent` and
//! `drover-scheduler` processes on loopback: a job's run records and the master's ended
//! tasks stay within their retention policy while runs keep coming, statistics still
//! count every run, and age prunes a quiet job's history too.
//!
//! Bounded and deterministic: the tests wait (with generous deadlines) for counts, and
//! never assert on elapsed time.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use drover_api::job_run::JobRun;
use drover_api::task::TaskFilter;
use drover_cluster_tests::{Cluster, ClusterOptions, wait_for};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);
const JOB_HISTORY: usize = 3;
const TASK_HISTORY: usize = 20;

async fn all_runs(c: &Cluster, name: &str) -> Vec<JobRun> {
    c.scheduler_client()
        .job_runs(name, Some(10_000))
        .await
        .unwrap()
}

fn ended(runs: &[JobRun]) -> usize {
    runs.iter().filter(|r| !r.is_open()).count()
}

fn job(name: &str, schedule: &str) -> Value {
    json!({
        "name": name,
        "command": "true",
        "schedule": schedule,
        "cpus": 0.01,
        "mem": 8,
        "disk": 1,
    })
}

#[tokio::test]
async fn histories_stay_within_their_policy_and_statistics_count_every_run() {
    let mut c = Cluster::start(ClusterOptions {
        master_args: vec!["--task-history".into(), TASK_HISTORY.to_string()],
        ..Default::default()
    })
    .await;
    c.start_scheduler(&[
        "--job-history",
        &JOB_HISTORY.to_string(),
        "--job-history-max-age",
        "5s",
    ]);
    let sched = c.scheduler_client();
    let start = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    // Every second, until stopped.
    sched
        .put_job(&job("tick", &format!("R/{start}/PT1S")))
        .await
        .unwrap_or_else(|e| panic!("job refused: {e}\n{}", c.logs()));
    // Three runs, then nothing: only the age step prunes it once it is quiet.
    sched
        .put_job(&job("burst", &format!("R3/{start}/PT1S")))
        .await
        .unwrap();

    // Many more runs than the history keeps.
    let runs_wanted = (4 * JOB_HISTORY) as u64;
    wait_for("the ticking job succeeded many times", LONG, || async {
        let s = c.scheduler_client().job_stats("tick").await.ok()?;
        (s.success_count >= runs_wanted).then_some(())
    })
    .await;
    // Pruning follows runs within seconds: the ended records come down to the count.
    let runs = wait_for("tick's ended records within the count", LONG, || async {
        let r = all_runs(&c, "tick").await;
        (ended(&r) <= JOB_HISTORY).then_some(r)
    })
    .await;
    let newest = runs.iter().map(|r| r.number).max().unwrap();
    assert!(
        newest > JOB_HISTORY as u64 + 1,
        "older runs existed: {runs:#?}"
    );

    // The statistics are kept with the job, not derived from the pruned records.
    let stats = sched.job_stats("tick").await.unwrap();
    assert!(stats.success_count >= runs_wanted, "{stats:?}");
    assert!(stats.last_success.is_some());
    let chronos: Vec<Value> = reqwest::get(format!("{}/scheduler/jobs", c.scheduler_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tick = chronos.iter().find(|j| j["name"] == "tick").unwrap();
    assert!(
        tick["successCount"].as_u64().unwrap() >= runs_wanted,
        "{tick}"
    );
    assert!(
        all_runs(&c, "tick").await.len() < stats.success_count as usize,
        "fewer records than runs counted"
    );

    // The quiet job: its runs ended, its records age out but the newest stays (the
    // all-jobs step runs every minute).
    let burst = wait_for("burst's old records aged out", LONG, || async {
        let r = all_runs(&c, "burst").await;
        let s = c.scheduler_client().job_stats("burst").await.ok()?;
        (s.success_count == 3 && r.len() == 1).then_some(r)
    })
    .await;
    assert_eq!(burst[0].number, 3, "the newest record stays: {burst:#?}");

    // The master keeps at most its count of ended tasks, whatever ran.
    wait_for(
        "the master's ended tasks within the count",
        LONG,
        || async {
            let tasks = c.client.tasks(&TaskFilter::default()).await.ok()?;
            (tasks.iter().filter(|t| t.state.is_terminal()).count() <= TASK_HISTORY).then_some(())
        },
    )
    .await;
}
