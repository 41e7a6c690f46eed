//! The master's in-memory state and its decisions. Every `plan_*` method is a pure
//! function of the state, the request and the `now` it is given; it returns the
//! [`Changes`] to persist and apply (see [`crate::master`]), or the refusal.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_api::agent::{HeartbeatRequest, RegisterRequest, TaskAssignment};
use drover_api::event::EventKind;
use drover_api::task::{LaunchRequest, Task, TaskGoal, TaskReport, TaskSpec};
use drover_api::{ApiError, ErrorCode, TaskId, TaskState};
use drover_service::retention::{Record, Retention, expired};

use crate::failure;
use crate::ledger;
use crate::model::NodeRecord;
use crate::reports::{self, TaskChange};

/// One node: its record and what the master knows about it only while running.
#[derive(Debug)]
pub struct NodeEntry {
    /// The record (persisted, apart from the live host facts and heartbeat time).
    pub record: NodeRecord,
    /// When the master last heard from the node (monotonic; after a restart, the load time).
    pub last_seen: Instant,
    /// The task states the agent last reported.
    pub reported: BTreeMap<TaskId, TaskState>,
    /// Bumped whenever `assignments` changes; half of the revision token.
    pub revision: u64,
    /// The node's assignments as last computed.
    pub assignments: Vec<TaskAssignment>,
    /// Wakes the node's long polls; the master sends the new revision on every bump,
    /// long polls hold receivers, and the sender lives as long as the node entry.
    pub wake: tokio::sync::watch::Sender<u64>,
    /// Whether the agent registered with this master process (not just loaded from the
    /// store): until it has, a heartbeat reporting tasks the master does not know asks
    /// it to register, so that the registration's specs let the master adopt them.
    pub registered_here: bool,
}

impl NodeEntry {
    /// A node entry last heard from at `seen`.
    pub fn new(record: NodeRecord, seen: Instant) -> Self {
        NodeEntry {
            record,
            last_seen: seen,
            reported: BTreeMap::new(),
            revision: 0,
            assignments: Vec::new(),
            wake: tokio::sync::watch::Sender::new(0),
            registered_here: false,
        }
    }
}

/// Everything the master tracks.
#[derive(Debug, Default)]
pub struct State {
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeEntry>,
    /// Tasks by id, terminal ones included (history, pruned under the retention policy).
    pub tasks: BTreeMap<TaskId, Task>,
    /// Task ids by node, for the per-node questions.
    by_node: BTreeMap<String, BTreeSet<TaskId>>,
}

/// A set of changes to persist together, then apply and publish.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// Node records to write.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Tasks to write.
    pub tasks: BTreeMap<TaskId, Task>,
    /// Events to publish once written, in order.
    pub events: Vec<EventKind>,
}

impl Changes {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.tasks.is_empty() && self.events.is_empty()
    }

    fn task(&mut self, c: TaskChange) {
        self.events.extend(c.event);
        self.tasks.insert(c.task.id().clone(), c.task);
    }
}

/// Whether a node takes new tasks: draining stops placements on it (its tasks keep
/// running), activating lets them in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Refuse new placements on the node.
    Start,
    /// Accept placements on the node again.
    Stop,
}

impl Drain {
    /// Whether the node is draining once this is applied.
    pub fn draining(self) -> bool {
        self == Drain::Start
    }
}

/// The outcome of a launch request.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// The same task was already accepted (an idempotent retry): answer it as it is.
    Existing(Box<Task>),
    /// A new task: persist the changes, then answer the task.
    New(Box<Task>, Changes),
}

impl State {
    /// Builds the state from stored records; every node counts as heard from at `seen`,
    /// so agents get one timeout to come back after a master restart.
    pub fn load(nodes: Vec<NodeRecord>, tasks: Vec<Task>, seen: Instant) -> State {
        let mut state = State::default();
        for n in nodes {
            state.nodes.insert(n.name.clone(), NodeEntry::new(n, seen));
        }
        for t in tasks {
            state.put_task(t);
        }
        state
    }

    /// Inserts or replaces a task, keeping the node index.
    pub fn put_task(&mut self, t: Task) {
        self.by_node
            .entry(t.spec.node.clone())
            .or_default()
            .insert(t.id().clone());
        self.tasks.insert(t.id().clone(), t);
    }

    /// Removes a task, keeping the node index.
    pub fn remove_task(&mut self, id: &TaskId) -> Option<Task> {
        let t = self.tasks.remove(id)?;
        if let Some(ids) = self.by_node.get_mut(&t.spec.node) {
            ids.remove(id);
        }
        Some(t)
    }

