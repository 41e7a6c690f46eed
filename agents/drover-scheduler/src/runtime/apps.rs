//! The apps runtime: apps and deployments behind one lock, the tick that plans with the
//! pure engine ([`crate::engine::apps::plan`]) and carries the plan out, and the changes the API
//! asks for ([`crate::engine::apps::begin`], [`crate::engine::apps::cancel`]).
//!
//! ```text
//!  API change ─ lock ─ begin ─ one store batch (app, version, deployment, superseded) ─ poke
//!  loop tick ── lock ─ snapshot(apps, running deployments, master tasks + launches the
//!               │      master accepted since its last read, nodes, versions, readiness
//!               │      results, launches it refused, a fresh id seed) ─ plan
//!               ├─ one store batch (apps with their pending launches, deployments,
//!               │  removals, pruned history)
//!               └─ unlock ─ launches and kills to the master ─ accepted tasks and
//!                         │ refused launch ids kept for the next tick
//!                         └ readiness probes due ([`crate::runtime::readiness_probe`]) ─ results
//!                           kept for the next tick (a probe that turns ready pokes it)
//! ```
//!
//! A create, update or rollback whose dependencies would form a cycle is refused before
//! `begin` ([`crate::engine::apps::check_cycles`]).
//!
//! The plan is a function of the snapshot, and the snapshot is built from the store and
//! the master only: a scheduler killed at any point and started again decides the same,
//! so a deployment carries on with no duplicate and no orphan instance. Each launch is
//! sent under the task id the plan chose and persisted (`apps::pending`): a launch whose
//! answer was lost (the master died after making it durable, the call timed out, the
//! scheduler died) is sent again under the same id until the master's tasks show it,
//! and the master answers a repeat with the task it has. The loop plans only with a
//! recent read of the master (a stale one could launch twice what runs), and
//! ticks after every read of the master, after every change, at the plan's `wake_at`,
//! and at least every [`driver::MAX_SLEEP`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

// tokio's clock, which tests can pause and advance.
use tokio::time::Instant;

use chrono::{DateTime, Utc};
use drover_api::app::{AppDefinition, AppId};
use drover_api::client::{AppChanged, AppDetails};
use drover_api::deployment::{AppStatus, Deployment, DeploymentId};
use drover_api::task::{Task, TaskGoal, TaskId, TaskState, labels};
use drover_api::{ApiError, ErrorCode};
use drover_service::http::Metrics;
use drover_service::retention::Retention;
use drover_store::{Op, Store};
use tokio::sync::{Mutex, Notify, broadcast, watch};
use tokio::task::JoinHandle;

use crate::engine::apps::{self, AppChange, AppState, AppsConfig, AppsPlan, Locked, Snapshot};
use crate::engine::placement::ClusterSnapshot;
use crate::runtime::accepted::AcceptedTasks;
use crate::runtime::clock::Clock;
use crate::runtime::component::{Component, LoopContext, Ports};
use crate::runtime::driver::{self, Ticking};
use crate::runtime::master_port::MasterPort;
use crate::runtime::master_sync::MasterView;
use crate::runtime::readiness_probe::Prober;
use crate::runtime::store::apps as apps_store;

/// A master view older than this is not planned with.
pub const MAX_VIEW_AGE: Duration = Duration::from_secs(5);
/// How long the first tick waits for the first read of the master.
const FIRST_VIEW_WAIT: Duration = Duration::from_secs(5);
/// Events buffered for slow `/v2/events` readers before they miss some.
const EVENT_BUFFER: usize = 1024;

/// The apps runtime's settings.
#[derive(Debug, Clone, Copy)]
pub struct AppsSettings {
    /// The engine's settings.
    pub engine: AppsConfig,
    /// Finished deployments kept (pruned at every tick).
    pub deployment_history: Retention,
}

