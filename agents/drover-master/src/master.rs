//! The master's core: the state behind one lock, the store it writes through to, and
//! the event bus. Each write plans with a pure `State::plan_*`, applies the changes in
//! memory and queues their store batch under the lock, then waits outside the lock
//! until the batch is durable, and only then answers, publishes its events and hands
//! the tasks it created to their nodes' assignments (waking their long polls).
//!
//! Why memory first and the fsync outside the lock, and why nothing accepted is lost:
//! holding the lock across every fsync made each write wait for the one before it
//! (about 250 launches/s); now the store's group commit turns the batches of concurrent
//! operations into one fsync.
//! - Order: batches are queued under the lock, so the store applies them in the order
//!   the changes were made in memory, and a batch is durable only together with every
//!   batch queued before it. An operation planned on top of an earlier one's in-flight
//!   change is therefore answered only once that change is durable too.
//! - Persisted before answered: every write answers after its batch is durable; one
//!   that changes nothing while batches are in flight (an idempotent launch retry of a
//!   task still in flight) waits for an empty batch queued behind them.
//! - Out to agents and watchers once durable: a task created by a batch not yet durable
//!   is left out of its node's assignments, and events are published in order once
//!   their batch is durable, so no agent starts a task that a restart would forget.
//!   Changes to existing tasks (a kill, a state the agent itself reported) go out at
//!   once: after any restart the agent's reports reconcile them. Reads (`GET`) may show
//!   an in-flight change whose writer has not been answered yet.
//! - A failed commit (a full disk, an I/O error) leaves memory ahead of disk: from then
//!   on every write is refused with 503 naming the cause, and once the store takes
//!   writes again (it reopens itself) [`Master::recover`] reloads the state from it and
//!   writes resume, without a restart. Agents keep reporting what they ran meanwhile, so
//!   exits and kills of that time are recorded then. While the store is down, a write
//!   is refused before anything changes in memory.
//!
//! Operations that write block until their batch is durable; the HTTP layer runs them
//! on the blocking pool.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drover_api::agent::{
    ClusterInfo, HeartbeatRequest, HeartbeatResponse, NodeAssignments, RegisterRequest,
    RegisterResponse,
};
use drover_api::event::{Event, EventKind};
use drover_api::node::{Node, NodeState};
use drover_api::task::{LaunchOutcome, LaunchRequest, MAX_LAUNCH_BATCH, Task, TaskFilter};
use drover_api::{ApiError, ErrorCode, TaskId, TaskState};
use drover_service::retention::Retention;
use drover_store::{Op, PendingWrite, Store, StoreExt};

use crate::assignments;
use crate::events::EventBus;
use crate::model::{NODE_PREFIX, NodeRecord, TASK_PREFIX, node_key, task_key};
pub use crate::state::Drain;
use crate::state::{Changes, Launch, NodeEntry, State, generate_id, validate_node_name};

/// A launch the master accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Launched {
    /// A new task, now durable.
    Created(Task),
    /// A retry of a launch already accepted: the task as it is now.
    Existing(Task),
}

impl Launched {
    /// The task, new or existing.
    pub fn into_task(self) -> Task {
        match self {
            Launched::Created(task) | Launched::Existing(task) => task,
        }
    }
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How often agents should heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which a node is unreachable.
    pub heartbeat_timeout: Duration,
    /// Which terminal tasks to keep as history.
    pub task_history: Retention,
    /// The cluster this master serves (see [`crate::cluster`]).
    pub cluster: ClusterInfo,
}

/// Why the core could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The stored state could not be read.
    #[error("failed to load the master's state from the store")]
    Load(#[source] drover_store::StoreError),
}

