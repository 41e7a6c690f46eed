//! Run records and job status: what a job did and is doing, as the scheduler persists
//! and serves it.
//!
//! A *run* is one execution the scheduler decided on (a scheduled instant, a dependency
//! round, a manual start); an *attempt* is one task of that run. A run that fails is
//! retried as attempts 2, 3, ... of the same run, and each attempt is one [`JobRun`]
//! record, keyed by [`JobRun::key`]. A scheduled instant that is not run (missed beyond
//! `epsilon`, or the previous run still going) is still recorded, as a skipped run.
//!
//! - [`JobRun`], [`RunTrigger`], [`JobRunState`], [`SkipReason`]: one attempt's record.
//! - [`JobStats`], [`DurationStats`]: counts and duration statistics of a job.
//! - [`JobState`], [`JobStatus`], [`UpcomingRun`]: a job as `drover jobs show` prints it.
//! - [`labels`]: the task labels that tie a task to its run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::task::{ExitStatus, TaskId};

/// Task labels the scheduler sets on a job's tasks, next to
/// [`crate::task::labels::JOB_NAME`].
pub mod labels {
    /// The run id (`DROVER_JOB_RUN` in the task's environment).
    pub const RUN_ID: &str = "drover.job.run";
    /// The attempt number, from 1 (`DROVER_JOB_ATTEMPT`).
    pub const ATTEMPT: &str = "drover.job.attempt";
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunTrigger {
    /// An instant of the job's schedule came due.
    Schedule,
    /// Every parent succeeded since the job's previous dependency run.
    Dependency,
    /// An operator asked for a run now, maybe with extra arguments.
    Manual {
        /// Appended to the command (shell-quoted for a shell command).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        arguments: Vec<String>,
    },
    /// A later attempt of a run whose previous attempt failed.
    Retry {
        /// The manual run's extra arguments, carried to its retries.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        arguments: Vec<String>,
    },
}

/// Where an attempt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobRunState {
    /// Recorded and sent to the master; its task has not started yet.
    Pending,
    /// Its task is running.
    Running,
    /// Its task exited 0.
    Succeeded,
    /// Its task failed, was lost, or the master refused it; see `retry_at`.
    Failed,
    /// Its task was killed (or the run was cancelled before it started).
    Killed,
    /// The run was never started; see `skip_reason`.
    Skipped,
}

impl JobRunState {
    /// Whether the attempt has ended (or never started) and will not change by itself.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobRunState::Pending | JobRunState::Running)
    }

    /// The lowercase name used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobRunState::Pending => "pending",
            JobRunState::Running => "running",
            JobRunState::Succeeded => "succeeded",
            JobRunState::Failed => "failed",
            JobRunState::Killed => "killed",
            JobRunState::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for JobRunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run was skipped rather than started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The instant was missed (the scheduler was down or busy) by more than the job's
    /// `epsilon`, or a later instant was run instead: runs are never caught up in bulk.
    Missed,
    /// `concurrent` is false and the job's previous run was still pending, running or
    /// waiting to retry.
    PreviousRunStillRunning,
}

impl SkipReason {
    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Missed => "missed by more than epsilon, or superseded by a later instant",
            SkipReason::PreviousRunStillRunning => "previous run still running",
        }
    }
}

/// One attempt of one run of a job: persisted as pending before its task is launched,
/// and again at every change, so a restarted scheduler neither repeats nor forgets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// The job's name.
    pub job: String,
    /// The run's id, unique within the job (and across a job deleted and created again);
    /// shared by all attempts of the run.
    pub run_id: String,
    /// The run's number within the job, from 1, in the order runs were decided.
    pub number: u64,
    /// The schedule instant of a scheduled run; for dependency and manual runs, the
    /// instant they were triggered. Every attempt of a run keeps the run's value.
    pub scheduled_for: DateTime<Utc>,
    /// What started the run (for attempts after the first: [`RunTrigger::Retry`]).
    pub trigger: RunTrigger,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// Where the attempt is.
    pub state: JobRunState,
    /// Why the run was skipped, when `state` is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// The attempt's task id; absent for a skipped run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The node the task ran on, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When the scheduler decided to launch it (lateness = `launched_at - scheduled_for`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<DateTime<Utc>>,
    /// When its process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended (or was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from start to end, when both are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// How the task's process ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// A failed attempt that will be retried: when attempt `attempt + 1` starts. Cleared
    /// once that attempt is recorded, so an attempt with `retry_at` set is still open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    /// When someone asked to kill it; a task the master never heard of is then not
    /// launched again but recorded as killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_requested_at: Option<DateTime<Utc>>,
    /// Why it is in this state (the master's refusal, "task lost", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl JobRun {
    /// The key the record is stored under within its job: `<run id>.<attempt>`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.run_id, self.attempt)
    }

    /// Whether the scheduler still has work with this attempt: pending, running, or
    /// failed and waiting to be retried.
    pub fn is_open(&self) -> bool {
        !self.state.is_terminal() || (self.state == JobRunState::Failed && self.retry_at.is_some())
    }

    /// How late the scheduler launched it after it was due, in seconds.
    pub fn lateness_seconds(&self) -> Option<f64> {
        let launched = self.launched_at?;
        (launched - self.scheduled_for)
            .num_microseconds()
            .map(|us| us as f64 / 1e6)
    }
}

