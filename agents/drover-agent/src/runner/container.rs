//! Container tasks: the runner's Docker executor. No helper process per task: one monitor
//! job in the agent asks the engine to create and start the container, copies its log
//! stream into the sandbox, waits for it to stop (carrying out a kill with the task's
//! grace period), records how it ended and removes it. A restarted agent runs the same
//! monitor, which finds the container again by its name instead of creating it.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use chrono::Utc;
use drover_api::TaskId;
use drover_api::container::{DockerContainer, labels};
use drover_api::task::TaskSpec;
use tokio::sync::Notify;

use super::executor::Executor;
use super::{Entry, Inner, TaskRunner};
use crate::docker::{Engine, spec};
use crate::procfs;
use crate::sandbox::{ContainerRecord, ExitRecord, LaunchPlan, PidRecord, ProcessRecord, Sandbox};

/// The message of a container task on an agent without a Docker Engine.
pub const NO_ENGINE: &str =
    "this agent cannot run DOCKER containers: it found no Docker Engine when it started";

/// The message of a container that disappeared while the agent was not watching.
pub const CONTAINER_VANISHED: &str = "the task's container vanished while the agent was down";

/// How long the log copy may take to drain once the container stopped.
const LOG_DRAIN: Duration = Duration::from_secs(10);

/// Runs a task as a Docker container through the engine.
#[derive(Debug)]
pub(super) struct DockerExecutor;

impl Executor for DockerExecutor {
    /// Checks that this agent can run `spec`'s container and resolves its environment.
    fn prepare(&self, inner: &Inner, spec: &TaskSpec, sb: &Sandbox) -> Result<LaunchPlan, String> {
        if inner.docker().is_none() {
            return Err(NO_ENGINE.to_string());
        }
        let container = task_container(spec)?;
        let requested = spec::requested_user(spec.definition.user.as_deref(), &container)?;
        // The container's user is the task user's uid:gid (or an allowed user's) as a
        // process's is, whatever the image says.
        let user = inner.task_user(spec, requested, sb)?;
        Ok(LaunchPlan {
            argv: Vec::new(),
            env: spec::container_env(spec, &inner.config.host),
            uid: Some(user.uid),
            gid: Some(user.gid),
            groups: None,
            user: Some(user.name),
            cgroup: None,
        })
    }

    /// No shim: the agent itself drives the container through the engine.
    fn start(&self, inner: &Arc<Inner>, id: TaskId, entry: Entry, _sb: &Sandbox) {
        follow(inner, id, entry);
    }

    /// The monitor finds the container again by its name (and `drover.task-id` label).
    fn resume(&self, inner: &Arc<Inner>, id: TaskId, entry: Entry, _sb: &Sandbox) {
        follow(inner, id, entry);
    }

    /// Removes the task's container: a restarted agent may have died between recording
    /// the exit and removing it.
    fn clean_up_ended(&self, inner: &Inner, id: &TaskId) {
        let Some(engine) = inner.docker() else {
            return;
        };
        let name = spec::container_name(id);
        inner.spawn_job(async move {
            if let Err(e) = engine.remove(&name).await
                && !e.is_not_found()
            {
                tracing::warn!("cannot remove container {name}: {e}");
            }
        });
    }

    /// COMMAND checks run inside the task's container through the engine's exec.
    fn probe_container(&self, inner: &Inner, id: &TaskId) -> Option<(Engine, String)> {
        inner
            .docker()
            .map(|engine| (engine, spec::container_name(id)))
    }
}

/// Records a container task and starts its monitor, which follows it in the engine.
fn follow(inner: &Arc<Inner>, id: TaskId, entry: Entry) {
    let wake = entry.wake.clone();
    inner.insert(id.clone(), entry);
    inner.spawn_job(Inner::container_monitor(inner.clone(), id, wake));
}

impl TaskRunner {
    /// Removes the containers this agent started for tasks it no longer has (their
    /// sandbox was deleted while the agent was down): nobody would ever stop them.
    pub(super) fn sweep_orphan_containers(&self) {
        let Some(engine) = self.inner.docker() else {
            return;
        };
        let mine = crate::sandbox::tasks_dir(&self.inner.config.work_dir);
        let runner = self.clone();
        self.inner.spawn_job(async move {
            let list = match engine.labelled(labels::TASK_ID).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("cannot list containers: {e}");
                    return;
                }
            };
            for (cid, tags) in list {
                let (Some(task), Some(sandbox)) =
                    (tags.get(labels::TASK_ID), tags.get(labels::SANDBOX))
                else {
                    continue;
                };
                let sandbox = std::path::Path::new(sandbox);
                // Another agent's (several may share one engine), or a task this one runs.
                if sandbox.parent() != Some(mine.as_path())
                    || runner
                        .inner
                        .lock()
                        .contains_key(&TaskId::from(task.as_str()))
                    || sandbox.exists()
                {
                    continue;
                }
                tracing::warn!(task = %task, container = %cid, "removing an orphaned container");
                if let Err(e) = engine.remove(&cid).await {
                    tracing::warn!("{e}");
                }
            }
        });
    }
}