impl Default for AppsSettings {
    fn default() -> Self {
        AppsSettings {
            engine: AppsConfig::default(),
            deployment_history: Retention {
                count: apps_store::DEPLOYMENT_HISTORY,
                max_age: drover_service::retention::DEFAULT_MAX_AGE,
            },
        }
    }
}

/// Why the apps runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    /// The store could not be read.
    #[error("failed to load the apps from the store")]
    Load(#[source] drover_store::StoreError),
    /// The blocking task that read the store did not complete.
    #[error("the store task did not complete: {0}")]
    Task(String),
}

/// Something that happened to apps, for the event stream (`GET /v2/events` renders it
/// in Marathon's shape). Each event carries the moment it happened.
#[derive(Debug, Clone)]
pub struct AppEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: AppEventKind,
}

/// What an [`AppEvent`] says happened.
#[derive(Debug, Clone)]
pub enum AppEventKind {
    /// A change to an app was accepted through the API.
    ApiPost {
        /// The app's definition as accepted.
        app: Box<AppDefinition>,
    },
    /// A deployment began, progressed, succeeded, failed or was superseded.
    Deployment {
        /// The deployment as it now is.
        deployment: Box<Deployment>,
        /// The app it deploys, where known.
        app: Option<Box<AppDefinition>>,
    },
    /// An app task's state changed.
    StatusUpdate {
        /// The task as the master now shows it.
        task: Box<Task>,
        /// The host name or address of the task's node.
        host: String,
    },
    /// An app was removed.
    AppTerminated {
        /// The removed app.
        app_id: AppId,
    },
}

/// Which definition a cancelled deployment reverts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revert {
    /// The deployment's own `revert_to` (set when the app has `autoRevert`): the native API.
    AutoRevert,
    /// The version before the deployment: Marathon's `DELETE /v2/deployments/{id}`.
    Previous,
    /// None: the deployment just stops (Marathon's `?force=true`).
    Nothing,
}

/// Apps, deployments and what the loop remembers between ticks.
#[derive(Default)]
struct AppsState {
    apps: BTreeMap<AppId, AppState>,
    deployments: BTreeMap<DeploymentId, Deployment>,
    /// The last plan's status per app.
    status: BTreeMap<AppId, AppStatus>,
    /// Tasks the master accepted, with when: the snapshot includes them until a read of
    /// the master sent after that instant shows them.
    accepted: AcceptedTasks,
    /// Launches the master refused for good since the last tick (their instances are
    /// decided again under new ids).
    refused: Vec<TaskId>,
    /// When a kill was sent per task: until a newer read shows goal `kill`, the snapshot
    /// marks the task as stopping, so it is not counted as alive (nor killed again).
    kills_sent: HashMap<TaskId, Instant>,
    /// Each app task's last seen state, for `status_update_event`s.
    last_states: HashMap<TaskId, TaskState>,
    /// The last plan's wake-up.
    wake_at: Option<DateTime<Utc>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
struct AppMetrics {
    apps: usize,
    running_deployments: usize,
    launches: u64,
    launch_refusals: u64,
    kills: u64,
    ticks: u64,
    store_errors: u64,
}

/// The apps component: state, loop and the operations behind the API (see `http::apps`
/// and `http::marathon` for the routes).
pub struct Apps {
    store: Arc<dyn Store>,
    master: Arc<dyn MasterPort>,
    clock: Arc<dyn Clock>,
    settings: AppsSettings,
    state: Mutex<AppsState>,
    /// Poked by API changes (and by readiness probes that pass) so the loop ticks at
    /// once; a permit is kept when the loop is busy, so no poke is lost.
    wake: Arc<Notify>,
    /// Runs the readiness probes the plans ask for and keeps their results.
    prober: Prober,
    /// Marathon-style events; `/v2/events` subscribers hold receivers. Sending fails
    /// only when nobody listens, which is fine.
    events: broadcast::Sender<AppEvent>,
    /// The latest master view (the master-sync loop holds the sender).
    view: watch::Receiver<Arc<MasterView>>,
    metrics: StdMutex<AppMetrics>,
}

fn internal(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, what.to_string())
}

