//! The scheduler's shell around the engines: state behind a lock, loops, the store, the
//! master. It imports the engines and never the HTTP layer.
//!
//! - [`component`]: what a part (apps, jobs) plugs into the server with: its loop and
//!   its metrics.
//! - [`master_sync`]: the master's tasks and nodes, read about once a second and at once
//!   after each event of its stream, shared as a watch channel.
//! - [`apps`]: the apps runtime: apps and deployments behind one lock, the tick that
//!   plans with the app engine and carries the plan out, the changes the API asks for,
//!   and the typed events the event stream renders.
//! - [`jobs`]: the jobs runtime: the job engine behind one lock, its loop, persisting
//!   each plan as one batch before its effects, and the launch/kill worker.
//! - [`store`]: the apps' and jobs' keys in the store, plans as batches, loading.
//! - [`driver`]: the loop every runtime runs (tick, sleep until the wake-up, a master
//!   read, a poke or stop).
//! - [`master_port`]: launching and killing through the master, as a trait the HTTP
//!   client implements and simulations replace; [`clock`]: the runtimes' wall clock.
//! - [`accepted`]: tasks the master accepted that its last read may not show yet.
//! - [`launcher`]: launches to the master, for jobs and apps, in batches.
//! - [`readiness_probe`]: the HTTP readiness probes the app engine asks for, bounded,
//!   each within its timeout; their results feed the next tick.

pub mod accepted;
pub mod apps;
pub mod clock;
pub mod component;
pub mod driver;
pub mod jobs;
pub mod launcher;
pub mod master_port;
pub mod master_sync;
pub mod readiness_probe;
pub mod store;
