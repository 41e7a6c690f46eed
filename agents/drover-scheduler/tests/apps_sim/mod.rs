//! An in-memory harness for the app engine: a store (what the server persists), a
//! master (tasks that stage, start, turn healthy or not, fail, stop when killed; task
//! ids are the caller's, and a repeated id is answered with the task it names) and a
//! synthetic clock. Each [`Sim::tick`] advances the master one step, builds the
//! snapshot, plans, persists the plan and applies its launches and kills, like the
//! server shell does. [`Fault`]s crash the master or the scheduler at the steps of a
//! launch where an answer is lost. No sockets, no sleeping. Reusable: `mod apps_sim;`
//! in a test file.
#![allow(dead_code, clippy::unwrap_used)] // shared by several test files; tests may unwrap

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use drover_api::app::{AppDefinition, AppId};
use drover_api::deployment::{Deployment, DeploymentId, DeploymentState};
use drover_api::node::NodeState;
use drover_api::task::{Task, TaskGoal, TaskId, TaskSpec, TaskState, labels};
use drover_api::{ApiError, PortRange, Resources};
use drover_scheduler::engine::apps::{
    self, AppChange, AppState, AppsConfig, AppsPlan, Began, Kill, Snapshot,
};
use drover_scheduler::engine::placement::{ClusterSnapshot, NodeSnapshot};

/// The synthetic epoch of every simulation.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// An app with `instances` instances, a small footprint and one port.
pub fn app(id: &str, instances: u32, cmd: &str) -> AppDefinition {
    let mut a = AppDefinition::new(AppId::parse(id).unwrap(), cmd);
    a.instances = instances;
    a.resources = Resources::new(0.1, 32.0, 0.0);
    a
}

/// How an instance behaves once started, chosen per task by [`Sim::behaviour`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs; turns healthy one tick after it starts (when it has health checks).
    Healthy,
    /// Runs; turns healthy after running this many ticks (when it has health checks).
    HealthyAfter(u32),
    /// Runs but its health checks never pass; reported unhealthy after this many ticks
    /// of running (None: stays running, never healthy).
    NeverHealthy(Option<u32>),
    /// Fails (exit 1) after running this many ticks.
    Crash(u32),
}

/// One simulated host.
#[derive(Debug, Clone)]
pub struct SimNode {
    /// Name.
    pub name: String,
    /// What it offers.
    pub total: Resources,
    /// Reachable or not.
    pub state: NodeState,
    /// Attributes for constraints.
    pub attributes: BTreeMap<String, String>,
}

/// What the server persists, as JSON, exactly as a store would hold it.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Apps by id.
    pub apps: BTreeMap<AppId, AppState>,
    /// Every deployment ever, by id.
    pub deployments: BTreeMap<DeploymentId, Deployment>,
    /// Definitions by (app, version).
    pub versions: BTreeMap<(AppId, String), AppDefinition>,
}

impl Store {
    /// The store written out and read back (what a scheduler restart sees).
    pub fn round_trip(&self) -> Store {
        let apps = serde_json::to_string(&self.apps.values().collect::<Vec<_>>()).unwrap();
        let deps = serde_json::to_string(&self.deployments.values().collect::<Vec<_>>()).unwrap();
        let vers = serde_json::to_string(&self.versions.values().collect::<Vec<_>>()).unwrap();
        let apps: Vec<AppState> = serde_json::from_str(&apps).unwrap();
        let deps: Vec<Deployment> = serde_json::from_str(&deps).unwrap();
        let vers: Vec<AppDefinition> = serde_json::from_str(&vers).unwrap();
        Store {
            apps: apps.into_iter().map(|a| (a.id().clone(), a)).collect(),
            deployments: deps.into_iter().map(|d| (d.id.clone(), d)).collect(),
            versions: vers
                .into_iter()
                .map(|v| ((v.id.clone(), v.version.clone().unwrap()), v))
                .collect(),
        }
    }