/// The master's state, store and event bus.
pub struct Master {
    core: Mutex<Core>,
    store: Box<dyn Store>,
    events: EventBus,
    /// Random per process, so a revision token from before a restart never matches.
    epoch: String,
    config: CoreConfig,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("epoch", &self.epoch)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The state and what is in flight to the store, behind one lock.
struct Core {
    state: State,
    inflight: InFlight,
}

impl Deref for Core {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Core {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

/// Batches queued to the store and not yet known durable.
#[derive(Debug, Default)]
struct InFlight {
    next_seq: u64,
    /// What waits for each queued batch, oldest first.
    staged: VecDeque<Staged>,
    /// Tasks created by a batch not yet durable: kept out of their nodes' assignments.
    unsettled: HashSet<TaskId>,
    /// Why a commit failed; from then on every write is refused until the state is
    /// reloaded from the recovered store.
    failed: Option<String>,
}

/// What a queued batch releases once it is durable.
#[derive(Debug)]
struct Staged {
    seq: u64,
    events: Vec<EventKind>,
    now: DateTime<Utc>,
    created: Vec<TaskId>,
    /// The nodes of the created tasks, whose assignments change once they are durable.
    nodes: BTreeSet<String>,
}

/// A queued batch an operation waits for (outside the lock) before it answers.
#[must_use = "an operation answers only after its batch is durable"]
struct Ticket {
    /// The staged entry it releases (with every one before it).
    seq: u64,
    pending: PendingWrite,
}

fn persist_error(e: drover_store::StoreError) -> ApiError {
    tracing::error!("store write failed: {e}");
    let code = if e.is_unavailable() {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    ApiError::new(code, format!("failed to persist the change: {e}"))
}

fn refused_after_failure(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!(
            "the master takes no writes until its store recovers from a failed write ({why}); it retries by itself"
        ),
    )
}

impl Master {
    /// Loads nodes and tasks from `store`. Every node counts as heard from now: agents
    /// get one heartbeat timeout to come back, and nothing is marked lost at startup.
    pub fn open(store: Box<dyn Store>, config: CoreConfig) -> Result<Master, CoreError> {
        let (nodes, tasks) = load_records(&*store)?;
        tracing::info!(nodes = nodes.len(), tasks = tasks.len(), "loaded state");
        let state = State::load(nodes, tasks, Instant::now());
        let epoch = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let mut core = Core {
            state,
            inflight: InFlight::default(),
        };
        let names: Vec<String> = core.nodes.keys().cloned().collect();
        for n in &names {
            refresh(&mut core, n);
        }
        Ok(Master {
            core: Mutex::new(core),
            store,
            events: EventBus::default(),
            epoch,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// The cluster this master serves.
    pub fn cluster(&self) -> &ClusterInfo {
        &self.config.cluster
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        // No step under the lock panics on input, and a change is applied in memory in
        // one go before its batch is queued, so a poisoned lock still guards consistent
        // state.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `changes` in memory and queues their batch (with the history pruning they
    /// make due); returns the ticket to wait for outside the lock with
    /// [`Master::settle`]. Nothing to write still returns a ticket while batches are in
    /// flight, because the answer may show their changes.
    fn commit(
        &self,
        core: &mut Core,
        changes: Changes,
        now: DateTime<Utc>,
    ) -> Result<Option<Ticket>, ApiError> {
        if let Some(why) = &core.inflight.failed {
            // Nothing is in flight after a failure, and a request that changes nothing
            // (a quiet heartbeat) still counts as hearing from its node.
            return if changes.is_empty() {
                Ok(None)
            } else {
                Err(refused_after_failure(why))
            };
        }
        if changes.is_empty() {
            return Ok(self.barrier(core));
        }
        if let Err(e) = self.store.health() {
            return Err(refused_after_failure(&e.to_string()));
        }
        let mut ops = Vec::with_capacity(changes.nodes.len() + changes.tasks.len());
        for n in changes.nodes.values() {
            ops.push(Op::put_json(node_key(&n.name), n).map_err(persist_error)?);
        }
        for t in changes.tasks.values() {
            ops.push(Op::put_json(task_key(t.id().as_str()), t).map_err(persist_error)?);
        }
        // Nodes whose assignments may change now (node records, tasks they know), and
        // nodes that get a created task once the batch is durable.
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut created_on: BTreeSet<String> = BTreeSet::new();
        let mut created = Vec::new();
        let mut ended = false;
        for (name, record) in changes.nodes {
            match core.nodes.get_mut(&name) {
                Some(entry) => entry.record = record,
                None => {
                    core.nodes
                        .insert(name.clone(), NodeEntry::new(record, Instant::now()));
                }
            }
            touched.insert(name);
        }
        for t in changes.tasks.into_values() {
            ended |= t.state.is_terminal();
            if core.tasks.contains_key(t.id()) {
                touched.insert(t.spec.node.clone());
            } else {
                created_on.insert(t.spec.node.clone());
                created.push(t.id().clone());
            }
            core.put_task(t);
        }
        if ended {
            // Forget the terminal tasks the retention policy drops, in the same batch.
            self.prune_into(core, &mut ops, now);
        }
        let pending = self.store.submit(ops);
        let seq = core.inflight.next_seq;
        core.inflight.next_seq += 1;
        core.inflight.unsettled.extend(created.iter().cloned());
        // Changes to tasks the agents already know go out now; created ones on settle.
        for name in &touched {
            refresh(core, name);
        }
        core.inflight.staged.push_back(Staged {
            seq,
            events: changes.events,
            now,
            created,
            nodes: created_on,
        });
        Ok(Some(Ticket { seq, pending }))
    }

    /// Removes the terminal tasks the retention policy drops at `now` from memory and
    /// adds their deletes to `ops`.
    fn prune_into(&self, core: &mut Core, ops: &mut Vec<Op>, now: DateTime<Utc>) {
        for id in core.plan_prune(&self.config.task_history, now) {
            ops.push(Op::delete(task_key(id.as_str())));
            core.remove_task(&id);
        }
    }

    /// Forgets the terminal tasks that aged out of the history at `now` (on a quiet
    /// cluster no task ends to prune them); returns how many.
    pub fn prune_history(&self, now: DateTime<Utc>) -> usize {
        let ticket = {
            let mut core = self.lock();
            if core.inflight.failed.is_some() || self.store.health().is_err() {
                return 0;
            }
            let mut ops = Vec::new();
            self.prune_into(&mut core, &mut ops, now);
            if ops.is_empty() {
                return 0;
            }
            let pruned = ops.len();
            let pending = self.store.submit(ops);
            let seq = core.inflight.next_seq;
            core.inflight.next_seq += 1;
            core.inflight.staged.push_back(Staged {
                seq,
                events: Vec::new(),
                now,
                created: Vec::new(),
                nodes: BTreeSet::new(),
            });
            (Ticket { seq, pending }, pruned)
        };
        let (ticket, pruned) = ticket;
        match self.settle(Some(ticket)) {
            Ok(()) => pruned,
            Err(e) => {
                tracing::error!("failed to prune the task history: {}", e.message);
                0
            }
        }
    }

    /// A ticket for an empty batch queued behind every batch in flight (none if none
    /// is): waiting for it waits until everything the state shows is durable.
    fn barrier(&self, core: &mut Core) -> Option<Ticket> {
        let last = core.inflight.staged.back()?.seq;
        Some(Ticket {
            seq: last,
            pending: self.store.submit(Vec::new()),
        })
    }

    /// Waits (without the lock) until the ticket's batch is durable, then publishes the
    /// events of every batch up to it, in order, and hands the tasks they created to
    /// their nodes' assignments.
    fn settle(&self, ticket: Option<Ticket>) -> Result<(), ApiError> {
        self.settle_all(ticket.into_iter().collect())
    }

    /// [`Master::settle`] for several tickets, in queue order: waits for each, then
    /// releases everything up to the last under one lock.
    fn settle_all(&self, tickets: Vec<Ticket>) -> Result<(), ApiError> {
        let Some(seq) = tickets.iter().map(|t| t.seq).max() else {
            return Ok(());
        };
        let mut written = Ok(0);
        for t in tickets {
            let r = t.pending.wait();
            if written.is_ok() {
                written = r;
            }
        }
        let mut core = self.lock();
        if let Err(e) = written {
            let why = e.to_string();
            if core.inflight.failed.is_none() {
                tracing::error!(
                    "store write failed: {why}; refusing writes until the store recovers and the state is reloaded from it"
                );
                core.inflight.failed = Some(why);
            }
            // Every batch behind the failed one failed too: nothing is in flight.
            core.inflight.staged.clear();
            return Err(persist_error(e));
        }
        let mut nodes = BTreeSet::new();
        while core.inflight.staged.front().is_some_and(|s| s.seq <= seq) {
            let Some(staged) = core.inflight.staged.pop_front() else {
                break;
            };
            for kind in staged.events {
                self.events.publish(kind, staged.now);
            }
            for id in &staged.created {
                core.inflight.unsettled.remove(id);
            }
            nodes.extend(staged.nodes);
        }
        for name in &nodes {
            refresh(&mut core, name);
        }
        Ok(())
    }

    /// Whether the master takes writes: `Err` with the cause while its store is down or
    /// its state waits to be reloaded after a failed write (for `/health`).
    pub fn health(&self) -> Result<(), String> {
        if let Some(why) = &self.lock().inflight.failed {
            return Err(format!(
                "store write failed ({why}); waiting for the store to recover"
            ));
        }
        self.store.health().map_err(|e| e.to_string())
    }

    /// After a failed write, once the store takes writes again: reloads nodes and tasks
    /// from it (memory was ahead of disk) and takes writes again. Each node keeps its
    /// long-poll channel and revision, so agents' waits go on and see the reloaded
    /// assignments; every node counts as heard from now, as after a restart. `Ok(true)`
    /// when it reloaded.
    pub fn recover(&self) -> Result<bool, CoreError> {
        if self.lock().inflight.failed.is_none() || self.store.health().is_err() {
            return Ok(false);
        }
        let (nodes, tasks) = load_records(&*self.store)?;
        let mut core = self.lock();
        let Some(why) = core.inflight.failed.take() else {
            return Ok(false);
        };
        let mut old = std::mem::take(&mut core.state);
        let mut state = State::load(nodes, tasks, Instant::now());
        for (name, entry) in state.nodes.iter_mut() {
            if let Some(before) = old.nodes.remove(name) {
                entry.revision = before.revision;
                entry.assignments = before.assignments;
                entry.reported = before.reported;
                entry.wake = before.wake;
            }
        }
        core.state = state;
        core.inflight.staged.clear();
        core.inflight.unsettled.clear();
        let names: Vec<String> = core.nodes.keys().cloned().collect();
        for n in &names {
            refresh(&mut core, n);
        }
        tracing::info!(
            nodes = core.nodes.len(),
            tasks = core.tasks.len(),
            "store recovered after a failed write ({why}): state reloaded from it, writes resume"
        );
        Ok(true)
    }

    /// Every node's view, by name.
    pub fn nodes(&self) -> Vec<Node> {
        let st = self.lock();
        st.nodes.keys().filter_map(|n| st.node_view(n)).collect()
    }

    /// One node's view.
    pub fn node(&self, name: &str) -> Result<Node, ApiError> {
        self.lock()
            .node_view(name)
            .ok_or_else(|| ApiError::not_found("node", name))
    }

    /// The tasks matching `filter`, by id.
    pub fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, ApiError> {
        let label = match filter.label.as_deref() {
            None => None,
            Some(l) => Some(
                l.split_once('=')
                    .ok_or_else(|| ApiError::invalid("label", format!("{l:?} is not key=value")))?,
            ),
        };
        let st = self.lock();
        let matches = |t: &&Task| {
            filter.state.is_none_or(|s| t.state == s)
                && filter.active.is_none_or(|a| t.state.is_active() == a)
                && label
                    .is_none_or(|(k, v)| t.spec.definition.labels.get(k).is_some_and(|x| x == v))
        };
        Ok(match &filter.node {
            Some(n) => st.node_tasks(n).filter(matches).cloned().collect(),
            None => st.tasks.values().filter(matches).cloned().collect(),
        })
    }

    /// One task.
    pub fn task(&self, id: &TaskId) -> Result<Task, ApiError> {
        id.validate()?;
        self.lock()
            .tasks
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("task", id.as_str()))
    }

    /// The node address of a task's agent, for proxying its logs.
    pub fn task_agent(&self, id: &TaskId) -> Result<(String, String), ApiError> {
        id.validate()?;
        let st = self.lock();
        let t = st
            .tasks
            .get(id)
            .ok_or_else(|| ApiError::not_found("task", id.as_str()))?;
        let n = st
            .nodes
            .get(&t.spec.node)
            .ok_or_else(|| ApiError::not_found("node", &t.spec.node))?;
        Ok((n.record.name.clone(), n.record.address.clone()))
    }

    /// Accepts or refuses a placement: [`Launched::Created`] with a new task,
    /// [`Launched::Existing`] for an idempotent retry of an accepted one.
    pub fn launch(&self, req: LaunchRequest, now: DateTime<Utc>) -> Result<Launched, ApiError> {
        let (answer, ticket) = {
            let mut core = self.lock();
            match core.plan_launch(req, now, generate_id)? {
                Launch::Existing(t) => (Launched::Existing(*t), self.barrier(&mut core)),
                Launch::New(t, changes) => {
                    (Launched::Created(*t), self.commit(&mut core, changes, now)?)
                }
            }
        };
        self.settle(ticket)?;
        Ok(answer)
    }

    /// Decides several launches in order under one lock, each seeing the ones before it
    /// (as if sent one by one), and waits once until every accepted one is durable. A
    /// refusal refuses that launch alone.
    pub fn launch_batch(
        &self,
        reqs: Vec<LaunchRequest>,
        now: DateTime<Utc>,
    ) -> Result<Vec<LaunchOutcome>, ApiError> {
        if reqs.len() > MAX_LAUNCH_BATCH {
            return Err(ApiError::invalid(
                "launches",
                format!(
                    "a batch takes at most {MAX_LAUNCH_BATCH} launches, not {}",
                    reqs.len()
                ),
            ));
        }
        let mut outcomes = Vec::with_capacity(reqs.len());
        let mut tickets = Vec::new();
        {
            let mut core = self.lock();
            for req in reqs {
                let outcome = match core.plan_launch(req, now, generate_id) {
                    Ok(Launch::Existing(task)) => LaunchOutcome::Existing { task },
                    Ok(Launch::New(task, changes)) => match self.commit(&mut core, changes, now) {
                        Ok(ticket) => {
                            tickets.extend(ticket);
                            LaunchOutcome::Created { task }
                        }
                        Err(error) => LaunchOutcome::Refused { error },
                    },
                    Err(error) => LaunchOutcome::Refused { error },
                };
                outcomes.push(outcome);
            }
            if tickets.is_empty() {
                // Existing tasks may show changes still in flight.
                tickets.extend(self.barrier(&mut core));
            }
        }
        self.settle_all(tickets)?;
        Ok(outcomes)
    }

    /// Requests a kill.
    pub fn kill(&self, id: &TaskId, now: DateTime<Utc>) -> Result<Task, ApiError> {
        let (t, ticket) = {
            let mut core = self.lock();
            let (t, changes) = core.plan_kill(id, now)?;
            (t, self.commit(&mut core, changes, now)?)
        };
        self.settle(ticket)?;
        Ok(t)
    }

    /// Drains or activates a node.
    pub fn drain(&self, name: &str, drain: Drain, now: DateTime<Utc>) -> Result<Node, ApiError> {
        let (node, ticket) = {
            let mut core = self.lock();
            let (_, changes) = core.plan_drain(name, drain)?;
            let ticket = self.commit(&mut core, changes, now)?;
            (core.node_view(name), ticket)
        };
        self.settle(ticket)?;
        node.ok_or_else(|| ApiError::not_found("node", name))
    }

    /// Registers (or re-registers) an agent.
    pub fn register(
        &self,
        req: &RegisterRequest,
        now: DateTime<Utc>,
    ) -> Result<RegisterResponse, ApiError> {
        if let Some(theirs) = &req.cluster_id
            && *theirs != self.config.cluster.id
        {
            tracing::error!(node = %req.name, agent_cluster = %theirs, cluster = %self.config.cluster.id,
                "refused the registration of an agent of another cluster");
            return Err(ApiError {
                code: ErrorCode::Conflict,
                message: format!(
                    "node {:?} belongs to cluster {theirs}, and this master serves cluster {}: \
                     point the agent at its own cluster's master (or restore this master's \
                     store), or, to move the node and its tasks to this cluster, restart the \
                     agent once with --join-new-cluster",
                    req.name, self.config.cluster.id
                ),
                field: Some("clusterId".into()),
            });
        }
        let ticket = {
            let mut core = self.lock();
            let changes = core.plan_register(req, now)?;
            let adopted = changes
                .tasks
                .keys()
                .filter(|id| !core.tasks.contains_key(*id))
                .count();
            if adopted > 0 {
                tracing::warn!(node = %req.name, adopted,
                    "adopted running tasks this master had no record of (its store is new or older than the node's tasks)");
            }
            let ticket = self.commit(&mut core, changes, now)?;
            if let Some(entry) = core.nodes.get_mut(&req.name) {
                entry.registered_here = true;
            }
            self.heard_from(&mut core, &req.name, &req.host, &req.tasks, now);
            ticket
        };
        self.settle(ticket)?;
        Ok(RegisterResponse {
            heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
            cluster_id: Some(self.config.cluster.id.clone()),
        })
    }

    /// Takes a heartbeat.
    pub fn heartbeat(
        &self,
        name: &str,
        req: &HeartbeatRequest,
        now: DateTime<Utc>,
    ) -> Result<HeartbeatResponse, ApiError> {
        let ticket = {
            let mut core = self.lock();
            let Some(changes) = core.plan_heartbeat(name, req, now)? else {
                return Ok(HeartbeatResponse { registered: false });
            };
            let ticket = self.commit(&mut core, changes, now)?;
            self.heard_from(&mut core, name, &req.host, &req.tasks, now);
            ticket
        };
        self.settle(ticket)?;
        Ok(HeartbeatResponse { registered: true })
    }

    /// Records the live facts of a node that just spoke (kept in memory only: a restart
    /// treats every node as just heard from anyway).
    fn heard_from(
        &self,
        core: &mut Core,
        name: &str,
        host: &drover_api::node::HostInfo,
        reports: &[drover_api::task::TaskReport],
        now: DateTime<Utc>,
    ) {
        if let Some(entry) = core.nodes.get_mut(name) {
            entry.last_seen = Instant::now();
            entry.record.host = host.clone();
            entry.record.last_heartbeat_at = now;
            entry.reported = reports
                .iter()
                .map(|r| (r.id.clone(), r.state))
                .collect::<BTreeMap<_, _>>();
        }
        refresh(core, name);
    }

    /// Marks every node silent past the timeout unreachable; returns their names.
    pub fn check_failures(&self, now: Instant, wall: DateTime<Utc>) -> Vec<String> {
        let mut tickets = Vec::new();
        let overdue = {
            let mut core = self.lock();
            // Agents' heartbeats are refused while nothing can be written, so their
            // silence says nothing of the agents; every node counts as heard from once
            // the state is reloaded.
            if core.inflight.failed.is_some() || self.store.health().is_err() {
                return Vec::new();
            }
            let overdue = core.overdue(now, self.config.heartbeat_timeout);
            for name in &overdue {
                let changes = core.plan_unreachable(name, now, wall);
                match self.commit(&mut core, changes, wall) {
                    Ok(ticket) => tickets.push((name.clone(), ticket)),
                    Err(e) => {
                        tracing::error!(node = %name, "failed to mark node unreachable: {}", e.message)
                    }
                }
            }
            overdue
        };
        for (name, ticket) in tickets {
            match self.settle(ticket) {
                Ok(()) => {
                    tracing::warn!(node = %name, "node is unreachable: its active tasks are lost")
                }
                Err(e) => {
                    tracing::error!(node = %name, "failed to mark node unreachable: {}", e.message)
                }
            }
        }
        overdue
    }

    /// The node's current assignments, and a receiver that fires when they change.
    pub fn assignments(
        &self,
        name: &str,
    ) -> Result<(NodeAssignments, tokio::sync::watch::Receiver<u64>), ApiError> {
        validate_node_name(name, "name")?;
        let st = self.lock();
        let entry = st
            .nodes
            .get(name)
            .ok_or_else(|| ApiError::not_found("node", name))?;
        let revision = format!("{}-{}", self.epoch, entry.revision);
        Ok((
            NodeAssignments {
                revision,
                cluster_id: Some(self.config.cluster.id.clone()),
                tasks: entry.assignments.clone(),
            },
            entry.wake.subscribe(),
        ))
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        let st = self.lock();
        let mut m = drover_service::http::Metrics::default();
        for s in [
            NodeState::Ready,
            NodeState::Draining,
            NodeState::Unreachable,
        ] {
            let n = st.nodes.values().filter(|n| n.record.state() == s).count();
            m.gauge(
                "drover_master_nodes",
                "Nodes by state",
                &[("state", s.as_str())],
                n as f64,
            );
        }
        for s in TaskState::ALL {
            let n = st.tasks.values().filter(|t| t.state == s).count();
            m.gauge(
                "drover_master_tasks",
                "Tasks by state",
                &[("state", s.as_str())],
                n as f64,
            );
        }
        let mut total = drover_api::Resources::default();
        let mut allocated = drover_api::Resources::default();
        for entry in st.nodes.values().filter(|n| !n.record.unreachable) {
            let view = entry.record.view(st.node_tasks(&entry.record.name));
            total = total.plus(view.total);
            allocated = allocated.plus(view.allocated);
        }
        for (name, t, a) in [
            ("cpus", total.cpus, allocated.cpus),
            ("mem", total.mem, allocated.mem),
            ("disk", total.disk, allocated.disk),
        ] {
            m.gauge(
                "drover_master_resources_total",
                "Resources offered by reachable nodes",
                &[("resource", name)],
                t,
            );
            m.gauge(
                "drover_master_resources_allocated",
                "Resources held by active tasks on reachable nodes",
                &[("resource", name)],
                a,
            );
        }
        m.render()
    }
}

/// Every node and task record in `store`.
fn load_records(store: &dyn Store) -> Result<(Vec<NodeRecord>, Vec<Task>), CoreError> {
    let nodes = store
        .list_json(NODE_PREFIX)
        .map_err(CoreError::Load)?
        .into_iter()
        .map(|(_, n, _)| n)
        .collect();
    let tasks = store
        .list_json(TASK_PREFIX)
        .map_err(CoreError::Load)?
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    Ok((nodes, tasks))
}

/// Recomputes a node's assignments (without tasks whose creation is not durable yet);
/// when they changed, bumps its revision and wakes its long polls.
fn refresh(core: &mut Core, name: &str) {
    let Core {
        state: st,
        inflight,
    } = core;
    let Some(entry) = st.nodes.get(name) else {
        return;
    };
    let settled = st
        .node_tasks(name)
        .filter(|t| !inflight.unsettled.contains(t.id()));
    let elsewhere = |id: &TaskId| st.tasks.get(id).is_some_and(|t| t.spec.node != name);
    let next = assignments::compute(name, settled, &entry.reported, elsewhere);
    if let Some(entry) = st.nodes.get_mut(name)
        && (next != entry.assignments || entry.revision == 0)
    {
        entry.assignments = next;
        entry.revision += 1;
        entry.wake.send_replace(entry.revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_api::node::HostInfo;
    use drover_api::task::{TaskDefinition, TaskGoal, TaskReport};
    use drover_api::{PortRange, Resources};
    use drover_store::{MemoryStore, StoreError};

    fn config() -> CoreConfig {
        CoreConfig {
            heartbeat_interval: Duration::from_millis(300),
            heartbeat_timeout: Duration::from_secs(1),
            task_history: Retention {
                count: 3,
                max_age: drover_service::retention::MaxAge(None),
            },
            cluster: ClusterInfo {
                id: drover_api::agent::ClusterId("test-cluster".into()),
                created_at: None,
            },
        }
    }

    fn register(name: &str, tasks: Vec<TaskReport>) -> RegisterRequest {
        RegisterRequest {
            name: name.into(),
            address: "http://127.0.0.1:5051".into(),
            version: "0.1.0".into(),
            attributes: Default::default(),
            capabilities: vec![],
            total: Resources::new(2.0, 1024.0, 1000.0),
            reserved: Resources::default(),
            ports: PortRange {
                begin: 31000,
                end: 31010,
            },
            host: HostInfo::default(),
            max_tasks: None,
            tasks,
            specs: vec![],
            cluster_id: None,
        }
    }

    fn launch_req(node: &str) -> LaunchRequest {
        LaunchRequest {
            node: node.into(),
            id: None,
            task: TaskDefinition {
                name: "web".into(),
                cmd: Some("sleep 100".into()),
                resources: Resources::new(0.5, 64.0, 0.0),
                kill_grace_period_seconds: 5.0,
                ..Default::default()
            },
        }
    }

    fn report(id: &TaskId, state: TaskState) -> TaskReport {
        TaskReport {
            id: id.clone(),
            state,
            pid: Some(1),
            exit: None,
            message: None,
            started_at: None,
            finished_at: None,
            health: None,
        }
    }

    #[test]
    fn a_launch_batch_decides_in_order_and_answers_each_launch() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        // Two CPUs at 0.5 each: the fifth launch sees the four before it and does not fit.
        let mut reqs: Vec<LaunchRequest> = (0..5)
            .map(|i| LaunchRequest {
                id: Some(TaskId(format!("web-{i}"))),
                ..launch_req("n1")
            })
            .collect();
        reqs.push(launch_req("nowhere"));
        let out = m.launch_batch(reqs.clone(), now).unwrap();
        assert_eq!(out.len(), 6);
        for (i, o) in out.iter().take(4).enumerate() {
            match o {
                LaunchOutcome::Created { task } => {
                    assert_eq!(task.id().as_str(), format!("web-{i}"))
                }
                other => panic!("launch {i}: {other:?}"),
            }
        }
        let code = |o: &LaunchOutcome| match o {
            LaunchOutcome::Refused { error } => Some(error.code),
            _ => None,
        };
        assert_eq!(code(&out[4]), Some(ErrorCode::InsufficientResources));
        assert_eq!(code(&out[5]), Some(ErrorCode::NotFound));
        assert_eq!(m.assignments("n1").unwrap().0.tasks.len(), 4);
        // The same batch again: the accepted ones are idempotent retries.
        let again = m.launch_batch(reqs[..4].to_vec(), now).unwrap();
        assert!(
            again
                .iter()
                .all(|o| matches!(o, LaunchOutcome::Existing { .. }))
        );
        assert_eq!(m.tasks(&TaskFilter::default()).unwrap().len(), 4);
        let too_many = vec![launch_req("n1"); MAX_LAUNCH_BATCH + 1];
        let e = m.launch_batch(too_many, now).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("launches"));
        assert_eq!(
            m.tasks(&TaskFilter::default()).unwrap().len(),
            4,
            "nothing changed"
        );
    }

    #[test]
    fn revision_changes_only_when_assignments_change_and_wakes_waiters() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        let (a0, rx) = m.assignments("n1").unwrap();
        assert!(a0.tasks.is_empty());
        m.heartbeat(
            "n1",
            &HeartbeatRequest {
                host: HostInfo::default(),
                tasks: vec![],
            },
            now,
        )
        .unwrap();
        assert_eq!(
            m.assignments("n1").unwrap().0.revision,
            a0.revision,
            "a quiet heartbeat changes nothing"
        );
        assert!(!rx.has_changed().unwrap());
        let Launched::Created(t) = m.launch(launch_req("n1"), now).unwrap() else {
            panic!("a first launch creates its task")
        };
        assert!(rx.has_changed().unwrap());
        let (a1, _) = m.assignments("n1").unwrap();
        assert_ne!(a1.revision, a0.revision);
        assert_eq!(a1.tasks.len(), 1);
        assert_eq!(a1.tasks[0].goal, TaskGoal::Run);
        // Kill: the agent still runs it, so it stays listed with goal Kill.
        m.heartbeat(
            "n1",
            &HeartbeatRequest {
                host: HostInfo::default(),
                tasks: vec![report(t.id(), TaskState::Running)],
            },
            now,
        )
        .unwrap();
        m.kill(t.id(), now).unwrap();
        let (a2, _) = m.assignments("n1").unwrap();
        assert_eq!(a2.tasks[0].goal, TaskGoal::Kill);
        m.heartbeat(
            "n1",
            &HeartbeatRequest {
                host: HostInfo::default(),
                tasks: vec![report(t.id(), TaskState::Killed)],
            },
            now,
        )
        .unwrap();
        assert_eq!(m.task(t.id()).unwrap().state, TaskState::Killed);
        assert!(m.assignments("n1").unwrap().0.tasks.is_empty());
    }

    #[test]
    fn silent_node_goes_unreachable_and_returning_gets_kills() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        let t = m.launch(launch_req("n1"), now).unwrap().into_task();
        m.heartbeat(
            "n1",
            &HeartbeatRequest {
                host: HostInfo::default(),
                tasks: vec![report(t.id(), TaskState::Running)],
            },
            now,
        )
        .unwrap();
        let mut events = m.subscribe();
        assert!(m.check_failures(Instant::now(), now).is_empty());
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(m.check_failures(later, now), vec!["n1".to_string()]);
        assert_eq!(m.node("n1").unwrap().state, NodeState::Unreachable);
        assert_eq!(m.task(t.id()).unwrap().state, TaskState::Lost);
        let kinds: Vec<&str> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| e.kind.name())
            .collect();
        assert_eq!(kinds, vec!["node_state", "task_state"]);
        // It comes back still running the lost task: ready again, and told to kill it.
        m.heartbeat(
            "n1",
            &HeartbeatRequest {
                host: HostInfo::default(),
                tasks: vec![report(t.id(), TaskState::Running)],
            },
            now,
        )
        .unwrap();
        assert_eq!(m.node("n1").unwrap().state, NodeState::Ready);
        let (a, _) = m.assignments("n1").unwrap();
        assert_eq!(a.tasks.len(), 1);
        assert_eq!(
            (a.tasks[0].spec.id.clone(), a.tasks[0].goal),
            (t.id().clone(), TaskGoal::Kill)
        );
        assert_eq!(
            m.task(t.id()).unwrap().state,
            TaskState::Lost,
            "terminal states never change"
        );
    }

