//! The jobs runtime: the [`JobEngine`] behind one lock, its loop, and the effects
//! worker that talks to the master.
//!
//! ```text
//!  API handler ─┐                      ┌─ persist: one store batch, queued under the lock
//!               ├─ lock ─ engine.step / command / put_job ─ Plan ─┤  (so records are written
//!  loop tick ───┘                                                 │  in the order decided)
//!                     the fsync is awaited after the lock is      └─ effects ─▶ worker,
//!                     released (group commit shares it)              once durable  │
//!                                                                                  ▼
//!                  place (placement::place over the master's nodes) ─ POST /v1/tasks
//!                  kill ─ POST /v1/tasks/{id}/kill; a 4xx refusal ─▶ Command::LaunchRefused
//! ```
//!
//! The loop ticks when the earliest `wake_at` of the last plan comes, after every read
//! of the master (its event stream makes that prompt), after an API command, and at
//! least every [`driver::MAX_SLEEP`]. Each tick steps the engine with the master's view of the
//! jobs' tasks when that view is recent, or with none while the master is down (then
//! schedules still run on time and records are kept; launches are re-sent later).
//!
//! Why the fsync is awaited outside the lock, and why that loses nothing: the batch is
//! queued to the store under the lock, so batches reach the disk in the order the engine
//! decided them, and one is durable only together with every batch queued before it.
//! The effects of a plan (launches, kills) are sent, in queue order, only once its batch
//! is durable, so no task starts for a run record a restart would forget; an API call
//! answers only after its batch (or, when it wrote nothing, an empty batch queued behind
//! everything in flight) is durable, so it never reports state that could be lost. Reads
//! may show a plan whose batch is still in flight. A failed write fails every batch
//! queued behind it too, and the engine is rebuilt from what the store holds. While the
//! store cannot write (a full disk; it reopens itself), the engine is not stepped and
//! changes are refused with 503 before they touch it; once the store takes writes
//! again, the engine is reloaded from it and runs resume, due ones first.
//!
//! Run records are pruned under the retention policy (`history`) by a step of its own,
//! every [`PRUNE_ENDED_EVERY`] for the jobs that recorded an ended attempt since the
//! last step, and every [`PRUNE_ALL_EVERY`] for all jobs (age counts on a quiet system
//! too). It reads the job's records from the store rather than keeping an index of
//! every stored record in memory, so its memory does not grow with the history and a
//! restart still reads only the open attempts; its cost is one read of the history of
//! each job that ran, and records exceed the policy by at most a few seconds' worth.
//! The statistics live in each job's progress record, so pruning never changes them.
//!
//! Launches run on their own worker so that a burst of them (1,000 jobs due in the same
//! second) never delays the next tick's decisions; lateness is recorded at the decision
//! (`launchedAt - scheduledFor`) and exported in `/metrics`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

// tokio's clock, which tests can pause and advance.
use tokio::time::Instant;

use chrono::{DateTime, Utc};
use drover_api::app::Constraint;
use drover_api::client::JobDetails;
use drover_api::job::{ChronosJob, check_job_graph, parse_job};
use drover_api::job_run::{JobRun, JobRunState, RunTrigger};
use drover_api::task::{LaunchRequest, Task, TaskDefinition, TaskGoal, TaskId, labels};
use drover_api::{ApiError, ErrorCode};
use drover_service::http::Metrics;
use drover_service::retention::Retention;
use drover_store::{Op, PendingWrite, Store, StoreExt};
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::jobs::{
    Action, Command, EngineConfig, EngineError, JobEngine, MasterTasks, Plan, TaskObservation,
};
use crate::engine::placement::{ClusterSnapshot, PlacementRequest, place};
use crate::engine::schedule::{ScheduleError, check_min_period};
use crate::runtime::accepted::AcceptedTasks;
use crate::runtime::clock::Clock;
use crate::runtime::component::{Component, LoopContext, Ports};
use crate::runtime::driver::{self, Ticking};
use crate::runtime::launcher::LaunchFailure;
use crate::runtime::master_port::MasterPort;
use crate::runtime::master_sync::{MasterView, stopped};
use crate::runtime::store::jobs::{self as jobs_store, Loaded};

/// A master view older than this is not used to reconcile runs (the engine re-sends a
/// pending launch after `relaunch_after`, 10 s by default: the view must be younger).
pub const MAX_VIEW_AGE: Duration = Duration::from_secs(5);
/// How long the first tick waits for the first read of the master, so a restart does
/// not re-send launches the master already has.
const FIRST_VIEW_WAIT: Duration = Duration::from_secs(3);
/// How long after a kill request a task the master still runs is killed again.
const KILL_RESEND_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// How many nodes a launch tries before it counts as refused.
const PLACEMENT_TRIES: usize = 3;
/// Lateness samples kept for `/metrics`.
const LATENESS_SAMPLES: usize = 10_000;
/// How often the run records of jobs whose runs ended since the last prune are pruned.
const PRUNE_ENDED_EVERY: Duration = Duration::from_secs(5);
/// How often every job's run records are pruned (so age applies on a quiet system too).
const PRUNE_ALL_EVERY: Duration = Duration::from_secs(60);
/// How long the node a task was placed on is remembered, so a re-sent launch goes to
/// the same node (the master takes only a same-node, same-definition launch as a retry).
const REMEMBER_PLACEMENT: Duration = Duration::from_secs(3600);
/// How often placements of tasks the master already shows are forgotten.
const FORGET_KNOWN_PLACEMENTS_EVERY: Duration = Duration::from_secs(10);

