//! The job engine: the jobs' working state, and the step that reconciles it with the
//! clock and the master's task states into a [`Plan`] of actions.
//!
//! ```text
//!  load: restore_job(job, progress) + restore_run(open run records)
//!        │
//!        ▼   step(master tasks, now)               command(run now, kill, ...)
//!  ┌───────────────────────────────────────────┐   ┌──────────────────────────┐
//!  │ 1. reconcile open runs with the master:   │   │ RunNow, MarkSuccess,     │
//!  │    started / finished / failed / lost /   │   │ Kill, Enable, Disable,   │
//!  │    killed / unknown (launch again)        │   │ LaunchRefused            │
//!  │    retries whose time has come            │   └────────────┬─────────────┘
//!  │ 2. parents' successes mark their children │                │
//!  │ 3. ready dependents start                 │◀───────────────┘
//!  │ 4. scheduled jobs: due::decide            │
//!  └───────────────────────────────────────────┘
//!        ▼
//!  Plan { actions: [records, SaveJob, SaveProgress..., LaunchRun / KillTask / ...], wake_at }
//! ```
//!
//! # Contract with the server
//!
//! The engine owns the in-memory working state and changes it as it decides; every
//! change that must survive a restart is in the returned plan as a persist action
//! ([`Action::RecordRun`], [`Action::MarkSkipped`], [`Action::SaveProgress`],
//! [`Action::SaveJob`]). A plan lists all its persist actions before any effect
//! ([`Action::LaunchRun`], [`Action::KillTask`]); the server writes the persist
//! actions (in order, ideally as one atomic batch), then performs the effects. If a
//! write fails, the server must not perform the effects and should rebuild the engine
//! from the store, which then holds the state from before the plan.
//!
//! A run is recorded as pending before its task is launched. After a restart, a pending
//! run whose task the master does not know is launched again with the same task id and
//! definition (the master takes a same-id launch as an idempotent retry); one it knows
//! is followed to its end. So a restart neither runs a job twice nor forgets a run.
//!
//! `master` is the master's view of the jobs' tasks by id (all tasks with the
//! [`drover_api::task::labels::JOB_NAME`] label); `None` when it could not be read, in
//! which case open runs are left as they are and only pending launches are re-sent.
//! The master must keep terminal tasks for longer than a scheduler restart takes, or a
//! pending run whose task already ended would run again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use drover_api::app::Constraint;
use drover_api::job::{ChronosJob, JobConstraint};
use drover_api::job_run::{
    JobRun, JobRunState, JobState, JobStatus, RunTrigger, SkipReason, UpcomingRun,
};
use drover_api::task::{ExitStatus, Task, TaskDefinition, TaskId, TaskState};
use serde::{Deserialize, Serialize};

use super::deps::{ChildIndex, ParentMarks};
use super::due::{self, Cursor};
use super::launch;
use super::retry::{AfterFailure, RetryPolicy};
use super::stats::RunStats;
use crate::schedule::{Schedule, ScheduleError, ScheduleZone};

/// The engine's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Delay between a failed attempt and the next.
    pub retry: RetryPolicy,
    /// The smallest epsilon used, whatever the job says: the scheduler's own wake-up
    /// jitter must not make a healthy scheduler skip runs of a job with `epsilon: PT0S`.
    pub min_epsilon: TimeDelta,
    /// How long a pending run's task may stay unknown to the master before its launch
    /// is sent again (the first launch may have been lost, or refused for lack of room).
    pub relaunch_after: TimeDelta,
    /// Seconds between SIGTERM and SIGKILL when a run is killed.
    pub kill_grace_seconds: f64,
    /// The shortest period a repeating schedule may have when a job is put through the
    /// API (jobs already stored keep running as accepted).
    pub min_period: TimeDelta,
}

/// The default shortest period between a job's runs: the shortest period in Chronos's
/// own tests, and already a run record a second.
pub const DEFAULT_MIN_PERIOD_SECONDS: i64 = 1;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetryPolicy::default(),
            min_epsilon: TimeDelta::seconds(1),
            relaunch_after: TimeDelta::seconds(10),
            kill_grace_seconds: 5.0,
            min_period: TimeDelta::seconds(DEFAULT_MIN_PERIOD_SECONDS),
        }
    }
}

/// What the engine keeps per job besides its definition and open runs; persisted with
/// the job ([`Action::SaveProgress`]) and given back by [`JobEngine::restore_job`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// When the job was first accepted: the `now` of an empty schedule start, and part
    /// of its run ids.
    pub created_at: DateTime<Utc>,
    /// Which schedule instants are handled.
    pub cursor: Cursor,
    /// The number the next run gets.
    pub next_number: u64,
    /// For a dependent job: parents that succeeded since its last dependency run.
    #[serde(default)]
    pub parent_marks: ParentMarks,
    /// Counts and recent durations.
    #[serde(default)]
    pub stats: RunStats,
}

