//! `drover-scheduler`: keeps the desired state of long-running apps (Marathon's job) and
//! repeating jobs (Chronos's job) and makes the cluster match it through the master.
//!
//! # Layout
//!
//! Four layers, each importing only the ones before it:
//!
//! ```text
//!  engine  ◀──  runtime  ◀──  http  ◀──  server
//!  (pure)       (state, loops,   (routes)     (assembles it all)
//!                store, master)
//! ```
//!
//! - [`engine`]: the deciding parts, a crate of their own (`drover-scheduler-engine`)
//!   so that the compiler keeps them free of I/O: schedules, placement, the apps engine
//!   and the jobs engine: plain functions over a snapshot of state, with no clock but
//!   the `now` they are given.
//! - [`runtime`]: the shell around the engines: state behind a lock, the loops that
//!   plan and carry plans out, the store, the master's view, launches, readiness probes.
//! - [`http`]: the native `/v1` routes, Marathon's `/v2` and Chronos's `/scheduler`:
//!   thin handlers over the runtime.
//! - [`server`]: `run`: store, runtimes, master sync, the HTTP server, with shutdown.
//! - [`opts`]: the command line (`drover-scheduler [serve|install|uninstall]`).
//! - [`install`]: `install` / `uninstall`: the config file and systemd unit from templates.

pub use drover_scheduler_engine as engine;

pub mod http;
pub mod install;
pub mod opts;
pub mod runtime;
pub mod server;

pub use opts::{Cli, Opts};
pub use server::{Config, RunError, run};
