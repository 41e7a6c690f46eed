//! Health gates: pure functions over what the master reports (nodes, tasks, its
//! version), deciding whether an upgraded host passed, is still coming back, or failed.

use drover_api::meta::Health;
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

/// Why a server is not ready for work: its `/health` says so, or cannot be read (no
/// answer is no evidence of health); `None` when it says `ok`.
pub fn health_problem<E: std::fmt::Display>(health: Result<&Health, E>) -> Option<String> {
    match health {
        Ok(h) if h.status == "ok" => None,
        Ok(h) => Some(h.message.clone().unwrap_or_else(|| h.status.clone())),
        Err(e) => Some(format!("its /health cannot be read: {e}")),
    }
}

/// A master passes when it answers with `version`, is healthy (`unhealthy` is
/// [`health_problem`]'s answer), and every agent registered before its restart is
/// registered again; `nodes` is what reading its nodes gave (a failed read waits: the
/// agents cannot be seen).
pub fn master_gate<E: std::fmt::Display>(
    answered: Option<&str>,
    unhealthy: Option<&str>,
    version: &str,
    agents_before: &[String],
    nodes: Result<&[Node], E>,
) -> Gate {
    let Some(answered) = answered else {
        return Gate::Waiting("the master does not answer".into());
    };
    if let Some(why) = unhealthy {
        return Gate::Waiting(format!("the master is not healthy: {why}"));
    }
    if answered != version {
        return Gate::Waiting(format!(
            "the master answers with version {answered}, not {version}"
        ));
    }
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(e) => return Gate::Waiting(format!("cannot read the master's nodes: {e}")),
    };
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

/// The agents a master's restart must get back: those registered when its nodes were
/// read before the restart. A failed read refuses the step, since the restart could not
/// be checked, except on a first install, where no master answers yet.
pub fn agents_to_get_back<E: std::fmt::Display>(
    nodes: Result<&[Node], E>,
    first_install: bool,
) -> Result<Vec<String>, String> {
    match nodes {
        Ok(nodes) => Ok(registered(nodes)),
        Err(_) if first_install => Ok(Vec::new()),
        Err(e) => Err(format!(
            "cannot read the master's nodes before its restart, so nothing was changed: {e}"
        )),
    }
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

/// Whether the next batch may take its agents down under `--max-unavailable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit: the batch may start.
    Start,
    /// The agents already down (named) and the batch's together would exceed the limit.
    OverLimit {
        /// The agents already down, apart from the batch's.
        down: Vec<String>,
    },
    /// The master's nodes could not be read, so which agents are down is unknown: the
    /// batch must not start (a master that does not answer is no evidence that every
    /// agent is up).
    MasterUnreadable(String),
}

/// Decides whether a batch taking `in_batch` down may start, given what reading the
/// master's nodes gave: the agents already down among `agents` (the inventory's) plus the
/// batch's must stay within `max`.
pub fn admit<E: std::fmt::Display>(
    nodes: Result<&[Node], E>,
    agents: &[String],
    in_batch: &[String],
    max: usize,
) -> Admission {
    let nodes = match nodes {
        Ok(nodes) => nodes,
        Err(e) => return Admission::MasterUnreadable(e.to_string()),
    };
    let down = down_agents(nodes, agents, in_batch);
    if down.len() + in_batch.len() > max {
        Admission::OverLimit { down }
    } else {
        Admission::Start
    }
}