/// A task as the master reports it: the part the engine reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskObservation {
    /// Its state.
    pub state: TaskState,
    /// The node it was placed on.
    pub node: Option<String>,
    /// How it ended.
    pub exit: Option<ExitStatus>,
    /// Why it is in this state.
    pub message: Option<String>,
    /// When its process started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&Task> for TaskObservation {
    fn from(t: &Task) -> Self {
        TaskObservation {
            state: t.state,
            node: Some(t.spec.node.clone()),
            exit: t.exit,
            message: t.message.clone(),
            started_at: t.started_at,
            finished_at: t.finished_at,
        }
    }
}

/// The master's tasks by id.
pub type MasterTasks = HashMap<TaskId, TaskObservation>;

/// Something the server must do, in plan order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Persist this run record (key: job, [`JobRun::key`]), replacing an older version.
    RecordRun(JobRun),
    /// Persist this record of a skipped run.
    MarkSkipped(JobRun),
    /// Persist the job's definition (enable/disable changed it).
    SaveJob(Box<ChronosJob>),
    /// Persist the job's progress.
    SaveProgress {
        /// The job.
        job: String,
        /// Its progress.
        progress: JobProgress,
    },
    /// Ask the master to run this task (placing it first); a refusal comes back as
    /// [`Command::LaunchRefused`].
    LaunchRun {
        /// The job.
        job: String,
        /// The run.
        run_id: String,
        /// The attempt, from 1.
        attempt: u32,
        /// The task id to launch under (the same on every resend).
        task_id: TaskId,
        /// What to run.
        definition: TaskDefinition,
        /// The job's placement constraints.
        constraints: Vec<Constraint>,
    },
    /// Ask the master to kill this task.
    KillTask {
        /// The job.
        job: String,
        /// The run.
        run_id: String,
        /// The task.
        task_id: TaskId,
    },
    /// A failed attempt will be retried at `at` (already in the plan's `wake_at` and
    /// the attempt's record; for logs and events).
    ScheduleRetry {
        /// The job.
        job: String,
        /// The run.
        run_id: String,
        /// The attempt that will start.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
}

impl Action {
    /// Whether this action writes to the store (all of these come before any effect).
    pub fn is_persist(&self) -> bool {
        matches!(
            self,
            Action::RecordRun(_)
                | Action::MarkSkipped(_)
                | Action::SaveJob(_)
                | Action::SaveProgress { .. }
        )
    }
}

/// The outcome of a step or command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// What to do, in order: persist actions first, then effects.
    pub actions: Vec<Action>,
    /// When to call [`JobEngine::step`] again at the latest (besides on master events
    /// and commands); `None` when nothing is scheduled.
    pub wake_at: Option<DateTime<Utc>>,
}

/// An operator's (or the server's) input besides the clock and the master's tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start a run now, with extra arguments.
    RunNow {
        /// The job.
        job: String,
        /// Appended to the command.
        arguments: Vec<String>,
    },
    /// Count a success of the job now (its children's marks included), as Chronos's
    /// `PUT /job/success/{name}`.
    MarkSuccess {
        /// The job.
        job: String,
    },
    /// Kill the job's open runs (and cancel their retries).
    Kill {
        /// The job.
        job: String,
    },
    /// Enable the job; instants before now are not run nor recorded.
    Enable {
        /// The job.
        job: String,
    },
    /// Disable the job: no scheduled, dependency or retry attempts start; runs already
    /// going finish.
    Disable {
        /// The job.
        job: String,
    },
    /// The master refused the launch of this task (it answered 4xx: no node fits, a
    /// different task holds the id); counts as a failed attempt, retried as usual. Not
    /// for transport errors: the engine re-sends an unanswered launch by itself after
    /// [`EngineConfig::relaunch_after`].
    LaunchRefused {
        /// The task.
        task_id: TaskId,
        /// The master's reason.
        message: String,
    },
}

/// Why the engine refused a job or a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// No job has this name.
    #[error("no job named {0:?}")]
    UnknownJob(String),
    /// The job's schedule does not resolve.
    #[error("job {job:?}: {source}")]
    Schedule {
        /// The job.
        job: String,
        /// Why.
        #[source]
        source: ScheduleError,
    },
    /// The job has no schedule and no parents.
    #[error("job {0:?} has neither a schedule nor parents")]
    NoTrigger(String),
    /// A run was asked for while one is going and the job is not concurrent.
    #[error("job {0:?} is already running and is not concurrent")]
    AlreadyRunning(String),
    /// A kill was asked for while nothing runs.
    #[error("job {0:?} has no run to kill")]
    NotRunning(String),
    /// No open run has this task.
    #[error("no pending run has task {0}")]
    UnknownTask(TaskId),
}

