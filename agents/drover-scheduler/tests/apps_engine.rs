//! The app engine through the in-memory harness (`apps_sim`): keep-running, backoff,
//! killSelection, rolling upgrades under the upgrade strategy, deadlines and
//! auto-revert, conflicts and force, restarts, placement reasons, and properties.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod apps_sim;

use apps_sim::{Behaviour, Fault, Sim, app, label};
use chrono::TimeDelta;
use drover_api::ErrorCode;
use drover_api::app::{
    AppHealthCheck, AppHealthProtocol, Constraint, ConstraintOperator, KillSelection,
    UpgradeStrategy,
};
use drover_api::deployment::{DeploymentKind, DeploymentState};
use drover_api::node::NodeState;
use drover_api::task::{TaskGoal, TaskState, labels};
use drover_scheduler::engine::apps::{self, AppChange, KillReason, Limits};
use proptest::prelude::*;

fn with_checks(mut a: drover_api::app::AppDefinition) -> drover_api::app::AppDefinition {
    let mut hc = AppHealthCheck::new(AppHealthProtocol::Command);
    hc.command = Some("true".into());
    a.health_checks = vec![hc];
    a
}

fn strategy(mhc: f64, moc: f64) -> UpgradeStrategy {
    UpgradeStrategy {
        minimum_health_capacity: mhc,
        maximum_over_capacity: moc,
    }
}

/// Creates `def` and ticks until its deployment succeeded.
fn create_settled(sim: &mut Sim, def: drover_api::app::AppDefinition) {
    let id = def.id.to_string();
    let began = sim.change(AppChange::Create(def), &id, false).unwrap();
    assert!(sim.run_until(50, |s| {
        s.deployment_is(&began.deployment.id, DeploymentState::Succeeded)
    }));
}

#[test]
fn create_starts_instances_spread_and_succeeds() {
    let mut sim = Sim::new(2);
    let began = sim
        .change(
            AppChange::Create(with_checks(app("/web", 3, "serve"))),
            "/web",
            false,
        )
        .unwrap();
    assert_eq!(began.deployment.kind, DeploymentKind::Create);
    assert!(sim.run_until(10, |s| s.settled("/web")));
    let d = sim.deployment(&began.deployment.id);
    assert_eq!(d.state, DeploymentState::Succeeded);
    assert_eq!(d.percent(), 100);
    let tasks = sim.active("/web");
    assert_eq!(tasks.len(), 3);
    let nodes: std::collections::BTreeSet<_> = tasks.iter().map(|t| t.spec.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "spread over both nodes");
    assert!(tasks.iter().all(|t| t.state == TaskState::Healthy));
    assert_eq!(
        sim.app("/web").last_healthy_version.as_deref(),
        Some(sim.app("/web").version.as_str())
    );
    let st = &sim.last_plan.status[0];
    assert_eq!(st.tasks.healthy, 3);
    assert!(st.deployment.is_none());
}

#[test]
fn keep_running_replaces_failed_killed_lost_and_unhealthy_instances() {
    let mut sim = Sim::new(3);
    create_settled(&mut sim, with_checks(app("/web", 3, "serve")));
    let alive = |s: &Sim| {
        s.active("/web")
            .iter()
            .filter(|t| t.goal == TaskGoal::Run)
            .count()
    };

    // Exits on its own.
    let victim = sim.active("/web")[0].spec.id.clone();
    let t = sim.tasks.iter_mut().find(|t| t.spec.id == victim).unwrap();
    t.state = TaskState::Failed;
    t.finished_at = Some(sim.now);
    sim.tick();
    assert_eq!(
        sim.app("/web").backoff.consecutive_failures,
        1,
        "an exit is a failure"
    );
    assert!(sim.run_until(5, |s| alive(s) == 3 && s.sample("/web").ready == 3));

    // Killed outside Drover: replaced, not counted.
    let victim = sim.active("/web")[0].spec.id.clone();
    let t = sim.tasks.iter_mut().find(|t| t.spec.id == victim).unwrap();
    t.state = TaskState::Killed;
    t.finished_at = Some(sim.now);
    let p = sim.tick();
    assert_eq!(p.launches.len(), 1, "replaced at once");
    assert_eq!(sim.app("/web").backoff.consecutive_failures, 1);

    // Unhealthy: killed and replaced.
    assert!(sim.run_until(5, |s| s.sample("/web").ready == 3));
    let victim = sim.active("/web")[0].spec.id.clone();
    sim.tasks
        .iter_mut()
        .find(|t| t.spec.id == victim)
        .unwrap()
        .state = TaskState::Unhealthy;
    sim.now += TimeDelta::seconds(10); // past the backoff of the first failure
    let p = sim.plan_and_apply();
    assert!(
        p.kills
            .iter()
            .any(|k| k.task == victim && k.reason == KillReason::Unhealthy)
    );
    assert_eq!(sim.app("/web").backoff.consecutive_failures, 2);
    // The replacement waits for the backoff of this second failure (1.15 s).
    assert!(p.launches.is_empty());
    assert!(
        p.status[0].waiting.iter().any(|w| w.contains("backoff")),
        "{:?}",
        p.status[0]
    );
    assert!(p.wake_at.is_some());
    assert!(sim.run_until(5, |s| s.sample("/web").ready == 3
        && s.active("/web").len() == 3));

    // Lost with its node: replaced on the other nodes.
    sim.now += TimeDelta::seconds(10);
    let lost_node = sim.active("/web")[0].spec.node.clone();
    sim.nodes
        .iter_mut()
        .find(|n| n.name == lost_node)
        .unwrap()
        .state = NodeState::Unreachable;
    assert!(sim.run_until(5, |s| s.sample("/web").ready == 3));
    assert!(sim.active("/web").iter().all(|t| t.spec.node != lost_node));
    assert_eq!(
        sim.app("/web").backoff.consecutive_failures,
        2,
        "a lost node is not the app's failure"
    );
}

