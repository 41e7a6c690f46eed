//! Table tests of the pure parts: limits, the rollout arithmetic, backoff delays,
//! version stamps, and `begin`'s refusals.

#![allow(clippy::unwrap_used)] // tests may unwrap

use chrono::{DateTime, Utc};
use drover_api::ErrorCode;
use drover_api::app::{AppDefinition, AppId};
use drover_api::deployment::{DeploymentKind, DeploymentState, StepAction};
use proptest::prelude::*;

use super::backoff::delay_seconds;
use super::rollout::{Counts, Decision, decide};
use super::state::next_version;
use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn def(instances: u32) -> AppDefinition {
    let mut d = AppDefinition::new(AppId::parse("/shop/web").unwrap(), "serve");
    d.instances = instances;
    d
}

#[test]
fn limits_table() {
    // (n, mhc, moc) -> (min_healthy, max_total)
    let table = [
        (4, 0.5, 0.0, 2, 4),
        (4, 0.5, 1.0, 2, 8),
        (4, 1.0, 1.0, 4, 8),
        (4, 1.0, 0.0, 4, 5), // Marathon's stuck case: one extra allowed
        (3, 0.9, 0.2, 3, 4), // the same by rounding
        (10, 0.3, 0.15, 3, 11),
        (1, 0.5, 0.5, 1, 2),
        (0, 1.0, 0.0, 0, 0),
        (5, 0.0, 0.0, 0, 5),
    ];
    for (n, mhc, moc, min, max) in table {
        assert_eq!(
            Limits::for_counts(n, mhc, moc),
            Limits {
                min_healthy: min,
                max_total: max
            },
            "n={n} mhc={mhc} moc={moc}"
        );
    }
    let mut single = def(1);
    single
        .labels
        .insert("MARATHON_SINGLE_INSTANCE_APP".into(), "true".into());
    assert_eq!(
        Limits::of(&single),
        Limits {
            min_healthy: 0,
            max_total: 1
        }
    );
}

fn counts(n: u32, rn: u32, sn: u32, ro: u32, so: u32, st: u32) -> Counts {
    Counts {
        instances: n,
        ready_new: rn,
        starting_new: sn,
        ready_old: ro,
        starting_old: so,
        stopping: st,
    }
}

#[test]
fn decide_table() {
    let l = |n, mhc, moc| Limits::for_counts(n, mhc, moc);
    // 4 old ready, mhc 0.5, moc 0: kill 2 old to make room, launch nothing yet.
    let d = decide(&counts(4, 0, 0, 4, 0, 0), l(4, 0.5, 0.0));
    assert_eq!((d.launch, d.kill_ready_old, d.held), (0, 2, 4));
    // Those two stopped: launch 2.
    let d = decide(&counts(4, 0, 0, 2, 0, 0), l(4, 0.5, 0.0));
    assert_eq!((d.launch, d.kill_ready_old), (2, 0));
    // Two new ready: 2 old may go now.
    let d = decide(&counts(4, 2, 0, 2, 0, 0), l(4, 0.5, 0.0));
    assert_eq!((d.launch, d.kill_ready_old, d.ready_after), (0, 2, 2));
    // moc 1: launch 4 at once, kill none until they are ready.
    let d = decide(&counts(4, 0, 0, 4, 0, 0), l(4, 0.5, 1.0));
    assert_eq!((d.launch, d.kill_ready_old), (4, 0));
    let d = decide(&counts(4, 3, 1, 4, 0, 0), l(4, 0.5, 1.0));
    assert_eq!((d.launch, d.kill_ready_old), (0, 3));
    // mhc 1 moc 0: one at a time.
    let d = decide(&counts(4, 0, 0, 4, 0, 0), l(4, 1.0, 0.0));
    assert_eq!((d.launch, d.kill_ready_old), (1, 0));
    let d = decide(&counts(4, 1, 0, 4, 0, 0), l(4, 1.0, 0.0));
    assert_eq!((d.launch, d.kill_ready_old), (0, 1));
    // Not ready old instances go at once.
    let d = decide(&counts(2, 0, 0, 1, 1, 0), l(2, 1.0, 1.0));
    assert_eq!((d.launch, d.kill_starting_old), (2, 1));
    // Scale down: not-ready first.
    let d = decide(&counts(2, 3, 1, 0, 0, 0), l(2, 1.0, 1.0));
    assert_eq!((d.kill_starting_new, d.kill_ready_new, d.launch), (1, 1, 0));
    // Steady: one missing, room for it.
    let d = decide(&counts(3, 2, 0, 0, 0, 1), l(3, 1.0, 1.0));
    assert_eq!(
        d,
        Decision {
            launch: 1,
            ready_after: 2,
            vacating: 1,
            ..Decision::default()
        }
    );
}

