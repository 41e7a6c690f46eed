//! Every change to an app becomes a [`Deployment`]: create, update, scale, restart,
//! rollback, delete; a change while another deployment of the app runs is refused
//! unless forced, and `force` supersedes the running one.

use chrono::{DateTime, Utc};
use drover_api::app::{AppDefinition, MAX_INSTANCES};
use drover_api::deployment::{
    Backoff, Deployment, DeploymentId, DeploymentKind, DeploymentProgress, DeploymentState,
    DeploymentStep, StepAction, StepStatus,
};
use drover_api::{ApiError, ErrorCode};

use super::state::{AppState, next_version, seconds};

/// A change an operator asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum AppChange {
    /// A new app. Refused (409) when the app exists.
    Create(AppDefinition),
    /// A new definition for an app (creates it when absent, like Marathon's PUT). A
    /// definition that differs from the current one only in `instances` is a scale: no
    /// new version, no instance replaced.
    Update(AppDefinition),
    /// A new instance count; nothing is replaced (unless it supersedes a running
    /// update, restart or rollback, which then goes on at the new count).
    Scale {
        /// Instances wanted.
        instances: u32,
    },
    /// Replace every instance with the same definition under a new version.
    Restart,
    /// Go back to an earlier version: its stored definition, with `version` set to the
    /// version string. Instances that run that version are kept.
    Rollback(AppDefinition),
    /// Stop every instance, then remove the app.
    Delete,
}

/// What a change does when the app is locked by a running deployment of its own
/// (Marathon's `force` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Refuse the change (409, naming the running deployments).
    Refuse,
    /// Supersede the running deployments with the new one.
    Supersede,
}

impl Locked {
    /// From Marathon's and the native API's `force=true|false`.
    pub fn from_force(force: bool) -> Locked {
        if force {
            Locked::Supersede
        } else {
            Locked::Refuse
        }
    }
}

/// The outcome of an accepted change; the server persists all of it in one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Began {
    /// The app's new state (for a delete: the app marked `deleting`).
    pub app: AppState,
    /// The new, running deployment.
    pub deployment: Deployment,
    /// Running deployments of the app this one superseded (only with `force`).
    pub superseded: Vec<Deployment>,
}

/// The outcome of a cancelled deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    /// The deployment, now failed.
    pub deployment: Deployment,
    /// The rollback begun, when a definition to revert to was given.
    pub rollback: Option<Began>,
}

/// Begins `change` on the app `current` (None: the app does not exist) at `now`.
///
/// `running` may hold any deployments; those of this app that are running make the
/// change a conflict (409, naming them) unless `locked` is [`Locked::Supersede`], in
/// which case they come back in [`Began::superseded`], marked superseded by the new one. The new deployment starts
/// from the cluster as it is: the plan reads the tasks, not the old deployment.
///
/// Errors: 400 for an invalid definition or instance count (naming the field), 404 for
/// a change to an app that does not exist, 409 for a create of an existing app or a
/// conflict with a running deployment.
pub fn begin(
    change: AppChange,
    current: Option<&AppState>,
    running: &[Deployment],
    locked: Locked,
    now: DateTime<Utc>,
) -> Result<Began, ApiError> {
    begin_inner(change, current, running, locked, now, None)
}

/// Cancels a running deployment on request: it fails now. With `revert_to` (the
/// definition of the version to go back to, with its `version` set), a rollback
/// deployment begins at once, like an auto-revert. The native API passes the definition
/// of [`Deployment::revert_to`] (set when the app has `autoRevert`); Marathon's
/// `DELETE /v2/deployments/{id}` passes the previous version's unless `force=true`.
///
/// A delete cannot be cancelled (409): its instances may already be stopped; create the
/// app again (with `force`) instead.
pub fn cancel(
    deployment: &Deployment,
    app: Option<&AppState>,
    revert_to: Option<&AppDefinition>,
    now: DateTime<Utc>,
) -> Result<Cancelled, ApiError> {
    if !deployment.is_running() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "deployment {} is already {}",
                deployment.id, deployment.state
            ),
        ));
    }
    if deployment.kind == DeploymentKind::Delete {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "deployment {} deletes {} and cannot be cancelled; create the app again with force=true",
                deployment.id, deployment.app_id
            ),
        ));
    }
    let mut failed = deployment.clone();
    finish(
        &mut failed,
        DeploymentState::Failed,
        now,
        "cancelled on request".to_string(),
    );
    let rollback = match (revert_to, app) {
        (Some(def), Some(app)) => Some(begin_revert(def.clone(), app, deployment.id.clone(), now)?),
        _ => None,
    };
    Ok(Cancelled {
        deployment: failed,
        rollback,
    })
}

