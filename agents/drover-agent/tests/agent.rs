//! The whole agent on loopback: its HTTP API (tasks, logs, metrics, token) and the
//! protocol against a small fake master that serves exactly the routes `MasterClient` calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use common::*;
use drover_agent::cli::AgentOptions;
use drover_agent::host::Reservation;
use drover_api::agent::{
    AssignmentsQuery, HeartbeatRequest, HeartbeatResponse, NodeAssignments, RegisterRequest,
    RegisterResponse, TaskAssignment,
};
use drover_api::client::AgentClient;
use drover_api::task::{LogQuery, LogStream, TaskGoal, TaskReport, TaskState};
use drover_api::{PortRange, TaskId};
use futures::StreamExt;
use tokio::sync::Notify;

async fn serve_api(r: drover_agent::TaskRunner, token: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = drover_agent::api::router(r, token, tokio::sync::watch::channel(false).1);
    tokio::spawn(drover_service::http::serve(
        listener,
        router,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

async fn read_logs(c: &AgentClient, id: &str, q: LogQuery) -> String {
    let mut s = c.logs(&TaskId::from(id), &q).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, s.next())
        .await
        .expect("log stream stalled")
    {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn api_serves_tasks_logs_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let base = serve_api(r.clone(), None).await;
    let c = AgentClient::new(&base, None).unwrap();
    r.launch(spec(
        "logs.1",
        "for i in 1 2 3; do echo line $i; done; echo err >&2",
    ));
    wait_terminal(&r, "logs.1").await;
    let tasks = c.tasks().await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].state, TaskState::Finished);
    assert_eq!(
        read_logs(&c, "logs.1", LogQuery::default()).await,
        "line 1\nline 2\nline 3\n"
    );
    let tail = LogQuery {
        offset: Some(-7),
        ..Default::default()
    };
    assert_eq!(read_logs(&c, "logs.1", tail).await, "line 3\n");
    let from = LogQuery {
        offset: Some(7),
        ..Default::default()
    };
    assert_eq!(read_logs(&c, "logs.1", from).await, "line 2\nline 3\n");
    let err = LogQuery {
        stream: LogStream::Stderr,
        ..Default::default()
    };
    assert_eq!(read_logs(&c, "logs.1", err).await, "err\n");
    let missing = c
        .logs(&TaskId::from("nope.1"), &LogQuery::default())
        .await
        .err()
        .unwrap();
    assert_eq!(missing.status(), Some(404));
    let bad = c
        .logs(&TaskId::from("../etc"), &LogQuery::default())
        .await
        .err()
        .unwrap();
    assert_eq!(bad.status(), Some(404));
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("drover_agent_tasks{state=\"finished\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("drover_agent_resident_memory_bytes"),
        "{metrics}"
    );
}

#[tokio::test]
async fn followed_logs_stream_until_the_task_ends() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let base = serve_api(r.clone(), None).await;
    let c = AgentClient::new(&base, None).unwrap();
    r.launch(spec(
        "follow.1",
        "echo first; while [ ! -f go ]; do sleep 0.05; done; echo second",
    ));
    wait_file_contains(&stdout_of(dir.path(), "follow.1"), "first").await;
    let reader = {
        let c = c.clone();
        tokio::spawn(async move {
            read_logs(
                &c,
                "follow.1",
                LogQuery {
                    follow: true,
                    ..Default::default()
                },
            )
            .await
        })
    };
    // The stream stays open while the task runs, then ends once it has drained.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reader.is_finished());
    std::fs::write(dir.path().join("tasks/follow.1/go"), b"").unwrap();
    assert_eq!(reader.await.unwrap(), "first\nsecond\n");
}

#[tokio::test]
async fn api_requires_the_token_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let base = serve_api(r, Some("s3cret".into())).await;
    let anon = AgentClient::new(&base, None).unwrap();
    assert_eq!(anon.tasks().await.unwrap_err().status(), Some(401));
    let ok = AgentClient::new(&base, Some("s3cret".into())).unwrap();
    assert!(ok.tasks().await.unwrap().is_empty());
    assert!(
        reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
}

/// A fake master: records registrations and heartbeats, serves assignments set by the test.
struct FakeMaster {
    registrations: Mutex<Vec<RegisterRequest>>,
    heartbeats: Mutex<Vec<HeartbeatRequest>>,
    assignments: Mutex<NodeAssignments>,
    changed: Notify,
    /// Answer the next heartbeat with `registered: false`.
    forget_node: Mutex<bool>,
}

impl FakeMaster {
    fn set(&self, rev: &str, tasks: Vec<TaskAssignment>) {
        *self.assignments.lock().unwrap() = NodeAssignments {
            revision: rev.into(),
            tasks,
        };
        self.changed.notify_waiters();
    }

