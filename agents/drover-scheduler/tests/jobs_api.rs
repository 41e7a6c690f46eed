//! The scheduler's job API served by the real server on loopback, over a store filled
//! with runs of known durations (the check 8: statistics over known durations
//! equal the values computed by hand). No master is needed: the scheduler keeps
//! serving while the master is unreachable.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use drover_api::job::parse_job;
use drover_api::job_run::{JobRun, JobRunState, RunTrigger};
use drover_scheduler::engine::jobs::JobProgress;
use drover_scheduler::engine::jobs::due::Cursor;
use drover_scheduler::engine::jobs::stats::RunStats;
use drover_scheduler::runtime::store::jobs as jobs_store;
use drover_store::{RedbStore, Store, StoreExt};
use serde_json::{Value, json};

mod common;
use common::{TestScheduler, start_scheduler};

/// Stores a job whose finished runs took `durations` seconds (in that order).
fn store_job(store: &dyn Store, name: &str, durations: &[f64]) {
    let (job, _) = parse_job(
        &json!({"name": name, "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D"}),
    )
    .unwrap();
    let now = Utc::now();
    let mut stats = RunStats::default();
    for (i, d) in durations.iter().enumerate() {
        let finished = now - TimeDelta::seconds(100 - i as i64);
        stats.record_success(finished, Some(*d));
        let started = finished - TimeDelta::milliseconds((d * 1000.0) as i64);
        let run = JobRun {
            job: name.into(),
            run_id: format!("x-{}", i + 1),
            number: i as u64 + 1,
            scheduled_for: started,
            trigger: RunTrigger::Schedule,
            attempt: 1,
            state: JobRunState::Succeeded,
            skip_reason: None,
            task_id: Some(format!("{name}.x-{}.1", i + 1).as_str().into()),
            node: Some("n1".into()),
            launched_at: Some(started),
            started_at: Some(started),
            finished_at: Some(finished),
            duration_seconds: Some(*d),
            exit: None,
            retry_at: None,
            kill_requested_at: None,
            message: None,
        };
        store
            .put_json(
                &format!("{}{:012}.{:04}", jobs_store::runs_prefix(name), i + 1, 1),
                &run,
                drover_store::Expect::Any,
            )
            .unwrap();
    }
    let progress = JobProgress {
        created_at: now - TimeDelta::hours(1),
        cursor: Cursor::After(now),
        next_number: durations.len() as u64 + 1,
        parent_marks: Default::default(),
        stats: RunStats {
            recent_durations: durations.iter().copied().collect::<VecDeque<f64>>(),
            ..stats
        },
    };
    store
        .put_json(&jobs_store::def_key(name), &job, drover_store::Expect::Any)
        .unwrap();
    store
        .put_json(
            &jobs_store::progress_key(name),
            &progress,
            drover_store::Expect::Any,
        )
        .unwrap();
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test]
async fn stats_over_known_durations() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path().join(drover_scheduler::server::STORE_FILE)).unwrap();
        // Odd count: sorted 1, 2, 3, 4, 10.
        store_job(&store, "odd", &[10.0, 1.0, 4.0, 2.0, 3.0]);
        // Even count: sorted 1, 2, 3, 4.
        store_job(&store, "even", &[4.0, 3.0, 2.0, 1.0]);
    }
    let TestScheduler {
        base,
        stop: stop_tx,
        server,
    } = start_scheduler(dir.path()).await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let resp = http.get(path).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };

    // Hand-computed (linear interpolation between closest ranks, h = (n - 1) q):
    // odd:  median 3, mean 20/5 = 4, p75 h=3 -> 4, p95 h=3.8 -> 4 + 0.8*6 = 8.8,
    //       p98 h=3.92 -> 9.52, p99 h=3.96 -> 9.76.
    let s = get(format!("{base}/v1/jobs/odd/stats")).await;
    let d = &s["durations"];
    assert_eq!(d["count"], 5);
    assert_eq!(s["successCount"], 5);
    for (k, v) in [
        ("median", 3.0),
        ("mean", 4.0),
        ("p75", 4.0),
        ("p95", 8.8),
        ("p99", 9.76),
    ] {
        assert!(close(d[k].as_f64().unwrap(), v), "odd {k}: {} != {v}", d[k]);
    }
    // even: median (2+3)/2 = 2.5, mean 2.5, p75 h=2.25 -> 3.25, p95 h=2.85 -> 3.85,
    //       p99 h=2.97 -> 3.97.
    let s = get(format!("{base}/v1/jobs/even/stats")).await;
    let d = &s["durations"];
    for (k, v) in [
        ("median", 2.5),
        ("mean", 2.5),
        ("p75", 3.25),
        ("p95", 3.85),
        ("p99", 3.97),
    ] {
        assert!(
            close(d[k].as_f64().unwrap(), v),
            "even {k}: {} != {v}",
            d[k]
        );
    }
    // Chronos's shape, same numbers.
    let c = get(format!("{base}/scheduler/job/stat/odd")).await;
    let h = &c["histogram"];
    assert_eq!(h["count"], 5);
    for (k, v) in [
        ("median", 3.0),
        ("mean", 4.0),
        ("75thPercentile", 4.0),
        ("95thPercentile", 8.8),
        ("98thPercentile", 9.52),
        ("99thPercentile", 9.76),
    ] {
        assert!(
            close(h[k].as_f64().unwrap(), v),
            "chronos {k}: {} != {v}",
            h[k]
        );
    }
    // The stored runs are the history, newest first, with their durations.
    let runs = get(format!("{base}/v1/jobs/odd/runs")).await;
    let durations: Vec<f64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["durationSeconds"].as_f64().unwrap())
        .collect();
    assert_eq!(durations, vec![3.0, 2.0, 4.0, 1.0, 10.0]);
    // The master is down: the API still answers, and /metrics says so.
    let m = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("drover_scheduler_master_reachable 0"), "{m}");
    assert!(m.contains("drover_scheduler_jobs 2"), "{m}");

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
