//! Cluster tests of long-running apps (issue 3): the real master, agents and scheduler on
//! loopback, one test per check of the issue. Apps are posted as Marathon JSON with raw
//! HTTP, the way existing scripts do; the `hello` binary serves the health checks.
//!
//! Build the binaries first: `cargo build --workspace --bins`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_api::client::SchedulerClient;
use drover_api::deployment::DeploymentState;
use drover_api::task::{Task, TaskState, labels};
use drover_cluster_tests::{Cluster, ClusterOptions, bin_path, wait_for};
use serde_json::{Value, json};

/// Generous: a loaded CI machine is slow, and a timeout names what it waited for.
const LONG: Duration = Duration::from_secs(90);

async fn cluster(opts: ClusterOptions) -> Cluster {
    let mut c = Cluster::start(opts).await;
    c.start_scheduler(&[]);
    c
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `method url` with an optional JSON body: (status, JSON body or null).
async fn call(method: reqwest::Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut rb = http().request(method, url);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn post_app(c: &Cluster, app: &Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        &format!("{}/v2/apps", c.scheduler_url()),
        Some(app),
    )
    .await
}

/// A `hello` app with an HTTP health check on PORT0 that decides within a second.
fn hello_app(id: &str, instances: u32) -> Value {
    json!({
        "id": id,
        "cmd": format!("exec '{}'", bin_path("hello").display()),
        "instances": instances,
        "cpus": 0.01,
        "mem": 16,
        "portDefinitions": [{ "port": 0, "name": "http" }],
        "healthChecks": [{
            "protocol": "HTTP", "path": "/health", "portIndex": 0,
            "gracePeriodSeconds": 10, "intervalSeconds": 0.5, "timeoutSeconds": 1,
            "delaySeconds": 0, "maxConsecutiveFailures": 2
        }],
        "backoffSeconds": 0.2,
        "taskKillGracePeriodSeconds": 1
    })
}

/// Deletes every app and waits (without failing the test) until the master runs no task,
/// so the task processes, which outlive their agents by design, do not outlive the test.
async fn cleanup(c: &Cluster) {
    let url = c.scheduler_url();
    let (_, v) = call(reqwest::Method::GET, &format!("{url}/v2/apps"), None).await;
    for app in v["apps"].as_array().cloned().unwrap_or_default() {
        if let Some(id) = app["id"].as_str() {
            call(
                reqwest::Method::DELETE,
                &format!("{url}/v2/apps{id}?force=true"),
                None,
            )
            .await;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let filter = drover_api::task::TaskFilter {
            active: Some(true),
            ..Default::default()
        };
        match c.client.tasks(&filter).await {
            Ok(t) if t.is_empty() => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn tasks_of(s: &SchedulerClient, id: &str) -> Vec<Task> {
    s.app_tasks(id).await.unwrap_or_default()
}

fn healthy(tasks: &[Task]) -> Vec<&Task> {
    tasks
        .iter()
        .filter(|t| t.state == TaskState::Healthy)
        .collect()
}

fn version_of(t: &Task) -> &str {
    t.spec
        .definition
        .labels
        .get(labels::VERSION)
        .map_or("", String::as_str)
}

/// Waits until the app has exactly `n` active tasks, all healthy (of `version` when given).
async fn wait_healthy(s: &SchedulerClient, id: &str, n: usize, version: Option<&str>) -> Vec<Task> {
    wait_for(&format!("{n} healthy tasks of {id}"), LONG, || async {
        let tasks = tasks_of(s, id).await;
        let ok = tasks.len() == n
            && healthy(&tasks).len() == n
            && version.is_none_or(|v| tasks.iter().all(|t| version_of(t) == v));
        ok.then_some(tasks)
    })
    .await
}

async fn app_version(s: &SchedulerClient, id: &str) -> String {
    s.app(id).await.unwrap().app.version.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_with_http_health_become_healthy_over_two_agents() {
    let c = cluster(ClusterOptions::default()).await;
    // Marathon's event stream, subscribed before the POST.
    let mut events = http()
        .get(format!("{}/v2/events", c.scheduler_url()))
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: deployment_success") {
                break;
            }
        }
        text
    });
    let (status, body) = post_app(&c, &hello_app("/web", 3)).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["deployments"][0]["id"].is_string(), "{body}");
    let s = c.scheduler_client();
    let tasks = wait_healthy(&s, "/web", 3, None).await;
    let nodes: BTreeSet<&str> = tasks.iter().map(|t| t.spec.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "spread over both agents: {nodes:?}");
    // Marathon's shape of the same tasks.
    let (status, v) = call(
        reqwest::Method::GET,
        &format!("{}/v2/apps/web/tasks", c.scheduler_url()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let t = &v["tasks"][0];
    assert_eq!(t["appId"], "/web");
    assert!(t["ports"][0].as_u64().is_some(), "{t}");
    assert_eq!(t["healthCheckResults"][0]["alive"], true, "{t}");
    let d = wait_for("the create deployment succeeded", LONG, || async {
        let ds = s.deployments().await.ok()?;
        ds.into_iter()
            .find(|d| d.app_id.as_str() == "/web" && d.state == DeploymentState::Succeeded)
    })
    .await;
    assert_eq!(d.progress.ready, 3);
    let text = tokio::time::timeout(LONG, reader).await.unwrap().unwrap();
    for kind in [
        "api_post_event",
        "deployment_info",
        "status_update_event",
        "deployment_success",
    ] {
        assert!(
            text.contains(&format!("event: {kind}")),
            "no {kind} in:\n{text}"
        );
    }
    assert!(text.contains("\"taskStatus\":\"TASK_RUNNING\""), "{text}");
    // The CLI: scale down and follow the deployment to its end.
    let (code, out, err) = c.cli(&["apps", "scale", "/web", "2", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("succeeded"), "{err}");
    // Not a terminal: plain progress lines, no cursor control.
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(err.lines().any(|l| l.contains("of 2 ready")), "{err}");
    wait_healthy(&s, "/web", 2, None).await;
    let all = c.cli_json(&["deployments", "list", "--all"]);
    assert!(all.as_array().is_some_and(|a| a.len() >= 2), "{all}");
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_killed_from_outside_is_replaced() {
    let c = cluster(ClusterOptions::default()).await;
    assert_eq!(post_app(&c, &hello_app("/web", 3)).await.0, 201);
    let s = c.scheduler_client();
    let tasks = wait_healthy(&s, "/web", 3, None).await;
    let victim = tasks[0].clone();
    let pid = victim.pid.expect("a running task has a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = wait_for("a healthy replacement", LONG, || async {
        let tasks = tasks_of(&s, "/web").await;
        let ok = tasks.len() == 3
            && healthy(&tasks).len() == 3
            && tasks.iter().all(|t| t.spec.id != victim.spec.id);
        ok.then_some(tasks)
    })
    .await;
    assert_eq!(after.len(), 3);
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_health_check_is_replaced_and_a_crash_loop_backs_off() {
    let c = cluster(ClusterOptions::default()).await;
    assert_eq!(post_app(&c, &hello_app("/web", 2)).await.0, 201);
    let s = c.scheduler_client();
    let tasks = wait_healthy(&s, "/web", 2, None).await;
    let sick = tasks[0].clone();
    let port = sick.spec.host_ports[0];
    let resp = http()
        .post(format!("http://127.0.0.1:{port}/fail"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    wait_for("the unhealthy instance replaced", LONG, || async {
        let tasks = tasks_of(&s, "/web").await;
        let ok = tasks.len() == 2
            && healthy(&tasks).len() == 2
            && tasks.iter().all(|t| t.spec.id != sick.spec.id);
        ok.then_some(())
    })
    .await;

    // A crash loop: the delay grows with each failure instead of spinning.
    let crash = json!({
        "id": "/crash", "cmd": "exit 3", "instances": 1, "cpus": 0.01, "mem": 8,
        "portDefinitions": [],
        "backoffSeconds": 0.3, "backoffFactor": 2, "maxLaunchDelaySeconds": 60
    });
    assert_eq!(post_app(&c, &crash).await.0, 201);
    let seen: std::sync::Mutex<Vec<f64>> = std::sync::Mutex::new(Vec::new());
    wait_for("the backoff delay grew three times", LONG, || {
        let s = s.clone();
        let seen = &seen;
        async move {
            let d = s.app("/crash").await.ok()?;
            let b = d.status?.backoff?;
            let mut delays = seen.lock().unwrap();
            if delays.last() != Some(&b.delay_seconds) {
                delays.push(b.delay_seconds);
            }
            (delays.len() >= 3).then_some(())
        }
    })
    .await;
    let delays = seen.into_inner().unwrap();
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "delays grow: {delays:?}"
    );
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_upgrade_keeps_half_the_capacity_healthy() {
    let c = cluster(ClusterOptions::default()).await;
    let mut app = hello_app("/web", 4);
    app["upgradeStrategy"] = json!({ "minimumHealthCapacity": 0.5, "maximumOverCapacity": 0 });
    assert_eq!(post_app(&c, &app).await.0, 201);
    let s = c.scheduler_client();
    wait_healthy(&s, "/web", 4, None).await;
    let old = app_version(&s, "/web").await;

    app["env"] = json!({ "HELLO_VERSION": "v2" });
    let (status, body) = call(
        reqwest::Method::PUT,
        &format!("{}/v2/apps/web", c.scheduler_url()),
        Some(&app),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let deployment = body["deploymentId"].as_str().unwrap().to_string();
    let new = app_version(&s, "/web").await;
    assert_ne!(old, new);
    let lowest = std::sync::atomic::AtomicUsize::new(usize::MAX);
    wait_for("the rollout finished", LONG, || {
        let s = s.clone();
        let (deployment, new, lowest) = (deployment.clone(), new.clone(), &lowest);
        async move {
            let tasks = tasks_of(&s, "/web").await;
            let h = healthy(&tasks).len();
            lowest.fetch_min(h, std::sync::atomic::Ordering::SeqCst);
            let d = s.deployment(&deployment).await.ok()?;
            let done = d.state == DeploymentState::Succeeded
                && tasks.len() == 4
                && h == 4
                && tasks.iter().all(|t| version_of(t) == new);
            done.then_some(())
        }
    })
    .await;
    let lowest = lowest.into_inner();
    assert!(
        lowest >= 2,
        "healthy instances dropped to {lowest} during the rollout"
    );
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_never_turns_healthy_fails_at_its_deadline_and_reverts() {
    let c = cluster(ClusterOptions::default()).await;
    let mut app = hello_app("/web", 2);
    app["autoRevert"] = json!(true);
    app["progressDeadlineSeconds"] = json!(6);
    app["upgradeStrategy"] = json!({ "minimumHealthCapacity": 1, "maximumOverCapacity": 0.5 });
    assert_eq!(post_app(&c, &app).await.0, 201);
    let s = c.scheduler_client();
    wait_healthy(&s, "/web", 2, None).await;
    let old = app_version(&s, "/web").await;

    app["env"] = json!({ "HELLO_FAIL_HEALTH": "1" });
    let (status, body) = call(
        reqwest::Method::PUT,
        &format!("{}/v2/apps/web", c.scheduler_url()),
        Some(&app),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let deployment = body["deploymentId"].as_str().unwrap().to_string();
    let failed = wait_for("the deployment failed at its deadline", LONG, || {
        let s = s.clone();
        let deployment = deployment.clone();
        let old = old.clone();
        async move {
            // The old version keeps serving meanwhile.
            let tasks = tasks_of(&s, "/web").await;
            let serving = tasks
                .iter()
                .filter(|t| t.state == TaskState::Healthy && version_of(t) == old)
                .count();
            assert!(
                serving >= 2,
                "the old version stopped serving: {serving} healthy"
            );
            let d = s.deployment(&deployment).await.ok()?;
            (d.state == DeploymentState::Failed).then_some(d)
        }
    })
    .await;
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or("")
            .contains("progressDeadlineSeconds"),
        "{failed:?}"
    );
    wait_for("the app back on the old version", LONG, || async {
        let v = app_version(&s, "/web").await;
        let tasks = tasks_of(&s, "/web").await;
        let ok = v == old
            && tasks.len() == 2
            && healthy(&tasks).len() == 2
            && tasks.iter().all(|t| version_of(t) == old);
        ok.then_some(())
    })
    .await;
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_killed_mid_rollout_finishes_it_after_restart() {
    let mut c = cluster(ClusterOptions::default()).await;
    let mut app = hello_app("/web", 4);
    app["upgradeStrategy"] = json!({ "minimumHealthCapacity": 0.5, "maximumOverCapacity": 0 });
    assert_eq!(post_app(&c, &app).await.0, 201);
    let s = c.scheduler_client();
    wait_healthy(&s, "/web", 4, None).await;
    app["env"] = json!({ "HELLO_VERSION": "v2" });
    let (status, body) = call(
        reqwest::Method::PUT,
        &format!("{}/v2/apps/web", c.scheduler_url()),
        Some(&app),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let deployment = body["deploymentId"].as_str().unwrap().to_string();
    let new = app_version(&s, "/web").await;
    wait_for("the rollout under way", LONG, || async {
        let tasks = tasks_of(&s, "/web").await;
        tasks.iter().any(|t| version_of(t) == new).then_some(())
    })
    .await;
    let sched = c.scheduler.as_mut().unwrap();
    sched.kill_hard();
    sched.restart();
    let s = c.scheduler_client();
    wait_for("the rollout finished after the restart", LONG, || async {
        let d = s.deployment(&deployment).await.ok()?;
        let tasks = tasks_of(&s, "/web").await;
        let ok = d.state == DeploymentState::Succeeded
            && tasks.len() == 4
            && healthy(&tasks).len() == 4
            && tasks.iter().all(|t| version_of(t) == new);
        ok.then_some(())
    })
    .await;
    // Exactly the requested instances on the master, with no orphan or duplicate.
    for _ in 0..10 {
        let all = c.client.tasks(&Default::default()).await.unwrap();
        let active: Vec<&Task> = all
            .iter()
            .filter(|t| t.state.is_active() && t.goal == drover_api::task::TaskGoal::Run)
            .collect();
        assert_eq!(active.len(), 4, "active tasks on the master: {active:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_of_a_lost_agent_are_replaced_on_the_other() {
    let mut c = cluster(ClusterOptions {
        heartbeat_timeout: 3.0,
        ..ClusterOptions::default()
    })
    .await;
    assert_eq!(post_app(&c, &hello_app("/web", 2)).await.0, 201);
    let s = c.scheduler_client();
    let tasks = wait_healthy(&s, "/web", 2, None).await;
    let nodes: BTreeSet<String> = tasks.iter().map(|t| t.spec.node.clone()).collect();
    assert_eq!(nodes.len(), 2);
    let stranded: Vec<u32> = tasks
        .iter()
        .filter(|t| t.spec.node == "agent-1")
        .filter_map(|t| t.pid)
        .collect();
    c.agents[1].kill_hard();
    let moved = wait_for("both instances on agent-0", LONG, || async {
        let tasks = tasks_of(&s, "/web").await;
        let ok = tasks.len() == 2
            && healthy(&tasks).len() == 2
            && tasks.iter().all(|t| t.spec.node == "agent-0");
        ok.then_some(tasks)
    })
    .await;
    assert_eq!(moved.len(), 2);
    // The lost agent's tasks still run (a dead agent kills nothing): end them here.
    for pid in stranded {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_hostnames_report_the_extra_instances_unplaceable() {
    let c = cluster(ClusterOptions::default()).await;
    let app = json!({
        "id": "/uniq", "cmd": "exec sleep 600", "instances": 3, "cpus": 0.01, "mem": 8,
        "portDefinitions": [], "constraints": [["hostname", "UNIQUE"]]
    });
    assert_eq!(post_app(&c, &app).await.0, 201);
    let s = c.scheduler_client();
    let u = wait_for("one instance reported unplaceable", LONG, || async {
        let d = s.app("/uniq").await.ok()?;
        let u = d.status?.unplaceable?;
        (u.count == 1).then_some(u)
    })
    .await;
    assert!(u.message.contains("UNIQUE"), "{u:?}");
    wait_for("two instances placed, one per node", LONG, || async {
        (tasks_of(&s, "/uniq").await.len() == 2).then_some(())
    })
    .await;
    let d = s.app("/uniq").await.unwrap();
    assert_eq!(d.status.unwrap().unplaceable.map(|u| u.count), Some(1));
    let (code, out, err) = c.cli(&["apps", "show", "/uniq"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Unplaceable") && out.contains("UNIQUE"),
        "{out}"
    );
    let (code, out, err) = c.cli(&["apps"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 unplaceable"), "{out}");
    cleanup(&c).await;
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn examples_deploy_unchanged_through_post_v2_apps() {
    let c = cluster(ClusterOptions::default()).await;
    let dir = workspace_root().join("examples/apps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "examples missing in {}", dir.display());
    for f in &files {
        // Raw bytes, exactly as `curl -d @file` sends them.
        let bytes = std::fs::read(f).unwrap();
        let resp = http()
            .post(format!("{}/v2/apps", c.scheduler_url()))
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 201, "{}: {body}", f.display());
    }
    let s = c.scheduler_client();
    wait_for("the clock running", LONG, || async {
        let tasks = tasks_of(&s, "/tools/clock").await;
        (tasks.len() == 1 && tasks[0].state == TaskState::Running).then_some(())
    })
    .await;
    let (_, v) = call(
        reqwest::Method::GET,
        &format!("{}/v2/apps", c.scheduler_url()),
        None,
    )
    .await;
    assert_eq!(v["apps"].as_array().map(Vec::len), Some(files.len()), "{v}");
    // `drover apply` updates an app in place once its deployment is done (the others
    // still run their create: hello is not on the agents' PATH here, see the README).
    let clock = dir.join("10-clock.json").display().to_string();
    wait_for("the clock's deployment done", LONG, || async {
        let d = s.app("/tools/clock").await.ok()?;
        d.deployment.is_none().then_some(())
    })
    .await;
    let (code, out, err) = c.cli(&["apply", "-f", &clock]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("updated"), "{out}");
    let (code, out, _) = c.cli(&["apply", "-f", &dir.display().to_string()]);
    assert_ne!(
        code, 0,
        "apps with a running deployment are refused without --force"
    );
    assert!(out.contains("locked by running deployment"), "{out}");
    // Marathon's 409 lists the deployments that lock the app, by id.
    let ids: Vec<String> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    let mut locked = None;
    for id in &ids {
        if let Some(d) = s.app(id).await.ok().and_then(|a| a.deployment) {
            locked = Some((id.clone(), d.id.to_string()));
            break;
        }
    }
    let (id, deployment) = locked.expect("an app still deploying");
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("{}/v2/apps{id}/restart", c.scheduler_url()),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["deployments"][0]["id"], deployment.as_str(), "{body}");
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_completes_only_once_its_instance_answers_its_readiness_check() {
    let c = cluster(ClusterOptions::default()).await;
    // hello's /health answers 503 while this file exists: the readiness path.
    let gate = c.dir.path().join("not-ready-yet");
    std::fs::write(&gate, "").unwrap();
    let app = json!({
        "id": "/ready",
        "cmd": format!("exec '{}'", bin_path("hello").display()),
        "instances": 1,
        "cpus": 0.01,
        "mem": 16,
        "env": { "HELLO_HEALTH_FILE": gate.display().to_string() },
        "portDefinitions": [{ "port": 0, "name": "http" }],
        "readinessChecks": [{
            "name": "serving", "protocol": "HTTP", "path": "/health", "portName": "http",
            "intervalSeconds": 0.5, "timeoutSeconds": 0.4,
            "httpStatusCodesForReady": [200], "preserveLastResponse": true
        }],
        "backoffSeconds": 0.2,
        "taskKillGracePeriodSeconds": 1
    });
    let (status, body) = post_app(&c, &app).await;
    assert_eq!(status, 201, "{body}");
    let deployment = body["deployments"][0]["id"].as_str().unwrap().to_string();
    let s = c.scheduler_client();
    let url = c.scheduler_url();

    // The instance runs and answers 503: the deployment goes on, and says why.
    let task = wait_for(
        "the instance answering 503 to its readiness check",
        LONG,
        || async {
            let (_, v) = call(reqwest::Method::GET, &format!("{url}/v2/apps/ready"), None).await;
            let r = &v["app"]["readinessCheckResults"][0];
            (r["ready"] == false && r["lastResponse"]["status"] == 503)
                .then(|| r["taskId"].as_str().unwrap_or("").to_string())
        },
    )
    .await;
    let tasks = tasks_of(&s, "/ready").await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].spec.id.as_str(), task);
    assert_eq!(tasks[0].state, TaskState::Running);
    let d = s.deployment(&deployment).await.unwrap();
    assert_eq!(d.state, DeploymentState::Running, "{d:?}");
    assert_eq!(d.progress.ready, 0, "{d:?}");
    let (_, v) = call(reqwest::Method::GET, &format!("{url}/v2/deployments"), None).await;
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == deployment.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let results = &mine["currentActions"][0]["readinessCheckResults"];
    assert_eq!(results[0]["taskId"], task.as_str(), "{mine}");
    assert_eq!(results[0]["name"], "serving", "{mine}");
    assert_eq!(results[0]["ready"], false, "{mine}");

    // Ready: the deployment completes, with the same instance.
    std::fs::remove_file(&gate).unwrap();
    wait_for("the deployment succeeded", LONG, || async {
        let d = s.deployment(&deployment).await.ok()?;
        (d.state == DeploymentState::Succeeded).then_some(())
    })
    .await;
    let tasks = tasks_of(&s, "/ready").await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].spec.id.as_str(),
        task,
        "the same instance, not a new one"
    );
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependent_app_starts_only_once_its_dependency_is_healthy() {
    let c = cluster(ClusterOptions::default()).await;
    let url = c.scheduler_url();
    let s = c.scheduler_client();
    let gate = c.dir.path().join("db-unhealthy");
    std::fs::write(&gate, "").unwrap();
    let mut web = hello_app("/web", 1);
    web["dependencies"] = json!(["/db"]);
    let mut db = hello_app("/db", 1);
    db["env"] = json!({ "HELLO_HEALTH_FILE": gate.display().to_string() });
    // Unhealthy but not killed, so it stays "0 of 1 healthy".
    db["healthChecks"][0]["maxConsecutiveFailures"] = json!(0);

    // A dependency that does not exist yet is accepted, as Marathon does; /web waits.
    let (status, body) = post_app(&c, &web).await;
    assert_eq!(status, 201, "{body}");
    let waiting = |why: &'static str| {
        let s = s.clone();
        async move {
            wait_for(&format!("/web waiting: {why}"), LONG, || async {
                let d = s.app("/web").await.ok()?.deployment?;
                d.waiting
                    .as_deref()
                    .is_some_and(|w| w.contains(why))
                    .then_some(d)
            })
            .await
        }
    };
    waiting("/db (does not exist)").await;
    let (status, body) = post_app(&c, &db).await;
    assert_eq!(status, 201, "{body}");
    wait_for("/db running", LONG, || async {
        let t = tasks_of(&s, "/db").await;
        (t.len() == 1 && t[0].state.is_active() && t[0].started_at.is_some()).then_some(())
    })
    .await;
    let d = waiting("/db (0 of 1 healthy").await;
    assert!(tasks_of(&s, "/web").await.is_empty(), "/web started early");
    assert_eq!(d.state, DeploymentState::Running);
    // Marathon's view and the CLI say why too.
    let (_, v) = call(reqwest::Method::GET, &format!("{url}/v2/deployments"), None).await;
    let text = v.to_string();
    assert!(
        text.contains("waiting for dependencies: /db (0 of 1 healthy"),
        "{v}"
    );
    let (code, out, err) = c.cli(&["apps", "show", "/web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("waiting for dependencies: /db"), "{out}");

    // A cycle is refused, naming it; nothing changes.
    let mut cyclic = db.clone();
    cyclic["dependencies"] = json!(["/web"]);
    let (status, body) = call(
        reqwest::Method::PUT,
        &format!("{url}/v2/apps/db?force=true"),
        Some(&cyclic),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("dependency cycle: /db -> /web -> /db"),
        "{body}"
    );

    // /db turns healthy: its deployment ends, then /web starts and turns healthy.
    std::fs::remove_file(&gate).unwrap();
    wait_healthy(&s, "/db", 1, None).await;
    wait_healthy(&s, "/web", 1, None).await;
    wait_for("/web's deployment done", LONG, || async {
        let a = s.app("/web").await.ok()?;
        a.deployment.is_none().then_some(())
    })
    .await;
    assert!(tasks_of(&s, "/db").await.len() == 1);
    cleanup(&c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_definitions_are_rejected_with_the_field_and_nothing_is_created() {
    let c = cluster(ClusterOptions::default()).await;
    let cases = [
        (json!({ "id": "/x", "instances": 1 }), "cmd"),
        (json!({ "id": "/Bad_Id", "cmd": "true" }), "id"),
        (json!({ "id": "/x", "cmd": "true", "cpus": -1 }), "cpus"),
        (
            json!({ "id": "/x", "cmd": "true", "constraints": [["hostname", "NEAR"]] }),
            "constraints",
        ),
        (
            json!({ "id": "/x", "cmd": "true", "portDefinitions": [{"port": 0}],
                    "healthChecks": [{ "protocol": "HTTP", "portIndex": 3 }] }),
            "portIndex",
        ),
    ];
    for (def, field) in &cases {
        let (status, body) = post_app(&c, def).await;
        assert_eq!(status, 422, "{def}: {body}");
        let named = body["field"].as_str().unwrap_or("");
        assert!(
            named.contains(field),
            "{def}: field {named:?} should name {field}: {body}"
        );
        assert!(body["details"][0]["path"].is_string(), "{body}");
        // The native API answers 400 for the same.
        let (status, body) = call(
            reqwest::Method::POST,
            &format!("{}/v1/apps", c.scheduler_url()),
            Some(def),
        )
        .await;
        assert_eq!(status, 400, "{def}: {body}");
    }
    let (status, body) = call(
        reqwest::Method::POST,
        &format!("{}/v2/apps", c.scheduler_url()),
        None,
    )
    .await;
    assert_eq!(status, 400, "an empty body: {body}");
    let (_, v) = call(
        reqwest::Method::GET,
        &format!("{}/v2/apps", c.scheduler_url()),
        None,
    )
    .await;
    assert_eq!(v["apps"], json!([]), "nothing was created");
    let (code, _, err) = c.cli(&["apps", "show", "/x"]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_with_marathons_own_app_definitions() {
    let root = workspace_root().join("../shared/conformance/marathon");
    if !root.is_dir() {
        println!(
            "conformance corpus not found at {}: skipped",
            root.display()
        );
        return;
    }
    // No agents: definitions are checked and deployed, nothing needs to run.
    let c = cluster(ClusterOptions {
        agents: 0,
        ..ClusterOptions::default()
    })
    .await;
    let url = c.scheduler_url();
    let list = |dir: &str| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "json"));
        v.sort();
        v
    };
    let (mut accepted, mut unsupported, mut refused) = (0, 0, 0);
    let mut features = BTreeSet::new();
    let mut wrong = Vec::new();
    for f in list("valid") {
        let bytes = std::fs::read(&f).unwrap();
        let resp = http()
            .post(format!("{url}/v2/apps?force=true"))
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
        let message = body["message"].as_str().unwrap_or("").to_string();
        if status == 201 {
            accepted += 1;
            // Remove it again so that files sharing an id each get a fresh create.
            let id = body["id"].as_str().unwrap_or("").to_string();
            call(
                reqwest::Method::DELETE,
                &format!("{url}/v2/apps{id}?force=true"),
                None,
            )
            .await;
            wait_for(&format!("{id} deleted"), LONG, || async {
                let (s, _) = call(reqwest::Method::GET, &format!("{url}/v2/apps{id}"), None).await;
                (s == 404).then_some(())
            })
            .await;
        } else if (400..500).contains(&status) && message.contains("not supported by Drover") {
            unsupported += 1;
            features.insert(body["field"].as_str().unwrap_or(&message).to_string());
        } else {
            wrong.push(format!("{}: {status} {body}", f.display()));
        }
    }
    let mut invalid_wrong = Vec::new();
    for f in list("invalid") {
        let bytes = std::fs::read(&f).unwrap();
        let resp = http()
            .post(format!("{url}/v2/apps"))
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if (400..500).contains(&status) {
            refused += 1;
        } else {
            invalid_wrong.push(format!("{}: {status}", f.display()));
            // Do not let an accepted invalid app block the next file with the same id.
            let body: Value =
                serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
            if let Some(id) = body["id"].as_str() {
                call(
                    reqwest::Method::DELETE,
                    &format!("{url}/v2/apps{id}?force=true"),
                    None,
                )
                .await;
            }
        }
    }
    println!(
        "conformance: valid {accepted} accepted, {unsupported} refused as unsupported ({features:?}); invalid {refused} refused"
    );
    assert!(
        wrong.is_empty(),
        "valid apps refused for other reasons:\n{}",
        wrong.join("\n")
    );
    assert!(
        invalid_wrong.is_empty(),
        "invalid apps accepted:\n{}",
        invalid_wrong.join("\n")
    );
}