impl Inner {
    /// Runs one container task from wherever it is (not created, running, exited) to its
    /// recorded end.
    pub(super) async fn container_monitor(inner: Arc<Inner>, id: TaskId, wake: Arc<Notify>) {
        let Some((spec, sb, plan)) = inner.container_parts(&id) else {
            return;
        };
        let Some(engine) = inner.docker() else {
            inner.fail(&id, &sb, NO_ENGINE.to_string());
            return;
        };
        let cid = match Inner::container_up(&inner, &engine, &spec, &sb, &plan).await {
            Ok(Some(cid)) => cid,
            Ok(None) => return,
            Err(why) => {
                inner.fail(&id, &sb, why);
                return;
            }
        };
        match engine.inspect(&cid).await {
            Ok(info) => inner.container_started(&id, &info),
            Err(e) => tracing::warn!(task = %id, "{e}"),
        }
        // The log copy runs beside the wait; it ends by itself when the container stops.
        let drained = Arc::new(Notify::new());
        {
            let (engine, cid, sb, drained) =
                (engine.clone(), cid.clone(), sb.clone(), drained.clone());
            inner.spawn_job(async move {
                if let Err(e) = engine.copy_logs(&cid, &sb).await {
                    tracing::warn!("{e}");
                }
                drained.notify_one();
            });
        }
        let grace = spec::stop_timeout(spec.definition.kill_grace_period_seconds);
        let mut stop_sent = false;
        loop {
            if !stop_sent && inner.kill_requested(&id) {
                stop_sent = true;
                let (engine, cid) = (engine.clone(), cid.clone());
                // Docker sends the stop signal, then SIGKILL after the grace period.
                inner.spawn_job(async move {
                    if let Err(e) = engine.stop(&cid, grace).await
                        && !e.is_not_found()
                    {
                        tracing::warn!("{e}");
                    }
                });
            }
            tokio::select! {
                waited = engine.wait(&cid) => match waited {
                    Ok(()) => match engine.inspect(&cid).await {
                        // Not ended after all (the wait was cut short): wait again.
                        Ok(info) if is_running(&info) => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        _ => break,
                    },
                    Err(e) if e.is_not_found() => break,
                    Err(e) => {
                        tracing::warn!(task = %id, "{e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                _ = wake.notified() => {}
            }
        }
        let _ = tokio::time::timeout(LOG_DRAIN, drained.notified()).await;
        let rec = match engine.inspect(&cid).await {
            Ok(info) => match &info.state {
                Some(state) => spec::exit_record(state),
                None => ExitRecord::error("the engine did not say how the container ended"),
            },
            Err(e) => ExitRecord::error(format!(
                "the container is gone and how it ended is unknown: {e}"
            )),
        };
        if let Err(e) = sb.write_exit(&rec) {
            tracing::warn!(task = %id, "{e}");
        }
        inner.finish(&id, &rec);
        // Its status is recorded: the container has nothing more to tell.
        if let Err(e) = engine.remove(&cid).await
            && !e.is_not_found()
        {
            tracing::warn!(task = %id, "{e}");
        }
    }

    /// Finds the task's container, or creates and starts it. `Ok(None)`: the task ended
    /// before it started (a kill came first); `Err`: why it cannot run.
    async fn container_up(
        inner: &Arc<Inner>,
        engine: &Engine,
        spec: &TaskSpec,
        sb: &Sandbox,
        plan: &Option<LaunchPlan>,
    ) -> Result<Option<String>, String> {
        let id = &spec.id;
        let name = spec::container_name(id);
        if let Some(info) = engine.find(&name).await.map_err(|e| e.to_string())? {
            let cid = info.id.clone().unwrap_or(name);
            if is_created(&info) {
                // The agent stopped between create and start.
                engine.start(&cid).await.map_err(|e| e.to_string())?;
            }
            tracing::info!(task = %id, container = %cid, "re-adopted a container");
            return Ok(Some(cid));
        }
        if sb.read_container().ok().flatten().is_some() {
            return Err(CONTAINER_VANISHED.to_string());
        }
        let container = task_container(spec)?;
        // No container is made without the user decided at launch (a checkpoint from an
        // agent before task users has none): the image's own user may be root.
        let Some((plan, uid, gid)) = plan.as_ref().and_then(|p| Some((p, p.uid?, p.gid?))) else {
            return Err("the task's checkpoint names no user to run its container as".into());
        };
        let mut body = spec::create_body(spec, &container, &plan.env, sb.dir())?;
        body.user = Some(format!("{uid}:{gid}"));
        if inner.killed_before_start(id, sb) {
            return Ok(None);
        }
        engine
            .ensure_image(&container.image, container.force_pull)
            .await
            .map_err(|e| e.to_string())?;
        if inner.killed_before_start(id, sb) {
            return Ok(None);
        }
        let cid = match engine.create(&name, body).await {
            Ok(cid) => cid,
            Err(e) if e.is_conflict() => {
                return Err(format!("a container named {name} exists already: {e}"));
            }
            Err(e) => return Err(e.to_string()),
        };
        let rec = ContainerRecord {
            id: cid.clone(),
            created_at: Utc::now(),
        };
        if let Err(e) = sb.write_container(&rec) {
            tracing::warn!(task = %id, "{e}");
        }
        if let Err(e) = engine.start(&cid).await {
            let _ = engine.remove(&cid).await;
            return Err(format!("cannot start the container: {e}"));
        }
        Ok(Some(cid))
    }

    /// The spec, sandbox and launch plan (environment, user) of a container task that
    /// is still active.
    fn container_parts(&self, id: &TaskId) -> Option<(TaskSpec, Sandbox, Option<LaunchPlan>)> {
        let tasks = self.lock();
        let e = tasks.get(id)?;
        if e.state.is_terminal() {
            return None;
        }
        Some((e.spec.clone(), e.sandbox.clone()?, e.plan.clone()))
    }

    fn kill_requested(&self, id: &TaskId) -> bool {
        self.lock().get(id).is_some_and(|e| e.kill.is_some())
    }

    /// Records a kill that came before the container existed; true if one did.
    fn killed_before_start(&self, id: &TaskId, sb: &Sandbox) -> bool {
        if !self.kill_requested(id) {
            return false;
        }
        self.fail(id, sb, "killed before it started".to_string());
        true
    }

    /// Records that the task ended without (or before) running, with the reason.
    fn fail(&self, id: &TaskId, sb: &Sandbox, why: String) {
        tracing::warn!(task = %id, "{why}");
        let rec = ExitRecord::error(why);
        if let Err(e) = sb.write_exit(&rec) {
            tracing::warn!(task = %id, "{e}");
        }
        self.finish(id, &rec);
    }

    /// The container is up: the task is running, with the container's main process as
    /// its pid, and its health checks start.
    fn container_started(self: &Arc<Self>, id: &TaskId, info: &ContainerInspectResponse) {
        let state = info.state.as_ref();
        let pid = state
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let start_time = procfs::read_stat(pid).map_or(0, |s| s.start_time);
        let started_at =
            spec::docker_time(state.and_then(|s| s.started_at.as_deref())).unwrap_or_else(Utc::now);
        self.set_running(
            id,
            PidRecord {
                process: ProcessRecord { pid, start_time },
                started_at,
            },
        );
    }
}

/// The task's container, parsed; `Err` is why the task cannot run.
fn task_container(spec: &TaskSpec) -> Result<DockerContainer, String> {
    let value = spec
        .definition
        .container
        .as_ref()
        .ok_or("the task has no container")?;
    DockerContainer::parse(value).map_err(|e| format!("invalid container: {e}"))
}

fn status(info: &ContainerInspectResponse) -> Option<ContainerStateStatusEnum> {
    info.state.as_ref().and_then(|s| s.status)
}

fn is_running(info: &ContainerInspectResponse) -> bool {
    matches!(
        status(info),
        Some(
            ContainerStateStatusEnum::RUNNING
                | ContainerStateStatusEnum::RESTARTING
                | ContainerStateStatusEnum::PAUSED
        )
    )
}

fn is_created(info: &ContainerInspectResponse) -> bool {
    status(info) == Some(ContainerStateStatusEnum::CREATED)
}
