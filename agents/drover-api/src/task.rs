//! Task definitions, the task state machine and health checks.
//!
//! A task is one process (or container) on one node. The scheduler or an operator sends
//! a [`LaunchRequest`]; the master checks it against the node's free resources, assigns
//! host ports and an id, and stores the resulting [`TaskSpec`]; the agent runs it and
//! reports [`TaskReport`]s; the master keeps the merged [`Task`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ApiError, Resources};

/// A task's id: `<name>.<unique suffix>`; safe as a path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub String);

impl TaskId {
    /// Checks that the id is usable as a file name and a URL path segment.
    pub fn validate(&self) -> Result<(), ApiError> {
        let s = &self.0;
        let ok = !s.is_empty()
            && s.len() <= 200
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(())
        } else {
            Err(ApiError::invalid(
                "id",
                format!(
                    "{s:?} is not a valid task id (1-200 of [A-Za-z0-9._-], not starting with '.')"
                ),
            ))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<name>.<suffix>`, Marathon's shape (`shop_web.0a1b...`): the name (an app id or
    /// job name) with every character a task id cannot hold made `_`, leading `_` and
    /// `.` dropped, at most 150 characters, `task` when nothing is left. `suffix` must
    /// be task-id characters already (a UUID's hex, say).
    pub fn for_name(name: &str, suffix: &str) -> TaskId {
        let mut base: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        base = base.trim_start_matches(['_', '.']).to_string();
        base.truncate(150);
        if base.is_empty() {
            base.push_str("task");
        }
        TaskId(format!("{base}.{suffix}"))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TaskId {
    fn from(s: &str) -> Self {
        TaskId(s.to_string())
    }
}

/// Where a task is in its life. Staging, running, healthy and unhealthy are active;
/// the rest are terminal and never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted by the master, not yet started by the agent.
    Staging,
    /// Started; has no health checks or none has decided yet.
    Running,
    /// Started and its health checks pass.
    Healthy,
    /// Started and its health checks fail.
    Unhealthy,
    /// Exited with status 0 on its own.
    Finished,
    /// Exited non-zero, died of a signal, or could not start.
    Failed,
    /// Stopped because someone asked to kill it.
    Killed,
    /// Its node became unreachable; it may still run there and will be killed if so.
    Lost,
}

impl TaskState {
    /// All states, in life-cycle order.
    pub const ALL: [TaskState; 8] = [
        TaskState::Staging,
        TaskState::Running,
        TaskState::Healthy,
        TaskState::Unhealthy,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Killed,
        TaskState::Lost,
    ];

    /// Whether the task holds resources and may still change state.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskState::Staging | TaskState::Running | TaskState::Healthy | TaskState::Unhealthy
        )
    }

    /// Whether the task has ended for good.
    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }

    /// Whether the task's process has started.
    pub fn is_started(self) -> bool {
        matches!(
            self,
            TaskState::Running | TaskState::Healthy | TaskState::Unhealthy
        )
    }

    /// The state machine's guard: terminal states never change; any active state may
    /// move to any other state except back to staging.
    pub fn can_transition_to(self, next: TaskState) -> bool {
        if self == next {
            return false;
        }
        self.is_active() && next != TaskState::Staging
    }

    /// The lowercase name used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Staging => "staging",
            TaskState::Running => "running",
            TaskState::Healthy => "healthy",
            TaskState::Unhealthy => "unhealthy",
            TaskState::Finished => "finished",
            TaskState::Failed => "failed",
            TaskState::Killed => "killed",
            TaskState::Lost => "lost",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown task state {s:?} (one of staging, running, healthy, unhealthy, finished, failed, killed, lost)"))
    }
}

/// How a task's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitStatus {
    /// The exit code, if it exited on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// Whether this counts as success (exit code 0).
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown"),
        }
    }
}

/// The protocol of a health check, with Marathon's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthProtocol {
    /// An HTTP GET; 2xx and 3xx pass.
    Http,
    /// A TCP connect; success passes.
    Tcp,
    /// A shell command in the task's environment (inside its container for a container
    /// task); exit 0 passes.
    Command,
}

/// A health check run by the agent, with Marathon's fields and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP, TCP or COMMAND.
    pub protocol: HealthProtocol,
    /// HTTP path; default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the task's ports; default 0 when neither this nor `port` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<usize>,
    /// A fixed port to check instead of one of the task's ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The command for COMMAND checks, run through `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Failures during this many seconds after start are not counted (Marathon: 300).
    #[serde(default = "default_grace")]
    pub grace_period_seconds: f64,
    /// Seconds between checks (Marathon: 60).
    #[serde(default = "default_interval")]
    pub interval_seconds: f64,
    /// Seconds before a check counts as failed (Marathon: 20).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// Consecutive failures after which the task is unhealthy (Marathon: 3).
    #[serde(default = "default_max_failures")]
    pub max_consecutive_failures: u32,
    /// Seconds to wait after start before the first check (Marathon: 15).
    #[serde(default = "default_delay")]
    pub delay_seconds: f64,
}

fn default_grace() -> f64 {
    300.0
}
fn default_interval() -> f64 {
    60.0
}
fn default_timeout() -> f64 {
    20.0
}
fn default_max_failures() -> u32 {
    3
}
fn default_delay() -> f64 {
    15.0
}

impl HealthCheck {
    /// A check of `protocol` with Marathon's defaults for every other field.
    pub fn new(protocol: HealthProtocol) -> Self {
        HealthCheck {
            protocol,
            path: None,
            port_index: None,
            port: None,
            command: None,
            grace_period_seconds: default_grace(),
            interval_seconds: default_interval(),
            timeout_seconds: default_timeout(),
            max_consecutive_failures: default_max_failures(),
            delay_seconds: default_delay(),
        }
    }

