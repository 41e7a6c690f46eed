//! Starts the real master in-process on 127.0.0.1:0 and plays an agent against it.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_api::agent::{HeartbeatRequest, RegisterRequest};
use drover_api::client::MasterClient;
use drover_api::node::HostInfo;
use drover_api::task::{LaunchRequest, TaskDefinition, TaskReport};
use drover_api::{PortRange, Resources, TaskId, TaskState};
use tokio::sync::oneshot;

/// A running master.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory.
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), drover_master::RunError>>>,
}

impl Server {
    /// Starts a master on `dir` with a 0.3 s heartbeat interval and a 30 s timeout, so a
    /// slow, busy test machine never turns a test's node unreachable by accident.
    pub async fn start(dir: &Path) -> Server {
        Self::start_with(dir, None, Duration::from_secs(30)).await
    }

    /// Starts a master whose nodes go unreachable after 1 s of silence.
    pub async fn start_fast_failure(dir: &Path) -> Server {
        Self::start_with(dir, None, Duration::from_secs(1)).await
    }

    /// Starts a master with a token and a heartbeat timeout.
    pub async fn start_with(
        dir: &Path,
        token: Option<&str>,
        heartbeat_timeout: Duration,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = drover_master::Config {
            data_dir: dir.to_path_buf(),
            heartbeat_interval: Duration::from_millis(300),
            heartbeat_timeout,
            task_history: drover_service::retention::Retention {
                count: 1000,
                max_age: drover_service::retention::DEFAULT_MAX_AGE,
            },
            token: token.map(String::from),
            init: true,
            connections: Default::default(),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(drover_master::run(listener, config, async move {
            let _ = rx.await;
        }));
        let server = Server {
            url,
            dir: dir.to_path_buf(),
            stop: Some(tx),
            handle: Some(handle),
        };
        let http = reqwest::Client::new();
        wait_for(|| {
            let http = http.clone();
            let url = format!("{}/health", server.url);
            async move {
                http.get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        server
    }

    /// A client without a token.
    pub fn client(&self) -> MasterClient {
        MasterClient::new(&self.url, None).unwrap()
    }

    /// Shuts the server down and waits until `run` has returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("server did not stop")
                .unwrap()
                .unwrap();
        }
    }
}

/// Polls `cond` every 50 ms until it holds; fails after a generous deadline.
pub async fn wait_for<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A registration for node `name`: 2 cpus, 1024 MiB, 1000 MiB disk, ports 31000-31002.
pub fn register_req(name: &str, tasks: Vec<TaskReport>) -> RegisterRequest {
    RegisterRequest {
        name: name.into(),
        address: "http://127.0.0.1:9".into(),
        version: "0.1.0".into(),
        attributes: Default::default(),
        capabilities: vec![],
        total: Resources::new(2.0, 1024.0, 1000.0),
        reserved: Resources::new(0.5, 256.0, 0.0),
        ports: PortRange {
            begin: 31000,
            end: 31002,
        },
        host: HostInfo {
            hostname: name.into(),
            cpus: 2,
            ..Default::default()
        },
        max_tasks: None,
        tasks,
        specs: vec![],
        cluster_id: None,
    }
}

/// A heartbeat carrying `tasks`.
pub fn heartbeat_req(tasks: Vec<TaskReport>) -> HeartbeatRequest {
    HeartbeatRequest {
        host: HostInfo {
            cpu_usage_percent: 12.5,
            ..Default::default()
        },
        tasks,
    }
}

/// A report of task `id` in `state`.
pub fn report(id: &TaskId, state: TaskState) -> TaskReport {
    TaskReport {
        id: id.clone(),
        state,
        pid: Some(4242),
        exit: None,
        message: None,
        started_at: None,
        finished_at: None,
        health: None,
    }
}

/// A launch of a `sleep` with `cpus` and `mem`, asking for one dynamic port.
pub fn launch_req(node: &str, cpus: f64, mem: f64) -> LaunchRequest {
    LaunchRequest {
        node: node.into(),
        id: None,
        task: TaskDefinition {
            name: "/prod/web".into(),
            cmd: Some("sleep 1000".into()),
            resources: Resources::new(cpus, mem, 0.0),
            ports: vec![drover_api::task::PortRequest {
                name: Some("http".into()),
                port: 0,
            }],
            kill_grace_period_seconds: 5.0,
            ..Default::default()
        },
    }
}