#[test]
fn unhealthy_with_max_consecutive_failures_zero_is_kept() {
    let mut sim = Sim::new(1);
    let mut def = with_checks(app("/web", 1, "v1"));
    def.health_checks[0].max_consecutive_failures = 0;
    create_settled(&mut sim, def);
    let id = sim.active("/web")[0].spec.id.clone();
    sim.tasks
        .iter_mut()
        .find(|t| t.spec.id == id)
        .unwrap()
        .state = TaskState::Unhealthy;
    let p = sim.plan_and_apply();
    assert!(p.kills.is_empty() && p.launches.is_empty(), "{p:?}");
    assert_eq!(p.status[0].tasks.unhealthy, 1);
    assert_eq!(p.status[0].tasks.ready, 0);
}

#[test]
fn crash_loop_backoff_grows_caps_and_resets() {
    let mut sim = Sim::new(1);
    let mut def = app("/crash", 1, "crash");
    def.backoff_seconds = 1.0;
    def.backoff_factor = 2.0;
    def.max_launch_delay_seconds = 10.0;
    sim.behaviour = Box::new(|_| Behaviour::Crash(1));
    sim.change(AppChange::Create(def), "/crash", false).unwrap();
    let mut delays = Vec::new();
    let mut last = 0;
    let mut launches_at = Vec::new();
    for _ in 0..120 {
        let p = sim.tick();
        if !p.launches.is_empty() {
            launches_at.push(sim.now);
        }
        let b = &sim.app("/crash").backoff;
        if b.consecutive_failures > last {
            delays.push(b.delay_seconds);
            last = b.consecutive_failures;
        }
        if delays.len() >= 7 {
            break;
        }
    }
    assert_eq!(delays, vec![1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]);
    // The launches are spaced by the delays (plus the ticks a crash takes).
    let gaps: Vec<i64> = launches_at
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect();
    assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "gaps grow: {gaps:?}");
    let st = &sim.last_plan.status[0];
    assert!(st.backoff.is_some());

    // The app stops crashing: after 5 minutes up, the backoff resets.
    sim.behaviour = Box::new(|_| Behaviour::Healthy);
    assert!(sim.run_until(400, |s| s.app("/crash").backoff.consecutive_failures == 0));
    assert!(sim.last_plan.status[0].backoff.is_none());

    // A new version starts clean too.
    sim.behaviour = Box::new(|_| Behaviour::Crash(1));
    assert!(sim.run_until(30, |s| s.app("/crash").backoff.consecutive_failures >= 2));
    let mut v2 = sim.app("/crash").definition.clone();
    v2.cmd = Some("crash --less".into());
    let began = sim.change(AppChange::Update(v2), "/crash", false).unwrap();
    assert_eq!(began.app.backoff.consecutive_failures, 0);
    let p = sim.tick();
    assert_eq!(p.launches.len(), 1, "the new version launches at once");
}

fn staggered(sim: &mut Sim, selection: KillSelection) {
    let mut def = app("/ks", 1, "serve");
    def.kill_selection = selection;
    create_settled(sim, def);
    for n in 2..=5 {
        sim.change(AppChange::Scale { instances: n }, "/ks", false)
            .unwrap();
        assert!(sim.run_until(10, |s| s.settled("/ks")));
        sim.tick();
    }
    assert_eq!(sim.active("/ks").len(), 5);
}

#[test]
fn scale_down_honours_kill_selection() {
    for selection in [KillSelection::YoungestFirst, KillSelection::OldestFirst] {
        let mut sim = Sim::new(2);
        staggered(&mut sim, selection);
        let mut by_start: Vec<_> = sim
            .active("/ks")
            .iter()
            .map(|t| (t.started_at.unwrap(), t.spec.id.clone()))
            .collect();
        by_start.sort();
        let expected: Vec<_> = match selection {
            KillSelection::YoungestFirst => by_start[3..].iter().map(|x| x.1.clone()).collect(),
            KillSelection::OldestFirst => by_start[..2].iter().map(|x| x.1.clone()).collect(),
        };
        let began = sim
            .change(AppChange::Scale { instances: 3 }, "/ks", false)
            .unwrap();
        assert_eq!(began.deployment.kind, DeploymentKind::Scale);
        let p = sim.tick();
        let mut killed: Vec<_> = p.kills.iter().map(|k| k.task.clone()).collect();
        killed.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(killed, expected, "{selection:?}");
        assert!(p.kills.iter().all(|k| k.reason == KillReason::ScaleDown));
        assert!(p.launches.is_empty());
        assert!(sim.run_until(5, |s| {
            s.deployment_is(&began.deployment.id, DeploymentState::Succeeded)
        }));
        assert_eq!(sim.active("/ks").len(), 3);
    }
}