proptest! {
    /// Whatever the counts, a round never kills below the minimum (unless scaling down
    /// or already below it) and never launches past the maximum.
    #[test]
    fn decide_respects_limits(n in 0u32..8, rn in 0u32..8, sn in 0u32..8, ro in 0u32..8, so in 0u32..8, st in 0u32..8,
                              mhc in 0.0..=1.0f64, moc in 0.0..=1.0f64) {
        let c = counts(n, rn, sn, ro, so, st);
        let l = Limits::for_counts(n, mhc, moc);
        let d = decide(&c, l);
        let total = rn + sn + ro + so + st;
        prop_assert!(d.launch == 0 || total + d.launch <= l.max_total);
        let ready_before = rn + ro;
        if ready_before >= l.min_healthy && rn <= n {
            prop_assert!(d.ready_after >= l.min_healthy, "{:?} {:?} {:?}", c, l, d);
        }
        prop_assert!(d.kill_ready_old <= ro && d.kill_starting_old <= so);
        prop_assert!(d.kill_ready_new <= rn && d.kill_starting_new <= sn);
        prop_assert!(rn + sn - d.kill_ready_new - d.kill_starting_new + d.launch <= n.max(rn + sn));
    }
}

#[test]
fn backoff_delays_grow_and_cap() {
    let mut d = def(1);
    d.backoff_seconds = 1.0;
    d.backoff_factor = 1.15;
    d.max_launch_delay_seconds = 3600.0;
    assert_eq!(delay_seconds(&d, 0), 0.0);
    assert_eq!(delay_seconds(&d, 1), 1.0);
    assert!((delay_seconds(&d, 2) - 1.15).abs() < 1e-9);
    assert!((delay_seconds(&d, 3) - 1.3225).abs() < 1e-9);
    assert_eq!(delay_seconds(&d, 10_000), 3600.0);
    assert_eq!(delay_seconds(&d, u32::MAX), 3600.0);
}

#[test]
fn versions_increase() {
    let now = t("2026-01-01T00:00:00.123456Z");
    assert_eq!(next_version(now, None), "2026-01-01T00:00:00.123Z");
    assert_eq!(
        next_version(now, Some("2026-01-01T00:00:00.123Z")),
        "2026-01-01T00:00:00.124Z"
    );
    assert_eq!(
        next_version(now, Some("2026-01-02T00:00:00.000Z")),
        "2026-01-02T00:00:00.001Z"
    );
    assert_eq!(
        next_version(now, Some("2025-01-01T00:00:00.000Z")),
        "2026-01-01T00:00:00.123Z"
    );
}