    /// The running deployment of `app`, if any.
    pub fn running(&self, app: &str) -> Option<&Deployment> {
        self.deployments
            .values()
            .find(|d| d.is_running() && d.app_id.as_str() == app)
    }
}

/// Counts of one app's active tasks at the end of a tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sample {
    /// Tick number.
    pub tick: u64,
    /// Active tasks (stopping included).
    pub active: usize,
    /// Ready tasks that are not being killed.
    pub ready: usize,
    /// Ready, not stopping, per version.
    pub ready_by_version: BTreeMap<String, usize>,
    /// Active per version.
    pub active_by_version: BTreeMap<String, usize>,
}

/// A crash at one step of the next plan that launches something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The master makes the launches durable and dies before answering. It is down for
    /// `down` ticks (launches and kills sent meanwhile are lost); the scheduler's view
    /// of it keeps showing what it read before the crash for `stale` more ticks after it
    /// is back (a read not made yet), while the scheduler plans on.
    MasterCrashAfterCommit {
        /// Ticks the master is down.
        down: u32,
        /// Ticks the view stays old after the master is back.
        stale: u32,
    },
    /// The scheduler persists the plan and dies before sending anything.
    SchedulerCrashBeforeSend,
    /// The scheduler sends the launches (the master makes them durable) and dies before
    /// it reads the answers.
    SchedulerCrashBeforeAnswer,
}

/// The simulator.
pub struct Sim {
    /// Current time.
    pub now: DateTime<Utc>,
    /// Time per tick.
    pub step: TimeDelta,
    /// Ticks so far.
    pub ticks: u64,
    /// The server's store.
    pub store: Store,
    /// The master's tasks (terminal ones are kept).
    pub tasks: Vec<Task>,
    /// Ticks each task has been running, by id.
    pub running_ticks: BTreeMap<TaskId, u32>,
    /// The hosts.
    pub nodes: Vec<SimNode>,
    /// How each new task behaves.
    pub behaviour: Box<dyn Fn(&Task) -> Behaviour>,
    /// Engine settings.
    pub config: AppsConfig,
    /// The last plan.
    pub last_plan: AppsPlan,
    /// Samples of every app after every tick, by app id.
    pub samples: BTreeMap<String, Vec<Sample>>,
    /// Every kill the scheduler decided.
    pub kills: Vec<Kill>,
    /// Nodes the master refuses launches on (as if full).
    pub refuse_on: BTreeSet<String>,
    /// The fault armed for the next plan that launches something.
    pub fault: Option<Fault>,
    /// The scheduler's view of the master's tasks while it is not current (`None`: the
    /// snapshot reads the master as it is).
    pub frozen_view: Option<Vec<Task>>,
    /// Tasks the master answered with since the view froze (the server's `accepted`).
    pub accepted: Vec<Task>,
    /// Launch ids the master refused, for the next snapshot.
    pub refused: Vec<TaskId>,
    /// Whether the master is down, and for how many more ticks.
    pub master_down: Option<u32>,
    /// Ticks the view stays old once the master is back.
    pub stale_for: u32,
    /// A scheduler restarted while the master is down has no view at all: it plans
    /// nothing until the master answers.
    pub blind: bool,
}

impl Sim {
    /// A cluster of `nodes` roomy nodes, every task healthy, 1 s per tick.
    pub fn new(nodes: usize) -> Sim {
        Sim {
            now: t0(),
            step: TimeDelta::seconds(1),
            ticks: 0,
            store: Store::default(),
            tasks: Vec::new(),
            running_ticks: BTreeMap::new(),
            nodes: (0..nodes)
                .map(|i| SimNode {
                    name: format!("node-{i}"),
                    total: Resources::new(16.0, 16_384.0, 100_000.0),
                    state: NodeState::Ready,
                    attributes: BTreeMap::new(),
                })
                .collect(),
            behaviour: Box::new(|_| Behaviour::Healthy),
            config: AppsConfig::default(),
            last_plan: AppsPlan::default(),
            samples: BTreeMap::new(),
            kills: Vec::new(),
            refuse_on: BTreeSet::new(),
            fault: None,
            frozen_view: None,
            accepted: Vec::new(),
            refused: Vec::new(),
            master_down: None,
            stale_for: 0,
            blind: false,
        }
    }

