//! The master's and the scheduler's data dirs on small tmpfs mounts that fill up, then
//! get room again: while full, writes are refused with 503 and `/health` answers 503
//! with the cause; once there is room, both take writes again without a restart, and
//! a task that died meanwhile is recorded and replaced. Needs root (to mount tmpfs);
//! skipped otherwise.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drover_api::meta::Health;
use drover_api::task::{LaunchRequest, Task, TaskDefinition, TaskFilter};
use drover_api::{ErrorCode, Resources};
use drover_cluster_tests::teardown::{self, Teardown};
use drover_cluster_tests::{Cluster, ClusterOptions, not_root, process_alive, skipped, wait_for};
use serde_json::json;

const LONG: Duration = Duration::from_secs(90);
const APP: &str = "/disk/sleeper";

/// A tmpfs mounted over a directory, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` on `dir`, keeping what `dir` held.
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        let saved = dir.with_extension("saved");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::rename(dir, &saved).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        teardown::run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            dir.to_str().unwrap(),
        ])
        .unwrap();
        teardown::run(&[
            "cp",
            "-a",
            &format!("{}/.", saved.display()),
            dir.to_str().unwrap(),
        ])
        .unwrap();
        Mount(dir.to_path_buf())
    }

    fn filler(&self) -> PathBuf {
        self.0.join("filler")
    }

    /// Writes zeros until the file system is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.filler()).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write(&block).is_ok_and(|n| n > 0) {}
        while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let mut t = Teardown::new(format!("tmpfs on {}", self.0.display()));
        let dir = self.0.clone();
        t.step("unmount", move || teardown::unmount(&dir));
        t.finish();
    }
}

async fn health(url: &str) -> (u16, Health) {
    let resp = reqwest::get(format!("{url}/health")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A short task with a large environment: each accepted launch grows the master's store.
fn bulky_launch(i: usize) -> LaunchRequest {
    let mut task = TaskDefinition {
        name: format!("bulky-{i}"),
        cmd: Some("true".into()),
        resources: Resources::new(0.01, 1.0, 0.0),
        kill_grace_period_seconds: 1.0,
        ..Default::default()
    };
    task.env.insert("PAD".into(), "x".repeat(64 * 1024));
    LaunchRequest {
        node: "agent-0".into(),
        id: None,
        task,
    }
}

/// A job far in the future with a large description: each one grows the scheduler's
/// store.
fn bulky_job(i: usize) -> serde_json::Value {
    json!({
        "name": format!("bulky-{i}"),
        "command": "true",
        "schedule": "R/2099-01-01T00:00:00Z/PT1H",
        "cpus": 0.01,
        "mem": 1,
        "description": "x".repeat(64 * 1024),
    })
}

async fn running(c: &Cluster) -> Vec<Task> {
    c.scheduler_client()
        .app_tasks(APP)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.state == drover_api::TaskState::Running)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn full_data_dirs_refuse_writes_then_everything_resumes_without_a_restart() {
    if let Some(why) = not_root() {
        skipped(
            "full_data_dirs_refuse_writes_then_everything_resumes_without_a_restart",
            why,
        );
        return;
    }
    let mut c = Cluster::start(ClusterOptions {
        agents: 1,
        ..Default::default()
    })
    .await;
    // The master's store moves onto a tmpfs; the scheduler starts on one.
    c.master.stop();
    let master_fs = Mount::tmpfs(&c.dir.path().join("master"), "24m");
    c.master.restart();
    let scheduler_fs = Mount::tmpfs(&c.dir.path().join("scheduler"), "24m");
    c.start_scheduler(&[]);
    let (master_pid, scheduler_pid) = (c.master.pid(), c.scheduler.as_ref().unwrap().pid());
    c.wait_nodes("the agent registered again", |n| n.len() == 1)
        .await;

    let sched = c.scheduler_client();
    sched
        .create_app(
            &json!({"id": APP, "cmd": "exec sleep 6000", "instances": 2, "cpus": 0.01, "mem": 8,
                    "backoffSeconds": 0.2, "taskKillGracePeriodSeconds": 1}),
            false,
        )
        .await
        .unwrap();
    let before = wait_for("2 instances running", LONG, || async {
        let t = running(&c).await;
        (t.len() == 2 && t.iter().all(|t| t.pid.is_some())).then_some(t)
    })
    .await;

    master_fs.fill();
    scheduler_fs.fill();

    // Writes that need room fail; the first failure takes the store down.
    let mut accepted = 0;
    let mut refusal = None;
    for i in 0..500 {
        match c.client.launch(&bulky_launch(i)).await {
            Ok(_) => accepted += 1,
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("a launch is refused once the master's disk is full");
    assert_eq!(refusal.status(), Some(503), "{refusal}");
    eprintln!("master: {accepted} bulky launches accepted before the disk was full");
    let (status, body) = health(&c.master.url).await;
    assert_eq!(status, 503, "master /health while full: {body:?}");
    assert!(body.message.is_some(), "{body:?}");
    let again = c.client.launch(&bulky_launch(1000)).await.unwrap_err();
    assert_eq!(
        again.api_error().map(|e| e.code),
        Some(ErrorCode::Unavailable),
        "{again}"
    );

    let mut jobs_accepted = 0;
    let mut job_refusal = None;
    for i in 0..500 {
        match sched.put_job(&bulky_job(i)).await {
            Ok(_) => jobs_accepted += 1,
            Err(e) => {
                job_refusal = Some(e);
                break;
            }
        }
    }
    let job_refusal = job_refusal.expect("a job is refused once the scheduler's disk is full");
    assert_eq!(job_refusal.status(), Some(503), "{job_refusal}");
    eprintln!("scheduler: {jobs_accepted} bulky jobs accepted before the disk was full");
    let (status, body) = health(&c.scheduler_url()).await;
    assert_eq!(status, 503, "scheduler /health while full: {body:?}");

    // A task dies while nothing can be written.
    let victim = &before[0];
    teardown::signal(victim.pid.unwrap(), nix::sys::signal::Signal::SIGKILL).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    master_fs.free();
    scheduler_fs.free();
    let freed = Instant::now();
    for url in [c.master.url.clone(), c.scheduler_url()] {
        wait_for(&format!("{url}/health answers 200 again"), LONG, || {
            let url = url.clone();
            async move { (health(&url).await.0 == 200).then_some(()) }
        })
        .await;
    }
    eprintln!(
        "both /health answered 200 {:.1} s after the disks got room",
        freed.elapsed().as_secs_f64()
    );

    // The death that happened meanwhile is recorded, and the instance replaced.
    wait_for("the killed task recorded as ended", LONG, || async {
        let t = c.client.task(victim.id()).await.ok()?;
        t.state.is_terminal().then_some(())
    })
    .await;
    wait_for("the app back at 2 running instances", LONG, || async {
        let t = running(&c).await;
        (t.len() == 2 && t.iter().all(|t| t.id() != victim.id())).then_some(())
    })
    .await;
    c.client.launch(&bulky_launch(2000)).await.unwrap();
    sched.put_job(&bulky_job(2000)).await.unwrap();
    assert_eq!(
        (c.master.pid(), c.scheduler.as_ref().unwrap().pid()),
        (master_pid, scheduler_pid),
        "nothing restarted"
    );
    assert!(process_alive(master_pid) && process_alive(scheduler_pid));

    // Cleanup: stop the app's tasks, which outlive their agent by design.
    let _ = sched.delete_app(APP, true).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let filter = TaskFilter {
            active: Some(true),
            ..Default::default()
        };
        match c.client.tasks(&filter).await {
            Ok(t) if t.is_empty() => break,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
