//! The task runner: starts tasks, watches them, kills them, runs their health checks,
//! re-adopts them after an agent restart, and reports them.
//!
//! Each task has one entry in memory and one sandbox on disk; the disk is the truth a
//! restarted agent starts from (see [`crate::sandbox`]). What runs a task is its
//! executor (`runner/executor.rs`), chosen from its definition when the runner takes it:
//! a process under a shim (`runner/process.rs`) or a Docker container the agent drives
//! through the engine (`runner/container.rs`). Either way a monitor job per active task
//! learns its pid, carries out kills and records its end in the same entry and sandbox; a
//! health job per started task runs its checks. Every change a report would show bumps a
//! counter that [`TaskRunner::subscribe`] hands out, so the heartbeat goes at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_api::TaskId;
use drover_api::agent::TaskAssignment;
use drover_api::task::{ExitStatus, HealthReport, TaskGoal, TaskReport, TaskSpec, TaskState};
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use crate::cgroup::CgroupManager;
use crate::env;
use crate::health::{self, CheckCounter, ProbeTarget};
use crate::outcome;
use crate::reconcile::{self, Action};
use crate::sandbox::{self, Checkpoint, ExitRecord, LaunchPlan, PidRecord, ProcessRecord, Sandbox};
use crate::task_user::{self, TaskUser, TaskUsers};

mod container;
mod executor;
mod process;

use executor::{Executor, ExecutorKind};

pub use container::{CONTAINER_VANISHED, NO_ENGINE};

/// How often a monitor looks at a task's sandbox by default.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// What the runner needs from the agent.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The agent's work dir; sandboxes live in `work_dir/tasks/`.
    pub work_dir: PathBuf,
    /// The binary to run as `<shim_exe> shim <sandbox>` (the agent's own, normally).
    pub shim_exe: PathBuf,
    /// The host name or address tasks get as `HOST`.
    pub host: String,
    /// Per-task resource limits (or none).
    pub cgroups: Arc<dyn CgroupManager>,
    /// How often monitors poll sandboxes.
    pub poll_interval: Duration,
    /// The Docker Engine that runs container tasks, when the agent found one.
    pub docker: Option<crate::docker::Engine>,
    /// Who tasks run as, and who they may ask to run as.
    pub task_users: TaskUsers,
}

impl RunnerConfig {
    /// A config with no cgroups, the default poll interval, and tasks running as the
    /// agent's own user.
    pub fn new(
        work_dir: impl Into<PathBuf>,
        shim_exe: impl Into<PathBuf>,
        host: impl Into<String>,
    ) -> Self {
        RunnerConfig {
            work_dir: work_dir.into(),
            shim_exe: shim_exe.into(),
            host: host.into(),
            cgroups: Arc::new(crate::cgroup::NoCgroups),
            poll_interval: DEFAULT_POLL,
            docker: None,
            task_users: TaskUsers::as_agent(crate::task_user::current()),
        }
    }
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The tasks directory could not be created or read.
    #[error("cannot use the tasks directory {path}: {source}")]
    TasksDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for health checks could not be built.
    #[error("cannot build the health-check HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// A handle on the runner; clones share it.
#[derive(Debug, Clone)]
pub struct TaskRunner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RunnerConfig,
    /// The base environment every task starts from (read once from the agent's own).
    base_env: BTreeMap<String, String>,
    tasks: Mutex<BTreeMap<TaskId, Entry>>,
    /// Bumped on every change a report shows; the heartbeat loop and tests watch it.
    changes: watch::Sender<u64>,
    /// Every background job (monitors, shim reapers, health checks). [`TaskRunner::detach`]
    /// aborts them all; the processes they watch are left alone.
    jobs: Mutex<Vec<AbortHandle>>,
    /// For HTTP health checks: no redirects followed, no proxy.
    http: reqwest::Client,
    /// The Docker Engine, once found: at start (`config.docker`) or later, when dockerd
    /// comes up after the agent.
    docker: std::sync::RwLock<Option<crate::docker::Engine>>,
}

