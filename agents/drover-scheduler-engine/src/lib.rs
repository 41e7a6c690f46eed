//! The deciding parts of `drover-scheduler`: plain functions and values over a snapshot
//! of state, with no I/O, no async runtime, no store and no clock but the `now` they are
//! given. Being a crate of its own, with only data crates as dependencies, is what keeps
//! it that way.
//!
//! - [`schedule`]: ISO 8601 repeating intervals (`R5/2026-01-01T00:00:00Z/P1D`), next
//!   run after an instant, time zones and DST.
//! - [`placement`]: where tasks go on a snapshot of the cluster (constraints, resources,
//!   ports, spreading).
//! - [`apps`]: the app engine (Marathon's part): deployments, rollouts, replacement,
//!   backoff; snapshot in, plan out.
//! - [`jobs`]: the job engine (Chronos's part): due runs, retries, dependencies, stats,
//!   reconciliation with the master's tasks.

pub mod apps;
pub mod jobs;
pub mod placement;
pub mod schedule;