    /// Checks the fields, given how many ports the task has; names the bad field under `prefix`.
    pub fn validate(&self, prefix: &str, port_count: usize) -> Result<(), ApiError> {
        for (name, v) in [
            ("gracePeriodSeconds", self.grace_period_seconds),
            ("intervalSeconds", self.interval_seconds),
            ("timeoutSeconds", self.timeout_seconds),
            ("delaySeconds", self.delay_seconds),
        ] {
            if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
                return Err(ApiError::invalid(
                    format!("{prefix}{name}"),
                    format!("must be between 0 and 86400 seconds, got {v}"),
                ));
            }
        }
        if self.interval_seconds < 0.05 {
            return Err(ApiError::invalid(
                format!("{prefix}intervalSeconds"),
                "must be at least 0.05",
            ));
        }
        match self.protocol {
            HealthProtocol::Command => {
                if self.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    return Err(ApiError::invalid(
                        format!("{prefix}command"),
                        "a COMMAND health check needs a command",
                    ));
                }
            }
            HealthProtocol::Http | HealthProtocol::Tcp => {
                if self.port.is_none() {
                    let idx = self.port_index.unwrap_or(0);
                    if idx >= port_count {
                        return Err(ApiError::invalid(
                            format!("{prefix}portIndex"),
                            format!(
                                "port index {idx} is out of range: the task has {port_count} port(s)"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A port a task asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRequest {
    /// A name, exported to the task as `PORT_<NAME>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A specific host port, or 0 for any free port of the node's range.
    #[serde(default)]
    pub port: u16,
}

/// What to run: everything about a task except where it runs and its id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinition {
    /// A human-readable name (app id or job name); prefixes the task id.
    pub name: String,
    /// A shell command, run through `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// An argv, run directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Resources the task reserves on its node.
    #[serde(default)]
    pub resources: Resources,
    /// Host ports the task needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRequest>,
    /// Health checks the agent runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    /// Seconds between SIGTERM and SIGKILL on a kill.
    #[serde(default = "default_kill_grace")]
    pub kill_grace_period_seconds: f64,
    /// Free-form labels; the scheduler puts app id, job name and version here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A container to run the task in (`{"type": "DOCKER", "docker": {...}}`), passed
    /// through to the agent as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<serde_json::Value>,
    /// The Unix user to run as, if not the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

fn default_kill_grace() -> f64 {
    5.0
}

/// Labels the scheduler sets and the agent exports to the task's environment.
pub mod labels {
    /// The app id (`DROVER_APP_ID`).
    pub const APP_ID: &str = "drover.app";
    /// The job name (`DROVER_JOB_NAME`).
    pub const JOB_NAME: &str = "drover.job";
    /// The app or job version (`DROVER_VERSION`).
    pub const VERSION: &str = "drover.version";
}

impl TaskDefinition {
    /// Checks the definition and names the first bad field (under `prefix`).
    pub fn validate(&self, prefix: &str) -> Result<(), ApiError> {
        if self.name.trim().is_empty() || self.name.len() > 150 {
            return Err(ApiError::invalid(
                format!("{prefix}name"),
                "must be 1 to 150 characters",
            ));
        }
        let has_cmd = self.cmd.as_deref().is_some_and(|c| !c.trim().is_empty());
        let has_args = self
            .args
            .as_ref()
            .is_some_and(|a| !a.is_empty() && !a[0].is_empty());
        if has_cmd && has_args {
            return Err(ApiError::invalid(
                format!("{prefix}cmd"),
                "give cmd or args, not both",
            ));
        }
        if !has_cmd && !has_args && self.container.is_none() {
            return Err(ApiError::invalid(
                format!("{prefix}cmd"),
                "a task needs cmd, args or a container image",
            ));
        }
        if let Some(c) = &self.container {
            // The agent must be able to read it, so bad input is refused here, not at launch.
            crate::container::DockerContainer::parse(c).map_err(|e| {
                let (field, msg) = e.split_once(": ").unwrap_or(("", e.as_str()));
                let path = if field.is_empty() {
                    String::new()
                } else {
                    format!(".{field}")
                };
                ApiError::invalid(format!("{prefix}container{path}"), msg.to_string())
            })?;
        }
        self.resources
            .validate_task(&format!("{prefix}resources."))?;
        if !self.kill_grace_period_seconds.is_finite()
            || !(0.0..=3600.0).contains(&self.kill_grace_period_seconds)
        {
            return Err(ApiError::invalid(
                format!("{prefix}killGracePeriodSeconds"),
                "must be between 0 and 3600",
            ));
        }
        if self.ports.len() > 100 {
            return Err(ApiError::invalid(
                format!("{prefix}ports"),
                "at most 100 ports per task",
            ));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(name) = &p.name
                && (name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            {
                return Err(ApiError::invalid(
                    format!("{prefix}ports[{i}].name"),
                    format!("{name:?} is not a valid port name"),
                ));
            }
        }
        for k in self.env.keys() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(ApiError::invalid(
                    format!("{prefix}env"),
                    format!("{k:?} is not a valid variable name"),
                ));
            }
        }
        for (i, hc) in self.health_checks.iter().enumerate() {
            hc.validate(&format!("{prefix}healthChecks[{i}]."), self.ports.len())?;
        }
        Ok(())
    }
}

/// A request to run a task on a node (`POST /v1/tasks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchRequest {
    /// The node to run on.
    pub node: String,
    /// An id chosen by the caller (the scheduler uses this for idempotent retries);
    /// the master picks one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TaskId>,
    /// What to run.
    pub task: TaskDefinition,
}

/// Most launches one `POST /v1/launches` takes.
pub const MAX_LAUNCH_BATCH: usize = 500;

/// Several launches in one request (`POST /v1/launches`): the master decides them
/// in order, as if sent one by one, and makes the accepted ones durable together, so a
/// burst of due jobs costs one request and one write instead of one each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchBatchRequest {
    /// The launches, decided in this order.
    pub launches: Vec<LaunchRequest>,
}

/// The answer to a [`LaunchBatchRequest`]: one outcome per launch, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchBatchResponse {
    /// What became of each launch.
    pub results: Vec<LaunchOutcome>,
}

/// What became of one launch of a batch; a refusal refuses that launch alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum LaunchOutcome {
    /// A new task (what `POST /v1/tasks` answers with 201).
    Created {
        /// The task.
        task: Box<Task>,
    },
    /// The same launch was accepted before (an idempotent retry; 200 there).
    Existing {
        /// The task.
        task: Box<Task>,
    },
    /// Refused, for the reason `POST /v1/tasks` would give.
    Refused {
        /// Why.
        error: ApiError,
    },
}

/// A task as the master accepted it: the definition plus id, node and host ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// The task's id.
    pub id: TaskId,
    /// The node it runs on.
    pub node: String,
    /// What to run.
    pub definition: TaskDefinition,
    /// Host ports assigned, one per entry of `definition.ports`.
    #[serde(default)]
    pub host_ports: Vec<u16>,
}

/// The latest health-check outcome of a task, as the agent saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Whether the task currently counts as healthy.
    pub alive: bool,
    /// Failures in a row of the worst check.
    pub consecutive_failures: u32,
    /// When a check last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<DateTime<Utc>>,
    /// What the last failing check said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// An agent's report on one task; sent in every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    /// The task.
    pub id: TaskId,
    /// Its state as the agent sees it.
    pub state: TaskState,
    /// The task's main process id, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// Why it is in this state (spawn error, OOM, health failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Health-check outcome, when the task has checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
}

/// What the master wants done with a task on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskGoal {
    /// Keep it running (start it if the agent has not).
    Run,
    /// Stop it (SIGTERM, SIGKILL after the grace period).
    Kill,
}

