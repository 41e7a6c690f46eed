//! The scheduler's HTTP API: thin handlers that parse a request, call the runtime and
//! render what it returns. Nothing here decides; the runtime never imports this layer.
//!
//! - [`apps`]: the native `/v1/apps` and `/v1/deployments` routes.
//! - [`marathon`]: Marathon's routes under `/v2` (apps, tasks, deployments, events).
//! - [`jobs`]: the native `/v1/jobs` routes.
//! - [`chronos`]: Chronos's routes under `/scheduler` and `/v1/scheduler`.

use std::sync::Arc;

use axum::Router;
use drover_api::client::MasterClient;
use tokio::sync::watch;

use crate::runtime::apps::Apps;
use crate::runtime::jobs::Jobs;

pub mod apps;
pub mod chronos;
pub mod jobs;
pub mod marathon;

/// Every API route of the scheduler (without the shared `/health`, `/metrics` and
/// `/version`). Responses that stream (event streams) end once `stop` turns true:
/// graceful shutdown waits for every open response, so one that never ended would hold
/// the server up.
pub fn router(
    apps: Arc<Apps>,
    jobs: Arc<Jobs>,
    master: MasterClient,
    stop: watch::Receiver<bool>,
) -> Router {
    apps::router(apps.clone())
        .merge(marathon::router(apps, stop))
        .merge(jobs::router(jobs.clone(), master))
        .merge(chronos::router(jobs))
}