/// The jobs runtime's settings.
#[derive(Debug, Clone, Copy)]
pub struct JobsConfig {
    /// The engine's settings (retry delay, relaunch delay, kill grace).
    pub engine: EngineConfig,
    /// Run records (attempts) kept per job.
    pub history: Retention,
}

/// Why the jobs runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The store could not be read.
    #[error("failed to load the jobs from the store")]
    Load(#[source] drover_store::StoreError),
    /// The load's own writes failed.
    #[error("failed to save the jobs' progress after loading")]
    Save(#[source] drover_store::StoreError),
    /// The blocking task that read or wrote the store did not complete.
    #[error("the store task did not complete: {0}")]
    Task(String),
}

/// Which Chronos endpoint (or native route) a job definition came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutKind {
    /// `POST /v1/jobs`: either kind.
    Any,
    /// `PUT /v1/jobs/{name}`: the body's name must be this (or absent).
    Named(String),
    /// `POST /scheduler/iso8601`: a scheduled job.
    Scheduled,
    /// `POST /scheduler/dependency`: a dependent job.
    Dependent,
}

/// What a create or update did.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    /// The job as stored.
    pub job: ChronosJob,
    /// Whether it is new.
    pub created: bool,
    /// Fields kept but not acted on.
    pub ignored: Vec<String>,
}

/// The engine and what goes with it, behind one lock.
struct JobsState {
    engine: JobEngine,
    /// The engine may be ahead of the store (a write failed and the reload could not
    /// read it): reload before deciding anything.
    stale: bool,
}

/// Counters for `/metrics`, updated after each plan.
#[derive(Debug, Default)]
struct JobMetrics {
    jobs: usize,
    open_runs: usize,
    /// Lateness of scheduled first attempts, seconds, newest last.
    lateness: VecDeque<f64>,
    lateness_max: f64,
    launches: u64,
    refusals: u64,
    launch_errors: u64,
    ticks: u64,
    store_errors: u64,
    pruned_runs: u64,
}

/// The jobs component: state, loop, effects worker and API (see `http::jobs` and
/// `http::chronos` for the routes).
pub struct Jobs {
    store: Arc<dyn Store>,
    master: Arc<dyn MasterPort>,
    clock: Arc<dyn Clock>,
    config: JobsConfig,
    state: Mutex<JobsState>,
    /// Poked by API commands so the loop recomputes its wake-up; a permit is kept when
    /// the loop is busy, so no poke is lost.
    wake: Notify,
    /// Effects of committed plans, in commit order; the worker spawned by `spawn` owns
    /// the receiver. Sending fails only after the worker ended (shutdown).
    effects: mpsc::UnboundedSender<Vec<Action>>,
    /// The receiver until `spawn` takes it.
    effects_rx: StdMutex<Option<mpsc::UnboundedReceiver<Vec<Action>>>>,
    /// The latest master view (the master-sync loop holds the sender).
    view: watch::Receiver<Arc<MasterView>>,
    metrics: StdMutex<JobMetrics>,
    /// When a kill was last re-sent per task (see `resend_kills`); only the loop uses it.
    kills_sent: StdMutex<HashMap<TaskId, Instant>>,
    /// The last committed plan's wake-up (each plan's covers every job).
    wake_at: StdMutex<Option<DateTime<Utc>>>,
    /// When the current process started: lateness of instants before it is a restart's
    /// catch-up, not the loop's, and is not counted.
    started: DateTime<Utc>,
    /// Plans whose batch is queued to the store and not yet known durable, with their
    /// effects, in queue order.
    in_flight: Arc<StdMutex<InFlight>>,
    /// Jobs that recorded an ended attempt since the last prune step.
    ended_since_prune: StdMutex<HashSet<String>>,
    /// Tasks the master accepted (the effects worker records them) that its last read
    /// may not show yet; each tick adds them to what the read shows.
    accepted: StdMutex<AcceptedTasks>,
}

/// Plans whose batch is queued and not yet known durable.
#[derive(Debug, Default)]
struct InFlight {
    next_seq: u64,
    /// Each queued batch's effects (launches and kills), oldest first.
    effects: VecDeque<(u64, Vec<Action>)>,
}

/// A queued batch to await, after the lock is released, with [`Jobs::settle`].
#[must_use = "a plan's effects go out only once its batch is settled"]
struct Staged {
    seq: u64,
    pending: PendingWrite,
}

fn lock_in_flight(m: &StdMutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    // Only moves queued effects around; a panic cannot leave it half-changed.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn internal(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, what.to_string())
}

/// A write refused or failed because the store cannot write now.
fn store_unavailable(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("failed to save the jobs' state: {why}"),
    )
}