/// Whether a master task belongs to an app.
pub fn is_app_task(t: &Task) -> bool {
    t.spec.definition.labels.contains_key(labels::APP_ID)
}

/// The app a task belongs to, by its label.
pub fn task_app(t: &Task) -> Option<&str> {
    t.spec
        .definition
        .labels
        .get(labels::APP_ID)
        .map(String::as_str)
}

impl Apps {
    /// Loads the apps and deployments from `store`; call [`Component::spawn`] to start
    /// the loop.
    pub async fn open(ports: Ports, settings: AppsSettings) -> Result<Apps, AppsError> {
        let Ports {
            store,
            master,
            view,
            clock,
        } = ports;
        let s = store.clone();
        let loaded = tokio::task::spawn_blocking(move || apps_store::load(&*s))
            .await
            .map_err(|e| AppsError::Task(e.to_string()))?
            .map_err(AppsError::Load)?;
        for (key, why) in &loaded.broken {
            tracing::error!(%key, "app record not loaded (kept in the store): {why}");
        }
        let running = loaded
            .deployments
            .values()
            .filter(|d| d.is_running())
            .count();
        tracing::info!(
            apps = loaded.apps.len(),
            running_deployments = running,
            "apps loaded"
        );
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let metrics = AppMetrics {
            apps: loaded.apps.len(),
            running_deployments: running,
            ..AppMetrics::default()
        };
        Ok(Apps {
            store,
            master,
            clock,
            settings,
            state: Mutex::new(AppsState {
                apps: loaded.apps,
                deployments: loaded.deployments,
                ..AppsState::default()
            }),
            wake: Arc::new(Notify::new()),
            prober: Prober::new(),
            events,
            view,
            metrics: StdMutex::new(metrics),
        })
    }

