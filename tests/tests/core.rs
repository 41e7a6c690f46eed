//! The core issue's checks, against real `drover-master`, `drover-agent` and `drover`
//! processes on loopback.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use drover_api::node::NodeState;
use drover_api::task::{
    HealthCheck, HealthProtocol, LaunchBatchRequest, LaunchOutcome, LaunchRequest,
    MAX_LAUNCH_BATCH, PortRequest, Task, TaskDefinition, TaskFilter, TaskId, TaskState,
};
use drover_api::{ErrorCode, Resources};
use drover_cluster_tests::{Cluster, ClusterOptions, bin_path, process_alive, wait_for};

const LONG: Duration = Duration::from_secs(40);

fn definition(name: &str, cmd: &str) -> TaskDefinition {
    TaskDefinition {
        name: name.to_string(),
        cmd: Some(cmd.to_string()),
        resources: Resources::new(0.1, 16.0, 0.0),
        kill_grace_period_seconds: 2.0,
        ..Default::default()
    }
}

async fn launch(cluster: &Cluster, node: &str, def: TaskDefinition) -> Task {
    cluster
        .client
        .launch(&LaunchRequest {
            node: node.to_string(),
            id: None,
            task: def,
        })
        .await
        .unwrap_or_else(|e| panic!("launch refused: {e}"))
}

async fn wait_state(
    cluster: &Cluster,
    id: &TaskId,
    ok: impl Fn(&Task) -> bool,
    what: &str,
) -> Task {
    let deadline = std::time::Instant::now() + LONG;
    let mut last = None;
    while std::time::Instant::now() < deadline {
        if let Ok(t) = cluster.client.task(id).await {
            if ok(&t) {
                return t;
            }
            last = Some(t);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, stdout, _) = cluster.cli(&["tasks", "logs", id.as_str()]);
    let (_, stderr, _) = cluster.cli(&["tasks", "logs", "--stderr", id.as_str()]);
    panic!(
        "{what}: timed out; last seen {last:#?}\n--- task stdout ---\n{stdout}\n--- task stderr ---\n{stderr}\n{}",
        cluster.logs()
    )
}

fn host_cpus() -> u32 {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u32
}

fn host_mem_mb() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// Check 1: two agents register and `drover nodes --json` shows the host's CPUs and memory.
#[tokio::test(flavor = "multi_thread")]
async fn agents_register_with_host_resources() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let nodes = cluster.cli_json(&["nodes"]);
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    for n in nodes {
        let host = &n["host"];
        assert_eq!(host["cpus"].as_u64().unwrap() as u32, host_cpus());
        let mem = host["memTotalMb"].as_f64().unwrap();
        assert!(
            (mem - host_mem_mb()).abs() < host_mem_mb() * 0.02,
            "mem {mem} vs host {}",
            host_mem_mb()
        );
        assert!(n["total"]["cpus"].as_f64().unwrap() > 0.0);
        assert!(n["total"]["mem"].as_f64().unwrap() > 0.0);
        assert!(
            n["total"]["mem"].as_f64().unwrap() < mem,
            "a share of memory is reserved for the host"
        );
        assert_eq!(n["state"], "ready");
        assert!(n["attributes"]["rack"].is_string());
    }
    // The table for people names both nodes.
    let (code, out, _) = cluster.cli(&["nodes"]);
    assert_eq!(code, 0);
    assert!(out.contains("agent-0") && out.contains("agent-1"), "{out}");
}

