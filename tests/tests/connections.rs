//! Connection hygiene against a real `drover-master` whose open-file limit is small: a
//! flood of slow clients (slowloris: a request line and headers that trickle in and
//! never finish) must not lock out a restarting agent or new clients.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_api::client::MasterClient;
use drover_api::node::NodeState;
use drover_cluster_tests::{Cluster, ClusterOptions, skipped, wait_for};
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How many slow connections the test opens.
const SLOW_CONNECTIONS: usize = 2000;
/// The master's open-file limit: well under the flood.
const MASTER_NOFILE: u64 = 1024;
/// How long a new client's request may take before the attempt counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous bounds: the machine is shared and slow; a fixed master registers an agent in
/// a second or two.
const REGISTER_WITHIN: Duration = Duration::from_secs(30);
const SERVED_WITHIN: Duration = Duration::from_secs(30);

/// Raises this process's soft open-file limit so it can hold the flood; `false` when
/// the hard limit is too low for that.
fn raise_own_nofile(want: u64) -> bool {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return false;
    };
    if soft >= want {
        return true;
    }
    hard >= want && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok()
}

/// Slow connections held open by this test; a task of their own sends each one more
/// byte of a header that never ends every two seconds.
struct Flood {
    /// Connections established.
    connected: usize,
    /// Each connection until the server closed it.
    streams: Arc<Mutex<Vec<Option<TcpStream>>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Flood {
    async fn open(addr: &str, n: usize) -> Flood {
        let addr = addr.to_string();
        let streams: Vec<Option<TcpStream>> = futures::stream::iter(0..n)
            .map(|_| {
                let addr = addr.clone();
                async move {
                    let mut stream =
                        tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr))
                            .await
                            .ok()?
                            .ok()?;
                    use tokio::io::AsyncWriteExt;
                    tokio::time::timeout(
                        Duration::from_secs(3),
                        stream.write_all(b"GET /v1/nodes HTTP/1.1\r\nHost: x\r\nX-Pad: "),
                    )
                    .await
                    .ok()?
                    .ok()?;
                    Some(stream)
                }
            })
            .buffer_unordered(200)
            .filter(|s| std::future::ready(s.is_some()))
            .collect()
            .await;
        let connected = streams.len();
        let streams = Arc::new(Mutex::new(streams));
        let (stop, mut stopped) = watch::channel(false);
        let held = streams.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stopped.changed() => break,
                }
                for slot in held.lock().unwrap().iter_mut() {
                    if slot.as_ref().is_some_and(|s| !still_open(s, true)) {
                        *slot = None;
                    }
                }
            }
        });
        Flood {
            connected,
            streams,
            stop,
            task,
        }
    }

    /// How many the server has not closed (yet).
    fn open_now(&self) -> usize {
        let mut streams = self.streams.lock().unwrap();
        for slot in streams.iter_mut() {
            if slot.as_ref().is_some_and(|s| !still_open(s, false)) {
                *slot = None;
            }
        }
        streams.iter().flatten().count()
    }

    /// Closes every connection.
    async fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.streams.lock().unwrap().clear();
    }
}

