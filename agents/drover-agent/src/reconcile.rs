//! The agent's reconcile step, pure: the tasks it has and the master's assignments in,
//! the actions that bring the first in line with the second out. Idempotent: applying
//! the actions and reconciling again against the same assignments yields none.
//!
//! Only an explicit `Kill` stops a task. An active task the master does not list is left
//! running: a master that does not list it lost its record (an empty or rolled-back
//! store) and adopts it from the agent's registration, while a task the master knows
//! must go (lost while this node was away and replaced, or placed elsewhere) is listed
//! with goal Kill. Killing what is unlisted turned a master's lost store into every task
//! of the fleet killed.

use std::collections::{BTreeMap, BTreeSet};

use drover_api::TaskId;
use drover_api::agent::TaskAssignment;
use drover_api::task::{TaskGoal, TaskSpec, TaskState};

/// What the reconciler needs to know about one local task.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalTask {
    /// Its id.
    pub id: TaskId,
    /// Its current state.
    pub state: TaskState,
    /// Whether a kill is already under way.
    pub kill_requested: bool,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a task the agent does not have (the runner first checks the disk for a task
    /// that already ran and so must not run twice).
    Launch(TaskSpec),
    /// Stop an active task; the reason ends up in its report.
    Kill {
        /// The task.
        id: TaskId,
        /// Why.
        reason: String,
    },
    /// The master wants a task killed that the agent never had: record it as killed so
    /// the report closes it.
    RecordKilled(TaskSpec),
    /// A terminal task the master no longer lists: its report has been heard; stop sending it.
    Forget(TaskId),
}

/// Why a task is killed when the master asks.
pub const KILL_ASKED: &str = "killed at the master's request";

/// Compares `local` with the master's `wanted` list.
pub fn reconcile(local: &[LocalTask], wanted: &[TaskAssignment]) -> Vec<Action> {
    let mine: BTreeMap<&TaskId, &LocalTask> = local.iter().map(|t| (&t.id, t)).collect();
    let listed: BTreeSet<&TaskId> = wanted.iter().map(|a| &a.spec.id).collect();
    let mut actions = Vec::new();
    for a in wanted {
        match (a.goal, mine.get(&a.spec.id)) {
            (TaskGoal::Run, None) => actions.push(Action::Launch(a.spec.clone())),
            (TaskGoal::Run, Some(_)) => {}
            (TaskGoal::Kill, None) => actions.push(Action::RecordKilled(a.spec.clone())),
            (TaskGoal::Kill, Some(t)) if t.state.is_active() && !t.kill_requested => {
                actions.push(Action::Kill {
                    id: t.id.clone(),
                    reason: KILL_ASKED.to_string(),
                })
            }
            (TaskGoal::Kill, Some(_)) => {}
        }
    }
    for t in local
        .iter()
        .filter(|t| !listed.contains(&t.id) && !t.state.is_active())
    {
        actions.push(Action::Forget(t.id.clone()));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_api::task::TaskDefinition;

    fn spec(id: &str) -> TaskSpec {
        TaskSpec {
            id: id.into(),
            node: "n".into(),
            definition: TaskDefinition {
                name: "t".into(),
                cmd: Some("true".into()),
                ..Default::default()
            },
            host_ports: vec![],
        }
    }
    fn want(id: &str, goal: TaskGoal) -> TaskAssignment {
        TaskAssignment {
            spec: spec(id),
            goal,
        }
    }
    fn have(id: &str, state: TaskState, kill_requested: bool) -> LocalTask {
        LocalTask {
            id: id.into(),
            state,
            kill_requested,
        }
    }

    #[test]
    fn launches_what_it_lacks_and_leaves_what_it_has() {
        let acts = reconcile(
            &[have("a", TaskState::Running, false)],
            &[want("a", TaskGoal::Run), want("b", TaskGoal::Run)],
        );
        assert_eq!(acts, vec![Action::Launch(spec("b"))]);
    }

    #[test]
    fn finished_tasks_are_not_relaunched() {
        let acts = reconcile(
            &[have("a", TaskState::Finished, false)],
            &[want("a", TaskGoal::Run)],
        );
        assert!(acts.is_empty());
    }

    #[test]
    fn kills_once() {
        let wanted = [want("a", TaskGoal::Kill)];
        assert_eq!(
            reconcile(&[have("a", TaskState::Healthy, false)], &wanted),
            vec![Action::Kill {
                id: "a".into(),
                reason: KILL_ASKED.into()
            }]
        );
        assert!(reconcile(&[have("a", TaskState::Healthy, true)], &wanted).is_empty());
        assert!(reconcile(&[have("a", TaskState::Killed, true)], &wanted).is_empty());
        assert_eq!(
            reconcile(&[], &wanted),
            vec![Action::RecordKilled(spec("a"))]
        );
    }

    #[test]
    fn unlisted_active_tasks_keep_running_and_terminal_ones_are_forgotten() {
        let local = [
            have("orphan", TaskState::Running, false),
            have("sick", TaskState::Unhealthy, false),
            have("starting", TaskState::Staging, false),
            have("done", TaskState::Failed, false),
        ];
        // An empty answer (a master with an empty store) kills nothing.
        assert_eq!(reconcile(&local, &[]), vec![Action::Forget("done".into())]);
        // A master that lists some tasks leaves the others alone too, and its explicit
        // kill (a task it replaced elsewhere) is still carried out.
        let acts = reconcile(
            &local,
            &[want("orphan", TaskGoal::Run), want("sick", TaskGoal::Kill)],
        );
        assert_eq!(
            acts,
            vec![
                Action::Kill {
                    id: "sick".into(),
                    reason: KILL_ASKED.into()
                },
                Action::Forget("done".into())
            ]
        );
    }
}
