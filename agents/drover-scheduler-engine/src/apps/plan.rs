//! The tick: from a [`Snapshot`] of apps, deployments, tasks and nodes to an
//! [`AppsPlan`] of launches, kills, state changes and status.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use drover_api::app::{AppDefinition, AppId};
use drover_api::deployment::{
    AppStatus, Deployment, DeploymentKind, DeploymentState, ReadinessCheckResult, StepStatus,
    TaskCounts, Unplaceable, UnplacedReason,
};
use drover_api::task::{LaunchRequest, Task, TaskGoal, TaskId, TaskState};

use super::backoff;
use super::begin::{begin_revert, deadline_seconds, finish};
use super::dependencies::{self, DependencyState};
use super::pending::{self, Outstanding, TaskIds};
use super::readiness::{self, Assessment, ReadinessProbe};
use super::reconcile::{Buckets, app_of, is_ready, kill_order, version_of};
use super::rollout::{self, Counts, Limits};
use super::state::{AppState, PendingLaunch, seconds};
use crate::placement::{self, ClusterSnapshot, PlacementRequest, Rejection};

/// The engine's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppsConfig {
    /// How long an instance must stay up after the last failure for the backoff to reset
    /// (default 5 minutes: longer than Marathon's default health-check grace period, so
    /// an instance that dies when its checks start does not count as stable).
    pub backoff_reset_after: TimeDelta,
    /// Kill active tasks whose `APP_ID` label names no app in the snapshot (default
    /// true). The server must then give every app it knows, or it would kill the others.
    pub kill_orphans: bool,
}

impl Default for AppsConfig {
    fn default() -> Self {
        AppsConfig {
            backoff_reset_after: TimeDelta::minutes(5),
            kill_orphans: true,
        }
    }
}

/// Everything one tick decides from. The server builds it from its store and the
/// master; the engine remembers nothing else.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The time of the tick.
    pub now: DateTime<Utc>,
    /// Every app the server keeps.
    pub apps: Vec<AppState>,
    /// The running deployments (finished ones may be included; they are ignored).
    pub deployments: Vec<Deployment>,
    /// The master's tasks that carry the `APP_ID` label: every active one, and the
    /// terminal ones it still keeps (for the backoff).
    pub tasks: Vec<Task>,
    /// The nodes, for placement.
    pub cluster: ClusterSnapshot,
    /// Stored definitions (with `version` set) of every version a running deployment
    /// names in `revert_to`; others are welcome and unused.
    pub versions: Vec<AppDefinition>,
    /// The latest result of every readiness probe the server ran for the tasks of the
    /// last plan's [`AppsPlan::probes`] (results of other tasks are ignored). Not
    /// persisted: after a restart, running deployments probe again.
    pub readiness: Vec<ReadinessCheckResult>,
    /// Settings.
    pub config: AppsConfig,
    /// Where this tick's new task ids come from: random per tick in the server (the
    /// engine has no randomness of its own), fixed in tests.
    pub id_seed: u128,
    /// Ids of launches the master refused since the last tick (it will not run them):
    /// their instances are decided again, under new ids.
    pub refused: Vec<TaskId>,
}

/// Why a task is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KillReason {
    /// The agent reports it unhealthy; it is replaced.
    Unhealthy,
    /// A ready instance of the target version replaces it.
    Replaced,
    /// An old instance that is not ready, during a rollout.
    NotReadyOld,
    /// Its room is needed for a new instance (over-capacity limit or placement).
    MakeRoom,
    /// The app has more instances than wanted (scale down).
    ScaleDown,
    /// The app is being deleted.
    Deleted,
    /// Its `APP_ID` names no app.
    Orphan,
}

impl KillReason {
    /// The lowercase name for logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            KillReason::Unhealthy => "unhealthy",
            KillReason::Replaced => "replaced",
            KillReason::NotReadyOld => "not ready, old version",
            KillReason::MakeRoom => "making room for the new version",
            KillReason::ScaleDown => "scaled down",
            KillReason::Deleted => "app deleted",
            KillReason::Orphan => "no such app",
        }
    }
}