    fn last_reports(&self) -> Option<Vec<TaskReport>> {
        self.heartbeats
            .lock()
            .unwrap()
            .last()
            .map(|h| h.tasks.clone())
    }
}

async fn start_master(listener: tokio::net::TcpListener) -> Arc<FakeMaster> {
    let m = Arc::new(FakeMaster {
        registrations: Mutex::default(),
        heartbeats: Mutex::default(),
        assignments: Mutex::new(NodeAssignments {
            revision: "0".into(),
            tasks: vec![],
        }),
        changed: Notify::new(),
        forget_node: Mutex::default(),
    });
    let app =
        axum::Router::new()
            .route(
                "/v1/agents/register",
                post(
                    |State(m): State<Arc<FakeMaster>>,
                     axum::Json(req): axum::Json<RegisterRequest>| async move {
                        m.registrations.lock().unwrap().push(req);
                        axum::Json(RegisterResponse {
                            heartbeat_interval_ms: 200,
                        })
                    },
                ),
            )
            .route(
                "/v1/agents/{name}/heartbeat",
                post(
                    |State(m): State<Arc<FakeMaster>>,
                     Path(_name): Path<String>,
                     axum::Json(req): axum::Json<HeartbeatRequest>| async move {
                        m.heartbeats.lock().unwrap().push(req);
                        let forget = std::mem::take(&mut *m.forget_node.lock().unwrap());
                        axum::Json(HeartbeatResponse {
                            registered: !forget,
                        })
                    },
                ),
            )
            .route(
                "/v1/agents/{name}/assignments",
                get(
                    |State(m): State<Arc<FakeMaster>>,
                     Path(_name): Path<String>,
                     Query(q): Query<AssignmentsQuery>| async move {
                        let changed = m.changed.notified();
                        let current = m.assignments.lock().unwrap().clone();
                        if q.after.as_deref() == Some(current.revision.as_str()) {
                            let _ = tokio::time::timeout(Duration::from_secs(1), changed).await;
                        }
                        axum::Json(m.assignments.lock().unwrap().clone())
                    },
                ),
            )
            .with_state(m.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    m
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report_of(reports: &[TaskReport], id: &str) -> Option<TaskReport> {
    reports.iter().find(|r| r.id.as_str() == id).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_follows_the_master_and_survives_its_absence() {
    let dir = tempfile::tempdir().unwrap();
    // The master's port is reserved now but served only later: the agent must keep trying.
    let master_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master_addr = master_listener.local_addr().unwrap();
    drop(master_listener);
    let agent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent_listener.local_addr().unwrap();
    let opts = AgentOptions {
        master: format!("http://{master_addr}"),
        advertise: format!("http://{agent_addr}"),
        work_dir: dir.path().to_path_buf(),
        name: "node-a".into(),
        attributes: BTreeMap::from([("rack".to_string(), "r1".to_string())]),
        ports: PortRange {
            begin: 31000,
            end: 31010,
        },
        reserved: Reservation {
            cpus: Some(0.5),
            mem: None,
            disk: None,
        },
        token: None,
        resource_interval: Duration::from_millis(200),
        shim_exe: env!("CARGO_BIN_EXE_drover-agent").into(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(drover_agent::run(agent_listener, opts, async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let m = start_master(tokio::net::TcpListener::bind(master_addr).await.unwrap()).await;

    let reg = eventually("registration", || {
        m.registrations.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(reg.name, "node-a");
    assert_eq!(reg.address, format!("http://{agent_addr}"));
    assert_eq!(reg.attributes["rack"], "r1");
    assert_eq!(reg.reserved.cpus, 0.5);
    assert!(reg.total.cpus >= 0.5 && reg.total.mem > 0.0);
    assert_eq!(
        reg.ports,
        PortRange {
            begin: 31000,
            end: 31010
        }
    );
    assert!(reg.host.cpus >= 1);

    // Launch through the assignments.
    let mut web = spec("web.1", "echo serving; sleep 60");
    web.node = "node-a".into();
    m.set(
        "1",
        vec![TaskAssignment {
            spec: web.clone(),
            goal: TaskGoal::Run,
        }],
    );
    eventually("web.1 running in a heartbeat", || {
        m.last_reports()
            .and_then(|r| report_of(&r, "web.1"))
            .filter(|t| t.state == TaskState::Running)
    })
    .await;

    // The master forgets the node: the agent registers again, reporting its task.
    *m.forget_node.lock().unwrap() = true;
    let rereg = eventually("re-registration", || {
        m.registrations.lock().unwrap().get(1).cloned()
    })
    .await;
    assert_eq!(
        report_of(&rereg.tasks, "web.1").unwrap().state,
        TaskState::Running
    );

    // Kill through the assignments.
    m.set(
        "2",
        vec![TaskAssignment {
            spec: web.clone(),
            goal: TaskGoal::Kill,
        }],
    );
    eventually("web.1 killed in a heartbeat", || {
        m.last_reports()
            .and_then(|r| report_of(&r, "web.1"))
            .filter(|t| t.state == TaskState::Killed)
    })
    .await;

    // Dropped from the assignments once terminal: no longer reported.
    m.set("3", vec![]);
    eventually("web.1 forgotten", || {
        m.last_reports().filter(|r| r.is_empty())
    })
    .await;

    // The agent's own API works all along.
    let c = AgentClient::new(&format!("http://{agent_addr}"), None).unwrap();
    assert!(c.tasks().await.unwrap().is_empty());
    assert_eq!(
        read_logs(&c, "web.1", LogQuery::default()).await,
        "serving\n"
    );

    let _ = stop_tx.send(());
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Starts the real binary against `master`; returns the child and its API base URL.
fn start_binary(master: &str, work: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_drover-agent"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--master",
            master,
            "--name",
            "node-b",
            "--work-dir",
        ])
        .arg(work)
        .env("RUST_LOG", "warn")
        .env("DROVER_AGENT_RESOURCE_INTERVAL", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_a_sigkilled_agent_binary() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master = format!("http://{}", listener.local_addr().unwrap());
    let m = start_master(listener).await;
    let mut web = spec(
        "web.2",
        "echo up; while [ ! -f stop ]; do sleep 0.05; done; env",
    );
    web.node = "node-b".into();
    m.set(
        "1",
        vec![TaskAssignment {
            spec: web.clone(),
            goal: TaskGoal::Run,
        }],
    );

    let (mut first, _) = start_binary(&master, dir.path());
    let running = eventually("web.2 running", || {
        m.last_reports()
            .and_then(|r| report_of(&r, "web.2"))
            .filter(|t| t.state == TaskState::Running)
    })
    .await;
    let pid = running.pid.unwrap();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the task died with the agent"
    );

    let registered_before = m.registrations.lock().unwrap().len();
    let (mut second, _) = start_binary(&master, dir.path());
    let rereg = eventually("re-registration", || {
        m.registrations
            .lock()
            .unwrap()
            .get(registered_before)
            .cloned()
    })
    .await;
    let adopted = report_of(&rereg.tasks, "web.2").unwrap();
    assert_eq!(
        (adopted.state, adopted.pid),
        (TaskState::Running, Some(pid)),
        "{adopted:?}"
    );

    std::fs::write(dir.path().join("tasks/web.2/stop"), b"").unwrap();
    let done = eventually("web.2 finished", || {
        m.last_reports()
            .and_then(|r| report_of(&r, "web.2"))
            .filter(|t| t.state.is_terminal())
    })
    .await;
    assert_eq!(done.state, TaskState::Finished, "{done:?}");
    // The agent's own settings never reach the task's environment.
    let out = std::fs::read_to_string(dir.path().join("tasks/web.2/stdout")).unwrap();
    assert!(out.contains("DROVER_TASK_ID=web.2"), "{out}");
    assert!(
        !out.contains("DROVER_AGENT_") && !out.contains("RUST_LOG"),
        "{out}"
    );
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test]
async fn shutdown_ends_followed_logs() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = AgentOptions {
        master: "http://127.0.0.1:1".into(),
        advertise: format!("http://{addr}"),
        work_dir: dir.path().to_path_buf(),
        name: "node-c".into(),
        attributes: BTreeMap::new(),
        ports: PortRange::default(),
        reserved: Reservation::default(),
        token: None,
        resource_interval: Duration::from_secs(5),
        shim_exe: env!("CARGO_BIN_EXE_drover-agent").into(),
    };
    // A task from an earlier run, still going: the agent re-adopts it at start.
    let r = runner(dir.path());
    r.launch(spec("forever.1", "echo hi; sleep 60"));
    wait_state(&r, "forever.1", TaskState::Running).await;
    r.detach();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(drover_agent::run(listener, opts, async move {
        let _ = stop_rx.await;
    }));
    let c = AgentClient::new(&format!("http://{addr}"), None).unwrap();
    let follow = LogQuery {
        follow: true,
        ..Default::default()
    };
    let mut stream = c.logs(&TaskId::from("forever.1"), &follow).await.unwrap();
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"hi\n");
    let _ = stop_tx.send(());
    // The agent stops although the task (and so the follow) would go on.
    tokio::time::timeout(WAIT, agent)
        .await
        .expect("shutdown waited on a followed log")
        .unwrap()
        .unwrap();
    // The task itself is untouched by the agent's shutdown.
    let pid = r.report(&TaskId::from("forever.1")).unwrap().pid.unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}
