//! Drover's wire types and typed HTTP client.
//!
//! Every binary (master, agent, scheduler, CLI) speaks through these types; no JSON is
//! assembled anywhere else. The types do no I/O; the async client sits behind the
//! `client` feature.
//!
//! # Layout
//!
//! - [`error`]: the JSON error body every API returns with a 4xx or 5xx.
//! - [`resources`]: CPU, memory, disk and port quantities.
//! - [`node`]: what an agent says about its host, and the master's view of a node.
//! - [`task`]: task definitions, the task state machine and health checks.
//! - [`container`]: the Docker container a task runs in, as the agent reads it.
//! - [`app`]: Marathon-compatible app definitions.
//! - [`deployment`]: deployments of app changes (steps, progress) and app status.
//! - [`job`]: Chronos-compatible job definitions.
//! - [`job_run`]: job run records, statistics and status.
//! - [`agent`]: the agent ⇄ master protocol (register, heartbeat, assignments).
//! - [`event`]: the master's event stream.
//! - [`meta`]: version and health documents served by every binary.
//! - `client` (feature `client`): typed async clients for the master and the agent.

#![warn(missing_docs)]

pub mod agent;
pub mod app;
#[cfg(feature = "client")]
pub mod client;
pub mod container;
pub mod deployment;
pub mod error;
pub mod event;
pub mod job;
pub mod job_run;
pub mod meta;
pub mod node;
pub mod resources;
pub mod task;

pub use error::{ApiError, ErrorCode};
pub use node::Capability;
pub use resources::{PortRange, Resources};
pub use task::{TaskId, TaskState};

/// The version of this build, reported by every binary and by agents to the master.
///
/// `DROVER_BUILD_VERSION` at compile time overrides the crate version, so a release (or
/// a test that needs a second build to upgrade to, as `scripts/dist --version` makes)
/// can be told apart from the last without editing every `Cargo.toml`.
pub const VERSION: &str = match option_env!("DROVER_BUILD_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Default master URL, on Mesos's master port.
pub const DEFAULT_MASTER_URL: &str = "http://127.0.0.1:5050";
/// Default scheduler URL, on Marathon's port.
pub const DEFAULT_SCHEDULER_URL: &str = "http://127.0.0.1:8080";
/// Default agent listen address, on the Mesos agent's port.
pub const DEFAULT_AGENT_LISTEN: &str = "127.0.0.1:5051";