/// Check 2: a task runs, logs flow, resources are allocated; a launch that does not fit
/// is refused with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn task_runs_logs_and_allocates() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let (code, out, err) = cluster.cli(&[
        "tasks",
        "launch",
        "--node",
        "agent-0",
        "--name",
        "ticker",
        "--cpus",
        "0.25",
        "--mem",
        "64",
        "--",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    assert_eq!(code, 0, "launch failed: {err}");
    let id = TaskId(out.trim().to_string());
    let task = wait_state(
        &cluster,
        &id,
        |t| t.state == TaskState::Running,
        "ticker running",
    )
    .await;
    assert!(process_alive(task.pid.unwrap()));

    // Its logs show the lines.
    let log = wait_for("ticker logs", LONG, || async {
        let (code, out, _) = cluster.cli(&["tasks", "logs", id.as_str()]);
        (code == 0 && out.contains("tick 3")).then_some(out)
    })
    .await;
    assert!(log.starts_with("tick 0"), "{log}");

    // Its resources are allocated on its node.
    let node = cluster.client.node("agent-0").await.unwrap();
    assert!(
        (node.allocated.cpus - 0.25).abs() < 1e-9,
        "{:?}",
        node.allocated
    );
    assert!((node.allocated.mem - 64.0).abs() < 1e-9);
    assert!((node.free.cpus - (node.total.cpus - 0.25)).abs() < 1e-9);

    // A launch that does not fit is refused, with the reason, by the API and the CLI.
    let mut huge = definition("huge", "sleep 100");
    huge.resources.cpus = node.total.cpus + 1.0;
    let err = cluster
        .client
        .launch(&LaunchRequest {
            node: "agent-0".into(),
            id: None,
            task: huge,
        })
        .await
        .unwrap_err();
    let body = err.api_error().unwrap();
    assert_eq!(body.code, ErrorCode::InsufficientResources);
    assert!(body.message.contains("cpus"), "{}", body.message);
    let (code, _, err) = cluster.cli(&[
        "tasks", "launch", "--node", "agent-0", "--mem", "99999999", "--", "sleep", "1",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("mem"), "{err}");
    // Nothing was created by the refusals.
    let tasks = cluster.client.tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
}

/// Check 3: a kill ends the task with SIGTERM; a task that ignores SIGTERM gets SIGKILL
/// after the grace period.
#[tokio::test(flavor = "multi_thread")]
async fn kill_uses_sigterm_then_sigkill() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let polite = launch(&cluster, "agent-0", definition("polite", "exec sleep 1000")).await;
    let stubborn = launch(
        &cluster,
        "agent-1",
        definition("stubborn", "trap '' TERM; while true; do sleep 0.1; done"),
    )
    .await;
    let polite = wait_state(
        &cluster,
        polite.id(),
        |t| t.state == TaskState::Running,
        "polite running",
    )
    .await;
    let stubborn = wait_state(
        &cluster,
        stubborn.id(),
        |t| t.state == TaskState::Running,
        "stubborn running",
    )
    .await;

    let (code, _, err) = cluster.cli(&["tasks", "kill", polite.id().as_str()]);
    assert_eq!(code, 0, "{err}");
    cluster.client.kill(stubborn.id()).await.unwrap();

    let polite_done = wait_state(
        &cluster,
        polite.id(),
        |t| t.state == TaskState::Killed,
        "polite killed",
    )
    .await;
    let stubborn_done = wait_state(
        &cluster,
        stubborn.id(),
        |t| t.state == TaskState::Killed,
        "stubborn killed",
    )
    .await;
    assert_eq!(
        polite_done.exit.and_then(|e| e.signal),
        Some(15),
        "{polite_done:?}"
    );
    assert_eq!(
        stubborn_done.exit.and_then(|e| e.signal),
        Some(9),
        "{stubborn_done:?}"
    );
    assert!(!process_alive(polite.pid.unwrap()));
    assert!(!process_alive(stubborn.pid.unwrap()));

    // Killing it again, or an unknown task, is refused and changes nothing.
    let again = cluster.client.kill(polite.id()).await.unwrap_err();
    assert_eq!(again.status(), Some(409));
    let (code, _, err) = cluster.cli(&["tasks", "kill", "no-such-task"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
}

/// Check 4: SIGKILL the master and start it again: nodes and tasks are still there,
/// agents reconnect, and the task never stopped.
#[tokio::test(flavor = "multi_thread")]
async fn master_restart_keeps_state() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    let task = launch(
        &cluster,
        "agent-1",
        definition("survivor", "exec sleep 1000"),
    )
    .await;
    let task = wait_state(
        &cluster,
        task.id(),
        |t| t.state == TaskState::Running,
        "survivor running",
    )
    .await;
    let pid = task.pid.unwrap();

    cluster.master.kill_hard();
    cluster.master.restart();

    let nodes = cluster.client.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2, "nodes survive a master restart");
    let again = cluster.client.task(task.id()).await.unwrap();
    assert_eq!(again.pid, Some(pid));
    cluster
        .wait_nodes("agents reconnect", |nodes| {
            nodes.len() == 2
                && nodes
                    .iter()
                    .all(|n| n.state == NodeState::Ready && n.last_heartbeat_at > again.updated_at)
        })
        .await;
    let after = wait_state(
        &cluster,
        task.id(),
        |t| t.state == TaskState::Running,
        "still running",
    )
    .await;
    assert_eq!(after.pid, Some(pid));
    assert!(process_alive(pid), "the task's process never stopped");
}