impl fmt::Display for KillReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task to kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    /// The task.
    pub task: TaskId,
    /// The app its label names.
    pub app: String,
    /// The node it runs on.
    pub node: String,
    /// Why.
    pub reason: KillReason,
}

/// What a tick decided. The server persists `apps`, `deployments` and `removed` first
/// (one batch), then sends `launches` and `kills` to the master, then shows `status`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppsPlan {
    /// The master revision the placements were computed at.
    pub revision: u64,
    /// Tasks to launch, each with the id the engine chose: new instances (recorded in
    /// their app's `pending_launches`, in `apps`) and repeats of the pending launches
    /// the master has not shown yet.
    pub launches: Vec<LaunchRequest>,
    /// Tasks to kill.
    pub kills: Vec<Kill>,
    /// Apps whose state changed (backoff, last healthy version, auto-revert).
    pub apps: Vec<AppState>,
    /// Deployments that changed: progress, finished, and rollbacks begun by auto-revert.
    pub deployments: Vec<Deployment>,
    /// Apps whose delete finished: forget them (and their running deployments are in
    /// `deployments`, finished).
    pub removed: Vec<AppId>,
    /// The status of every app of the snapshot that is not removed.
    pub status: Vec<AppStatus>,
    /// Tick again by then at the latest (a backoff ends, a deadline passes, a backoff
    /// would reset), even if nothing else happens.
    pub wake_at: Option<DateTime<Utc>>,
    /// Readiness probes to run: one per instance and check not passed yet. The server
    /// runs each no more often than its check's `intervalSeconds` and hands the results
    /// back in the next [`Snapshot::readiness`].
    pub probes: Vec<ReadinessProbe>,
}

