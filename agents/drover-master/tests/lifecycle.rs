//! The master over real HTTP on loopback, with the test playing the agent.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use drover_api::agent::AssignmentsQuery;
use drover_api::event::{Event, EventKind};
use drover_api::node::NodeState;
use drover_api::task::{TaskFilter, TaskGoal};
use drover_api::{ErrorCode, TaskState};
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_is_assigned_allocated_and_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let m = server.client();
    let reg = m.register(&register_req("n1", vec![])).await.unwrap();
    assert_eq!(reg.heartbeat_interval_ms, 300);

    let first = m
        .assignments("n1", &AssignmentsQuery::default())
        .await
        .unwrap();
    assert!(first.tasks.is_empty());

    // A long poll on the current revision waits, and a launch wakes it.
    let poller = {
        let m = m.clone();
        let after = first.revision.clone();
        tokio::spawn(async move {
            m.assignments(
                "n1",
                &AssignmentsQuery {
                    after: Some(after),
                    wait: Some(30),
                },
            )
            .await
        })
    };
    let task = m.launch(&launch_req("n1", 0.5, 128.0)).await.unwrap();
    assert!(
        task.spec.id.as_str().starts_with("prod_web."),
        "{}",
        task.spec.id
    );
    assert_eq!(task.state, TaskState::Staging);
    assert_eq!(task.spec.host_ports, vec![31000]);
    let woke = tokio::time::timeout(Duration::from_secs(20), poller)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(woke.revision, first.revision);
    assert_eq!(woke.tasks.len(), 1);
    assert_eq!(
        (woke.tasks[0].spec.id.clone(), woke.tasks[0].goal),
        (task.spec.id.clone(), TaskGoal::Run)
    );

    let node = m.node("n1").await.unwrap();
    assert_eq!(node.allocated.cpus, 0.5);
    assert_eq!(node.free.cpus, 1.5);
    assert_eq!(node.reserved.cpus, 0.5);
    assert_eq!(node.ports_allocated, 1);
    assert_eq!(node.active_tasks, 1);

    // The agent reports it running, then healthy.
    m.heartbeat(
        "n1",
        &heartbeat_req(vec![report(&task.spec.id, TaskState::Running)]),
    )
    .await
    .unwrap();
    let t = m.task(&task.spec.id).await.unwrap();
    assert_eq!((t.state, t.pid), (TaskState::Running, Some(4242)));
    assert!(t.started_at.is_some());
    assert_eq!(
        m.node("n1").await.unwrap().host.cpu_usage_percent,
        12.5,
        "live host facts come from heartbeats"
    );

    // A long poll on an unchanged revision answers when its wait ends.
    let same = m
        .assignments(
            "n1",
            &AssignmentsQuery {
                after: Some(woke.revision.clone()),
                wait: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(same.revision, woke.revision);

    // A caller-given id makes retries idempotent: same request, same task, 200.
    let mut req = launch_req("n1", 0.25, 64.0);
    req.id = Some("job.run-1".into());
    let http = reqwest::Client::new();
    let r1 = http
        .post(format!("{}/v1/tasks", server.url))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(r1.status().as_u16(), 201);
    let r2 = http
        .post(format!("{}/v1/tasks", server.url))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status().as_u16(), 200);
    req.task.resources.cpus = 0.3;
    let e = m.launch(&req).await.unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert_eq!(
        e.api_error().map(|body| body.code),
        Some(ErrorCode::AlreadyExists)
    );
    // Schedulers from before that code read it as they always did: a conflict on the id.
    let raw: serde_json::Value = http
        .post(format!("{}/v1/tasks", server.url))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&raw["code"], &raw["field"], &raw["reason"]),
        (
            &serde_json::json!("conflict"),
            &serde_json::json!("id"),
            &serde_json::json!("already_exists")
        ),
        "{raw}"
    );

    let active = m
        .tasks(&TaskFilter {
            active: Some(true),
            node: Some("n1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 2);
    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("drover_master_nodes{state=\"ready\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("drover_master_tasks{state=\"running\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("drover_master_resources_allocated{resource=\"cpus\"} 0.75"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_and_drain_activate_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let m = server.client();
    m.register(&register_req("n1", vec![])).await.unwrap();

    let e = m.launch(&launch_req("n1", 3.0, 10.0)).await.unwrap_err();
    let body = e.api_error().unwrap();
    assert_eq!(
        (e.status(), body.code),
        (Some(409), ErrorCode::InsufficientResources)
    );
    assert!(
        body.message.contains("cpus: wants 3 but 2 free"),
        "{}",
        body.message
    );

    let e = m
        .launch(&launch_req("nowhere", 0.1, 10.0))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.api_error().unwrap().field.as_deref(), Some("node"));
    assert!(e.api_error().unwrap().message.contains("nowhere"));

    let mut docker = launch_req("n1", 0.1, 10.0);
    docker.task.container =
        Some(serde_json::json!({"type": "DOCKER", "docker": {"image": "nginx"}}));
    let e = m.launch(&docker).await.unwrap_err();
    assert!(
        e.api_error()
            .unwrap()
            .message
            .contains("cannot run containers")
    );

    // Ports: three in the range, the fourth is refused.
    for _ in 0..3 {
        m.launch(&launch_req("n1", 0.1, 10.0)).await.unwrap();
    }
    let e = m.launch(&launch_req("n1", 0.1, 10.0)).await.unwrap_err();
    assert!(
        e.api_error().unwrap().message.contains("no free port"),
        "{e}"
    );

    let drained = m.drain("n1").await.unwrap();
    assert_eq!(
        (drained.state, drained.draining),
        (NodeState::Draining, true)
    );
    let mut no_port = launch_req("n1", 0.1, 10.0);
    no_port.task.ports.clear();
    let e = m.launch(&no_port).await.unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.api_error().unwrap().message.contains("draining"), "{e}");
    assert_eq!(
        m.tasks(&TaskFilter {
            active: Some(true),
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        3,
        "drain keeps tasks"
    );
    let active = m.activate("n1").await.unwrap();
    assert_eq!(active.state, NodeState::Ready);
    m.launch(&no_port).await.unwrap();
    assert_eq!(m.drain("ghost").await.unwrap_err().status(), Some(404));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_goes_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let m = server.client();
    m.register(&register_req("n1", vec![])).await.unwrap();
    let task = m.launch(&launch_req("n1", 0.5, 64.0)).await.unwrap();
    let id = task.spec.id.clone();
    m.heartbeat("n1", &heartbeat_req(vec![report(&id, TaskState::Running)]))
        .await
        .unwrap();

    let mut events = Box::pin(m.events().await.unwrap());
    let killed = m.kill(&id).await.unwrap();
    assert_eq!(
        (killed.state, killed.goal),
        (TaskState::Running, TaskGoal::Kill)
    );
    let a = m
        .assignments("n1", &AssignmentsQuery::default())
        .await
        .unwrap();
    assert_eq!(a.tasks.len(), 1);
    assert_eq!(
        (a.tasks[0].spec.id.clone(), a.tasks[0].goal),
        (id.clone(), TaskGoal::Kill)
    );

    let mut done = report(&id, TaskState::Killed);
    done.exit = Some(drover_api::task::ExitStatus {
        code: None,
        signal: Some(15),
    });
    m.heartbeat("n1", &heartbeat_req(vec![done])).await.unwrap();
    let t = m.task(&id).await.unwrap();
    assert_eq!(t.state, TaskState::Killed);
    assert!(t.finished_at.is_some());
    assert!(
        m.assignments("n1", &AssignmentsQuery::default())
            .await
            .unwrap()
            .tasks
            .is_empty()
    );
    assert_eq!(m.node("n1").await.unwrap().allocated.cpus, 0.0);

    // Killing it again conflicts; an unknown task is not found.
    assert_eq!(m.kill(&id).await.unwrap_err().status(), Some(409));
    assert_eq!(
        m.kill(&"nope.1".into()).await.unwrap_err().status(),
        Some(404)
    );

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(ev.kind);
    }
    assert!(matches!(&seen[0], EventKind::TaskKillRequested { task, .. } if *task == id));
    assert!(matches!(
        &seen[1],
        EventKind::TaskState {
            from: Some(TaskState::Running),
            to: TaskState::Killed,
            ..
        }
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_unreachable_and_is_told_to_kill_lost_tasks_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_fast_failure(dir.path()).await;
    let m = server.client();
    // Subscribe first: on a busy machine the node may go unreachable at any point below.
    let mut events = Box::pin(m.events().await.unwrap());
    m.register(&register_req("n1", vec![])).await.unwrap();
    let task = m.launch(&launch_req("n1", 0.5, 64.0)).await.unwrap();
    let id = task.spec.id.clone();
    m.heartbeat("n1", &heartbeat_req(vec![report(&id, TaskState::Running)]))
        .await
        .unwrap();

    // Stop heartbeating: after the 1 s timeout the node is unreachable and the task lost.
    wait_for(|| {
        let m = m.clone();
        async move {
            m.node("n1")
                .await
                .is_ok_and(|n| n.state == NodeState::Unreachable)
        }
    })
    .await;
    let lost = m.task(&id).await.unwrap();
    assert_eq!((lost.state, lost.goal), (TaskState::Lost, TaskGoal::Kill));
    assert!(lost.message.unwrap_or_default().contains("unreachable"));
    let e = m.launch(&launch_req("n1", 0.1, 1.0)).await.unwrap_err();
    assert!(
        e.api_error().unwrap().message.contains("unreachable"),
        "{e}"
    );

    let mut node_down = false;
    let mut task_lost = false;
    while !(node_down && task_lost) {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev.kind {
            EventKind::NodeState {
                to: NodeState::Unreachable,
                ..
            } => node_down = true,
            EventKind::TaskState {
                task,
                to: TaskState::Lost,
                ..
            } if task == id => task_lost = true,
            _ => {}
        }
    }

    // It comes back still running the lost task: ready again, and the task is on its kill list.
    let hb = m
        .heartbeat("n1", &heartbeat_req(vec![report(&id, TaskState::Running)]))
        .await
        .unwrap();
    assert!(hb.registered);
    assert_eq!(m.node("n1").await.unwrap().state, NodeState::Ready);
    let a = m
        .assignments("n1", &AssignmentsQuery::default())
        .await
        .unwrap();
    assert_eq!(a.tasks.len(), 1);
    assert_eq!(
        (a.tasks[0].spec.id.clone(), a.tasks[0].goal),
        (id.clone(), TaskGoal::Kill)
    );
    assert_eq!(m.task(&id).await.unwrap().state, TaskState::Lost);
    let back = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = events.next().await {
            if let Ok(Event {
                kind:
                    EventKind::NodeState {
                        to: NodeState::Ready,
                        from: NodeState::Unreachable,
                        ..
                    },
                ..
            }) = ev
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(back.ok(), Some(true), "node_state ready event");

    // A node the master does not know is told to register.
    let hb = m.heartbeat("ghost", &heartbeat_req(vec![])).await.unwrap();
    assert!(!hb.registered);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_nodes_and_tasks_and_never_reuses_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let m = server.client();
    m.register(&register_req("n1", vec![])).await.unwrap();
    m.drain("n1").await.unwrap();
    m.activate("n1").await.unwrap();
    let task = m.launch(&launch_req("n1", 0.5, 64.0)).await.unwrap();
    m.heartbeat(
        "n1",
        &heartbeat_req(vec![report(&task.spec.id, TaskState::Running)]),
    )
    .await
    .unwrap();
    let before = m
        .assignments("n1", &AssignmentsQuery::default())
        .await
        .unwrap();
    server.stop().await;

    let server = Server::start(dir.path()).await;
    let m = server.client();
    let nodes = m.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].state,
        NodeState::Ready,
        "no node is marked unreachable at startup"
    );
    let t = m.task(&task.spec.id).await.unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(m.node("n1").await.unwrap().allocated.cpus, 0.5);
    // The old revision never matches: an agent polling with it gets an answer at once.
    let q = AssignmentsQuery {
        after: Some(before.revision.clone()),
        wait: Some(30),
    };
    let after = tokio::time::timeout(Duration::from_secs(10), m.assignments("n1", &q))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(after.revision, before.revision);
    assert_eq!(after.tasks, before.tasks);
    // The agent re-registers with its task and keeps it.
    m.register(&register_req(
        "n1",
        vec![report(&task.spec.id, TaskState::Running)],
    ))
    .await
    .unwrap();
    assert_eq!(
        m.task(&task.spec.id).await.unwrap().state,
        TaskState::Running
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), Some("s3cret"), Duration::from_secs(30)).await;
    let anon = server.client();
    assert_eq!(anon.nodes().await.unwrap_err().status(), Some(401));
    let m = drover_api::client::MasterClient::new(&server.url, Some("s3cret".into())).unwrap();
    assert!(m.nodes().await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_proxied_from_the_agent_and_follow_streams() {
    use axum::extract::{Path, Query};
    use axum::routing::get;
    use drover_api::task::LogQuery;
    use std::sync::Arc;

    // A stand-in agent: a plain read answers at once; a followed read sends one line,
    // then the next only when the test says so.
    let release = Arc::new(tokio::sync::Notify::new());
    let agent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_url = format!("http://{}", agent.local_addr().unwrap());
    let gate = release.clone();
    let app = axum::Router::new().route(
        "/v1/tasks/{id}/logs",
        get(move |Path(id): Path<String>, Query(q): Query<LogQuery>| {
            let gate = gate.clone();
            async move {
                if !q.follow {
                    return axum::body::Body::from(format!("hello from {id}\n"));
                }
                let first = futures::stream::once(async { Ok::<_, std::io::Error>("line 1\n") });
                let second = futures::stream::once(async move {
                    gate.notified().await;
                    Ok("line 2\n")
                });
                axum::body::Body::from_stream(first.chain(second))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(agent, app).await });

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let m = server.client();
    let mut reg = register_req("n1", vec![]);
    reg.address = agent_url;
    m.register(&reg).await.unwrap();
    let task = m.launch(&launch_req("n1", 0.1, 1.0)).await.unwrap();

    let mut stream = Box::pin(m.logs(&task.spec.id, &Default::default()).await.unwrap());
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        String::from_utf8(text).unwrap(),
        format!("hello from {}\n", task.spec.id)
    );

    // Following: the first line arrives while the agent still holds the second.
    let follow = LogQuery {
        follow: true,
        ..Default::default()
    };
    let mut stream = Box::pin(m.logs(&task.spec.id, &follow).await.unwrap());
    let mut text = String::new();
    while !text.contains("line 1") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("line 2"));
    release.notify_one();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert_eq!(text, "line 1\nline 2\n");

    assert_eq!(
        m.logs(&"nope.1".into(), &Default::default())
            .await
            .err()
            .and_then(|e| e.status()),
        Some(404)
    );
    server.stop().await;
}