/// The API error for an engine refusal.
pub fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::UnknownJob(name) => ApiError::not_found("job", &name),
        EngineError::Schedule {
            source: source @ ScheduleError::PeriodTooShort { .. },
            ..
        } => ApiError::invalid(
            "schedule",
            format!(
                "{source} (a longer period, or R1 for a single run; an operator may lower the minimum with --min-job-period or DROVER_SCHEDULER_MIN_JOB_PERIOD)"
            ),
        ),
        EngineError::Schedule { source, .. } => ApiError::invalid("schedule", source.to_string()),
        EngineError::NoTrigger(_) => ApiError::invalid("schedule", e.to_string()),
        EngineError::AlreadyRunning(_) | EngineError::NotRunning(_) => {
            ApiError::new(ErrorCode::Conflict, e.to_string())
        }
        EngineError::UnknownTask(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
    }
}

/// The master's tasks that belong to jobs, as the engine reads them.
pub fn job_observations(tasks: &[Task]) -> MasterTasks {
    tasks
        .iter()
        .filter(|t| t.spec.definition.labels.contains_key(labels::JOB_NAME))
        .map(|t| (t.spec.id.clone(), TaskObservation::from(t)))
        .collect()
}

/// DOT text of the jobs' parent graph (`parent -> child`).
pub fn graph_dot<'a>(jobs: impl IntoIterator<Item = &'a ChronosJob>) -> String {
    let mut s = String::from("digraph jobs {\n");
    for job in jobs {
        s.push_str(&format!("  {:?};\n", job.name));
        for p in &job.parents {
            s.push_str(&format!("  {:?} -> {:?};\n", p, job.name));
        }
    }
    s.push_str("}\n");
    s
}