/// Rolls `/web` (4 instances, health checks) from v1 to v2 under `mhc`/`moc` and
/// returns the sim; asserts the bounds at every tick.
fn rollout(mhc: f64, moc: f64) -> (Sim, usize) {
    let mut sim = Sim::new(3);
    let mut def = with_checks(app("/web", 4, "v1"));
    def.upgrade_strategy = strategy(mhc, moc);
    create_settled(&mut sim, def.clone());
    let v1 = sim.app("/web").version.clone();
    def.cmd = Some("v2".into());
    let began = sim.change(AppChange::Update(def), "/web", false).unwrap();
    assert_eq!(began.deployment.kind, DeploymentKind::Update);
    let v2 = began.app.version.clone();
    assert_ne!(v1, v2);
    let limits = Limits::for_counts(4, mhc, moc);
    let start = sim.samples["/web"].len();
    assert!(sim.run_until(60, |s| {
        s.deployment_is(&began.deployment.id, DeploymentState::Succeeded)
    }));
    for s in &sim.samples["/web"][start..] {
        assert!(
            s.ready >= limits.min_healthy as usize,
            "mhc {mhc} moc {moc}: {s:?}"
        );
        assert!(
            s.active <= limits.max_total as usize,
            "mhc {mhc} moc {moc}: {s:?}"
        );
    }
    let tasks = sim.active("/web");
    assert_eq!(tasks.len(), 4);
    assert!(
        tasks
            .iter()
            .all(|t| label(t, labels::VERSION) == v2 && t.state == TaskState::Healthy)
    );
    (sim, start)
}

#[test]
fn rollout_with_half_minimum_health_never_drops_below_two() {
    for moc in [0.0, 0.25, 0.5, 1.0] {
        let (sim, start) = rollout(0.5, moc);
        let min = sim.samples["/web"][start..]
            .iter()
            .map(|s| s.ready)
            .min()
            .unwrap();
        assert!(min >= 2, "moc {moc}: min ready {min}");
    }
}

#[test]
fn rollout_with_full_health_and_no_over_capacity_uses_one_extra() {
    // Marathon's stuck case: Drover allows one extra instance at a time.
    assert_eq!(
        Limits::for_counts(4, 1.0, 0.0),
        Limits {
            min_healthy: 4,
            max_total: 5
        }
    );
    let (sim, start) = rollout(1.0, 0.0);
    assert!(
        sim.samples["/web"][start..]
            .iter()
            .all(|s| s.ready >= 4 && s.active <= 5)
    );
    // And the usual defaults (1, 1).
    rollout(1.0, 1.0);
    rollout(0.0, 0.0);
}

#[test]
fn restart_replaces_every_instance_with_the_same_definition() {
    let mut sim = Sim::new(2);
    create_settled(&mut sim, with_checks(app("/web", 3, "v1")));
    let before: Vec<_> = sim
        .active("/web")
        .iter()
        .map(|t| t.spec.id.clone())
        .collect();
    let start = sim.samples["/web"].len();
    let began = sim.change(AppChange::Restart, "/web", false).unwrap();
    assert_eq!(began.deployment.kind, DeploymentKind::Restart);
    assert_eq!(began.app.definition.cmd.as_deref(), Some("v1"));
    assert!(sim.run_until(30, |s| s.settled("/web")));
    let after = sim.active("/web");
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|t| !before.contains(&t.spec.id)));
    assert!(sim.samples["/web"][start..].iter().all(|s| s.ready >= 3));
}

#[test]
fn version_whose_health_never_passes_fails_at_the_deadline_and_reverts() {
    for moc in [0.0, 1.0] {
        let mut sim = Sim::new(3);
        sim.behaviour = Box::new(|t| {
            if t.spec.definition.cmd.as_deref() == Some("v2") {
                Behaviour::NeverHealthy(Some(3))
            } else {
                Behaviour::Healthy
            }
        });
        let mut def = with_checks(app("/web", 4, "v1"));
        def.upgrade_strategy = strategy(0.5, moc);
        def.auto_revert = true;
        def.progress_deadline_seconds = 30.0;
        create_settled(&mut sim, def.clone());
        let v1 = sim.app("/web").version.clone();
        def.cmd = Some("v2".into());
        let began = sim.change(AppChange::Update(def), "/web", false).unwrap();
        assert_eq!(began.deployment.revert_to.as_deref(), Some(v1.as_str()));
        let start = sim.samples["/web"].len();
        assert!(sim.run_until(100, |s| {
            s.deployment_is(&began.deployment.id, DeploymentState::Failed)
        }));
        let failed = sim.deployment(&began.deployment.id).clone();
        assert!(
            failed
                .message
                .as_deref()
                .unwrap()
                .contains("progressDeadlineSeconds"),
            "{failed:?}"
        );
        assert!(sim.now - failed.started_at >= TimeDelta::seconds(30));
        assert_eq!(sim.app("/web").version, v1, "back on the old version");
        let rollback = sim.store.running("/web").unwrap().clone();
        assert_eq!(rollback.kind, DeploymentKind::Rollback);
        assert_eq!(rollback.reverts.as_ref(), Some(&began.deployment.id));
        assert!(rollback.revert_to.is_none(), "no revert of a revert");
        assert!(sim.run_until(60, |s| {
            s.deployment_is(&rollback.id, DeploymentState::Succeeded)
        }));
        for s in &sim.samples["/web"][start..] {
            assert!(s.ready >= 2, "moc {moc}: {s:?}");
        }
        if moc > 0.0 {
            // With room to spare, the old version kept serving in full.
            assert!(
                sim.samples["/web"][start..]
                    .iter()
                    .all(|s| s.ready_by_version.get(&v1) == Some(&4))
            );
        }
        let tasks = sim.active("/web");
        assert_eq!(tasks.len(), 4);
        assert!(tasks.iter().all(|t| label(t, labels::VERSION) == v1));
    }
}