/// Check 5: SIGKILL an agent and start it again: same PID, still running, and its later
/// exit is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn agent_restart_readopts_tasks() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    let stop_file = cluster.dir.path().join("stop-readopt");
    let cmd = format!(
        "while [ ! -e {} ]; do sleep 0.1; done; exit 3",
        stop_file.display()
    );
    let task = launch(&cluster, "agent-0", definition("adoptee", &cmd)).await;
    let task = wait_state(
        &cluster,
        task.id(),
        |t| t.state == TaskState::Running,
        "adoptee running",
    )
    .await;
    let pid = task.pid.unwrap();

    cluster.agents[0].kill_hard();
    assert!(
        process_alive(pid),
        "killing the agent must not kill its tasks"
    );
    cluster.agents[0].restart();

    let agent = drover_api::client::AgentClient::new(&cluster.agents[0].url, None).unwrap();
    let reports = wait_for("restarted agent reports the task", LONG, || async {
        let r = agent.tasks().await.ok()?;
        r.iter().any(|t| &t.id == task.id()).then_some(r)
    })
    .await;
    let report = reports.iter().find(|t| &t.id == task.id()).unwrap();
    assert_eq!(report.pid, Some(pid), "same process, re-adopted");
    assert_eq!(report.state, TaskState::Running);

    std::fs::write(&stop_file, b"").unwrap();
    let done = wait_state(
        &cluster,
        task.id(),
        |t| t.state.is_terminal(),
        "adoptee exit recorded",
    )
    .await;
    assert_eq!(done.state, TaskState::Failed);
    assert_eq!(done.exit.and_then(|e| e.code), Some(3), "{done:?}");
}