    /// The tasks of a node, any state, by id.
    pub fn node_tasks<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a Task> + Clone + 'a {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
    }

    fn node(&self, name: &str, field: &str) -> Result<&NodeEntry, ApiError> {
        self.nodes.get(name).ok_or_else(|| ApiError {
            code: ErrorCode::NotFound,
            message: format!("node {name:?} not found"),
            field: Some(field.to_string()),
        })
    }

    /// The public view of a node.
    pub fn node_view(&self, name: &str) -> Option<drover_api::node::Node> {
        self.nodes
            .get(name)
            .map(|n| n.record.view(self.node_tasks(name)))
    }

    /// Accepts or refuses a placement. `new_id` makes an id from the definition's name
    /// when the caller gave none.
    pub fn plan_launch(
        &self,
        req: LaunchRequest,
        now: DateTime<Utc>,
        new_id: impl FnOnce(&str) -> TaskId,
    ) -> Result<Launch, ApiError> {
        req.task.validate("task.")?;
        if let Some(id) = &req.id {
            id.validate()?;
        }
        let node = &self.node(&req.node, "node")?.record;
        if let Some(existing) = req.id.as_ref().and_then(|id| self.tasks.get(id)) {
            if existing.spec.node == req.node && existing.spec.definition == req.task {
                return Ok(Launch::Existing(Box::new(existing.clone())));
            }
            return Err(ApiError {
                code: ErrorCode::AlreadyExists,
                message: format!(
                    "task id {:?} is already taken by a task on node {:?}{}",
                    existing.id().as_str(),
                    existing.spec.node,
                    if existing.spec.node == req.node {
                        " with a different definition"
                    } else {
                        ""
                    }
                ),
                field: Some("id".into()),
            });
        }
        let host_ports = ledger::place(node, self.node_tasks(&req.node), &req.task)?;
        let id = match req.id {
            Some(id) => id,
            None => new_id(&req.task.name),
        };
        let task = Task::staging(
            TaskSpec {
                id: id.clone(),
                node: req.node.clone(),
                definition: req.task,
                host_ports,
            },
            now,
        );
        let mut changes = Changes::default();
        changes.events.push(EventKind::TaskState {
            task: id,
            node: req.node,
            from: None,
            to: TaskState::Staging,
            message: None,
        });
        changes.tasks.insert(task.id().clone(), task.clone());
        Ok(Launch::New(Box::new(task), changes))
    }

    /// A kill request. Unknown: not found; terminal: conflict; already being killed:
    /// no change. A staging task the agent has not reported yet is killed at once (if
    /// the agent started it meanwhile, it reports a task the master has as terminal and
    /// is told to kill it); any other gets goal Kill and waits for the agent.
    pub fn plan_kill(&self, id: &TaskId, now: DateTime<Utc>) -> Result<(Task, Changes), ApiError> {
        id.validate()?;
        let t = self
            .tasks
            .get(id)
            .ok_or_else(|| ApiError::not_found("task", id.as_str()))?;
        if t.state.is_terminal() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "task {:?} is already {}: there is nothing to kill",
                    id.as_str(),
                    t.state
                ),
            ));
        }
        let mut changes = Changes::default();
        if t.goal == TaskGoal::Kill {
            return Ok((t.clone(), changes));
        }
        changes.events.push(EventKind::TaskKillRequested {
            task: id.clone(),
            node: t.spec.node.clone(),
        });
        let reported = self
            .nodes
            .get(&t.spec.node)
            .is_some_and(|n| n.reported.contains_key(id));
        let mut next = if t.state == TaskState::Staging && !reported {
            let c = reports::transition(
                t,
                TaskState::Killed,
                Some("killed before it started".into()),
                now,
            );
            changes.events.extend(c.event);
            c.task
        } else {
            let mut next = t.clone();
            next.updated_at = now;
            next
        };
        next.goal = TaskGoal::Kill;
        changes.tasks.insert(id.clone(), next.clone());
        Ok((next, changes))
    }

    /// Drains or activates a node.
    pub fn plan_drain(&self, name: &str, drain: Drain) -> Result<(NodeRecord, Changes), ApiError> {
        let drain = drain.draining();
        let node = &self.node(name, "name")?.record;
        let mut changes = Changes::default();
        if node.draining == drain {
            return Ok((node.clone(), changes));
        }
        let mut next = node.clone();
        next.draining = drain;
        if next.state() != node.state() {
            changes.events.push(EventKind::NodeState {
                node: name.to_string(),
                from: node.state(),
                to: next.state(),
            });
        }
        changes.nodes.insert(name.to_string(), next.clone());
        Ok((next, changes))
    }

    /// A (re-)registration: the node record (keeping its first registration time and
    /// drain flag), back from unreachable if it was, its reports applied, and the active
    /// tasks it reports that the master does not know adopted (see [`reports::adopt`]).
    pub fn plan_register(
        &self,
        req: &RegisterRequest,
        now: DateTime<Utc>,
    ) -> Result<Changes, ApiError> {
        validate_register(req)?;
        let mut changes = Changes::default();
        let old = self.nodes.get(&req.name).map(|n| &n.record);
        let record = NodeRecord {
            name: req.name.clone(),
            address: req.address.clone(),
            version: req.version.clone(),
            attributes: req.attributes.clone(),
            capabilities: req.capabilities.clone(),
            total: req.total,
            reserved: req.reserved,
            ports: req.ports,
            max_tasks: req.max_tasks,
            host: req.host.clone(),
            draining: old.is_some_and(|o| o.draining),
            unreachable: false,
            registered_at: old.map_or(now, |o| o.registered_at),
            last_heartbeat_at: now,
        };
        changes.events.push(EventKind::NodeRegistered {
            node: req.name.clone(),
            version: req.version.clone(),
        });
        if let Some(old) = old
            && old.state() != record.state()
        {
            changes.events.push(EventKind::NodeState {
                node: req.name.clone(),
                from: old.state(),
                to: record.state(),
            });
        }
        changes.nodes.insert(req.name.clone(), record);
        for c in reports::apply(&req.name, self.node_tasks(&req.name), &req.tasks, now) {
            changes.task(c);
        }
        let known = |id: &TaskId| self.tasks.contains_key(id);
        for c in reports::adopt(&req.name, known, &req.tasks, &req.specs, now) {
            changes.task(c);
        }
        Ok(changes)
    }

    /// A heartbeat: back from unreachable if it was, and its reports applied. `None`
    /// when the node must register: it is unknown, or it has not registered with this
    /// master process and reports active tasks the master does not know (its
    /// registration carries their specs, so they can be adopted).
    pub fn plan_heartbeat(
        &self,
        name: &str,
        req: &HeartbeatRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<Changes>, ApiError> {
        validate_reports(&req.tasks)?;
        let Some(node) = self.nodes.get(name) else {
            return Ok(None);
        };
        if !node.registered_here
            && req
                .tasks
                .iter()
                .any(|r| r.state.is_active() && !self.tasks.contains_key(&r.id))
        {
            return Ok(None);
        }
        let mut changes = Changes::default();
        if let Some((up, event)) = failure::mark_reachable(&node.record) {
            changes.events.push(event);
            changes.nodes.insert(name.to_string(), up);
        }
        for c in reports::apply(name, self.node_tasks(name), &req.tasks, now) {
            changes.task(c);
        }
        Ok(Some(changes))
    }

    /// The nodes whose silence has passed `timeout` at `now`.
    pub fn overdue(&self, now: Instant, timeout: Duration) -> Vec<String> {
        failure::overdue(
            self.nodes.values().map(|n| failure::Liveness {
                name: &n.record.name,
                unreachable: n.record.unreachable,
                last_seen: n.last_seen,
            }),
            now,
            timeout,
        )
    }

    /// Marks a silent node unreachable and its active tasks lost.
    pub fn plan_unreachable(&self, name: &str, now: Instant, wall: DateTime<Utc>) -> Changes {
        let mut changes = Changes::default();
        let Some(node) = self.nodes.get(name) else {
            return changes;
        };
        if node.record.unreachable {
            return changes;
        }
        let silent = now.saturating_duration_since(node.last_seen);
        let (down, event, lost) =
            failure::mark_unreachable(&node.record, self.node_tasks(name), silent, wall);
        changes.events.push(event);
        changes.nodes.insert(name.to_string(), down);
        for c in lost {
            changes.task(c);
        }
        changes
    }

    /// The terminal tasks to forget under `policy` at `now`, oldest first (see
    /// [`drover_service::retention::expired`]); active tasks are always kept.
    pub fn plan_prune(&self, policy: &Retention, now: DateTime<Utc>) -> Vec<TaskId> {
        // By id, so tasks that ended at the same instant go in a stable order; borrowed,
        // as this runs whenever a task ends.
        let records: Vec<Record<&TaskId>> = self
            .tasks
            .values()
            .filter(|t| t.state.is_terminal())
            .map(|t| Record {
                key: t.id(),
                ended: Some(t.finished_at.unwrap_or(t.updated_at)),
            })
            .collect();
        expired(&records, policy, now)
            .into_iter()
            .cloned()
            .collect()
    }
}

