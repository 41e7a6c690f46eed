//! `run`: opens the store, loads the state, serves the API on an already-bound listener
//! and runs the failure detector, until the shutdown future resolves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_service::connections::ConnectionLimits;
use drover_service::retention::Retention;
use drover_store::RedbStore;
use tokio::sync::watch;

use crate::api::{self, AppState, stopped};
use crate::master::{CoreConfig, CoreError, Master};
use crate::opts::Opts;

/// The name of the state file under the data directory.
pub const STORE_FILE: &str = "master.redb";
/// The agent protocol's routes, served on the connection slots kept for agents (see
/// `drover_service::connections`).
pub const AGENT_PATHS: &[&str] = &["/v1/agents/"];
/// How often the failure detector looks for silent nodes.
const DETECT_EVERY: Duration = Duration::from_millis(200);
/// How often ended tasks past the history's age are pruned (tasks that end prune the
/// history at once; this is for a quiet cluster).
const PRUNE_AGED_EVERY: Duration = Duration::from_secs(60);

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the state file.
    pub data_dir: PathBuf,
    /// Seconds between agent heartbeats.
    pub heartbeat_interval: Duration,
    /// Silence after which a node is unreachable.
    pub heartbeat_timeout: Duration,
    /// Terminal tasks kept as history.
    pub task_history: Retention,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// Make a cluster id when the store is empty (`--init`); without it an empty store
    /// is refused.
    pub init: bool,
    /// How the API treats its connections (slots are reserved for the agent protocol).
    pub connections: ConnectionLimits,
}

impl Config {
    /// The configuration from parsed flags and the resolved token.
    pub fn from_opts(opts: &Opts, token: Option<String>) -> Result<Config, RunError> {
        if opts.heartbeat_timeout <= opts.heartbeat_interval {
            return Err(RunError::Settings(format!(
                "--heartbeat-timeout ({}s) must be longer than --heartbeat-interval ({}s)",
                opts.heartbeat_timeout.as_secs_f64(),
                opts.heartbeat_interval.as_secs_f64()
            )));
        }
        Ok(Config {
            data_dir: opts.data_dir.clone(),
            heartbeat_interval: opts.heartbeat_interval,
            heartbeat_timeout: opts.heartbeat_timeout,
            task_history: Retention {
                count: opts.task_history,
                max_age: opts.task_history_max_age,
            },
            token,
            init: opts.init,
            connections: ConnectionLimits::new(
                opts.max_connections,
                opts.header_timeout,
                opts.idle_timeout,
            )
            .reserving(AGENT_PATHS),
        })
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings are inconsistent.
    #[error("{0}")]
    Settings(String),
    /// The state file could not be opened.
    #[error("failed to open the master's store")]
    Store(#[source] drover_store::StoreError),
    /// The store has no cluster id and may not get one, or it could not be read.
    #[error(transparent)]
    Identity(#[from] crate::cluster::IdentityError),
    /// The state could not be loaded.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Serving failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Serves the master on `listener` until `shutdown` resolves, then stops streams and
/// long polls, waits for requests in flight, and closes the store.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let store = RedbStore::open(config.data_dir.join(STORE_FILE)).map_err(RunError::Store)?;
    let cluster = crate::cluster::establish(
        &store,
        crate::cluster::EmptyStore::from_init_flag(config.init),
        &config.data_dir,
    )?;
    tracing::info!(cluster = %cluster.id, "serving cluster");
    let core = CoreConfig {
        heartbeat_interval: config.heartbeat_interval,
        heartbeat_timeout: config.heartbeat_timeout,
        task_history: config.task_history,
        cluster,
    };
    let master = Arc::new(Master::open(Box::new(store), core)?);
    // The sender is dropped when `run` returns; receivers treat that as stop too.
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState {
        master: master.clone(),
        stop: stop_rx.clone(),
        token: config.token.clone(),
    };
    let metrics_master = master.clone();
    let health_master = master.clone();
    let router = drover_service::http::finish_router(
        api::router(state),
        "drover-master",
        move || health_master.health(),
        move || metrics_master.metrics(),
        config.token.clone(),
    );
    let detector = tokio::spawn(detect_failures(master.clone(), stop_rx.clone()));
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let served =
        drover_service::http::serve(listener, router, config.connections.clone(), graceful).await;
    let _ = detector.await;
    close(master).await;
    served.map_err(RunError::Serve)
}

/// Runs the failure detector every [`DETECT_EVERY`] until stop, reloads the state
/// once the store has recovered from a failed write, and prunes aged task history
/// every [`PRUNE_AGED_EVERY`].
async fn detect_failures(master: Arc<Master>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(DETECT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut prune_at = Instant::now() + PRUNE_AGED_EVERY;
    let stopping = stopped(stop);
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let m = master.clone();
                let prune = Instant::now() >= prune_at;
                if prune {
                    prune_at = Instant::now() + PRUNE_AGED_EVERY;
                }
                // Marking a node writes to the store: keep it off the async workers.
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = m.recover() {
                        tracing::error!("cannot reload the state from the recovered store: {e}");
                    }
                    m.check_failures(Instant::now(), chrono::Utc::now());
                    if prune {
                        let n = m.prune_history(chrono::Utc::now());
                        if n > 0 {
                            tracing::info!("pruned {n} ended tasks past the history's age");
                        }
                    }
                })
                .await;
            }
            _ = &mut stopping => break,
        }
    }
}

/// Waits (briefly) for the last users of the core to finish, so the store file is
/// closed when `run` returns and a new master can open it at once.
async fn close(master: Arc<Master>) {
    let mut master = master;
    for _ in 0..500 {
        match Arc::try_unwrap(master) {
            Ok(m) => {
                drop(m);
                return;
            }
            Err(m) => master = m,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::warn!(
        "some requests still hold the master's state; closing the store when they finish"
    );
}