#[test]
fn without_auto_revert_a_failed_deployment_leaves_the_app_serving() {
    let mut sim = Sim::new(3);
    sim.behaviour = Box::new(|t| {
        if t.spec.definition.cmd.as_deref() == Some("v2") {
            Behaviour::NeverHealthy(None)
        } else {
            Behaviour::Healthy
        }
    });
    let mut def = with_checks(app("/web", 2, "v1"));
    def.progress_deadline_seconds = 20.0;
    create_settled(&mut sim, def.clone());
    def.cmd = Some("v2".into());
    let began = sim.change(AppChange::Update(def), "/web", false).unwrap();
    assert!(sim.run_until(60, |s| {
        s.deployment_is(&began.deployment.id, DeploymentState::Failed)
    }));
    // No deployment: nothing is replaced, the old instances keep serving.
    for _ in 0..20 {
        sim.tick();
        assert!(sim.sample("/web").ready >= 2);
    }
    assert!(sim.settled("/web"));
}

#[test]
fn conflicting_change_is_refused_and_force_supersedes() {
    let mut sim = Sim::new(2);
    let first = sim
        .change(
            AppChange::Create(with_checks(app("/web", 2, "v1"))),
            "/web",
            false,
        )
        .unwrap();
    sim.tick();
    let mut v2 = with_checks(app("/web", 2, "v2"));
    v2.id = first.app.definition.id.clone();
    let err = sim
        .change(AppChange::Update(v2.clone()), "/web", false)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(err.http_status(), 409);
    assert!(
        err.message.contains(first.deployment.id.as_str()),
        "{}",
        err.message
    );
    // Nothing changed.
    assert_eq!(sim.app("/web").version, first.app.version);

    let forced = sim.change(AppChange::Update(v2), "/web", true).unwrap();
    assert!(forced.deployment.forced);
    assert_eq!(forced.superseded.len(), 1);
    let old = sim.deployment(&first.deployment.id);
    assert_eq!(old.state, DeploymentState::Superseded);
    assert_eq!(old.superseded_by.as_ref(), Some(&forced.deployment.id));
    assert!(sim.run_until(30, |s| {
        s.deployment_is(&forced.deployment.id, DeploymentState::Succeeded)
    }));
    let tasks = sim.active("/web");
    assert_eq!(tasks.len(), 2);
    assert!(
        tasks
            .iter()
            .all(|t| t.spec.definition.cmd.as_deref() == Some("v2"))
    );
    // Other apps are not locked.
    sim.change(AppChange::Create(app("/other", 1, "x")), "/other", false)
        .unwrap();
}

#[test]
fn restart_of_the_scheduler_mid_rollout_continues_without_duplicates() {
    let setup = || {
        let mut sim = Sim::new(3);
        let mut def = with_checks(app("/web", 4, "v1"));
        def.upgrade_strategy = strategy(0.5, 0.5);
        create_settled(&mut sim, def.clone());
        def.cmd = Some("v2".into());
        let began = sim.change(AppChange::Update(def), "/web", false).unwrap();
        (sim, began)
    };
    for stop_after in 0..6 {
        let (mut reference, began) = setup();
        let (mut restarted, _) = setup();
        for _ in 0..stop_after {
            reference.tick();
            restarted.tick();
        }
        // SIGKILL: memory is gone; the store is read back from disk.
        restarted.store = restarted.store.round_trip();
        for _ in 0..30 {
            reference.tick();
            restarted.tick();
            assert_eq!(
                restarted.tasks, reference.tasks,
                "after a restart at tick {stop_after}"
            );
        }
        assert!(restarted.deployment_is(&began.deployment.id, DeploymentState::Succeeded));
        let tasks = restarted.active("/web");
        assert_eq!(tasks.len(), 4);
        assert!(
            tasks
                .iter()
                .all(|t| t.spec.definition.cmd.as_deref() == Some("v2"))
        );
        let limits = Limits::for_counts(4, 0.5, 0.5);
        assert!(
            restarted.samples["/web"]
                .iter()
                .all(|s| s.active <= limits.max_total as usize)
        );
    }
}

#[test]
fn restart_of_the_scheduler_after_a_lost_plan_does_not_duplicate() {
    // The scheduler planned, persisted, and died before sending: the next plan makes
    // the same launches again, and only once.
    let mut sim = Sim::new(2);
    sim.change(AppChange::Create(app("/web", 3, "v1")), "/web", false)
        .unwrap();
    let lost = apps::plan(&sim.snapshot());
    assert_eq!(lost.launches.len(), 3);
    sim.store = sim.store.round_trip();
    let p = sim.tick();
    assert_eq!(p.launches.len(), 3);
    let p = sim.tick();
    assert!(p.launches.is_empty());
    assert!(sim.run_until(5, |s| s.settled("/web")));
    assert_eq!(sim.active("/web").len(), 3);
}

/// The ids of a plan's launches.
fn launch_ids(p: &apps::AppsPlan) -> Vec<drover_api::task::TaskId> {
    p.launches.iter().map(|l| l.id.clone().unwrap()).collect()
}