/// Checks a node name: what a host name may hold, usable in a URL path and a store key.
pub fn validate_node_name(name: &str, field: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{name:?} is not a valid node name (1-253 of [A-Za-z0-9._-], not starting with '.' or '-')"
            ),
        ))
    }
}

fn validate_register(req: &RegisterRequest) -> Result<(), ApiError> {
    validate_node_name(&req.name, "name")?;
    let addr = req.address.as_str();
    if !(addr.starts_with("http://") || addr.starts_with("https://"))
        || addr.len() > 2048
        || addr.len() <= "http://".len()
    {
        return Err(ApiError::invalid(
            "address",
            format!("{addr:?} is not an http:// or https:// URL"),
        ));
    }
    if req.version.len() > 200 {
        return Err(ApiError::invalid(
            "version",
            "must be at most 200 characters",
        ));
    }
    req.total.validate("total.")?;
    req.reserved.validate("reserved.")?;
    if req.ports.begin == 0 || req.ports.end < req.ports.begin {
        return Err(ApiError::invalid(
            "ports",
            format!("port range {} is empty or starts at 0", req.ports),
        ));
    }
    validate_reports(&req.tasks)
}

fn validate_reports(reports: &[TaskReport]) -> Result<(), ApiError> {
    for (i, r) in reports.iter().enumerate() {
        r.id.validate().map_err(|e| ApiError {
            field: Some(format!("tasks[{i}].id")),
            ..e
        })?;
    }
    Ok(())
}