/// One task as the runner holds it.
#[derive(Debug)]
struct Entry {
    spec: TaskSpec,
    /// `None` only for a task whose id is unusable as a directory name.
    sandbox: Option<Sandbox>,
    plan: Option<LaunchPlan>,
    state: TaskState,
    process: Option<ProcessRecord>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    exit: Option<ExitStatus>,
    message: Option<String>,
    /// Why a kill was asked for, once one was.
    kill: Option<String>,
    checks: Vec<CheckCounter>,
    health: Option<HealthReport>,
    /// The health job; aborted when the task ends or is forgotten.
    health_job: Option<AbortHandle>,
    /// Wakes the monitor at once (a kill was asked for).
    wake: Arc<Notify>,
    /// What runs the task, chosen from its definition when the runner takes it.
    executor: ExecutorKind,
}

impl Entry {
    fn new(spec: TaskSpec, sandbox: Option<Sandbox>, plan: Option<LaunchPlan>) -> Self {
        Entry {
            executor: ExecutorKind::for_task(&spec.definition),
            spec,
            sandbox,
            plan,
            state: TaskState::Staging,
            process: None,
            started_at: None,
            finished_at: None,
            exit: None,
            message: None,
            kill: None,
            checks: Vec::new(),
            health: None,
            health_job: None,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The task's executor.
    fn executor(&self) -> &'static dyn Executor {
        self.executor.executor()
    }

    fn report(&self) -> TaskReport {
        TaskReport {
            id: self.spec.id.clone(),
            state: self.state,
            pid: self.process.map(|p| p.pid),
            exit: self.exit,
            message: self.message.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            health: self.health.clone(),
        }
    }

    /// Moves to the terminal state `rec` implies; false if already terminal.
    fn finish(&mut self, rec: &ExitRecord) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        let (state, message) = outcome::classify(
            rec,
            self.kill.as_deref(),
            self.spec.definition.resources.mem,
        );
        self.state = state;
        self.message = message;
        self.exit = rec.status;
        self.finished_at = Some(rec.finished_at);
        if let Some(h) = self.health_job.take() {
            h.abort();
        }
        true
    }
}

/// A start whose checkpoint is written but not yet durable (see `Runner::start_staged`).
struct StagedStart {
    id: TaskId,
    entry: Entry,
    sb: Sandbox,
    prepared: Result<LaunchPlan, String>,
    checkpoint: sandbox::StagedFile,
}

