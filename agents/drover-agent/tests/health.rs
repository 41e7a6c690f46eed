//! Health checks against real tasks: COMMAND, TCP and HTTP checks turn a task healthy,
//! then unhealthy once the check starts failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use common::*;
use drover_api::TaskId;
use drover_api::task::{HealthCheck, HealthProtocol, PortRequest, TaskSpec, TaskState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A quick check: no delay, probes every 100 ms, unhealthy after 2 failures.
fn quick(protocol: HealthProtocol) -> HealthCheck {
    let mut hc = HealthCheck::new(protocol);
    hc.delay_seconds = 0.0;
    hc.interval_seconds = 0.1;
    hc.timeout_seconds = 2.0;
    hc.max_consecutive_failures = 2;
    hc
}

fn with_port(mut s: TaskSpec, port: u16, hc: HealthCheck) -> TaskSpec {
    s.definition.ports = vec![PortRequest {
        name: Some("http".into()),
        port: 0,
    }];
    s.host_ports = vec![port];
    s.definition.health_checks = vec![hc];
    s
}

#[tokio::test]
async fn command_check_follows_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let mut hc = quick(HealthProtocol::Command);
    // Runs in the sandbox with the task's environment.
    hc.command =
        Some("test -f \"$DROVER_SANDBOX/healthy\" && test \"$DROVER_TASK_ID\" = cmd.1".into());
    // Failures before the first pass are forgiven during the grace period.
    hc.grace_period_seconds = 300.0;
    let mut s = spec("cmd.1", "sleep 60");
    s.definition.health_checks = vec![hc];
    r.launch(s);
    let rep = wait_state(&r, "cmd.1", TaskState::Running).await;
    assert!(rep.health.is_none() || !rep.health.unwrap().alive);
    let flag = dir.path().join("tasks/cmd.1/healthy");
    std::fs::write(&flag, b"").unwrap();
    let rep = wait_state(&r, "cmd.1", TaskState::Healthy).await;
    assert!(rep.health.unwrap().alive);
    std::fs::remove_file(&flag).unwrap();
    let rep = wait_state(&r, "cmd.1", TaskState::Unhealthy).await;
    let health = rep.health.unwrap();
    assert!(!health.alive);
    assert!(health.consecutive_failures >= 2);
    assert!(rep.message.unwrap().contains("health check failing"));
    // One pass is enough to be healthy again.
    std::fs::write(&flag, b"").unwrap();
    wait_state(&r, "cmd.1", TaskState::Healthy).await;
    r.kill(&TaskId::from("cmd.1"), "done");
    wait_terminal(&r, "cmd.1").await;
}

#[tokio::test]
async fn tcp_check_follows_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        loop {
            let _ = listener.accept().await;
        }
    });
    let mut hc = quick(HealthProtocol::Tcp);
    hc.grace_period_seconds = 0.0;
    r.launch(with_port(spec("tcp.1", "sleep 60"), port, hc));
    wait_state(&r, "tcp.1", TaskState::Healthy).await;
    server.abort();
    let _ = server.await;
    let rep = wait_state(&r, "tcp.1", TaskState::Unhealthy).await;
    assert!(
        rep.health
            .unwrap()
            .last_failure
            .unwrap()
            .contains(&port.to_string())
    );
    r.kill(&TaskId::from("tcp.1"), "done");
    wait_terminal(&r, "tcp.1").await;
}

/// A tiny HTTP server answering every request with the status in `status`.
async fn http_server(status: Arc<AtomicU16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let status = status.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nlocation: http://127.0.0.1:1/nowhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn http_check_passes_on_2xx_3xx_and_fails_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    // A redirect to a dead port passes: redirects are not followed.
    let status = Arc::new(AtomicU16::new(302));
    let port = http_server(status.clone()).await;
    let mut hc = quick(HealthProtocol::Http);
    hc.path = Some("/health".into());
    hc.grace_period_seconds = 0.0;
    r.launch(with_port(spec("http.1", "sleep 60"), port, hc));
    wait_state(&r, "http.1", TaskState::Healthy).await;
    status.store(503, Ordering::SeqCst);
    let rep = wait_state(&r, "http.1", TaskState::Unhealthy).await;
    assert!(rep.health.unwrap().last_failure.unwrap().contains("503"));
    status.store(200, Ordering::SeqCst);
    wait_state(&r, "http.1", TaskState::Healthy).await;
    r.kill(&TaskId::from("http.1"), "done");
    wait_terminal(&r, "http.1").await;
}

#[tokio::test]
async fn several_checks_need_all_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path());
    let mut pass = quick(HealthProtocol::Command);
    pass.command = Some("true".into());
    let mut gated = quick(HealthProtocol::Command);
    gated.command = Some("test -f gate".into());
    gated.grace_period_seconds = 300.0;
    let mut s = spec("multi.1", "sleep 60");
    s.definition.health_checks = vec![pass, gated];
    r.launch(s);
    let id = TaskId::from("multi.1");
    // The first check passes at once, but the task stays running while the second is undecided.
    let rep = r
        .wait_for(&id, WAIT, |t| {
            t.health.as_ref().is_some_and(|h| h.last_check_at.is_some())
        })
        .await
        .unwrap();
    assert_ne!(rep.state, TaskState::Healthy);
    std::fs::write(dir.path().join("tasks/multi.1/gate"), b"").unwrap();
    wait_state(&r, "multi.1", TaskState::Healthy).await;
    r.kill(&id, "done");
    wait_terminal(&r, "multi.1").await;
}