#[test]
fn a_master_crash_after_a_durable_launch_sends_the_same_ids_again() {
    let mut sim = Sim::new(2);
    sim.change(AppChange::Create(app("/web", 5, "v1")), "/web", false)
        .unwrap();
    // Durable, unanswered; down for a tick; then the scheduler's read of it lags two
    // ticks behind, so it plans twice more from a view without the launches.
    sim.fault = Some(Fault::MasterCrashAfterCommit { down: 1, stale: 2 });
    let first = sim.tick();
    assert_eq!(first.launches.len(), 5);
    let ids = launch_ids(&first);
    assert_eq!(sim.app("/web").pending_launches.len(), 5, "persisted first");
    // Sent again while the master is down, and once more when it is back (its answer,
    // the tasks it has, confirms them even though the view is still old).
    for _ in 0..2 {
        let p = sim.tick();
        assert_eq!(launch_ids(&p), ids, "the same launches, under the same ids");
        assert!(p.kills.is_empty());
        assert_eq!(
            p.status[0].tasks.staged, 5,
            "counted as starting: {:?}",
            p.status[0]
        );
    }
    assert!(sim.frozen_view.is_some(), "the view is still old");
    let p = sim.tick();
    assert!(p.launches.is_empty(), "{:?}", p.launches);
    assert!(sim.app("/web").pending_launches.is_empty(), "confirmed");
    assert!(sim.run_until(10, |s| s.settled("/web")));
    assert_eq!(sim.created_for("/web"), 5);
    assert!(sim.app("/web").pending_launches.is_empty(), "confirmed");
    assert!(sim.kills.is_empty(), "{:?}", sim.kills);
}

#[test]
fn a_scheduler_crash_before_sending_or_before_the_answer_sends_the_same_ids() {
    for fault in [
        Fault::SchedulerCrashBeforeSend,
        Fault::SchedulerCrashBeforeAnswer,
    ] {
        let mut sim = Sim::new(2);
        sim.change(AppChange::Create(app("/web", 3, "v1")), "/web", false)
            .unwrap();
        sim.fault = Some(fault);
        let ids = launch_ids(&sim.tick());
        assert_eq!(ids.len(), 3);
        let again = launch_ids(&sim.tick());
        if fault == Fault::SchedulerCrashBeforeSend {
            assert_eq!(again, ids, "sent under the ids it persisted");
        } else {
            // The restarted scheduler reads the master, which has them.
            assert!(again.is_empty(), "{again:?}");
        }
        assert!(sim.run_until(10, |s| s.settled("/web")), "{fault:?}");
        assert_eq!(sim.created_for("/web"), 3, "{fault:?}");
        assert!(sim.kills.is_empty(), "{fault:?}: {:?}", sim.kills);
    }
}

#[test]
fn a_refused_launch_is_decided_again_under_a_new_id() {
    let mut sim = Sim::new(1);
    sim.change(AppChange::Create(app("/web", 2, "v1")), "/web", false)
        .unwrap();
    sim.refuse_on.insert("node-0".into());
    let refused = launch_ids(&sim.tick());
    assert_eq!(refused.len(), 2);
    assert_eq!(sim.refused, refused);
    sim.refuse_on.clear();
    let p = sim.tick();
    let ids = launch_ids(&p);
    assert_eq!(ids.len(), 2);
    assert!(
        ids.iter().all(|id| !refused.contains(id)),
        "new ids: {ids:?}"
    );
    let pending: Vec<_> = sim
        .app("/web")
        .pending_launches
        .iter()
        .map(|p| p.task_id.clone())
        .collect();
    assert_eq!(pending, ids, "the refused ones are forgotten");
    assert!(sim.run_until(10, |s| s.settled("/web")));
    assert_eq!(sim.created_for("/web"), 2);
}

#[test]
fn a_pending_launch_scaled_away_is_killed_and_forgotten() {
    let mut sim = Sim::new(2);
    sim.change(AppChange::Create(app("/web", 4, "v1")), "/web", false)
        .unwrap();
    sim.fault = Some(Fault::MasterCrashAfterCommit { down: 1, stale: 3 });
    sim.tick();
    // While the answers are lost, the app is scaled down to 1.
    sim.change(AppChange::Scale { instances: 1 }, "/web", true)
        .unwrap();
    let p = sim.tick();
    assert_eq!(p.kills.len(), 3, "{:?}", p.kills);
    assert_eq!(p.launches.len(), 1, "only the kept one is sent again");
    assert_eq!(sim.app("/web").pending_launches.len(), 1);
    assert!(sim.run_until(20, |s| s.settled("/web") && s.active("/web").len() == 1));
    assert_eq!(
        sim.created_for("/web"),
        4,
        "nothing launched after the scale"
    );
}

#[test]
fn unique_hostname_with_more_instances_than_nodes_reports_why() {
    let mut sim = Sim::new(3);
    let mut def = app("/uniq", 5, "x");
    def.constraints = vec![Constraint {
        field: "hostname".into(),
        operator: ConstraintOperator::Unique,
    }];
    sim.change(AppChange::Create(def), "/uniq", false).unwrap();
    for _ in 0..3 {
        sim.tick();
    }
    assert_eq!(sim.active("/uniq").len(), 3);
    let st = sim
        .last_plan
        .status
        .iter()
        .find(|s| s.app_id.as_str() == "/uniq")
        .unwrap();
    let u = st
        .unplaceable
        .as_ref()
        .expect("reports the unplaceable instances");
    assert_eq!(u.count, 2);
    assert_eq!(u.total_nodes, 3);
    assert!(u.message.contains("hostname UNIQUE"), "{}", u.message);
    assert!(u.message.contains("3 of 3 nodes"), "{}", u.message);
    assert_eq!(u.reasons[0].nodes, 3);
    assert!(st.deployment.is_some(), "the create waits, visibly");
}

