//! The executor interface: what runs one task. The runner picks a task's executor once,
//! from its definition, when it accepts the task (or finds it on disk), and from then on
//! prepares, starts and re-adopts it only through that executor. Its two implementations:
//! [`ProcessExecutor`] (a shim per task, `runner/process.rs`) and [`DockerExecutor`] (the
//! agent drives the Docker Engine itself, `runner/container.rs`).
//!
//! Both share the runner's entries, sandboxes and reports: an executor learns the task's
//! pid through [`Inner::set_running`], records its end through [`Inner::finish`], and
//! carries out a kill when the entry's `wake` fires.

use std::sync::Arc;

use drover_api::TaskId;
use drover_api::task::{TaskDefinition, TaskSpec};

use super::container::DockerExecutor;
use super::process::ProcessExecutor;
use super::{Entry, Inner};
use crate::docker::Engine;
use crate::sandbox::{LaunchPlan, Sandbox};

/// Which executor runs a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExecutorKind {
    /// A process started through the shim.
    Process,
    /// A Docker container driven through the engine.
    Docker,
}

impl ExecutorKind {
    /// The executor of a task with definition `def`: a container makes it Docker's.
    pub(super) fn for_task(def: &TaskDefinition) -> ExecutorKind {
        if def.container.is_some() {
            ExecutorKind::Docker
        } else {
            ExecutorKind::Process
        }
    }

    /// The executor itself.
    pub(super) fn executor(self) -> &'static dyn Executor {
        match self {
            ExecutorKind::Process => &ProcessExecutor,
            ExecutorKind::Docker => &DockerExecutor,
        }
    }
}

/// What runs a task, from its launch plan to its recorded end.
pub(super) trait Executor: Sync {
    /// Resolves what the task will run and as whom; `Err` is the reason the task fails
    /// instead. Runs before the checkpoint is written, which records the plan.
    fn prepare(&self, inner: &Inner, spec: &TaskSpec, sb: &Sandbox) -> Result<LaunchPlan, String>;

    /// Starts a task whose checkpoint is durable, records its entry, and watches it until
    /// it ends, carrying out a kill when one is asked for.
    fn start(&self, inner: &Arc<Inner>, id: TaskId, entry: Entry, sb: &Sandbox);

    /// Takes over an active task found on disk with no exit record: watches it if it
    /// still runs, records how it ended otherwise.
    fn resume(&self, inner: &Arc<Inner>, id: TaskId, entry: Entry, sb: &Sandbox);

    /// Tidies what a task found ended on disk may have left behind.
    fn clean_up_ended(&self, inner: &Inner, id: &TaskId);

    /// The engine and container that COMMAND health checks of task `id` run inside, when
    /// they run inside one.
    fn probe_container(&self, inner: &Inner, id: &TaskId) -> Option<(Engine, String)>;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_task_without_a_container_runs_as_a_process() {
        let def = TaskDefinition {
            cmd: Some("sleep 1".into()),
            ..TaskDefinition::default()
        };
        assert_eq!(ExecutorKind::for_task(&def), ExecutorKind::Process);
    }

    #[test]
    fn a_task_with_a_container_runs_in_docker() {
        let def = TaskDefinition {
            container: Some(json!({"type": "DOCKER", "docker": {"image": "busybox"}})),
            ..TaskDefinition::default()
        };
        assert_eq!(ExecutorKind::for_task(&def), ExecutorKind::Docker);
    }

    #[test]
    fn any_container_value_is_dockers_to_judge() {
        // An invalid container still goes to Docker, whose preparation fails it with the
        // reason, rather than being run as a process without its container.
        let def = TaskDefinition {
            cmd: Some("true".into()),
            container: Some(json!("not an object")),
            ..TaskDefinition::default()
        };
        assert_eq!(ExecutorKind::for_task(&def), ExecutorKind::Docker);
    }
}
