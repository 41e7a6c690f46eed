//! The jobs issue's checks, against real `drover-master`, `drover-agent` and
//! `drover-scheduler` processes on loopback (and the `drover` CLI).
//!
//! Check 8 (statistics over known durations equal hand-computed values) is the
//! scheduler's crate test `agents/drover-scheduler/tests/jobs_api.rs`, which serves
//! stored runs of known durations through the real API; check 4 here checks the counts.
//!
//! Timing: tests wait on conditions with generous deadlines and assert on counts and
//! recorded data, never on elapsed time. Lateness is printed for the record.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use drover_api::job_run::{JobRun, JobRunState, RunTrigger, SkipReason};
use drover_cluster_tests::{Cluster, ClusterOptions, wait_for};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

async fn cluster(extra: &[&str]) -> Cluster {
    let mut c = Cluster::start(ClusterOptions::default()).await;
    c.start_scheduler(extra);
    c
}

/// A job body with small resources, so many fit on the test agents.
fn job(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    obj.entry("cpus").or_insert(json!(0.01));
    obj.entry("mem").or_insert(json!(8));
    obj.entry("disk").or_insert(json!(1));
    v
}

async fn put(c: &Cluster, v: Value) {
    c.scheduler_client()
        .put_job(&job(v))
        .await
        .unwrap_or_else(|e| panic!("job refused: {e}\n{}", c.logs()));
}

/// A job's attempts, oldest first.
async fn runs(c: &Cluster, name: &str) -> Vec<JobRun> {
    let mut r = c
        .scheduler_client()
        .job_runs(name, Some(10_000))
        .await
        .unwrap();
    r.reverse();
    r
}

async fn wait_runs(
    c: &Cluster,
    name: &str,
    what: &str,
    ok: impl Fn(&[JobRun]) -> bool,
) -> Vec<JobRun> {
    let ok = &ok;
    let found = tokio::time::timeout(
        LONG + Duration::from_secs(10),
        wait_for(what, LONG, || async move {
            let r = runs(c, name).await;
            ok(&r).then_some(r)
        }),
    )
    .await;
    match found {
        Ok(r) => r,
        Err(_) => panic!(
            "{what}: timed out\nruns: {:#?}\n{}",
            runs(c, name).await,
            c.logs()
        ),
    }
}

