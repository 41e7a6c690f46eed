//! The job engine through an in-memory harness: a simulated store (what the server
//! persists), a simulated master (tasks that run for a set time and succeed or fail),
//! and a synthetic clock. No sockets, no sleeping.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use drover_api::job::{ChronosJob, parse_job};
use drover_api::job_run::{JobRun, JobRunState, JobState, RunTrigger, SkipReason};
use drover_api::task::{ExitStatus, TaskDefinition, TaskId, TaskState};
use drover_scheduler::engine::jobs::retry::RetryPolicy;
use drover_scheduler::engine::jobs::{
    Action, Command, EngineConfig, JobEngine, JobProgress, MasterTasks, Plan, TaskObservation,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn secs(s: f64) -> TimeDelta {
    TimeDelta::microseconds((s * 1e6) as i64)
}

fn job(v: Value) -> ChronosJob {
    parse_job(&v).unwrap().0
}

/// What the server persists.
#[derive(Debug, Clone, Default)]
struct SimStore {
    jobs: BTreeMap<String, ChronosJob>,
    progress: BTreeMap<String, JobProgress>,
    runs: BTreeMap<(String, String), JobRun>,
}

impl SimStore {
    fn load(&self, config: EngineConfig) -> JobEngine {
        let mut e = JobEngine::new(config);
        for (name, j) in &self.jobs {
            e.restore_job(j.clone(), self.progress[name].clone())
                .unwrap();
        }
        for r in self.runs.values() {
            e.restore_run(r.clone());
        }
        e
    }

    fn runs_of(&self, job: &str) -> Vec<&JobRun> {
        let mut v: Vec<_> = self.runs.values().filter(|r| r.job == job).collect();
        v.sort_by_key(|r| (r.number, r.attempt));
        v
    }

    /// The final record of each run of `job` (its last attempt), in run order.
    fn final_runs(&self, job: &str) -> Vec<&JobRun> {
        let mut by_run: BTreeMap<u64, &JobRun> = BTreeMap::new();
        for r in self.runs_of(job) {
            by_run.insert(r.number, r);
        }
        by_run.into_values().collect()
    }
}

/// How a simulated task behaves: how long it runs and whether it succeeds.
type Behaviour = Box<dyn FnMut(&str, u32) -> (TimeDelta, bool)>;

#[derive(Debug, Clone)]
struct SimTask {
    job: String,
    definition: TaskDefinition,
    started: DateTime<Utc>,
    ends: DateTime<Utc>,
    success: bool,
    state: TaskState,
    finished_at: Option<DateTime<Utc>>,
}

struct SimMaster {
    tasks: BTreeMap<TaskId, SimTask>,
    launch_requests: usize,
    behaviour: Behaviour,
}

impl SimMaster {
    fn new(behaviour: Behaviour) -> Self {
        SimMaster {
            tasks: BTreeMap::new(),
            launch_requests: 0,
            behaviour,
        }
    }

    fn launch(
        &mut self,
        task_id: TaskId,
        job: &str,
        attempt: u32,
        definition: TaskDefinition,
        now: DateTime<Utc>,
    ) {
        self.launch_requests += 1;
        if let Some(existing) = self.tasks.get(&task_id) {
            // The master's idempotence rule: same id, same definition.
            assert_eq!(
                existing.definition, definition,
                "relaunch of {task_id} changed its definition"
            );
            return;
        }
        let (took, success) = (self.behaviour)(job, attempt);
        self.tasks.insert(
            task_id,
            SimTask {
                job: job.into(),
                definition,
                started: now,
                ends: now + took,
                success,
                state: TaskState::Running,
                finished_at: None,
            },
        );
    }

    fn kill(&mut self, task_id: &TaskId, now: DateTime<Utc>) {
        if let Some(t) = self.tasks.get_mut(task_id)
            && t.state.is_active()
        {
            t.state = TaskState::Killed;
            t.finished_at = Some(now);
        }
    }

    fn advance(&mut self, now: DateTime<Utc>) {
        for t in self.tasks.values_mut() {
            if t.state.is_active() && t.ends <= now {
                t.state = if t.success {
                    TaskState::Finished
                } else {
                    TaskState::Failed
                };
                t.finished_at = Some(t.ends);
            }
        }
    }

    fn view(&self) -> MasterTasks {
        self.tasks
            .iter()
            .map(|(id, t)| {
                let exit = t.finished_at.map(|_| ExitStatus {
                    code: Some(if t.success { 0 } else { 1 }),
                    signal: None,
                });
                let obs = TaskObservation {
                    state: t.state,
                    node: Some("n1".into()),
                    exit,
                    message: None,
                    started_at: Some(t.started),
                    finished_at: t.finished_at,
                };
                (id.clone(), obs)
            })
            .collect()
    }

    fn tasks_of(&self, job: &str) -> Vec<&SimTask> {
        let mut v: Vec<_> = self.tasks.values().filter(|t| t.job == job).collect();
        v.sort_by_key(|t| t.started);
        v
    }
}

struct Sim {
    config: EngineConfig,
    store: SimStore,
    master: SimMaster,
    engine: JobEngine,
    now: DateTime<Utc>,
    /// Drop the effects of the next plan (a crash after persisting, before launching).
    crash_before_effects: bool,
}

impl Sim {
    fn new(config: EngineConfig, behaviour: Behaviour) -> Self {
        Sim {
            config,
            store: SimStore::default(),
            master: SimMaster::new(behaviour),
            engine: JobEngine::new(config),
            now: t0(),
            crash_before_effects: false,
        }
    }

    fn add(&mut self, v: Value) {
        let j = job(v);
        let plan = self.engine.put_job(j.clone(), self.now).unwrap();
        self.store.jobs.insert(j.name.clone(), j);
        self.apply(plan);
    }

    fn apply(&mut self, plan: Plan) {
        let first_effect = plan
            .actions
            .iter()
            .position(|a| !a.is_persist())
            .unwrap_or(plan.actions.len());
        assert!(
            plan.actions[first_effect..].iter().all(|a| !a.is_persist()),
            "persist actions come first"
        );
        for a in plan.actions {
            match a {
                Action::RecordRun(r) | Action::MarkSkipped(r) => {
                    self.store.runs.insert((r.job.clone(), r.key()), r);
                }
                Action::SaveJob(j) => {
                    self.store.jobs.insert(j.name.clone(), *j);
                }
                Action::SaveProgress { job, progress } => {
                    self.store.progress.insert(job, progress);
                }
                _ if self.crash_before_effects => {}
                Action::LaunchRun {
                    job,
                    attempt,
                    task_id,
                    definition,
                    ..
                } => self
                    .master
                    .launch(task_id, &job, attempt, definition, self.now),
                Action::KillTask { task_id, .. } => self.master.kill(&task_id, self.now),
                Action::ScheduleRetry { .. } => {}
            }
        }
        if self.crash_before_effects {
            self.crash_before_effects = false;
            self.restart();
        }
    }

    fn tick(&mut self, now: DateTime<Utc>) {
        self.now = now;
        self.master.advance(now);
        let view = self.master.view();
        let plan = self.engine.step(Some(&view), now);
        self.apply(plan);
    }

    fn command(&mut self, c: Command) -> Plan {
        let plan = self.engine.command(c, self.now).unwrap();
        self.apply(plan.clone());
        plan
    }

    /// Steps every `dt` from now (exclusive) to `end` (inclusive).
    fn run_until(&mut self, end: DateTime<Utc>, dt: TimeDelta) {
        let mut t = self.now + dt;
        while t <= end {
            self.tick(t);
            t += dt;
        }
    }

    /// A scheduler restart: a fresh engine from what was persisted.
    fn restart(&mut self) {
        self.engine = self.store.load(self.config);
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        retry: RetryPolicy {
            delay: TimeDelta::seconds(1),
        },
        ..EngineConfig::default()
    }
}

fn behave(took: f64, success: bool) -> Behaviour {
    Box::new(move |_, _| (secs(took), success))
}

#[test]
fn every_two_seconds_over_ten_seconds_runs_five_times() {
    let mut sim = Sim::new(config(), behave(0.5, true));
    sim.add(json!({"name": "tick", "command": "true", "schedule": "R/2026-01-01T00:00:00Z/PT2S"}));
    sim.run_until(t0() + secs(9.95), secs(0.05));
    let runs = sim.store.final_runs("tick");
    assert_eq!(runs.len(), 5, "{runs:#?}");
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.scheduled_for, t0() + secs(2.0 * i as f64));
        assert_eq!(r.state, JobRunState::Succeeded);
        assert!(
            r.lateness_seconds().unwrap() <= 0.05,
            "lateness {:?}",
            r.lateness_seconds()
        );
        assert_eq!(r.duration_seconds, Some(0.5));
    }
    assert_eq!(sim.master.tasks.len(), 5);
    let status = sim.engine.status("tick", sim.now, 3).unwrap();
    assert_eq!(status.state, JobState::Idle);
    assert_eq!(
        status.upcoming.iter().map(|u| u.at).collect::<Vec<_>>(),
        [t0() + secs(10.0), t0() + secs(12.0), t0() + secs(14.0)]
    );
    assert_eq!(status.stats.success_count, 5);
}

