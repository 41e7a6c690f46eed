//! Deployments (every change to an app, with its steps and progress) and the status of
//! an app (what runs, what cannot be placed and why, the crash-loop backoff).
//!
//! Vocabulary:
//! - the *target version* of a deployment is the version every instance should run when
//!   it is done; instances of any other version are *old*;
//! - an instance is *ready* when it is healthy, or running when its task has no health
//!   checks; only ready instances count towards `minimumHealthCapacity`;
//! - an instance is *stopping* once Drover asked the master to kill it and it has not
//!   ended yet; it still holds its resources and counts towards `maximumOverCapacity`.
//!
//! The scheduler computes these types (`drover_scheduler_engine::apps`) and persists
//! [`Deployment`]s; the API and the CLI show them as they are.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppId;
use crate::task::TaskId;

/// A deployment's id: `<app id segments joined by '.'>-<start time>-<sequence>`, e.g.
/// `shop.web-20260101T120000.000Z-3`; safe as a URL path segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(pub String);

impl DeploymentId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DeploymentId {
    fn from(s: &str) -> Self {
        DeploymentId(s.to_string())
    }
}

/// What change to an app a deployment carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// A new app: start its instances.
    Create,
    /// A new version: replace every instance, honouring the upgrade strategy.
    Update,
    /// A new instance count only: start or stop instances, nothing is replaced.
    Scale,
    /// The same definition under a new version: replace every instance.
    Restart,
    /// An earlier version (by request, or by auto-revert after a failed deployment):
    /// replace every instance that does not run it.
    Rollback,
    /// Stop every instance, then remove the app.
    Delete,
}

impl DeploymentKind {
    /// The lowercase name used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Create => "create",
            DeploymentKind::Update => "update",
            DeploymentKind::Scale => "scale",
            DeploymentKind::Restart => "restart",
            DeploymentKind::Rollback => "rollback",
            DeploymentKind::Delete => "delete",
        }
    }

    /// Whether the deployment replaces instances that do not run the target version.
    pub fn replaces(self) -> bool {
        matches!(
            self,
            DeploymentKind::Create
                | DeploymentKind::Update
                | DeploymentKind::Restart
                | DeploymentKind::Rollback
        )
    }
}

impl fmt::Display for DeploymentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a deployment is in its life. Only `running` changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Being carried out.
    Running,
    /// Every instance runs the target version and is ready (or, for a delete, the app
    /// is gone).
    Succeeded,
    /// Cancelled, or made no progress for the app's `progressDeadlineSeconds`.
    Failed,
    /// A forced change to the same app took over; the newer deployment starts from the
    /// cluster as this one left it.
    Superseded,
}

impl DeploymentState {
    /// The lowercase name used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Running => "running",
            DeploymentState::Succeeded => "succeeded",
            DeploymentState::Failed => "failed",
            DeploymentState::Superseded => "superseded",
        }
    }

    /// Whether the deployment has ended for good.
    pub fn is_finished(self) -> bool {
        self != DeploymentState::Running
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one step of a deployment does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum StepAction {
    /// Start instances of `version` until `count` are ready.
    StartInstances {
        /// The version started.
        version: String,
        /// Ready instances wanted at the end of the step.
        count: u32,
    },
    /// Replace every instance not on `version` until `count` instances of it are ready
    /// and no other instance is left (a rolling upgrade).
    ReplaceInstances {
        /// The target version.
        version: String,
        /// Ready instances wanted at the end of the step.
        count: u32,
    },
    /// Stop instances until `count` are left.
    StopInstances {
        /// Instances left at the end of the step.
        count: u32,
    },
    /// Forget the app (after every instance has stopped).
    RemoveApp,
}

impl fmt::Display for StepAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepAction::StartInstances { version, count } => {
                write!(f, "start instances of {version} until {count} are ready")
            }
            StepAction::ReplaceInstances { version, count } => {
                write!(f, "replace instances with {count} ready of {version}")
            }
            StepAction::StopInstances { count } => {
                write!(f, "stop instances until {count} are left")
            }
            StepAction::RemoveApp => f.write_str("remove the app"),
        }
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Being carried out.
    Running,
    /// Finished.
    Done,
    /// The deployment failed or was superseded during this step.
    Failed,
}

/// One visible step of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStep {
    /// What the step does.
    pub action: StepAction,
    /// Where it is.
    pub status: StepStatus,
}

/// How far a deployment got, as of the scheduler's last look at the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentProgress {
    /// Instances wanted at the end.
    pub target_instances: u32,
    /// Ready instances of the target version (for a scale: of any version).
    pub ready: u32,
    /// Active instances of the target version that are not ready yet.
    pub starting: u32,
    /// Active instances that must still go (old versions, instances over the count, or
    /// for a delete every instance), stopping ones included.
    pub to_stop: u32,
    /// The most `ready` ever seen in this deployment (progress is a new maximum).
    pub best_ready: u32,
    /// The fewest `to_stop` ever seen (progress is a new minimum).
    pub least_to_stop: u32,
    /// When the deployment last made progress (it started, `best_ready` rose, or
    /// `least_to_stop` fell).
    pub last_progress_at: DateTime<Utc>,
    /// When it fails unless it makes progress first: `last_progress_at` plus the app's
    /// `progressDeadlineSeconds`; none for a deadline of 0 and for deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<DateTime<Utc>>,
}

