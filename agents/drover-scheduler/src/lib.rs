//! `drover-scheduler`: keeps the desired state of long-running apps (Marathon's job) and
//! repeating jobs (Chronos's job) and makes the cluster match it through the master.
//!
//! The deciding parts are plain functions over a snapshot of state, with no I/O and no
//! clock they are not given.
//!
//! # Layout
//!
//! - [`schedule`]: ISO 8601 repeating intervals (`R5/2026-01-01T00:00:00Z/P1D`), next
//!   run after an instant, time zones and DST.
//! - [`jobs`]: the job engine: due runs, retries, dependencies, stats, reconciliation.
//! - [`placement`]: where an app's instances go on a snapshot of the cluster.
//! - [`apps`]: the app engine: deployments, rollouts, replacement, backoff (snapshot in, plan out).

pub mod apps;
pub mod jobs;
pub mod placement;
pub mod schedule;
