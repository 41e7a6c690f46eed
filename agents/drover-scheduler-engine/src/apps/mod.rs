//! The app engine (Marathon's part): keeps long-running apps at their wanted instances
//! and carries out deployments. Pure: snapshot in, plan out; no I/O, no clock but the
//! `now` it is given, no threads, no randomness (new task ids come from the snapshot's
//! `id_seed`).
//!
//! ```text
//!  API change ──▶ begin(change, app, running deployments, force, now)
//!                   └─▶ Began { app, deployment, superseded }      (server persists)
//!
//!  every tick ──▶ plan(&Snapshot { now, apps, deployments, tasks, cluster, versions,
//!                   │                readiness })
//!                   │ per app, in id order:
//!                   │  dependencies: hold a deployment until the apps it needs are ready
//!                   │  readiness: which new instances must still pass their checks
//!                   │  pending:   launches decided before, not shown by the master yet
//!                   │  reconcile: sort the app's tasks into buckets
//!                   │  backoff:   count new failures, reset after a stable instance
//!                   │  deployment: progress, success, deadline → failed (+ auto-revert)
//!                   │  rollout:   how many to launch and which to kill (the strategy)
//!                   │  placement: where the launches go (placement::place)
//!                   ▼
//!  AppsPlan { launches, kills, apps, deployments, removed, status, wake_at, probes }
//!      server: persist apps + deployments + removals, then send launches and kills,
//!              run the readiness probes and hand their results to the next tick
//! ```
//!
//! - [`state`]: [`AppState`], what the server keeps per app, and version stamps.
//! - [`begin`](mod@begin): every change to an app ([`AppChange`]) becomes a [`Deployment`];
//!   conflicts, `force`, [`cancel`].
//! - [`pending`]: task ids, and launches decided but not confirmed ([`PendingLaunch`]).
//! - [`reconcile`]: the buckets an app's tasks fall into ([`Buckets`]).
//! - [`rollout`]: the upgrade-strategy arithmetic ([`Limits`], [`rollout::decide`]).
//! - [`backoff`]: crash-loop delays and their reset.
//! - [`dependencies`]: what a dependency stands for, cycles, waiting for dependencies.
//! - [`readiness`]: which instances a deployment checks for readiness, and the probes.
//! - [`plan`](mod@plan): [`Snapshot`], [`plan()`] and [`AppsPlan`].
//!
//! # Vocabulary
//!
//! - *target version*: the app's current version; instances of other versions are *old*.
//! - *ready*: healthy, or running when the task has no health checks; an instance a
//!   running deployment started for an app with readiness checks is ready only once
//!   every check passed ([`readiness`]).
//! - *alive*: active and wanted (goal `run`, not unhealthy).
//! - *stopping*: Drover asked the master to kill it (goal `kill`) and it is still active;
//!   it holds resources, so it counts towards the over-capacity limit, and it is never
//!   counted as ready (it is going away).
//! - *mode* of an app in a tick: *replace* (create, update, restart, rollback: old
//!   instances are replaced), *count* (no deployment, or a scale: only the number of
//!   alive instances is corrected, whatever their version), *delete* (everything goes).
//!
//! # Contract with the server
//!
//! The plan is a function of the snapshot only: everything the engine must remember
//! between ticks is in [`AppState`] and [`Deployment`], and comes back changed in the
//! plan. The server persists `apps`, `deployments` and `removed` *before* it sends the
//! launches and kills; after a restart the same store and the master's tasks give the
//! same decisions, so a deployment carries on with no duplicate or orphan instance.
//! Every launch carries a task id the engine chose and recorded in its app's
//! `pending_launches`, persisted with the plan: until the snapshot's tasks show that id
//! (the master's, plus the tasks it answered with since its last read), the instance
//! counts as starting and the launch is repeated with the same id, which the master
//! answers with the task it has. So an answer lost to a crash of either side, or a
//! read of the master older than the launch, never makes a second instance; a launch
//! the master refused (handed back in `refused`) is decided again under a new id.
//! Kills are idempotent; a task already asked to stop (goal `kill`) is not killed again.

pub mod backoff;
pub mod begin;
pub mod dependencies;
pub mod pending;
pub mod plan;
pub mod readiness;
pub mod reconcile;
pub mod rollout;
pub mod state;

pub use begin::{AppChange, Began, Cancelled, Locked, begin, cancel};
pub use dependencies::check_cycles;
pub use plan::{AppsConfig, AppsPlan, Kill, KillReason, Snapshot, plan, versions_needed};
pub use readiness::ReadinessProbe;
pub use reconcile::Buckets;
pub use rollout::Limits;
pub use state::{AppState, PendingLaunch};

pub use drover_api::deployment::{
    AppStatus, Backoff, Deployment, DeploymentId, DeploymentKind, DeploymentState,
    ReadinessCheckResult, ReadinessResponse,
};

#[cfg(test)]
mod tests;