/// A task as the master tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Id, node, definition and ports.
    pub spec: TaskSpec,
    /// Current state.
    pub state: TaskState,
    /// What the master wants of it.
    pub goal: TaskGoal,
    /// The main process id, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// Why it is in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Latest health-check outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthReport>,
    /// When the master accepted it.
    pub staged_at: DateTime<Utc>,
    /// When its process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// When anything about it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// A task just placed: staging, to run, nothing heard from its agent yet.
    pub fn staging(spec: TaskSpec, at: DateTime<Utc>) -> Task {
        Task {
            spec,
            state: TaskState::Staging,
            goal: TaskGoal::Run,
            pid: None,
            exit: None,
            message: None,
            health: None,
            staged_at: at,
            started_at: None,
            finished_at: None,
            updated_at: at,
        }
    }

    /// The task's id.
    pub fn id(&self) -> &TaskId {
        &self.spec.id
    }
}

/// Filters for `GET /v1/tasks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFilter {
    /// Only tasks on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Only tasks in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Only active (staging, running, healthy, unhealthy) tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Only tasks with this label (`key=value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// Which output stream of a task to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// The file name of this stream in the task's sandbox.
    pub fn file_name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// Query of `GET /v1/tasks/{id}/logs` on master and agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// stdout (default) or stderr.
    #[serde(default)]
    pub stream: LogStream,
    /// Keep the response open and send new output as it is written.
    #[serde(default)]
    pub follow: bool,
    /// Start at this byte offset; negative counts back from the end, and one past the
    /// end starts at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_guards() {
        assert!(TaskState::Staging.can_transition_to(TaskState::Running));
        assert!(TaskState::Running.can_transition_to(TaskState::Healthy));
        assert!(TaskState::Healthy.can_transition_to(TaskState::Unhealthy));
        assert!(TaskState::Running.can_transition_to(TaskState::Lost));
        assert!(!TaskState::Running.can_transition_to(TaskState::Staging));
        for t in [
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Lost,
        ] {
            for n in TaskState::ALL {
                assert!(!t.can_transition_to(n), "{t} -> {n}");
            }
        }
    }

    #[test]
    fn state_round_trips_through_str() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }

    #[test]
    fn definition_validation_names_fields() {
        let mut d = TaskDefinition {
            name: "t".into(),
            cmd: Some("sleep 1".into()),
            ..Default::default()
        };
        d.kill_grace_period_seconds = 5.0;
        // A task must reserve some CPU and memory.
        assert_eq!(
            d.validate("task.").unwrap_err().field.as_deref(),
            Some("task.resources.cpus")
        );
        d.resources = Resources::new(0.1, 0.0, 0.0);
        assert_eq!(
            d.validate("task.").unwrap_err().field.as_deref(),
            Some("task.resources.mem")
        );
        d.resources.mem = 16.0;
        assert!(d.validate("task.").is_ok());
        d.resources.cpus = -1.0;
        assert_eq!(
            d.validate("task.").unwrap_err().field.as_deref(),
            Some("task.resources.cpus")
        );
        d.resources.cpus = 0.1;
        d.health_checks.push(HealthCheck::new(HealthProtocol::Http));
        assert_eq!(
            d.validate("task.").unwrap_err().field.as_deref(),
            Some("task.healthChecks[0].portIndex")
        );
        d.cmd = None;
        assert_eq!(
            d.validate("task.").unwrap_err().field.as_deref(),
            Some("task.cmd")
        );
    }

    #[test]
    fn health_check_defaults_are_marathons() {
        let hc: HealthCheck =
            serde_json::from_str(r#"{"protocol":"HTTP","path":"/health"}"#).unwrap();
        assert_eq!(hc.grace_period_seconds, 300.0);
        assert_eq!(hc.interval_seconds, 60.0);
        assert_eq!(hc.timeout_seconds, 20.0);
        assert_eq!(hc.max_consecutive_failures, 3);
    }

    #[test]
    fn task_id_validation() {
        assert!(TaskId::from("web.1234-abcd").validate().is_ok());
        assert!(TaskId::from("../etc").validate().is_err());
        assert!(TaskId::from("").validate().is_err());
        assert!(TaskId::from("a/b").validate().is_err());
        let id = TaskId::for_name("/shop/web", "0123abcd");
        assert_eq!(id.as_str(), "shop_web.0123abcd");
        assert!(id.validate().is_ok());
        assert_eq!(TaskId::for_name("/", "x").as_str(), "task.x");
    }
}
