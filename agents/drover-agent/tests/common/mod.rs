//! Helpers shared by the integration tests: a runner over a temporary work dir that
//! spawns tasks through the real `drover-agent shim`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use drover_agent::{RunnerConfig, TaskRunner};
use drover_api::TaskId;
use drover_api::task::{TaskDefinition, TaskReport, TaskSpec, TaskState};

/// Generous: these bound waits for things that normally take milliseconds, on a shared
/// two-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn runner(work_dir: &Path) -> TaskRunner {
    let mut cfg = RunnerConfig::new(work_dir, env!("CARGO_BIN_EXE_drover-agent"), "127.0.0.1");
    cfg.poll_interval = Duration::from_millis(50);
    TaskRunner::start(cfg).unwrap()
}

pub fn spec(id: &str, cmd: &str) -> TaskSpec {
    TaskSpec {
        id: TaskId::from(id),
        node: "test".into(),
        definition: TaskDefinition {
            name: id.split('.').next().unwrap_or(id).into(),
            cmd: Some(cmd.into()),
            kill_grace_period_seconds: 5.0,
            ..Default::default()
        },
        host_ports: vec![],
    }
}

pub async fn wait_state(r: &TaskRunner, id: &str, want: TaskState) -> TaskReport {
    let id = TaskId::from(id);
    match r.wait_for(&id, WAIT, |t| t.state == want).await {
        Some(rep) => rep,
        None => panic!("task {id} never reached {want}; now {:?}", r.report(&id)),
    }
}

pub async fn wait_terminal(r: &TaskRunner, id: &str) -> TaskReport {
    let id = TaskId::from(id);
    match r.wait_for(&id, WAIT, |t| t.state.is_terminal()).await {
        Some(rep) => rep,
        None => panic!("task {id} never ended; now {:?}", r.report(&id)),
    }
}

/// Waits until `path` holds `needle` (a task's output arrives asynchronously).
pub async fn wait_file_contains(path: &Path, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never contained {needle:?}: {text:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn stdout_of(work_dir: &Path, id: &str) -> std::path::PathBuf {
    work_dir.join("tasks").join(id).join("stdout")
}
