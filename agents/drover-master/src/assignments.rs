//! What the master wants on a node: the answer to the agent's assignments long poll.
//! A pure function of the node's tasks and what the agent last reported.

use std::collections::BTreeMap;

use drover_api::agent::TaskAssignment;
use drover_api::task::{Task, TaskDefinition, TaskGoal, TaskSpec};
use drover_api::{TaskId, TaskState};

/// The assignments of node `node`, sorted by task id:
///
/// - `Run` for each of its tasks that is active with goal Run;
/// - `Kill` for each of its tasks with goal Kill that is active here or that the agent
///   still reports active (a kill requested, not yet done);
/// - `Kill` for each task the agent reports active that the master has as terminal
///   (lost while the node was away, then replaced), or has on another node
///   (`elsewhere`).
///
/// A task the agent reports that the master does not know at all is not listed: the
/// agent keeps it running and the master adopts it from the agent's registration (see
/// [`crate::reports::adopt`]); an empty or rolled-back store must never make agents kill
/// what they run.
pub fn compute<'a>(
    node: &str,
    tasks: impl IntoIterator<Item = &'a Task>,
    reported: &BTreeMap<TaskId, TaskState>,
    elsewhere: impl Fn(&TaskId) -> bool,
) -> Vec<TaskAssignment> {
    let mut out: BTreeMap<TaskId, TaskAssignment> = BTreeMap::new();
    for t in tasks.into_iter().filter(|t| t.spec.node == node) {
        let agent_active = reported.get(t.id()).is_some_and(|s| s.is_active());
        let goal = match (t.goal, t.state.is_active()) {
            (TaskGoal::Run, true) => Some(TaskGoal::Run),
            (TaskGoal::Kill, true) => Some(TaskGoal::Kill),
            (_, false) if agent_active => Some(TaskGoal::Kill),
            _ => None,
        };
        if let Some(goal) = goal {
            out.insert(
                t.id().clone(),
                TaskAssignment {
                    spec: t.spec.clone(),
                    goal,
                },
            );
        }
    }
    for (id, state) in reported {
        if state.is_active() && !out.contains_key(id) && elsewhere(id) {
            // A task the master placed on another node: the agent gets a bare spec to kill
            // by id.
            out.insert(
                id.clone(),
                TaskAssignment {
                    spec: unknown_spec(id, node),
                    goal: TaskGoal::Kill,
                },
            );
        }
    }
    out.into_values().collect()
}

/// The spec sent with a kill of a task the master does not know on this node.
fn unknown_spec(id: &TaskId, node: &str) -> TaskSpec {
    TaskSpec {
        id: id.clone(),
        node: node.to_string(),
        definition: TaskDefinition {
            name: id.to_string(),
            kill_grace_period_seconds: 5.0,
            ..Default::default()
        },
        host_ports: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::task;
    use drover_api::Resources;

    fn goals(a: &[TaskAssignment]) -> Vec<(String, TaskGoal)> {
        a.iter().map(|x| (x.spec.id.to_string(), x.goal)).collect()
    }

    #[test]
    fn run_active_kill_requested_and_stragglers_but_never_unknown_tasks() {
        let r = Resources::default();
        let run = task("a.run", "n1", r, TaskState::Running, &[]);
        let staging = task("b.staging", "n1", r, TaskState::Staging, &[]);
        let mut killing = task("c.kill", "n1", r, TaskState::Running, &[]);
        killing.goal = TaskGoal::Kill;
        let mut lost = task("d.lost", "n1", r, TaskState::Lost, &[]);
        lost.goal = TaskGoal::Kill;
        let finished = task("e.done", "n1", r, TaskState::Finished, &[]);
        let other = task("f.other", "n2", r, TaskState::Running, &[]);
        let reported: BTreeMap<TaskId, TaskState> = [
            ("a.run", TaskState::Running),
            ("c.kill", TaskState::Running),
            ("d.lost", TaskState::Healthy),
            ("e.done", TaskState::Finished),
            ("f.other", TaskState::Running),
            ("g.unknown", TaskState::Running),
            ("h.unknown-dead", TaskState::Failed),
        ]
        .into_iter()
        .map(|(k, v)| (TaskId::from(k), v))
        .collect();
        let all = [run, staging, killing, lost, finished, other];
        let elsewhere = |id: &TaskId| id.as_str() == "f.other";
        let got = goals(&compute("n1", &all, &reported, elsewhere));
        assert_eq!(
            got,
            vec![
                ("a.run".into(), TaskGoal::Run),
                ("b.staging".into(), TaskGoal::Run),
                ("c.kill".into(), TaskGoal::Kill),
                ("d.lost".into(), TaskGoal::Kill),
                ("f.other".into(), TaskGoal::Kill),
            ]
        );
    }

    #[test]
    fn a_lost_task_the_agent_no_longer_runs_is_not_listed() {
        let mut lost = task("d.lost", "n1", Resources::default(), TaskState::Lost, &[]);
        lost.goal = TaskGoal::Kill;
        assert!(compute("n1", &[lost], &BTreeMap::new(), |_| false).is_empty());
    }
}
