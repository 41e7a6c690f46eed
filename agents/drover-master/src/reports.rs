//! Merging an agent's task reports into the master's tasks: the task state machine as
//! the master applies it, and the adoption of tasks an agent runs that the master does
//! not know. Pure functions; the caller persists what they return.
//!
//! Adopt, not hold, not kill: a task an agent runs that the master has never heard of can
//! only come from a master that lost state (an empty or rolled-back store; task ids are
//! made by the master and agents start nothing else). Killing it, as agents used to,
//! turned a lost store into a fleet-wide outage. Holding it (neither listed nor killed)
//! would keep it alive but invisible: its resources and ports double-booked, the
//! scheduler launching a replacement next to it forever. Adopting it from the spec the
//! agent sends with its registration makes it an ordinary task again: counted against
//! the node, visible to the scheduler, which scales down what is surplus by its usual
//! kills. Tasks the master does know keep their rules: one it has as terminal (lost while
//! its node was away, then replaced) is still killed when the node reports it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use drover_api::event::EventKind;
use drover_api::task::{Task, TaskGoal, TaskReport, TaskSpec};
use drover_api::{TaskId, TaskState};

/// A task as it should be stored after a change, with the event to publish if its
/// state changed.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskChange {
    /// The task after the change.
    pub task: Task,
    /// The state-change event, if the state changed.
    pub event: Option<EventKind>,
}

/// Applies one heartbeat's (or registration's) reports from node `node` to the node's
/// tasks. Terminal tasks never change. A started task the agent no longer reports has
/// been lost by the agent: it fails (or counts as killed when a kill was requested). A
/// staging task the agent has not reported yet stays staging. Returns only the tasks that
/// changed.
pub fn apply<'a>(
    node: &str,
    tasks: impl IntoIterator<Item = &'a Task>,
    reports: &[TaskReport],
    now: DateTime<Utc>,
) -> Vec<TaskChange> {
    let by_id: BTreeMap<&TaskId, &TaskReport> = reports.iter().map(|r| (&r.id, r)).collect();
    let mut out = Vec::new();
    for t in tasks
        .into_iter()
        .filter(|t| t.spec.node == node && t.state.is_active())
    {
        let change = match by_id.get(t.id()) {
            Some(r) => merge(t, r, now),
            None if t.state.is_started() => {
                let (to, message) = match t.goal {
                    TaskGoal::Kill => (
                        TaskState::Killed,
                        format!("killed: the agent on node {node:?} no longer runs it"),
                    ),
                    TaskGoal::Run => (
                        TaskState::Failed,
                        format!(
                            "the agent on node {node:?} lost this task: it no longer reports it"
                        ),
                    ),
                };
                Some(transition(t, to, Some(message), now))
            }
            None => None,
        };
        out.extend(change);
    }
    out
}

/// The tasks node `node` reports active that `known` (every id the master has, on any
/// node and in any state) lacks, built from the specs the agent sent: each becomes a task
/// of `node` in the reported state with goal Run. A report without a spec is left out
/// (the task keeps running unlisted until a registration brings its spec), and so is one
/// whose spec this version would not accept (an id or definition that fails validation,
/// e.g. under a newer resource floor): it is not adopted, but the registration is not
/// refused either, because refusing it would cut the whole node off.
pub fn adopt(
    node: &str,
    known: impl Fn(&TaskId) -> bool,
    reports: &[TaskReport],
    specs: &[TaskSpec],
    now: DateTime<Utc>,
) -> Vec<TaskChange> {
    let specs: BTreeMap<&TaskId, &TaskSpec> = specs.iter().map(|s| (&s.id, s)).collect();
    let mut out = Vec::new();
    for r in reports
        .iter()
        .filter(|r| r.state.is_active() && !known(&r.id))
    {
        let Some(spec) = specs.get(&r.id) else {
            continue;
        };
        if spec.id.validate().is_err() || spec.definition.validate("").is_err() {
            continue;
        }
        let message = format!(
            "adopted from node {node:?}, which runs it: the master had no record of it (its store was new or older than the node's tasks)"
        );
        let task = Task {
            spec: TaskSpec {
                node: node.to_string(),
                ..(*spec).clone()
            },
            state: r.state,
            goal: TaskGoal::Run,
            pid: r.pid,
            exit: None,
            message: Some(message.clone()),
            health: r.health.clone(),
            staged_at: r.started_at.unwrap_or(now),
            started_at: r.started_at.or((r.state.is_started()).then_some(now)),
            finished_at: None,
            updated_at: now,
        };
        out.push(TaskChange {
            event: Some(EventKind::TaskState {
                task: r.id.clone(),
                node: node.to_string(),
                from: None,
                to: r.state,
                message: Some(message),
            }),
            task,
        });
    }
    out
}

