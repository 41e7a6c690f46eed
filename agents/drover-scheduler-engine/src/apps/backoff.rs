//! Crash-loop backoff: count an app's failures, delay its launches, reset the delay.
//!
//! - A *failure* is an instance of the app's current version that ended on its own
//!   (`failed`, or `finished`: a long-running app must not exit) while Drover wanted it,
//!   or one Drover kills because the agent reports it unhealthy. Instances killed outside
//!   Drover (`killed` with goal `run`) and instances lost with their node are replaced
//!   at once: that is not the app's fault.
//! - After the n-th failure in a row the delay is `backoffSeconds * backoffFactor^(n-1)`,
//!   capped at `maxLaunchDelaySeconds`, counted from that failure; no instance of the app
//!   launches before it has passed.
//! - A new version (update, restart, rollback) starts with no failures. The count also
//!   resets once an instance has stayed up for [`AppsConfig::backoff_reset_after`]
//!   (default 5 minutes) after the last failure: ready (healthy, or running without
//!   health checks) and started after that failure, or a failing instance that had
//!   itself been up that long before it failed.
//!
//! Terminal tasks are counted once through a watermark ([`Backoff::counted_until`]): a
//! task that ended at or before it was counted already (or belongs to an earlier
//! version). The master must report a task's end with its `finishedAt`.
//!
//! [`AppsConfig::backoff_reset_after`]: super::AppsConfig::backoff_reset_after

use chrono::{DateTime, TimeDelta, Utc};
use drover_api::app::AppDefinition;
use drover_api::deployment::Backoff;
use drover_api::task::{Task, TaskGoal, TaskState};

use super::reconcile::{Buckets, ended, is_ready, started, version_of};
use super::state::seconds;

/// The delay in seconds after `failures` failures in a row (0 for none).
pub fn delay_seconds(def: &AppDefinition, failures: u32) -> f64 {
    if failures == 0 {
        return 0.0;
    }
    let max = def.max_launch_delay_seconds.max(0.0);
    let exp = i32::try_from(failures - 1).unwrap_or(i32::MAX);
    let d = def.backoff_seconds * def.backoff_factor.powi(exp);
    if d.is_nan() { max } else { d.clamp(0.0, max) }
}

/// Updates `backoff` from the app's tasks (sorted relative to `version`) at `now`:
/// counts the version's new failures (its terminal tasks, and the wanted instances
/// killed now because they are unhealthy), and resets after a stable ready instance.
pub fn observe(
    backoff: &mut Backoff,
    def: &AppDefinition,
    version: &str,
    tasks: &Buckets<'_>,
    now: DateTime<Utc>,
    reset_after: TimeDelta,
) {
    let ended_tasks = &tasks.ended;
    let unhealthy_killed = &tasks.unhealthy;
    let ready = &tasks.ready;
    let mut failures: Vec<(DateTime<Utc>, bool)> = ended_tasks
        .iter()
        .filter(|t| {
            t.goal == TaskGoal::Run
                && matches!(t.state, TaskState::Failed | TaskState::Finished)
                && version_of(t) == version
                && backoff.counted_until.is_none_or(|c| ended(t) > c)
                // An end the master stamped ahead of our clock waits, so the watermark
                // (never past `now`) cannot count it twice.
                && ended(t) <= now
        })
        .map(|t| (ended(t), ran_for(t, ended(t)) >= reset_after))
        .collect();
    for t in unhealthy_killed.iter().filter(|t| version_of(t) == version) {
        failures.push((now, ran_for(t, now) >= reset_after));
    }
    failures.sort();
    for (at, was_stable) in &failures {
        if *was_stable {
            backoff.consecutive_failures = 0;
        }
        backoff.consecutive_failures = backoff.consecutive_failures.saturating_add(1);
        backoff.last_failure_at = Some(backoff.last_failure_at.map_or(*at, |l| l.max(*at)));
    }
    if let Some(last_end) = ended_tasks
        .iter()
        .filter(|t| version_of(t) == version)
        .map(|t| ended(t))
        .filter(|e| *e <= now)
        .max()
    {
        backoff.counted_until = Some(backoff.counted_until.map_or(last_end, |c| c.max(last_end)));
    }
    // Stable: a ready instance started after the last failure and up long enough.
    if backoff.consecutive_failures > 0
        && let Some(last) = backoff.last_failure_at
        && ready
            .iter()
            .any(|t| is_ready(t) && started(t) > last && now - started(t) >= reset_after)
    {
        backoff.consecutive_failures = 0;
    }
    if backoff.consecutive_failures == 0 {
        backoff.delay_seconds = 0.0;
        backoff.not_before = None;
    } else {
        let d = delay_seconds(def, backoff.consecutive_failures);
        backoff.delay_seconds = d;
        backoff.not_before = backoff.last_failure_at.map(|l| l + seconds(d));
    }
}

fn ran_for(t: &Task, until: DateTime<Utc>) -> TimeDelta {
    match t.started_at {
        Some(s) => until - s,
        None => TimeDelta::zero(),
    }
}
