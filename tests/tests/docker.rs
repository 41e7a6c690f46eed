//! The Docker executor's checks (issue 8) against real master, agent and scheduler
//! processes and a real dockerd.
//!
//! Each test starts its own dockerd inside a network namespace it creates and runs the
//! whole cluster in that namespace (see `drover_cluster_tests::docker`): the published
//! ports of `BRIDGE` containers live there, and nothing reaches the host's network. No
//! registry is reachable, so the images are made locally: a static busybox as
//! `library/busybox:latest` and the example web service as `drover/hello:1` and `:2`.
//! A dockerd that cannot start fails the test with its log; nothing is skipped.
//!
//! Tests wait on conditions with generous deadlines and never assert on elapsed time.
//!
//! Build the binaries first: `cargo build --workspace --bins`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;

use drover_api::client::SchedulerClient;
use drover_api::deployment::DeploymentState;
use drover_api::job_run::JobRunState;
use drover_api::task::{LaunchRequest, Task, TaskDefinition, TaskFilter, TaskState};
use drover_api::{Capability, Resources};
use drover_cluster_tests::docker::{DockerDaemon, run_in_netns};
use drover_cluster_tests::{Cluster, ClusterOptions, wait_for};
use serde_json::{Value, json};

/// Generous: a loaded CI machine with several dockerds is slow.
const LONG: Duration = Duration::from_secs(90);

/// A cluster whose agents use the test's dockerd, with a scheduler.
async fn cluster(d: &DockerDaemon, agents: usize) -> Cluster {
    let mut c = Cluster::start(ClusterOptions {
        agents,
        agent_args: vec!["--docker-socket".into(), d.socket.display().to_string()],
        ..ClusterOptions::default()
    })
    .await;
    c.start_scheduler(&[]);
    c
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/docker")
        .join(name)
}

/// POSTs raw bytes (as `curl -d @file` does) or a JSON value; (status, body).
async fn post(url: &str, body: Vec<u8>) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