impl TaskRunner {
    /// Creates the tasks directory, re-adopts every task found in it (running ones keep
    /// running, ended ones are reported), and returns the runner. Must be called inside a
    /// tokio runtime.
    pub fn start(config: RunnerConfig) -> Result<TaskRunner, RunnerError> {
        let dir = sandbox::tasks_dir(&config.work_dir);
        std::fs::create_dir_all(&dir).map_err(|source| RunnerError::TasksDir {
            path: dir.clone(),
            source,
        })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(RunnerError::HttpClient)?;
        let docker = std::sync::RwLock::new(config.docker.clone());
        let runner = TaskRunner {
            inner: Arc::new(Inner {
                docker,
                config,
                base_env: env::base_env_from_process(),
                tasks: Mutex::new(BTreeMap::new()),
                changes: watch::channel(0).0,
                jobs: Mutex::new(Vec::new()),
                http,
            }),
        };
        let entries = std::fs::read_dir(&dir).map_err(|source| RunnerError::TasksDir {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(TaskId::from) else {
                continue;
            };
            if name.validate().is_err() || !entry.path().is_dir() {
                continue;
            }
            let sb = Sandbox::at(entry.path());
            if sb.is_acked() {
                continue;
            }
            match sb.read_checkpoint() {
                Ok(cp) => runner.adopt(sb, cp),
                Err(e) => tracing::warn!("skipping sandbox {}: {e}", entry.path().display()),
            }
        }
        runner.sweep_orphan_containers();
        Ok(runner)
    }

    /// Whether container tasks can run here (a Docker Engine was found).
    pub fn has_docker(&self) -> bool {
        self.inner.docker().is_some()
    }

    /// Takes a Docker Engine found after the agent started: container tasks run from now
    /// on, containers of forgotten tasks are swept, and the heartbeat loop is woken (it
    /// registers again to announce the capability).
    pub fn attach_docker(&self, engine: crate::docker::Engine) {
        *self.inner.docker.write().unwrap_or_else(|p| p.into_inner()) = Some(engine);
        self.sweep_orphan_containers();
        self.inner.bump();
    }

    /// A receiver whose value changes whenever any task's report changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Reports of every task the runner knows, by id.
    pub fn reports(&self) -> Vec<TaskReport> {
        self.inner.lock().values().map(Entry::report).collect()
    }

    /// The specs of the active tasks: a registration sends them, so that a master that
    /// lost its record of one adopts it rather than having it killed.
    pub fn active_specs(&self) -> Vec<TaskSpec> {
        self.inner
            .lock()
            .values()
            .filter(|e| e.state.is_active())
            .map(|e| e.spec.clone())
            .collect()
    }

    /// The report of one task.
    pub fn report(&self, id: &TaskId) -> Option<TaskReport> {
        self.inner.lock().get(id).map(Entry::report)
    }

    /// How many tasks are in each state.
    pub fn counts(&self) -> std::collections::HashMap<TaskState, usize> {
        let mut out = std::collections::HashMap::new();
        for e in self.inner.lock().values() {
            *out.entry(e.state).or_insert(0) += 1;
        }
        out
    }

    /// The sandbox of task `id`, if one exists on disk (also for forgotten tasks).
    pub fn sandbox(&self, id: &TaskId) -> Option<Sandbox> {
        id.validate().ok()?;
        let sb = Sandbox::new(&self.inner.config.work_dir, id);
        sb.exists().then_some(sb)
    }

    /// Whether task `id` is known and still active (log follow stops once it is not).
    pub fn is_active(&self, id: &TaskId) -> bool {
        self.inner
            .lock()
            .get(id)
            .is_some_and(|e| e.state.is_active())
    }

    /// Reconciles against the master's assignments and applies the resulting actions.
    pub fn reconcile(&self, wanted: &[TaskAssignment]) -> Vec<Action> {
        let local: Vec<reconcile::LocalTask> = self
            .inner
            .lock()
            .values()
            .map(|e| reconcile::LocalTask {
                id: e.spec.id.clone(),
                state: e.state,
                kill_requested: e.kill.is_some(),
            })
            .collect();
        let actions = reconcile::reconcile(&local, wanted);
        // Launches are staged first and their checkpoints synced together: a burst of
        // 500 new tasks costs a few journal commits instead of one each.
        let mut staged = Vec::new();
        for a in &actions {
            if let Action::Launch(spec) = a {
                staged.extend(self.stage_start(spec.clone(), TaskGoal::Run));
            }
        }
        self.start_staged(staged);
        for a in &actions {
            match a {
                Action::Launch(_) => {}
                Action::Kill { id, reason } => {
                    self.kill(id, reason);
                }
                Action::RecordKilled(spec) => self.start_task(spec.clone(), TaskGoal::Kill),
                Action::Forget(id) => self.forget(id),
            }
        }
        actions
    }

    /// Starts a task (idempotent: a task the runner has, or that has a sandbox on disk
    /// from an earlier run, is not started again).
    pub fn launch(&self, spec: TaskSpec) {
        self.start_task(spec, TaskGoal::Run)
    }

    /// Asks task `id` to stop: SIGTERM to its process group now, SIGKILL after its grace
    /// period. Returns false if the task is unknown or already ended.
    pub fn kill(&self, id: &TaskId, reason: &str) -> bool {
        let mut tasks = self.inner.lock();
        let Some(e) = tasks.get_mut(id) else {
            return false;
        };
        if e.state.is_terminal() || e.kill.is_some() {
            return false;
        }
        e.kill = Some(reason.to_string());
        // Persist the goal, so a restarted agent finishes the kill and reports `killed`,
        // and a shim that has not spawned yet does not.
        if let Some(sb) = &e.sandbox {
            match sb.read_checkpoint() {
                Ok(mut cp) => {
                    cp.goal = TaskGoal::Kill;
                    cp.kill_reason = Some(reason.to_string());
                    if let Err(err) = sb.write_checkpoint(&cp) {
                        tracing::warn!(task = %id, "cannot checkpoint the kill: {err}");
                    }
                }
                Err(err) => tracing::warn!(task = %id, "cannot checkpoint the kill: {err}"),
            }
        }
        e.wake.notify_one();
        true
    }

    /// Drops a terminal task the master no longer lists; its sandbox stays for its logs,
    /// marked so a restart does not report it again.
    pub fn forget(&self, id: &TaskId) {
        let mut tasks = self.inner.lock();
        if tasks.get(id).is_some_and(|e| e.state.is_terminal())
            && let Some(sb) = tasks.remove(id).and_then(|e| e.sandbox)
            && let Err(err) = sb.ack()
        {
            tracing::warn!(task = %id, "{err}");
        }
    }

    /// Deletes the sandboxes of tasks the master forgot at least `delay` ago (Mesos's
    /// `gc_delay`); returns how many went. Sandboxes of known tasks are never touched.
    pub fn collect_garbage(&self, delay: Duration) -> usize {
        let dir = sandbox::tasks_dir(&self.inner.config.work_dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let sb = Sandbox::at(entry.path());
            let Some(acked_at) = std::fs::metadata(sb.ack_path())
                .and_then(|m| m.modified())
                .ok()
            else {
                continue;
            };
            let known = entry
                .file_name()
                .to_str()
                .is_some_and(|n| self.inner.lock().contains_key(&TaskId::from(n)));
            if known || !sandbox::is_garbage(acked_at, now, delay) {
                continue;
            }
            match std::fs::remove_dir_all(sb.dir()) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!("cannot remove old sandbox {}: {e}", sb.dir().display()),
            }
        }
        removed
    }