    /// Asks for a change like the API would, and persists what `begin` returns.
    pub fn change(&mut self, change: AppChange, app: &str, force: bool) -> Result<Began, ApiError> {
        let id = AppId::parse(app).unwrap();
        let running: Vec<Deployment> = self
            .store
            .deployments
            .values()
            .filter(|d| d.is_running())
            .cloned()
            .collect();
        let began = apps::begin(
            change,
            self.store.apps.get(&id),
            &running,
            apps::Locked::from_force(force),
            self.now,
        )?;
        self.persist_began(&began);
        Ok(began)
    }

    /// Persists a `Began` (also used for cancel's rollback).
    pub fn persist_began(&mut self, began: &Began) {
        let a = &began.app;
        self.store
            .versions
            .insert((a.id().clone(), a.version.clone()), a.definition.clone());
        self.store.apps.insert(a.id().clone(), a.clone());
        self.store
            .deployments
            .insert(began.deployment.id.clone(), began.deployment.clone());
        for d in &began.superseded {
            self.store.deployments.insert(d.id.clone(), d.clone());
        }
    }

    /// The snapshot the server would build now.
    pub fn snapshot(&self) -> Snapshot {
        let mut nodes = Vec::new();
        for n in &self.nodes {
            let mut used = Resources::default();
            let mut ports = 0;
            for t in self
                .tasks
                .iter()
                .filter(|t| t.state.is_active() && t.spec.node == n.name)
            {
                used = used.plus(t.spec.definition.resources);
                ports += t.spec.definition.ports.len();
            }
            nodes.push(NodeSnapshot {
                name: n.name.clone(),
                state: n.state,
                draining: false,
                attributes: n.attributes.clone(),
                docker: false,
                free: n.total.minus(used),
                ports: PortRange {
                    begin: 31000,
                    end: 31999,
                },
                ports_allocated: ports,
                used_ports: BTreeSet::new(),
                task_slots: None,
            });
        }
        let tasks = match &self.frozen_view {
            None => self.tasks.clone(),
            Some(view) => {
                let mut tasks = view.clone();
                let known: BTreeSet<&TaskId> = view.iter().map(|t| &t.spec.id).collect();
                tasks.extend(
                    self.accepted
                        .iter()
                        .filter(|t| !known.contains(&t.spec.id))
                        .cloned(),
                );
                tasks
            }
        };
        Snapshot {
            now: self.now,
            apps: self.store.apps.values().cloned().collect(),
            deployments: self
                .store
                .deployments
                .values()
                .filter(|d| d.is_running())
                .cloned()
                .collect(),
            tasks,
            cluster: ClusterSnapshot {
                revision: self.ticks,
                nodes,
            },
            versions: self.store.versions.values().cloned().collect(),
            readiness: Vec::new(),
            config: self.config,
            // Fixed per tick, so two runs of the same history choose the same ids.
            id_seed: u128::from(self.ticks + 1) << 64,
            refused: self.refused.clone(),
        }
    }

