//! Readiness checks (Marathon's `readinessChecks`): which instances of a deployment must
//! pass them before they count, which probes the server must run, and what is shown.
//!
//! Rules:
//! - only an app with readiness checks and a running deployment that starts instances
//!   (not a delete, not a scale down) is concerned;
//! - its *checked* instances are the active, wanted instances of the target version that
//!   the deployment started: for a create, update or restart (which stamp a new version)
//!   every instance of that version; for a scale up or a rollback those staged since the
//!   deployment began. Instances that were there before (old versions, the instances a
//!   scale up keeps, the ones a rollback keeps) are not;
//! - a checked instance counts as ready (towards the deployment's progress and the
//!   upgrade strategy's capacity) only once every check of the app has a result with
//!   `ready` in the snapshot; until then it is *starting*, however healthy it is;
//! - a checked instance that runs and has a check not passed yet gets a probe: the server
//!   probes it no more often than the check's `intervalSeconds`, and feeds the result
//!   into the next snapshot. A passed check is not probed again;
//! - once the deployment ends nothing is checked: every instance counts by its health.
//!
//! The results are the server's memory, not the store's: after a restart the checks of a
//! running deployment are probed again (a finished deployment stays finished).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use drover_api::app::{AppId, ReadinessCheck};
use drover_api::deployment::{Deployment, DeploymentKind, ReadinessCheckResult, StepAction};
use drover_api::task::{Task, TaskGoal, TaskId, TaskState};

use super::reconcile::version_of;
use super::state::AppState;

/// One probe the server must run now (or when the check's interval allows).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadinessProbe {
    /// The instance.
    pub task: TaskId,
    /// Its app.
    pub app: AppId,
    /// The node it runs on (the server knows the node's host).
    pub node: String,
    /// The host port named by the check's `portName`.
    pub port: u16,
    /// The check.
    pub check: ReadinessCheck,
}

/// The snapshot's readiness results by task id and check name.
pub(crate) type Results<'s> = BTreeMap<(&'s str, &'s str), &'s ReadinessCheckResult>;

/// Indexes the snapshot's results.
pub(crate) fn index(results: &[ReadinessCheckResult]) -> Results<'_> {
    results
        .iter()
        .map(|r| ((r.task_id.as_str(), r.name.as_str()), r))
        .collect()
}

/// One app's readiness in a tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Assessment {
    /// Checked instances that have not passed every check: never counted ready.
    pub pending: BTreeSet<TaskId>,
    /// One result per checked instance and check, by task id then check order.
    pub results: Vec<ReadinessCheckResult>,
    /// The probes to run.
    pub probes: Vec<ReadinessProbe>,
}

/// Whether a running deployment starts instances (so readiness and dependencies apply).
pub fn starts_instances(d: &Deployment) -> bool {
    d.is_running()
        && d.kind != DeploymentKind::Delete
        && !matches!(
            d.steps.first().map(|s| &s.action),
            Some(StepAction::StopInstances { .. })
        )
}

/// Since when instances of the target version count as started by `d`: a create,
/// update or restart stamped the version itself, so every instance of it (none: no
/// bound); a scale or rollback keeps what runs, so those staged since it began.
fn started_since(d: &Deployment) -> Option<DateTime<Utc>> {
    match d.kind {
        DeploymentKind::Create | DeploymentKind::Update | DeploymentKind::Restart => None,
        _ => Some(d.started_at),
    }
}

/// The host port of `task` named `name` (port definitions or mappings that publish one).
pub fn host_port(task: &Task, name: &str) -> Option<u16> {
    let i = task
        .spec
        .definition
        .ports
        .iter()
        .position(|p| p.name.as_deref() == Some(name))?;
    task.spec.host_ports.get(i).copied().filter(|p| *p != 0)
}

/// The readiness of `app`'s `tasks` under its running deployment `dep`, given the
/// results the server has so far.
pub(crate) fn assess(
    app: &AppState,
    dep: Option<&Deployment>,
    tasks: &[&Task],
    results: &Results<'_>,
) -> Assessment {
    let mut out = Assessment::default();
    let checks = &app.definition.readiness_checks;
    let Some(d) = dep.filter(|d| starts_instances(d)) else {
        return out;
    };
    if checks.is_empty() || app.deleting {
        return out;
    }
    let since = started_since(d);
    let mut checked: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| {
            t.state.is_active()
                && t.goal == TaskGoal::Run
                && version_of(t) == app.version
                && since.is_none_or(|s| t.staged_at >= s)
        })
        .collect();
    checked.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
    for t in checked {
        let started = matches!(
            t.state,
            TaskState::Running | TaskState::Healthy | TaskState::Unhealthy
        );
        let mut all_ready = true;
        for c in checks {
            let known = results.get(&(t.spec.id.as_str(), c.name.as_str()));
            let ready = known.is_some_and(|r| r.ready);
            all_ready &= ready;
            let port = host_port(t, &c.port_name);
            let mut shown = known.map_or_else(
                || ReadinessCheckResult {
                    name: c.name.clone(),
                    task_id: t.spec.id.clone(),
                    ready: false,
                    last_response: None,
                    message: None,
                    checked_at: None,
                },
                |r| (*r).clone(),
            );
            if !ready {
                match (started, port) {
                    (false, _) => shown.message = Some("not started yet".to_string()),
                    (true, None) => {
                        shown.message = Some(format!("no host port named {:?}", c.port_name));
                    }
                    (true, Some(port)) => {
                        if known.is_none() {
                            shown.message = Some("not probed yet".to_string());
                        }
                        out.probes.push(ReadinessProbe {
                            task: t.spec.id.clone(),
                            app: app.id().clone(),
                            node: t.spec.node.clone(),
                            port,
                            check: c.clone(),
                        });
                    }
                }
            }
            out.results.push(shown);
        }
        if !all_ready {
            out.pending.insert(t.spec.id.clone());
        }
    }
    out
}