#[test]
fn unique_hostname_rollout_on_a_full_cluster_frees_nodes_within_the_minimum() {
    let unique = vec![Constraint {
        field: "hostname".into(),
        operator: ConstraintOperator::Unique,
    }];
    // mhc 0.5: old instances make way, two at a time.
    let mut sim = Sim::new(4);
    let mut def = with_checks(app("/u", 4, "v1"));
    def.constraints = unique.clone();
    def.upgrade_strategy = strategy(0.5, 1.0);
    create_settled(&mut sim, def.clone());
    def.cmd = Some("v2".into());
    let start = sim.samples["/u"].len();
    let began = sim
        .change(AppChange::Update(def.clone()), "/u", false)
        .unwrap();
    assert!(sim.run_until(40, |s| {
        s.deployment_is(&began.deployment.id, DeploymentState::Succeeded)
    }));
    assert!(sim.samples["/u"][start..].iter().all(|s| s.ready >= 2));
    let nodes: std::collections::BTreeSet<_> = sim
        .active("/u")
        .iter()
        .map(|t| t.spec.node.clone())
        .collect();
    assert_eq!(nodes.len(), 4);

    // mhc 1: nothing may go, so the new version cannot be placed; the status says why
    // and the deadline fails the deployment instead of waiting forever.
    let mut sim = Sim::new(2);
    let mut def = with_checks(app("/u", 2, "v1"));
    def.constraints = unique;
    def.progress_deadline_seconds = 15.0;
    create_settled(&mut sim, def.clone());
    def.cmd = Some("v2".into());
    let began = sim.change(AppChange::Update(def), "/u", false).unwrap();
    let p = sim.tick();
    let u = p.status[0].unplaceable.as_ref().unwrap();
    assert!(u.message.contains("hostname UNIQUE"), "{}", u.message);
    assert!(sim.run_until(30, |s| {
        s.deployment_is(&began.deployment.id, DeploymentState::Failed)
    }));
    assert_eq!(sim.sample("/u").ready, 2, "the old version kept serving");
}

#[test]
fn node_lost_mid_rollout_is_replaced_and_the_rollout_completes() {
    let mut sim = Sim::new(3);
    let mut def = with_checks(app("/web", 4, "v1"));
    def.upgrade_strategy = strategy(0.5, 0.5);
    create_settled(&mut sim, def.clone());
    def.cmd = Some("v2".into());
    let began = sim.change(AppChange::Update(def), "/web", false).unwrap();
    sim.tick();
    sim.tick();
    sim.nodes[0].state = NodeState::Unreachable;
    assert!(sim.run_until(60, |s| {
        s.deployment_is(&began.deployment.id, DeploymentState::Succeeded)
    }));
    let tasks = sim.active("/web");
    assert_eq!(tasks.len(), 4);
    assert!(
        tasks
            .iter()
            .all(|t| t.spec.node != "node-0" && t.spec.definition.cmd.as_deref() == Some("v2"))
    );
}

#[test]
fn delete_kills_everything_then_removes_the_app() {
    let mut sim = Sim::new(2);
    create_settled(&mut sim, app("/web", 3, "v1"));
    let began = sim.change(AppChange::Delete, "/web", false).unwrap();
    assert!(began.app.deleting);
    let p = sim.tick();
    assert_eq!(p.kills.len(), 3);
    assert!(p.kills.iter().all(|k| k.reason == KillReason::Deleted));
    assert!(p.launches.is_empty());
    let p = sim.tick();
    assert_eq!(p.removed.len(), 1);
    assert!(sim.store.apps.is_empty());
    assert!(sim.active("/web").is_empty());
    assert_eq!(
        sim.deployment(&began.deployment.id).state,
        DeploymentState::Succeeded
    );
}

#[test]
fn orphans_are_killed() {
    let mut sim = Sim::new(1);
    create_settled(&mut sim, app("/web", 1, "v1"));
    // The app vanished from the store (e.g. deleted while the scheduler was down).
    sim.store.apps.clear();
    let p = sim.tick();
    assert_eq!(p.kills.len(), 1);
    assert_eq!(p.kills[0].reason, KillReason::Orphan);
}

#[test]
fn cancel_fails_the_deployment_and_rolls_back_when_asked() {
    let mut sim = Sim::new(2);
    sim.behaviour = Box::new(|t| {
        if t.spec.definition.cmd.as_deref() == Some("v2") {
            Behaviour::NeverHealthy(None)
        } else {
            Behaviour::Healthy
        }
    });
    let mut def = with_checks(app("/web", 2, "v1"));
    create_settled(&mut sim, def.clone());
    let v1 = sim.app("/web").version.clone();
    def.cmd = Some("v2".into());
    let began = sim.change(AppChange::Update(def), "/web", false).unwrap();
    sim.tick();
    sim.tick();
    let old_def = sim.store.versions[&(began.app.id().clone(), v1.clone())].clone();
    let c = apps::cancel(
        &began.deployment,
        Some(sim.app("/web")),
        Some(&old_def),
        sim.now,
    )
    .unwrap();
    assert_eq!(c.deployment.state, DeploymentState::Failed);
    assert_eq!(
        c.deployment.message.as_deref(),
        Some("cancelled on request")
    );
    let rb = c.rollback.unwrap();
    sim.store
        .deployments
        .insert(c.deployment.id.clone(), c.deployment.clone());
    sim.persist_began(&rb);
    assert!(sim.run_until(20, |s| {
        s.deployment_is(&rb.deployment.id, DeploymentState::Succeeded)
    }));
    assert!(
        sim.active("/web")
            .iter()
            .all(|t| label(t, labels::VERSION) == v1)
    );
    // A finished deployment cannot be cancelled again.
    let again = apps::cancel(&c.deployment, None, None, sim.now).unwrap_err();
    assert_eq!(again.code, ErrorCode::Conflict);
}