    /// Waits until task `id`'s report satisfies `pred`, for at most `timeout`; returns the
    /// report that did (for tests and tools).
    pub async fn wait_for(
        &self,
        id: &TaskId,
        timeout: Duration,
        pred: impl Fn(&TaskReport) -> bool,
    ) -> Option<TaskReport> {
        let mut rx = self.subscribe();
        let check = || self.report(id).filter(|r| pred(r));
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(r) = check() {
                    return r;
                }
                // Health details change without a bump (only state changes heartbeat),
                // so look again now and then as well.
                let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
            }
        })
        .await
        .ok()
    }

    /// Stops every background job of the runner, leaving the tasks' processes (and their
    /// shims) running, as an agent that is stopped or killed does.
    pub fn detach(&self) {
        for h in self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            h.abort();
        }
    }

    fn start_task(&self, spec: TaskSpec, goal: TaskGoal) {
        let staged = self.stage_start(spec, goal);
        self.start_staged(staged.into_iter().collect());
    }

    /// Everything of a start up to its checkpoint, written but not yet synced; `None`
    /// when the task needs no start (known, adopted from disk, or failed already).
    fn stage_start(&self, spec: TaskSpec, goal: TaskGoal) -> Option<StagedStart> {
        let id = spec.id.clone();
        if self.inner.lock().contains_key(&id) {
            return None;
        }
        if let Err(e) = id.validate() {
            let mut entry = Entry::new(spec, None, None);
            entry.finish(&ExitRecord::error(e.message));
            self.inner.insert(id, entry);
            return None;
        }
        let sb = Sandbox::new(&self.inner.config.work_dir, &id);
        if sb.exists() {
            // It ran here before (the master lists it again, or a kill raced a restart):
            // report what became of it rather than run it twice.
            sb.unack();
            match sb.read_checkpoint() {
                Ok(cp) => {
                    self.adopt(sb, cp);
                    return None;
                }
                Err(e) => {
                    let mut entry = Entry::new(spec, Some(sb), None);
                    entry.finish(&ExitRecord::error(format!(
                        "its sandbox exists but is unreadable: {e}"
                    )));
                    self.inner.insert(id, entry);
                    return None;
                }
            }
        }
        if let Err(e) = sb.create() {
            let mut entry = Entry::new(spec, None, None);
            entry.finish(&ExitRecord::error(format!(
                "cannot create its sandbox: {e}"
            )));
            self.inner.insert(id, entry);
            return None;
        }
        let mut entry = Entry::new(spec, Some(sb.clone()), None);
        let prepared = match goal {
            TaskGoal::Run => entry.executor().prepare(&self.inner, &entry.spec, &sb),
            TaskGoal::Kill => Err("killed before it started".to_string()),
        };
        let kill_reason = (goal == TaskGoal::Kill).then(|| reconcile::KILL_ASKED.to_string());
        let cp = Checkpoint {
            spec: entry.spec.clone(),
            goal,
            launch: prepared.as_ref().ok().cloned(),
            created_at: Utc::now(),
            kill_reason: kill_reason.clone(),
        };
        entry.plan = cp.launch.clone();
        entry.kill = kill_reason;
        match sb.stage_checkpoint(&cp) {
            Ok(checkpoint) => Some(StagedStart {
                id,
                entry,
                sb,
                prepared,
                checkpoint,
            }),
            Err(e) => {
                entry.finish(&ExitRecord::error(format!(
                    "cannot checkpoint the task: {e}"
                )));
                self.inner.insert(id, entry);
                None
            }
        }
    }

    /// Makes the staged checkpoints durable together, then starts each task: no
    /// process runs before the record a restarted agent would find it by.
    fn start_staged(&self, staged: Vec<StagedStart>) {
        let (starts, checkpoints): (Vec<_>, Vec<_>) = staged
            .into_iter()
            .map(|s| ((s.id, s.entry, s.sb, s.prepared), s.checkpoint))
            .unzip();
        let synced = sandbox::commit_staged(checkpoints);
        for ((id, entry, sb, prepared), synced) in starts.into_iter().zip(synced) {
            self.start_checkpointed(id, entry, sb, prepared, synced);
        }
    }

    /// The rest of a start once its checkpoint is durable (or could not be made so).
    fn start_checkpointed(
        &self,
        id: TaskId,
        mut entry: Entry,
        sb: Sandbox,
        prepared: Result<LaunchPlan, String>,
        synced: Result<(), sandbox::SandboxError>,
    ) {
        if let Err(e) = synced {
            entry.finish(&ExitRecord::error(format!(
                "cannot checkpoint the task: {e}"
            )));
            self.inner.insert(id, entry);
            return;
        }
        if let Err(why) = prepared {
            let rec = ExitRecord::error(why);
            if let Err(e) = sb.write_exit(&rec) {
                tracing::warn!(task = %id, "{e}");
            }
            entry.finish(&rec);
            self.inner.insert(id, entry);
            return;
        }
        entry.executor().start(&self.inner, id, entry, &sb);
    }

    /// Takes over a task found on disk: reports an ended one, watches a running one,
    /// and fails one whose process is gone without a trace.
    fn adopt(&self, sb: Sandbox, cp: Checkpoint) {
        let id = cp.spec.id.clone();
        let mut entry = Entry::new(cp.spec, Some(sb.clone()), cp.launch);
        let executor = entry.executor();
        if cp.goal == TaskGoal::Kill {
            entry.kill = Some(
                cp.kill_reason
                    .unwrap_or_else(|| reconcile::KILL_ASKED.to_string()),
            );
        }
        match sb.read_exit() {
            Ok(Some(rec)) => {
                if let Ok(Some(p)) = sb.read_pid() {
                    entry.process = Some(p.process);
                    entry.started_at = Some(p.started_at);
                }
                entry.finish(&rec);
                self.inner.insert(id.clone(), entry);
                executor.clean_up_ended(&self.inner, &id);
                return;
            }
            Ok(None) => {}
            Err(e) => {
                entry.finish(&ExitRecord::error(format!(
                    "its exit record is unreadable: {e}"
                )));
                self.inner.insert(id, entry);
                return;
            }
        }
        executor.resume(&self.inner, id, entry, &sb);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TaskId, Entry>> {
        // A panic elsewhere must not take the runner down with it.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The Docker Engine, if one has been found.
    fn docker(&self) -> Option<crate::docker::Engine> {
        self.docker
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Who task `spec` runs as (`requested`: the user it names, if any); when the agent
    /// switches users, the sandbox is shared with that user's group. `Err` is why the
    /// task fails instead.
    fn task_user(
        &self,
        spec: &TaskSpec,
        requested: Option<&str>,
        sb: &Sandbox,
    ) -> Result<TaskUser, String> {
        let users = &self.config.task_users;
        let user = users.decide(requested, task_user::lookup)?;
        if users.switching {
            sb.share_with_group(user.gid)
                .map_err(|e| format!("cannot share the sandbox with user {:?}: {e}", user.name))?;
        }
        tracing::debug!(task = %spec.id, user = %user.name, uid = user.uid, "task user");
        Ok(user)
    }

    fn insert(&self, id: TaskId, entry: Entry) {
        self.lock().insert(id, entry);
        self.bump();
    }

    fn spawn_job(
        &self,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> AbortHandle {
        let handle = tokio::spawn(fut).abort_handle();
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.retain(|h| !h.is_finished());
        jobs.push(handle.clone());
        handle
    }

    /// The task's process is known: staging becomes running and health checks start.
    fn set_running(self: &Arc<Self>, id: &TaskId, p: PidRecord) {
        let mut tasks = self.lock();
        let Some(e) = tasks.get_mut(id) else { return };
        if e.process.is_some() || e.state.is_terminal() {
            return;
        }
        e.process = Some(p.process);
        e.started_at = Some(p.started_at);
        e.state = TaskState::Running;
        self.start_health(id, e, p.started_at);
        drop(tasks);
        self.bump();
    }

    fn start_health(self: &Arc<Self>, id: &TaskId, e: &mut Entry, started_at: DateTime<Utc>) {
        let checks = e.spec.definition.health_checks.clone();
        if checks.is_empty() {
            return;
        }
        let Some(sb) = &e.sandbox else { return };
        let plan = e.plan.as_ref();
        let target = Arc::new(ProbeTarget {
            host_ports: e.spec.host_ports.clone(),
            env: plan.map(|p| p.env.clone()).unwrap_or_default(),
            sandbox: sb.dir().to_path_buf(),
            user: plan.and_then(LaunchPlan::identity),
            container: e.executor().probe_container(self, id),
        });
        e.checks = vec![CheckCounter::default(); checks.len()];
        let weak = Arc::downgrade(self);
        let task = id.clone();
        let sink: health::Sink = Arc::new(move |i, outcome, in_grace| {
            if let Some(inner) = weak.upgrade() {
                inner.record_check(&task, i, outcome, in_grace);
            }
        });
        let http = self.http.clone();
        let loops = checks.into_iter().enumerate().map(|(i, c)| {
            health::check_loop(i, c, target.clone(), started_at, http.clone(), sink.clone())
        });
        let job = futures::future::join_all(loops);
        e.health_job = Some(self.spawn_job(async move {
            job.await;
        }));
    }

    fn record_check(&self, id: &TaskId, index: usize, outcome: Result<(), String>, in_grace: bool) {
        let mut tasks = self.lock();
        let Some(e) = tasks.get_mut(id) else { return };
        if !e.state.is_started() {
            return;
        }
        let max = e
            .spec
            .definition
            .health_checks
            .get(index)
            .map_or(3, |c| c.max_consecutive_failures);
        let Some(counter) = e.checks.get_mut(index) else {
            return;
        };
        counter.record(outcome, in_grace, max, Utc::now());
        let (verdict, report) = health::combine(&e.checks);
        let state = match verdict {
            None => TaskState::Running,
            Some(true) => TaskState::Healthy,
            Some(false) => TaskState::Unhealthy,
        };
        let changed = state != e.state;
        e.message = match verdict {
            Some(false) => report
                .last_failure
                .as_ref()
                .map(|f| format!("health check failing: {f}")),
            _ => None,
        };
        e.state = state;
        e.health = Some(report);
        drop(tasks);
        if changed {
            self.bump();
        }
    }

    fn finish(&self, id: &TaskId, rec: &ExitRecord) {
        let changed = self.lock().get_mut(id).is_some_and(|e| e.finish(rec));
        if changed {
            self.bump();
        }
    }
}

/// The work dir's tasks directory, for tools that read sandboxes directly.
pub fn tasks_dir(work_dir: &Path) -> PathBuf {
    sandbox::tasks_dir(work_dir)
}
