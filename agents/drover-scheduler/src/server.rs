//! `run`: opens the store, loads the components (jobs now, apps next), serves their
//! routes on an already-bound listener, and runs the master-sync loop and each
//! component's loop, until the shutdown future resolves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use drover_api::client::{ClientError, MasterClient};
use drover_service::connections::ConnectionLimits;
use drover_service::http::Metrics;
use drover_service::retention::Retention;
use drover_store::{RedbStore, Store};
use tokio::sync::watch;

use crate::engine::jobs::EngineConfig;
use crate::engine::jobs::retry::RetryPolicy;
use crate::opts::Opts;
use crate::runtime::apps::{Apps, AppsError, AppsSettings};
use crate::runtime::clock::SystemClock;
use crate::runtime::component::{Component, LoopContext, Ports};
use crate::runtime::jobs::{Jobs, JobsConfig, JobsError};
use crate::runtime::master_sync::{self, MasterView};

/// The name of the state file under the data directory.
pub const STORE_FILE: &str = "scheduler.redb";

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The master's URL.
    pub master_url: String,
    /// Directory of the state file.
    pub data_dir: PathBuf,
    /// The bearer token for this API and for calls to the master, if any.
    pub token: Option<String>,
    /// Delay between a failed job attempt and its retry.
    pub job_retry_delay: Duration,
    /// Run records kept per job.
    pub job_history: Retention,
    /// Finished deployments kept.
    pub deployment_history: Retention,
    /// Shortest period between the runs of a repeating job schedule.
    pub min_job_period: Duration,
    /// How the API treats its connections.
    pub connections: ConnectionLimits,
}

impl Config {
    /// The configuration from parsed flags and the resolved token.
    pub fn from_opts(opts: &Opts, token: Option<String>) -> Result<Config, RunError> {
        if opts.job_history == 0 {
            return Err(RunError::Settings(
                "--job-history must be at least 1".into(),
            ));
        }
        Ok(Config {
            master_url: opts.master.clone(),
            data_dir: opts.data_dir.clone(),
            token,
            job_retry_delay: opts.job_retry_delay,
            job_history: Retention {
                count: opts.job_history,
                max_age: opts.job_history_max_age,
            },
            deployment_history: Retention {
                count: opts.deployment_history,
                max_age: opts.deployment_history_max_age,
            },
            min_job_period: opts.min_job_period,
            connections: ConnectionLimits::new(
                opts.max_connections,
                opts.header_timeout,
                opts.idle_timeout,
            ),
        })
    }

    fn jobs(&self) -> Result<JobsConfig, RunError> {
        let delay = chrono::TimeDelta::from_std(self.job_retry_delay)
            .map_err(|_| RunError::Settings("--job-retry-delay is too long".into()))?;
        let min_period = chrono::TimeDelta::from_std(self.min_job_period)
            .map_err(|_| RunError::Settings("--min-job-period is too long".into()))?;
        Ok(JobsConfig {
            engine: EngineConfig {
                retry: RetryPolicy { delay },
                min_period,
                ..EngineConfig::default()
            },
            history: self.job_history,
        })
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings are inconsistent.
    #[error("{0}")]
    Settings(String),
    /// The master URL is unusable.
    #[error("invalid master URL")]
    Master(#[source] ClientError),
    /// The state file could not be opened.
    #[error("failed to open the scheduler's store")]
    Store(#[source] drover_store::StoreError),
    /// The jobs could not be loaded.
    #[error(transparent)]
    Jobs(#[from] JobsError),
    /// The apps could not be loaded.
    #[error(transparent)]
    Apps(#[from] AppsError),
    /// Serving failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Serves the scheduler on `listener` until `shutdown` resolves, then stops the loops,
/// waits for requests in flight, and closes the store.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let master =
        MasterClient::new(&config.master_url, config.token.clone()).map_err(RunError::Master)?;
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(config.data_dir.join(STORE_FILE)).map_err(RunError::Store)?);
    // The sender is dropped when `run` returns; receivers treat that as stop too.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (view_tx, view_rx) = watch::channel(Arc::new(MasterView::default()));

    // The components, assembled in one place: each brings routes, a loop and metrics.
    let ports = Ports {
        store: store.clone(),
        master: Arc::new(master.clone()),
        view: view_rx.clone(),
        clock: Arc::new(SystemClock),
    };
    let jobs = Arc::new(Jobs::open(ports.clone(), config.jobs()?).await?);
    let apps = Arc::new(
        Apps::open(
            ports,
            AppsSettings {
                deployment_history: config.deployment_history,
                ..AppsSettings::default()
            },
        )
        .await?,
    );
    let api = crate::http::router(apps.clone(), jobs.clone(), master.clone(), stop_rx.clone());
    let components: Vec<Arc<dyn Component>> = vec![jobs, apps];
    let metric_components = components.clone();
    let metric_view = view_rx.clone();
    let health_store = store.clone();
    let router = drover_service::http::finish_router(
        api,
        "drover-scheduler",
        move || health_store.health().map_err(|e| e.to_string()),
        move || {
            let mut m = Metrics::default();
            let view = metric_view.borrow().clone();
            m.gauge(
                "drover_scheduler_master_reachable",
                "Whether the last read of the master succeeded",
                &[],
                f64::from(u8::from(view.reachable)),
            );
            for c in metric_components.iter() {
                c.metrics(&mut m);
            }
            m.render()
        },
        config.token.clone(),
    );

    let sync = tokio::spawn(master_sync::run(master, view_tx, stop_rx.clone()));
    let mut loops = Vec::new();
    for c in &components {
        tracing::info!(component = c.name(), "starting");
        loops.push(c.clone().spawn(LoopContext {
            view: view_rx.clone(),
            stop: stop_rx.clone(),
        }));
    }
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let served =
        drover_service::http::serve(listener, router, config.connections.clone(), graceful).await;
    for l in loops {
        let _ = l.await;
    }
    let _ = sync.await;
    drop(components);
    served.map_err(RunError::Serve)
}