impl Admission {
    /// Why the rollout halts before batch `batch` (1-based) of `batch_len` hosts, or
    /// `None` when it may start. `master` is the master's URL.
    pub fn halt_reason(
        &self,
        batch: usize,
        batch_len: usize,
        max: usize,
        master: &str,
    ) -> Option<String> {
        match self {
            Admission::Start => None,
            Admission::OverLimit { down } => Some(format!(
                "batch {batch} would put {batch_len} agents down with {} already down ({}), over --max-unavailable {max}",
                down.len(),
                down.join(", ")
            )),
            Admission::MasterUnreadable(error) => Some(format!(
                "batch {batch} was not started: cannot read the nodes at the master {master} to check --max-unavailable {max}: {error}"
            )),
        }
    }
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
        let read = Ok::<_, &str>(&nodes[..]);
        assert!(matches!(
            master_gate(None, None, "2", &before, read),
            Gate::Waiting(_)
        ));
        assert!(matches!(
            master_gate(Some("1"), None, "2", &before, read),
            Gate::Waiting(_)
        ));
        assert!(
            matches!(master_gate(Some("2"), None, "2", &before, read), Gate::Waiting(m) if m.contains("a2"))
        );
        assert_eq!(
            master_gate(Some("2"), None, "2", &before[..1], read),
            Gate::Passed
        );
        assert_eq!(registered(&nodes), vec!["a1".to_string()]);
        assert_eq!(
            agents_to_get_back(Ok::<_, &str>(&nodes[..]), false),
            Ok(vec!["a1".to_string()])
        );
        assert_eq!(
            agents_to_get_back(Err::<&[Node], _>("refused"), true),
            Ok(Vec::new())
        );
        assert!(
            agents_to_get_back(Err::<&[Node], _>("refused"), false)
                .is_err_and(|e| e.contains("nothing was changed") && e.contains("refused"))
        );
        assert_eq!(down_agents(&nodes, &before, &[]), vec!["a2".to_string()]);
        assert!(down_agents(&nodes, &before, &["a2".to_string()]).is_empty());
    }

    #[test]
    fn a_master_whose_health_or_nodes_cannot_be_read_does_not_pass() {
        let nodes = [node("a1", "ready", "2")];
        // With no agent to wait for, only the reads themselves can hold it back.
        let unread = master_gate(Some("2"), None, "2", &[], Err::<&[Node], _>("timed out"));
        assert!(
            matches!(&unread, Gate::Waiting(m) if m.contains("nodes") && m.contains("timed out")),
            "{unread:?}"
        );
        let sick = Health {
            status: "unavailable".into(),
            message: Some("the store cannot write".into()),
        };
        assert_eq!(
            health_problem(Ok::<_, &str>(&sick)).as_deref(),
            Some("the store cannot write")
        );
        assert_eq!(health_problem(Ok::<_, &str>(&Health::ok())), None);
        let unknown = health_problem(Err::<&Health, _>("connection reset"));
        assert!(
            unknown
                .as_deref()
                .is_some_and(|m| m.contains("/health") && m.contains("connection reset")),
            "{unknown:?}"
        );
        assert!(matches!(
            master_gate(Some("2"), unknown.as_deref(), "2", &[], Ok::<_, &str>(&nodes[..])),
            Gate::Waiting(m) if m.contains("not healthy") && m.contains("connection reset")
        ));
        assert_eq!(
            master_gate(
                Some("2"),
                None,
                "2",
                &["a1".to_string()],
                Ok::<_, &str>(&nodes[..])
            ),
            Gate::Passed
        );
    }

    #[test]
    fn a_batch_starts_only_within_max_unavailable() {
        let nodes = vec![
            node("a1", "ready", "1"),
            node("a2", "ready", "1"),
            node("a3", "unreachable", "1"),
        ];
        let agents: Vec<String> = ["a1", "a2", "a3", "a4"].map(String::from).to_vec();
        let batch = vec!["a1".to_string()];
        // a3 is unreachable and a4 not registered: both count.
        assert_eq!(
            admit(Ok::<_, &str>(&nodes), &agents, &batch, 3),
            Admission::Start
        );
        let over = admit(Ok::<_, &str>(&nodes), &agents, &batch, 2);
        assert_eq!(
            over,
            Admission::OverLimit {
                down: vec!["a3".to_string(), "a4".to_string()]
            }
        );
        let why = over.halt_reason(2, 1, 2, "http://m:5050").unwrap();
        assert!(
            why.contains("batch 2")
                && why.contains("a3, a4")
                && why.contains("--max-unavailable 2"),
            "{why}"
        );
        assert_eq!(Admission::Start.halt_reason(1, 1, 1, "http://m:5050"), None);
    }

    #[test]
    fn a_master_that_cannot_be_read_stops_the_batch() {
        let agents = vec!["a1".to_string(), "a2".to_string()];
        let batch = vec!["a1".to_string()];
        // Even with room for every agent: nothing is known about them.
        let unread = admit(
            Err::<&[Node], _>("connection refused"),
            &agents,
            &batch,
            100,
        );
        assert_eq!(
            unread,
            Admission::MasterUnreadable("connection refused".into())
        );
        let why = unread
            .halt_reason(3, 1, 100, "http://10.0.0.1:5050")
            .unwrap();
        assert!(
            why.contains("batch 3")
                && why.contains("http://10.0.0.1:5050")
                && why.contains("connection refused")
                && why.contains("--max-unavailable 100"),
            "{why}"
        );
    }

    #[test]
    fn versions_are_the_last_word() {
        assert_eq!(version_of("drover-agent 0.1.1-b\n"), "0.1.1-b");
        assert_eq!(version_of(""), "");
    }
}