    fn metrics_lock(&self) -> std::sync::MutexGuard<'_, AppMetrics> {
        // Plain counters: a panic elsewhere while holding the lock leaves them usable.
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.events.subscribe()
    }

    fn emit(&self, kind: AppEventKind) {
        // Nobody listening is fine.
        let _ = self.events.send(AppEvent {
            at: self.clock.now(),
            kind,
        });
    }

    fn emit_deployment(&self, d: &Deployment, app: Option<&AppDefinition>) {
        self.emit(AppEventKind::Deployment {
            deployment: Box::new(d.clone()),
            app: app.map(|a| Box::new(a.clone())),
        });
    }

    /// Writes `ops` before the change they carry is applied in memory (so a failed
    /// write changes nothing); refused at once (503) while the store cannot write.
    async fn write(&self, ops: Vec<Op>) -> Result<(), ApiError> {
        if ops.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.health() {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("failed to save the apps' state: {e}"),
            ));
        }
        let store = self.store.clone();
        let written = tokio::task::spawn_blocking(move || store.apply(&ops)).await;
        let (code, why) = match written {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.is_unavailable() => (ErrorCode::Unavailable, e.to_string()),
            Ok(Err(e)) => (ErrorCode::Internal, e.to_string()),
            Err(e) => (ErrorCode::Internal, e.to_string()),
        };
        self.metrics_lock().store_errors += 1;
        tracing::error!("failed to save the apps' state: {why}");
        Err(ApiError::new(
            code,
            format!("failed to save the apps' state: {why}"),
        ))
    }

    /// Begins a change of app `id` (for a create or update, the id of the definition)
    /// and persists it; `ignored` is handed back in the answer. `locked` says what to do
    /// when a deployment of the app is running.
    pub async fn change(
        &self,
        id: &AppId,
        change: AppChange,
        locked: Locked,
        ignored: Vec<String>,
    ) -> Result<AppChanged, ApiError> {
        let mut st = self.state.lock().await;
        let current = st.apps.get(id).cloned();
        let running: Vec<Deployment> = st
            .deployments
            .values()
            .filter(|d| d.is_running() && d.app_id == *id)
            .cloned()
            .collect();
        let created = current.is_none();
        if let AppChange::Create(def) | AppChange::Update(def) | AppChange::Rollback(def) = &change
        {
            let others = st
                .apps
                .values()
                .filter(|a| a.id() != &def.id)
                .map(|a| &a.definition);
            apps::check_cycles(def, others)?;
        }
        let began = apps::begin(change, current.as_ref(), &running, locked, self.clock.now())?;
        let ops = apps_store::began_ops(&began).map_err(internal)?;
        self.write(ops).await?;
        st.apps.insert(began.app.id().clone(), began.app.clone());
        st.deployments
            .insert(began.deployment.id.clone(), began.deployment.clone());
        for d in &began.superseded {
            st.deployments.insert(d.id.clone(), d.clone());
        }
        drop(st);
        for d in &began.superseded {
            self.emit_deployment(d, Some(&began.app.definition));
        }
        self.emit(AppEventKind::ApiPost {
            app: Box::new(began.app.definition.clone()),
        });
        self.emit_deployment(&began.deployment, Some(&began.app.definition));
        self.wake.notify_one();
        tracing::info!(app = %id, deployment = %began.deployment.id, kind = %began.deployment.kind, version = %began.app.version, "deployment begun");
        Ok(AppChanged {
            app: began.app.definition,
            deployment: began.deployment,
            created,
            superseded: began.superseded.into_iter().map(|d| d.id).collect(),
            ignored,
        })
    }

    /// The definition of `version` of app `id`, from the store.
    pub async fn version(&self, id: &AppId, version: &str) -> Result<AppDefinition, ApiError> {
        let store = self.store.clone();
        let (i, v) = (id.clone(), version.to_string());
        tokio::task::spawn_blocking(move || apps_store::version(&*store, &i, &v))
            .await
            .map_err(internal)?
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("app {id} has no version {version:?}"),
                )
            })
    }

    /// The stored versions of app `id`, newest first; 404 when the app does not exist.
    pub async fn versions(&self, id: &AppId) -> Result<Vec<String>, ApiError> {
        if !self.state.lock().await.apps.contains_key(id) {
            return Err(app_not_found(id));
        }
        let store = self.store.clone();
        let i = id.clone();
        let mut v = tokio::task::spawn_blocking(move || apps_store::versions(&*store, &i))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        v.reverse();
        Ok(v)
    }

    /// The definition a rollback without a version goes back to: the last fully healthy
    /// version when it is not the current one, else the newest stored version before
    /// the current one.
    pub async fn rollback_target(
        &self,
        id: &AppId,
        version: Option<&str>,
    ) -> Result<AppDefinition, ApiError> {
        if let Some(v) = version {
            return self.version(id, v).await;
        }
        let app = self
            .state
            .lock()
            .await
            .apps
            .get(id)
            .cloned()
            .ok_or_else(|| app_not_found(id))?;
        if let Some(v) = app
            .last_healthy_version
            .as_deref()
            .filter(|v| *v != app.version)
        {
            return self.version(id, v).await;
        }
        let versions = self.versions(id).await?;
        match versions.iter().find(|v| v.as_str() < app.version.as_str()) {
            Some(v) => self.version(id, v).await,
            None => Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "app {id} has no version before {} to roll back to",
                    app.version
                ),
            )),
        }
    }

    /// Cancels a running deployment; see [`Revert`] for what it reverts to.
    pub async fn cancel(
        &self,
        id: &DeploymentId,
        revert: Revert,
    ) -> Result<(Deployment, Option<Deployment>), ApiError> {
        let (deployment, app) = {
            let st = self.state.lock().await;
            let d = st
                .deployments
                .get(id)
                .cloned()
                .ok_or_else(|| ApiError::not_found("deployment", id.as_str()))?;
            let app = st.apps.get(&d.app_id).cloned();
            (d, app)
        };
        let target = match revert {
            Revert::AutoRevert => deployment.revert_to.clone(),
            Revert::Previous => deployment.previous_version.clone(),
            Revert::Nothing => None,
        };
        let revert_def = match target {
            Some(v) => self.version(&deployment.app_id, &v).await.ok(),
            None => None,
        };
        let mut st = self.state.lock().await;
        // Re-read under the lock the write happens under: the tick may have finished it.
        let deployment = st.deployments.get(id).cloned().unwrap_or(deployment);
        let app = st.apps.get(&deployment.app_id).cloned().or(app);
        let cancelled = apps::cancel(
            &deployment,
            app.as_ref(),
            revert_def.as_ref(),
            self.clock.now(),
        )?;
        let mut ops = vec![
            Op::put_json(
                apps_store::deployment_key(&cancelled.deployment.id),
                &cancelled.deployment,
            )
            .map_err(internal)?,
        ];
        if let Some(b) = &cancelled.rollback {
            ops.extend(apps_store::began_ops(b).map_err(internal)?);
        }
        self.write(ops).await?;
        st.deployments.insert(
            cancelled.deployment.id.clone(),
            cancelled.deployment.clone(),
        );
        if let Some(b) = &cancelled.rollback {
            st.apps.insert(b.app.id().clone(), b.app.clone());
            st.deployments
                .insert(b.deployment.id.clone(), b.deployment.clone());
        }
        drop(st);
        self.emit_deployment(&cancelled.deployment, None);
        if let Some(b) = &cancelled.rollback {
            self.emit_deployment(&b.deployment, Some(&b.app.definition));
        }
        self.wake.notify_one();
        Ok((
            cancelled.deployment,
            cancelled.rollback.map(|b| b.deployment),
        ))
    }

    /// One app with its status and running deployment.
    pub async fn details(&self, id: &AppId) -> Result<AppDetails, ApiError> {
        let st = self.state.lock().await;
        let app = st.apps.get(id).ok_or_else(|| app_not_found(id))?;
        Ok(details_of(&st, app))
    }

    /// Every app with its status, in id order.
    pub async fn list(&self) -> Vec<AppDetails> {
        let st = self.state.lock().await;
        st.apps.values().map(|a| details_of(&st, a)).collect()
    }

    /// The readiness results of app `id`'s running deployment (empty when none).
    pub async fn readiness(&self, id: &AppId) -> Vec<apps::ReadinessCheckResult> {
        self.state
            .lock()
            .await
            .status
            .get(id)
            .map(|s| s.readiness.clone())
            .unwrap_or_default()
    }

    /// Every kept deployment, newest first.
    pub async fn deployments(&self) -> Vec<Deployment> {
        let st = self.state.lock().await;
        let mut v: Vec<Deployment> = st.deployments.values().cloned().collect();
        v.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
        v
    }

    /// One deployment.
    pub async fn deployment(&self, id: &DeploymentId) -> Result<Deployment, ApiError> {
        self.state
            .lock()
            .await
            .deployments
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("deployment", id.as_str()))
    }

    /// The active tasks of the apps (of `app` only when given), as the master last
    /// showed them plus launches it accepted since.
    pub async fn tasks(&self, app: Option<&AppId>) -> Vec<Task> {
        let view = self.view.borrow().clone();
        let st = self.state.lock().await;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let from_view = view.tasks.as_deref().map(Vec::as_slice).unwrap_or_default();
        for t in from_view.iter().chain(st.accepted.iter()) {
            if !t.state.is_active() || !is_app_task(t) || !seen.insert(t.spec.id.clone()) {
                continue;
            }
            if app.is_some_and(|a| task_app(t) != Some(a.as_str())) {
                continue;
            }
            out.push(t.clone());
        }
        out.sort_by(|a, b| (a.staged_at, &a.spec.id).cmp(&(b.staged_at, &b.spec.id)));
        out
    }

    /// Host names of the nodes (from their agents' addresses), for Marathon's `host`.
    pub fn node_hosts(&self) -> HashMap<String, String> {
        let view = self.view.borrow().clone();
        view.nodes
            .iter()
            .map(|n| (n.name.clone(), host_of(&n.address, &n.name)))
            .collect()
    }

    /// Whether the app exists.
    pub async fn exists(&self, id: &AppId) -> bool {
        self.state.lock().await.apps.contains_key(id)
    }

    /// One tick: snapshot, plan, persist, then launches and kills.
    async fn tick(&self) {
        let view = self.view.borrow().clone();
        let Some(all) = view.fresh_tasks(MAX_VIEW_AGE).cloned() else {
            // No recent read of the master: deciding now could launch what already runs.
            return;
        };
        let as_of = view.as_of;
        let newer = |at: &Instant| as_of.is_none_or(|a| *at >= a);
        let now = self.clock.now();
        let mut st = self.state.lock().await;

        let mut tasks: Vec<Task> = all.iter().filter(|t| is_app_task(t)).cloned().collect();
        let known: HashSet<TaskId> = tasks.iter().map(|t| t.spec.id.clone()).collect();
        let unseen: Vec<Task> = st
            .accepted
            .unseen(|id| known.contains(id), as_of)
            .cloned()
            .collect();
        tasks.extend(unseen);
        st.kills_sent
            .retain(|_, at| at.elapsed() < Duration::from_secs(600));
        for t in &mut tasks {
            if t.goal == TaskGoal::Run && st.kills_sent.get(&t.spec.id).is_some_and(newer) {
                t.goal = TaskGoal::Kill;
            }
        }
        self.status_events(&mut st, &tasks, &view);

        let running: Vec<Deployment> = st
            .deployments
            .values()
            .filter(|d| d.is_running())
            .cloned()
            .collect();
        let needed = apps::versions_needed(st.apps.values(), &running);
        let mut versions = Vec::new();
        if !needed.is_empty() {
            let store = self.store.clone();
            let got = tokio::task::spawn_blocking(move || {
                needed
                    .iter()
                    .filter_map(|(id, v)| apps_store::version(&*store, id, v).ok().flatten())
                    .collect::<Vec<_>>()
            })
            .await;
            versions = got.unwrap_or_default();
        }
        let snap = Snapshot {
            now,
            apps: st.apps.values().cloned().collect(),
            deployments: running,
            tasks,
            cluster: ClusterSnapshot::from_nodes(view.reads, &view.nodes),
            versions,
            readiness: self.prober.results(),
            config: self.settings.engine,
            id_seed: uuid::Uuid::new_v4().as_u128(),
            refused: std::mem::take(&mut st.refused),
        };
        let plan = apps::plan(&snap);

        // Persist first: after a crash right after this, the same decisions follow.
        let mut deployments = st.deployments.clone();
        for d in &plan.deployments {
            deployments.insert(d.id.clone(), d.clone());
        }
        let pruned = apps_store::prune(&deployments, &self.settings.deployment_history, now);
        let store = self.store.clone();
        let p = plan.clone();
        let pr = pruned.clone();
        let ops = tokio::task::spawn_blocking(move || {
            let mut ops = apps_store::plan_ops(&*store, &p)?;
            ops.extend(
                pr.iter()
                    .map(|id| Op::delete(apps_store::deployment_key(id))),
            );
            Ok::<_, drover_store::StoreError>(ops)
        })
        .await;
        let ops = match ops {
            Ok(Ok(ops)) => ops,
            Ok(Err(e)) => {
                tracing::error!("cannot prepare the apps' writes: {e}");
                return;
            }
            Err(e) => {
                tracing::error!("cannot prepare the apps' writes: {e}");
                return;
            }
        };
        if self.write(ops).await.is_err() {
            // Nothing was saved: nothing is carried out; the next tick decides again.
            return;
        }
        let AppsPlan {
            launches,
            kills,
            apps: changed,
            deployments: changed_deployments,
            removed,
            status,
            wake_at,
            probes,
            ..
        } = plan;
        // Results are kept while their instance is still checked by a deployment.
        let checked: HashSet<TaskId> = status
            .iter()
            .flat_map(|s| s.readiness.iter().map(|r| r.task_id.clone()))
            .collect();
        self.prober.retain(|t| checked.contains(t));
        for a in changed {
            st.apps.insert(a.id().clone(), a);
        }
        for d in &changed_deployments {
            let before = st.deployments.insert(d.id.clone(), d.clone());
            let new_state = before.as_ref().is_none_or(|b| b.state != d.state);
            if new_state {
                let def = st.apps.get(&d.app_id).map(|a| a.definition.clone());
                self.emit_deployment(d, def.as_ref());
                tracing::info!(deployment = %d.id, app = %d.app_id, state = %d.state, message = d.message.as_deref().unwrap_or(""), "deployment");
            }
        }
        for id in &pruned {
            st.deployments.remove(id);
        }
        for id in &removed {
            st.apps.remove(id);
            st.status.remove(id);
            self.emit(AppEventKind::AppTerminated { app_id: id.clone() });
            tracing::info!(app = %id, "app removed");
        }
        st.status = status.into_iter().map(|s| (s.app_id.clone(), s)).collect();
        st.wake_at = wake_at;
        let kill_at = Instant::now();
        for k in &kills {
            st.kills_sent.insert(k.task.clone(), kill_at);
        }
        {
            let mut m = self.metrics_lock();
            m.ticks += 1;
            m.apps = st.apps.len();
            m.running_deployments = st.deployments.values().filter(|d| d.is_running()).count();
        }
        drop(st);

        // Effects, after the lock: API reads stay quick while the master is called.
        if !probes.is_empty() {
            let hosts: HashMap<String, String> = view
                .nodes
                .iter()
                .map(|n| (n.name.clone(), host_of(&n.address, &n.name)))
                .collect();
            let host = |node: &str| hosts.get(node).cloned().unwrap_or_else(|| node.to_string());
            self.prober.start(probes, host, &self.wake);
        }
        if !kills.is_empty() {
            let n = kills.len();
            for k in &kills {
                tracing::info!(task = %k.task, app = %k.app, reason = %k.reason, "killing");
            }
            let ids = kills.into_iter().map(|k| k.task).collect();
            self.master.kill(ids).await;
            self.metrics_lock().kills += n as u64;
        }
        if !launches.is_empty() {
            let ids: Vec<Option<TaskId>> = launches.iter().map(|l| l.id.clone()).collect();
            let results = self.master.launch(launches).await;
            let at = Instant::now();
            let mut accepted = Vec::new();
            let mut refused = Vec::new();
            let mut unconfirmed: Option<(usize, String)> = None;
            for (id, r) in ids.into_iter().zip(results) {
                let task = id.as_ref().map_or("", TaskId::as_str);
                match r {
                    Ok(t) => {
                        tracing::debug!(task = %t.spec.id, node = %t.spec.node, "launched");
                        accepted.push((t, at));
                    }
                    Err(e) if e.is_final() => {
                        // The next tick places the instance again, under a new id.
                        tracing::info!(%task, "launch refused: {e}");
                        refused.extend(id);
                    }
                    Err(e) => {
                        let (k, _) = unconfirmed.get_or_insert_with(|| (0, e.to_string()));
                        *k += 1;
                    }
                }
            }
            let failed = refused.len() + unconfirmed.as_ref().map_or(0, |(k, _)| *k);
            if let Some((k, why)) = unconfirmed {
                // Still pending: the next tick sends them again under the same ids.
                tracing::info!("{k} launch(es) not confirmed, to be sent again: {why}");
            }
            let n = accepted.len() as u64;
            {
                let mut st = self.state.lock().await;
                for (t, at) in accepted {
                    st.accepted.record(t, at);
                }
                st.refused.extend(refused);
            }
            let mut m = self.metrics_lock();
            m.launches += n;
            m.launch_refusals += failed as u64;
        }
    }

    /// Emits a `status_update_event` for every app task whose state changed.
    fn status_events(&self, st: &mut AppsState, tasks: &[Task], view: &MasterView) {
        let hosts: HashMap<String, String> = view
            .nodes
            .iter()
            .map(|n| (n.name.clone(), host_of(&n.address, &n.name)))
            .collect();
        let mut next = HashMap::with_capacity(tasks.len());
        for t in tasks {
            next.insert(t.spec.id.clone(), t.state);
            if st.last_states.get(&t.spec.id) != Some(&t.state) {
                let host = hosts
                    .get(&t.spec.node)
                    .cloned()
                    .unwrap_or_else(|| t.spec.node.clone());
                self.emit(AppEventKind::StatusUpdate {
                    task: Box::new(t.clone()),
                    host,
                });
            }
        }
        // Only tasks still listed are remembered, so the map does not grow forever.
        st.last_states = next;
    }
}

