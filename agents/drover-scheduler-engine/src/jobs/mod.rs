//! The job engine (Chronos's part): which runs are due, retries, dependencies,
//! statistics, and the step that reconciles runs with the master. Pure: no I/O, no
//! clock but the `now` it is given, no threads.
//!
//! ```text
//!  store ──load──▶ JobEngine ──step(master tasks, now) / command(..)──▶ Plan
//!                      ▲                                                  │
//!                      └── server: persist records + progress, then launch/kill
//! ```
//!
//! - [`due`]: at most one due run per schedule check, the missed instants, the next
//!   wake-up ([`due::Cursor`] says what is handled).
//! - [`retry`]: whether and when a failed attempt is retried.
//! - [`deps`]: parent marks and readiness of dependent jobs.
//! - [`stats`]: counts and duration percentiles.
//! - [`launch`]: run ids, task ids, and the task definition of a run.
//! - [`engine`]: [`JobEngine`] with `step`, `command` and `status`, and the
//!   [`Action`]s of its [`Plan`]s.
//!
//! Vocabulary: a *run* is one decided execution of a job (a schedule instant, a
//! dependency round, a manual start); an *attempt* is one task of a run (attempt 1, and
//! more after failures); an *open* attempt is pending, running, or failed and waiting
//! to retry; a *skipped* run was recorded but never launched.

pub mod deps;
pub mod due;
pub mod engine;
pub mod launch;
pub mod retry;
pub mod stats;

pub use engine::{
    Action, Command, EngineConfig, EngineError, JobEngine, JobProgress, MasterTasks, Plan,
    TaskObservation,
};