impl Jobs {
    /// Loads the jobs and their open runs from `store` and persists what loading
    /// decided; call [`Component::spawn`] to start the loop.
    pub async fn open(ports: Ports, config: JobsConfig) -> Result<Jobs, JobsError> {
        let Ports {
            store,
            master,
            view,
            clock,
        } = ports;
        let now = clock.now();
        let s = store.clone();
        let (engine, loaded) =
            tokio::task::spawn_blocking(move || jobs_store::load(&*s, config.engine, now))
                .await
                .map_err(|e| JobsError::Task(e.to_string()))?
                .map_err(JobsError::Load)?;
        let Loaded {
            broken,
            open_runs,
            plan,
        } = loaded;
        for (name, why) in &broken {
            tracing::error!(job = %name, "job not loaded (kept in the store): {why}");
        }
        let ops = jobs_store::plan_ops(&plan).map_err(JobsError::Save)?;
        if !ops.is_empty() {
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.apply(&ops))
                .await
                .map_err(|e| JobsError::Task(e.to_string()))?
                .map_err(JobsError::Save)?;
        }
        let jobs = engine.job_names().count();
        tracing::info!(jobs, open_runs, "jobs loaded");
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = JobMetrics {
            jobs,
            open_runs,
            ..JobMetrics::default()
        };
        Ok(Jobs {
            store,
            master,
            clock,
            config,
            state: Mutex::new(JobsState {
                engine,
                stale: false,
            }),
            wake: Notify::new(),
            effects: tx,
            effects_rx: StdMutex::new(Some(rx)),
            view,
            metrics: StdMutex::new(metrics),
            wake_at: StdMutex::new(Some(now)),
            kills_sent: StdMutex::new(HashMap::new()),
            started: now,
            in_flight: Arc::default(),
            ended_since_prune: StdMutex::default(),
            accepted: StdMutex::default(),
        })
    }

    /// The store (for the API's history reads).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn metrics_lock(&self) -> std::sync::MutexGuard<'_, JobMetrics> {
        // A panic while holding the metrics lock leaves plain counters behind: keep going.
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `extra` and the plan's persist actions as one store batch and stages the
    /// plan's effects (call under the lock; then release it and [`Jobs::settle`]).
    fn stage(
        &self,
        st: &JobsState,
        extra: Vec<Op>,
        plan: Plan,
    ) -> Result<Option<Staged>, ApiError> {
        let mut ops = extra;
        ops.extend(jobs_store::plan_ops(&plan).map_err(internal)?);
        *self.wake_at.lock().unwrap_or_else(|p| p.into_inner()) = plan.wake_at;
        let mut effects = Vec::new();
        {
            let mut ended = self
                .ended_since_prune
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for action in &plan.actions {
                if let Action::RecordRun(r) | Action::MarkSkipped(r) = action
                    && !r.is_open()
                    && !ended.contains(&r.job)
                {
                    ended.insert(r.job.clone());
                }
            }
        }
        {
            let mut m = self.metrics_lock();
            for action in plan.actions {
                match action {
                    Action::RecordRun(ref r) => {
                        // The first record of a started run (later ones add its node).
                        if r.attempt == 1
                            && r.state == JobRunState::Pending
                            && r.node.is_none()
                            && r.trigger == RunTrigger::Schedule
                            && r.scheduled_for >= self.started
                            && let Some(l) = r.lateness_seconds()
                        {
                            if m.lateness.len() >= LATENESS_SAMPLES {
                                m.lateness.pop_front();
                            }
                            m.lateness.push_back(l);
                            m.lateness_max = m.lateness_max.max(l);
                        }
                    }
                    Action::ScheduleRetry {
                        ref job,
                        ref run_id,
                        attempt,
                        at,
                    } => {
                        tracing::info!(%job, %run_id, attempt, %at, "run failed; retrying");
                    }
                    Action::LaunchRun { .. } | Action::KillTask { .. } => effects.push(action),
                    Action::MarkSkipped(_) | Action::SaveJob(_) | Action::SaveProgress { .. } => {}
                }
            }
            m.jobs = st.engine.job_names().count();
        }
        Ok(self.queue_batch(ops, effects))
    }

    /// Queues `ops` with the effects to send once they are durable; nothing when there
    /// is nothing to write, send or wait for. With nothing to write while batches are
    /// in flight, an empty batch is queued behind them, so that waiting for it waits
    /// until everything the engine shows is durable.
    fn queue_batch(&self, ops: Vec<Op>, effects: Vec<Action>) -> Option<Staged> {
        let mut in_flight = lock_in_flight(&self.in_flight);
        if ops.is_empty() && effects.is_empty() && in_flight.effects.is_empty() {
            return None;
        }
        let seq = in_flight.next_seq;
        in_flight.next_seq += 1;
        let pending = self.store.submit(ops);
        in_flight.effects.push_back((seq, effects));
        Some(Staged { seq, pending })
    }

    /// Waits until a staged batch is durable, then hands the effects of every batch up to
    /// it to the worker, in queue order. On a failed write the engine is rebuilt from the
    /// store (which holds what was durable before it) and the effects of this batch and
    /// every later one (they fail too: the store takes no writes after a failed one) are
    /// dropped.
    async fn settle(&self, staged: Option<Staged>) -> Result<(), ApiError> {
        let failure = match self.wait_durable(staged).await {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        let mut st = self.state.lock().await;
        self.reload(&mut st).await;
        Err(store_unavailable(failure))
    }

    /// Whether the engine may be changed now: refused (503, nothing changed) while the
    /// store cannot write, or while the engine waits to be reloaded after a failure.
    async fn writable(&self, st: &mut JobsState) -> Result<(), ApiError> {
        self.store.health().map_err(store_unavailable)?;
        if st.stale {
            self.reload(st).await;
            if st.stale {
                return Err(store_unavailable(
                    "the state is being reloaded from the store after a failed write",
                ));
            }
        }
        Ok(())
    }

    /// [`Jobs::settle`] without the reload (for a caller that holds the lock): why the
    /// write failed.
    async fn wait_durable(&self, staged: Option<Staged>) -> Result<(), String> {
        let Some(Staged { seq, pending }) = staged else {
            return Ok(());
        };
        let in_flight = self.in_flight.clone();
        let worker = self.effects.clone();
        // Sending happens on the blocking thread too, so an API call dropped while it
        // waits (its client went away) still releases the effects.
        let written = tokio::task::spawn_blocking(move || {
            let written = pending.wait();
            let mut in_flight = lock_in_flight(&in_flight);
            match written {
                Ok(_) => {
                    while in_flight.effects.front().is_some_and(|(s, _)| *s <= seq) {
                        if let Some((_, effects)) = in_flight.effects.pop_front()
                            && !effects.is_empty()
                        {
                            // Fails only once the worker is gone (shutdown): the engine
                            // re-sends launches.
                            let _ = worker.send(effects);
                        }
                    }
                    Ok(())
                }
                Err(e) => {
                    in_flight.effects.retain(|(s, _)| *s < seq);
                    Err(e)
                }
            }
        })
        .await;
        let failure = match written {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!("failed to save the jobs' state: {failure}; reloading it from the store");
        self.metrics_lock().store_errors += 1;
        Err(failure)
    }

    /// Rebuilds the engine from the store after a failed write.
    async fn reload(&self, st: &mut JobsState) {
        let store = self.store.clone();
        let config = self.config.engine;
        let now = self.clock.now();
        match tokio::task::spawn_blocking(move || jobs_store::load(&*store, config, now)).await {
            Ok(Ok((engine, _))) => {
                if st.stale {
                    tracing::info!("the store takes writes again: jobs reloaded from it");
                }
                st.engine = engine;
                st.stale = false;
            }
            Ok(Err(e)) => {
                st.stale = true;
                tracing::error!("cannot reload the jobs from the store yet: {e}");
            }
            Err(e) => {
                st.stale = true;
                tracing::error!("cannot reload the jobs from the store yet: {e}");
            }
        }
    }

    /// One step of the engine at the current time with the master's recent view.
    async fn tick(&self) {
        let view = self.view.borrow().clone();
        let tasks = view.fresh_tasks(MAX_VIEW_AGE).cloned();
        let observed = tasks.as_deref().map(|t| {
            let mut observed = job_observations(t);
            let mut accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
            let unseen: Vec<_> = accepted
                .unseen(|id| observed.contains_key(id), view.as_of)
                .map(|t| (t.spec.id.clone(), TaskObservation::from(t)))
                .collect();
            observed.extend(unseen);
            observed
        });
        let mut st = self.state.lock().await;
        // Runs that come due while nothing can be recorded wait: the engine decides
        // them once the store takes writes again.
        if self.writable(&mut st).await.is_err() {
            return;
        }
        let now = self.clock.now();
        let plan = st.engine.step(observed.as_ref(), now);
        let mut open = 0usize;
        let mut killing = Vec::new();
        for name in st.engine.job_names() {
            for r in st.engine.open_runs(name) {
                open += 1;
                if r.kill_requested_at
                    .is_some_and(|t| now - t >= KILL_RESEND_AFTER)
                    && !r.state.is_terminal()
                    && let Some(id) = &r.task_id
                {
                    killing.push((r.job.clone(), r.run_id.clone(), id.clone()));
                }
            }
        }
        let staged = self.stage(&st, Vec::new(), plan);
        drop(st);
        let saved = match staged {
            Ok(staged) => self.settle(staged).await,
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            tracing::warn!("tick not saved: {}", e.message);
        }
        self.resend_kills(killing, tasks.as_deref().map(Vec::as_slice));
        let mut m = self.metrics_lock();
        m.ticks += 1;
        m.open_runs = open;
    }

    /// The engine sends a kill once; one the master never got (it was down) is sent
    /// again while the master still shows the task running with goal `run`.
    fn resend_kills(&self, killing: Vec<(String, String, TaskId)>, tasks: Option<&[Task]>) {
        let mut last = self.kills_sent.lock().unwrap_or_else(|p| p.into_inner());
        last.retain(|_, at| at.elapsed() < Duration::from_secs(3600));
        let Some(tasks) = tasks else { return };
        if killing.is_empty() {
            return;
        }
        let running: std::collections::HashSet<&TaskId> = tasks
            .iter()
            .filter(|t| t.state.is_active() && t.goal == TaskGoal::Run)
            .map(|t| &t.spec.id)
            .collect();
        let mut effects = Vec::new();
        for (job, run_id, task_id) in killing {
            let due = last
                .get(&task_id)
                .is_none_or(|at| at.elapsed() >= KILL_RESEND_AFTER.to_std().unwrap_or_default());
            if running.contains(&task_id) && due {
                last.insert(task_id.clone(), Instant::now());
                effects.push(Action::KillTask {
                    job,
                    run_id,
                    task_id,
                });
            }
        }
        if !effects.is_empty() {
            let _ = self.effects.send(effects);
        }
    }

    /// Creates or updates a job from its Chronos JSON.
    pub async fn put_job(
        &self,
        value: &serde_json::Value,
        kind: PutKind,
    ) -> Result<PutOutcome, ApiError> {
        let mut value = value.clone();
        if let PutKind::Named(name) = &kind
            && let Some(obj) = value.as_object_mut()
        {
            match obj.get("name") {
                None => {
                    obj.insert("name".into(), serde_json::Value::String(name.clone()));
                }
                Some(serde_json::Value::String(n)) if n == name => {}
                Some(other) => {
                    return Err(ApiError::invalid(
                        "name",
                        format!("{other} does not match the job named in the path, {name:?}"),
                    ));
                }
            }
        }
        let (job, ignored) = parse_job(&value)?;
        match kind {
            PutKind::Scheduled if job.schedule.is_none() => {
                return Err(ApiError::invalid(
                    "schedule",
                    "this endpoint takes a scheduled job (post dependent jobs to /scheduler/dependency)",
                ));
            }
            PutKind::Dependent if job.parents.is_empty() => {
                return Err(ApiError::invalid(
                    "parents",
                    "this endpoint takes a dependent job with parents (post scheduled jobs to /scheduler/iso8601)",
                ));
            }
            _ => {}
        }
        let mut st = self.state.lock().await;
        self.writable(&mut st).await?;
        if let Some(Ok(interval)) = job.repeating_interval() {
            check_min_period(&interval, st.engine.config().min_period).map_err(|source| {
                engine_error(EngineError::Schedule {
                    job: job.name.clone(),
                    source,
                })
            })?;
        }
        // Only a job with parents can add a missing parent or close a cycle.
        if !job.parents.is_empty() {
            let others = st
                .engine
                .job_names()
                .filter(|n| *n != job.name)
                .filter_map(|n| st.engine.job(n));
            check_job_graph(others.chain(std::iter::once(&job)))?;
        }
        let created = st.engine.job(&job.name).is_none();
        let plan = st
            .engine
            .put_job(job.clone(), self.clock.now())
            .map_err(engine_error)?;
        let op = Op::put_json(jobs_store::def_key(&job.name), &job).map_err(internal)?;
        let staged = self.stage(&st, vec![op], plan)?;
        drop(st);
        self.settle(staged).await?;
        self.wake.notify_one();
        if !ignored.is_empty() {
            tracing::info!(job = %job.name, ignored = ?ignored, "job accepted; these fields are kept but not acted on");
        }
        Ok(PutOutcome {
            job,
            created,
            ignored,
        })
    }

    /// Deletes a job with its history; refused while other jobs name it as a parent.
    pub async fn delete_job(&self, name: &str) -> Result<ChronosJob, ApiError> {
        let mut st = self.state.lock().await;
        self.writable(&mut st).await?;
        let job = st
            .engine
            .job(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("job", name))?;
        let children: Vec<&str> = st
            .engine
            .job_names()
            .filter(|n| {
                st.engine
                    .job(n)
                    .is_some_and(|j| j.parents.iter().any(|p| p == name))
            })
            .collect();
        if !children.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "job {name:?} is a parent of {}: change or delete them first",
                    children.join(", ")
                ),
            ));
        }
        // The store must hold every run record of the job before they are listed for
        // deletion: wait (keeping the lock, so nothing new is queued) for the batches
        // in flight.
        if let Err(why) = self
            .wait_durable(self.queue_batch(Vec::new(), Vec::new()))
            .await
        {
            self.reload(&mut st).await;
            return Err(store_unavailable(why));
        }
        let store = self.store.clone();
        let n = name.to_string();
        let ops = tokio::task::spawn_blocking(move || jobs_store::delete_ops(&*store, &n))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let plan = st.engine.remove_job(name);
        let staged = self.stage(&st, ops, plan)?;
        drop(st);
        self.settle(staged).await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// Applies an operator's command; the plan says what it did.
    pub async fn command(&self, command: Command) -> Result<Plan, ApiError> {
        let mut st = self.state.lock().await;
        self.writable(&mut st).await?;
        let plan = st
            .engine
            .command(command, self.clock.now())
            .map_err(engine_error)?;
        let staged = self.stage(&st, Vec::new(), plan.clone())?;
        drop(st);
        self.settle(staged).await?;
        // The loop recomputes its wake-up from this plan's.
        self.wake.notify_one();
        Ok(plan)
    }

    /// A job with its status and `next` upcoming runs.
    pub async fn details(&self, name: &str, next: usize) -> Result<JobDetails, ApiError> {
        let st = self.state.lock().await;
        let job = st
            .engine
            .job(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("job", name))?;
        let status = st
            .engine
            .status(name, self.clock.now(), next)
            .ok_or_else(|| ApiError::not_found("job", name))?;
        Ok(JobDetails { job, status })
    }

    /// Every job with its status and next run.
    pub async fn list(&self) -> Vec<JobDetails> {
        let st = self.state.lock().await;
        let now = self.clock.now();
        st.engine
            .job_names()
            .filter_map(|n| {
                let job = st.engine.job(n)?.clone();
                let status = st.engine.status(n, now, 1)?;
                Some(JobDetails { job, status })
            })
            .collect()
    }

    /// The jobs' definitions.
    pub async fn definitions(&self) -> Vec<ChronosJob> {
        let st = self.state.lock().await;
        st.engine
            .job_names()
            .filter_map(|n| st.engine.job(n).cloned())
            .collect()
    }

    /// The recent run durations of a job (seconds, oldest first), for percentiles the
    /// status does not carry.
    pub async fn recent_durations(&self, name: &str) -> Option<Vec<f64>> {
        let st = self.state.lock().await;
        st.engine
            .progress(name)
            .map(|p| p.stats.recent_durations.iter().copied().collect())
    }

    /// A job's run records (attempts), newest first, at most `limit`.
    pub async fn runs(&self, name: &str, limit: usize) -> Result<Vec<JobRun>, ApiError> {
        if self.state.lock().await.engine.job(name).is_none() {
            return Err(ApiError::not_found("job", name));
        }
        let store = self.store.clone();
        let prefix = jobs_store::runs_prefix(name);
        let mut runs: Vec<JobRun> =
            tokio::task::spawn_blocking(move || store.list_json::<JobRun>(&prefix))
                .await
                .map_err(internal)?
                .map_err(internal)?
                .into_iter()
                .map(|(_, r, _)| r)
                .collect();
        runs.reverse();
        runs.truncate(limit);
        Ok(runs)
    }

    /// The effects worker: launches and kills, in commit order, batches merged.
    async fn effects_loop(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Vec<Action>>,
        stop: watch::Receiver<bool>,
    ) {
        let mut placed: HashMap<TaskId, (String, Instant)> = HashMap::new();
        let mut forgot_known_at = Instant::now();
        loop {
            let mut actions = tokio::select! {
                batch = rx.recv() => match batch { Some(b) => b, None => break },
                _ = stopped(stop.clone()) => break,
            };
            while let Ok(more) = rx.try_recv() {
                actions.extend(more);
            }
            placed.retain(|_, (_, at)| at.elapsed() < REMEMBER_PLACEMENT);
            // A launch is re-sent only while the master does not show its task: once it
            // does, its node need not be remembered (at 50 launches a second, an hour of
            // placements would be most of the scheduler's memory).
            if forgot_known_at.elapsed() >= FORGET_KNOWN_PLACEMENTS_EVERY && !placed.is_empty() {
                forgot_known_at = Instant::now();
                let view = self.view.borrow().clone();
                if let Some(tasks) = view.fresh_tasks(MAX_VIEW_AGE) {
                    let known: HashSet<&TaskId> = tasks.iter().map(|t| &t.spec.id).collect();
                    placed.retain(|id, _| !known.contains(id));
                }
            }
            self.perform(actions, &mut placed).await;
        }
    }

    async fn perform(&self, actions: Vec<Action>, placed: &mut HashMap<TaskId, (String, Instant)>) {
        let view = self.view.borrow().clone();
        let mut snapshot = ClusterSnapshot::from_nodes(0, &view.nodes);
        let mut launches: Vec<Launch> = Vec::new();
        let mut kills: Vec<TaskId> = Vec::new();
        for action in actions {
            match action {
                Action::LaunchRun {
                    task_id,
                    definition,
                    constraints,
                    ..
                } => {
                    launches.push(Launch {
                        task_id,
                        definition,
                        constraints,
                        tried: Vec::new(),
                        last_refusal: None,
                    });
                }
                Action::KillTask { task_id, .. } => kills.push(task_id),
                _ => {}
            }
        }
        let mut refused: Vec<(TaskId, String)> = Vec::new();
        let mut accepted = Vec::new();
        for round in 0..PLACEMENT_TRIES {
            if launches.is_empty() {
                break;
            }
            // Decide nodes one by one on a working copy, so a burst spreads out.
            let mut calls = Vec::new();
            for mut l in std::mem::take(&mut launches) {
                let remembered = placed
                    .get(&l.task_id)
                    .map(|(n, _)| n.clone())
                    .filter(|_| round == 0);
                let node = match remembered {
                    Some(n) => Some(n),
                    None => choose_node(&mut snapshot, &l),
                };
                match node {
                    Some(node) => {
                        l.tried.push(node.clone());
                        calls.push(l);
                    }
                    None => {
                        let why = l
                            .last_refusal
                            .clone()
                            .unwrap_or_else(|| no_node_message(&snapshot, &l));
                        refused.push((l.task_id, why));
                    }
                }
            }
            let reqs = calls.iter().map(Launch::request).collect();
            let answers = self.master.launch(reqs).await;
            let results = calls.into_iter().zip(answers.into_iter().map(judge));
            let mut m = self.metrics_lock();
            for (mut l, r) in results {
                let node = l.tried.last().cloned().unwrap_or_default();
                match r {
                    LaunchResult::Accepted(task) => {
                        m.launches += 1;
                        placed.insert(l.task_id, (node, Instant::now()));
                        accepted.extend(task.map(|t| *t));
                    }
                    LaunchResult::NodeRefused(why) => {
                        // Take the node out of this batch's choices and try another.
                        if let Some(n) = snapshot.nodes.iter_mut().find(|n| n.name == node) {
                            n.free = drover_api::Resources::default();
                        }
                        l.last_refusal = Some(why);
                        launches.push(l);
                    }
                    LaunchResult::Refused(why) => {
                        m.refusals += 1;
                        refused.push((l.task_id, why));
                    }
                    LaunchResult::Unanswered(why) => {
                        m.launch_errors += 1;
                        tracing::debug!(task = %l.task_id, "launch not answered ({why}); the engine sends it again later");
                    }
                }
            }
        }
        for l in launches {
            refused.push((
                l.task_id,
                l.last_refusal
                    .unwrap_or_else(|| "no node could take it".into()),
            ));
        }
        {
            let at = Instant::now();
            let mut remembered = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
            for t in accepted {
                remembered.record(t, at);
            }
        }
        self.master.kill(kills).await;
        for (task_id, message) in refused {
            tracing::info!(task = %task_id, "launch refused: {message}");
            match self
                .command(Command::LaunchRefused { task_id, message })
                .await
            {
                Ok(_) => {}
                // The run moved on meanwhile (killed, deleted): nothing to record.
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => tracing::warn!("cannot record a refused launch: {}", e.message),
            }
        }
    }

    /// Prunes run records under the retention policy: the jobs with newly ended
    /// attempts every [`PRUNE_ENDED_EVERY`], all jobs every [`PRUNE_ALL_EVERY`].
    async fn prune_loop(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut all_at = Instant::now() + PRUNE_ALL_EVERY;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PRUNE_ENDED_EVERY) => {}
                _ = stopped(stop.clone()) => return,
            }
            if self.store.health().is_err() {
                continue; // the jobs stay marked; pruned once the store writes again
            }
            let mut names: Vec<String> = std::mem::take(
                &mut *self
                    .ended_since_prune
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            )
            .into_iter()
            .collect();
            if Instant::now() >= all_at {
                all_at = Instant::now() + PRUNE_ALL_EVERY;
                let st = self.state.lock().await;
                names = st.engine.job_names().map(str::to_string).collect();
            }
            if names.is_empty() {
                continue;
            }
            let store = self.store.clone();
            let policy = self.config.history;
            let now = self.clock.now();
            let pruned = tokio::task::spawn_blocking(move || {
                let mut n = 0usize;
                for name in names {
                    let keys = jobs_store::prune_keys(&*store, &name, &policy, now)?;
                    if !keys.is_empty() {
                        n += keys.len();
                        let ops: Vec<Op> = keys.into_iter().map(Op::delete).collect();
                        store.apply(&ops)?;
                    }
                }
                Ok::<_, drover_store::StoreError>(n)
            })
            .await;
            match pruned {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    self.metrics_lock().pruned_runs += n as u64;
                    tracing::debug!("pruned {n} old run records");
                }
                Ok(Err(e)) => tracing::warn!("pruning run records failed: {e}"),
                Err(e) => tracing::warn!("pruning run records failed: {e}"),
            }
        }
    }
}

