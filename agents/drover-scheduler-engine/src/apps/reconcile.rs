//! Reconcile: sort one app's tasks (as the master reports them) into named buckets,
//! relative to the app's target version.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use drover_api::app::KillSelection;
use drover_api::task::{Task, TaskGoal, TaskId, TaskState, labels};

/// The app id a task carries in its `APP_ID` label.
pub fn app_of(task: &Task) -> Option<&str> {
    task.spec
        .definition
        .labels
        .get(labels::APP_ID)
        .map(String::as_str)
}

/// The version a task carries in its `VERSION` label ("" when it has none, which is
/// never a target version, so such a task counts as old).
pub fn version_of(task: &Task) -> &str {
    task.spec
        .definition
        .labels
        .get(labels::VERSION)
        .map_or("", String::as_str)
}

/// Whether the task serves: healthy, or running when it has no health checks.
pub fn is_ready(task: &Task) -> bool {
    match task.state {
        TaskState::Healthy => true,
        TaskState::Running => task.spec.definition.health_checks.is_empty(),
        _ => false,
    }
}

/// Whether an unhealthy report means "replace it": Marathon never kills for a check
/// with `maxConsecutiveFailures: 0`, so a task whose checks all say 0 stays (not ready).
pub fn kills_when_unhealthy(task: &Task) -> bool {
    let checks = &task.spec.definition.health_checks;
    checks.is_empty() || checks.iter().any(|c| c.max_consecutive_failures > 0)
}

/// When the task started (or was staged, before it starts): the age `killSelection`
/// and the backoff reset read.
pub fn started(task: &Task) -> DateTime<Utc> {
    task.started_at.unwrap_or(task.staged_at)
}

/// When a terminal task ended.
pub fn ended(task: &Task) -> DateTime<Utc> {
    task.finished_at.unwrap_or(task.updated_at)
}

/// An app's tasks sorted by what the engine does with them. Every task of the app is in
/// exactly one bucket. Each bucket is in a fixed order (by task id), so decisions do not
/// depend on the order the master listed the tasks in.
#[derive(Debug, Clone, Default)]
pub struct Buckets<'t> {
    /// Target version, wanted, ready (and past its readiness checks when it has to pass
    /// them).
    pub ready: Vec<&'t Task>,
    /// Target version, wanted, staging or running without a passing health check (or
    /// readiness check) yet.
    pub starting: Vec<&'t Task>,
    /// Other versions, wanted, ready.
    pub old_ready: Vec<&'t Task>,
    /// Other versions, wanted, not ready (and not unhealthy).
    pub old_starting: Vec<&'t Task>,
    /// Wanted but reported unhealthy (any version): killed and replaced (unless every
    /// health check has `maxConsecutiveFailures: 0`; such a task is only not ready).
    pub unhealthy: Vec<&'t Task>,
    /// Asked to stop (goal `kill`) and still active.
    pub stopping: Vec<&'t Task>,
    /// Ended.
    pub ended: Vec<&'t Task>,
}

impl<'t> Buckets<'t> {
    /// Sorts `tasks` (all of one app) relative to `target_version`.
    pub fn sort(tasks: &[&'t Task], target_version: &str) -> Buckets<'t> {
        Buckets::sort_gated(tasks, target_version, &BTreeSet::new())
    }

    /// [`Buckets::sort`], where the tasks in `not_ready` (instances of the target
    /// version whose readiness checks have not passed yet) count as `starting` however
    /// healthy they are.
    pub fn sort_gated(
        tasks: &[&'t Task],
        target_version: &str,
        not_ready: &BTreeSet<TaskId>,
    ) -> Buckets<'t> {
        let mut b = Buckets::default();
        let mut sorted: Vec<&'t Task> = tasks.to_vec();
        sorted.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        for t in sorted {
            let bucket = if t.state.is_terminal() {
                &mut b.ended
            } else if t.goal == TaskGoal::Kill {
                &mut b.stopping
            } else if t.state == TaskState::Unhealthy && kills_when_unhealthy(t) {
                &mut b.unhealthy
            } else {
                let ready = is_ready(t) && !not_ready.contains(&t.spec.id);
                match (version_of(t) == target_version, ready) {
                    (true, true) => &mut b.ready,
                    (true, false) => &mut b.starting,
                    (false, true) => &mut b.old_ready,
                    (false, false) => &mut b.old_starting,
                }
            };
            bucket.push(t);
        }
        b
    }

    /// Active tasks of every bucket.
    pub fn active(&self) -> usize {
        self.alive() + self.unhealthy.len() + self.stopping.len()
    }

    /// Wanted, active, not unhealthy tasks of any version.
    pub fn alive(&self) -> usize {
        self.ready.len() + self.starting.len() + self.old_ready.len() + self.old_starting.len()
    }

    /// Whether the app runs exactly `n` ready instances of the target version and
    /// nothing else.
    pub fn settled(&self, n: usize) -> bool {
        self.ready.len() == n && self.active() == n
    }
}

/// Orders candidates for killing: the first ones go first. Instances of other versions
/// than `target` (oldest version first) go before the target's; then `selection` (by
/// start time); then task id.
pub fn kill_order(tasks: &mut [&Task], selection: KillSelection, target: &str) {
    tasks.sort_by(|a, b| {
        let va = version_of(a);
        let vb = version_of(b);
        (va == target)
            .cmp(&(vb == target))
            .then_with(|| va.cmp(vb))
            .then_with(|| match selection {
                KillSelection::YoungestFirst => started(b).cmp(&started(a)),
                KillSelection::OldestFirst => started(a).cmp(&started(b)),
            })
            .then_with(|| a.spec.id.cmp(&b.spec.id))
    });
}
