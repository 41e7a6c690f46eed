//! A simulated master for driving the real scheduler runtimes: it implements the
//! runtimes' master port in memory, publishes its tasks and nodes on the view channel
//! as the master-sync loop would (every [`READ_EVERY`], with `as_of` the moment of the
//! read), and can lose what a real network loses: kills, and the answers to launches.
//! Time is tokio's (the tests pause it), so the runtimes' seconds cost nothing.

#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_api::node::Node;
use drover_api::task::{LaunchRequest, Task, TaskGoal, TaskId, TaskSpec, TaskState};
use drover_scheduler::runtime::clock::{Clock, TokioClock};
use drover_scheduler::runtime::component::{LoopContext, Ports};
use drover_scheduler::runtime::launcher::LaunchFailure;
use drover_scheduler::runtime::master_port::MasterPort;
use drover_scheduler::runtime::master_sync::MasterView;
use drover_store::MemoryStore;
use futures::future::BoxFuture;
use serde_json::json;
use tokio::sync::watch;

/// How often the simulated master is "read".
pub const READ_EVERY: Duration = Duration::from_millis(200);

/// What the simulated master holds and what it was asked.
#[derive(Debug, Default)]
pub struct SimState {
    pub tasks: Vec<Task>,
    pub nodes: Vec<Node>,
    /// Every kill request received, lost ones included.
    pub kills_asked: Vec<TaskId>,
    /// Every launch request received, by task id.
    pub launches_asked: Vec<TaskId>,
    /// How many of the next kill requests are lost on the way.
    pub lose_kills: usize,
    /// How many of the next launches are made but their answers lost.
    pub lose_launch_answers: usize,
}

/// The simulated master; cheap to clone (shared state).
#[derive(Clone)]
pub struct SimMaster {
    pub state: Arc<Mutex<SimState>>,
    clock: TokioClock,
}