/// One launch being placed.
struct Launch {
    task_id: TaskId,
    definition: TaskDefinition,
    constraints: Vec<Constraint>,
    /// Nodes tried, the current one last.
    tried: Vec<String>,
    /// The last node's refusal.
    last_refusal: Option<String>,
}

enum LaunchResult {
    /// The master has the task: the one it answered with, or (the id was already taken
    /// by an earlier send of this launch) none.
    Accepted(Option<Box<Task>>),
    /// The node could not take it (full, draining, gone): another node may.
    NodeRefused(String),
    /// The master refused the task itself.
    Refused(String),
    /// No answer (the master is down or slow): the engine re-sends later.
    Unanswered(String),
}

impl Launch {
    /// The request for the node tried last.
    fn request(&self) -> LaunchRequest {
        LaunchRequest {
            node: self.tried.last().cloned().unwrap_or_default(),
            id: Some(self.task_id.clone()),
            task: self.definition.clone(),
        }
    }
}

/// What one launch's answer means for the run.
fn judge(answer: Result<Task, LaunchFailure>) -> LaunchResult {
    let error = match answer {
        Ok(task) => return LaunchResult::Accepted(Some(Box::new(task))),
        Err(LaunchFailure::Unanswered(why)) => return LaunchResult::Unanswered(why),
        Err(LaunchFailure::Refused(error)) => error,
    };
    // The id is ours and unique per attempt: the master has it already (an earlier
    // send, maybe on another node) — the launch did happen.
    if error.code == ErrorCode::AlreadyExists {
        return LaunchResult::Accepted(None);
    }
    match error.code {
        ErrorCode::InsufficientResources | ErrorCode::Conflict | ErrorCode::NotFound => {
            LaunchResult::NodeRefused(error.message)
        }
        // The master failed (its store), not the launch: send it again later.
        ErrorCode::Internal | ErrorCode::Unavailable => LaunchResult::Unanswered(error.message),
        _ => LaunchResult::Refused(error.message),
    }
}

