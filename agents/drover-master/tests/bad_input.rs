//! Bad input gets a 4xx JSON error naming the problem, changes nothing, and never
//! reaches a 5xx or a panic.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use drover_api::{ApiError, ErrorCode};
use serde_json::json;

/// Sends `body` to `path` with `method` and returns the status and the decoded error
/// body (when the status is 4xx/5xx).
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Vec<u8>>,
) -> (u16, Option<ApiError>) {
    let mut rb = http.request(method, url);
    if let Some(b) = body {
        rb = rb.header("content-type", "application/json").body(b);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let err = if status >= 400 {
        Some(
            serde_json::from_slice::<ApiError>(&bytes).unwrap_or_else(|e| {
                panic!(
                    "status {status} without a JSON error body ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            }),
        )
    } else {
        None
    };
    (status, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_the_right_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let m = server.client();
    m.register(&register_req("n1", vec![])).await.unwrap();
    let http = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", server.url);
    let post = |p: &str, body: serde_json::Value| {
        let http = http.clone();
        let url = u(p);
        async move {
            call(
                &http,
                reqwest::Method::POST,
                url,
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
        }
    };
    let good = serde_json::to_value(launch_req("n1", 0.1, 10.0)).unwrap();

    // Malformed JSON.
    let (s, e) = call(
        &http,
        reqwest::Method::POST,
        u("/v1/tasks"),
        Some(b"{\"node\": ".to_vec()),
    )
    .await;
    assert_eq!((s, e.unwrap().code), (400, ErrorCode::MalformedBody));
    let (s, e) = call(
        &http,
        reqwest::Method::POST,
        u("/v1/tasks"),
        Some(b"{\"node\": NaN}".to_vec()),
    )
    .await;
    assert_eq!((s, e.unwrap().code), (400, ErrorCode::MalformedBody));
    // Wrong shape: an unknown field, a missing field.
    let mut v = good.clone();
    v["task"]["bogus"] = json!(1);
    let (s, e) = post("/v1/tasks", v).await;
    assert_eq!(s, 400);
    assert!(e.unwrap().message.contains("bogus"));
    let (s, _) = post("/v1/tasks", json!({"task": good["task"]})).await;
    assert_eq!(s, 400);
    // Unknown node.
    let mut v = good.clone();
    v["node"] = json!("ghost");
    let (s, e) = post("/v1/tasks", v).await;
    let e = e.unwrap();
    assert_eq!(
        (s, e.code, e.field.as_deref()),
        (404, ErrorCode::NotFound, Some("node"))
    );
    // Negative, absurd and non-numeric resources.
    for (cpus, field) in [
        (json!(-1), "task.resources.cpus"),
        (json!(1e12), "task.resources.cpus"),
    ] {
        let mut v = good.clone();
        v["task"]["resources"]["cpus"] = cpus;
        let (s, e) = post("/v1/tasks", v).await;
        let e = e.unwrap();
        assert_eq!(
            (s, e.code, e.field.as_deref()),
            (400, ErrorCode::InvalidField, Some(field)),
            "{}",
            e.message
        );
    }
    let mut v = good.clone();
    v["task"]["resources"]["mem"] = json!("lots");
    assert_eq!(post("/v1/tasks", v).await.0, 400);
    let mut v = good.clone();
    v["task"]["resources"]["mem"] = json!(123456789.5);
    let text = serde_json::to_string(&v)
        .unwrap()
        .replace("123456789.5", "1e400");
    let (s, _) = call(
        &http,
        reqwest::Method::POST,
        u("/v1/tasks"),
        Some(text.into_bytes()),
    )
    .await;
    assert_eq!(s, 400, "an infinite number is refused");
    // A bad caller id, a missing command, a port out of u16.
    let mut v = good.clone();
    v["id"] = json!("../../etc/passwd");
    let (s, e) = post("/v1/tasks", v).await;
    assert_eq!((s, e.unwrap().field.as_deref()), (400, Some("id")));
    let mut v = good.clone();
    v["task"]["cmd"] = json!(null);
    let (s, e) = post("/v1/tasks", v).await;
    assert_eq!((s, e.unwrap().field.as_deref()), (400, Some("task.cmd")));
    let mut v = good.clone();
    v["task"]["ports"] = json!([{"port": 70000}]);
    assert_eq!(post("/v1/tasks", v).await.0, 400);
    let mut v = good.clone();
    v["task"]["ports"] = json!([{"port": 8080}]);
    let (s, e) = post("/v1/tasks", v).await;
    assert_eq!(
        (s, e.unwrap().field.as_deref()),
        (409, Some("task.ports[0].port"))
    );
    // Oversized body.
    let big = format!(
        "{{\"node\": \"n1\", \"pad\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (s, e) = call(
        &http,
        reqwest::Method::POST,
        u("/v1/tasks"),
        Some(big.into_bytes()),
    )
    .await;
    assert_eq!((s, e.unwrap().code), (413, ErrorCode::PayloadTooLarge));
    // No content type.
    let (s, _) = call(&http, reqwest::Method::POST, u("/v1/tasks"), None).await;
    assert_eq!(s, 400);

    // Tasks: unknown, bad ids, bad filters.
    let (s, e) = call(
        &http,
        reqwest::Method::POST,
        u("/v1/tasks/nope.1/kill"),
        None,
    )
    .await;
    assert_eq!((s, e.unwrap().code), (404, ErrorCode::NotFound));
    let (s, e) = call(&http, reqwest::Method::GET, u("/v1/tasks/a%2Fb"), None).await;
    assert_eq!((s, e.unwrap().field.as_deref()), (400, Some("id")));
    let (s, _) = call(
        &http,
        reqwest::Method::POST,
        u("/v1/tasks/..hidden/kill"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(&http, reqwest::Method::GET, u("/v1/tasks/%FF%FE"), None).await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/tasks?state=bogus"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/tasks?active=maybe"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, e) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/tasks?label=novalue"),
        None,
    )
    .await;
    assert_eq!((s, e.unwrap().field.as_deref()), (400, Some("label")));
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/tasks/nope.1/logs?stream=stdin"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/tasks/nope.1/logs"),
        None,
    )
    .await;
    assert_eq!(s, 404);

    // Nodes and agents.
    let (s, _) = call(&http, reqwest::Method::GET, u("/v1/nodes/ghost"), None).await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &http,
        reqwest::Method::POST,
        u("/v1/nodes/ghost/drain"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let good_reg = serde_json::to_value(register_req("n2", vec![])).unwrap();
    for (path, value, field) in [
        ("name", json!(""), "name"),
        ("name", json!("bad/name"), "name"),
        ("address", json!("ftp://x"), "address"),
        ("total", json!({"cpus": -2}), "total.cpus"),
        ("reserved", json!({"mem": 1e300}), "reserved.mem"),
        ("ports", json!({"begin": 0, "end": 10}), "ports"),
        ("ports", json!({"begin": 20, "end": 10}), "ports"),
        (
            "tasks",
            json!([{"id": "../x", "state": "running"}]),
            "tasks[0].id",
        ),
    ] {
        let mut v = good_reg.clone();
        v[path] = value;
        let (s, e) = post("/v1/agents/register", v).await;
        let e = e.unwrap();
        assert_eq!(
            (s, e.field.as_deref()),
            (400, Some(field)),
            "{path}: {}",
            e.message
        );
    }
    let (s, _) = post("/v1/agents/register", json!({"name": "n2"})).await;
    assert_eq!(s, 400);
    let (s, _) = post("/v1/agents/n1/heartbeat", json!({"host": {}, "tasks": []})).await;
    assert_eq!(s, 400, "host facts are required");
    let (s, _) = post("/v1/agents/n1/heartbeat", json!({"host": serde_json::to_value(drover_api::node::HostInfo::default()).unwrap(), "tasks": [{"id": "x", "state": "zombie"}]})).await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/agents/ghost/assignments"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/agents/n1/assignments?wait=soon"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &http,
        reqwest::Method::GET,
        u("/v1/agents/n1/assignments?wait=-5"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, e) = call(&http, reqwest::Method::GET, u("/v1/tasks/x/kill"), None).await;
    assert_eq!(s, 405);
    assert!(e.unwrap().message.contains("GET"));
    let (s, e) = call(&http, reqwest::Method::GET, u("/v1/nothing/here"), None).await;
    assert_eq!((s, e.unwrap().code), (404, ErrorCode::NotFound));

    // Nothing of that changed anything.
    assert_eq!(m.nodes().await.unwrap().len(), 1);
    assert!(m.tasks(&Default::default()).await.unwrap().is_empty());
    server.stop().await;
}

/// A small deterministic generator, so a failing body can be reproduced.
struct Rng(u64);

impl Rng {
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

/// A random JSON-ish value, often of the wrong type or absurd.
fn junk(rng: &mut Rng, depth: u32) -> serde_json::Value {
    match rng.below(if depth > 2 { 7 } else { 9 }) {
        0 => json!(null),
        1 => json!(rng.below(2) == 0),
        2 => json!(-(rng.next() as i64).abs()),
        3 => json!([1e308, -1e308, 0.0, 1e-300][rng.below(4)]),
        4 => json!(rng.next()),
        5 => json!(
            [
                "",
                "..",
                "a/b",
                &"x".repeat(300),
                "\u{0}",
                "docker",
                "31000-32000"
            ][rng.below(7)]
        ),
        6 => json!(u16::MAX as u64 + rng.below(3) as u64),
        7 => json!([junk(rng, depth + 1), junk(rng, depth + 1)]),
        _ => {
            json!({"cpus": junk(rng, depth + 1), "port": junk(rng, depth + 1), "id": junk(rng, depth + 1)})
        }
    }
}

/// Replaces one random leaf or member of `v` with junk.
fn mutate(rng: &mut Rng, v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) if !map.is_empty() && rng.below(4) != 0 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            if let Some(child) = map.get_mut(k) {
                mutate(rng, child);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() && rng.below(4) != 0 => {
            let i = rng.below(items.len());
            mutate(rng, &mut items[i]);
        }
        other => *other = junk(rng, 0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_truncated_bodies_never_get_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let m = server.client();
    m.register(&register_req("n1", vec![])).await.unwrap();
    let task = m.launch(&launch_req("n1", 0.1, 1.0)).await.unwrap();
    let http = reqwest::Client::new();

    let mut running = report(&task.spec.id, drover_api::TaskState::Running);
    running.health = Some(drover_api::task::HealthReport {
        alive: true,
        consecutive_failures: 0,
        last_check_at: None,
        last_failure: None,
    });
    let samples: Vec<(String, serde_json::Value)> = vec![
        (
            "/v1/tasks".into(),
            serde_json::to_value(launch_req("n1", 0.1, 1.0)).unwrap(),
        ),
        (
            "/v1/agents/register".into(),
            serde_json::to_value(register_req("n1", vec![running.clone()])).unwrap(),
        ),
        (
            "/v1/agents/n1/heartbeat".into(),
            serde_json::to_value(heartbeat_req(vec![running])).unwrap(),
        ),
        ("/v1/nodes/n1/drain".into(), json!(null)),
        ("/v1/nodes/n1/activate".into(), json!(null)),
        (format!("/v1/tasks/{}/kill", task.spec.id), json!(null)),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..300 {
        let (path, sample) = &samples[i % samples.len()];
        let body: Vec<u8> = match rng.below(3) {
            0 => {
                // Truncated valid JSON.
                let full = serde_json::to_vec(sample).unwrap();
                full[..rng.below(full.len().max(1))].to_vec()
            }
            1 => {
                let mut v = sample.clone();
                for _ in 0..=rng.below(3) {
                    mutate(&mut rng, &mut v);
                }
                serde_json::to_vec(&v).unwrap()
            }
            _ => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        };
        let resp = http
            .post(format!("{}{path}", server.url))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        let bytes = resp.bytes().await.unwrap();
        assert!(
            status < 500,
            "{path} answered {status} to {:?}: {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&bytes)
        );
        if status >= 400 {
            assert!(
                serde_json::from_slice::<ApiError>(&bytes).is_ok(),
                "{path} {status}: non-JSON error"
            );
        }
    }
    assert!(statuses.keys().any(|s| *s >= 400), "{statuses:?}");
    let health = http
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(m.nodes().await.is_ok());
    server.stop().await;
}
