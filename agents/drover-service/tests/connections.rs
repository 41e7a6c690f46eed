//! The accept loop's connection rules over real sockets on loopback: slow headers and
//! idle keep-alive connections are closed, busy ones are not, the cap evicts the oldest
//! connection still waiting for headers, and shutdown does not wait on idle clients.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use drover_service::connections::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Bound on anything that should happen "soon": generous, the machine is shared.
const EVENTUALLY: Duration = Duration::from_secs(20);

fn limits(max: usize, header: f64, idle: f64) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: max,
        reserved: 0,
        reserved_paths: &[],
        header_timeout: Duration::from_secs_f64(header),
        idle_timeout: Duration::from_secs_f64(idle),
    }
}

struct TestServer {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ConnectionLimits) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/agents/hello", get(|| async { "hello" }))
        .route(
            "/forever",
            get(|| async {
                // A stream that ends only with the connection (an event stream's shape).
                Body::from_stream(futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Some((Ok::<_, std::convert::Infallible>("tick\n"), ()))
                }))
            }),
        )
        .route(
            "/stream",
            get(|| async {
                // Ten chunks 200 ms apart: longer than the test's timeouts.
                Body::from_stream(futures::stream::unfold(10, |left| async move {
                    if left == 0 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::convert::Infallible>("chunk\n"), left - 1))
                }))
            }),
        );
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(drover_service::http::serve(
        listener,
        router,
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    TestServer {
        addr,
        stop: Some(stop),
        served,
    }
}

/// Reads until the server closes the connection (EOF or reset); what was read.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response whose body ends with `end`.
async fn read_response(stream: &mut TcpStream, end: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).ends_with(end) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn closed_eventually(stream: &mut TcpStream, what: &str) -> String {
    tokio::time::timeout(EVENTUALLY, read_until_closed(stream))
        .await
        .unwrap_or_else(|_| panic!("{what} was not closed"))
}

#[tokio::test]
async fn slow_headers_are_cut_off_at_the_header_timeout() {
    let server = start(limits(100, 0.5, 600.0)).await;
    // Headers that never finish, and a connection that never says anything.
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: a")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(&server.addr).await.unwrap();
    let answer = closed_eventually(&mut slow, "a connection with unfinished headers").await;
    assert!(!answer.contains("hello"), "{answer}");
    closed_eventually(&mut silent, "a connection that sent nothing").await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_at_the_idle_timeout() {
    let server = start(limits(100, 600.0, 0.5)).await;
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut stream, "hello").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    closed_eventually(&mut stream, "an idle kept-alive connection").await;
}

#[tokio::test]
async fn a_response_in_progress_outlives_both_timeouts() {
    let server = start(limits(100, 0.3, 0.3)).await;
    let mut stream = TcpStream::connect(&server.addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Chunked encoding ends with a zero-length chunk.
    let response = tokio::time::timeout(EVENTUALLY, read_response(&mut stream, "0\r\n\r\n"))
        .await
        .expect("the stream did not end");
    assert_eq!(response.matches("chunk\n").count(), 10, "{response}");
    closed_eventually(&mut stream, "the connection once idle").await;
}

#[tokio::test]
async fn at_the_cap_the_oldest_connection_waiting_for_headers_makes_room() {
    let server = start(limits(3, 600.0, 600.0)).await;
    let mut oldest = TcpStream::connect(&server.addr).await.unwrap();
    oldest.write_all(b"GET /hel").await.unwrap();
    // The server has seen the first before the others arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut others = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&server.addr).await.unwrap();
        s.write_all(b"GET /hel").await.unwrap();
        others.push(s);
    }
    let mut client = TcpStream::connect(&server.addr).await.unwrap();
    client
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_eventually(&mut client, "the new client's connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    closed_eventually(&mut oldest, "the oldest slow connection").await;
    for s in &mut others {
        let mut buf = [0u8; 16];
        assert!(
            matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a younger slow connection was closed instead of the oldest"
        );
    }
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_or_slow_clients() {
    let mut server = start(limits(100, 600.0, 600.0)).await;
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"GET /hel").await.unwrap();
    let mut idle = TcpStream::connect(&server.addr).await.unwrap();
    idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut idle, "hello").await;
    let _ = server.stop.take().unwrap().send(());
    tokio::time::timeout(EVENTUALLY, &mut server.served)
        .await
        .expect("shutdown waited on idle clients")
        .unwrap()
        .unwrap();
    closed_eventually(&mut slow, "the slow connection at shutdown").await;
    closed_eventually(&mut idle, "the idle connection at shutdown").await;
}

#[tokio::test]
async fn with_every_slot_busy_the_reserve_serves_only_reserved_paths() {
    let server = start(ConnectionLimits {
        max_connections: 3,
        reserved: 1,
        reserved_paths: &["/agents/"],
        header_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
    })
    .await;
    // Two streams fill the ordinary slots; neither can be evicted while it streams.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&server.addr).await.unwrap();
        s.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut s, "tick\n\r\n").await;
        streams.push(s);
    }
    let mut other = TcpStream::connect(&server.addr).await.unwrap();
    other
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let refused = closed_eventually(&mut other, "a refused connection on the reserve").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("connection limit"), "{refused}");
    let mut agent = TcpStream::connect(&server.addr).await.unwrap();
    agent
        .write_all(b"GET /agents/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let served = closed_eventually(&mut agent, "the reserved-path request").await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}