/// Begins the rollback of `app` to `def` that reverts the failed or cancelled deployment
/// `reverts` (which it names). That deployment has ended, so nothing locks the app.
pub(crate) fn begin_revert(
    def: AppDefinition,
    app: &AppState,
    reverts: DeploymentId,
    now: DateTime<Utc>,
) -> Result<Began, ApiError> {
    begin_inner(
        AppChange::Rollback(def),
        Some(app),
        &[],
        Locked::Refuse,
        now,
        Some(reverts),
    )
}

/// [`begin`], marking the deployment as the auto-revert of `reverts` when given.
fn begin_inner(
    change: AppChange,
    current: Option<&AppState>,
    running: &[Deployment],
    locked: Locked,
    now: DateTime<Utc>,
    reverts: Option<DeploymentId>,
) -> Result<Began, ApiError> {
    // Marathon's PUT creates an app that does not exist.
    let change = match (change, current) {
        (AppChange::Update(def), None) => AppChange::Create(def),
        (c, _) => c,
    };
    let (kind, mut app) = match (change, current) {
        (AppChange::Create(def), None) => {
            def.validate()?;
            let version = next_version(now, None);
            let state = AppState {
                definition: with_version(def, &version),
                version,
                backoff: fresh_backoff(now),
                last_healthy_version: None,
                deleting: false,
                deployments_begun: 0,
                pending_launches: Vec::new(),
                created_at: now,
                updated_at: now,
            };
            (DeploymentKind::Create, state)
        }
        (AppChange::Create(def), Some(cur)) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "app {} already exists; update it instead (version {})",
                    def.id, cur.version
                ),
            ));
        }
        (_, None) => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "app not found: nothing to change",
            ));
        }
        (AppChange::Update(def), Some(cur)) => {
            def.validate()?;
            if def.id != cur.definition.id {
                return Err(ApiError::invalid(
                    "id",
                    format!(
                        "the definition is for {}, not {}",
                        def.id, cur.definition.id
                    ),
                ));
            }
            let mut state = cur.clone();
            state.deleting = false;
            state.updated_at = now;
            if only_instances_differ(&def, &cur.definition) && !cur.deleting {
                state.definition.instances = def.instances;
                (DeploymentKind::Scale, state)
            } else {
                let version = next_version(now, Some(&cur.version));
                state.definition = with_version(def, &version);
                state.version = version;
                state.backoff = fresh_backoff(now);
                (DeploymentKind::Update, state)
            }
        }
        (AppChange::Scale { instances }, Some(cur)) => {
            if instances > MAX_INSTANCES {
                return Err(ApiError::invalid(
                    "instances",
                    drover_api::app::too_many_instances(instances),
                ));
            }
            let mut state = cur.clone();
            state.definition.instances = instances;
            state.deleting = false;
            state.updated_at = now;
            (DeploymentKind::Scale, state)
        }
        (AppChange::Restart, Some(cur)) => {
            let mut state = cur.clone();
            let version = next_version(now, Some(&cur.version));
            state.definition = with_version(cur.definition.clone(), &version);
            state.version = version;
            state.backoff = fresh_backoff(now);
            state.deleting = false;
            state.updated_at = now;
            (DeploymentKind::Restart, state)
        }
        (AppChange::Rollback(def), Some(cur)) => {
            let Some(version) = def.version.clone() else {
                return Err(ApiError::invalid(
                    "version",
                    "a rollback needs the version to go back to",
                ));
            };
            def.validate()?;
            if def.id != cur.definition.id {
                return Err(ApiError::invalid(
                    "id",
                    format!(
                        "version {version} is of {}, not {}",
                        def.id, cur.definition.id
                    ),
                ));
            }
            let mut state = cur.clone();
            state.definition = def;
            if state.version != version {
                state.backoff = fresh_backoff(now);
            }
            state.version = version;
            state.deleting = false;
            state.updated_at = now;
            (DeploymentKind::Rollback, state)
        }
        (AppChange::Delete, Some(cur)) => {
            let mut state = cur.clone();
            state.deleting = true;
            state.updated_at = now;
            (DeploymentKind::Delete, state)
        }
    };

    let mine: Vec<&Deployment> = running
        .iter()
        .filter(|d| d.is_running() && d.app_id == app.definition.id)
        .collect();
    if !mine.is_empty() && locked == Locked::Refuse {
        let ids: Vec<String> = mine
            .iter()
            .map(|d| format!("{} ({})", d.id, d.kind))
            .collect();
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "app {} is locked by running deployment {}; retry with force=true to supersede it",
                app.definition.id,
                ids.join(", ")
            ),
        ));
    }

    // A scale that supersedes a rollout joins it: the rollout goes on at the new size,
    // rather than leaving old instances in place with no deployment to replace them.
    let kind = match mine.iter().rev().map(|d| d.kind).find(|k| k.replaces()) {
        Some(k) if kind == DeploymentKind::Scale => k,
        _ => kind,
    };
    app.deployments_begun += 1;
    let previous_version = current.map(|c| c.version.clone());
    let previous_instances = current.map_or(0, |c| c.definition.instances);
    let deployment = new_deployment(
        &app,
        kind,
        previous_version,
        previous_instances,
        now,
        locked == Locked::Supersede && !mine.is_empty(),
        reverts,
    );
    let superseded = mine
        .into_iter()
        .map(|d| {
            let mut d = d.clone();
            finish(
                &mut d,
                DeploymentState::Superseded,
                now,
                format!("superseded by {} ({})", deployment.id, deployment.kind),
            );
            d.superseded_by = Some(deployment.id.clone());
            d
        })
        .collect();
    Ok(Began {
        app,
        deployment,
        superseded,
    })
}