#[test]
fn rollback_to_an_earlier_version_keeps_its_instances() {
    let mut sim = Sim::new(2);
    let mut def = app("/web", 2, "v1");
    def.upgrade_strategy = strategy(1.0, 0.0);
    create_settled(&mut sim, def.clone());
    let v1 = sim.app("/web").version.clone();
    def.cmd = Some("v2".into());
    let up = sim.change(AppChange::Update(def), "/web", false).unwrap();
    // Half-way: one v2 ready, some v1 left.
    assert!(sim.run_until(20, |s| {
        s.sample("/web")
            .ready_by_version
            .get(&up.app.version)
            .copied()
            .unwrap_or(0)
            >= 1
    }));
    let old_def = sim.store.versions[&(up.app.id().clone(), v1.clone())].clone();
    let rb = sim
        .change(AppChange::Rollback(old_def), "/web", true)
        .unwrap();
    assert_eq!(rb.deployment.kind, DeploymentKind::Rollback);
    assert_eq!(rb.app.version, v1);
    let kept: Vec<_> = sim
        .active("/web")
        .iter()
        .filter(|t| label(t, labels::VERSION) == v1 && t.goal == TaskGoal::Run)
        .map(|t| t.spec.id.clone())
        .collect();
    assert!(sim.run_until(20, |s| {
        s.deployment_is(&rb.deployment.id, DeploymentState::Succeeded)
    }));
    let after: Vec<_> = sim
        .active("/web")
        .iter()
        .map(|t| t.spec.id.clone())
        .collect();
    assert!(
        kept.iter().all(|k| after.contains(k)),
        "v1 instances were kept"
    );
    assert_eq!(after.len(), 2);
}

#[test]
fn status_counts_by_version_and_waiting_reasons() {
    let mut sim = Sim::new(1);
    let mut def = with_checks(app("/web", 2, "v1"));
    def.upgrade_strategy = strategy(1.0, 0.0);
    create_settled(&mut sim, def.clone());
    def.cmd = Some("v2".into());
    sim.change(AppChange::Update(def), "/web", false).unwrap();
    // Status describes the tasks the plan saw: the launch shows up one tick later.
    let p = sim.tick();
    assert_eq!(p.launches.len(), 1, "{p:?}");
    let p = sim.tick();
    let st = &p.status[0];
    assert_eq!(st.by_version.len(), 2, "{st:?}");
    assert_eq!(st.tasks.healthy, 2);
    assert_eq!(st.tasks.running, 1, "started, not healthy yet");
    assert_eq!(st.tasks.ready, 2);
    assert!(
        st.waiting.iter().any(|w| w.contains("maximumOverCapacity")),
        "{st:?}"
    );
}

// ---------------------------------------------------------------- properties