#[test]
fn begin_kinds_and_refusals() {
    let now = t("2026-01-01T00:00:00Z");
    let created = begin(AppChange::Create(def(2)), None, &[], Locked::Refuse, now).unwrap();
    assert_eq!(created.deployment.kind, DeploymentKind::Create);
    assert_eq!(
        created.app.definition.version.as_deref(),
        Some(created.app.version.as_str())
    );
    assert_eq!(
        created.deployment.id.as_str(),
        "shop.web-20260101T000000.000Z-1"
    );
    assert_eq!(
        created.deployment.progress.deadline_at,
        Some(now + chrono::TimeDelta::seconds(600))
    );
    let app = created.app;
    let settled = |mut d: Deployment| {
        d.state = DeploymentState::Succeeded;
        d
    };
    let done = [settled(created.deployment.clone())];

    // Create of an existing app: 409.
    let e = begin(
        AppChange::Create(def(2)),
        Some(&app),
        &done,
        Locked::Refuse,
        now,
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    // A change to a missing app: 404.
    let e = begin(AppChange::Restart, None, &[], Locked::Refuse, now).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    // Update that changes only the instances: a scale, same version.
    let s = begin(
        AppChange::Update(def(5)),
        Some(&app),
        &done,
        Locked::Refuse,
        now,
    )
    .unwrap();
    assert_eq!(s.deployment.kind, DeploymentKind::Scale);
    assert_eq!(s.app.version, app.version);
    assert_eq!(s.app.definition.instances, 5);
    assert!(matches!(
        s.deployment.steps[0].action,
        StepAction::StartInstances { count: 5, .. }
    ));
    // A real update: a new version.
    let mut d2 = def(2);
    d2.cmd = Some("serve --v2".into());
    let u = begin(
        AppChange::Update(d2.clone()),
        Some(&app),
        &done,
        Locked::Refuse,
        now,
    )
    .unwrap();
    assert_eq!(u.deployment.kind, DeploymentKind::Update);
    assert!(u.app.version > app.version);
    // Invalid definition: 400 naming the field.
    let mut bad = def(2);
    bad.resources.cpus = -1.0;
    let e = begin(
        AppChange::Update(bad),
        Some(&app),
        &done,
        Locked::Refuse,
        now,
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidField);
    // Scale past the limit.
    let e = begin(
        AppChange::Scale {
            instances: 1_000_000,
        },
        Some(&app),
        &done,
        Locked::Refuse,
        now,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("instances"));
    // Rollback without a version.
    let e = begin(
        AppChange::Rollback(def(2)),
        Some(&app),
        &done,
        Locked::Refuse,
        now,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("version"));
    // Locked while running, unless forced.
    let running = [u.deployment.clone()];
    let e = begin(
        AppChange::Restart,
        Some(&u.app),
        &running,
        Locked::Refuse,
        now,
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains(u.deployment.id.as_str()));
    let f = begin(
        AppChange::Restart,
        Some(&u.app),
        &running,
        Locked::Supersede,
        now,
    )
    .unwrap();
    assert_eq!(f.superseded.len(), 1);
    assert_eq!(f.superseded[0].state, DeploymentState::Superseded);
    assert_ne!(f.deployment.id, u.deployment.id);
    // Delete: two steps, no deadline, cannot be cancelled.
    let del = begin(AppChange::Delete, Some(&app), &done, Locked::Refuse, now).unwrap();
    assert_eq!(del.deployment.steps.len(), 2);
    assert!(del.deployment.progress.deadline_at.is_none());
    assert_eq!(
        cancel(&del.deployment, Some(&del.app), None, now)
            .unwrap_err()
            .code,
        ErrorCode::Conflict
    );
}

#[test]
fn auto_revert_target_is_the_last_healthy_version() {
    let now = t("2026-01-01T00:00:00Z");
    let mut d = def(2);
    d.auto_revert = true;
    let c = begin(AppChange::Create(d.clone()), None, &[], Locked::Refuse, now).unwrap();
    assert!(c.deployment.revert_to.is_none(), "nothing healthy yet");
    let mut app = c.app;
    app.last_healthy_version = Some(app.version.clone());
    d.cmd = Some("v2".into());
    let u = begin(AppChange::Update(d), Some(&app), &[], Locked::Refuse, now).unwrap();
    assert_eq!(
        u.deployment.revert_to.as_deref(),
        Some(app.version.as_str())
    );
}

#[test]
fn state_round_trips_through_json() {
    let now = t("2026-01-01T00:00:00Z");
    let c = begin(AppChange::Create(def(2)), None, &[], Locked::Refuse, now).unwrap();
    let s = serde_json::to_string(&c.app).unwrap();
    let back: AppState = serde_json::from_str(&s).unwrap();
    assert_eq!(back, c.app);
    let s = serde_json::to_string(&c.deployment).unwrap();
    let back: Deployment = serde_json::from_str(&s).unwrap();
    assert_eq!(back, c.deployment);
}

// Readiness checks and dependencies, through `plan` on hand-made snapshots.

mod readiness_and_dependencies {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::{DateTime, TimeDelta, Utc};
    use drover_api::app::{
        AppDefinition, AppHealthCheck, AppHealthProtocol, AppId, PortDefinition, PortProtocol,
        ReadinessCheck, UpgradeStrategy,
    };
    use drover_api::deployment::{DeploymentState, ReadinessCheckResult};
    use drover_api::node::NodeState;
    use drover_api::task::{Task, TaskGoal, TaskId, TaskSpec, TaskState};
    use drover_api::{ErrorCode, PortRange, Resources};

    use super::t;
    use crate::apps::{
        AppChange, AppState, AppsPlan, Deployment, KillReason, Locked, Snapshot, begin,
        check_cycles, plan,
    };
    use crate::placement::{ClusterSnapshot, NodeSnapshot};

    fn t0() -> DateTime<Utc> {
        t("2026-01-01T00:00:00Z")
    }

    fn app_def(id: &str, instances: u32) -> AppDefinition {
        let mut d = AppDefinition::new(AppId::parse(id).unwrap(), "serve");
        d.instances = instances;
        d.resources = Resources::new(0.1, 16.0, 0.0);
        d.port_definitions = vec![PortDefinition {
            port: 0,
            protocol: PortProtocol::Tcp,
            name: Some("http".into()),
            labels: BTreeMap::new(),
        }];
        d
    }

    fn with_readiness(mut d: AppDefinition) -> AppDefinition {
        d.readiness_checks = vec![ReadinessCheck {
            name: "ready".into(),
            protocol: AppHealthProtocol::Http,
            path: "/ready".into(),
            port_name: "http".into(),
            interval_seconds: 2.0,
            timeout_seconds: 1.0,
            http_status_codes_for_ready: vec![200],
            preserve_last_response: false,
        }];
        d
    }

    fn with_health(mut d: AppDefinition) -> AppDefinition {
        let mut hc = AppHealthCheck::new(AppHealthProtocol::Command);
        hc.command = Some("true".into());
        d.health_checks = vec![hc];
        d
    }

    /// A task of `app` (as the master reports it): `state`, host port `port`.
    fn task(app: &AppState, version: &str, n: u32, state: TaskState, at: DateTime<Utc>) -> Task {
        let mut def = app.definition.clone();
        def.version = Some(version.to_string());
        let definition = def.to_task_definition().task;
        let name = app.id().as_str().trim_start_matches('/').replace('/', ".");
        Task {
            spec: TaskSpec {
                id: TaskId(format!("{name}.{n:03}")),
                node: "n1".into(),
                definition,
                host_ports: vec![31_000 + u16::try_from(n).unwrap()],
            },
            state,
            goal: TaskGoal::Run,
            pid: None,
            exit: None,
            message: None,
            health: None,
            staged_at: at,
            started_at: Some(at),
            finished_at: None,
            updated_at: at,
        }
    }

    fn cluster() -> ClusterSnapshot {
        ClusterSnapshot {
            revision: 1,
            nodes: vec![NodeSnapshot {
                name: "n1".into(),
                state: NodeState::Ready,
                draining: false,
                attributes: BTreeMap::new(),
                docker: false,
                free: Resources::new(16.0, 16_384.0, 10_000.0),
                ports: PortRange {
                    begin: 31000,
                    end: 31999,
                },
                ports_allocated: 0,
                used_ports: BTreeSet::new(),
                task_slots: None,
            }],
        }
    }

    fn snapshot(
        now: DateTime<Utc>,
        apps: Vec<AppState>,
        deployments: Vec<Deployment>,
        tasks: Vec<Task>,
        readiness: Vec<ReadinessCheckResult>,
    ) -> Snapshot {
        Snapshot {
            now,
            apps,
            deployments,
            tasks,
            cluster: cluster(),
            readiness,
            ..Snapshot::default()
        }
    }

    fn ready(task: &Task, ok: bool) -> ReadinessCheckResult {
        ReadinessCheckResult {
            name: "ready".into(),
            task_id: task.spec.id.clone(),
            ready: ok,
            last_response: None,
            message: (!ok).then(|| "answered 503".to_string()),
            checked_at: Some(t0()),
        }
    }

    fn deployment_of<'p>(p: &'p AppsPlan, app: &str) -> Option<&'p Deployment> {
        p.deployments.iter().find(|d| d.app_id.as_str() == app)
    }

    #[test]
    fn an_instance_counts_only_once_its_readiness_check_passed() {
        let now = t0();
        let c = begin(
            AppChange::Create(with_readiness(app_def("/web", 1))),
            None,
            &[],
            Locked::Refuse,
            now,
        )
        .unwrap();
        let later = now + TimeDelta::seconds(5);
        let running = task(&c.app, &c.app.version, 1, TaskState::Running, later);

        // Running (no health checks), not probed yet: not ready; a probe is asked for.
        let p = plan(&snapshot(
            later,
            vec![c.app.clone()],
            vec![c.deployment.clone()],
            vec![running.clone()],
            vec![],
        ));
        let d = deployment_of(&p, "/web").unwrap();
        assert_eq!(d.state, DeploymentState::Running);
        assert_eq!((d.progress.ready, d.progress.starting), (0, 1));
        assert!(
            p.launches.is_empty(),
            "the starting instance is not replaced"
        );
        assert_eq!(p.probes.len(), 1);
        assert_eq!(p.probes[0].task, running.spec.id);
        assert_eq!(p.probes[0].port, 31_001);
        assert_eq!(p.probes[0].check.path, "/ready");
        let st = &p.status[0];
        assert_eq!(st.tasks.ready, 0);
        assert_eq!(st.readiness.len(), 1);
        assert!(!st.readiness[0].ready);

        // Answered 503: still not ready, probed again.
        let p = plan(&snapshot(
            later,
            vec![c.app.clone()],
            vec![c.deployment.clone()],
            vec![running.clone()],
            vec![ready(&running, false)],
        ));
        assert_eq!(deployment_of(&p, "/web").unwrap().progress.ready, 0);
        assert_eq!(p.probes.len(), 1);
        assert_eq!(
            p.status[0].readiness[0].message.as_deref(),
            Some("answered 503")
        );

        // Passed: the deployment succeeds, and nothing is probed any more.
        let p = plan(&snapshot(
            later,
            vec![c.app.clone()],
            vec![c.deployment.clone()],
            vec![running.clone()],
            vec![ready(&running, true)],
        ));
        let d = deployment_of(&p, "/web").unwrap();
        assert_eq!(d.state, DeploymentState::Succeeded);
        assert!(p.probes.is_empty());

        // With no deployment running, the same instance counts by its health alone.
        let p = plan(&snapshot(
            later,
            vec![c.app.clone()],
            vec![],
            vec![running],
            vec![],
        ));
        assert!(p.probes.is_empty());
        assert_eq!(p.status[0].tasks.ready, 1);
        assert!(p.status[0].readiness.is_empty());
    }

    #[test]
    fn a_task_that_has_not_started_is_not_probed() {
        let now = t0();
        let c = begin(
            AppChange::Create(with_readiness(app_def("/web", 1))),
            None,
            &[],
            Locked::Refuse,
            now,
        )
        .unwrap();
        let staging = task(&c.app, &c.app.version, 1, TaskState::Staging, now);
        let p = plan(&snapshot(
            now,
            vec![c.app.clone()],
            vec![c.deployment.clone()],
            vec![staging],
            vec![],
        ));
        assert!(p.probes.is_empty());
        assert_eq!(
            p.status[0].readiness[0].message.as_deref(),
            Some("not started yet")
        );
    }

    #[test]
    fn readiness_gates_the_rolling_upgrade_capacity() {
        // 2 instances, keep both serving (mhc 1), up to 2 extra (moc 1).
        let now = t0();
        let mut d = with_health(with_readiness(app_def("/web", 2)));
        d.upgrade_strategy = UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        };
        let c = begin(AppChange::Create(d.clone()), None, &[], Locked::Refuse, now).unwrap();
        let old: Vec<Task> = (1..=2)
            .map(|i| task(&c.app, &c.app.version, i, TaskState::Healthy, now))
            .collect();
        let mut settled = c.app.clone();
        settled.last_healthy_version = Some(c.app.version.clone());

        let later = now + TimeDelta::seconds(10);
        d.cmd = Some("serve --v2".into());
        let u = begin(
            AppChange::Update(d),
            Some(&settled),
            &[],
            Locked::Refuse,
            later,
        )
        .unwrap();
        let v2 = u.app.version.clone();
        let new: Vec<Task> = (3..=4)
            .map(|i| task(&u.app, &v2, i, TaskState::Healthy, later))
            .collect();
        let tasks: Vec<Task> = old.iter().chain(&new).cloned().collect();
        let replaced = |p: &AppsPlan| {
            p.kills
                .iter()
                .filter(|k| k.reason == KillReason::Replaced)
                .count()
        };

        // Healthy but not past readiness: no old instance may go.
        let p = plan(&snapshot(
            later,
            vec![u.app.clone()],
            vec![u.deployment.clone()],
            tasks.clone(),
            vec![],
        ));
        assert_eq!(replaced(&p), 0, "{:?}", p.kills);
        assert!(p.launches.is_empty());
        assert_eq!(p.probes.len(), 2);
        let dep = deployment_of(&p, "/web").unwrap();
        assert_eq!((dep.progress.ready, dep.progress.starting), (0, 2));

        // One new instance ready: one old one is replaced.
        let p = plan(&snapshot(
            later,
            vec![u.app.clone()],
            vec![u.deployment.clone()],
            tasks.clone(),
            vec![ready(&new[0], true), ready(&new[1], false)],
        ));
        assert_eq!(replaced(&p), 1, "{:?}", p.kills);
        assert_eq!(p.probes.len(), 1);
        assert_eq!(p.probes[0].task, new[1].spec.id);

        // Both ready: both old ones go. The old instances were never checked.
        let p = plan(&snapshot(
            later,
            vec![u.app.clone()],
            vec![u.deployment.clone()],
            tasks,
            vec![ready(&new[0], true), ready(&new[1], true)],
        ));
        assert_eq!(replaced(&p), 2, "{:?}", p.kills);
        let checked: BTreeSet<&TaskId> = p.status[0].readiness.iter().map(|r| &r.task_id).collect();
        assert_eq!(checked, new.iter().map(|t| &t.spec.id).collect());
    }

    #[test]
    fn a_scale_up_checks_only_the_instances_it_starts() {
        let now = t0();
        let c = begin(
            AppChange::Create(with_readiness(app_def("/web", 1))),
            None,
            &[],
            Locked::Refuse,
            now,
        )
        .unwrap();
        let first = task(&c.app, &c.app.version, 1, TaskState::Running, now);
        let later = now + TimeDelta::seconds(30);
        let s = begin(
            AppChange::Scale { instances: 2 },
            Some(&c.app),
            &[],
            Locked::Refuse,
            later,
        )
        .unwrap();
        let second = task(&s.app, &s.app.version, 2, TaskState::Running, later);
        let p = plan(&snapshot(
            later,
            vec![s.app.clone()],
            vec![s.deployment.clone()],
            vec![first, second.clone()],
            vec![],
        ));
        let d = deployment_of(&p, "/web").unwrap();
        assert_eq!((d.progress.ready, d.progress.starting), (1, 1));
        assert_eq!(p.probes.len(), 1);
        assert_eq!(p.probes[0].task, second.spec.id);
    }

    #[test]
    fn a_deployment_waits_for_its_dependencies_then_starts() {
        let now = t0();
        let db = begin(
            AppChange::Create(with_health(app_def("/db", 2))),
            None,
            &[],
            Locked::Refuse,
            now,
        )
        .unwrap();
        let mut web_def = app_def("/web", 1);
        web_def.dependencies = vec![AppId::parse("/db").unwrap()];
        web_def.progress_deadline_seconds = 30.0;
        let web = begin(AppChange::Create(web_def), None, &[], Locked::Refuse, now).unwrap();
        let db_tasks = |healthy: u32| -> Vec<Task> {
            (1..=2)
                .map(|i| {
                    let s = if i <= healthy {
                        TaskState::Healthy
                    } else {
                        TaskState::Running
                    };
                    task(&db.app, &db.app.version, i, s, now)
                })
                .collect()
        };
        let launches_of =
            |p: &AppsPlan, app: &str| p.launches.iter().filter(|l| l.task.name == app).count();

        // /db deploying, one of two healthy: /web starts nothing, says why, and its
        // deadline does not run (an hour later it has not failed).
        let an_hour = now + TimeDelta::hours(1);
        let p = plan(&snapshot(
            an_hour,
            vec![db.app.clone(), web.app.clone()],
            vec![db.deployment.clone(), web.deployment.clone()],
            db_tasks(1),
            vec![],
        ));
        assert_eq!(launches_of(&p, "/web"), 0);
        let w = deployment_of(&p, "/web").unwrap();
        assert_eq!(w.state, DeploymentState::Running);
        assert_eq!(
            w.waiting.as_deref(),
            Some("waiting for dependencies: /db (1 of 2 healthy, deployment running)")
        );
        assert!(w.progress.deadline_at.is_none());
        let status = p
            .status
            .iter()
            .find(|s| s.app_id.as_str() == "/web")
            .unwrap();
        assert!(
            status
                .waiting
                .iter()
                .any(|x| x.contains("/db (1 of 2 healthy"))
        );

        // /db done but one instance unhealthy again: still waiting.
        let web_waiting = w.clone();
        let p = plan(&snapshot(
            an_hour,
            vec![db.app.clone(), web.app.clone()],
            vec![web_waiting.clone()],
            db_tasks(1),
            vec![],
        ));
        assert_eq!(launches_of(&p, "/web"), 0);
        assert_eq!(
            deployment_of(&p, "/web").and_then(|d| d.waiting.as_deref()),
            Some("waiting for dependencies: /db (1 of 2 healthy)")
        );

        // Both healthy, no deployment of its own: /web is released and launches; its
        // deadline counts from the release.
        let p = plan(&snapshot(
            an_hour,
            vec![db.app.clone(), web.app.clone()],
            vec![web_waiting],
            db_tasks(2),
            vec![],
        ));
        assert_eq!(launches_of(&p, "/web"), 1);
        let w = deployment_of(&p, "/web").unwrap();
        assert!(w.waiting.is_none());
        assert_eq!(w.dependencies_ready_at, Some(an_hour));
        assert_eq!(
            w.progress.deadline_at,
            Some(an_hour + TimeDelta::seconds(30))
        );

        // Released once, it does not wait again when /db degrades.
        let released = w.clone();
        let p = plan(&snapshot(
            an_hour,
            vec![db.app.clone(), web.app.clone()],
            vec![released],
            db_tasks(0),
            vec![],
        ));
        assert_eq!(launches_of(&p, "/web"), 1);
    }

    #[test]
    fn a_missing_dependency_is_waited_for() {
        let now = t0();
        let mut def = app_def("/web", 1);
        def.dependencies = vec![AppId::parse("/db").unwrap()];
        let web = begin(AppChange::Create(def), None, &[], Locked::Refuse, now).unwrap();
        let p = plan(&snapshot(
            now,
            vec![web.app.clone()],
            vec![web.deployment.clone()],
            vec![],
            vec![],
        ));
        assert!(p.launches.is_empty());
        assert_eq!(
            deployment_of(&p, "/web").and_then(|d| d.waiting.as_deref()),
            Some("waiting for dependencies: /db (does not exist)")
        );
    }

    #[test]
    fn a_group_dependency_stands_for_the_apps_under_it() {
        let now = t0();
        let db = begin(
            AppChange::Create(app_def("/data/db", 1)),
            None,
            &[],
            Locked::Refuse,
            now,
        )
        .unwrap();
        let mut def = app_def("/web", 1);
        def.dependencies = vec![AppId::parse("/data").unwrap()];
        let web = begin(AppChange::Create(def), None, &[], Locked::Refuse, now).unwrap();
        let p = plan(&snapshot(
            now,
            vec![db.app.clone(), web.app.clone()],
            vec![web.deployment.clone()],
            vec![],
            vec![],
        ));
        assert_eq!(
            deployment_of(&p, "/web").and_then(|d| d.waiting.as_deref()),
            Some("waiting for dependencies: /data/db (0 of 1 healthy)")
        );
    }

    #[test]
    fn dependency_cycles_are_refused_naming_the_cycle() {
        let dep = |id: &str, deps: &[&str]| {
            let mut d = app_def(id, 1);
            d.dependencies = deps.iter().map(|x| AppId::parse(x).unwrap()).collect();
            d
        };
        let a = dep("/a", &["/b"]);
        let b = dep("/b", &["/c"]);
        let c = dep("/c", &[]);
        // Fine: a chain, and a dependency that does not exist.
        check_cycles(&dep("/c", &["/nowhere"]), [&a, &b]).unwrap();
        let e = check_cycles(&dep("/c", &["/a"]), [&a, &b]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(e.field.as_deref(), Some("dependencies"));
        assert_eq!(
            e.message,
            "dependencies: dependency cycle: /c -> /a -> /b -> /c"
        );
        // Through a group: /g/x needs /a, which needs /g (every app under it).
        let a2 = dep("/a", &["/g"]);
        let e = check_cycles(&dep("/g/x", &["/a"]), [&a2, &c]).unwrap_err();
        assert!(e.message.ends_with("dependency cycle: /g/x -> /a -> /g/x"));
        // A cycle elsewhere that does not pass through the change is not this change's.
        check_cycles(&dep("/d", &[]), [&a, &b, &dep("/c", &["/a"])]).unwrap();
    }

    #[test]
    fn task_ids_are_marathon_shaped_valid_and_distinct() {
        let mut ids = crate::apps::pending::TaskIds::new(u128::MAX - 3, BTreeSet::new());
        let all: Vec<TaskId> = (0..1000).map(|_| ids.next("/shop/web")).collect();
        for id in &all {
            id.validate().unwrap();
            let (name, hex) = id.as_str().split_once('.').unwrap();
            assert_eq!(name, "shop_web");
            assert_eq!(hex.len(), 32);
            assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
            assert_eq!(&hex[12..13], "4", "a version 4 UUID: {hex}");
        }
        let distinct: BTreeSet<&TaskId> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        // The same seed gives the same ids: the plan is a function of the snapshot.
        let mut again = crate::apps::pending::TaskIds::new(u128::MAX - 3, BTreeSet::new());
        assert_eq!(again.next("/shop/web"), all[0]);
        // An id already taken is skipped.
        let mut skip =
            crate::apps::pending::TaskIds::new(u128::MAX - 3, BTreeSet::from([all[0].clone()]));
        assert_eq!(skip.next("/shop/web"), all[1]);
    }

    #[test]
    fn a_launch_is_repeated_under_its_id_until_the_master_shows_it() {
        let now = t0();
        let c = begin(
            AppChange::Create(app_def("/web", 2)),
            None,
            &[],
            Locked::Refuse,
            now,
        )
        .unwrap();
        let snap = |app: &AppState, tasks: Vec<Task>, refused: Vec<TaskId>, seed: u128| Snapshot {
            id_seed: seed,
            refused,
            ..snapshot(
                now,
                vec![app.clone()],
                vec![c.deployment.clone()],
                tasks,
                vec![],
            )
        };
        let ids = |p: &AppsPlan| -> Vec<TaskId> {
            p.launches.iter().map(|l| l.id.clone().unwrap()).collect()
        };

        // Decided: two launches, each recorded with its id, node and version.
        let p1 = plan(&snap(&c.app, vec![], vec![], 1));
        let first = ids(&p1);
        assert_eq!(first.len(), 2);
        let app = p1.apps[0].clone();
        let pending: Vec<TaskId> = app
            .pending_launches
            .iter()
            .map(|p| p.task_id.clone())
            .collect();
        assert_eq!(pending, first);
        assert!(
            app.pending_launches
                .iter()
                .all(|p| p.version == c.app.version && p.node == "n1")
        );
        assert_eq!(
            p1.launches[0].task,
            c.app.definition.to_task_definition().task
        );

        // No answer, and the master's tasks do not show them: the same two again, and
        // nothing new, whatever the seed.
        let p2 = plan(&snap(&app, vec![], vec![], 2));
        assert_eq!(ids(&p2), first);
        assert_eq!(p2.launches, p1.launches);
        assert!(p2.apps.is_empty(), "nothing to persist");
        assert_eq!(p2.status[0].tasks.staged, 2);
        assert!(p2.kills.is_empty());

        // The master shows one: it is confirmed; the other is repeated.
        let mut shown = task(&app, &app.version, 1, TaskState::Staging, now);
        shown.spec.id = first[0].clone();
        let p3 = plan(&snap(&app, vec![shown.clone()], vec![], 3));
        assert_eq!(ids(&p3), vec![first[1].clone()]);
        let app3 = p3.apps[0].clone();
        assert_eq!(app3.pending_launches.len(), 1);

        // The master refused the other: decided again, under a new id.
        let p4 = plan(&snap(&app3, vec![shown], vec![first[1].clone()], 4));
        let fresh = ids(&p4);
        assert_eq!(fresh.len(), 1);
        assert_ne!(fresh[0], first[1]);
        assert_eq!(p4.apps[0].pending_launches[0].task_id, fresh[0]);
    }

    #[test]
    fn a_pending_launch_of_an_earlier_version_is_repeated_with_that_definition() {
        let now = t0();
        let c = begin(
            AppChange::Create(app_def("/web", 1)),
            None,
            &[],
            Locked::Refuse,
            now,
        )
        .unwrap();
        let p1 = plan(&snapshot(
            now,
            vec![c.app.clone()],
            vec![c.deployment.clone()],
            vec![],
            vec![],
        ));
        let app = p1.apps[0].clone();
        let old_id = app.pending_launches[0].task_id.clone();
        // Updated before the launch was confirmed.
        let mut def = app.definition.clone();
        def.cmd = Some("serve --v2".into());
        let later = now + TimeDelta::seconds(1);
        let u = begin(
            AppChange::Update(def),
            Some(&app),
            &[],
            Locked::Supersede,
            later,
        )
        .unwrap();
        assert_eq!(u.app.pending_launches, app.pending_launches);
        let needed = crate::apps::versions_needed([&u.app], std::slice::from_ref(&u.deployment));
        assert_eq!(needed, vec![(u.app.id().clone(), app.version.clone())]);

        // The update replaces it: killed (in case the master has it) and forgotten; the
        // new instance gets another id although the seed is the first plan's.
        let p2 = plan(&Snapshot {
            versions: vec![c.app.definition.clone()],
            ..snapshot(
                later,
                vec![u.app.clone()],
                vec![u.deployment.clone()],
                vec![],
                vec![],
            )
        });
        assert_eq!(p2.kills.len(), 1);
        assert_eq!(
            (&p2.kills[0].task, p2.kills[0].reason),
            (&old_id, KillReason::NotReadyOld)
        );
        assert_eq!(p2.launches.len(), 1);
        assert_ne!(p2.launches[0].id.as_ref(), Some(&old_id));
        assert_eq!(
            p2.launches[0].task,
            u.app.definition.to_task_definition().task
        );
        assert!(
            p2.apps[0]
                .pending_launches
                .iter()
                .all(|p| p.task_id != old_id)
        );

        // Without a deployment (count mode) it stays, and is repeated as it was decided.
        let p3 = plan(&Snapshot {
            versions: vec![c.app.definition.clone()],
            ..snapshot(later, vec![u.app.clone()], vec![], vec![], vec![])
        });
        assert!(p3.kills.is_empty());
        assert_eq!(p3.launches.len(), 1);
        assert_eq!(p3.launches[0].id.as_ref(), Some(&old_id));
        assert_eq!(
            p3.launches[0].task,
            c.app.definition.to_task_definition().task
        );
        // Its definition not given: still counted, not sent until it is.
        let p4 = plan(&snapshot(
            later,
            vec![u.app.clone()],
            vec![],
            vec![],
            vec![],
        ));
        assert!(p4.launches.is_empty() && p4.kills.is_empty(), "{p4:?}");
        assert_eq!(p4.status[0].tasks.staged, 1);
    }
}