/// The 404 of an app that does not exist (Marathon's wording).
pub fn app_not_found(id: &AppId) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("App '{id}' does not exist"))
}

fn details_of(st: &AppsState, app: &AppState) -> AppDetails {
    AppDetails {
        app: app.definition.clone(),
        status: st.status.get(app.id()).cloned(),
        deployment: st
            .deployments
            .values()
            .filter(|d| d.is_running() && d.app_id == *app.id())
            .max_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)))
            .cloned(),
        deleting: app.deleting,
    }
}

/// The host part of an agent's address (`http://10.0.0.5:5051` -> `10.0.0.5`), else `fallback`.
pub fn host_of(address: &str, fallback: &str) -> String {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let host = if let Some(stripped) = hostport.strip_prefix('[') {
        stripped.split(']').next().unwrap_or(stripped)
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
    };
    if host.is_empty() {
        fallback.to_string()
    } else {
        host.to_string()
    }
}

impl Ticking for Apps {
    async fn tick(&self) {
        Apps::tick(self).await;
    }

    async fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.state.lock().await.wake_at
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn poke(&self) -> &Notify {
        &self.wake
    }
}

impl Component for Apps {
    fn name(&self) -> &'static str {
        "apps"
    }

    fn metrics(&self, out: &mut Metrics) {
        let m = self.metrics_lock();
        out.gauges(&[
            ("drover_scheduler_apps", "Apps defined", m.apps as f64),
            (
                "drover_scheduler_app_running_deployments",
                "Deployments being carried out",
                m.running_deployments as f64,
            ),
            (
                "drover_scheduler_app_launches_total",
                "App task launches the master accepted",
                m.launches as f64,
            ),
            (
                "drover_scheduler_app_launch_refusals_total",
                "App task launches the master refused or left unanswered",
                m.launch_refusals as f64,
            ),
            (
                "drover_scheduler_app_kills_total",
                "App task kills sent",
                m.kills as f64,
            ),
            (
                "drover_scheduler_app_ticks_total",
                "Ticks of the app engine",
                m.ticks as f64,
            ),
            (
                "drover_scheduler_app_store_errors_total",
                "Failed writes of app state",
                m.store_errors as f64,
            ),
        ]);
    }

    fn spawn(self: Arc<Self>, ctx: LoopContext) -> JoinHandle<()> {
        tokio::spawn(driver::run(self, ctx, FIRST_VIEW_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_from_addresses() {
        assert_eq!(host_of("http://10.0.0.5:5051", "n"), "10.0.0.5");
        assert_eq!(host_of("http://[::1]:5051/", "n"), "::1");
        assert_eq!(host_of("127.0.0.1:80", "n"), "127.0.0.1");
        assert_eq!(host_of("", "n"), "n");
    }
}