/// What placing one launch asks for: one task, no ports, none of the job's tasks to
/// spread from (`existing` is empty; it is borrowed, so the caller holds it).
fn placement_request<'a>(
    l: &'a Launch,
    existing: &'a std::collections::BTreeMap<String, usize>,
) -> PlacementRequest<'a> {
    PlacementRequest {
        app_id: &l.definition.name,
        resources: l.definition.resources,
        fixed_ports: Vec::new(),
        random_ports: 0,
        needs_docker: l.definition.container.is_some(),
        constraints: &l.constraints,
        count: 1,
        existing,
    }
}

/// Picks a node for one launch with the placement function and takes its resources
/// out of the working snapshot.
fn choose_node(snapshot: &mut ClusterSnapshot, l: &Launch) -> Option<String> {
    let existing = std::collections::BTreeMap::new();
    let request = placement_request(l, &existing);
    let plan = place(&request, snapshot);
    let node = plan.placements.first()?.node.clone();
    if l.tried.contains(&node) {
        return None;
    }
    snapshot.apply(&request, &plan);
    Some(node)
}

fn no_node_message(snapshot: &ClusterSnapshot, l: &Launch) -> String {
    if snapshot.nodes.is_empty() {
        return "no node has registered with the master".into();
    }
    let existing = std::collections::BTreeMap::new();
    match place(&placement_request(l, &existing), snapshot).unplaced {
        Some(u) => format!("no node can take it: {}", u.reason),
        None => "no node can take it".into(),
    }
}

