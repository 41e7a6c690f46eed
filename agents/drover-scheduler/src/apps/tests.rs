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
    let created = begin(AppChange::Create(def(2)), None, &[], false, now).unwrap();
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
    let e = begin(AppChange::Create(def(2)), Some(&app), &done, false, now).unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    // A change to a missing app: 404.
    let e = begin(AppChange::Restart, None, &[], false, now).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    // Update that changes only the instances: a scale, same version.
    let s = begin(AppChange::Update(def(5)), Some(&app), &done, false, now).unwrap();
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
    let u = begin(AppChange::Update(d2.clone()), Some(&app), &done, false, now).unwrap();
    assert_eq!(u.deployment.kind, DeploymentKind::Update);
    assert!(u.app.version > app.version);
    // Invalid definition: 400 naming the field.
    let mut bad = def(2);
    bad.resources.cpus = -1.0;
    let e = begin(AppChange::Update(bad), Some(&app), &done, false, now).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidField);
    // Scale past the limit.
    let e = begin(
        AppChange::Scale {
            instances: 1_000_000,
        },
        Some(&app),
        &done,
        false,
        now,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("instances"));
    // Rollback without a version.
    let e = begin(AppChange::Rollback(def(2)), Some(&app), &done, false, now).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("version"));
    // Locked while running, unless forced.
    let running = [u.deployment.clone()];
    let e = begin(AppChange::Restart, Some(&u.app), &running, false, now).unwrap_err();
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains(u.deployment.id.as_str()));
    let f = begin(AppChange::Restart, Some(&u.app), &running, true, now).unwrap();
    assert_eq!(f.superseded.len(), 1);
    assert_eq!(f.superseded[0].state, DeploymentState::Superseded);
    assert_ne!(f.deployment.id, u.deployment.id);
    // Delete: two steps, no deadline, cannot be cancelled.
    let del = begin(AppChange::Delete, Some(&app), &done, false, now).unwrap();
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
    let c = begin(AppChange::Create(d.clone()), None, &[], false, now).unwrap();
    assert!(c.deployment.revert_to.is_none(), "nothing healthy yet");
    let mut app = c.app;
    app.last_healthy_version = Some(app.version.clone());
    d.cmd = Some("v2".into());
    let u = begin(AppChange::Update(d), Some(&app), &[], false, now).unwrap();
    assert_eq!(
        u.deployment.revert_to.as_deref(),
        Some(app.version.as_str())
    );
}

#[test]
fn state_round_trips_through_json() {
    let now = t("2026-01-01T00:00:00Z");
    let c = begin(AppChange::Create(def(2)), None, &[], false, now).unwrap();
    let s = serde_json::to_string(&c.app).unwrap();
    let back: AppState = serde_json::from_str(&s).unwrap();
    assert_eq!(back, c.app);
    let s = serde_json::to_string(&c.deployment).unwrap();
    let back: Deployment = serde_json::from_str(&s).unwrap();
    assert_eq!(back, c.deployment);
}