/// Check 6: an agent that stays down turns unreachable and its task lost; when it comes
/// back the master tells it to kill that task.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_agent_tasks_are_lost_then_killed() {
    let opts = ClusterOptions {
        heartbeat_interval: 0.3,
        heartbeat_timeout: 2.0,
        ..Default::default()
    };
    let mut cluster = Cluster::start(opts).await;
    let task = launch(&cluster, "agent-1", definition("orphan", "exec sleep 1000")).await;
    let task = wait_state(
        &cluster,
        task.id(),
        |t| t.state == TaskState::Running,
        "orphan running",
    )
    .await;
    let pid = task.pid.unwrap();

    cluster.agents[1].kill_hard();
    cluster
        .wait_nodes("agent-1 unreachable", |nodes| {
            nodes
                .iter()
                .any(|n| n.name == "agent-1" && n.state == NodeState::Unreachable)
        })
        .await;
    wait_state(
        &cluster,
        task.id(),
        |t| t.state == TaskState::Lost,
        "orphan lost",
    )
    .await;
    assert!(
        process_alive(pid),
        "the process still runs on the cut-off host"
    );

    // Launches on an unreachable node are refused.
    let err = cluster
        .client
        .launch(&LaunchRequest {
            node: "agent-1".into(),
            id: None,
            task: definition("x", "true"),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");

    cluster.agents[1].restart();
    cluster
        .wait_nodes("agent-1 back", |nodes| {
            nodes
                .iter()
                .any(|n| n.name == "agent-1" && n.state == NodeState::Ready)
        })
        .await;
    wait_for("the lost task's process is killed", LONG, || async {
        (!process_alive(pid)).then_some(())
    })
    .await;
    let after = cluster.client.task(task.id()).await.unwrap();
    assert_eq!(after.state, TaskState::Lost, "a lost task stays lost");
}

fn check(protocol: HealthProtocol) -> HealthCheck {
    HealthCheck {
        grace_period_seconds: 5.0,
        interval_seconds: 0.3,
        timeout_seconds: 2.0,
        max_consecutive_failures: 2,
        delay_seconds: 0.0,
        ..HealthCheck::new(protocol)
    }
}

/// Check 7: HTTP, TCP and COMMAND health checks turn a task healthy and, when the check
/// fails, unhealthy.
#[tokio::test(flavor = "multi_thread")]
async fn health_checks_follow_the_task() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let hello = bin_path("hello");
    let dir = cluster.dir.path();

    // HTTP: the example service's /health fails while a file exists.
    let http_flag = dir.join("http-fail");
    let mut http = definition("http-checked", &format!("exec {}", hello.display()));
    http.env
        .insert("HELLO_HEALTH_FILE".into(), http_flag.display().to_string());
    http.ports = vec![PortRequest {
        name: Some("http".into()),
        port: 0,
    }];
    http.health_checks = vec![HealthCheck {
        path: Some("/health".into()),
        ..check(HealthProtocol::Http)
    }];

    // TCP: the service listens until a stop file appears, then closes its port.
    let tcp_stop = dir.join("tcp-stop");
    let mut tcp = definition(
        "tcp-checked",
        &format!(
            "{} & child=$!; while [ ! -e {} ]; do sleep 0.1; done; kill $child; wait; exec sleep 1000",
            hello.display(),
            tcp_stop.display()
        ),
    );
    tcp.ports = vec![PortRequest::default()];
    tcp.health_checks = vec![check(HealthProtocol::Tcp)];

    // COMMAND: passes while a file is absent.
    let cmd_flag = dir.join("cmd-fail");
    let mut cmd = definition("cmd-checked", "exec sleep 1000");
    cmd.health_checks = vec![HealthCheck {
        command: Some(format!("test ! -e {}", cmd_flag.display())),
        ..check(HealthProtocol::Command)
    }];

    let tasks = [
        launch(&cluster, "agent-0", http).await,
        launch(&cluster, "agent-1", tcp).await,
        launch(&cluster, "agent-0", cmd).await,
    ];
    for t in &tasks {
        wait_state(
            &cluster,
            t.id(),
            |t| t.state == TaskState::Healthy,
            &format!("{} healthy", t.spec.definition.name),
        )
        .await;
    }
    std::fs::write(&http_flag, b"").unwrap();
    std::fs::write(&tcp_stop, b"").unwrap();
    std::fs::write(&cmd_flag, b"").unwrap();
    for t in &tasks {
        let t = wait_state(
            &cluster,
            t.id(),
            |t| t.state == TaskState::Unhealthy,
            &format!("{} unhealthy", t.spec.definition.name),
        )
        .await;
        let health = t.health.unwrap();
        assert!(!health.alive);
        assert!(health.consecutive_failures >= 2, "{health:?}");
    }
    // The CLI can filter on it.
    let unhealthy = cluster.cli_json(&["tasks", "--state", "unhealthy"]);
    assert_eq!(unhealthy.as_array().unwrap().len(), 3, "{unhealthy}");
}