    /// A master that lost its record of running tasks (an older store): the agent's
    /// first heartbeat to it is answered "register", and the registration's specs make
    /// the master adopt the tasks; they are listed to run, never to kill.
    #[test]
    fn tasks_a_restarted_master_does_not_know_are_adopted_not_killed() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        let t = m.launch(launch_req("n1"), now).unwrap().into_task();
        let running = report(t.id(), TaskState::Running);
        // The same store reopened (a restart) lacks a task the agent still runs.
        let store = MemoryStore::new();
        for (k, v) in m.store.list("").unwrap() {
            store.put(&k, &v.value, drover_store::Expect::Any).unwrap();
        }
        let orphan_id = TaskId::from("orphan.1");
        let mut orphan = launch_req("n1");
        orphan.id = Some(orphan_id.clone());
        let orphan_spec = drover_api::task::TaskSpec {
            id: orphan_id.clone(),
            node: "n1".into(),
            definition: orphan.task.clone(),
            host_ports: vec![],
        };
        let m = Master::open(Box::new(store), config()).unwrap();
        let reports = vec![running.clone(), report(&orphan_id, TaskState::Running)];
        let hb = HeartbeatRequest {
            host: HostInfo::default(),
            tasks: reports.clone(),
        };
        assert!(
            !m.heartbeat("n1", &hb, now).unwrap().registered,
            "asked to register so that the registration can bring the spec"
        );
        let (before, _) = m.assignments("n1").unwrap();
        assert!(
            before.tasks.iter().all(|a| a.goal == TaskGoal::Run),
            "an unknown task is never listed to kill: {before:?}"
        );
        let mut req = register("n1", reports);
        req.specs = vec![t.spec.clone(), orphan_spec];
        m.register(&req, now).unwrap();
        let adopted = m.task(&orphan_id).unwrap();
        assert_eq!(adopted.state, TaskState::Running);
        assert_eq!(adopted.goal, TaskGoal::Run);
        let (after, _) = m.assignments("n1").unwrap();
        let goals: Vec<(String, TaskGoal)> = after
            .tasks
            .iter()
            .map(|a| (a.spec.id.to_string(), a.goal))
            .collect();
        assert_eq!(
            goals,
            vec![
                ("orphan.1".to_string(), TaskGoal::Run),
                (t.id().to_string(), TaskGoal::Run)
            ]
        );
        // Registered with this master now: heartbeats are answered as usual.
        assert!(m.heartbeat("n1", &hb, now).unwrap().registered);
    }

