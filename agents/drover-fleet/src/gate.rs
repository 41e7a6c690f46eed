//! Health gates: pure functions over what the master reports (nodes, tasks, its
//! version), deciding whether an upgraded host passed, is still coming back, or failed.

use drover_api::node::{Node, NodeState};
use drover_api::task::{Task, TaskState};

/// A gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The host is upgraded and healthy.
    Passed,
    /// Not yet; the reason is what is still missing (reported if the wait times out).
    Waiting(String),
    /// It will not pass: roll back.
    Failed(String),
}

/// The version in a binary's `--version` line (`drover-agent 0.1.1` → `0.1.1`).
pub fn version_of(line: &str) -> String {
    line.split_whitespace().last().unwrap_or("").to_string()
}

/// An agent passes when the master lists it registered (ready, or draining when we
/// drained it) on `version`, and every task that ran before still runs with the same
/// pid and is not unhealthy.
pub fn agent_gate(node: Option<&Node>, before: &[Task], now: &[Task], version: &str) -> Gate {
    let Some(node) = node else {
        return Gate::Waiting("the master does not list the node".into());
    };
    if node.state == NodeState::Unreachable {
        return Gate::Waiting("the master marks the node unreachable".into());
    }
    if node.version != version {
        return Gate::Waiting(format!(
            "the node reports version {}, not {version}",
            node.version
        ));
    }
    for t in before {
        let id = &t.spec.id;
        let Some(n) = now.iter().find(|n| &n.spec.id == id) else {
            return Gate::Failed(format!("task {id} is gone"));
        };
        if n.state.is_terminal() {
            return Gate::Failed(format!("task {id} is {} after the restart", n.state));
        }
        if let (Some(a), Some(b)) = (t.pid, n.pid)
            && a != b
        {
            return Gate::Failed(format!("task {id} was restarted (pid {a} -> {b})"));
        }
        match n.state {
            TaskState::Running | TaskState::Healthy => {}
            other => return Gate::Waiting(format!("task {id} is {other}")),
        }
    }
    Gate::Passed
}

/// A master passes when it answers with `version` and every agent registered before its
/// restart is registered again.
pub fn master_gate(
    answered: Option<&str>,
    version: &str,
    agents_before: &[String],
    nodes: &[Node],
) -> Gate {
    match answered {
        None => return Gate::Waiting("the master does not answer".into()),
        Some(v) if v != version => {
            return Gate::Waiting(format!(
                "the master answers with version {v}, not {version}"
            ));
        }
        Some(_) => {}
    }
    let missing: Vec<&String> = agents_before
        .iter()
        .filter(|a| {
            !nodes
                .iter()
                .any(|n| &n.name == *a && n.state != NodeState::Unreachable)
        })
        .collect();
    if missing.is_empty() {
        Gate::Passed
    } else {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        Gate::Waiting(format!("agents not back yet: {}", names.join(", ")))
    }
}

/// The nodes that are registered (not unreachable), by name: the agents a master
/// restart must get back.
pub fn registered(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| n.state != NodeState::Unreachable)
        .map(|n| n.name.clone())
        .collect()
}

