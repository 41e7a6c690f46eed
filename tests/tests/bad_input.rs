//! Check 8 and the security defaults: bad input gets a 4xx JSON error naming the problem,
//! changes nothing and never crashes a server; wide binds need a token.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use drover_api::task::{LaunchRequest, TaskDefinition, TaskFilter};
use drover_api::{ApiError, ErrorCode, Resources};
use drover_cluster_tests::{Cluster, ClusterOptions, Server, bin_path};

async fn post_raw(url: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url} did not answer: {e}"));
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

async fn expect_error(url: &str, body: &str, status: u16, code: ErrorCode, mentions: &str) {
    let (s, bytes) = post_raw(url, body.as_bytes().to_vec()).await;
    let err: ApiError = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{url} answered {s} with a non-JSON body: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!((s, err.code), (status, code), "{url} {body}: {err:?}");
    assert!(
        err.message.contains(mentions),
        "{url} {body}: message {:?} should mention {mentions:?}",
        err.message
    );
}

fn valid_launch(node: &str) -> String {
    serde_json::to_string(&LaunchRequest {
        node: node.into(),
        id: None,
        task: TaskDefinition {
            name: "t".into(),
            cmd: Some("sleep 1".into()),
            resources: Resources::new(0.1, 8.0, 0.0),
            kill_grace_period_seconds: 1.0,
            ..Default::default()
        },
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(ClusterOptions {
        agents: 1,
        ..Default::default()
    })
    .await;
    let m = &cluster.master.url;
    let tasks_url = format!("{m}/v1/tasks");

    expect_error(
        &tasks_url,
        "{\"node\": ",
        400,
        ErrorCode::MalformedBody,
        "JSON",
    )
    .await;
    expect_error(
        &tasks_url,
        &valid_launch("no-such-node"),
        404,
        ErrorCode::NotFound,
        "no-such-node",
    )
    .await;
    let negative = valid_launch("agent-0").replace("\"cpus\":0.1", "\"cpus\":-2.0");
    expect_error(&tasks_url, &negative, 400, ErrorCode::InvalidField, "cpus").await;
    let absurd = valid_launch("agent-0").replace("\"mem\":8.0", "\"mem\":1e300");
    expect_error(&tasks_url, &absurd, 400, ErrorCode::InvalidField, "mem").await;
    let wrong_type = valid_launch("agent-0").replace("\"cpus\":0.1", "\"cpus\":\"lots\"");
    expect_error(
        &tasks_url,
        &wrong_type,
        400,
        ErrorCode::InvalidField,
        "cpus",
    )
    .await;
    let bad_id = valid_launch("agent-0").replace("{\"node\"", "{\"id\":\"../../etc\",\"node\"");
    expect_error(&tasks_url, &bad_id, 400, ErrorCode::InvalidField, "id").await;
    let oversized = format!(
        "{{\"node\":\"agent-0\",\"pad\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let (s, bytes) = post_raw(&tasks_url, oversized.into_bytes()).await;
    assert_eq!(s, 413, "{}", String::from_utf8_lossy(&bytes));
    expect_error(
        &format!("{m}/v1/tasks/nope.123/kill"),
        "",
        404,
        ErrorCode::NotFound,
        "nope.123",
    )
    .await;
    expect_error(
        &format!("{m}/v1/nodes/ghost/drain"),
        "",
        404,
        ErrorCode::NotFound,
        "ghost",
    )
    .await;

    // The CLI reports the same errors and exits non-zero.
    let (code, _, err) = cluster.cli(&["tasks", "launch", "--node", "ghost", "--", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("ghost"), "{err}");

    // Nothing was created.
    assert!(
        cluster
            .client
            .tasks(&TaskFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(cluster.client.nodes().await.unwrap().len(), 1);
}

/// A tiny deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_body(rng: &mut XorShift, valid: &str) -> Vec<u8> {
    match rng.below(5) {
        // Random bytes.
        0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        // A truncated valid body.
        1 => valid.as_bytes()[..rng.below(valid.len())].to_vec(),
        // A valid body with one byte changed.
        2 => {
            let mut b = valid.as_bytes().to_vec();
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
            b
        }
        // Deep nesting.
        3 => {
            let depth = 1 + rng.below(5000);
            format!("{}{}", "[".repeat(depth), "]".repeat(rng.below(depth))).into_bytes()
        }
        // Well-formed JSON of the wrong shape.
        _ => {
            let shapes = [
                "null",
                "[]",
                "{}",
                "1e999",
                "\"\"",
                "{\"node\":[]}",
                "{\"task\":{\"name\":7}}",
            ];
            shapes[rng.below(shapes.len())].as_bytes().to_vec()
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_and_truncated_bodies_never_crash_servers() {
    let cluster = Cluster::start(ClusterOptions {
        agents: 1,
        ..Default::default()
    })
    .await;
    let m = &cluster.master.url;
    let a = &cluster.agents[0].url;
    let register = "{\"name\":\"fuzz\",\"address\":\"http://127.0.0.1:1\",\"version\":\"0\",\"total\":{\"cpus\":1,\"mem\":1,\"disk\":1},\"reserved\":{},\"ports\":{\"begin\":1,\"end\":2},\"host\":{}}";
    let endpoints: Vec<(String, String)> = vec![
        (format!("{m}/v1/tasks"), valid_launch("agent-0")),
        (format!("{m}/v1/tasks/x/kill"), "{}".into()),
        (format!("{m}/v1/nodes/agent-0/drain"), "{}".into()),
        (format!("{m}/v1/nodes/agent-0/activate"), "{}".into()),
        (format!("{m}/v1/agents/register"), register.into()),
        (
            format!("{m}/v1/agents/fuzz/heartbeat"),
            "{\"host\":{},\"tasks\":[]}".into(),
        ),
        (format!("{a}/v1/tasks"), "{}".into()),
    ];
    let mut rng = XorShift(0x5eed_d20e);
    let mut server_errors = Vec::new();
    for round in 0..300 {
        for (url, valid) in &endpoints {
            let body = random_body(&mut rng, valid);
            let (status, bytes) = post_raw(url, body.clone()).await;
            if status >= 500 {
                server_errors.push(format!(
                    "round {round} {url} -> {status}: {} for body {:?}",
                    String::from_utf8_lossy(&bytes),
                    String::from_utf8_lossy(&body[..body.len().min(80)])
                ));
            }
        }
    }
    // Query strings and paths too.
    for q in ["state=bogus", "active=maybe", "node=%ff", "label=novalue"] {
        let s = reqwest::get(format!("{m}/v1/tasks?{q}"))
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!((400..500).contains(&s) || s == 200, "{q} -> {s}");
    }
    for path in [
        "/v1/tasks/..%2F..%2Fetc%2Fpasswd/logs",
        "/v1/tasks/nope/logs?offset=abc",
    ] {
        for base in [m, a] {
            let s = reqwest::get(format!("{base}{path}"))
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!((400..500).contains(&s), "{base}{path} -> {s}");
        }
    }
    assert!(
        server_errors.is_empty(),
        "server errors:\n{}",
        server_errors.join("\n")
    );
    for base in [m, a] {
        let s = reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(s, 200, "{base} still serves");
    }
    let _ = &cluster.master; // still alive: Drop would otherwise hide a crash
    assert!(drover_cluster_tests::process_alive(cluster.master.pid()));
    assert!(drover_cluster_tests::process_alive(cluster.agents[0].pid()));
}

#[tokio::test(flavor = "multi_thread")]
async fn wide_binds_need_a_token_and_requests_need_it_too() {
    let dir = tempfile::tempdir().unwrap();
    // Without a token, binding beyond loopback is refused at start.
    let out = Command::new(bin_path("drover-master"))
        .args(["--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("m0"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // With one, requests without it get 401, and with it succeed.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let args: Vec<String> = vec![
        "--listen".into(),
        "0.0.0.0:0".into(),
        "--data-dir".into(),
        dir.path().join("m1").display().to_string(),
        "--token-file".into(),
        token_file.display().to_string(),
    ];
    let master = Server::start(
        &bin_path("drover-master"),
        &args,
        &[("DROVER_MASTER_INIT".into(), "true".into())],
        &dir.path().join("m.log"),
    );
    let port = master.url.rsplit(':').next().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let s = reqwest::get(format!("{url}/v1/nodes"))
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(s, 401);
    let ok = drover_api::client::MasterClient::new(&url, Some("s3cret-token".into())).unwrap();
    assert!(ok.nodes().await.unwrap().is_empty());
    let bad = drover_api::client::MasterClient::new(&url, Some("wrong".into())).unwrap();
    assert_eq!(bad.nodes().await.unwrap_err().status(), Some(401));

    // An agent with the token registers; the CLI with it lists the node.
    let agent_args: Vec<String> = vec![
        "--master".into(),
        url.clone(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--name".into(),
        "tok-agent".into(),
        "--work-dir".into(),
        dir.path().join("a").display().to_string(),
        "--token-file".into(),
        token_file.display().to_string(),
    ];
    let _agent = Server::start(
        &bin_path("drover-agent"),
        &agent_args,
        &[],
        &dir.path().join("a.log"),
    );
    drover_cluster_tests::wait_for(
        "token agent registered",
        std::time::Duration::from_secs(30),
        || async { (ok.nodes().await.ok()?.len() == 1).then_some(()) },
    )
    .await;
    let out = Command::new(bin_path("drover"))
        .args(["--json", "nodes"])
        .env("DROVER_MASTER", &url)
        .env("DROVER_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One request never costs without bound: a sub-second job period, an app of a hundred
/// thousand instances and a task that reserves no CPU are refused with the field and
/// the limit named, and create nothing; an absurd log offset reads as past the end.
#[tokio::test(flavor = "multi_thread")]
async fn requests_over_the_limits_are_refused() {
    let mut cluster = Cluster::start(ClusterOptions {
        agents: 1,
        ..Default::default()
    })
    .await;
    cluster.start_scheduler(&[]);
    let s = cluster.scheduler_url();
    let m = cluster.master.url.clone();

    for period in ["PT0.001S", "PT0.000000001S"] {
        let job = format!(
            "{{\"name\":\"fast\",\"command\":\"true\",\"schedule\":\"R/2030-01-01T00:00:00Z/{period}\"}}"
        );
        for url in [format!("{s}/v1/jobs"), format!("{s}/scheduler/iso8601")] {
            let (status, bytes) = post_raw(&url, job.clone().into_bytes()).await;
            let err: ApiError = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(status, 400, "{url}: {err:?}");
            assert_eq!(err.field.as_deref(), Some("schedule"), "{err:?}");
            assert!(err.message.contains("minimum of 1 s"), "{err:?}");
            assert!(err.message.contains("--min-job-period"), "{err:?}");
        }
    }
    let free_job = "{\"name\":\"free\",\"command\":\"true\",\"schedule\":\"R/2030-01-01T00:00:00Z/PT1H\",\"cpus\":0.0001}";
    expect_error(
        &format!("{s}/v1/jobs"),
        free_job,
        400,
        ErrorCode::InvalidField,
        "cpus",
    )
    .await;
    let jobs = reqwest::get(format!("{s}/v1/jobs"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(jobs.as_array().map(Vec::len), Some(0), "{jobs}");

    for (body, field) in [
        (
            "{\"id\":\"/many\",\"cmd\":\"sleep 600\",\"instances\":100000}",
            "instances",
        ),
        (
            "{\"id\":\"/free\",\"cmd\":\"sleep 600\",\"cpus\":0}",
            "cpus",
        ),
        ("{\"id\":\"/free\",\"cmd\":\"sleep 600\",\"mem\":0}", "mem"),
    ] {
        for (url, status) in [(format!("{s}/v2/apps"), 422), (format!("{s}/v1/apps"), 400)] {
            let (got, bytes) = post_raw(&url, body.as_bytes().to_vec()).await;
            let err: ApiError = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(got, status, "{url} {body}: {err:?}");
            assert_eq!(err.field.as_deref(), Some(field), "{url} {body}: {err:?}");
        }
    }
    let (_, bytes) = post_raw(
        &format!("{s}/v1/apps"),
        b"{\"id\":\"/many\",\"cmd\":\"sleep 600\",\"instances\":100000}".to_vec(),
    )
    .await;
    let err: ApiError = serde_json::from_slice(&bytes).unwrap();
    assert!(err.message.contains("limit of 1000"), "{err:?}");
    let apps = reqwest::get(format!("{s}/v2/apps"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(apps["apps"].as_array().map(Vec::len), Some(0), "{apps}");

    let tasks_url = format!("{m}/v1/tasks");
    let no_cpu = valid_launch("agent-0").replace("\"cpus\":0.1", "\"cpus\":0.0");
    expect_error(
        &tasks_url,
        &no_cpu,
        400,
        ErrorCode::InvalidField,
        "task.resources.cpus",
    )
    .await;
    let no_mem = valid_launch("agent-0").replace("\"mem\":8.0", "\"mem\":0.0");
    expect_error(
        &tasks_url,
        &no_mem,
        400,
        ErrorCode::InvalidField,
        "task.resources.mem",
    )
    .await;
    assert!(
        cluster
            .client
            .tasks(&TaskFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    // A task's log read from an offset far past its end is an empty read, as any read
    // past the end is, not a server error.
    let (status, bytes) = post_raw(&tasks_url, valid_launch("agent-0").into_bytes()).await;
    assert!(
        (200..300).contains(&status),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let task: drover_api::task::Task = serde_json::from_slice(&bytes).unwrap();
    let url = format!(
        "{m}/v1/tasks/{}/logs?offset=9223372036854775807",
        task.spec.id.as_str()
    );
    let body = drover_cluster_tests::wait_for(
        "the task's log on its agent",
        std::time::Duration::from_secs(30),
        || async {
            let resp = reqwest::get(&url).await.ok()?;
            // 404 until the agent has the task's sandbox.
            if resp.status().as_u16() == 404 {
                return None;
            }
            Some((resp.status().as_u16(), resp.text().await.ok()?))
        },
    )
    .await;
    assert_eq!(body, (200, String::new()));
}

/// The tasks the master has active, or `None` while it does not answer.
async fn active_tasks(cluster: &Cluster) -> Option<Vec<drover_api::task::Task>> {
    let filter = TaskFilter {
        active: Some(true),
        ..Default::default()
    };
    cluster.client.tasks(&filter).await.ok()
}

/// An agent's task limit: the node says it, the master refuses a launch past it with a
/// message naming the flag, and the scheduler places no more than fit, saying why.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_refuses_tasks_past_its_agents_limit() {
    let mut cluster = Cluster::start(ClusterOptions {
        agents: 1,
        agent_args: vec!["--max-tasks".into(), "3".into()],
        ..Default::default()
    })
    .await;
    let node = cluster.client.node("agent-0").await.unwrap();
    assert_eq!(node.max_tasks, Some(3));
    cluster.start_scheduler(&[]);
    let sched = cluster.scheduler_client();
    sched
        .create_app(
            &serde_json::json!({"id": "/capped", "cmd": "sleep 600", "instances": 5,
                                "cpus": 0.01, "mem": 8, "taskKillGracePeriodSeconds": 1}),
            false,
        )
        .await
        .unwrap();
    let long = std::time::Duration::from_secs(60);
    let why = drover_cluster_tests::wait_for(
        "3 instances running and the app's status saying why not 5",
        long,
        || async {
            let active = active_tasks(&cluster).await?;
            let status = sched.app("/capped").await.ok()?.status?;
            let message = status.unplaceable?.message;
            (active.len() == 3 && message.contains("--max-tasks")).then_some(message)
        },
    )
    .await;
    assert!(why.contains("most tasks at once"), "{why}");

    let (status, bytes) = post_raw(
        &format!("{}/v1/tasks", cluster.master.url),
        valid_launch("agent-0").into_bytes(),
    )
    .await;
    let err: ApiError = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        err.code,
        ErrorCode::InsufficientResources,
        "{status} {err:?}"
    );
    assert!(err.message.contains("--max-tasks"), "{err:?}");
    assert_eq!(
        cluster.client.node("agent-0").await.unwrap().active_tasks,
        3,
        "nothing past the limit"
    );

    let _ = sched.delete_app("/capped", true).await;
    drover_cluster_tests::wait_for("the app's tasks gone", long, || async {
        active_tasks(&cluster).await?.is_empty().then_some(())
    })
    .await;
}