    /// Moves the master one step: kills land, staging tasks start, started ones turn
    /// healthy, unhealthy or fail by their behaviour; unreachable nodes lose their tasks.
    pub fn advance(&mut self) {
        self.now += self.step;
        let now = self.now;
        let unreachable: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Unreachable)
            .map(|n| n.name.clone())
            .collect();
        for i in 0..self.tasks.len() {
            let behaviour = (self.behaviour)(&self.tasks[i]);
            let t = &mut self.tasks[i];
            if t.state.is_terminal() {
                continue;
            }
            let end = |t: &mut Task, s: TaskState| {
                t.state = s;
                t.finished_at = Some(now);
                t.updated_at = now;
            };
            if unreachable.contains(&t.spec.node) {
                end(t, TaskState::Lost);
                continue;
            }
            if t.goal == TaskGoal::Kill {
                end(t, TaskState::Killed);
                continue;
            }
            if t.state == TaskState::Staging {
                t.state = TaskState::Running;
                t.started_at = Some(now);
                t.updated_at = now;
                continue;
            }
            let ran = self.running_ticks.entry(t.spec.id.clone()).or_insert(0);
            *ran += 1;
            let has_checks = !t.spec.definition.health_checks.is_empty();
            match behaviour {
                Behaviour::Healthy => {
                    if has_checks && t.state == TaskState::Running {
                        t.state = TaskState::Healthy;
                        t.updated_at = now;
                    }
                }
                Behaviour::HealthyAfter(k) => {
                    if has_checks && t.state == TaskState::Running && *ran >= k {
                        t.state = TaskState::Healthy;
                        t.updated_at = now;
                    }
                }
                Behaviour::NeverHealthy(after) => {
                    if after.is_some_and(|k| *ran >= k) && t.state != TaskState::Unhealthy {
                        t.state = TaskState::Unhealthy;
                        t.updated_at = now;
                    }
                }
                Behaviour::Crash(k) => {
                    if *ran >= k {
                        end(t, TaskState::Failed);
                    }
                }
            }
        }
    }

    /// Plans on the current snapshot and applies the plan like the server: persist,
    /// then launch and kill, then keep the answers for the next snapshot. An armed
    /// [`Fault`] strikes at the first plan that launches something.
    pub fn plan_and_apply(&mut self) -> AppsPlan {
        if self.blind {
            return AppsPlan::default();
        }
        let plan = apps::plan(&self.snapshot());
        self.refused.clear();
        for a in &plan.apps {
            self.store.apps.insert(a.id().clone(), a.clone());
            self.store
                .versions
                .insert((a.id().clone(), a.version.clone()), a.definition.clone());
        }
        for d in &plan.deployments {
            self.store.deployments.insert(d.id.clone(), d.clone());
        }
        for id in &plan.removed {
            self.store.apps.remove(id);
        }
        self.last_plan = plan.clone();
        let fault = self.fault.take_if(|_| !plan.launches.is_empty());
        if fault == Some(Fault::SchedulerCrashBeforeSend) {
            self.restart_scheduler();
            return plan;
        }
        let view_before = self.tasks.clone();
        let mut answers = Vec::new();
        for l in &plan.launches {
            if self.master_down.is_some() {
                continue;
            }
            let id = l.id.clone().expect("the engine chooses every task id");
            if let Some(t) = self.tasks.iter().find(|t| t.spec.id == id) {
                assert_eq!(
                    (&t.spec.node, &t.spec.definition),
                    (&l.node, &l.task),
                    "a repeat of {id} must be the same launch"
                );
                answers.push(Ok(t.clone()));
                continue;
            }
            if self.refuse_on.contains(&l.node) {
                answers.push(Err(id));
                continue;
            }
            let task = Task::staging(
                TaskSpec {
                    id: id.clone(),
                    node: l.node.clone(),
                    definition: l.task.clone(),
                    host_ports: Vec::new(),
                },
                self.now,
            );
            self.tasks.push(task.clone());
            answers.push(Ok(task));
        }
        self.kills.extend(plan.kills.iter().cloned());
        if self.master_down.is_none() {
            for k in &plan.kills {
                if let Some(t) = self
                    .tasks
                    .iter_mut()
                    .find(|t| t.spec.id == k.task && t.state.is_active())
                {
                    t.goal = TaskGoal::Kill;
                    t.updated_at = self.now;
                }
            }
        }
        match fault {
            Some(Fault::MasterCrashAfterCommit { down, stale }) => {
                // Durable, not answered; the scheduler's last read predates the launches.
                self.master_down = Some(down);
                self.stale_for = stale;
                self.frozen_view = Some(view_before);
                self.accepted.clear();
            }
            Some(Fault::SchedulerCrashBeforeAnswer) => self.restart_scheduler(),
            _ => {
                for a in answers {
                    match a {
                        Ok(t) => self.accepted.push(t),
                        Err(id) => self.refused.push(id),
                    }
                }
            }
        }
        plan
    }

    /// The scheduler is killed and started again: its store is read back, and what it
    /// kept in memory (answers, refusals, its view of the master) is gone.
    pub fn restart_scheduler(&mut self) {
        self.store = self.store.round_trip();
        self.accepted.clear();
        self.refused.clear();
        self.frozen_view = None;
        self.blind = self.master_down.is_some();
    }

    /// The master's downtime and the scheduler's view of it move one tick on.
    fn update_view(&mut self) {
        if let Some(left) = self.master_down {
            if left == 0 {
                self.master_down = None;
                self.blind = false;
            } else {
                self.master_down = Some(left - 1);
            }
        }
        if self.master_down.is_none() && self.frozen_view.is_some() {
            if self.stale_for == 0 {
                self.frozen_view = None;
                self.accepted.clear();
            } else {
                self.stale_for -= 1;
            }
        }
    }

    /// How many tasks the master ever created for `app` (it forgets none).
    pub fn created_for(&self, app: &str) -> usize {
        self.tasks
            .iter()
            .filter(|t| label(t, labels::APP_ID) == app)
            .count()
    }

    /// One tick: advance the master, then plan and apply; records a sample per app.
    pub fn tick(&mut self) -> AppsPlan {
        self.advance();
        self.ticks += 1;
        self.update_view();
        let plan = self.plan_and_apply();
        let ids: Vec<String> = self.store.apps.keys().map(|a| a.to_string()).collect();
        for id in ids {
            let s = self.sample(&id);
            self.samples.entry(id).or_default().push(s);
        }
        plan
    }

    /// Ticks until `done` holds or `max` ticks pass; returns whether it held.
    pub fn run_until(&mut self, max: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..max {
            self.tick();
            if done(self) {
                return true;
            }
        }
        false
    }

    /// The active tasks of `app`.
    pub fn active(&self, app: &str) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| t.state.is_active() && label(t, labels::APP_ID) == app)
            .collect()
    }

    /// Counts of `app`'s tasks right now.
    pub fn sample(&self, app: &str) -> Sample {
        let mut s = Sample {
            tick: self.ticks,
            ..Sample::default()
        };
        for t in self.active(app) {
            let v = label(t, labels::VERSION).to_string();
            s.active += 1;
            *s.active_by_version.entry(v.clone()).or_default() += 1;
            if t.goal == TaskGoal::Run && is_ready(t) {
                s.ready += 1;
                *s.ready_by_version.entry(v).or_default() += 1;
            }
        }
        s
    }

    /// The app's state in the store.
    pub fn app(&self, id: &str) -> &AppState {
        &self.store.apps[&AppId::parse(id).unwrap()]
    }

    /// A deployment by id.
    pub fn deployment(&self, id: &DeploymentId) -> &Deployment {
        &self.store.deployments[id]
    }

    /// Whether `app` has no running deployment.
    pub fn settled(&self, app: &str) -> bool {
        self.store.running(app).is_none()
    }

    /// Whether the deployment reached `state`.
    pub fn deployment_is(&self, id: &DeploymentId, state: DeploymentState) -> bool {
        self.store
            .deployments
            .get(id)
            .is_some_and(|d| d.state == state)
    }
}

/// A label of a task ("" when absent).
pub fn label<'t>(t: &'t Task, key: &str) -> &'t str {
    t.spec.definition.labels.get(key).map_or("", String::as_str)
}

/// Healthy, or running without health checks.
pub fn is_ready(t: &Task) -> bool {
    match t.state {
        TaskState::Healthy => true,
        TaskState::Running => t.spec.definition.health_checks.is_empty(),
        _ => false,
    }
}