/// An open attempt and when its launch was last sent (not persisted: after a restart
/// a pending run's launch is re-sent at once if the master does not know its task).
#[derive(Debug, Clone, PartialEq)]
struct OpenRun {
    record: JobRun,
    last_launch: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct JobEntry {
    job: ChronosJob,
    schedule: Option<Schedule>,
    epsilon: TimeDelta,
    progress: JobProgress,
    /// The latest attempt of each run that is not over, oldest run first.
    open: Vec<OpenRun>,
    /// Cache of the next schedule instant: `None` = unknown, `Some(None)` = no more.
    next_instant: Option<Option<DateTime<Utc>>>,
}

/// Collects a plan: persist actions, then effects.
#[derive(Default)]
struct Builder {
    records: Vec<Action>,
    saved_jobs: Vec<ChronosJob>,
    dirty: BTreeSet<String>,
    effects: Vec<Action>,
    /// Jobs that succeeded (or soft-failed), for their children's marks.
    successes: Vec<(String, DateTime<Utc>)>,
}

impl Builder {
    fn record(&mut self, run: &JobRun) {
        self.records.push(Action::RecordRun(run.clone()));
    }

    fn touch(&mut self, job: &str) {
        if !self.dirty.contains(job) {
            self.dirty.insert(job.to_string());
        }
    }
}

/// The job engine. See the module docs for the contract.
///
/// Loading after a restart: [`JobEngine::restore_job`] for every job, then
/// [`JobEngine::restore_run`] for every open run record (passing closed ones too is
/// harmless), then [`JobEngine::step`] at once.
#[derive(Debug, Clone, Default)]
pub struct JobEngine {
    config: EngineConfig,
    jobs: BTreeMap<String, JobEntry>,
    /// Each job's children; `None` after a job was put or removed, rebuilt when next
    /// needed (so loading 10,000 jobs one by one stays linear).
    children: Option<ChildIndex>,
}

impl JobEngine {
    /// An engine with no jobs.
    pub fn new(config: EngineConfig) -> Self {
        JobEngine {
            config,
            jobs: BTreeMap::new(),
            children: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Adds a new job, or replaces a job's definition. A new job's schedule starts at
    /// `now - epsilon` (so a start a little in the past still runs); a changed schedule
    /// starts over at `now`. Open runs keep going.
    pub fn put_job(&mut self, job: ChronosJob, now: DateTime<Utc>) -> Result<Plan, EngineError> {
        let progress = match self.jobs.get(&job.name) {
            Some(old) => {
                let mut p = old.progress.clone();
                if old.job.schedule != job.schedule
                    || old.job.schedule_time_zone != job.schedule_time_zone
                {
                    p.cursor = Cursor::From(now);
                }
                p.parent_marks.retain_parents(&job.parents);
                p
            }
            None => JobProgress {
                created_at: now,
                cursor: Cursor::From(now.checked_sub_signed(self.epsilon_of(&job)).unwrap_or(now)),
                next_number: 1,
                parent_marks: ParentMarks::default(),
                stats: RunStats::default(),
            },
        };
        let name = job.name.clone();
        self.restore_job(job, progress)?;
        let progress = self.jobs.get(&name).map(|e| e.progress.clone());
        // The new entry's next instant is unknown until the next step, so that step is
        // due now; computing the wake-up over every job here would make loading many
        // jobs quadratic.
        Ok(Plan {
            actions: progress
                .map(|progress| Action::SaveProgress {
                    job: name,
                    progress,
                })
                .into_iter()
                .collect(),
            wake_at: Some(now),
        })
    }

    /// Loads a persisted job and its progress (at start-up), replacing any job of that
    /// name but keeping its open runs.
    pub fn restore_job(
        &mut self,
        job: ChronosJob,
        progress: JobProgress,
    ) -> Result<(), EngineError> {
        let schedule = match &job.schedule {
            Some(s) => Some(
                Schedule::parse(s, job.schedule_time_zone.as_deref(), progress.created_at)
                    .map_err(|source| EngineError::Schedule {
                        job: job.name.clone(),
                        source,
                    })?,
            ),
            None if job.parents.is_empty() => return Err(EngineError::NoTrigger(job.name.clone())),
            None => None,
        };
        let epsilon = self.epsilon_of(&job);
        let open = self
            .jobs
            .remove(&job.name)
            .map(|e| e.open)
            .unwrap_or_default();
        self.jobs.insert(
            job.name.clone(),
            JobEntry {
                job,
                schedule,
                epsilon,
                progress,
                open,
                next_instant: None,
            },
        );
        self.rebuild_children();
        Ok(())
    }

    /// Loads a persisted run record (at start-up). Records that are not open are
    /// ignored, as are records of unknown jobs and attempts older than one already
    /// loaded; returns whether it was kept. Also makes sure the job's progress is past
    /// the record (its run number, and its schedule instant for a scheduled run), in
    /// case the progress write of the same plan was lost.
    pub fn restore_run(&mut self, run: JobRun) -> bool {
        let Some(entry) = self.jobs.get_mut(&run.job) else {
            return false;
        };
        entry.progress.next_number = entry.progress.next_number.max(run.number.saturating_add(1));
        if run.trigger == RunTrigger::Schedule && entry.progress.cursor.admits(run.scheduled_for) {
            entry.progress.cursor = Cursor::After(run.scheduled_for);
            entry.next_instant = None;
        }
        if !run.is_open() {
            return false;
        }
        match entry
            .open
            .iter_mut()
            .find(|o| o.record.run_id == run.run_id)
        {
            Some(o) if o.record.attempt >= run.attempt => false,
            Some(o) => {
                o.record = run;
                o.last_launch = None;
                true
            }
            None => {
                entry.open.push(OpenRun {
                    record: run,
                    last_launch: None,
                });
                entry.open.sort_by_key(|o| o.record.number);
                true
            }
        }
    }

    /// Removes a job; its open runs' tasks are killed. Persisting the removal is the
    /// caller's.
    pub fn remove_job(&mut self, name: &str) -> Plan {
        let mut plan = Plan::default();
        if let Some(entry) = self.jobs.remove(name) {
            for o in entry.open {
                if let (Some(task_id), false) = (o.record.task_id, o.record.state.is_terminal()) {
                    plan.actions.push(Action::KillTask {
                        job: name.to_string(),
                        run_id: o.record.run_id,
                        task_id,
                    });
                }
            }
        }
        self.rebuild_children();
        plan
    }

    /// The job's definition.
    pub fn job(&self, name: &str) -> Option<&ChronosJob> {
        self.jobs.get(name).map(|e| &e.job)
    }

    /// The job's progress, as last saved.
    pub fn progress(&self, name: &str) -> Option<&JobProgress> {
        self.jobs.get(name).map(|e| &e.progress)
    }

    /// The job's open attempts (pending, running, waiting to retry).
    pub fn open_runs(&self, name: &str) -> Vec<&JobRun> {
        self.jobs
            .get(name)
            .map(|e| e.open.iter().map(|o| &o.record).collect())
            .unwrap_or_default()
    }

    /// The job names, in order.
    pub fn job_names(&self) -> impl Iterator<Item = &str> {
        self.jobs.keys().map(String::as_str)
    }

    /// Reconciles the open runs with the master's tasks, starts retries, dependency
    /// runs and scheduled runs that are due at `now`, and records the skipped ones.
    pub fn step(&mut self, master: Option<&MasterTasks>, now: DateTime<Utc>) -> Plan {
        let mut b = Builder::default();
        let config = self.config;
        for entry in self.jobs.values_mut() {
            reconcile_job(entry, &config, master, now, &mut b);
        }
        self.start_ready_dependents(now, &mut b);
        for entry in self.jobs.values_mut() {
            run_schedule(entry, &config, now, &mut b);
        }
        self.finish(b, now)
    }

    /// Applies a command at `now`.
    pub fn command(&mut self, command: Command, now: DateTime<Utc>) -> Result<Plan, EngineError> {
        let mut b = Builder::default();
        let config = self.config;
        match command {
            Command::RunNow { job, arguments } => {
                let entry = self.entry_mut(&job)?;
                if !entry.job.concurrent && !entry.open.is_empty() {
                    return Err(EngineError::AlreadyRunning(job));
                }
                start_run(
                    entry,
                    &config,
                    RunTrigger::Manual { arguments },
                    now,
                    now,
                    &mut b,
                );
            }
            Command::MarkSuccess { job } => {
                let entry = self.entry_mut(&job)?;
                entry.progress.stats.record_success(now, None);
                b.touch(&job);
                b.successes.push((job, now));
                self.start_ready_dependents(now, &mut b);
            }
            Command::Kill { job } => {
                let entry = self.entry_mut(&job)?;
                if entry.open.is_empty() {
                    return Err(EngineError::NotRunning(job));
                }
                let mut keep = Vec::new();
                for mut o in std::mem::take(&mut entry.open) {
                    let r = &mut o.record;
                    if r.state.is_terminal() {
                        // Waiting to retry: cancel the retry.
                        r.state = JobRunState::Killed;
                        r.retry_at = None;
                        r.kill_requested_at = Some(now);
                        r.message = Some("killed while waiting to retry".into());
                        entry.progress.stats.record_killed();
                        b.record(r);
                        b.touch(&job);
                        continue;
                    }
                    r.kill_requested_at = Some(now);
                    b.record(r);
                    if let Some(task_id) = r.task_id.clone() {
                        b.effects.push(Action::KillTask {
                            job: job.clone(),
                            run_id: r.run_id.clone(),
                            task_id,
                        });
                    }
                    keep.push(o);
                }
                entry.open = keep;
            }
            Command::Enable { job } => {
                let entry = self.entry_mut(&job)?;
                if entry.job.disabled {
                    entry.job.disabled = false;
                    entry.progress.cursor = Cursor::From(now);
                    entry.progress.parent_marks.clear();
                    entry.next_instant = None;
                    b.saved_jobs.push(entry.job.clone());
                    b.touch(&job);
                }
                run_schedule(entry, &config, now, &mut b);
            }
            Command::Disable { job } => {
                let entry = self.entry_mut(&job)?;
                if !entry.job.disabled {
                    entry.job.disabled = true;
                    b.saved_jobs.push(entry.job.clone());
                }
            }
            Command::LaunchRefused { task_id, message } => {
                let (name, idx) = self
                    .jobs
                    .iter()
                    .find_map(|(name, e)| {
                        e.open
                            .iter()
                            .position(|o| {
                                o.record.state == JobRunState::Pending
                                    && o.record.task_id.as_ref() == Some(&task_id)
                            })
                            .map(|i| (name.clone(), i))
                    })
                    .ok_or_else(|| EngineError::UnknownTask(task_id.clone()))?;
                let entry = self.entry_mut(&name)?;
                let mut o = entry.open.remove(idx);
                let failure = Failure {
                    message: format!("the master refused the launch: {message}"),
                    exit: None,
                    finished_at: now,
                };
                if let Some(o) = fail_attempt(entry, &config, &mut o, failure, &mut b) {
                    entry.open.insert(idx, o);
                }
            }
        }
        Ok(self.finish(b, now))
    }

    /// The job as `drover jobs show` prints it, with its next `upcoming` runs.
    pub fn status(&self, name: &str, now: DateTime<Utc>, upcoming: usize) -> Option<JobStatus> {
        let e = self.jobs.get(name)?;
        let has_more = e
            .schedule
            .as_ref()
            .is_some_and(|s| next_pending_instant(s, e.progress.cursor, now).is_some());
        let waiting_for = if e.job.parents.is_empty() {
            Vec::new()
        } else {
            e.progress.parent_marks.waiting_for(&e.job.parents)
        };
        let state = if e.job.disabled {
            JobState::Disabled
        } else if !e.open.is_empty() {
            JobState::Running
        } else if e.schedule.is_some() && !has_more {
            JobState::FinishedRepeating
        } else if !waiting_for.is_empty() {
            JobState::WaitingForParents
        } else {
            JobState::Idle
        };
        let (zone, upcoming) = match &e.schedule {
            Some(s) => {
                let from = next_pending_instant(s, e.progress.cursor, now);
                let runs = from.into_iter().flat_map(|f| s.runs_from(f)).take(upcoming);
                (
                    zone_name(s.zone()),
                    runs.map(|at| upcoming_run(s.zone(), at)).collect(),
                )
            }
            None => ("UTC".to_string(), Vec::new()),
        };
        Some(JobStatus {
            name: name.to_string(),
            state,
            zone,
            upcoming,
            waiting_for,
            active: e.open.iter().map(|o| o.record.clone()).collect(),
            stats: e.progress.stats.to_api(),
        })
    }

    fn entry_mut(&mut self, name: &str) -> Result<&mut JobEntry, EngineError> {
        self.jobs
            .get_mut(name)
            .ok_or_else(|| EngineError::UnknownJob(name.to_string()))
    }

    fn epsilon_of(&self, job: &ChronosJob) -> TimeDelta {
        job.epsilon
            .fixed_length()
            .unwrap_or(TimeDelta::seconds(60))
            .max(self.config.min_epsilon)
    }

    fn rebuild_children(&mut self) {
        self.children = None;
    }

    /// Marks the children of this plan's successes, then starts every enabled dependent
    /// job whose parents are all marked and that may start (not running, or concurrent).
    /// A ready dependent that may not start yet keeps its marks and starts once its
    /// previous run is over.
    fn start_ready_dependents(&mut self, now: DateTime<Utc>, b: &mut Builder) {
        let config = self.config;
        let jobs = &self.jobs;
        let index = self.children.get_or_insert_with(|| {
            ChildIndex::build(
                jobs.values()
                    .map(|e| (e.job.name.as_str(), e.job.parents.as_slice())),
            )
        });
        let mut marks: Vec<(String, String, DateTime<Utc>)> = Vec::new();
        for (parent, at) in std::mem::take(&mut b.successes) {
            for child in index.children(&parent) {
                marks.push((child.to_string(), parent.clone(), at));
            }
        }
        for (child, parent, at) in marks {
            if let Some(e) = self.jobs.get_mut(&child)
                && !e.job.disabled
            {
                e.progress.parent_marks.mark(&parent, at);
                b.touch(&child);
            }
        }
        for entry in self.jobs.values_mut() {
            let ready = !entry.job.disabled
                && entry.progress.parent_marks.ready(&entry.job.parents)
                && (entry.job.concurrent || entry.open.is_empty());
            if ready {
                entry.progress.parent_marks.clear();
                start_run(entry, &config, RunTrigger::Dependency, now, now, b);
            }
        }
    }

    /// Orders the plan (persist actions, then effects) and computes the wake-up.
    fn finish(&mut self, mut b: Builder, now: DateTime<Utc>) -> Plan {
        // Successes from the last phase (a command's kill, a refusal) mark children now
        // too, so no mark is ever lost between calls.
        if !b.successes.is_empty() {
            self.start_ready_dependents(now, &mut b);
        }
        let mut actions = b.records;
        actions.extend(
            b.saved_jobs
                .into_iter()
                .map(|j| Action::SaveJob(Box::new(j))),
        );
        for job in b.dirty {
            if let Some(e) = self.jobs.get(&job) {
                actions.push(Action::SaveProgress {
                    job,
                    progress: e.progress.clone(),
                });
            }
        }
        actions.extend(b.effects);
        Plan {
            actions,
            wake_at: self.wake_at(now),
        }
    }

    /// The earliest instant something is due: a schedule instant of an enabled job, a
    /// retry, or a launch to send again. A scheduled job not checked since it was put or
    /// loaded makes it `now`: the server should step again at once.
    fn wake_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut earliest: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        for e in self.jobs.values() {
            if !e.job.disabled && e.schedule.is_some() {
                match e.next_instant {
                    Some(Some(t)) => consider(t),
                    Some(None) => {}
                    None => consider(now),
                }
            }
            for o in &e.open {
                if let Some(t) = o.record.retry_at {
                    consider(t);
                }
                if o.record.state == JobRunState::Pending
                    && let Some(t) = o.last_launch
                {
                    consider(t + self.config.relaunch_after);
                }
            }
        }
        earliest
    }
}

/// The first instant at or after `now` that the cursor still admits.
fn next_pending_instant(s: &Schedule, cursor: Cursor, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let from = match cursor {
        Cursor::From(t) => t.max(now),
        Cursor::After(t) if t >= now => return s.next_after(t),
        Cursor::After(_) => now,
    };
    s.first_at_or_after(from)
}

fn zone_name(zone: ScheduleZone) -> String {
    match zone {
        ScheduleZone::Named(tz) => tz.name().to_string(),
        ScheduleZone::Fixed(off) if off.local_minus_utc() == 0 => "UTC".to_string(),
        ScheduleZone::Fixed(off) => off.to_string(),
    }
}

fn upcoming_run(zone: ScheduleZone, at: DateTime<Utc>) -> UpcomingRun {
    let local = at.with_timezone(&zone.offset_at(at));
    UpcomingRun {
        at,
        local: local.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    }
}

/// Runs of a scheduled job: records missed instants as skipped, starts the due one (or
/// skips it when the previous run is still going and the job is not concurrent).
fn run_schedule(entry: &mut JobEntry, config: &EngineConfig, now: DateTime<Utc>, b: &mut Builder) {
    let Some(schedule) = &entry.schedule else {
        return;
    };
    if entry.job.disabled {
        return;
    }
    // Fast path: the cached next instant is still ahead.
    if let Some(next) = entry.next_instant
        && next.is_none_or(|t| t > now)
    {
        return;
    }
    let d = due::decide(schedule, entry.progress.cursor, now, entry.epsilon);
    entry.next_instant = Some(d.next);
    if d.cursor == entry.progress.cursor {
        return;
    }
    entry.progress.cursor = d.cursor;
    b.touch(&entry.job.name);
    if d.skipped_unlisted > 0 {
        entry.progress.stats.record_skipped(d.skipped_unlisted);
    }
    for (i, at) in d.skipped.iter().enumerate() {
        let mut note = None;
        if i == 0 && d.skipped_unlisted > 0 {
            note = Some(format!(
                "{} earlier missed instants were counted but not recorded one by one",
                d.skipped_unlisted
            ));
        }
        skip_run(entry, *at, SkipReason::Missed, note, now, b);
    }
    if let Some(at) = d.due {
        if !entry.job.concurrent && !entry.open.is_empty() {
            skip_run(entry, at, SkipReason::PreviousRunStillRunning, None, now, b);
        } else {
            start_run(entry, config, RunTrigger::Schedule, at, now, b);
        }
    }
}

fn new_record(entry: &mut JobEntry, trigger: RunTrigger, scheduled_for: DateTime<Utc>) -> JobRun {
    let number = entry.progress.next_number;
    entry.progress.next_number = number.saturating_add(1);
    JobRun {
        job: entry.job.name.clone(),
        run_id: launch::run_id(entry.progress.created_at, number),
        number,
        scheduled_for,
        trigger,
        attempt: 1,
        state: JobRunState::Pending,
        skip_reason: None,
        task_id: None,
        node: None,
        launched_at: None,
        started_at: None,
        finished_at: None,
        duration_seconds: None,
        exit: None,
        retry_at: None,
        kill_requested_at: None,
        message: None,
    }
}

fn skip_run(
    entry: &mut JobEntry,
    at: DateTime<Utc>,
    reason: SkipReason,
    note: Option<String>,
    now: DateTime<Utc>,
    b: &mut Builder,
) {
    let mut r = new_record(entry, RunTrigger::Schedule, at);
    r.state = JobRunState::Skipped;
    r.skip_reason = Some(reason);
    r.finished_at = Some(now);
    r.message = Some(match note {
        Some(n) => format!("{}; {n}", reason.describe()),
        None => reason.describe().to_string(),
    });
    entry.progress.stats.record_skipped(1);
    b.touch(&entry.job.name);
    b.records.push(Action::MarkSkipped(r));
}

/// Records a new run as pending and launches its first attempt.
fn start_run(
    entry: &mut JobEntry,
    config: &EngineConfig,
    trigger: RunTrigger,
    scheduled_for: DateTime<Utc>,
    now: DateTime<Utc>,
    b: &mut Builder,
) {
    let mut r = new_record(entry, trigger, scheduled_for);
    r.task_id = Some(launch::task_id(&entry.job.name, &r.run_id, 1));
    r.launched_at = Some(now);
    b.touch(&entry.job.name);
    b.record(&r);
    let mut o = OpenRun {
        record: r,
        last_launch: None,
    };
    send_launch(entry, config, &mut o, now, b);
    entry.open.push(o);
}

fn send_launch(
    entry: &JobEntry,
    config: &EngineConfig,
    o: &mut OpenRun,
    now: DateTime<Utc>,
    b: &mut Builder,
) {
    let r = &o.record;
    let Some(task_id) = r.task_id.clone() else {
        return;
    };
    o.last_launch = Some(now);
    b.effects.push(Action::LaunchRun {
        job: r.job.clone(),
        run_id: r.run_id.clone(),
        attempt: r.attempt,
        task_id,
        definition: launch::task_definition(&entry.job, r, config.kill_grace_seconds),
        constraints: entry
            .job
            .constraints
            .iter()
            .map(JobConstraint::placement)
            .collect(),
    });
}

/// How an attempt failed.
struct Failure {
    message: String,
    exit: Option<ExitStatus>,
    finished_at: DateTime<Utc>,
}

fn duration_of(r: &JobRun) -> Option<f64> {
    let (s, f) = (r.started_at?, r.finished_at?);
    (f - s)
        .num_microseconds()
        .map(|us| us as f64 / 1e6)
        .filter(|d| *d >= 0.0)
}

/// Records a failed attempt; schedules its retry, or fails the run. Returns the run if
/// it stays open (waiting to retry).
fn fail_attempt(
    entry: &mut JobEntry,
    config: &EngineConfig,
    o: &mut OpenRun,
    failure: Failure,
    b: &mut Builder,
) -> Option<OpenRun> {
    let r = &mut o.record;
    r.state = JobRunState::Failed;
    r.finished_at = Some(failure.finished_at);
    r.duration_seconds = duration_of(r);
    r.exit = failure.exit.or(r.exit);
    r.message = Some(failure.message);
    b.touch(&entry.job.name);
    match config
        .retry
        .after_failure(r.attempt, entry.job.retries, failure.finished_at)
    {
        AfterFailure::RetryAt { attempt, at } => {
            r.retry_at = Some(at);
            b.record(r);
            b.effects.push(Action::ScheduleRetry {
                job: r.job.clone(),
                run_id: r.run_id.clone(),
                attempt,
                at,
            });
            Some(o.clone())
        }
        AfterFailure::GiveUp => {
            b.record(r);
            entry
                .progress
                .stats
                .record_error(failure.finished_at, r.duration_seconds);
            if entry.job.soft_error {
                b.successes
                    .push((entry.job.name.clone(), failure.finished_at));
            }
            None
        }
    }
}

/// Brings the job's open runs up to date with the master and the clock.
fn reconcile_job(
    entry: &mut JobEntry,
    config: &EngineConfig,
    master: Option<&MasterTasks>,
    now: DateTime<Utc>,
    b: &mut Builder,
) {
    if entry.open.is_empty() {
        return;
    }
    let mut keep = Vec::with_capacity(entry.open.len());
    for mut o in std::mem::take(&mut entry.open) {
        if let Some(o) = reconcile_run(entry, config, master, now, &mut o, b) {
            keep.push(o);
        }
    }
    // Runs opened meanwhile (none today) would be in entry.open; keep them too.
    keep.append(&mut entry.open);
    entry.open = keep;
}

/// One open attempt; returns it (maybe replaced by its next attempt) if still open.
fn reconcile_run(
    entry: &mut JobEntry,
    config: &EngineConfig,
    master: Option<&MasterTasks>,
    now: DateTime<Utc>,
    o: &mut OpenRun,
    b: &mut Builder,
) -> Option<OpenRun> {
    // Waiting to retry.
    if let Some(at) = o.record.retry_at {
        if now < at {
            return Some(o.clone());
        }
        let next_attempt = o.record.attempt.saturating_add(1);
        let mut old = o.record.clone();
        old.retry_at = None;
        if entry.job.disabled {
            old.message = Some(format!(
                "{}; not retried: the job is disabled",
                old.message.unwrap_or_default()
            ));
            b.record(&old);
            entry
                .progress
                .stats
                .record_error(old.finished_at.unwrap_or(now), old.duration_seconds);
            b.touch(&entry.job.name);
            return None;
        }
        old.message = Some(format!(
            "{}; retried as attempt {next_attempt}",
            old.message.unwrap_or_default()
        ));
        b.record(&old);
        let arguments = match &old.trigger {
            RunTrigger::Manual { arguments } | RunTrigger::Retry { arguments } => arguments.clone(),
            RunTrigger::Schedule | RunTrigger::Dependency => Vec::new(),
        };
        let mut r = old;
        r.trigger = RunTrigger::Retry { arguments };
        r.attempt = next_attempt;
        r.state = JobRunState::Pending;
        r.task_id = Some(launch::task_id(&entry.job.name, &r.run_id, next_attempt));
        r.node = None;
        r.launched_at = Some(now);
        r.started_at = None;
        r.finished_at = None;
        r.duration_seconds = None;
        r.exit = None;
        r.message = None;
        b.record(&r);
        let mut next = OpenRun {
            record: r,
            last_launch: None,
        };
        send_launch(entry, config, &mut next, now, b);
        return Some(next);
    }
    let task_id = o.record.task_id.clone()?;
    let observed = match master {
        // The master's view is unknown: only re-send a pending launch when it is time.
        None => {
            if o.record.state == JobRunState::Pending && relaunch_due(o, config, now) {
                send_launch(entry, config, o, now, b);
            }
            return Some(o.clone());
        }
        Some(tasks) => tasks.get(&task_id),
    };
    let Some(t) = observed else {
        if o.record.kill_requested_at.is_some() {
            // Killed before the master ever ran it: nothing to wait for.
            return finish_killed(entry, o, "killed before it started".into(), now, b);
        }
        if o.record.state == JobRunState::Pending {
            if relaunch_due(o, config, now) {
                send_launch(entry, config, o, now, b);
            }
            return Some(o.clone());
        }
        // Seen running before, now unknown to the master: as good as lost.
        let failure = Failure {
            message: "task vanished from the master".into(),
            exit: None,
            finished_at: now,
        };
        return fail_attempt(entry, config, o, failure, b);
    };
    if t.node.is_some() && o.record.node != t.node {
        o.record.node = t.node.clone();
        if !t.state.is_terminal() {
            b.record(&o.record);
        }
    }
    match t.state {
        TaskState::Staging => Some(o.clone()),
        TaskState::Running | TaskState::Healthy | TaskState::Unhealthy => {
            if o.record.state == JobRunState::Pending {
                o.record.state = JobRunState::Running;
                o.record.started_at = Some(t.started_at.unwrap_or(now));
                b.record(&o.record);
            }
            Some(o.clone())
        }
        TaskState::Finished => {
            let r = &mut o.record;
            r.state = JobRunState::Succeeded;
            r.started_at = r.started_at.or(t.started_at);
            r.finished_at = Some(t.finished_at.unwrap_or(now));
            r.duration_seconds = duration_of(r);
            r.exit = t.exit.or(Some(ExitStatus {
                code: Some(0),
                signal: None,
            }));
            b.record(r);
            let finished = r.finished_at.unwrap_or(now);
            entry
                .progress
                .stats
                .record_success(finished, r.duration_seconds);
            b.touch(&entry.job.name);
            b.successes.push((entry.job.name.clone(), finished));
            None
        }
        TaskState::Killed => {
            let msg = t.message.clone().unwrap_or_else(|| "task killed".into());
            fill_end(&mut o.record, t, now);
            finish_killed(entry, o, msg, now, b)
        }
        TaskState::Failed | TaskState::Lost => {
            fill_end(&mut o.record, t, now);
            if o.record.kill_requested_at.is_some() {
                // A task killed on request may report failure (non-zero exit on SIGTERM).
                let msg = t.message.clone().unwrap_or_else(|| "task killed".into());
                return finish_killed(entry, o, msg, now, b);
            }
            let message = match (t.state, &t.message, &t.exit) {
                (TaskState::Lost, m, _) => format!(
                    "task lost{}",
                    m.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
                ),
                (_, Some(m), _) => m.clone(),
                (_, None, Some(e)) => format!("task failed: {e}"),
                (_, None, None) => "task failed".into(),
            };
            let failure = Failure {
                message,
                exit: t.exit,
                finished_at: t.finished_at.unwrap_or(now),
            };
            fail_attempt(entry, config, o, failure, b)
        }
    }
}

fn fill_end(r: &mut JobRun, t: &TaskObservation, now: DateTime<Utc>) {
    r.started_at = r.started_at.or(t.started_at);
    r.finished_at = Some(t.finished_at.unwrap_or(now));
    r.exit = t.exit.or(r.exit);
}

fn finish_killed(
    entry: &mut JobEntry,
    o: &mut OpenRun,
    message: String,
    now: DateTime<Utc>,
    b: &mut Builder,
) -> Option<OpenRun> {
    let r = &mut o.record;
    r.state = JobRunState::Killed;
    r.finished_at = r.finished_at.or(Some(now));
    r.duration_seconds = duration_of(r);
    r.message = Some(message);
    b.record(r);
    entry.progress.stats.record_killed();
    b.touch(&entry.job.name);
    None
}

fn relaunch_due(o: &OpenRun, config: &EngineConfig, now: DateTime<Utc>) -> bool {
    o.last_launch
        .is_none_or(|t| now - t >= config.relaunch_after)
}