/// Whether the server has neither closed nor reset the connection (an answer, e.g. a
/// 408, counts as closing: the server ends the connection after it); with `trickle`,
/// sends one more byte of the endless header too.
fn still_open(stream: &TcpStream, trickle: bool) -> bool {
    let mut buf = [0u8; 512];
    match stream.try_read(&mut buf) {
        Ok(_) => return false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(_) => return false,
    }
    if !trickle {
        return true;
    }
    match stream.try_write(b"a") {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// A new client (its own connection pool) whose every request is bounded in time.
async fn fresh<T>(url: &str, call: impl AsyncFnOnce(&MasterClient) -> Option<T>) -> Option<T> {
    let client = MasterClient::new(url, None).ok()?;
    tokio::time::timeout(REQUEST_TIMEOUT, call(&client))
        .await
        .ok()
        .flatten()
}

async fn agent_state(url: &str, name: &str) -> Option<NodeState> {
    fresh(url, async |c| {
        let nodes = c.nodes().await.ok()?;
        nodes.into_iter().find(|n| n.name == name).map(|n| n.state)
    })
    .await
}

/// Starts a master limited to [`MASTER_NOFILE`] files (with `master_args`) and one agent;
/// stops the agent until the master marks it unreachable; opens the flood; starts the
/// agent again and checks it registers, that new clients are served and that the master
/// does not leave more slow connections waiting than it can serve, the flood still held
/// open by this test throughout.
async fn agent_and_clients_get_through_a_slow_flood(master_args: &[&str]) {
    if !raise_own_nofile(2 * SLOW_CONNECTIONS as u64 + 1024) {
        skipped(
            "slowloris flood",
            "this process's hard open-file limit is too low to hold the flood",
        );
        return;
    }
    let mut c = Cluster::start(ClusterOptions {
        agents: 1,
        heartbeat_interval: 0.5,
        heartbeat_timeout: 3.0,
        master_nofile: Some(MASTER_NOFILE),
        master_args: master_args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await;
    let url = c.master.url.clone();
    let addr = url.trim_start_matches("http://").to_string();

    c.agents[0].stop();
    wait_for("the stopped agent marked unreachable", SERVED_WITHIN, || {
        let url = url.clone();
        async move { (agent_state(&url, "agent-0").await? == NodeState::Unreachable).then_some(()) }
    })
    .await;

    let flood = Flood::open(&addr, SLOW_CONNECTIONS).await;
    eprintln!(
        "figures: {} of {SLOW_CONNECTIONS} slow connections established, {} open",
        flood.connected,
        flood.open_now()
    );
    assert!(
        flood.connected >= SLOW_CONNECTIONS / 2,
        "only {} slow connections could be made: the flood tests nothing",
        flood.connected
    );

    let started = Instant::now();
    c.agents[0].restart();
    wait_for("the restarted agent ready again", REGISTER_WITHIN, || {
        let url = url.clone();
        async move { (agent_state(&url, "agent-0").await? == NodeState::Ready).then_some(()) }
    })
    .await;
    eprintln!(
        "figures: agent ready {:.1}s after its start; {} of {} slow connections still open then",
        started.elapsed().as_secs_f64(),
        flood.open_now(),
        flood.connected
    );

    wait_for("/health answers a new client", SERVED_WITHIN, || {
        let url = url.clone();
        async move {
            fresh(&url, async |c| {
                c.http()
                    .get::<serde_json::Value, ()>("/health", None)
                    .await
                    .ok()
            })
            .await
        }
    })
    .await;
    wait_for("/v1/nodes answers a new client", SERVED_WITHIN, || {
        let url = url.clone();
        async move { fresh(&url, async |c| c.nodes().await.ok()).await }
    })
    .await;
    // The master cannot hold more connections than its file limit allows: the rest must
    // be closed, not left in the listen backlog, where they block whoever comes next.
    wait_for(
        "the master to close the slow connections beyond its file limit",
        SERVED_WITHIN,
        || {
            let open = flood.open_now();
            async move { (open <= MASTER_NOFILE as usize).then_some(()) }
        },
    )
    .await;
    assert!(
        !flood.task.is_finished(),
        "the flood must still be held open while the checks run"
    );
    eprintln!(
        "figures: new clients served; {} of {} slow connections still open at the end",
        flood.open_now(),
        flood.connected
    );
    flood.close().await;
}

/// The defaults: slow clients are shed at the connection cap and after the header
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_clients_get_through_a_slowloris_flood() {
    agent_and_clients_get_through_a_slow_flood(&[]).await;
}

/// With a header timeout longer than the test, only the connection cap sheds the flood:
/// the oldest connections still waiting for headers make room for new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_clients_get_through_a_slowloris_flood_by_eviction_alone() {
    agent_and_clients_get_through_a_slow_flood(&["--header-timeout", "600"]).await;
}