async fn put_json(url: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn delete(url: &str) {
    let _ = reqwest::Client::new().delete(url).send().await;
}

async fn tasks_of(s: &SchedulerClient, id: &str) -> Vec<Task> {
    s.app_tasks(id).await.unwrap_or_default()
}

async fn all_tasks(c: &Cluster) -> Vec<Task> {
    c.client
        .tasks(&TaskFilter::default())
        .await
        .unwrap_or_default()
}

/// `HH:MM:SS`, what `date -u +%T` prints.
fn is_time(line: &str) -> bool {
    let b = line.trim().as_bytes();
    b.len() == 8
        && b.iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b':'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn container_task(name: &str, cmd: &str, mem: f64, grace: f64) -> TaskDefinition {
    TaskDefinition {
        name: name.into(),
        cmd: Some(cmd.into()),
        resources: Resources::new(0.1, mem, 0.0),
        kill_grace_period_seconds: grace,
        container: Some(
            json!({"type": "DOCKER", "docker": {"image": "busybox", "network": "NONE"}}),
        ),
        ..TaskDefinition::default()
    }
}

async fn launch(c: &Cluster, def: TaskDefinition) -> Task {
    c.client
        .launch(&LaunchRequest {
            node: "agent-0".into(),
            id: None,
            task: def,
        })
        .await
        .unwrap_or_else(|e| panic!("launch refused: {e}"))
}

async fn wait_task(c: &Cluster, t: &Task, what: &str, ok: impl Fn(&Task) -> bool) -> Task {
    let ok = &ok;
    wait_for(what, LONG, || async move {
        c.client.task(&t.spec.id).await.ok().filter(|t| ok(t))
    })
    .await
}

fn sandbox_file(c: &Cluster, t: &Task, file: &str) -> String {
    std::fs::read_to_string(
        c.dir
            .path()
            .join("agent-0/tasks")
            .join(t.spec.id.as_str())
            .join(file),
    )
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_docker_engine_no_node_can_run_containers_and_the_scheduler_says_so() {
    let mut c = Cluster::start(ClusterOptions {
        agents: 1,
        agent_args: vec!["--docker-socket".into(), "/nonexistent/docker.sock".into()],
        ..ClusterOptions::default()
    })
    .await;
    c.start_scheduler(&[]);
    let nodes = c.client.nodes().await.unwrap();
    assert!(nodes[0].capabilities.is_empty(), "{nodes:?}");
    let (status, body) = post(
        &format!("{}/v2/apps", c.scheduler_url()),
        std::fs::read(example("date-app.json")).unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let s = c.scheduler_client();
    let u = wait_for("the app reported unplaceable", LONG, || async {
        s.app("/demo/date").await.ok()?.status?.unplaceable
    })
    .await;
    assert!(u.message.contains("no docker capability"), "{u:?}");
}

#[test]
fn check1_the_demo_date_app_runs_unchanged_and_its_output_is_in_its_logs() {
    run_in_netns(|d| async move {
        d.import_busybox();
        let c = cluster(&d, 1).await;
        let nodes = c.client.nodes().await.unwrap();
        assert_eq!(nodes[0].capabilities, vec![Capability::Docker], "{nodes:?}");
        let (status, body) = post(
            &format!("{}/v2/apps", c.scheduler_url()),
            std::fs::read(example("date-app.json")).unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let s = c.scheduler_client();
        let task = wait_for("the date task running", LONG, || async {
            tasks_of(&s, "/demo/date")
                .await
                .into_iter()
                .find(|t| t.state == TaskState::Running)
        })
        .await;
        let id = task.spec.id.to_string();
        // One container, labelled with the task id; no helper process per task.
        let label = format!("drover.task-id={id}");
        assert_eq!(d.containers(&label).len(), 1);
        assert!(sandbox_file(&c, &task, "shim.json").is_empty(), "no shim");
        // The output reaches the task's logs, read as for any task.
        let out = wait_for("a time in the task's logs", LONG, || async {
            let (code, out, _) = c.cli(&["tasks", "logs", &id]);
            (code == 0 && out.lines().any(is_time)).then_some(out)
        })
        .await;
        println!("drover tasks logs {id}:\n{out}");
        delete(&format!(
            "{}/v2/apps/demo/date?force=true",
            c.scheduler_url()
        ))
        .await;
        let done = wait_task(&c, &task, "the task killed", |t| t.state.is_terminal()).await;
        assert_eq!(done.state, TaskState::Killed, "{done:?}");
        wait_for("the exited container removed", LONG, || async {
            d.containers(&label).is_empty().then_some(())
        })
        .await;
    });
}

#[test]
fn check2_hello_on_a_bridge_is_healthy_on_its_mapped_port_through_a_rolling_upgrade() {
    run_in_netns(|d| async move {
        d.import_hello("drover/hello:1", "1");
        d.import_hello("drover/hello:2", "2");
        let c = cluster(&d, 2).await;
        let url = c.scheduler_url();
        let mut app: Value =
            serde_json::from_slice(&std::fs::read(example("hello-bridge.json")).unwrap()).unwrap();
        let (status, body) = post(&format!("{url}/v2/apps"), app.to_string().into_bytes()).await;
        assert_eq!(status, 201, "{body}");
        let s = c.scheduler_client();
        let image = |t: &Task| {
            t.spec.definition.container.as_ref().unwrap()["image"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let healthy_of = |tasks: &[Task], img: &str| {
            tasks
                .iter()
                .filter(|t| t.state == TaskState::Healthy && image(t) == img)
                .count()
        };
        let tasks = wait_for("2 healthy instances of hello:1", LONG, || async {
            let t = tasks_of(&s, "/demo/hello").await;
            (t.len() == 2 && healthy_of(&t, "drover/hello:1") == 2).then_some(t)
        })
        .await;
        // The mapped host port answers from the host side, with the container's PORT0.
        for t in &tasks {
            let port = t.spec.host_ports[0];
            let body = reqwest::get(format!("http://127.0.0.1:{port}/health"))
                .await
                .unwrap();
            assert!(body.status().is_success());
            let label = format!("drover.task-id={}", t.spec.id);
            let cid = d.containers(&label).pop().unwrap();
            let env = d.inspect(&cid, "{{json .Config.Env}}");
            assert!(env.contains(&format!("\"PORT0={port}\"")), "{env}");
            assert_eq!(d.inspect(&cid, "{{.HostConfig.NetworkMode}}"), "bridge");
        }
        app["container"]["docker"]["image"] = json!("drover/hello:2");
        let (status, body) = put_json(&format!("{url}/v2/apps/demo/hello"), &app).await;
        assert_eq!(status, 200, "{body}");
        let deployment = body["deploymentId"].as_str().unwrap().to_string();
        let lowest = std::sync::atomic::AtomicUsize::new(usize::MAX);
        wait_for("the rollout to hello:2 finished", LONG, || {
            let (s, deployment, lowest) = (s.clone(), deployment.clone(), &lowest);
            async move {
                let tasks = tasks_of(&s, "/demo/hello").await;
                let h = tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Healthy)
                    .count();
                lowest.fetch_min(h, std::sync::atomic::Ordering::SeqCst);
                let d = s.deployment(&deployment).await.ok()?;
                let done = d.state == DeploymentState::Succeeded
                    && tasks.len() == 2
                    && healthy_of(&tasks, "drover/hello:2") == 2;
                done.then_some(())
            }
        })
        .await;
        let lowest = lowest.into_inner();
        assert!(
            lowest >= 2,
            "healthy instances dropped to {lowest} during the rollout"
        );
        delete(&format!("{url}/v2/apps/demo/hello?force=true")).await;
    });
}

#[test]
fn check3_the_demo_chronos_date_job_runs_in_busybox_on_schedule() {
    run_in_netns(|d| async move {
        d.import_busybox();
        let c = cluster(&d, 1).await;
        let mut job: Value =
            serde_json::from_slice(&std::fs::read(example("date-job.json")).unwrap()).unwrap();
        // The file's schedule starts in the past; this one starts in a few seconds, so
        // the test sees a scheduled run (not a catch-up) without waiting a minute.
        let start = chrono::Utc::now() + chrono::Duration::seconds(3);
        let start = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        job["schedule"] = json!(format!("R/{start}/PT1M"));
        let (status, body) = post(
            &format!("{}/v1/scheduler/iso8601", c.scheduler_url()),
            job.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, 204, "{body}");
        let s = c.scheduler_client();
        let run = wait_for("a successful run of docker-date", LONG, || async {
            let runs = s.job_runs("docker-date", Some(100)).await.ok()?;
            runs.into_iter().find(|r| r.state == JobRunState::Succeeded)
        })
        .await;
        assert_eq!(
            run.scheduled_for
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            start,
            "{run:?}"
        );
        let id = run.task_id.clone().unwrap();
        let task = c.client.task(&id).await.unwrap();
        assert!(task.spec.definition.container.is_some());
        let out = sandbox_file(&c, &task, "stdout");
        assert!(out.lines().any(is_time), "stdout: {out:?}");
        let (code, logs, err) = c.cli(&["tasks", "logs", id.as_str()]);
        assert_eq!(code, 0, "{err}");
        assert!(logs.lines().any(is_time), "{logs}");
        wait_for("the job's container removed", LONG, || async {
            d.containers(&format!("drover.task-id={id}"))
                .is_empty()
                .then_some(())
        })
        .await;
    });
}

#[test]
fn check4_a_missing_image_fails_the_task_with_the_pull_error_and_the_app_backs_off() {
    run_in_netns(|d| async move {
        let c = cluster(&d, 1).await;
        let app = json!({
            "id": "/missing", "cmd": "sleep 600", "instances": 1, "cpus": 0.01, "mem": 16,
            "container": {"type": "DOCKER", "docker": {"image": "drover/nosuch:1", "network": "HOST"}},
            "backoffSeconds": 0.3, "backoffFactor": 2, "maxLaunchDelaySeconds": 60
        });
        let (status, body) = post(
            &format!("{}/v2/apps", c.scheduler_url()),
            app.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let failed = wait_for("a failed task", LONG, || async {
            all_tasks(&c)
                .await
                .into_iter()
                .find(|t| t.state == TaskState::Failed)
        })
        .await;
        let msg = failed.message.clone().unwrap_or_default();
        println!("the failed task says: {msg}");
        assert!(
            msg.contains("cannot pull image \"drover/nosuch:1\""),
            "{failed:?}"
        );
        let s = c.scheduler_client();
        let seen = std::sync::Mutex::new(Vec::<f64>::new());
        wait_for("the backoff delay grew three times", LONG, || {
            let (s, seen) = (s.clone(), &seen);
            async move {
                let b = s.app("/missing").await.ok()?.status?.backoff?;
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
        // `forcePullImage` pulls even a present image (and so fails without a registry).
        d.import_busybox();
        let mut def = container_task("forced", "true", 16.0, 1.0);
        def.container = Some(json!({"type": "DOCKER", "image": "busybox", "forcePullImage": true}));
        let forced = launch(&c, def).await;
        let done = wait_task(&c, &forced, "the forced pull ended", |t| {
            t.state.is_terminal()
        })
        .await;
        assert_eq!(done.state, TaskState::Failed, "{done:?}");
        let msg = done.message.unwrap_or_default();
        assert!(msg.contains("cannot pull image \"busybox\""), "{msg}");
        delete(&format!("{}/v2/apps/missing?force=true", c.scheduler_url())).await;
    });
}

/// `tick 0`, `tick 1`, ... as numbers; panics on any other line.
fn ticks(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            l.strip_prefix("tick ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect()
}

#[test]
fn check5_a_container_survives_an_agent_sigkill_and_is_readopted_without_losing_output() {
    run_in_netns(|d| async move {
        d.import_busybox();
        // A heartbeat timeout well beyond the agent's downtime: the node must not be
        // marked unreachable (its tasks lost) while it restarts.
        let mut c = Cluster::start(ClusterOptions {
            agents: 1,
            heartbeat_timeout: 60.0,
            agent_args: vec!["--docker-socket".into(), d.socket.display().to_string()],
            ..ClusterOptions::default()
        })
        .await;
        let cmd = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done";
        let task = launch(&c, container_task("ticker", cmd, 16.0, 2.0)).await;
        let running = wait_task(&c, &task, "the ticker running", |t| {
            t.state == TaskState::Running
        })
        .await;
        let label = format!("drover.task-id={}", task.spec.id);
        let cid = d.containers(&label).pop().unwrap();
        wait_for("ticks in the sandbox", LONG, || async {
            (ticks(&sandbox_file(&c, &task, "stdout")).len() >= 5).then_some(())
        })
        .await;

        c.agents[0].kill_hard();
        assert_eq!(d.inspect(&cid, "{{.State.Running}}"), "true");
        let copied = ticks(&sandbox_file(&c, &task, "stdout")).len();
        // The container goes on writing while no agent copies its output.
        wait_for("output written while the agent is down", LONG, || async {
            let out = d.docker(&["logs", &cid]);
            (ticks(&String::from_utf8_lossy(&out.stdout)).len() > copied + 20).then_some(())
        })
        .await;

        c.agents[0].restart();
        let missed = ticks(&String::from_utf8_lossy(&d.docker(&["logs", &cid]).stdout)).len();
        wait_for("the output from the downtime copied", LONG, || async {
            (ticks(&sandbox_file(&c, &task, "stdout")).len() > missed).then_some(())
        })
        .await;
        let after = c.client.task(&task.spec.id).await.unwrap();
        assert_eq!(after.state, TaskState::Running, "{after:?}");
        assert_eq!(after.pid, running.pid, "the same container process");
        assert_eq!(
            d.containers(&label),
            vec![cid.clone()],
            "the same container"
        );
        // Nothing lost, nothing twice: the ticks count up without a gap.
        let seq = ticks(&sandbox_file(&c, &task, "stdout"));
        assert!(
            seq.iter().enumerate().all(|(i, n)| *n == i as u64),
            "ticks out of order around the restart: {seq:?}"
        );

        c.client.kill(&task.spec.id).await.unwrap();
        let done = wait_task(&c, &task, "the ticker killed", |t| t.state.is_terminal()).await;
        assert_eq!(done.state, TaskState::Killed, "{done:?}");
        wait_for("the container removed", LONG, || async {
            d.containers(&label).is_empty().then_some(())
        })
        .await;
    });
}

#[test]
fn check6_a_task_over_its_memory_limit_is_oom_killed_and_the_state_says_so() {
    run_in_netns(|d| async move {
        d.import_busybox();
        let c = cluster(&d, 1).await;
        let hog = "exec dd if=/dev/zero of=/dev/null bs=64M count=1";
        let task = launch(&c, container_task("hog", hog, 16.0, 1.0)).await;
        let done = wait_task(&c, &task, "the hog ended", |t| t.state.is_terminal()).await;
        let msg = done.message.clone().unwrap_or_default();
        println!("the OOM-killed task says: {msg}");
        assert_eq!(done.state, TaskState::Failed, "{done:?}");
        assert!(msg.contains("OOM"), "{done:?}");
        assert!(msg.contains("16 MiB"), "{done:?}");
    });
}

/// A container task's COMMAND health check runs inside its container (as Marathon runs
/// them): a file only the container has makes it healthy, and a failing command makes
/// another unhealthy with its exit code.
#[test]
fn command_health_checks_run_inside_the_container() {
    run_in_netns(|d| async move {
        d.import_busybox();
        let c = cluster(&d, 1).await;
        let check = |command: &str| -> drover_api::task::HealthCheck {
            serde_json::from_value(json!({
                "protocol": "COMMAND", "command": command,
                "delaySeconds": 0, "gracePeriodSeconds": 0, "intervalSeconds": 0.5,
                "timeoutSeconds": 5, "maxConsecutiveFailures": 1,
            }))
            .unwrap()
        };
        let mut inside = container_task(
            "inside",
            "touch /tmp/only-in-the-container && exec sleep 1000",
            32.0,
            1.0,
        );
        inside.health_checks = vec![check("test -f /tmp/only-in-the-container")];
        assert!(
            !std::path::Path::new("/tmp/only-in-the-container").exists(),
            "the host must not have the file"
        );
        let mut failing = container_task("failing", "exec sleep 1000", 32.0, 1.0);
        failing.health_checks = vec![check("exit 3")];
        let inside = launch(&c, inside).await;
        let failing = launch(&c, failing).await;
        wait_task(
            &c,
            &inside,
            "healthy by a check inside the container",
            |t| t.health.as_ref().is_some_and(|h| h.alive),
        )
        .await;
        let t = wait_task(&c, &failing, "unhealthy by a failing command", |t| {
            t.health.as_ref().is_some_and(|h| !h.alive)
        })
        .await;
        let why = t.health.and_then(|h| h.last_failure).unwrap_or_default();
        assert!(why.contains("exited with 3"), "{why}");
    });
}

/// `docker.parameters` reach the engine as `docker run` would apply them, and one Drover
/// does not apply fails its task with the option's name rather than running without it.
#[test]
fn docker_parameters_are_applied_or_fail_the_task_by_name() {
    run_in_netns(|d| async move {
        d.import_busybox();
        let c = cluster(&d, 1).await;
        let with = |name: &str, cmd: &str, params: Value| {
            let mut t = container_task(name, cmd, 32.0, 1.0);
            t.container = Some(json!({"type": "DOCKER", "docker": {
                "image": "busybox", "network": "NONE", "parameters": params}}));
            t
        };
        let applied = launch(
            &c,
            with(
                "applied",
                "echo host=$(hostname) mode=$MODE uid=$(id -u)",
                json!([{"key": "hostname", "value": "a.corp.org"},
                       {"key": "env", "value": "MODE=fast"}]),
            ),
        )
        .await;
        let refused = launch(
            &c,
            with(
                "refused",
                "true",
                json!([{"key": "lxc-conf", "value": "lxc.aa_profile=unconfined"}]),
            ),
        )
        .await;
        // A user parameter cannot make the container root where the task's user could not.
        let as_root = launch(
            &c,
            with(
                "as-root",
                "id -u",
                json!([{"key": "user", "value": "root"}]),
            ),
        )
        .await;
        wait_task(&c, &applied, "the applied task finishes", |t| {
            t.state == TaskState::Finished
        })
        .await;
        let out = sandbox_file(&c, &applied, "stdout");
        let uid = out
            .trim()
            .strip_prefix("host=a.corp.org mode=fast uid=")
            .unwrap_or_else(|| panic!("{out:?}"));
        // The container runs as the agent's task user, not as the image's root.
        assert_ne!(uid, "0", "{out:?}");
        let t = wait_task(&c, &refused, "the refused task fails", |t| {
            t.state == TaskState::Failed
        })
        .await;
        let why = t.message.unwrap_or_default();
        assert!(why.contains("--lxc-conf is not applied"), "{why}");
        let t = wait_task(&c, &as_root, "the root container is refused", |t| {
            t.state == TaskState::Failed
        })
        .await;
        let why = t.message.unwrap_or_default();
        assert!(why.contains("--allow-root-tasks"), "{why}");
    });
}

/// An agent started before its Docker Engine answers takes it when it does: the node
/// registers again with the `docker` capability and runs containers, without a restart.
#[test]
fn an_engine_that_comes_up_after_the_agent_is_taken() {
    run_in_netns(|d| async move {
        d.import_busybox();
        // The agent looks at a socket path that does not exist yet; it appears later,
        // as when dockerd starts after the agent at boot.
        let late = d.socket.with_file_name("docker-late.sock");
        let _ = std::fs::remove_file(&late);
        let mut c = Cluster::start(ClusterOptions {
            agents: 1,
            agent_args: vec!["--docker-socket".into(), late.display().to_string()],
            ..ClusterOptions::default()
        })
        .await;
        c.start_scheduler(&[]);
        let node = c.client.node("agent-0").await.unwrap();
        assert!(node.capabilities.is_empty(), "{node:?}");
        std::os::unix::fs::symlink(&d.socket, &late).unwrap();
        wait_for("the docker capability", LONG, || async {
            let n = c.client.node("agent-0").await.ok()?;
            n.capabilities.contains(&Capability::Docker).then_some(())
        })
        .await;
        let t = launch(
            &c,
            container_task("late", "echo from the late engine", 32.0, 1.0),
        )
        .await;
        wait_task(&c, &t, "the container task finishes", |t| {
            t.state == TaskState::Finished
        })
        .await;
        assert_eq!(
            sandbox_file(&c, &t, "stdout").trim(),
            "from the late engine"
        );
    });
}
