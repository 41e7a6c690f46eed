//! Launches in flight: task ids the engine chooses, and the launches it decided before
//! that the master has not shown yet ([`PendingLaunch`]).
//!
//! A launch is decided once. The engine picks its task id (Marathon's shape,
//! `<app>.<32 hex>`, from the snapshot's [`id_seed`](super::Snapshot::id_seed)), records
//! it in the app's `pending_launches`, and the server persists that before it sends the
//! launch. Each later tick, a pending launch is:
//! - *confirmed* when the app's tasks (the master's, plus those it answered since its
//!   last read) hold its id: it is forgotten, the task counts for itself;
//! - *refused* when the master said it will not run it (the server hands the ids back
//!   in [`Snapshot::refused`](super::Snapshot::refused)): it is forgotten, and the
//!   instance is decided again, under a new id;
//! - *outstanding* otherwise: the instance counts as starting (a stand-in staging task
//!   takes its place in the buckets), and the launch is sent again with the same id and
//!   definition, which the master answers with the task if it has it. An outstanding
//!   launch the tick decides to kill is forgotten and its kill sent (a harmless 404 if
//!   the master never had it; a task it did have shows up and goes as any extra).
//!
//! So a lost answer, a master restart or a scheduler restart between the decision and
//! the answer costs a repeat, never a second instance.

use std::collections::BTreeSet;

use drover_api::app::AppDefinition;
use drover_api::task::{LaunchRequest, Task, TaskDefinition, TaskId, TaskSpec};

use super::state::{AppState, PendingLaunch};

/// Task ids for the launches of one tick: distinct within the tick, never one the
/// snapshot holds already (a task, a pending launch), and distinct across ticks as long
/// as every tick has its own random seed.
#[derive(Debug, Clone)]
pub struct TaskIds {
    seed: u128,
    next: u128,
    taken: BTreeSet<TaskId>,
}

impl TaskIds {
    /// Ids drawn from `seed`, none of them in `taken`.
    pub fn new(seed: u128, taken: BTreeSet<TaskId>) -> TaskIds {
        TaskIds {
            seed,
            next: 0,
            taken,
        }
    }

    /// The next id, `<name made safe>.<32 hex digits>`: the seed plus a counter,
    /// formatted as a random (version 4) UUID's simple form. Two ids of one tick differ
    /// by less than 2^64 and so in some bit the UUID form keeps.
    pub fn next(&mut self, name: &str) -> TaskId {
        loop {
            let mut v = self.seed.wrapping_add(self.next);
            self.next += 1;
            v = (v & !(0xF << 76)) | (0x4 << 76);
            v = (v & !(0x3 << 62)) | (0x2 << 62);
            let id = TaskId::for_name(name, &format!("{v:032x}"));
            if self.taken.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// What a tick does with an app's pending launches.
#[derive(Debug, Default)]
pub struct Outstanding {
    /// Stand-ins for the outstanding launches: staging tasks of their version and node.
    pub placeholders: Vec<Task>,
    /// The repeats to send, one per outstanding launch whose definition is known.
    pub resends: Vec<LaunchRequest>,
}

/// Forgets the confirmed and refused launches of `app` and describes the rest.
/// `tasks` are the app's tasks; `versions` stored definitions (a launch of an earlier
/// version is sent again with that version's definition; one whose definition is not
/// given still counts, and is sent again once it is).
pub fn outstanding(
    app: &mut AppState,
    tasks: &[&Task],
    refused: &BTreeSet<&TaskId>,
    versions: &[AppDefinition],
) -> Outstanding {
    let seen: BTreeSet<&TaskId> = tasks.iter().map(|t| &t.spec.id).collect();
    app.pending_launches
        .retain(|p| !seen.contains(&p.task_id) && !refused.contains(&p.task_id));
    let mut out = Outstanding::default();
    for p in &app.pending_launches {
        let definition = definition_of(app, &p.version, versions);
        if let Some(task) = &definition {
            out.resends.push(LaunchRequest {
                node: p.node.clone(),
                id: Some(p.task_id.clone()),
                task: task.clone(),
            });
        }
        let definition = definition.unwrap_or_else(|| stand_in_definition(app, &p.version));
        out.placeholders.push(placeholder(p, definition));
    }
    out
}

/// The task definition instances of `version` run, if its definition is at hand.
pub fn definition_of(
    app: &AppState,
    version: &str,
    versions: &[AppDefinition],
) -> Option<TaskDefinition> {
    if version == app.version {
        return Some(app.definition.to_task_definition().task);
    }
    versions
        .iter()
        .find(|d| d.id == *app.id() && d.version.as_deref() == Some(version))
        .map(|d| d.to_task_definition().task)
}

/// Enough of a definition for the buckets when the real one is not at hand: the app's
/// name and its labels with `version`.
fn stand_in_definition(app: &AppState, version: &str) -> TaskDefinition {
    let mut task = app.definition.to_task_definition().task;
    task.labels.insert(
        drover_api::task::labels::VERSION.to_string(),
        version.to_string(),
    );
    task
}

/// A staging task standing for a pending launch.
pub fn placeholder(p: &PendingLaunch, definition: TaskDefinition) -> Task {
    Task::staging(
        TaskSpec {
            id: p.task_id.clone(),
            node: p.node.clone(),
            definition,
            host_ports: Vec::new(),
        },
        p.decided_at,
    )
}