impl Ticking for Jobs {
    async fn tick(&self) {
        Jobs::tick(self).await;
    }

    async fn next_wake(&self) -> Option<DateTime<Utc>> {
        *self.wake_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn poke(&self) -> &Notify {
        &self.wake
    }
}

impl Component for Jobs {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn metrics(&self, out: &mut Metrics) {
        let m = self.metrics_lock();
        out.gauges(&[
            ("drover_scheduler_jobs", "Jobs defined", m.jobs as f64),
            (
                "drover_scheduler_job_open_runs",
                "Job attempts pending, running or waiting to retry",
                m.open_runs as f64,
            ),
            (
                "drover_scheduler_job_launches_total",
                "Job task launches the master accepted",
                m.launches as f64,
            ),
            (
                "drover_scheduler_job_launch_refusals_total",
                "Job task launches the master refused",
                m.refusals as f64,
            ),
            (
                "drover_scheduler_job_launch_errors_total",
                "Job task launches left unanswered",
                m.launch_errors as f64,
            ),
            (
                "drover_scheduler_job_ticks_total",
                "Steps of the job engine",
                m.ticks as f64,
            ),
            (
                "drover_scheduler_job_store_errors_total",
                "Failed writes of job state",
                m.store_errors as f64,
            ),
            (
                "drover_scheduler_job_runs_pruned_total",
                "Run records pruned under the retention policy",
                m.pruned_runs as f64,
            ),
        ]);
        let mut sorted: Vec<f64> = m.lateness.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let help = "Lateness of scheduled job starts (launch decision minus scheduled time), seconds, over recent runs";
        for (q, label) in [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")] {
            if let Some(v) = crate::engine::jobs::stats::percentile(&sorted, q) {
                out.gauge(
                    "drover_scheduler_job_lateness_seconds",
                    help,
                    &[("quantile", label)],
                    v,
                );
            }
        }
        out.gauge(
            "drover_scheduler_job_lateness_seconds_max",
            "Largest lateness of a scheduled job start, seconds",
            &[],
            m.lateness_max,
        );
        out.gauge(
            "drover_scheduler_job_lateness_samples",
            "Scheduled job starts the lateness figures cover",
            &[],
            sorted.len() as f64,
        );
    }

    fn spawn(self: Arc<Self>, ctx: LoopContext) -> JoinHandle<()> {
        let rx = self
            .effects_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let stop = ctx.stop.clone();
        tokio::spawn(async move {
            let worker = rx.map(|rx| tokio::spawn(self.clone().effects_loop(rx, stop.clone())));
            let pruner = tokio::spawn(self.clone().prune_loop(stop.clone()));
            driver::run(self.clone(), ctx, FIRST_VIEW_WAIT).await;
            if let Some(w) = worker {
                let _ = w.await;
            }
            let _ = pruner.await;
        })
    }
}