/// A change to an app being carried out (or carried out once), with its steps and
/// progress. Kept by the scheduler's store; `GET /v1/deployments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Its id.
    pub id: DeploymentId,
    /// The app it changes.
    pub app_id: AppId,
    /// What change it carries out.
    pub kind: DeploymentKind,
    /// The target version.
    pub version: String,
    /// The app's version before the change, if the app existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// Instances wanted at the end.
    pub instances: u32,
    /// Where it is.
    pub state: DeploymentState,
    /// Its steps, in order.
    pub steps: Vec<DeploymentStep>,
    /// Index of the step being carried out (the last one once finished).
    pub current_step: usize,
    /// How far it got.
    pub progress: DeploymentProgress,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed or what superseded it, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The deployment that superseded this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<DeploymentId>,
    /// The version an auto-revert goes back to if this deployment fails: the app's last
    /// fully healthy version when it began (none when there is none, when it is the
    /// target, when the app has no `autoRevert`, and for rollbacks made by auto-revert,
    /// so reverts never ping-pong).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_to: Option<String>,
    /// For a rollback made by auto-revert: the deployment that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverts: Option<DeploymentId>,
    /// Whether it was begun with `force` (superseding a running deployment).
    #[serde(default)]
    pub forced: bool,
    /// While the deployment waits for the apps its app depends on before it starts any
    /// instance: why, in words (`waiting for dependencies: /db (1 of 2 healthy)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// When every app its app depends on was first seen ready (an app without
    /// dependencies: its first tick); none while it waits, and for deployments that
    /// start no instance. Once set, the deployment does not wait again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies_ready_at: Option<DateTime<Utc>>,
}

/// What an instance answered to a readiness check, as Marathon shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The body (at most 64 KiB of it, as text).
    pub body: String,
}

/// One readiness check of one instance (Marathon's `readinessCheckResults` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessCheckResult {
    /// The check's name.
    pub name: String,
    /// The instance.
    pub task_id: TaskId,
    /// Whether it answered one of the check's `httpStatusCodesForReady`. Once true, the
    /// instance is not checked again.
    pub ready: bool,
    /// The last answer, kept only when the check has `preserveLastResponse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_response: Option<ReadinessResponse>,
    /// Drover extra: why it is not ready yet, in words (`answered 503`, `connection
    /// refused`, `not started yet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Drover extra: when the last probe answered (none before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
}

impl Deployment {
    /// Whether it is still being carried out.
    pub fn is_running(&self) -> bool {
        self.state == DeploymentState::Running
    }

    /// Progress in percent (0-100) by ready instances and instances left to stop.
    pub fn percent(&self) -> u32 {
        if self.state == DeploymentState::Succeeded {
            return 100;
        }
        let p = &self.progress;
        // Ready instances over what is left to do: grows as instances turn ready and as
        // the ones to stop go.
        let want = u64::from(p.target_instances) + u64::from(p.to_stop);
        if want == 0 {
            return 0;
        }
        let done = u64::from(p.ready.min(p.target_instances));
        u32::try_from(done * 100 / want).unwrap_or(100).min(99)
    }
}

/// An app's crash-loop backoff: how long its next launch waits after failures.
///
/// After the n-th consecutive failure the delay is `backoffSeconds * backoffFactor^(n-1)`,
/// capped at `maxLaunchDelaySeconds`, counted from the failure.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Failures in a row of the app's current version (0: no backoff).
    pub consecutive_failures: u32,
    /// The current delay in seconds.
    pub delay_seconds: f64,
    /// When the last failure counted happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<DateTime<Utc>>,
    /// No launch of the app before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// Terminal tasks that ended at or before this instant were already counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_until: Option<DateTime<Utc>>,
}

impl Backoff {
    /// Whether launches wait at `now`.
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before.is_some_and(|t| t > now)
    }
}

/// Instances by state (a stopping instance is counted only under `stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCounts {
    /// Accepted by the master, not started.
    pub staged: u32,
    /// Started; no health check has passed yet (or it has none).
    pub running: u32,
    /// Health checks pass.
    pub healthy: u32,
    /// Health checks fail.
    pub unhealthy: u32,
    /// Being killed by Drover.
    pub stopping: u32,
    /// Ready: healthy, or running without health checks.
    pub ready: u32,
}

impl TaskCounts {
    /// All active instances counted.
    pub fn total(&self) -> u32 {
        self.staged + self.running + self.healthy + self.unhealthy + self.stopping
    }
}

/// One reason nodes refuse an instance, with how many nodes it rules out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnplacedReason {
    /// The check that fails (`insufficient mem (wants 512 MiB)`, `hostname UNIQUE ...`).
    pub reason: String,
    /// On how many nodes.
    pub nodes: usize,
}

