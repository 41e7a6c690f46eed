//! The real apps and jobs runtimes (store, loop, launches, kills) against a simulated
//! master on paused time: what the runtimes' shell does when the network loses a kill or
//! a launch's answer, which the engines' own simulations cannot see.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod sim_master;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use drover_api::app::{AppId, parse_app_json};
use drover_api::task::labels;
use drover_scheduler::engine::apps::{AppChange, Locked};
use drover_scheduler::engine::jobs::Command;
use drover_scheduler::runtime::apps::{Apps, AppsSettings};
use drover_scheduler::runtime::component::Component;
use drover_scheduler::runtime::jobs::{Jobs, JobsConfig, PutKind};
use drover_service::retention::{DEFAULT_MAX_AGE, Retention};
use serde_json::json;
use sim_master::{cluster, run_until};

const LIMIT: Duration = Duration::from_secs(120);

fn app_tasks(sim: &sim_master::SimMaster, app: &str) -> usize {
    sim.running_with_label(labels::APP_ID, app)
}

async fn start_apps(c: &sim_master::SimCluster) -> Arc<Apps> {
    let apps = Arc::new(
        Apps::open(c.ports.clone(), AppsSettings::default())
            .await
            .unwrap(),
    );
    apps.clone().spawn(c.ctx.clone());
    apps
}

async fn create_app(apps: &Apps, instances: u32) -> AppId {
    let body = json!({ "id": "/web", "cmd": "sleep 3600", "instances": instances, "cpus": 0.1, "mem": 32 });
    let (def, ignored) = parse_app_json(&body.to_string()).unwrap();
    let id = def.id.clone();
    apps.change(&id, AppChange::Create(def), Locked::Refuse, ignored)
        .await
        .unwrap();
    id
}

#[tokio::test(start_paused = true)]
async fn an_app_kill_the_master_never_got_is_sent_again() {
    let c = cluster(2, Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    let apps = start_apps(&c).await;
    let id = create_app(&apps, 2).await;
    assert!(
        run_until(LIMIT, || app_tasks(&c.master, "/web") == 2).await,
        "2 instances never ran"
    );

    c.master.with(|s| s.lose_kills = 1);
    apps.change(
        &id,
        AppChange::Scale { instances: 1 },
        Locked::Refuse,
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(
        run_until(LIMIT, || app_tasks(&c.master, "/web") == 1).await,
        "the surplus instance still runs: its lost kill was never sent again (kills asked: {:?})",
        c.master.with(|s| s.kills_asked.clone())
    );
    let kills = c.master.with(|s| s.kills_asked.clone());
    assert_eq!(kills.len(), 2, "one lost kill, one resent: {kills:?}");
    assert_eq!(kills[0], kills[1], "the same task's kill is resent");
    // And no more than that: the instance left is kept.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(app_tasks(&c.master, "/web"), 1);
    assert_eq!(c.master.with(|s| s.kills_asked.len()), 2);
}

#[tokio::test(start_paused = true)]
async fn an_app_launch_whose_answer_was_lost_starts_one_instance_only() {
    let c = cluster(2, Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    c.master.with(|s| s.lose_launch_answers = 1);
    let apps = start_apps(&c).await;
    create_app(&apps, 1).await;
    assert!(run_until(LIMIT, || app_tasks(&c.master, "/web") == 1).await);
    // Several reads of the master later, still one instance: the launch was sent again
    // under the id it was first sent with (the master answers that with its task), or
    // not at all once the master's tasks showed it.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(c.master.with(|s| s.tasks.len()), 1, "one task in all");
    let asked = c.master.with(|s| s.launches_asked.clone());
    assert!(
        asked.iter().all(|id| *id == asked[0]),
        "every launch under one id: {asked:?}"
    );
}

async fn start_jobs(c: &sim_master::SimCluster) -> Arc<Jobs> {
    let config = JobsConfig {
        engine: Default::default(),
        history: Retention {
            count: 100,
            max_age: DEFAULT_MAX_AGE,
        },
    };
    let jobs = Arc::new(Jobs::open(c.ports.clone(), config).await.unwrap());
    jobs.clone().spawn(c.ctx.clone());
    jobs
}

fn job_tasks(sim: &sim_master::SimMaster, job: &str) -> usize {
    sim.running_with_label(labels::JOB_NAME, job)
}

#[tokio::test(start_paused = true)]
async fn a_job_kill_the_master_never_got_is_sent_again() {
    let c = cluster(1, Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    let jobs = start_jobs(&c).await;
    // Scheduled a year out: it runs only when asked.
    let job = json!({ "name": "long", "command": "sleep 3600", "schedule": "R/2027-03-01T00:00:00Z/P1D" });
    jobs.put_job(&job, PutKind::Any).await.unwrap();
    jobs.command(Command::RunNow {
        job: "long".into(),
        arguments: Vec::new(),
    })
    .await
    .unwrap();
    assert!(
        run_until(LIMIT, || job_tasks(&c.master, "long") == 1).await,
        "the run never started"
    );

    c.master.with(|s| s.lose_kills = 1);
    jobs.command(Command::Kill { job: "long".into() })
        .await
        .unwrap();
    assert!(
        run_until(LIMIT, || job_tasks(&c.master, "long") == 0).await,
        "the run's task still runs: its lost kill was never sent again (kills asked: {:?})",
        c.master.with(|s| s.kills_asked.clone())
    );
    let kills = c.master.with(|s| s.kills_asked.clone());
    assert_eq!(kills.len(), 2, "one lost kill, one resent: {kills:?}");
}

#[tokio::test(start_paused = true)]
async fn a_job_launch_whose_answer_was_lost_runs_once() {
    let c = cluster(1, Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    c.master.with(|s| s.lose_launch_answers = 1);
    let jobs = start_jobs(&c).await;
    let job = json!({ "name": "once", "command": "sleep 3600", "schedule": "R/2027-03-01T00:00:00Z/P1D" });
    jobs.put_job(&job, PutKind::Any).await.unwrap();
    jobs.command(Command::RunNow {
        job: "once".into(),
        arguments: Vec::new(),
    })
    .await
    .unwrap();
    assert!(run_until(LIMIT, || job_tasks(&c.master, "once") == 1).await);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        c.master.with(|s| s.tasks.len()),
        1,
        "one task for the one run"
    );
    let asked = c.master.with(|s| s.launches_asked.clone());
    assert!(
        asked.iter().all(|id| *id == asked[0]),
        "every launch under one id: {asked:?}"
    );
}
