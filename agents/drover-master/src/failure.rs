//! Failure detection: which nodes have been silent too long, and what marking one
//! unreachable (or hearing from it again) changes. Pure functions; the caller passes
//! the clock in.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_api::TaskState;
use drover_api::event::EventKind;
use drover_api::node::NodeState;
use drover_api::task::{Task, TaskGoal};

use crate::model::NodeRecord;
use crate::reports::{TaskChange, transition};

/// What the detector needs to know about one node.
#[derive(Debug, Clone, Copy)]
pub struct Liveness<'a> {
    /// The node's name.
    pub name: &'a str,
    /// Whether it is already marked unreachable.
    pub unreachable: bool,
    /// When the master last heard from it (monotonic).
    pub last_seen: Instant,
}

/// The nodes not yet unreachable whose last sign of life is more than `timeout` before
/// `now`.
pub fn overdue<'a>(
    nodes: impl IntoIterator<Item = Liveness<'a>>,
    now: Instant,
    timeout: Duration,
) -> Vec<String> {
    nodes
        .into_iter()
        .filter(|n| !n.unreachable && now.saturating_duration_since(n.last_seen) > timeout)
        .map(|n| n.name.to_string())
        .collect()
}

/// Marks `node` unreachable: the node record, the node-state event, and every active
/// task of it lost (goal Kill, so that it is killed if the node comes back running it).
pub fn mark_unreachable<'a>(
    node: &NodeRecord,
    tasks: impl IntoIterator<Item = &'a Task>,
    silent_for: Duration,
    now: DateTime<Utc>,
) -> (NodeRecord, EventKind, Vec<TaskChange>) {
    let mut next = node.clone();
    next.unreachable = true;
    let event = EventKind::NodeState {
        node: node.name.clone(),
        from: node.state(),
        to: NodeState::Unreachable,
    };
    let message = format!(
        "node {:?} is unreachable: no heartbeat for {:.1}s",
        node.name,
        silent_for.as_secs_f64()
    );
    let lost = tasks
        .into_iter()
        .filter(|t| t.spec.node == node.name && t.state.is_active())
        .map(|t| {
            let mut c = transition(t, TaskState::Lost, Some(message.clone()), now);
            c.task.goal = TaskGoal::Kill;
            c
        })
        .collect();
    (next, event, lost)
}

/// The node back from unreachable (ready, or draining if it was draining), with the
/// event; `None` if it was not unreachable.
pub fn mark_reachable(node: &NodeRecord) -> Option<(NodeRecord, EventKind)> {
    if !node.unreachable {
        return None;
    }
    let mut next = node.clone();
    next.unreachable = false;
    let event = EventKind::NodeState {
        node: node.name.clone(),
        from: NodeState::Unreachable,
        to: next.state(),
    };
    Some((next, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, t0, task};
    use drover_api::Resources;

    #[test]
    fn only_silent_reachable_nodes_are_overdue() {
        let base = Instant::now();
        let now = base + Duration::from_secs(10);
        let nodes = [
            Liveness {
                name: "fresh",
                unreachable: false,
                last_seen: base + Duration::from_secs(9),
            },
            Liveness {
                name: "silent",
                unreachable: false,
                last_seen: base + Duration::from_secs(4),
            },
            Liveness {
                name: "edge",
                unreachable: false,
                last_seen: base + Duration::from_secs(5),
            },
            Liveness {
                name: "gone",
                unreachable: true,
                last_seen: base,
            },
            // A heartbeat stamped after `now` (a race with the detector) is not overdue.
            Liveness {
                name: "future",
                unreachable: false,
                last_seen: now + Duration::from_secs(1),
            },
        ];
        assert_eq!(
            overdue(nodes, now, Duration::from_secs(5)),
            vec!["silent".to_string()]
        );
    }

    #[test]
    fn unreachable_loses_active_tasks_and_return_restores_the_state() {
        let mut n = node("n1");
        n.draining = true;
        let r = Resources::default();
        let tasks = [
            task("a", "n1", r, TaskState::Running, &[]),
            task("b", "n1", r, TaskState::Staging, &[]),
            task("c", "n1", r, TaskState::Finished, &[]),
            task("d", "n2", r, TaskState::Running, &[]),
        ];
        let (down, ev, lost) = mark_unreachable(&n, &tasks, Duration::from_secs(6), t0());
        assert_eq!(down.state(), NodeState::Unreachable);
        assert!(matches!(
            ev,
            EventKind::NodeState {
                from: NodeState::Draining,
                to: NodeState::Unreachable,
                ..
            }
        ));
        let ids: Vec<&str> = lost.iter().map(|c| c.task.id().as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(
            lost.iter()
                .all(|c| c.task.state == TaskState::Lost && c.task.goal == TaskGoal::Kill)
        );
        let (up, ev) = mark_reachable(&down).unwrap();
        assert_eq!(up.state(), NodeState::Draining);
        assert!(matches!(
            ev,
            EventKind::NodeState {
                from: NodeState::Unreachable,
                to: NodeState::Draining,
                ..
            }
        ));
        assert!(mark_reachable(&up).is_none());
    }
}
