//! The whole agent on loopback: its HTTP API (tasks, logs, metrics, token) and the
//! protocol against the real master, run in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use drover_agent::cli::AgentOptions;
use drover_agent::host::Reservation;
use drover_api::client::{AgentClient, MasterClient};
use drover_api::task::{
    LaunchRequest, LogQuery, LogStream, Task, TaskDefinition, TaskReport, TaskState,
};
use drover_api::{PortRange, TaskId};
use futures::StreamExt;

async fn serve_api(r: drover_agent::TaskRunner, token: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = drover_agent::api::router(r, token, tokio::sync::watch::channel(false).1);
    tokio::spawn(drover_service::http::serve(
        listener,
        router,
        Default::default(),
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

/// A real master, in-process, on `listener` with its state in `data_dir`; stopped by
/// sending on (or dropping) the returned sender.
fn start_master(
    listener: tokio::net::TcpListener,
    data_dir: &std::path::Path,
) -> (
    MasterClient,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = drover_master::Config {
        data_dir: data_dir.to_path_buf(),
        heartbeat_interval: Duration::from_millis(200),
        // Long: a busy test machine must not turn the node unreachable by accident.
        heartbeat_timeout: Duration::from_secs(30),
        task_history: drover_service::retention::Retention {
            count: 1000,
            max_age: drover_service::retention::DEFAULT_MAX_AGE,
        },
        token: None,
        init: true,
        connections: Default::default(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        drover_master::run(listener, config, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (MasterClient::new(&url, None).unwrap(), tx, handle)
}

async fn eventually_async<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn task_in_state(m: &MasterClient, id: &TaskId, state: TaskState) -> Task {
    eventually_async(&format!("{id} {state}"), || async {
        m.task(id).await.ok().filter(|t| t.state == state)
    })
    .await
}

fn report_of(reports: &[TaskReport], id: &str) -> Option<TaskReport> {
    reports.iter().find(|r| r.id.as_str() == id).cloned()
}

fn launch_request(node: &str, cmd: &str) -> LaunchRequest {
    LaunchRequest {
        node: node.into(),
        id: None,
        task: TaskDefinition {
            name: "web".into(),
            cmd: Some(cmd.into()),
            resources: drover_api::Resources::new(0.1, 16.0, 0.0),
            kill_grace_period_seconds: 2.0,
            ..Default::default()
        },
    }
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
        work_dir: dir.path().join("agent"),
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
        docker_socket: None,
        join_new_cluster: false,
        task_users: drover_agent::task_user::TaskUsers::as_agent(drover_agent::task_user::current()),
        connections: Default::default(),
        max_tasks: 100,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(drover_agent::run(agent_listener, opts, async move {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (m, stop_master, master) = start_master(
        tokio::net::TcpListener::bind(master_addr).await.unwrap(),
        &dir.path().join("master-a"),
    );

    let node = eventually_async("registration", || async { m.node("node-a").await.ok() }).await;
    assert_eq!(node.address, format!("http://{agent_addr}"));
    assert_eq!(node.attributes["rack"], "r1");
    assert_eq!(node.reserved.cpus, 0.5);
    assert!(node.total.cpus >= 0.5 && node.total.mem > 0.0);
    assert_eq!(
        node.ports,
        PortRange {
            begin: 31000,
            end: 31010
        }
    );
    assert!(node.host.cpus >= 1);

    // Launch, then kill, through the master.
    let web = m
        .launch(&launch_request("node-a", "echo serving; sleep 60"))
        .await
        .unwrap();
    task_in_state(&m, web.id(), TaskState::Running).await;
    m.kill(web.id()).await.unwrap();
    task_in_state(&m, web.id(), TaskState::Killed).await;

    // The agent's own API serves the ended task's logs.
    let c = AgentClient::new(&format!("http://{agent_addr}"), None).unwrap();
    assert_eq!(
        read_logs(&c, web.id().as_str(), LogQuery::default()).await,
        "serving\n"
    );

    // A master that lost its state (a fresh data dir on the same address, initialised as
    // a new cluster) is refused: the task it never placed keeps running.
    let other = m
        .launch(&launch_request("node-a", "exec sleep 60"))
        .await
        .unwrap();
    let other = task_in_state(&m, other.id(), TaskState::Running).await;
    let _ = stop_master.send(());
    master.await.unwrap();
    let (m2, stop_master2, master2) = start_master(
        tokio::net::TcpListener::bind(master_addr).await.unwrap(),
        &dir.path().join("master-b"),
    );
    let pid = other.pid.unwrap();
    let alive =
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    // The new master sees the agent try and refuses it (409), so it never knows the node.
    let log_dir = dir.path().join("agent");
    assert!(log_dir.join("cluster-id").exists());
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            m2.node("node-a").await.is_err(),
            "a foreign master must not take the node"
        );
        assert!(alive(), "the task must keep running");
    }
    let _ = stop_master2.send(());
    master2.await.unwrap();

    // Its own master back: the node registers again and the task is still there.
    let (m3, stop_master3, master3) = start_master(
        tokio::net::TcpListener::bind(master_addr).await.unwrap(),
        &dir.path().join("master-a"),
    );
    eventually_async("re-registration with the cluster's own master", || async {
        let t = m3.task(other.id()).await.ok()?;
        (t.state == TaskState::Running && t.pid == Some(pid)).then_some(())
    })
    .await;
    assert!(alive());

    let _ = stop_tx.send(());
    tokio::time::timeout(WAIT, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = stop_master3.send(());
    master3.await.unwrap();
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
    let (m, stop_master, master_task) = start_master(listener, &dir.path().join("master"));
    let work = dir.path().join("agent");

    let (mut first, _) = start_binary(&master, &work);
    eventually_async("node-b registered", || async {
        m.node("node-b").await.ok()
    })
    .await;
    let web = m
        .launch(&launch_request(
            "node-b",
            "echo up; while [ ! -f stop ]; do sleep 0.05; done; env",
        ))
        .await
        .unwrap();
    let running = task_in_state(&m, web.id(), TaskState::Running).await;
    let pid = running.pid.unwrap();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the task died with the agent"
    );

    let (mut second, base) = start_binary(&master, &work);
    let agent = AgentClient::new(&base, None).unwrap();
    let adopted = eventually_async("the restarted agent reports the task", || async {
        agent
            .tasks()
            .await
            .ok()
            .and_then(|r| report_of(&r, web.id().as_str()))
    })
    .await;
    assert_eq!(
        (adopted.state, adopted.pid),
        (TaskState::Running, Some(pid)),
        "{adopted:?}"
    );

    std::fs::write(work.join(format!("tasks/{}/stop", web.id())), b"").unwrap();
    let done = task_in_state(&m, web.id(), TaskState::Finished).await;
    assert_eq!(done.pid, Some(pid));
    // The agent's own settings never reach the task's environment.
    let out = std::fs::read_to_string(work.join(format!("tasks/{}/stdout", web.id()))).unwrap();
    assert!(
        out.contains(&format!("DROVER_TASK_ID={}", web.id())),
        "{out}"
    );
    assert!(
        !out.contains("DROVER_AGENT_") && !out.contains("RUST_LOG"),
        "{out}"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    let _ = stop_master.send(());
    master_task.await.unwrap();
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
        docker_socket: None,
        join_new_cluster: false,
        task_users: drover_agent::task_user::TaskUsers::as_agent(drover_agent::task_user::current()),
        connections: Default::default(),
        max_tasks: 100,
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
