//! Drover's master: the node registry, the resource ledger, the task state tracker and
//! the event stream (the Mesos master's role, plus Nomad's plan applier).
//!
//! Agents register and heartbeat with their resources and task states and long-poll
//! their assignments; the scheduler and operators place tasks, which the master accepts
//! only when they fit a ready node, and kill them; silent nodes become unreachable and
//! their tasks lost. Everything is written through to a `drover-store` redb file before
//! it is answered.
//!
//! # Layout
//!
//! - [`opts`]: the command line.
//! - [`install`]: `install` / `uninstall`: the config file and systemd unit from templates.
//! - [`server`]: `run` — store, core, HTTP server and failure detector, with shutdown.
//! - [`cluster`]: the cluster id in the store, and whether to use, make or refuse it.
//! - [`api`]: the HTTP handlers, thin shells over [`master`].
//! - [`extract`]: path and query extractors with JSON errors.
//! - [`master`]: the core — state behind one lock, write-through to the store, events,
//!   assignment revisions and long-poll wake-ups.
//! - [`state`]: the in-memory state and the pure decisions (`plan_*`).
//! - [`ledger`]: whether a task fits a node; host port allocation.
//! - [`reports`]: merging agent task reports through the task state machine.
//! - [`failure`]: failure detection and what unreachable means for tasks.
//! - [`assignments`]: what the master wants on a node (run and kill lists).
//! - [`events`]: the numbered event bus behind `/v1/events`.
//! - [`model`]: the stored node record, its public view, and the store keys.

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod assignments;
pub mod cluster;
pub mod events;
pub mod extract;
pub mod failure;
pub mod install;
pub mod ledger;
pub mod master;
pub mod model;
pub mod opts;
pub mod reports;
pub mod server;
pub mod state;

#[cfg(test)]
mod testutil;

pub use opts::{Cli, Opts};
pub use server::{Config, RunError, run};