fn arb_fraction() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(0.25),
        Just(0.5),
        Just(0.75),
        Just(1.0),
        0.0..=1.0f64
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Never more than instances + over-capacity, never below the minimum once healthy,
    /// and the rollout ends with exactly the new version.
    #[test]
    fn rollouts_keep_the_bounds(
        n in 1u32..7,
        mhc in arb_fraction(),
        moc in arb_fraction(),
        delays in proptest::collection::vec(1u32..4, 1..8),
        nodes in 1usize..4,
    ) {
        let mut sim = Sim::new(nodes);
        sim.behaviour = Box::new(move |t| {
            let k: usize = t.spec.id.0.bytes().map(usize::from).sum();
            Behaviour::HealthyAfter(delays[k % delays.len()])
        });
        let mut def = with_checks(app("/p", n, "v1"));
        def.upgrade_strategy = strategy(mhc, moc);
        create_settled(&mut sim, def.clone());
        def.cmd = Some("v2".into());
        let began = sim.change(AppChange::Update(def), "/p", false).unwrap();
        let limits = Limits::for_counts(n, mhc, moc);
        let start = sim.samples["/p"].len();
        prop_assert!(sim.run_until(200, |s| s.deployment_is(&began.deployment.id, DeploymentState::Succeeded)));
        for s in &sim.samples["/p"][start..] {
            prop_assert!(s.active <= limits.max_total as usize, "{:?} {:?}", s, limits);
            prop_assert!(s.ready >= limits.min_healthy as usize, "{:?} {:?}", s, limits);
        }
        let tasks = sim.active("/p");
        prop_assert_eq!(tasks.len(), n as usize);
        prop_assert!(tasks.iter().all(|t| t.spec.definition.cmd.as_deref() == Some("v2")));
    }

    /// The plan depends on the snapshot only, not on the order of its lists.
    #[test]
    fn plan_is_deterministic(ticks in 0u64..12, rot in 0usize..50, n in 1u32..6) {
        let mut sim = Sim::new(3);
        let mut def = with_checks(app("/a", n, "v1"));
        def.upgrade_strategy = strategy(0.5, 0.5);
        create_settled(&mut sim, def.clone());
        sim.change(AppChange::Create(app("/b", 2, "b")), "/b", false).unwrap();
        def.cmd = Some("v2".into());
        sim.change(AppChange::Update(def), "/a", false).unwrap();
        for _ in 0..ticks {
            sim.tick();
        }
        let snap = sim.snapshot();
        let p1 = apps::plan(&snap);
        prop_assert_eq!(&p1, &apps::plan(&snap));
        let mut shuffled = snap.clone();
        if !shuffled.tasks.is_empty() {
            let k = rot % shuffled.tasks.len();
            shuffled.tasks.rotate_left(k);
        }
        shuffled.tasks.reverse();
        shuffled.apps.reverse();
        shuffled.deployments.reverse();
        shuffled.cluster.nodes.reverse();
        shuffled.versions.reverse();
        prop_assert_eq!(&p1, &apps::plan(&shuffled));
    }

    /// A crash of the master (after the launches are durable, with its answers lost and
    /// the scheduler's view of it late) or of the scheduler (before sending, before the
    /// answers), at the launches of a create, a scale-up or a rolling update: no
    /// instance is launched twice, nothing is killed as extra, and the app settles.
    #[test]
    fn no_instance_is_launched_twice_across_a_crash_at_any_step(
        n in 1u32..6,
        nodes in 1usize..4,
        change in 0u8..3,
        fault in 0u8..3,
        down in 0u32..4,
        stale in 0u32..4,
        checks: bool,
        extra_restart in proptest::option::of(0u32..6),
    ) {
        let mut sim = Sim::new(nodes);
        let def = |cmd: &str, instances: u32| {
            let mut d = app("/c", instances, cmd);
            d.upgrade_strategy = strategy(0.5, 0.5);
            if checks { with_checks(d) } else { d }
        };
        let fault = match fault {
            0 => Fault::MasterCrashAfterCommit { down, stale },
            1 => Fault::SchedulerCrashBeforeSend,
            _ => Fault::SchedulerCrashBeforeAnswer,
        };
        // Tasks the change must create: a fresh app's, the added ones, a new version's.
        let expected = match change {
            0 => {
                sim.fault = Some(fault);
                sim.change(AppChange::Create(def("v1", n)), "/c", false).unwrap();
                n
            }
            1 => {
                create_settled(&mut sim, def("v1", n));
                sim.fault = Some(fault);
                sim.change(AppChange::Scale { instances: n + 2 }, "/c", false).unwrap();
                n + 2
            }
            _ => {
                create_settled(&mut sim, def("v1", n));
                sim.fault = Some(fault);
                sim.change(AppChange::Update(def("v2", n)), "/c", false).unwrap();
                2 * n
            }
        };
        for i in 0..10u32 {
            if extra_restart == Some(i) {
                sim.restart_scheduler();
            }
            sim.tick();
        }
        let settled = sim.run_until(200, |s| {
            s.settled("/c") && s.active("/c").len() == s.app("/c").definition.instances as usize
        });
        prop_assert!(settled, "{:?}", sim.last_plan.status);
        prop_assert_eq!(sim.created_for("/c"), expected as usize);
        prop_assert!(
            sim.kills.iter().all(|k| k.reason != KillReason::ScaleDown),
            "{:?}", sim.kills
        );
        prop_assert!(sim.app("/c").pending_launches.is_empty());
    }

    /// Whatever changes and task events happen, once they stop the app converges to
    /// exactly its wanted instances, all ready, all of its version, with no deployment
    /// left running.
    #[test]
    fn any_history_converges(
        ops in proptest::collection::vec((0u8..7, 0u32..5, 0u64..4), 1..10),
        mhc in arb_fraction(),
        moc in arb_fraction(),
    ) {
        let mut sim = Sim::new(3);
        let mut def = with_checks(app("/h", 3, "v0"));
        def.upgrade_strategy = strategy(mhc, moc);
        create_settled(&mut sim, def);
        for (i, (op, k, gap)) in ops.into_iter().enumerate() {
            let cur = sim.app("/h").definition.clone();
            let force = op % 2 == 0;
            match op {
                0 | 1 => {
                    let mut d = cur;
                    d.cmd = Some(format!("v{}", i + 1));
                    let _ = sim.change(AppChange::Update(d), "/h", force);
                }
                2 | 3 => {
                    let _ = sim.change(AppChange::Scale { instances: k }, "/h", force);
                }
                4 => {
                    let _ = sim.change(AppChange::Restart, "/h", true);
                }
                5 => {
                    // An instance exits on its own.
                    let now = sim.now;
                    if let Some(t) = sim.tasks.iter_mut().find(|t| t.state.is_active()) {
                        t.state = TaskState::Failed;
                        t.finished_at = Some(now);
                    }
                }
                _ => {
                    // An instance is killed outside Drover.
                    let now = sim.now;
                    if let Some(t) = sim.tasks.iter_mut().rev().find(|t| t.state.is_active()) {
                        t.state = TaskState::Killed;
                        t.finished_at = Some(now);
                    }
                }
            }
            for _ in 0..gap {
                sim.tick();
            }
        }
        let converged = sim.run_until(400, |s| {
            let a = s.app("/h");
            let tasks = s.active("/h");
            s.settled("/h")
                && tasks.len() == a.definition.instances as usize
                && tasks.iter().all(|t| apps_sim::is_ready(t) && label(t, labels::VERSION) == a.version)
        });
        prop_assert!(converged, "{:?}", sim.last_plan.status);
    }
}
