//! Black-box tests: the service on a loopback port, and the binary under SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request with `Connection: close`; returns the status and the body.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body.to_string())
}

async fn start(config: hello::Config) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hello::serve(listener, config, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

#[tokio::test]
async fn greets_and_flips_health() {
    let config = hello::Config {
        task_id: "web.1".into(),
        version: "v3".into(),
        ..Default::default()
    };
    let (addr, _stop) = start(config).await;
    assert_eq!(
        call(addr, "GET", "/").await,
        (200, "hello from web.1 version v3\n".into())
    );
    assert_eq!(call(addr, "GET", "/health").await, (200, "ok".into()));
    assert_eq!(call(addr, "POST", "/fail").await.0, 200);
    assert_eq!(call(addr, "GET", "/health").await, (503, "failing".into()));
    assert_eq!(call(addr, "POST", "/recover").await.0, 200);
    assert_eq!(call(addr, "GET", "/health").await, (200, "ok".into()));
    assert_eq!(call(addr, "GET", "/fail").await.0, 405);
    assert_eq!(call(addr, "GET", "/nothing").await.0, 404);
}

#[tokio::test]
async fn health_follows_the_fail_flag_and_the_file() {
    let file = std::env::temp_dir().join(format!("hello-health-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let config = hello::Config {
        health_file: Some(file.clone()),
        fail_health: true,
        ..Default::default()
    };
    let (addr, _stop) = start(config).await;
    assert_eq!(call(addr, "GET", "/").await.1, "hello from - version -\n");
    assert_eq!(
        call(addr, "GET", "/health").await.0,
        503,
        "HELLO_FAIL_HEALTH starts failing"
    );
    call(addr, "POST", "/recover").await;
    assert_eq!(call(addr, "GET", "/health").await.0, 200);
    std::fs::write(&file, "").expect("create health file");
    assert_eq!(
        call(addr, "GET", "/health").await.0,
        503,
        "fails while the file exists"
    );
    std::fs::remove_file(&file).expect("remove health file");
    assert_eq!(call(addr, "GET", "/health").await.0, 200);
}

#[tokio::test]
async fn binary_announces_its_address_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hello"))
        .args(["--port", "0"])
        .env("DROVER_TASK_ID", "hello.abc")
        .env("HELLO_VERSION", "v9")
        .env_remove("DROVER_VERSION")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn hello");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    let addr: std::net::SocketAddr = first
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert_eq!(
        call(addr, "GET", "/").await.1,
        "hello from hello.abc version v9\n"
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM to hello");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            assert!(exit.success(), "hello exited with {exit}");
            break;
        }
        assert!(Instant::now() < deadline, "hello did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