#[test]
fn the_plan_says_when_to_wake() {
    let mut sim = Sim::new(config(), behave(0.5, true));
    sim.add(json!({"name": "w", "command": "true", "schedule": "R/2026-01-01T00:00:10Z/PT10S"}));
    let plan = sim.engine.step(Some(&sim.master.view()), t0() + secs(1.0));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.wake_at, Some(t0() + secs(10.0)));
}

#[test]
fn upcoming_runs_in_utc_and_the_job_zone() {
    let mut sim = Sim::new(config(), behave(1.0, true));
    sim.add(json!({
        "name": "berlin", "command": "x", "schedule": "R/2026-03-28T02:30:00/P1D",
        "scheduleTimeZone": "Europe/Berlin"
    }));
    let st = sim.engine.status("berlin", t0(), 3).unwrap();
    assert_eq!(st.zone, "Europe/Berlin");
    let local: Vec<_> = st.upcoming.iter().map(|u| u.local.as_str()).collect();
    // 2026-03-29 02:30 does not exist in Berlin: the run is at 03:00 CEST.
    assert_eq!(
        local,
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00"
        ]
    );
    assert_eq!(st.upcoming[0].at.to_rfc3339(), "2026-03-28T01:30:00+00:00");
}

#[test]
fn updating_a_job_keeps_its_history_and_removing_it_kills_its_runs() {
    let mut sim = Sim::new(config(), behave(100.0, true));
    sim.add(json!({"name": "j", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT10S"}));
    sim.tick(t0() + secs(0.1));
    let before = sim.store.progress["j"].clone();
    sim.add(json!({"name": "j", "command": "y", "schedule": "R/2026-01-01T00:00:00Z/PT10S", "concurrent": true}));
    assert_eq!(
        sim.store.progress["j"], before,
        "same schedule: same progress"
    );
    assert_eq!(sim.engine.open_runs("j").len(), 1);
    let plan = sim.engine.remove_job("j");
    assert!(matches!(&plan.actions[..], [Action::KillTask { .. }]));
    assert!(sim.engine.status("j", sim.now, 1).is_none());
}

fn outage(epsilon: &str) -> Sim {
    let mut sim = Sim::new(config(), behave(0.1, true));
    sim.add(json!({"name": "j", "command": "true", "schedule": "R/2026-01-01T00:00:00Z/PT10S", "epsilon": epsilon}));
    sim.run_until(t0() + secs(1.0), secs(0.5));
    assert_eq!(sim.store.final_runs("j").len(), 1);
    // SIGKILL: the engine is gone; 10 s and 20 s pass unseen; start again at 25 s.
    sim.now = t0() + secs(25.0);
    sim.restart();
    sim.tick(sim.now);
    sim.run_until(t0() + secs(29.0), secs(0.5));
    sim
}

#[test]
fn a_restart_within_epsilon_runs_the_latest_missed_instant_once() {
    let sim = outage("PT30S");
    let runs = sim.store.final_runs("j");
    let launched: Vec<_> = runs
        .iter()
        .filter(|r| r.task_id.is_some())
        .map(|r| r.scheduled_for)
        .collect();
    let skipped: Vec<_> = runs
        .iter()
        .filter(|r| r.state == JobRunState::Skipped)
        .map(|r| r.scheduled_for)
        .collect();
    assert_eq!(launched, [t0(), t0() + secs(20.0)]);
    assert_eq!(skipped, [t0() + secs(10.0)]);
    assert_eq!(sim.master.tasks.len(), 2);
}

#[test]
fn a_restart_beyond_epsilon_runs_nothing_and_records_the_skips() {
    let sim = outage("PT1S");
    let runs = sim.store.final_runs("j");
    let skipped: Vec<_> = runs
        .iter()
        .filter(|r| r.state == JobRunState::Skipped)
        .map(|r| (r.scheduled_for, r.skip_reason))
        .collect();
    assert_eq!(
        skipped,
        [
            (t0() + secs(10.0), Some(SkipReason::Missed)),
            (t0() + secs(20.0), Some(SkipReason::Missed))
        ]
    );
    assert_eq!(sim.master.tasks.len(), 1);
    assert_eq!(
        sim.engine
            .status("j", sim.now, 0)
            .unwrap()
            .stats
            .skipped_count,
        2
    );
}

#[test]
fn retries_two_means_three_attempts_and_one_error() {
    let mut sim = Sim::new(config(), behave(0.2, false));
    sim.add(json!({"name": "flaky", "command": "false", "schedule": "R1/2026-01-01T00:00:00Z/PT1H", "retries": 2}));
    sim.run_until(t0() + secs(10.0), secs(0.1));
    let attempts = sim.store.runs_of("flaky");
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    assert_eq!(
        attempts.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        attempts
            .iter()
            .map(|r| r.run_id.as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        1
    );
    assert!(
        attempts
            .iter()
            .all(|r| r.state == JobRunState::Failed && r.retry_at.is_none())
    );
    assert_eq!(attempts[1].trigger, RunTrigger::Retry { arguments: vec![] });
    // The retry starts one configured delay after the failure.
    assert_eq!(
        attempts[1].launched_at,
        Some(attempts[0].finished_at.unwrap() + secs(1.0))
    );
    let stats = sim.engine.status("flaky", sim.now, 0).unwrap().stats;
    assert_eq!((stats.error_count, stats.success_count), (1, 0));
    assert_eq!(sim.master.tasks.len(), 3);
    assert_eq!(
        sim.engine.status("flaky", sim.now, 0).unwrap().state,
        JobState::FinishedRepeating
    );
}

#[test]
fn a_retry_that_succeeds_counts_once_as_success() {
    let mut sim = Sim::new(config(), Box::new(|_, attempt| (secs(0.2), attempt >= 2)));
    sim.add(json!({"name": "j", "command": "x", "schedule": "R1/2026-01-01T00:00:00Z/PT1H", "retries": 5}));
    sim.run_until(t0() + secs(10.0), secs(0.1));
    assert_eq!(sim.store.runs_of("j").len(), 2);
    let stats = sim.engine.status("j", sim.now, 0).unwrap().stats;
    assert_eq!((stats.success_count, stats.error_count), (1, 0));
}

fn diamond(sim: &mut Sim, schedule: &str) {
    sim.add(json!({"name": "a", "command": "x", "schedule": schedule}));
    sim.add(json!({"name": "b", "command": "x", "parents": ["a"]}));
    sim.add(json!({"name": "c", "command": "x", "parents": ["a"]}));
    sim.add(json!({"name": "d", "command": "x", "parents": ["b", "c"]}));
}

#[test]
fn diamond_runs_d_exactly_once_per_round() {
    // c is slower than b, so d's parents finish at different times.
    let mut sim = Sim::new(
        config(),
        Box::new(|job, _| (secs(if job == "c" { 3.0 } else { 1.0 }), true)),
    );
    diamond(&mut sim, "R2/2026-01-01T00:00:00Z/PT1M");
    sim.run_until(t0() + secs(30.0), secs(0.25));
    assert_eq!(sim.master.tasks_of("d").len(), 1);
    let d = sim.store.final_runs("d");
    assert_eq!(d[0].trigger, RunTrigger::Dependency);
    // d started after both b and c finished.
    let c_end = sim.master.tasks_of("c")[0].finished_at.unwrap();
    assert!(sim.master.tasks_of("d")[0].started >= c_end);
    assert_eq!(
        sim.engine.status("d", sim.now, 0).unwrap().waiting_for,
        ["b", "c"]
    );
    assert_eq!(
        sim.engine.status("d", sim.now, 0).unwrap().state,
        JobState::WaitingForParents
    );
    sim.run_until(t0() + secs(90.0), secs(0.25));
    for j in ["a", "b", "c", "d"] {
        assert_eq!(sim.master.tasks_of(j).len(), 2, "{j}");
    }
}

#[test]
fn mark_success_fires_the_children() {
    let mut sim = Sim::new(config(), behave(1.0, true));
    diamond(&mut sim, "R/2030-01-01T00:00:00Z/P1D");
    sim.command(Command::MarkSuccess { job: "b".into() });
    assert!(sim.master.tasks_of("d").is_empty());
    sim.command(Command::MarkSuccess { job: "c".into() });
    assert_eq!(sim.master.tasks_of("d").len(), 1);
    assert_eq!(
        sim.engine
            .status("b", sim.now, 0)
            .unwrap()
            .stats
            .success_count,
        1
    );
    // A parent that fails does not fire its children; a soft-error parent does.
    let mut sim = Sim::new(config(), behave(1.0, false));
    sim.add(json!({"name": "p", "command": "x", "schedule": "R1/2026-01-01T00:00:00Z/PT1H", "retries": 0}));
    sim.add(json!({"name": "q", "command": "x", "schedule": "R1/2026-01-01T00:00:00Z/PT1H", "retries": 0, "softError": true}));
    sim.add(json!({"name": "pc", "command": "x", "parents": ["p"]}));
    sim.add(json!({"name": "qc", "command": "x", "parents": ["q"]}));
    sim.run_until(t0() + secs(1.5), secs(0.1));
    assert!(sim.master.tasks_of("pc").is_empty());
    assert_eq!(sim.master.tasks_of("qc").len(), 1);
}

#[test]
fn a_slow_job_on_a_fast_schedule_never_overlaps() {
    let mut sim = Sim::new(config(), behave(3.5, true));
    sim.add(json!({"name": "slow", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT1S"}));
    sim.run_until(t0() + secs(30.0), secs(0.1));
    let tasks = sim.master.tasks_of("slow");
    assert!(tasks.len() >= 6, "{}", tasks.len());
    for w in tasks.windows(2) {
        assert!(
            w[1].started >= w[0].finished_at.unwrap(),
            "overlap: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let skipped = sim
        .store
        .final_runs("slow")
        .iter()
        .filter(|r| r.skip_reason == Some(SkipReason::PreviousRunStillRunning))
        .count();
    assert!(skipped >= 20, "{skipped}");
    // A manual run is refused while it runs.
    sim.tick(sim.now + secs(0.5));
    let open = !sim.engine.open_runs("slow").is_empty();
    let res = sim.engine.command(
        Command::RunNow {
            job: "slow".into(),
            arguments: vec![],
        },
        sim.now,
    );
    assert_eq!(res.is_err(), open);
}

#[test]
fn a_crash_between_record_and_launch_launches_once_with_the_same_task_id() {
    let mut sim = Sim::new(config(), behave(2.0, true));
    sim.add(json!({"name": "j", "command": "x", "schedule": "R/2026-01-01T00:00:05Z/PT1H"}));
    sim.run_until(t0() + secs(4.9), secs(0.1));
    sim.crash_before_effects = true;
    sim.tick(t0() + secs(5.0));
    // Recorded as pending, never launched.
    let pending: Vec<JobRun> = sim.store.final_runs("j").into_iter().cloned().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, JobRunState::Pending);
    assert!(sim.master.tasks.is_empty());
    sim.run_until(t0() + secs(20.0), secs(0.1));
    assert_eq!(sim.master.tasks.len(), 1);
    assert_eq!(sim.master.tasks.keys().next(), pending[0].task_id.as_ref());
    assert_eq!(sim.store.final_runs("j")[0].state, JobRunState::Succeeded);
}

#[test]
fn a_restart_mid_run_follows_the_task_instead_of_running_again() {
    let mut sim = Sim::new(config(), behave(5.0, true));
    sim.add(json!({"name": "j", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT1H"}));
    sim.run_until(t0() + secs(2.0), secs(0.5));
    sim.restart();
    sim.run_until(t0() + secs(10.0), secs(0.5));
    assert_eq!(sim.master.tasks.len(), 1);
    assert_eq!(sim.master.launch_requests, 1);
    let r = &sim.store.final_runs("j")[0];
    assert_eq!(r.state, JobRunState::Succeeded);
    assert_eq!(r.duration_seconds, Some(5.0));
}

#[test]
fn kill_enable_disable_and_refusals() {
    let mut sim = Sim::new(config(), behave(100.0, true));
    sim.add(json!({"name": "j", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT10S", "retries": 1}));
    sim.tick(t0() + secs(0.1));
    let plan = sim.command(Command::Kill { job: "j".into() });
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::KillTask { .. }))
    );
    sim.tick(t0() + secs(0.2));
    let r = sim.store.final_runs("j")[0].clone();
    assert_eq!(r.state, JobRunState::Killed);
    assert!(
        sim.engine
            .command(Command::Kill { job: "j".into() }, sim.now)
            .is_err()
    );

    sim.command(Command::Disable { job: "j".into() });
    assert!(sim.store.jobs["j"].disabled);
    sim.run_until(t0() + secs(35.0), secs(0.5));
    assert_eq!(sim.master.tasks.len(), 1, "a disabled job does not run");
    assert_eq!(
        sim.engine.status("j", sim.now, 0).unwrap().state,
        JobState::Disabled
    );
    sim.command(Command::Enable { job: "j".into() });
    sim.run_until(t0() + secs(41.0), secs(0.5));
    // Enabled at 35 s: nothing recorded for 10-30 s, the 40 s instant runs.
    assert_eq!(sim.master.tasks.len(), 2);
    assert_eq!(sim.store.final_runs("j").len(), 2);

    // A manual run with arguments, refused by the master: retried, then failed.
    let mut sim = Sim::new(config(), behave(1.0, true));
    sim.add(json!({"name": "m", "command": "echo", "schedule": "R/2030-01-01T00:00:00Z/P1D", "retries": 1}));
    let plan = sim
        .engine
        .command(
            Command::RunNow {
                job: "m".into(),
                arguments: vec!["a b".into()],
            },
            sim.now,
        )
        .unwrap();
    let Some(Action::LaunchRun {
        task_id,
        definition,
        ..
    }) = plan.actions.iter().find(|a| !a.is_persist()).cloned()
    else {
        panic!("no launch in {plan:?}")
    };
    assert_eq!(definition.cmd.as_deref(), Some("echo 'a b'"));
    // (The launch is not applied: the master refused it.)
    for a in plan.actions.iter().filter(|a| a.is_persist()) {
        if let Action::RecordRun(r) = a {
            sim.store.runs.insert((r.job.clone(), r.key()), r.clone());
        }
    }
    sim.command(Command::LaunchRefused {
        task_id,
        message: "no node has 0.1 cpus free".into(),
    });
    let first = sim.store.runs_of("m")[0].clone();
    assert_eq!(first.state, JobRunState::Failed);
    assert!(first.retry_at.is_some());
    assert!(first.message.unwrap().contains("no node has"));
    sim.run_until(t0() + secs(5.0), secs(0.5));
    let runs = sim.store.runs_of("m");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].state, JobRunState::Succeeded);
    // The retry keeps the manual run's arguments.
    assert_eq!(
        runs[1].trigger,
        RunTrigger::Retry {
            arguments: vec!["a b".into()]
        }
    );
    assert_eq!(
        sim.master
            .tasks
            .values()
            .next()
            .unwrap()
            .definition
            .cmd
            .as_deref(),
        Some("echo 'a b'")
    );
    assert_eq!(
        sim.engine
            .status("m", sim.now, 0)
            .unwrap()
            .stats
            .success_count,
        1
    );
}

#[test]
fn statistics_through_the_engine_equal_hand_computed_values() {
    // Runs take 1, 2, 3, 4 and 10 seconds.
    let durations = [1.0, 2.0, 3.0, 4.0, 10.0];
    let mut sim = Sim::new(config(), behave(0.0, true));
    sim.add(json!({"name": "s", "command": "x", "schedule": "R5/2026-01-01T00:00:00Z/PT1M"}));
    let mut i = 0;
    sim.master.behaviour = Box::new(move |_, _| {
        let d = durations[i % 5];
        i += 1;
        (secs(d), true)
    });
    sim.run_until(t0() + secs(300.0), secs(0.5));
    let d = sim
        .engine
        .status("s", sim.now, 0)
        .unwrap()
        .stats
        .durations
        .unwrap();
    // mean = 20 / 5 = 4; median = 3; p75: h = 4 * 0.75 = 3 -> 4;
    // p95: h = 3.8 -> 4 + 0.8 * 6 = 8.8; p99: h = 3.96 -> 4 + 0.96 * 6 = 9.76.
    assert_eq!(d.count, 5);
    assert!((d.mean - 4.0).abs() < 1e-9);
    assert!((d.median - 3.0).abs() < 1e-9);
    assert!((d.p75 - 4.0).abs() < 1e-9);
    assert!((d.p95 - 8.8).abs() < 1e-9);
    assert!((d.p99 - 9.76).abs() < 1e-9);
}

/// What `step` is fed and does, as a scenario for the property tests.
#[derive(Debug, Clone)]
struct Scenario {
    period: u32,
    took_tenths: u32,
    concurrent: bool,
    restarts: Vec<u32>,
    crashes: Vec<u32>,
    fail_every: u32,
}

fn scenarios() -> impl Strategy<Value = Scenario> {
    (
        1u32..6,
        1u32..80,
        any::<bool>(),
        proptest::collection::vec(0u32..400, 0..6),
        proptest::collection::vec(0u32..400, 0..4),
        0u32..4,
    )
        .prop_map(
            |(period, took_tenths, concurrent, restarts, crashes, fail_every)| Scenario {
                period,
                took_tenths,
                concurrent,
                restarts,
                crashes,
                fail_every,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the restarts and crashes between persisting and launching: every
    /// schedule instant is handled exactly once (run or skipped), no attempt gets two
    /// tasks, a non-concurrent job never overlaps itself, and the engine rebuilt from the
    /// store agrees with the live one.
    #[test]
    fn restarts_never_duplicate(s in scenarios()) {
        let took = f64::from(s.took_tenths) / 10.0;
        let fail_every = s.fail_every;
        let behaviour: Behaviour = Box::new(move |_, attempt| (secs(took), fail_every == 0 || attempt % (fail_every + 1) != 1));
        let mut sim = Sim::new(config(), behaviour);
        sim.add(json!({
            "name": "p", "command": "x", "retries": 1, "concurrent": s.concurrent,
            "schedule": format!("R/2026-01-01T00:00:00Z/PT{}S", s.period), "epsilon": "PT30S"
        }));
        for tick in 1..=400u32 {
            let now = t0() + secs(f64::from(tick) / 10.0);
            if s.crashes.contains(&tick) {
                sim.crash_before_effects = true;
            }
            sim.tick(now);
            if s.restarts.contains(&tick) {
                sim.restart();
            }
            // The store alone rebuilds the same engine.
            let rebuilt = sim.store.load(config());
            prop_assert_eq!(rebuilt.progress("p"), sim.engine.progress("p"));
            prop_assert_eq!(rebuilt.open_runs("p"), sim.engine.open_runs("p"));
        }
        let end = t0() + secs(40.0);
        // Each instant up to the end: exactly one run (launched or skipped).
        let mut seen = BTreeMap::new();
        for r in sim.store.final_runs("p") {
            *seen.entry(r.scheduled_for).or_insert(0) += 1;
        }
        let mut at = t0();
        while at <= end - secs(0.1) {
            prop_assert_eq!(seen.get(&at).copied(), Some(1), "instant {} in {:?}", at, seen);
            at += TimeDelta::seconds(i64::from(s.period));
        }
        // Launches: one task per (run, attempt), each attempt recorded.
        let attempts: BTreeSet<_> = sim.store.runs.values().filter_map(|r| r.task_id.clone()).collect();
        for id in sim.master.tasks.keys() {
            prop_assert!(attempts.contains(id), "task {} has no record", id);
        }
        if !s.concurrent {
            let tasks = sim.master.tasks_of("p");
            for w in tasks.windows(2) {
                prop_assert!(w[0].finished_at.is_some_and(|f| w[1].started >= f), "overlap {:?} {:?}", w[0], w[1]);
            }
        }
    }
}

/// Scale check, run by hand: `cargo test --release -p drover-scheduler --test
/// jobs_engine -- --ignored --nocapture`. 10,000 jobs, 1,000 of them due at the same
/// instant: how long loading and the step that launches them take.
#[test]
#[ignore]
fn scale_ten_thousand_jobs() {
    let mut engine = JobEngine::new(config());
    let start = std::time::Instant::now();
    for i in 0..10_000 {
        let schedule = if i % 10 == 0 {
            "R/2026-01-01T00:01:00Z/PT1H".to_string()
        } else {
            format!("R/2026-01-01T00:{:02}:{:02}Z/P1D", 2 + i % 50, i % 60)
        };
        let j = job(json!({"name": format!("job-{i}"), "command": "true", "schedule": schedule}));
        engine.put_job(j, t0()).unwrap();
    }
    println!("put 10000 jobs: {:?}", start.elapsed());
    let view = MasterTasks::new();
    let s = std::time::Instant::now();
    let plan = engine.step(Some(&view), t0() + secs(1.0));
    println!(
        "first step (all jobs checked): {:?}, {} actions",
        s.elapsed(),
        plan.actions.len()
    );
    let s = std::time::Instant::now();
    let plan = engine.step(Some(&view), t0() + secs(60.0));
    let launches = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::LaunchRun { .. }))
        .count();
    println!("step with 1000 due: {:?}, {launches} launches", s.elapsed());
    assert_eq!(launches, 1000);
    let s = std::time::Instant::now();
    let plan = engine.step(Some(&view), t0() + secs(60.5));
    println!(
        "idle step: {:?}, {} actions",
        s.elapsed(),
        plan.actions.len()
    );
}