impl SimMaster {
    /// A master with `nodes` ready nodes of 8 CPUs and 16 GiB each.
    pub fn new(nodes: usize, clock: TokioClock) -> SimMaster {
        let now = clock.now();
        let nodes = (1..=nodes)
            .map(|i| node(&format!("node-{i}"), now))
            .collect();
        SimMaster {
            state: Arc::new(Mutex::new(SimState {
                nodes,
                ..SimState::default()
            })),
            clock,
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Tasks that run (or are starting) with goal `run`.
    pub fn running(&self) -> Vec<Task> {
        self.with(|s| {
            s.tasks
                .iter()
                .filter(|t| t.state.is_active() && t.goal == TaskGoal::Run)
                .cloned()
                .collect()
        })
    }

    /// How many tasks run (or are starting) with goal `run` and `label` set to `value`.
    pub fn running_with_label(&self, label: &str, value: &str) -> usize {
        self.running()
            .iter()
            .filter(|t| t.spec.definition.labels.get(label).map(String::as_str) == Some(value))
            .count()
    }

    /// Publishes the master's state on `tx` every [`READ_EVERY`] until `stop`.
    pub fn publish(&self, tx: watch::Sender<Arc<MasterView>>, mut stop: watch::Receiver<bool>) {
        let sim = self.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            loop {
                reads += 1;
                let (tasks, nodes) = sim.with(|s| (s.tasks.clone(), s.nodes.clone()));
                let view = MasterView {
                    tasks: Some(Arc::new(tasks)),
                    nodes: Arc::new(nodes),
                    as_of: Some(tokio::time::Instant::now()),
                    reachable: true,
                    reads,
                };
                if tx.send(Arc::new(view)).is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(READ_EVERY) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
    }

    fn launch_one(&self, req: LaunchRequest) -> Result<Task, LaunchFailure> {
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap();
        let id = req
            .id
            .clone()
            .unwrap_or_else(|| TaskId::from(format!("t{}", s.launches_asked.len()).as_str()));
        s.launches_asked.push(id.clone());
        // Launches are idempotent by id, as the master's are.
        let task = match s.tasks.iter().find(|t| t.spec.id == id) {
            Some(t) => t.clone(),
            None => {
                let mut t = Task::staging(
                    TaskSpec {
                        id,
                        node: req.node,
                        definition: req.task,
                        host_ports: Vec::new(),
                    },
                    now,
                );
                t.state = TaskState::Running;
                t.started_at = Some(now);
                s.tasks.push(t.clone());
                t
            }
        };
        if s.lose_launch_answers > 0 {
            s.lose_launch_answers -= 1;
            return Err(LaunchFailure::Unanswered("the answer was lost".into()));
        }
        Ok(task)
    }

    fn kill_one(&self, id: TaskId) {
        let now = self.clock.now();
        let mut s = self.state.lock().unwrap();
        s.kills_asked.push(id.clone());
        if s.lose_kills > 0 {
            s.lose_kills -= 1;
            return;
        }
        if let Some(t) = s
            .tasks
            .iter_mut()
            .find(|t| t.spec.id == id && t.state.is_active())
        {
            t.goal = TaskGoal::Kill;
            t.state = TaskState::Killed;
            t.finished_at = Some(now);
            t.updated_at = now;
        }
    }
}

impl MasterPort for SimMaster {
    fn launch(
        &self,
        launches: Vec<LaunchRequest>,
    ) -> BoxFuture<'_, Vec<Result<Task, LaunchFailure>>> {
        let answers = launches.into_iter().map(|l| self.launch_one(l)).collect();
        Box::pin(async move { answers })
    }

    fn kill(&self, tasks: Vec<TaskId>) -> BoxFuture<'_, ()> {
        for id in tasks {
            self.kill_one(id);
        }
        Box::pin(async {})
    }
}

fn node(name: &str, now: DateTime<Utc>) -> Node {
    let total = json!({ "cpus": 8.0, "mem": 16384.0, "disk": 100000.0 });
    serde_json::from_value(json!({
        "name": name,
        "state": "ready",
        "draining": false,
        "address": format!("http://{name}:5051"),
        "version": "sim",
        "attributes": {},
        "capabilities": [],
        "total": total,
        "reserved": { "cpus": 0.0, "mem": 0.0, "disk": 0.0 },
        "allocated": { "cpus": 0.0, "mem": 0.0, "disk": 0.0 },
        "free": total,
        "ports": { "begin": 31000, "end": 32000 },
        "portsAllocated": 0,
        "host": serde_json::to_value(drover_api::node::HostInfo::default()).unwrap(),
        "activeTasks": 0,
        "registeredAt": now,
        "lastHeartbeatAt": now,
    }))
    .unwrap()
}

/// A simulated cluster for one runtime: the master, the runtime's ports, and the loop
/// context to spawn it with. Dropping `stop` (or sending true) ends the loops.
pub struct SimCluster {
    pub master: SimMaster,
    pub ports: Ports,
    pub ctx: LoopContext,
    pub stop: watch::Sender<bool>,
}

/// A cluster of `nodes` nodes on a clock that starts at `start`; call with tokio's
/// time paused.
pub fn cluster(nodes: usize, start: DateTime<Utc>) -> SimCluster {
    let clock = TokioClock::starting_at(start);
    let master = SimMaster::new(nodes, clock);
    let (view_tx, view_rx) = watch::channel(Arc::new(MasterView::default()));
    let (stop, stop_rx) = watch::channel(false);
    master.publish(view_tx, stop_rx.clone());
    let ports = Ports {
        store: Arc::new(MemoryStore::new()),
        master: Arc::new(master.clone()),
        view: view_rx.clone(),
        clock: Arc::new(clock),
    };
    SimCluster {
        master,
        ports,
        ctx: LoopContext {
            view: view_rx,
            stop: stop_rx,
        },
        stop,
    }
}

/// Lets simulated time pass until `done` holds, for at most `limit`; whether it held.
pub async fn run_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}