/// The stored versions a snapshot must carry in [`Snapshot::versions`]: the
/// `revert_to` of every running deployment, and the version of every pending launch of
/// an earlier version than its app's, as `(app, version)`.
pub fn versions_needed<'a>(
    apps: impl IntoIterator<Item = &'a AppState>,
    deployments: &[Deployment],
) -> Vec<(AppId, String)> {
    let mut out: Vec<(AppId, String)> = deployments
        .iter()
        .filter(|d| d.is_running())
        .filter_map(|d| d.revert_to.clone().map(|v| (d.app_id.clone(), v)))
        .collect();
    for a in apps {
        out.extend(
            a.pending_launches
                .iter()
                .filter(|p| p.version != a.version)
                .map(|p| (a.id().clone(), p.version.clone())),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// Decides one tick. Pure and deterministic: equal snapshots (in any order of their
/// lists) give equal plans.
pub fn plan(snap: &Snapshot) -> AppsPlan {
    let now = snap.now;
    let mut out = AppsPlan {
        revision: snap.cluster.revision,
        ..AppsPlan::default()
    };
    let mut cluster = snap.cluster.clone();

    let mut apps: Vec<&AppState> = snap.apps.iter().collect();
    apps.sort_by(|a, b| a.id().cmp(b.id()));
    apps.dedup_by(|a, b| a.id() == b.id());
    let known: BTreeSet<&str> = apps.iter().map(|a| a.id().as_str()).collect();

    let mut tasks_by_app: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    let mut orphans: Vec<&Task> = Vec::new();
    for t in &snap.tasks {
        match app_of(t) {
            Some(a) if known.contains(a) => tasks_by_app.entry(a).or_default().push(t),
            Some(_) => orphans.push(t),
            None => {}
        }
    }
    let ctx = Tick {
        dependencies: dependency_states(&apps, &tasks_by_app, &snap.deployments),
        readiness: readiness::index(&snap.readiness),
        refused: snap.refused.iter().collect(),
    };
    let taken = snap
        .tasks
        .iter()
        .map(|t| t.spec.id.clone())
        .chain(
            snap.apps
                .iter()
                .flat_map(|a| a.pending_launches.iter().map(|p| p.task_id.clone())),
        )
        .collect();
    let mut ids = TaskIds::new(snap.id_seed, taken);

    for app in apps {
        let mut running: Vec<&Deployment> = snap
            .deployments
            .iter()
            .filter(|d| d.is_running() && d.app_id == *app.id())
            .collect();
        running.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        // `begin` never leaves two running; if a store does, the newest wins.
        let deployment = running.pop();
        for stale in running {
            let mut d = stale.clone();
            finish(
                &mut d,
                DeploymentState::Superseded,
                now,
                "superseded by a newer running deployment".to_string(),
            );
            d.superseded_by = deployment.map(|x| x.id.clone());
            out.deployments.push(d);
        }
        let tasks = tasks_by_app
            .get(app.id().as_str())
            .map_or(&[][..], Vec::as_slice);
        plan_app(
            app,
            deployment,
            tasks,
            snap,
            &ctx,
            &mut cluster,
            &mut ids,
            &mut out,
        );
    }

    if snap.config.kill_orphans {
        let mut orphans: Vec<&Task> = orphans
            .into_iter()
            .filter(|t| t.state.is_active() && t.goal == TaskGoal::Run)
            .collect();
        orphans.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        for t in orphans {
            out.kills.push(kill(t, KillReason::Orphan));
        }
    }
    out
}

/// What every app's part of a tick reads besides its own tasks.
struct Tick<'s> {
    /// Every app's state as its dependents see it, at the start of the tick.
    dependencies: BTreeMap<AppId, DependencyState>,
    /// The snapshot's readiness results.
    readiness: readiness::Results<'s>,
    /// Launches the master refused.
    refused: BTreeSet<&'s TaskId>,
}

/// Each app as its dependents see it: instances, ready ones of its version, whether a
/// deployment of its own runs, whether it is being deleted.
fn dependency_states(
    apps: &[&AppState],
    tasks_by_app: &BTreeMap<&str, Vec<&Task>>,
    deployments: &[Deployment],
) -> BTreeMap<AppId, DependencyState> {
    apps.iter()
        .map(|a| {
            let tasks = tasks_by_app
                .get(a.id().as_str())
                .map_or(&[][..], Vec::as_slice);
            let b = Buckets::sort(tasks, &a.version);
            let state = DependencyState {
                instances: a.definition.instances,
                ready: u32::try_from(b.ready.len()).unwrap_or(u32::MAX),
                deploying: deployments
                    .iter()
                    .any(|d| d.is_running() && d.app_id == *a.id()),
                deleting: a.deleting,
            };
            (a.id().clone(), state)
        })
        .collect()
}

/// Holds a deployment that starts instances until the apps it depends on are ready:
/// sets its `waiting` and returns true while it waits; on release, records when and
/// restarts its progress clock (the wait was not the deployment's fault).
fn wait_for_dependencies(
    app: &AppState,
    dep: Option<&mut Deployment>,
    states: &BTreeMap<AppId, DependencyState>,
    now: DateTime<Utc>,
) -> bool {
    let Some(d) = dep else { return false };
    if !readiness::starts_instances(d) || d.dependencies_ready_at.is_some() {
        return false;
    }
    match dependencies::waiting(&app.definition, states) {
        Some(why) => {
            d.waiting = Some(why);
            true
        }
        None => {
            d.dependencies_ready_at = Some(now);
            if d.waiting.take().is_some() {
                d.progress.last_progress_at = now;
            }
            false
        }
    }
}

fn kill(t: &Task, reason: KillReason) -> Kill {
    Kill {
        task: t.spec.id.clone(),
        app: app_of(t).unwrap_or_default().to_string(),
        node: t.spec.node.clone(),
        reason,
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// How a tick treats an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replace,
    Count,
    Delete,
}

fn mode_of(app: &AppState, d: Option<&Deployment>) -> Mode {
    match d.map(|d| d.kind) {
        Some(DeploymentKind::Delete) => Mode::Delete,
        _ if app.deleting => Mode::Delete,
        Some(k) if k.replaces() => Mode::Replace,
        _ => Mode::Count,
    }
}

/// What the deployment sees of the app in this tick: (ready, starting, to stop).
fn observe(b: &Buckets<'_>, n: u32, mode: Mode) -> (u32, u32, u32) {
    let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    match mode {
        Mode::Replace => {
            let new = c(b.ready.len() + b.starting.len());
            let others =
                c(b.old_ready.len() + b.old_starting.len() + b.unhealthy.len() + b.stopping.len());
            (
                c(b.ready.len()),
                c(b.starting.len()),
                others + new.saturating_sub(n),
            )
        }
        Mode::Count => {
            let ready = c(b.ready.len() + b.old_ready.len());
            let alive = c(b.alive());
            let others = c(b.unhealthy.len() + b.stopping.len());
            (ready, alive - ready, others + alive.saturating_sub(n))
        }
        Mode::Delete => (0, 0, c(b.active())),
    }
}

fn done(b: &Buckets<'_>, n: u32, mode: Mode) -> bool {
    let n = n as usize;
    match mode {
        Mode::Replace => b.settled(n),
        Mode::Count => b.alive() == n && b.active() == n && b.ready.len() + b.old_ready.len() == n,
        Mode::Delete => b.active() == 0,
    }
}

/// One app's part of the tick: one straight pass, in the order of the module map.
#[allow(clippy::too_many_arguments)] // one pass over one app; the arguments are its inputs
fn plan_app(
    original: &AppState,
    deployment: Option<&Deployment>,
    tasks: &[&Task],
    snap: &Snapshot,
    ctx: &Tick<'_>,
    cluster: &mut ClusterSnapshot,
    ids: &mut TaskIds,
    out: &mut AppsPlan,
) {
    let now = snap.now;
    let mut app = original.clone();
    // Launches decided before and not shown by the master yet count as starting
    // instances (and are sent again), so none is decided twice.
    let Outstanding {
        placeholders,
        resends,
    } = pending::outstanding(&mut app, tasks, &ctx.refused, &snap.versions);
    let with_pending: Vec<&Task> = tasks.iter().copied().chain(&placeholders).collect();
    let tasks = with_pending.as_slice();
    let mut dep: Option<Deployment> = deployment.cloned();
    // Dependencies first (a waiting deployment has no deadline), then readiness, which
    // decides what counts as ready.
    let mut gated = wait_for_dependencies(&app, dep.as_mut(), &ctx.dependencies, now);
    let mut ready = readiness::assess(&app, dep.as_ref(), tasks, &ctx.readiness);
    let mut b = Buckets::sort_gated(tasks, &app.version, &ready.pending);
    let mut mode = mode_of(&app, dep.as_ref());

    // Deployment bookkeeping: progress, success, deadline.
    if let Some(d) = dep.as_mut() {
        let (ready, starting, to_stop) = observe(&b, app.definition.instances, mode);
        let p = &mut d.progress;
        if ready > p.best_ready || to_stop < p.least_to_stop {
            p.last_progress_at = now;
            p.best_ready = p.best_ready.max(ready);
            p.least_to_stop = p.least_to_stop.min(to_stop);
        }
        p.ready = ready;
        p.starting = starting;
        p.to_stop = to_stop;
        p.target_instances = app.definition.instances;
        p.deadline_at = deadline_seconds(&app, d.kind)
            .filter(|_| !gated)
            .map(|s| p.last_progress_at + seconds(s));
    }
    let mut failed_revert = None;
    if let Some(d) = dep.as_mut() {
        if done(&b, app.definition.instances, mode) {
            finish(d, DeploymentState::Succeeded, now, String::new());
        } else if d.progress.deadline_at.is_some_and(|t| now >= t) {
            let secs = app.definition.progress_deadline_seconds;
            let mut msg = format!(
                "no progress for {secs} s (progressDeadlineSeconds): {} of {} instances of {} ready, {} to stop",
                d.progress.ready, d.progress.target_instances, d.version, d.progress.to_stop
            );
            if let Some(v) = d.revert_to.clone() {
                let def = snap
                    .versions
                    .iter()
                    .find(|x| x.id == *app.id() && x.version.as_deref() == Some(v.as_str()));
                match def {
                    Some(def) => {
                        msg.push_str(&format!("; reverting to {v}"));
                        failed_revert = Some(def.clone());
                    }
                    None => msg.push_str(&format!(
                        "; cannot revert: the definition of version {v} was not given"
                    )),
                }
            }
            finish(d, DeploymentState::Failed, now, msg);
        }
    }
    if let Some(d) = dep.take_if(|d| !d.is_running()) {
        let failed_id = d.id.clone();
        let succeeded = d.state == DeploymentState::Succeeded;
        let kind = d.kind;
        out.deployments.push(d);
        if succeeded && kind == DeploymentKind::Delete {
            out.removed.push(app.id().clone());
            return;
        }
        if let Some(def) = failed_revert {
            match begin_revert(def, &app, failed_id, now) {
                Ok(began) => {
                    app = began.app;
                    dep = Some(began.deployment);
                    gated = wait_for_dependencies(&app, dep.as_mut(), &ctx.dependencies, now);
                    ready = readiness::assess(&app, dep.as_ref(), tasks, &ctx.readiness);
                    b = Buckets::sort_gated(tasks, &app.version, &ready.pending);
                }
                Err(e) => {
                    // The stored definition no longer validates; stay where we are.
                    if let Some(last) = out.deployments.last_mut() {
                        let m = last.message.take().unwrap_or_default();
                        last.message = Some(format!("{m}; revert refused: {e}"));
                    }
                }
            }
        }
        mode = mode_of(&app, dep.as_ref());
    }
    if mode == Mode::Delete && dep.is_none() && b.active() == 0 {
        // A delete whose deployment record is gone: nothing left to wait for.
        out.removed.push(app.id().clone());
        return;
    }

    // Unhealthy instances are killed and replaced, and count as failures.
    let mut kills: Vec<Kill> = b
        .unhealthy
        .iter()
        .map(|t| kill(t, KillReason::Unhealthy))
        .collect();
    backoff::observe(
        &mut app.backoff,
        &app.definition,
        &app.version,
        &b,
        now,
        snap.config.backoff_reset_after,
    );

    let n = app.definition.instances;
    let limits = if mode == Mode::Delete {
        Limits {
            min_healthy: 0,
            max_total: 0,
        }
    } else {
        Limits::of(&app.definition)
    };
    let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let stopping = c(b.stopping.len() + b.unhealthy.len());
    let selection = app.definition.kill_selection;
    let counts;
    let decision;
    let mut waiting = Vec::new();
    match mode {
        Mode::Delete => {
            let mut all: Vec<&Task> = b
                .ready
                .iter()
                .chain(&b.starting)
                .chain(&b.old_ready)
                .chain(&b.old_starting)
                .copied()
                .collect();
            all.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
            kills.extend(all.into_iter().map(|t| kill(t, KillReason::Deleted)));
            counts = Counts::default();
            decision = rollout::Decision::default();
        }
        _ if gated => {
            // Nothing starts (and nothing is replaced) before the dependencies are ready.
            counts = Counts::default();
            decision = rollout::Decision::default();
            if let Some(w) = dep.as_ref().and_then(|d| d.waiting.clone()) {
                waiting.push(w);
            }
        }
        Mode::Replace => {
            counts = Counts {
                instances: n,
                ready_new: c(b.ready.len()),
                starting_new: c(b.starting.len()),
                ready_old: c(b.old_ready.len()),
                starting_old: c(b.old_starting.len()),
                stopping,
            };
            decision = rollout::decide(&counts, limits);
            let mut starting_new = b.starting.clone();
            kill_order(&mut starting_new, selection, &app.version);
            let mut ready_new = b.ready.clone();
            kill_order(&mut ready_new, selection, &app.version);
            take(
                &mut kills,
                &starting_new,
                decision.kill_starting_new,
                KillReason::ScaleDown,
            );
            take(
                &mut kills,
                &ready_new,
                decision.kill_ready_new,
                KillReason::ScaleDown,
            );
            take(
                &mut kills,
                &b.old_starting,
                decision.kill_starting_old,
                KillReason::NotReadyOld,
            );
            let mut old = b.old_ready.clone();
            kill_order(&mut old, selection, &app.version);
            let replaced = (counts.ready_new - decision.kill_ready_new + counts.ready_old)
                .saturating_sub(n)
                .min(counts.ready_old) as usize;
            let k = decision.kill_ready_old as usize;
            for (i, t) in old.iter().take(k).enumerate() {
                let reason = if i < replaced {
                    KillReason::Replaced
                } else {
                    KillReason::MakeRoom
                };
                kills.push(kill(t, reason));
            }
        }
        Mode::Count => {
            let alive_ready: Vec<&Task> = b.ready.iter().chain(&b.old_ready).copied().collect();
            let alive_starting: Vec<&Task> =
                b.starting.iter().chain(&b.old_starting).copied().collect();
            counts = Counts {
                instances: n,
                ready_new: c(alive_ready.len()),
                starting_new: c(alive_starting.len()),
                ready_old: 0,
                starting_old: 0,
                stopping,
            };
            decision = rollout::decide(&counts, limits);
            let mut s = alive_starting;
            kill_order(&mut s, selection, &app.version);
            let mut r = alive_ready;
            kill_order(&mut r, selection, &app.version);
            take(
                &mut kills,
                &s,
                decision.kill_starting_new,
                KillReason::ScaleDown,
            );
            take(
                &mut kills,
                &r,
                decision.kill_ready_new,
                KillReason::ScaleDown,
            );
            let others = b.old_ready.len() + b.old_starting.len();
            if others > 0 {
                // Not an error, but never silent: only a deployment replaces them.
                waiting.push(format!(
                    "{others} instance(s) run another version than {}; update, restart or roll back to replace them",
                    app.version
                ));
            }
        }
    }

    // Launches: held by the backoff, then placed.
    let mut launch = decision.launch;
    if decision.held > 0 {
        waiting.push(format!(
            "{} instance(s) wait for room: at most {} instances at once (maximumOverCapacity), {} stopping",
            decision.held, limits.max_total, decision.vacating
        ));
    }
    if launch > 0 && app.backoff.holds_at(now) {
        if let Some(t) = app.backoff.not_before {
            waiting.push(format!(
                "{launch} instance(s) held by the crash-loop backoff until {} ({} failure(s) in a row, delay {} s)",
                super::state::format_version(t),
                app.backoff.consecutive_failures,
                app.backoff.delay_seconds
            ));
            out.wake_at = earliest(out.wake_at, Some(t));
        }
        launch = 0;
    }
    let mut unplaceable = None;
    if launch > 0 {
        let mut existing: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks.iter().filter(|t| t.state.is_active()) {
            *existing.entry(t.spec.node.clone()).or_insert(0) += 1;
        }
        let request = PlacementRequest::for_app(&app.definition, launch as usize, &existing);
        let placed = placement::place(&request, cluster);
        cluster.apply(&request, &placed);
        let task = app.definition.to_task_definition().task;
        for p in &placed.placements {
            let id = ids.next(&task.name);
            app.pending_launches.push(PendingLaunch {
                task_id: id.clone(),
                node: p.node.clone(),
                version: app.version.clone(),
                decided_at: now,
            });
            out.launches.push(LaunchRequest {
                node: p.node.clone(),
                id: Some(id),
                task: task.clone(),
            });
        }
        if let Some(u) = &placed.unplaced {
            let count = c(u.count);
            unplaceable = Some(Unplaceable {
                count,
                total_nodes: u.reason.total_nodes,
                reasons: u
                    .reason
                    .reasons
                    .iter()
                    .map(|(r, k)| UnplacedReason {
                        reason: r.to_string(),
                        nodes: *k,
                    })
                    .collect(),
                message: u.reason.to_string(),
            });
            let freeable = u.reason.reasons.iter().any(|(r, _)| {
                matches!(
                    r,
                    Rejection::Cpus { .. }
                        | Rejection::TaskLimit
                        | Rejection::Mem { .. }
                        | Rejection::Disk { .. }
                        | Rejection::Ports { .. }
                        | Rejection::PortInUse(_)
                        | Rejection::Constraint { .. }
                )
            });
            if mode == Mode::Replace && freeable {
                // An old instance's node slot may be what the new one needs.
                let extra = decision.kills_for_unplaced(&counts, limits, count) as usize;
                let mut old = b.old_ready.clone();
                kill_order(&mut old, selection, &app.version);
                for t in old
                    .iter()
                    .skip(decision.kill_ready_old as usize)
                    .take(extra)
                {
                    kills.push(kill(t, KillReason::MakeRoom));
                }
            }
        }
    }

    // Bookkeeping after the decision.
    if done(&b, n, Mode::Replace) && !app.deleting {
        app.last_healthy_version = Some(app.version.clone());
    }
    if let Some(d) = dep.as_mut() {
        if let Some(t) = d.progress.deadline_at {
            out.wake_at = earliest(out.wake_at, Some(t));
        }
        if let Some(s) = d.steps.get_mut(d.current_step) {
            s.status = StepStatus::Running;
        }
    }
    if let (Some(last), true) = (
        app.backoff.last_failure_at,
        app.backoff.consecutive_failures > 0,
    ) {
        // A stable instance would reset the backoff at this point.
        let candidates = b.ready.iter().filter(|t| reconcile_started(t) > last);
        if let Some(t) = candidates
            .map(|t| reconcile_started(t) + snap.config.backoff_reset_after)
            .min()
            && t > now
        {
            out.wake_at = earliest(out.wake_at, Some(t));
        }
    }

    let Assessment {
        pending,
        results,
        probes,
    } = ready;
    out.probes.extend(probes);
    out.status.push(status_of(
        &app,
        &b,
        dep.as_ref(),
        unplaceable,
        waiting,
        &pending,
        results,
    ));
    kills.sort_by(|a, b| {
        (a.reason != KillReason::Unhealthy, &a.task)
            .cmp(&(b.reason != KillReason::Unhealthy, &b.task))
    });
    kills.dedup_by(|a, b| a.task == b.task);
    // A pending launch chosen to go is forgotten (its kill is sent in case the master
    // has it); the others are sent again.
    let killed: BTreeSet<&TaskId> = kills.iter().map(|k| &k.task).collect();
    app.pending_launches
        .retain(|p| !killed.contains(&p.task_id));
    out.launches.extend(
        resends
            .into_iter()
            .filter(|r| r.id.as_ref().is_none_or(|id| !killed.contains(id))),
    );
    out.kills.extend(kills);
    if app != *original {
        out.apps.push(app);
    }
    if let Some(d) = dep
        && deployment != Some(&d)
    {
        out.deployments.push(d);
    }
}

fn reconcile_started(t: &Task) -> DateTime<Utc> {
    super::reconcile::started(t)
}

fn take(kills: &mut Vec<Kill>, from: &[&Task], count: u32, reason: KillReason) {
    for t in from.iter().take(count as usize) {
        kills.push(kill(t, reason));
    }
}

fn status_of(
    app: &AppState,
    b: &Buckets<'_>,
    dep: Option<&Deployment>,
    unplaceable: Option<Unplaceable>,
    waiting: Vec<String>,
    not_ready: &BTreeSet<TaskId>,
    readiness: Vec<ReadinessCheckResult>,
) -> AppStatus {
    let mut total = TaskCounts::default();
    let mut by_version: BTreeMap<String, TaskCounts> = BTreeMap::new();
    let active = b
        .ready
        .iter()
        .chain(&b.starting)
        .chain(&b.old_ready)
        .chain(&b.old_starting)
        .chain(&b.unhealthy)
        .chain(&b.stopping);
    for t in active {
        for c in [
            &mut total,
            by_version.entry(version_of(t).to_string()).or_default(),
        ] {
            if t.goal == TaskGoal::Kill {
                c.stopping += 1;
                continue;
            }
            match t.state {
                TaskState::Staging => c.staged += 1,
                TaskState::Running => c.running += 1,
                TaskState::Healthy => c.healthy += 1,
                TaskState::Unhealthy => c.unhealthy += 1,
                _ => {}
            }
            if is_ready(t) && !not_ready.contains(&t.spec.id) {
                c.ready += 1;
            }
        }
    }
    AppStatus {
        app_id: app.id().clone(),
        version: app.version.clone(),
        instances: app.definition.instances,
        tasks: total,
        by_version,
        unplaceable,
        backoff: (app.backoff.consecutive_failures > 0).then(|| app.backoff.clone()),
        deployment: dep.map(|d| d.id.clone()),
        last_healthy_version: app.last_healthy_version.clone(),
        waiting,
        readiness,
    }
}