/// A fresh task id: the name made path-safe, a dot, and a random suffix.
pub fn generate_id(name: &str) -> TaskId {
    TaskId::for_name(name, &uuid::Uuid::new_v4().simple().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, t0, task};
    use drover_api::Resources;
    use drover_api::task::TaskDefinition;

    fn state() -> State {
        State::load(vec![node("n1"), node("n2")], vec![], Instant::now())
    }

    fn req(node: &str, id: Option<&str>, cpus: f64) -> LaunchRequest {
        LaunchRequest {
            node: node.into(),
            id: id.map(TaskId::from),
            task: TaskDefinition {
                name: "web".into(),
                cmd: Some("sleep 9".into()),
                resources: Resources::new(cpus, 10.0, 0.0),
                kill_grace_period_seconds: 5.0,
                ..Default::default()
            },
        }
    }

    fn launch(s: &mut State, r: LaunchRequest) -> Result<Task, ApiError> {
        match s.plan_launch(r, t0(), |n| TaskId(format!("{n}.x{}", s.tasks.len())))? {
            Launch::Existing(t) => Ok(*t),
            Launch::New(t, c) => {
                for t in c.tasks.into_values() {
                    s.put_task(t);
                }
                Ok(*t)
            }
        }
    }

    #[test]
    fn launch_fills_a_node_then_refuses() {
        let mut s = state();
        let mut n = 0;
        while launch(&mut s, req("n1", None, 1.0)).is_ok() {
            n += 1;
        }
        assert_eq!(n, 4);
        let e = launch(&mut s, req("n1", None, 1.0)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientResources);
        let view = s.node_view("n1").unwrap();
        assert_eq!(view.allocated.cpus, 4.0);
        assert_eq!(view.free.cpus, 0.0);
        assert_eq!(view.active_tasks, 4);
    }

    #[test]
    fn launch_errors_name_the_problem() {
        let mut s = state();
        let e = launch(&mut s, req("nope", None, 1.0)).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::NotFound, Some("node"))
        );
        assert!(e.message.contains("nope"));
        let e = launch(&mut s, req("n1", Some("../x"), 1.0)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        let e = launch(&mut s, req("n1", None, f64::NAN)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("task.resources.cpus"));
    }

    #[test]
    fn caller_ids_are_idempotent() {
        let mut s = state();
        let a = launch(&mut s, req("n1", Some("web.1"), 1.0)).unwrap();
        let again = s
            .plan_launch(req("n1", Some("web.1"), 1.0), t0(), |_| {
                TaskId::from("unused")
            })
            .unwrap();
        assert_eq!(again, Launch::Existing(Box::new(a)));
        let e = launch(&mut s, req("n1", Some("web.1"), 2.0)).unwrap_err();
        assert!(e.message.contains("different definition"), "{}", e.message);
        assert_eq!(e.code, ErrorCode::AlreadyExists);
        let e = launch(&mut s, req("n2", Some("web.1"), 1.0)).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::AlreadyExists, Some("id"))
        );
    }

    #[test]
    fn kill_rules() {
        let mut s = state();
        s.put_task(task(
            "run",
            "n1",
            Resources::default(),
            TaskState::Running,
            &[],
        ));
        s.put_task(task(
            "stage",
            "n1",
            Resources::default(),
            TaskState::Staging,
            &[],
        ));
        s.put_task(task(
            "done",
            "n1",
            Resources::default(),
            TaskState::Finished,
            &[],
        ));
        assert_eq!(
            s.plan_kill(&TaskId::from("zzz"), t0()).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            s.plan_kill(&TaskId::from("done"), t0()).unwrap_err().code,
            ErrorCode::Conflict
        );
        assert_eq!(
            s.plan_kill(&TaskId::from("a/b"), t0()).unwrap_err().code,
            ErrorCode::InvalidField
        );
        let (t, c) = s.plan_kill(&TaskId::from("run"), t0()).unwrap();
        assert_eq!((t.state, t.goal), (TaskState::Running, TaskGoal::Kill));
        assert!(matches!(
            c.events[..],
            [EventKind::TaskKillRequested { .. }]
        ));
        s.put_task(t);
        assert!(
            s.plan_kill(&TaskId::from("run"), t0())
                .unwrap()
                .1
                .is_empty(),
            "a second kill changes nothing"
        );
        let (t, c) = s.plan_kill(&TaskId::from("stage"), t0()).unwrap();
        assert_eq!(t.state, TaskState::Killed);
        assert_eq!(c.events.len(), 2);
    }

    #[test]
    fn drain_and_activate() {
        let mut s = state();
        let (n, c) = s.plan_drain("n1", Drain::Start).unwrap();
        assert!(n.draining);
        assert_eq!(c.events.len(), 1);
        s.nodes.get_mut("n1").unwrap().record = n;
        assert!(
            launch(&mut s, req("n1", None, 1.0))
                .unwrap_err()
                .message
                .contains("draining")
        );
        assert!(s.plan_drain("n1", Drain::Start).unwrap().1.is_empty());
        let (n, _) = s.plan_drain("n1", Drain::Stop).unwrap();
        s.nodes.get_mut("n1").unwrap().record = n;
        assert!(launch(&mut s, req("n1", None, 1.0)).is_ok());
        assert_eq!(
            s.plan_drain("zz", Drain::Start).unwrap_err().code,
            ErrorCode::NotFound
        );
    }

    #[test]
    fn prune_keeps_the_newest_terminal_tasks() {
        let mut s = state();
        for i in 0..5 {
            let mut t = task(
                &format!("t{i}"),
                "n1",
                Resources::default(),
                TaskState::Finished,
                &[],
            );
            t.finished_at = Some(t0() + chrono::Duration::seconds(i));
            s.put_task(t);
        }
        s.put_task(task(
            "live",
            "n1",
            Resources::default(),
            TaskState::Running,
            &[],
        ));
        let policy = |count: usize, age: &str| Retention {
            count,
            max_age: age.parse().unwrap(),
        };
        let now = t0() + chrono::Duration::seconds(10);
        assert_eq!(
            s.plan_prune(&policy(3, "0"), now),
            vec![TaskId::from("t0"), TaskId::from("t1")]
        );
        assert!(s.plan_prune(&policy(5, "0"), now).is_empty());
        // Ended at 0..=4 s; a 7 s age at 10 s drops those that ended before 3 s. The
        // running task is never pruned, however old.
        assert_eq!(
            s.plan_prune(&policy(5, "7s"), now),
            vec![TaskId::from("t0"), TaskId::from("t1"), TaskId::from("t2")]
        );
        // Only the newest ended task stays when all are too old.
        assert_eq!(
            s.plan_prune(&policy(5, "1s"), t0() + chrono::Duration::days(1))
                .len(),
            4
        );
    }

    #[test]
    fn generated_ids_are_valid() {
        for name in ["/prod/web", "..x", "a b", "___", "ok.name"] {
            let id = generate_id(name);
            id.validate().unwrap();
        }
        assert!(generate_id("/prod/web").as_str().starts_with("prod_web."));
    }
}