fn count(runs: &[JobRun], state: JobRunState) -> usize {
    runs.iter().filter(|r| r.state == state).count()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A whole second a little ahead, as a schedule start.
fn start_in(secs: i64) -> DateTime<Utc> {
    let t = Utc::now() + TimeDelta::seconds(secs);
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

async fn log_of(c: &Cluster, name: &str, run: u64) -> String {
    use futures::StreamExt;
    let q = drover_api::client::JobLogQuery::default();
    let Ok(stream) = c
        .scheduler_client()
        .job_logs(name, &run.to_string(), &q)
        .await
    else {
        return String::new();
    };
    let chunks: Vec<_> = stream.collect().await;
    chunks
        .into_iter()
        .filter_map(Result::ok)
        .flat_map(|b| b.to_vec())
        .map(char::from)
        .collect()
}

/// Check 2: a job every 2 seconds runs 5 times in about 10 seconds, each run recorded
/// with its output, each starting within a small lateness of its time.
#[tokio::test(flavor = "multi_thread")]
async fn every_two_seconds_runs_five_times() {
    let c = cluster(&[]).await;
    put(
        &c,
        json!({"name": "every2", "command": "echo tick from every2", "schedule": "R5//PT2S"}),
    )
    .await;
    let r = wait_runs(&c, "every2", "five succeeded runs", |r| {
        count(r, JobRunState::Succeeded) == 5
    })
    .await;
    assert_eq!(r.len(), 5, "exactly five runs, none skipped: {r:#?}");
    let mut lateness = Vec::new();
    for (i, run) in r.iter().enumerate() {
        assert_eq!(run.number, i as u64 + 1);
        assert_eq!(run.trigger, RunTrigger::Schedule);
        assert!(
            run.started_at.is_some() && run.finished_at.is_some() && run.node.is_some(),
            "{run:#?}"
        );
        assert_eq!(run.exit.unwrap().code, Some(0));
        if i > 0 {
            assert_eq!(
                run.scheduled_for - r[i - 1].scheduled_for,
                TimeDelta::seconds(2)
            );
        }
        lateness.push(run.lateness_seconds().unwrap());
        let out = wait_for("the run's output", LONG, || async {
            let out = log_of(&c, "every2", run.number).await;
            out.contains("tick from every2").then_some(out)
        })
        .await;
        assert_eq!(out.trim(), "tick from every2");
    }
    println!("every2 lateness (s): {lateness:?}");
    // Generous: the scheduler decides within milliseconds; a loaded CI host may lag.
    assert!(
        lateness.iter().all(|l| *l >= 0.0 && *l < 1.5),
        "lateness {lateness:?}"
    );
    // R5 means five: nothing more comes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs(&c, "every2").await.len(), 5);
    let details = c.scheduler_client().job("every2", None).await.unwrap();
    assert_eq!(details.status.state.as_str(), "finished_repeating");
    assert_eq!(details.status.stats.success_count, 5);
}

/// Check 3: A with children B and C, and D depending on both: after A runs, B and C
/// run, then D exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn dependency_diamond_runs_d_once() {
    let c = cluster(&[]).await;
    let start = start_in(4);
    put(&c, json!({"name": "A", "command": "echo A", "schedule": format!("R1/{}/PT1M", rfc3339(start))})).await;
    put(
        &c,
        json!({"name": "B", "command": "sleep 0.5; echo B", "parents": ["A"]}),
    )
    .await;
    put(
        &c,
        json!({"name": "C", "command": "sleep 1; echo C", "parents": ["A"]}),
    )
    .await;
    put(
        &c,
        json!({"name": "D", "command": "echo D", "parents": ["B", "C"]}),
    )
    .await;
    let d = wait_runs(&c, "D", "D succeeded", |r| {
        count(r, JobRunState::Succeeded) == 1
    })
    .await;
    let a = runs(&c, "A").await;
    let b = runs(&c, "B").await;
    let cc = runs(&c, "C").await;
    assert_eq!(
        (a.len(), b.len(), cc.len()),
        (1, 1, 1),
        "A {a:#?} B {b:#?} C {cc:#?}"
    );
    for r in [&a[0], &b[0], &cc[0]] {
        assert_eq!(r.state, JobRunState::Succeeded, "{r:#?}");
    }
    assert_eq!(b[0].trigger, RunTrigger::Dependency);
    // B and C start after A ended; D after both ended.
    let a_end = a[0].finished_at.unwrap();
    assert!(b[0].launched_at.unwrap() >= a_end && cc[0].launched_at.unwrap() >= a_end);
    let d0 = &d[0];
    assert!(d0.launched_at.unwrap() >= b[0].finished_at.unwrap());
    assert!(d0.launched_at.unwrap() >= cc[0].finished_at.unwrap());
    // And only once: give a second round the chance to appear.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs(&c, "D").await.len(), 1);
    // The graph says the same, as text and DOT.
    let (code, out, err) = c.cli(&["jobs", "graph"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("A\n└─ B\n   └─ D\n└─ C\n   └─ D"), "{out}");
    let (code, dot, _) = c.cli(&["jobs", "graph", "--dot"]);
    assert_eq!(code, 0);
    assert!(
        dot.contains("\"B\" -> \"D\"") && dot.contains("\"A\" -> \"C\""),
        "{dot}"
    );
}

/// Check 4: a failing job with `retries: 2` runs 3 times and is recorded as failed; the
/// stats count one error.
#[tokio::test(flavor = "multi_thread")]
async fn failing_job_is_retried_then_failed() {
    let c = cluster(&["--job-retry-delay", "0.5"]).await;
    put(&c, json!({"name": "flaky", "command": "echo trying; exit 3", "schedule": "R1//PT1H", "retries": 2})).await;
    let r = wait_runs(&c, "flaky", "three failed attempts", |r| {
        r.len() == 3
            && r.iter()
                .all(|a| a.state == JobRunState::Failed && a.retry_at.is_none())
    })
    .await;
    let run_id = &r[0].run_id;
    for (i, a) in r.iter().enumerate() {
        assert_eq!(a.attempt, i as u32 + 1);
        assert_eq!(&a.run_id, run_id, "one run, three attempts");
        assert_eq!(a.exit.unwrap().code, Some(3));
    }
    let stats = c.scheduler_client().job_stats("flaky").await.unwrap();
    assert_eq!(
        (stats.error_count, stats.success_count),
        (1, 0),
        "{stats:?}"
    );
    assert!(stats.last_error.is_some());
    // The CLI shows the same.
    let (code, out, err) = c.cli(&["jobs", "stats", "flaky"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Failed") && out.contains('1'), "{out}");
    let (code, out, _) = c.cli(&["jobs", "history", "flaky"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("failed").count(), 3, "{out}");
}

/// Check 5: SIGKILL the scheduler, wait past two scheduled times, start it again: with
/// a large `epsilon` the job runs exactly once on start; with a small one it does not
/// run and the missed runs are recorded as skipped.
#[tokio::test(flavor = "multi_thread")]
async fn restart_catches_up_once_within_epsilon() {
    let mut c = cluster(&[]).await;
    // Instants at S, S+5, S+10, S+15, ...; the scheduler is down from after S+5 to S+17.5,
    // so S+10 and S+15 are missed; S+15 is 2.5 s old at restart.
    let s = start_in(4);
    let schedule = format!("R/{}/PT5S", rfc3339(s));
    put(
        &c,
        json!({"name": "wide", "command": "echo wide", "schedule": schedule, "epsilon": "PT30S"}),
    )
    .await;
    put(&c, json!({"name": "narrow", "command": "echo narrow", "schedule": schedule, "epsilon": "PT1S"})).await;
    let at = |secs: i64| s + TimeDelta::milliseconds(secs * 1000);
    for name in ["wide", "narrow"] {
        wait_runs(&c, name, "the S+5 run recorded", |r| {
            r.iter().any(|x| x.scheduled_for == at(5))
        })
        .await;
    }
    let until = |t: DateTime<Utc>| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(until(at(5) + TimeDelta::milliseconds(500))).await;
    c.scheduler.as_mut().unwrap().kill_hard();
    tokio::time::sleep(until(at(17) + TimeDelta::milliseconds(500))).await;
    c.scheduler.as_mut().unwrap().restart();
    let restarted = Utc::now();
    println!(
        "scheduler restarted {:.3}s after S+15",
        (restarted - at(15)).num_milliseconds() as f64 / 1000.0
    );
    for name in ["wide", "narrow"] {
        wait_runs(&c, name, "S+10 and S+15 decided", |r| {
            r.iter().any(|x| x.scheduled_for == at(15))
                && r.iter().any(|x| x.scheduled_for == at(10))
        })
        .await;
    }
    // Let the caught-up run finish and the next instant (S+20) come and go.
    let wide = wait_runs(&c, "wide", "S+20 ran", |r| {
        r.iter()
            .any(|x| x.scheduled_for == at(20) && x.state == JobRunState::Succeeded)
            && r.iter()
                .any(|x| x.scheduled_for == at(15) && x.state.is_terminal())
    })
    .await;
    let narrow = wait_runs(&c, "narrow", "S+20 ran", |r| {
        r.iter()
            .any(|x| x.scheduled_for == at(20) && x.state == JobRunState::Succeeded)
    })
    .await;
    let of = |r: &[JobRun], t: DateTime<Utc>| -> Vec<JobRun> {
        r.iter().filter(|x| x.scheduled_for == t).cloned().collect()
    };
    // Every instant was decided once (one run number each), never twice.
    for r in [&wide, &narrow] {
        let mut numbers: Vec<(DateTime<Utc>, u64)> =
            r.iter().map(|x| (x.scheduled_for, x.number)).collect();
        numbers.sort();
        numbers.dedup();
        let mut instants: Vec<DateTime<Utc>> = numbers.iter().map(|(t, _)| *t).collect();
        instants.dedup();
        assert_eq!(
            instants.len(),
            numbers.len(),
            "an instant got two runs: {r:#?}"
        );
        let s5 = of(r, at(5));
        assert_eq!(
            s5.len(),
            1,
            "the run in flight at the kill is neither repeated nor lost: {s5:#?}"
        );
        assert_eq!(s5[0].state, JobRunState::Succeeded);
    }
    // Wide: S+10 skipped, S+15 run exactly once, on start.
    let w10 = of(&wide, at(10));
    let w15 = of(&wide, at(15));
    assert_eq!(
        (w10.len(), w10[0].state, w10[0].skip_reason),
        (1, JobRunState::Skipped, Some(SkipReason::Missed)),
        "{w10:#?}"
    );
    assert_eq!(w15.len(), 1, "{w15:#?}");
    assert_eq!(w15[0].state, JobRunState::Succeeded);
    assert!(w15[0].launched_at.unwrap() >= restarted - TimeDelta::seconds(1));
    // Narrow: both missed instants skipped, nothing run for them.
    for t in [at(10), at(15)] {
        let n = of(&narrow, t);
        assert_eq!(n.len(), 1, "{n:#?}");
        assert_eq!(
            (n[0].state, n[0].skip_reason),
            (JobRunState::Skipped, Some(SkipReason::Missed))
        );
    }
    let stats = c.scheduler_client().job_stats("narrow").await.unwrap();
    assert!(stats.skipped_count >= 2, "{stats:?}");
}

/// Check 6: a slow job on a fast schedule with `concurrent: false` never overlaps
/// itself; the instants that come while it runs are recorded as skipped.
#[tokio::test(flavor = "multi_thread")]
async fn slow_job_never_overlaps() {
    let c = cluster(&[]).await;
    put(
        &c,
        json!({"name": "slow", "command": "sleep 2.5", "schedule": "R//PT1S", "concurrent": false}),
    )
    .await;
    wait_runs(&c, "slow", "three runs done", |r| {
        count(r, JobRunState::Succeeded) >= 3
    })
    .await;
    c.scheduler_client().disable_job("slow").await.unwrap();
    let r = wait_runs(&c, "slow", "nothing open", |r| {
        r.iter().all(|x| x.state.is_terminal())
    })
    .await;
    let mut ran: Vec<&JobRun> = r
        .iter()
        .filter(|x| x.state != JobRunState::Skipped)
        .collect();
    ran.sort_by_key(|x| x.started_at);
    for w in ran.windows(2) {
        let (prev, next) = (w[0], w[1]);
        assert!(
            next.started_at.unwrap() >= prev.finished_at.unwrap(),
            "run {} started before run {} ended: {prev:#?} {next:#?}",
            next.number,
            prev.number
        );
    }
    let skipped = r
        .iter()
        .filter(|x| x.skip_reason == Some(SkipReason::PreviousRunStillRunning))
        .count();
    assert!(skipped >= 2, "instants during a run are skipped: {r:#?}");
}

/// Check 7: the Chronos-format examples load unchanged through raw HTTP POSTs to
/// `/scheduler/iso8601` and `/scheduler/dependency`, as `curl -X POST -d @file` does.
#[tokio::test(flavor = "multi_thread")]
async fn examples_load_through_chronos_endpoints() {
    let c = cluster(&[]).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let http = reqwest::Client::new();
    let base = c.scheduler_url();
    let mut names = Vec::new();
    for f in &files {
        let body = std::fs::read(f).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        names.push(v["name"].as_str().unwrap().to_string());
        let endpoint = if v.get("parents").is_some() {
            "dependency"
        } else {
            "iso8601"
        };
        let resp = http
            .post(format!("{base}/scheduler/{endpoint}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ignored = resp
            .headers()
            .get("x-drover-ignored-fields")
            .map(|h| h.to_str().unwrap().to_string());
        assert_eq!(
            status,
            204,
            "{}: {}",
            f.display(),
            resp.text().await.unwrap()
        );
        if names.last().unwrap() == "nightly-sales-report" {
            assert_eq!(
                ignored.as_deref(),
                Some("async"),
                "the ignored field is named"
            );
        }
    }
    let jobs: Vec<Value> = http
        .get(format!("{base}/scheduler/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut listed: Vec<String> = jobs
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    names.sort();
    assert_eq!(listed, names);
    let dot = http
        .get(format!("{base}/v1/scheduler/graph/dot"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        dot.contains("\"etl-extract\" -> \"etl-transform\"")
            && dot.contains("\"etl-transform\" -> \"etl-load\""),
        "{dot}"
    );
    // The time-zone job's next runs are on Berlin's wall clock.
    let berlin = c
        .scheduler_client()
        .job("berlin-office-backup", Some(3))
        .await
        .unwrap();
    assert_eq!(berlin.status.zone, "Europe/Berlin");
    assert_eq!(berlin.status.upcoming.len(), 3);
    for u in &berlin.status.upcoming {
        assert!(
            u.local.contains("T02:30:00+01:00") || u.local.contains("T02:30:00+02:00"),
            "{u:?}"
        );
    }
    // The same folder through `drover apply` is an update of each, with no error.
    let (code, out, err) = c.cli(&["apply", "-f", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(": updated").count(), files.len(), "{out}");
}

/// Bad input is refused with the field named, through the native and the Chronos
/// endpoints and the CLI, and nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_changes_nothing() {
    let c = cluster(&[]).await;
    let sched = c.scheduler_client();
    put(
        &c,
        json!({"name": "base", "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D"}),
    )
    .await;
    put(
        &c,
        json!({"name": "child", "command": "true", "parents": ["base"]}),
    )
    .await;
    let before = sched.jobs().await.unwrap();
    let refused = |v: Value| {
        let sched = sched.clone();
        async move { sched.put_job(&job(v)).await.unwrap_err() }
    };
    let e =
        refused(json!({"name": "bad1", "command": "true", "schedule": "R/not-a-date/PT1S"})).await;
    assert_eq!(
        (e.status(), e.api_error().unwrap().field.as_deref()),
        (Some(400), Some("schedule")),
        "{e}"
    );
    let e = refused(
        json!({"name": "bad2", "command": "true", "schedule": "R//PT1S", "parents": ["base"]}),
    )
    .await;
    assert_eq!(
        (e.status(), e.api_error().unwrap().field.as_deref()),
        (Some(400), Some("parents")),
        "{e}"
    );
    let e = refused(json!({"name": "bad3", "command": "true", "parents": ["nobody"]})).await;
    assert_eq!(
        (e.status(), e.api_error().unwrap().field.as_deref()),
        (Some(400), Some("parents")),
        "{e}"
    );
    assert!(e.to_string().contains("nobody"), "{e}");
    // Turning base into a child of its own child closes a cycle.
    let e = refused(json!({"name": "base", "command": "true", "parents": ["child"]})).await;
    assert_eq!(
        (e.status(), e.api_error().unwrap().field.as_deref()),
        (Some(400), Some("parents")),
        "{e}"
    );
    assert!(e.to_string().contains("cycle"), "{e}");
    let e = refused(json!({"name": "bad name!", "command": "true", "schedule": "R//PT1S"})).await;
    assert_eq!(e.api_error().unwrap().field.as_deref(), Some("name"), "{e}");
    let e =
        refused(json!({"name": "bad5", "command": "true", "schedule": "R//PT1S", "cpus": "lots"}))
            .await;
    assert_eq!(e.api_error().unwrap().field.as_deref(), Some("cpus"), "{e}");
    // Chronos's endpoints refuse too, with the same JSON error.
    let http = reqwest::Client::new();
    let base = c.scheduler_url();
    let resp = http
        .post(format!("{base}/scheduler/dependency"))
        .header("content-type", "application/json")
        .body(r#"{"name": "bad6", "command": "true", "schedule": "R//PT1S"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "parents", "{body}");
    let resp = http
        .post(format!("{base}/scheduler/iso8601"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // A parent cannot be deleted from under its child.
    let e = sched.delete_job("base").await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    // Nothing changed.
    let after = sched.jobs().await.unwrap();
    let names =
        |d: &[drover_api::client::JobDetails]| d.iter().map(|j| j.job.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before));
    // The CLI prints the field and exits non-zero.
    let file = c.dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"name": "bad7", "command": "true", "schedule": "R5/2026-13-01T00:00:00Z/PT1S"}"#,
    )
    .unwrap();
    let (code, _, err) = c.cli(&["jobs", "create", "-f", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("schedule"), "{err}");
}

/// Manual control through the CLI: run with arguments, logs, kill, disable, enable,
/// mark success, delete.
#[tokio::test(flavor = "multi_thread")]
async fn manual_control_through_the_cli() {
    let c = cluster(&["--job-retry-delay", "0.5"]).await;
    let file = c.dir.path().join("echo.json");
    std::fs::write(
        &file,
        serde_json::to_string(&job(json!({"name": "echoer", "command": "echo args:", "schedule": "R/2030-01-01T00:00:00Z/P1D", "retries": 0}))).unwrap(),
    )
    .unwrap();
    let (code, out, err) = c.cli(&["jobs", "create", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("job echoer created"), "{out}");
    let (code, out, err) = c.cli(&["jobs", "run", "echoer", "--", "one", "two words"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("run 1 started"), "{out}");
    wait_runs(&c, "echoer", "manual run done", |r| {
        count(r, JobRunState::Succeeded) == 1
    })
    .await;
    let out = wait_for("logs", LONG, || async {
        let (code, out, _) = c.cli(&["jobs", "logs", "echoer"]);
        (code == 0 && out.contains("args:")).then_some(out)
    })
    .await;
    assert_eq!(out.trim(), "args: one two words");
    // A long run, killed.
    put(
        &c,
        json!({"name": "sleeper", "command": "sleep 60", "schedule": "R/2030-01-01T00:00:00Z/P1D"}),
    )
    .await;
    let (code, _, err) = c.cli(&["jobs", "run", "sleeper"]);
    assert_eq!(code, 0, "{err}");
    wait_runs(&c, "sleeper", "running", |r| {
        r.iter().any(|x| x.state == JobRunState::Running)
    })
    .await;
    let (code, _, err) = c.cli(&["jobs", "kill", "sleeper"]);
    assert_eq!(code, 0, "{err}");
    wait_runs(&c, "sleeper", "killed", |r| {
        count(r, JobRunState::Killed) == 1
    })
    .await;
    // Show, disable, enable, list.
    let v = c.cli_json(&["jobs", "show", "echoer", "--next", "3"]);
    assert_eq!(v["status"]["upcoming"].as_array().unwrap().len(), 3);
    let v = c.cli_json(&["jobs", "disable", "echoer"]);
    assert_eq!(v["status"]["state"], "disabled");
    let v = c.cli_json(&["jobs", "enable", "echoer"]);
    assert_eq!(v["status"]["state"], "idle");
    let (code, out, _) = c.cli(&["jobs"]);
    assert_eq!(code, 0);
    assert!(out.contains("echoer") && out.contains("sleeper"), "{out}");
    // Mark success fires the children.
    put(
        &c,
        json!({"name": "after-echo", "command": "echo after", "parents": ["echoer"]}),
    )
    .await;
    let (code, _, err) = c.cli(&["jobs", "success", "echoer"]);
    assert_eq!(code, 0, "{err}");
    wait_runs(&c, "after-echo", "child ran", |r| {
        count(r, JobRunState::Succeeded) == 1
    })
    .await;
    // Chronos's manual start with arguments.
    let http = reqwest::Client::new();
    let resp = http
        .put(format!(
            "{}/scheduler/job/echoer?arguments=three",
            c.scheduler_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    wait_runs(&c, "echoer", "second manual run done", |r| {
        count(r, JobRunState::Succeeded) == 2
    })
    .await;
    let (code, out, _) = c.cli(&["jobs", "logs", "echoer", "2"]);
    assert_eq!((code, out.trim()), (0, "args: three"));
    // Delete the child, then the parent.
    let (code, _, err) = c.cli(&["jobs", "delete", "after-echo"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = c.cli(&["jobs", "delete", "echoer"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = c.cli(&["jobs", "show", "echoer"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
}

/// Due runs go to the master in batches; a batch over the master's body limit (here 40
/// runs with 64 KB of environment each) is sent one launch at a time instead, and every
/// run still happens once.
#[tokio::test(flavor = "multi_thread")]
async fn runs_too_big_for_one_batch_go_one_by_one() {
    let c = cluster(&[]).await;
    let start = rfc3339(start_in(4));
    let big = "x".repeat(64 * 1024);
    for i in 0..40 {
        put(
            &c,
            json!({
                "name": format!("big-{i:02}"),
                "command": "test ${#BIG} -eq 65536",
                "schedule": format!("R1/{start}/PT1M"),
                "environmentVariables": [{"name": "BIG", "value": big}],
            }),
        )
        .await;
    }
    for i in 0..40 {
        let name = format!("big-{i:02}");
        let r = wait_runs(&c, &name, "one succeeded run", |r| {
            count(r, JobRunState::Succeeded) == 1
        })
        .await;
        assert_eq!(r.len(), 1, "{name}: {r:#?}");
    }
    let logs = c.logs();
    assert!(
        logs.contains("launches one by one"),
        "the oversized batch was not sent one by one:\n{logs}"
    );
}

/// A job's constraints place its runs (agent-1 is the one node in rack r1), come back
/// from Chronos's endpoint as the arrays that were posted, and an operator Chronos lacks
/// is refused naming the element, with nothing stored.
#[tokio::test(flavor = "multi_thread")]
async fn job_constraints_place_runs_and_read_back_as_posted() {
    let c = cluster(&[]).await;
    let http = reqwest::Client::new();
    let base = c.scheduler_url();
    let constraints = json!([
        ["rack", "EQUALS", "r1"],
        ["hostname", "UNLIKE", "agent-0"],
        ["zone", "LIKE", "z"]
    ]);
    let resp = http
        .post(format!("{base}/scheduler/iso8601"))
        .json(&job(json!({
            "name": "pinned", "command": "true", "schedule": "R3//PT1S",
            "constraints": constraints
        })))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let r = wait_runs(&c, "pinned", "three succeeded runs", |r| {
        count(r, JobRunState::Succeeded) == 3
    })
    .await;
    for run in &r {
        assert_eq!(run.node.as_deref(), Some("agent-1"), "{run:#?}");
    }
    let listed: Vec<Value> = http
        .get(format!("{base}/scheduler/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = listed.iter().find(|j| j["name"] == "pinned").unwrap();
    assert_eq!(pinned["constraints"], constraints, "{pinned}");

    let resp = http
        .post(format!("{base}/scheduler/iso8601"))
        .json(&job(json!({
            "name": "grouped", "command": "true", "schedule": "R//PT1S",
            "constraints": [["rack", "EQUALS", "r1"], ["rack", "GROUP_BY", "2"]]
        })))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "constraints[1][1]", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(r#""GROUP_BY" is not one of ["EQUALS", "LIKE", "UNLIKE"]"#),
        "{body}"
    );
    let names: Vec<String> = c
        .scheduler_client()
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job.name)
        .collect();
    assert_eq!(names, vec!["pinned".to_string()]);
}