/// Instances the scheduler wants to start but no node can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unplaceable {
    /// How many instances are left unplaced.
    pub count: u32,
    /// Nodes in the cluster.
    pub total_nodes: usize,
    /// Each failing check with its node count, in check order.
    pub reasons: Vec<UnplacedReason>,
    /// The whole explanation in one sentence.
    pub message: String,
}

/// What the scheduler knows about one app right now (`GET /v1/apps/{id}` status part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// The app.
    pub app_id: AppId,
    /// Its current version (the one new instances get).
    pub version: String,
    /// Instances wanted.
    pub instances: u32,
    /// Active instances of every version together.
    pub tasks: TaskCounts,
    /// Active instances per version.
    pub by_version: BTreeMap<String, TaskCounts>,
    /// Instances that cannot be placed, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unplaceable: Option<Unplaceable>,
    /// The crash-loop backoff, when failures are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// The running deployment, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentId>,
    /// The last version that ran with every instance ready and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy_version: Option<String>,
    /// Why instances are wanted but not launched this round, when it is not placement
    /// (backoff, over-capacity limit, waiting for instances to stop, waiting for
    /// dependencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// The readiness checks of the instances the running deployment started (apps with
    /// `readinessChecks` only): one entry per instance and check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness: Vec<ReadinessCheckResult>,
}

impl Deployment {
    /// Marathon's action names for this deployment's steps (`GET /v2/deployments`).
    pub fn marathon_actions(&self) -> Vec<&'static str> {
        match self.kind {
            DeploymentKind::Create => vec!["StartApplication", "ScaleApplication"],
            DeploymentKind::Update | DeploymentKind::Restart | DeploymentKind::Rollback => {
                vec!["RestartApplication"]
            }
            DeploymentKind::Scale => vec!["ScaleApplication"],
            DeploymentKind::Delete => vec!["StopApplication"],
        }
    }

    /// The deployment in Marathon's `GET /v2/deployments` shape: `id`, `version`,
    /// `affectedApps`, `steps` (one action per step), `currentActions`, `currentStep`
    /// (from 1) and `totalSteps`, with no readiness results.
    pub fn to_marathon(&self) -> serde_json::Value {
        self.to_marathon_with(&[])
    }

    /// [`Deployment::to_marathon`] with the readiness results of the app's instances in
    /// the current action's `readinessCheckResults`, and Drover's `waiting` (why it has
    /// not started instances yet) when it waits for dependencies.
    pub fn to_marathon_with(&self, readiness: &[ReadinessCheckResult]) -> serde_json::Value {
        let app = self.app_id.to_string();
        let actions = self.marathon_actions();
        let steps: Vec<serde_json::Value> = actions
            .iter()
            .map(|a| serde_json::json!({ "actions": [{ "action": a, "app": app }] }))
            .collect();
        // Marathon's steps are sequential; Drover carries a create out in one pass, so
        // the current step is the last until the deployment ends.
        let current = if self.is_running() { actions.len() } else { 0 };
        let current_actions: Vec<serde_json::Value> = if self.is_running() {
            actions
                .last()
                .map(|a| {
                    vec![serde_json::json!({
                        "action": a,
                        "app": app,
                        "readinessCheckResults": readiness,
                    })]
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut v = serde_json::json!({
            "id": self.id.as_str(),
            "version": self.version,
            "affectedApps": [app],
            "affectedPods": [],
            "steps": steps,
            "currentActions": current_actions,
            "currentStep": current,
            "totalSteps": actions.len(),
        });
        if let (Some(w), Some(o)) = (&self.waiting, v.as_object_mut()) {
            o.insert("waiting".into(), w.clone().into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap

    use super::*;

    fn sample() -> Deployment {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Deployment {
            id: DeploymentId::from("web-20260101T000000.000Z-1"),
            app_id: AppId::parse("/web").unwrap(),
            kind: DeploymentKind::Update,
            version: "2026-01-01T00:00:00.000Z".into(),
            previous_version: None,
            instances: 4,
            state: DeploymentState::Running,
            steps: vec![DeploymentStep {
                action: StepAction::ReplaceInstances {
                    version: "2026-01-01T00:00:00.000Z".into(),
                    count: 4,
                },
                status: StepStatus::Running,
            }],
            current_step: 0,
            progress: DeploymentProgress {
                target_instances: 4,
                ready: 2,
                starting: 1,
                to_stop: 2,
                best_ready: 2,
                least_to_stop: 2,
                last_progress_at: t,
                deadline_at: None,
            },
            started_at: t,
            finished_at: None,
            message: None,
            superseded_by: None,
            revert_to: None,
            reverts: None,
            forced: false,
            waiting: None,
            dependencies_ready_at: None,
        }
    }

    #[test]
    fn wire_shape() {
        let d = sample();
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["kind"], "update");
        assert_eq!(v["state"], "running");
        assert_eq!(v["steps"][0]["action"]["action"], "replace_instances");
        assert_eq!(v["progress"]["targetInstances"], 4);
        let back: Deployment = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
        assert_eq!(d.percent(), 33);
        let m = d.to_marathon();
        assert_eq!(m["affectedApps"][0], "/web");
        assert_eq!(m["currentActions"][0]["action"], "RestartApplication");
        assert_eq!(m["totalSteps"], 1);
    }
}