/// Duration statistics over a job's recent finished runs, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationStats {
    /// How many runs the figures cover.
    pub count: usize,
    /// The 50th percentile.
    pub median: f64,
    /// The arithmetic mean (not the median).
    pub mean: f64,
    /// The 75th percentile.
    pub p75: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
}

/// A job's counts over its whole history, and duration statistics over recent runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStats {
    /// Runs that succeeded (a run counts once, whatever its attempts), plus manual
    /// "mark success"es.
    pub success_count: u64,
    /// Runs that failed after their last attempt.
    pub error_count: u64,
    /// Runs that were killed.
    #[serde(default)]
    pub killed_count: u64,
    /// Runs that were skipped.
    #[serde(default)]
    pub skipped_count: u64,
    /// When a run last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// When a run last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<DateTime<Utc>>,
    /// Durations of the recent finished runs; absent before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations: Option<DurationStats>,
}

/// A job's state, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Enabled, nothing running, waiting for its next instant.
    Idle,
    /// A run is pending, running or waiting to retry.
    Running,
    /// A dependent job some of whose parents have not succeeded since its last run.
    WaitingForParents,
    /// Disabled: it keeps its definition but does not run on its own.
    Disabled,
    /// Its schedule has no run left (`R<n>` used up, or past year 9999).
    FinishedRepeating,
}

impl JobState {
    /// The lowercase name used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Idle => "idle",
            JobState::Running => "running",
            JobState::WaitingForParents => "waiting_for_parents",
            JobState::Disabled => "disabled",
            JobState::FinishedRepeating => "finished_repeating",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A future scheduled run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpcomingRun {
    /// The instant, in UTC.
    pub at: DateTime<Utc>,
    /// The same instant on the job's wall clock (RFC 3339 with the offset in force then).
    pub local: String,
}

/// A job as `drover jobs show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// Its state.
    pub state: JobState,
    /// The zone of `upcoming[].local` (an IANA name, or a fixed offset such as `+02:00`).
    pub zone: String,
    /// The next scheduled runs; empty for dependent and finished jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upcoming: Vec<UpcomingRun>,
    /// For a dependent job: the parents that have not succeeded since its last run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// The open attempts (pending, running, waiting to retry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<JobRun>,
    /// Counts and durations.
    pub stats: JobStats,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn run_record_round_trips_in_camel_case() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let run = JobRun {
            job: "report".into(),
            run_id: "abc-1".into(),
            number: 1,
            scheduled_for: at,
            trigger: RunTrigger::Manual {
                arguments: vec!["-v".into()],
            },
            attempt: 1,
            state: JobRunState::Failed,
            skip_reason: None,
            task_id: Some(TaskId::from("report.abc-1.1")),
            node: Some("n1".into()),
            launched_at: Some(at),
            started_at: None,
            finished_at: None,
            duration_seconds: None,
            exit: Some(ExitStatus {
                code: Some(1),
                signal: None,
            }),
            retry_at: Some(at),
            kill_requested_at: None,
            message: None,
        };
        let v = serde_json::to_value(&run).unwrap();
        assert_eq!(v["scheduledFor"], "2026-01-01T00:00:00Z");
        assert_eq!(v["trigger"]["kind"], "manual");
        assert_eq!(v["state"], "failed");
        assert!(run.is_open());
        assert_eq!(run.key(), "abc-1.1");
        assert_eq!(serde_json::from_value::<JobRun>(v).unwrap(), run);
    }
}
