//! `drover-scheduler`: keeps the desired state of long-running apps (Marathon's job) and
//! repeating jobs (Chronos's job) and makes the cluster match it through the master.
//!
//! The deciding parts are plain functions over a snapshot of state, with no I/O and no
//! clock they are not given. The server around them is thin: [`run`] serves each
//! component's routes, runs the master-sync loop, and runs each component's loop.
//!
//! # Layout
//!
//! - [`schedule`]: ISO 8601 repeating intervals (`R5/2026-01-01T00:00:00Z/P1D`), next
//!   run after an instant, time zones and DST.
//! - [`jobs`]: the job engine: due runs, retries, dependencies, stats, reconciliation.
//! - [`placement`]: where an app's instances go on a snapshot of the cluster.
//! - [`apps`]: the app engine: deployments, rollouts, replacement, backoff (snapshot in, plan out).
//!
//! The server:
//!
//! - [`opts`]: the command line (`drover-scheduler [serve|install|uninstall]`).
//! - [`install`]: `install` / `uninstall`: the config file and systemd unit from templates.
//! - [`server`]: `run` — store, components, master sync, HTTP server, with shutdown.
//! - [`component`]: what a part (jobs now, apps next) plugs in with: routes, loop, metrics.
//! - [`master_sync`]: the master's tasks and nodes, read about once a second and at once
//!   after each event of its stream, shared as a watch channel.
//! - [`jobs_server`]: the jobs runtime: the engine behind one lock, its loop, persisting
//!   each plan as one batch before its effects, and the launch/kill worker.
//! - [`jobs_store`]: the jobs' keys in the store, plans as batches, loading at start-up.
//! - [`launcher`]: launches to the master, for jobs and apps, in batches.
//! - [`jobs_api`]: the native `/v1/jobs` routes.
//! - [`chronos_api`]: Chronos's routes under `/scheduler` and `/v1/scheduler`.
//! - [`apps_server`]: the apps runtime: apps and deployments behind one lock, the tick
//!   that plans with [`apps`] and carries the plan out, the changes the API asks for.
//! - [`readiness_probe`]: the HTTP readiness probes the app engine asks for, bounded,
//!   each within its timeout; their results feed the next tick.
//! - [`apps_store`]: the apps' keys in the store (apps, versions, deployments), loading.
//! - [`apps_api`]: the native `/v1/apps` and `/v1/deployments` routes.
//! - [`marathon`]: Marathon's routes under `/v2` (apps, tasks, deployments, events).

pub mod apps;
pub mod apps_api;
pub mod apps_server;
pub mod apps_store;
pub mod chronos_api;
pub mod component;
pub mod install;
pub mod jobs;
pub mod jobs_api;
pub mod jobs_server;
pub mod jobs_store;
pub mod launcher;
pub mod marathon;
pub mod master_sync;
pub mod opts;
pub mod placement;
pub mod readiness_probe;
pub mod schedule;
pub mod server;

pub use opts::{Cli, Opts};
pub use server::{Config, RunError, run};