/// Agents already down (unreachable or not registered) among `agents`, apart from
/// `except`: with the next batch they must stay within `--max-unavailable`.
pub fn down_agents(nodes: &[Node], agents: &[String], except: &[String]) -> Vec<String> {
    agents
        .iter()
        .filter(|a| !except.contains(a))
        .filter(|a| {
            !nodes
                .iter()
                .any(|n| &n.name == *a && n.state != NodeState::Unreachable)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, state: &str, version: &str) -> Node {
        serde_json::from_value(json!({
            "name": name, "state": state, "draining": false, "address": "http://x",
            "version": version, "attributes": {},
            "total": {"cpus": 1.0, "mem": 1.0, "disk": 1.0},
            "reserved": {"cpus": 0.0, "mem": 0.0, "disk": 0.0},
            "allocated": {"cpus": 0.0, "mem": 0.0, "disk": 0.0},
            "free": {"cpus": 1.0, "mem": 1.0, "disk": 1.0},
            "ports": {"begin": 31000, "end": 31100}, "portsAllocated": 0,
            "host": {"hostname": "h", "os": "", "kernel": "", "cpus": 1, "memTotalMb": 1.0,
                     "memAvailableMb": 1.0, "diskTotalMb": 1.0, "diskAvailableMb": 1.0,
                     "loadAvg": [0.0, 0.0, 0.0], "cpuUsagePercent": 0.0},
            "activeTasks": 0,
            "registeredAt": "2026-01-01T00:00:00Z", "lastHeartbeatAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    fn task(id: &str, state: &str, pid: Option<u32>) -> Task {
        let mut t: Task = serde_json::from_value(json!({
            "spec": {"id": id, "node": "a1", "definition": {"name": "t", "cmd": "sleep 1000"}},
            "state": state, "goal": "run",
            "stagedAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        t.pid = pid;
        t
    }

    #[test]
    fn agent_waits_for_version_and_registration() {
        let before = vec![task("t1", "running", Some(10))];
        assert!(matches!(
            agent_gate(None, &before, &[], "2"),
            Gate::Waiting(_)
        ));
        let old = node("a1", "ready", "1");
        assert!(
            matches!(agent_gate(Some(&old), &before, &before, "2"), Gate::Waiting(m) if m.contains("version 1"))
        );
        let gone = node("a1", "unreachable", "2");
        assert!(matches!(
            agent_gate(Some(&gone), &before, &before, "2"),
            Gate::Waiting(_)
        ));
    }

    #[test]
    fn agent_passes_when_tasks_survived() {
        let n = node("a1", "draining", "2");
        let before = vec![
            task("t1", "running", Some(10)),
            task("t2", "healthy", Some(11)),
        ];
        let now = vec![
            task("t1", "running", Some(10)),
            task("t2", "healthy", Some(11)),
        ];
        assert_eq!(agent_gate(Some(&n), &before, &now, "2"), Gate::Passed);
        let unhealthy = vec![
            task("t1", "running", Some(10)),
            task("t2", "unhealthy", Some(11)),
        ];
        assert!(matches!(
            agent_gate(Some(&n), &before, &unhealthy, "2"),
            Gate::Waiting(_)
        ));
    }

    #[test]
    fn agent_fails_when_a_task_died_or_restarted() {
        let n = node("a1", "ready", "2");
        let before = vec![task("t1", "running", Some(10))];
        assert!(matches!(
            agent_gate(Some(&n), &before, &[task("t1", "lost", Some(10))], "2"),
            Gate::Failed(_)
        ));
        assert!(matches!(
            agent_gate(Some(&n), &before, &[], "2"),
            Gate::Failed(_)
        ));
        assert!(matches!(
            agent_gate(Some(&n), &before, &[task("t1", "running", Some(99))], "2"),
            Gate::Failed(m) if m.contains("pid 10 -> 99")
        ));
    }

    #[test]
    fn master_waits_for_its_agents() {
        let nodes = vec![node("a1", "ready", "1"), node("a2", "unreachable", "1")];
        let before = vec!["a1".to_string(), "a2".to_string()];
        assert!(matches!(
            master_gate(None, "2", &before, &nodes),
            Gate::Waiting(_)
        ));
        assert!(matches!(
            master_gate(Some("1"), "2", &before, &nodes),
            Gate::Waiting(_)
        ));
        assert!(
            matches!(master_gate(Some("2"), "2", &before, &nodes), Gate::Waiting(m) if m.contains("a2"))
        );
        assert_eq!(
            master_gate(Some("2"), "2", &before[..1], &nodes),
            Gate::Passed
        );
        assert_eq!(registered(&nodes), vec!["a1".to_string()]);
        assert_eq!(down_agents(&nodes, &before, &[]), vec!["a2".to_string()]);
        assert!(down_agents(&nodes, &before, &["a2".to_string()]).is_empty());
    }

    #[test]
    fn versions_are_the_last_word() {
        assert_eq!(version_of("drover-agent 0.1.1-b\n"), "0.1.1-b");
        assert_eq!(version_of(""), "");
    }
}
