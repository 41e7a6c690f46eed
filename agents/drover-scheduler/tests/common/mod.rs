//! A real scheduler on loopback for this crate's API tests. Its master is "down": no
//! master is needed, as the scheduler keeps serving while the master is unreachable.

use std::path::Path;
use std::time::Duration;

use drover_scheduler::server::RunError;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A scheduler serving on loopback until `stop` is sent (or dropped).
pub struct TestScheduler {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    /// Sending (or dropping) it starts the graceful shutdown.
    pub stop: oneshot::Sender<()>,
    /// The server; ends once shut down.
    pub server: JoinHandle<Result<(), RunError>>,
}

/// Starts a scheduler on `data_dir` with the flags' defaults.
pub async fn start_scheduler(data_dir: &Path) -> TestScheduler {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = drover_scheduler::Config {
        // Nothing listens on port 9 (discard): the master is "down".
        master_url: "http://127.0.0.1:9".into(),
        data_dir: data_dir.to_path_buf(),
        token: None,
        job_retry_delay: Duration::from_secs(1),
        job_history: 100,
        min_job_period: Duration::from_secs(1),
        connections: Default::default(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(drover_scheduler::run(listener, config, async move {
        let _ = stopped.await;
    }));
    TestScheduler { base, stop, server }
}