/// Check 9: a drained node refuses new launches; activating it accepts them again.
#[tokio::test(flavor = "multi_thread")]
async fn drained_node_refuses_launches() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let running = launch(
        &cluster,
        "agent-0",
        definition("before-drain", "exec sleep 1000"),
    )
    .await;
    wait_state(
        &cluster,
        running.id(),
        |t| t.state == TaskState::Running,
        "running before drain",
    )
    .await;

    let (code, _, err) = cluster.cli(&["nodes", "drain", "agent-0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        cluster.client.node("agent-0").await.unwrap().state,
        NodeState::Draining
    );
    let (code, _, err) = cluster.cli(&[
        "tasks", "launch", "--node", "agent-0", "--cpus", "0.1", "--mem", "8", "--", "sleep", "1",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("draining"), "{err}");
    // Draining does not stop what runs.
    let t = cluster.client.task(running.id()).await.unwrap();
    assert_eq!(t.state, TaskState::Running);

    let (code, _, err) = cluster.cli(&["nodes", "activate", "agent-0"]);
    assert_eq!(code, 0, "{err}");
    launch(
        &cluster,
        "agent-0",
        definition("after-drain", "exec sleep 1000"),
    )
    .await;
}

/// `POST /v1/launches`: each launch gets its own outcome, the accepted ones run, a
/// refused one changes nothing, and sending the batch again creates nothing new.
#[tokio::test(flavor = "multi_thread")]
async fn a_launch_batch_runs_what_it_accepts() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let req = |node: &str, id: &str, def: TaskDefinition| LaunchRequest {
        node: node.to_string(),
        id: Some(TaskId(id.to_string())),
        task: def,
    };
    let mut huge = definition("huge", "exec sleep 1000");
    huge.resources = Resources::new(10_000.0, 16.0, 0.0);
    let batch = LaunchBatchRequest {
        launches: vec![
            req("agent-0", "batch-a", definition("a", "exec sleep 1000")),
            req("agent-1", "batch-b", definition("b", "exec sleep 1000")),
            req("agent-0", "batch-huge", huge),
            req(
                "no-such-node",
                "batch-lost",
                definition("c", "exec sleep 1000"),
            ),
        ],
    };
    let out = cluster.client.launch_batch(&batch).await.unwrap();
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(matches!(out[0], LaunchOutcome::Created { .. }), "{out:?}");
    assert!(matches!(out[1], LaunchOutcome::Created { .. }), "{out:?}");
    match (&out[2], &out[3]) {
        (LaunchOutcome::Refused { error: e2 }, LaunchOutcome::Refused { error: e3 }) => {
            assert_eq!(e2.code, ErrorCode::InsufficientResources, "{e2:?}");
            assert_eq!(e3.code, ErrorCode::NotFound, "{e3:?}");
        }
        other => panic!("expected two refusals, got {other:?}"),
    }
    for id in ["batch-a", "batch-b"] {
        wait_state(
            &cluster,
            &TaskId(id.into()),
            |t| t.state == TaskState::Running,
            "a batch launch runs",
        )
        .await;
    }
    let again = cluster.client.launch_batch(&batch).await.unwrap();
    assert!(
        matches!(again[0], LaunchOutcome::Existing { .. }),
        "{again:?}"
    );
    assert!(
        matches!(again[1], LaunchOutcome::Existing { .. }),
        "{again:?}"
    );
    let tasks = cluster.client.tasks(&TaskFilter::default()).await.unwrap();
    let mut ids: Vec<&str> = tasks.iter().map(|t| t.id().as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["batch-a", "batch-b"]);
    // Over the limit: refused as a whole, nothing launched.
    let too_many = LaunchBatchRequest {
        launches: vec![batch.launches[0].clone(); MAX_LAUNCH_BATCH + 1],
    };
    let e = cluster.client.launch_batch(&too_many).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert_eq!(
        cluster
            .client
            .tasks(&TaskFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
}