/// Merges one report into a task; `None` when nothing changed.
pub fn merge(t: &Task, r: &TaskReport, now: DateTime<Utc>) -> Option<TaskChange> {
    if t.state.is_terminal() {
        return None;
    }
    let mut next = t.clone();
    if r.pid.is_some() {
        next.pid = r.pid;
    }
    if r.exit.is_some() {
        next.exit = r.exit;
    }
    if r.message.is_some() {
        next.message = r.message.clone();
    }
    if r.health.is_some() {
        next.health = r.health.clone();
    }
    if r.started_at.is_some() {
        next.started_at = r.started_at;
    }
    let mut event = None;
    if t.state.can_transition_to(r.state) {
        next.state = r.state;
        if r.state.is_started() && next.started_at.is_none() {
            next.started_at = Some(now);
        }
        if r.state.is_terminal() {
            next.finished_at = Some(r.finished_at.unwrap_or(now));
        }
        event = Some(EventKind::TaskState {
            task: t.id().clone(),
            node: t.spec.node.clone(),
            from: Some(t.state),
            to: r.state,
            message: r.message.clone(),
        });
    }
    if next == *t {
        return None;
    }
    next.updated_at = now;
    Some(TaskChange { task: next, event })
}

/// Moves an active task to `to` (a terminal state here), with an event.
pub fn transition(
    t: &Task,
    to: TaskState,
    message: Option<String>,
    now: DateTime<Utc>,
) -> TaskChange {
    let mut next = t.clone();
    next.state = to;
    if message.is_some() {
        next.message = message.clone();
    }
    if to.is_terminal() {
        next.finished_at = Some(now);
    }
    next.updated_at = now;
    TaskChange {
        event: Some(EventKind::TaskState {
            task: t.id().clone(),
            node: t.spec.node.clone(),
            from: Some(t.state),
            to,
            message,
        }),
        task: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{t0, task};
    use drover_api::Resources;
    use drover_api::task::ExitStatus;

    fn report(id: &str, state: TaskState) -> TaskReport {
        TaskReport {
            id: TaskId::from(id),
            state,
            pid: Some(42),
            exit: None,
            message: None,
            started_at: None,
            finished_at: None,
            health: None,
        }
    }

    #[test]
    fn staging_to_running_to_finished() {
        let t = task("a", "n1", Resources::default(), TaskState::Staging, &[]);
        let c = merge(&t, &report("a", TaskState::Running), t0()).unwrap();
        assert_eq!(c.task.state, TaskState::Running);
        assert_eq!(c.task.pid, Some(42));
        assert_eq!(c.task.started_at, Some(t0()));
        assert!(matches!(
            c.event,
            Some(EventKind::TaskState {
                from: Some(TaskState::Staging),
                to: TaskState::Running,
                ..
            })
        ));
        // The same report again changes nothing.
        assert_eq!(merge(&c.task, &report("a", TaskState::Running), t0()), None);
        let mut done = report("a", TaskState::Finished);
        done.exit = Some(ExitStatus {
            code: Some(0),
            signal: None,
        });
        let c = merge(&c.task, &done, t0()).unwrap();
        assert_eq!(c.task.state, TaskState::Finished);
        assert_eq!(c.task.finished_at, Some(t0()));
        assert_eq!(c.task.exit.map(|e| e.success()), Some(true));
    }

    #[test]
    fn terminal_states_never_change_and_staging_is_never_re_entered() {
        for s in [
            TaskState::Finished,
            TaskState::Failed,
            TaskState::Killed,
            TaskState::Lost,
        ] {
            let t = task("a", "n1", Resources::default(), s, &[]);
            assert_eq!(
                merge(&t, &report("a", TaskState::Running), t0()),
                None,
                "{s}"
            );
        }
        let t = task("a", "n1", Resources::default(), TaskState::Running, &[]);
        // A late "staging" report updates the pid but not the state.
        let c = merge(&t, &report("a", TaskState::Staging), t0()).unwrap();
        assert_eq!(c.task.state, TaskState::Running);
        assert_eq!(c.event, None);
    }

    #[test]
    fn unreported_started_tasks_fail_unreported_staging_tasks_wait() {
        let run = task("a", "n1", Resources::default(), TaskState::Running, &[]);
        let staging = task("b", "n1", Resources::default(), TaskState::Staging, &[]);
        let mut killing = task("c", "n1", Resources::default(), TaskState::Healthy, &[]);
        killing.goal = TaskGoal::Kill;
        let elsewhere = task("d", "n2", Resources::default(), TaskState::Running, &[]);
        let changes = apply("n1", &[run, staging, killing, elsewhere], &[], t0());
        let got: Vec<(String, TaskState)> = changes
            .iter()
            .map(|c| (c.task.id().to_string(), c.task.state))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), TaskState::Failed),
                ("c".into(), TaskState::Killed)
            ]
        );
        assert!(
            changes[0]
                .task
                .message
                .as_deref()
                .unwrap_or("")
                .contains("lost this task")
        );
    }

    fn spec_of(id: &str, node: &str) -> TaskSpec {
        task(
            id,
            node,
            Resources::new(0.5, 32.0, 0.0),
            TaskState::Staging,
            &[31005],
        )
        .spec
    }

    #[test]
    fn unknown_active_tasks_are_adopted_known_and_ended_ones_are_not() {
        let known = [TaskId::from("known")];
        let mut unhealthy = report("sick", TaskState::Unhealthy);
        unhealthy.started_at = Some(t0() - chrono::Duration::hours(1));
        let reports = [
            report("orphan", TaskState::Running),
            unhealthy,
            report("known", TaskState::Running),
            report("ended", TaskState::Finished),
            report("no-spec", TaskState::Running),
            report("bad-spec", TaskState::Running),
        ];
        let mut bad = spec_of("bad-spec", "n1");
        bad.definition.resources.cpus = -1.0;
        // A spec naming another node is adopted on the node that runs it.
        let specs = [
            spec_of("orphan", "n1"),
            spec_of("sick", "elsewhere"),
            spec_of("known", "n1"),
            spec_of("ended", "n1"),
            bad,
        ];
        let got = adopt("n1", |id| known.contains(id), &reports, &specs, t0());
        let summary: Vec<(String, String, TaskState, TaskGoal)> = got
            .iter()
            .map(|c| {
                (
                    c.task.id().to_string(),
                    c.task.spec.node.clone(),
                    c.task.state,
                    c.task.goal,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "orphan".into(),
                    "n1".into(),
                    TaskState::Running,
                    TaskGoal::Run
                ),
                (
                    "sick".into(),
                    "n1".into(),
                    TaskState::Unhealthy,
                    TaskGoal::Run
                ),
            ]
        );
        let orphan = &got[0].task;
        assert_eq!(orphan.pid, Some(42));
        assert_eq!(orphan.spec.host_ports, vec![31005]);
        assert_eq!(orphan.spec.definition.resources.cpus, 0.5);
        assert!(orphan.message.as_deref().unwrap_or("").contains("adopted"));
        assert_eq!(
            got[1].task.started_at,
            Some(t0() - chrono::Duration::hours(1))
        );
        assert!(matches!(
            got[0].event,
            Some(EventKind::TaskState {
                from: None,
                to: TaskState::Running,
                ..
            })
        ));
    }

    #[test]
    fn kill_then_agent_reports_killed() {
        let mut t = task("a", "n1", Resources::default(), TaskState::Running, &[]);
        t.goal = TaskGoal::Kill;
        let mut r = report("a", TaskState::Killed);
        r.exit = Some(ExitStatus {
            code: None,
            signal: Some(15),
        });
        let c = apply("n1", &[t], &[r], t0());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].task.state, TaskState::Killed);
    }
}