    #[test]
    fn an_agent_of_another_cluster_is_refused_and_ours_get_the_id() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        let ours = m.cluster().id.clone();
        let resp = m.register(&register("n1", vec![]), now).unwrap();
        assert_eq!(resp.cluster_id.as_ref(), Some(&ours));
        assert_eq!(
            m.assignments("n1").unwrap().0.cluster_id,
            Some(ours.clone())
        );
        let mut req = register("n2", vec![]);
        req.cluster_id = Some(drover_api::agent::ClusterId("another".into()));
        let err = m.register(&req, now).unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert!(
            err.message.contains("another") && err.message.contains(ours.as_str()),
            "{}",
            err.message
        );
        assert!(m.node("n2").is_err(), "a refused agent is not recorded");
        req.cluster_id = Some(ours);
        m.register(&req, now).unwrap();
    }

    /// Launches from many threads at once (their fsyncs shared by group commit): every
    /// accepted task is in the store when the master is opened again.
    #[test]
    fn concurrent_launches_all_survive_a_restart() {
        const THREADS: usize = 6;
        const LAUNCHES: usize = 10;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.redb");
        let store = drover_store::RedbStore::open(&path).unwrap();
        let m = std::sync::Arc::new(Master::open(Box::new(store), config()).unwrap());
        let now = crate::testutil::t0();
        let mut big = register("n1", vec![]);
        big.total = Resources::new(100.0, 100_000.0, 1000.0);
        m.register(&big, now).unwrap();
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    (0..LAUNCHES)
                        .map(|_| {
                            let mut req = launch_req("n1");
                            req.task.resources = Resources::new(0.1, 1.0, 0.0);
                            let Launched::Created(t) = m.launch(req, now).unwrap() else {
                                panic!("a first launch creates its task")
                            };
                            t.spec.id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let ids: BTreeSet<TaskId> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(ids.len(), THREADS * LAUNCHES);
        // Every answered launch is durable, so it is also in the node's assignments.
        let (assigned, _) = m.assignments("n1").unwrap();
        assert_eq!(assigned.tasks.len(), ids.len());
        drop(m);

        let store = drover_store::RedbStore::open(&path).unwrap();
        let m = Master::open(Box::new(store), config()).unwrap();
        let stored: BTreeSet<TaskId> = m
            .tasks(&TaskFilter::default())
            .unwrap()
            .into_iter()
            .map(|t| t.spec.id)
            .collect();
        assert_eq!(stored, ids);
    }

    /// A store that fails every write while `down` is set, as a full disk does, and,
    /// like the real one, reports itself unhealthy once a write has failed (the real
    /// thing, on a tmpfs, is in the cluster tests).
    #[derive(Default)]
    struct FailingStore {
        inner: MemoryStore,
        down: std::sync::Arc<std::sync::atomic::AtomicBool>,
        failed: std::sync::atomic::AtomicBool,
    }

    impl Store for FailingStore {
        fn get(&self, key: &str) -> Result<Option<drover_store::Versioned>, StoreError> {
            self.inner.get(key)
        }
        fn list(&self, prefix: &str) -> Result<Vec<(String, drover_store::Versioned)>, StoreError> {
            self.inner.list(prefix)
        }
        fn apply(&self, ops: &[Op]) -> Result<u64, StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(StoreError::Unavailable {
                    reason: "no space left on device".into(),
                });
            }
            self.inner.apply(ops)
        }
        fn revision(&self) -> Result<u64, StoreError> {
            self.inner.revision()
        }
        fn health(&self) -> Result<(), StoreError> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst)
                && self.failed.load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(StoreError::Unavailable {
                    reason: "no space left on device".into(),
                });
            }
            Ok(())
        }
    }

    /// A failed write refuses writes (503) without touching memory, `/health` says why,
    /// and once the store takes writes again the state is reloaded from it: what the
    /// failed write changed in memory is gone, nodes keep their long-poll channel, and
    /// writes work again.
    #[test]
    fn a_failed_write_refuses_writes_until_the_store_recovers_and_the_state_reloads() {
        use std::sync::atomic::Ordering;
        let store = FailingStore::default();
        let down = store.down.clone();
        let m = Master::open(Box::new(store), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        let kept = m.launch(launch_req("n1"), now).unwrap().into_task();
        let running = HeartbeatRequest {
            host: HostInfo::default(),
            tasks: vec![report(kept.id(), TaskState::Running)],
        };
        m.heartbeat("n1", &running, now).unwrap();
        let (_, mut poll) = m.assignments("n1").unwrap();
        poll.borrow_and_update();
        assert!(!m.recover().unwrap(), "nothing to recover");

        down.store(true, Ordering::SeqCst);
        // The first write fails at the store, after memory changed for it; the next
        // is refused before anything changes.
        for _ in 0..2 {
            let e = m.launch(launch_req("n1"), now).unwrap_err();
            assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
            assert!(e.message.contains("no space left"), "{}", e.message);
        }
        assert!(m.health().is_err());
        assert_eq!(m.tasks(&TaskFilter::default()).unwrap().len(), 2);
        // A quiet heartbeat still counts as hearing from the node.
        m.heartbeat("n1", &running, now).unwrap();
        assert!(!m.recover().unwrap(), "not while the store is down");

        down.store(false, Ordering::SeqCst);
        assert!(m.recover().unwrap());
        assert!(m.health().is_ok());
        let tasks = m.tasks(&TaskFilter::default()).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].id(), kept.id());
        let again = m.launch(launch_req("n1"), now).unwrap().into_task();
        assert_eq!(m.tasks(&TaskFilter::default()).unwrap().len(), 2);
        assert!(
            poll.has_changed().unwrap(),
            "the same long poll sees the new task"
        );
        let (assigned, _) = m.assignments("n1").unwrap();
        assert!(assigned.tasks.iter().any(|a| a.spec.id == *again.id()));
    }

    /// A task whose batch is queued but not yet durable stays out of its node's
    /// assignments (no agent starts it) and its event waits; settling releases both.
    #[test]
    fn a_created_task_reaches_its_node_only_once_durable() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        let mut events = m.subscribe();
        let (before, _) = m.assignments("n1").unwrap();
        let ticket = {
            let mut core = m.lock();
            let Launch::New(_, changes) = core
                .plan_launch(launch_req("n1"), now, generate_id)
                .unwrap()
            else {
                panic!("a new launch");
            };
            m.commit(&mut core, changes, now).unwrap()
        };
        let (during, _) = m.assignments("n1").unwrap();
        assert_eq!(during, before);
        assert!(
            events.try_recv().is_err(),
            "no event before the write is durable"
        );
        m.settle(ticket).unwrap();
        let (after, _) = m.assignments("n1").unwrap();
        assert_eq!(after.tasks.len(), 1);
        assert_ne!(after.revision, before.revision);
        assert!(events.try_recv().is_ok());
    }

    #[test]
    fn history_is_pruned_to_the_cap() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        for _ in 0..6 {
            let t = m.launch(launch_req("n1"), now).unwrap().into_task();
            m.kill(t.id(), now).unwrap(); // staging and unreported: killed at once
        }
        let all = m.tasks(&TaskFilter::default()).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|t| t.state == TaskState::Killed));
    }

    #[test]
    fn aged_history_is_pruned_on_a_quiet_master() {
        let mut config = config();
        config.task_history = Retention {
            count: 100,
            max_age: "1h".parse().unwrap(),
        };
        let m = Master::open(Box::new(MemoryStore::new()), config).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let t = m.launch(launch_req("n1"), now).unwrap().into_task();
            m.kill(t.id(), now).unwrap();
            ids.push(t.id().clone());
        }
        let live = m.launch(launch_req("n1"), now).unwrap().into_task();
        assert_eq!(m.prune_history(now + chrono::Duration::minutes(59)), 0);
        // Past the age: all ended tasks but the newest go; the live one stays.
        assert_eq!(m.prune_history(now + chrono::Duration::hours(2)), 2);
        let left: Vec<TaskId> = m
            .tasks(&TaskFilter::default())
            .unwrap()
            .into_iter()
            .map(|t| t.id().clone())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(live.id()));
        assert_eq!(m.prune_history(now + chrono::Duration::hours(3)), 0);
    }

    #[test]
    fn task_filters() {
        let m = Master::open(Box::new(MemoryStore::new()), config()).unwrap();
        let now = crate::testutil::t0();
        m.register(&register("n1", vec![]), now).unwrap();
        m.register(&register("n2", vec![]), now).unwrap();
        let mut r = launch_req("n1");
        r.task.labels.insert("drover.app".into(), "/web".into());
        m.launch(r, now).unwrap();
        let b = m.launch(launch_req("n2"), now).unwrap().into_task();
        m.kill(b.id(), now).unwrap();
        let f = |node: Option<&str>,
                 state: Option<TaskState>,
                 active: Option<bool>,
                 label: Option<&str>| {
            m.tasks(&TaskFilter {
                node: node.map(Into::into),
                state,
                active,
                label: label.map(Into::into),
            })
            .unwrap()
            .len()
        };
        assert_eq!(f(None, None, None, None), 2);
        assert_eq!(f(Some("n1"), None, None, None), 1);
        assert_eq!(f(Some("zz"), None, None, None), 0);
        assert_eq!(f(None, Some(TaskState::Killed), None, None), 1);
        assert_eq!(f(None, None, Some(true), None), 1);
        assert_eq!(f(None, None, None, Some("drover.app=/web")), 1);
        assert_eq!(f(None, None, None, Some("drover.app=/other")), 0);
        assert!(
            m.tasks(&TaskFilter {
                label: Some("novalue".into()),
                ..Default::default()
            })
            .is_err()
        );
    }
}