/// Marks a deployment finished: its state, end time, message, and its steps.
pub(crate) fn finish(
    d: &mut Deployment,
    state: DeploymentState,
    now: DateTime<Utc>,
    message: String,
) {
    d.state = state;
    d.finished_at = Some(now);
    d.progress.deadline_at = None;
    let step_status = if state == DeploymentState::Succeeded {
        StepStatus::Done
    } else {
        StepStatus::Failed
    };
    for (i, s) in d.steps.iter_mut().enumerate() {
        if s.status != StepStatus::Done
            && (state == DeploymentState::Succeeded || i == d.current_step)
        {
            s.status = step_status;
        }
    }
    if state == DeploymentState::Succeeded {
        d.current_step = d.steps.len().saturating_sub(1);
    } else {
        d.message = Some(message);
    }
}

/// A backoff with no failures that ignores tasks that ended before `now` (they belong
/// to what ran before this version).
fn fresh_backoff(now: DateTime<Utc>) -> Backoff {
    Backoff {
        counted_until: Some(now),
        ..Backoff::default()
    }
}

fn with_version(mut def: AppDefinition, version: &str) -> AppDefinition {
    def.version = Some(version.to_string());
    def
}

fn only_instances_differ(new: &AppDefinition, cur: &AppDefinition) -> bool {
    let mut a = new.clone();
    a.instances = cur.instances;
    a.version = cur.version.clone();
    &a == cur
}

fn new_deployment(
    app: &AppState,
    kind: DeploymentKind,
    previous_version: Option<String>,
    previous_instances: u32,
    now: DateTime<Utc>,
    forced: bool,
    reverts: Option<DeploymentId>,
) -> Deployment {
    let n = app.definition.instances;
    let version = app.version.clone();
    let steps: Vec<StepAction> = match kind {
        DeploymentKind::Create => vec![StepAction::StartInstances {
            version: version.clone(),
            count: n,
        }],
        DeploymentKind::Update | DeploymentKind::Restart | DeploymentKind::Rollback => {
            vec![StepAction::ReplaceInstances {
                version: version.clone(),
                count: n,
            }]
        }
        DeploymentKind::Scale if n >= previous_instances => vec![StepAction::StartInstances {
            version: version.clone(),
            count: n,
        }],
        DeploymentKind::Scale => vec![StepAction::StopInstances { count: n }],
        DeploymentKind::Delete => vec![
            StepAction::StopInstances { count: 0 },
            StepAction::RemoveApp,
        ],
    };
    let steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, action)| DeploymentStep {
            action,
            status: if i == 0 {
                StepStatus::Running
            } else {
                StepStatus::Pending
            },
        })
        .collect();
    // Auto-revert goes back to the last fully healthy version; never from a rollback
    // that is itself a revert (no ping-pong), never to the target itself.
    let revert_to =
        if app.definition.auto_revert && reverts.is_none() && kind != DeploymentKind::Delete {
            app.last_healthy_version
                .clone()
                .filter(|v| *v != app.version)
        } else {
            None
        };
    let deadline = deadline_seconds(app, kind);
    let slug: Vec<&str> = app.definition.id.segments().collect();
    let id = DeploymentId(format!(
        "{}-{}-{}",
        slug.join("."),
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        app.deployments_begun
    ));
    Deployment {
        id,
        app_id: app.definition.id.clone(),
        kind,
        version,
        previous_version,
        instances: n,
        state: DeploymentState::Running,
        steps,
        current_step: 0,
        progress: DeploymentProgress {
            target_instances: n,
            ready: 0,
            starting: 0,
            to_stop: 0,
            best_ready: 0,
            least_to_stop: u32::MAX,
            last_progress_at: now,
            deadline_at: deadline.map(|s| now + seconds(s)),
        },
        started_at: now,
        finished_at: None,
        message: None,
        superseded_by: None,
        revert_to,
        reverts,
        forced,
        waiting: None,
        dependencies_ready_at: None,
    }
}

/// The progress deadline of a deployment of `kind` in seconds; none for 0 and deletes
/// (a delete only stops instances, and a failed delete would leave a half-removed app).
pub(crate) fn deadline_seconds(app: &AppState, kind: DeploymentKind) -> Option<f64> {
    let s = app.definition.progress_deadline_seconds;
    (kind != DeploymentKind::Delete && s.is_finite() && s > 0.0).then_some(s)
}
