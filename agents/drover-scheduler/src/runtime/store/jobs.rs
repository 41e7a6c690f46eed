//! Where the jobs live in the store, how a [`Plan`]'s persist actions become one
//! batch of writes, and how the engine is loaded back at start-up.
//!
//! Keys (job names use `[A-Za-z0-9_.-]`, so `/` separates safely):
//!
//! | key | value |
//! | --- | --- |
//! | `jobs/def/<name>` | the [`ChronosJob`] |
//! | `jobs/progress/<name>` | its [`JobProgress`] (cursor, run numbers, parent marks, stats) |
//! | `jobs/runs/<name>/<number:012>.<attempt:04>` | one attempt's [`JobRun`], in run order |
//! | `jobs/open/<name>/<number:012>.<attempt:04>` | the same record while it is open |
//!
//! The `jobs/open/` index lets a restart load only the open attempts, however long the
//! history is. Ended records are pruned under the retention policy ([`prune_keys`]).

use chrono::{DateTime, Utc};
use drover_api::job::ChronosJob;
use drover_api::job_run::JobRun;
use drover_service::retention::{Record, Retention, expired};
use drover_store::{Op, Store, StoreError, StoreExt};

use crate::engine::jobs::{Action, EngineConfig, JobEngine, JobProgress, Plan};

/// Prefix of job definitions.
pub const DEF: &str = "jobs/def/";
/// Prefix of job progress records.
pub const PROGRESS: &str = "jobs/progress/";
/// Prefix of run records.
pub const RUNS: &str = "jobs/runs/";
/// Prefix of the open-run index.
pub const OPEN: &str = "jobs/open/";

/// The key of a job's definition.
pub fn def_key(name: &str) -> String {
    format!("{DEF}{name}")
}

/// The key of a job's progress.
pub fn progress_key(name: &str) -> String {
    format!("{PROGRESS}{name}")
}

/// The prefix of a job's run records.
pub fn runs_prefix(name: &str) -> String {
    format!("{RUNS}{name}/")
}

/// The prefix of a job's open-run index.
pub fn open_prefix(name: &str) -> String {
    format!("{OPEN}{name}/")
}

/// A run record's key suffix: run number and attempt, zero-padded so keys sort in run
/// order.
fn run_suffix(run: &JobRun) -> String {
    format!("{:012}.{:04}", run.number, run.attempt)
}

/// The writes of one plan's persist actions, in order.
pub fn plan_ops(plan: &Plan) -> Result<Vec<Op>, StoreError> {
    let mut ops = Vec::new();
    for action in &plan.actions {
        match action {
            Action::RecordRun(run) | Action::MarkSkipped(run) => {
                let suffix = run_suffix(run);
                ops.push(Op::put_json(
                    format!("{}{suffix}", runs_prefix(&run.job)),
                    run,
                )?);
                let open = format!("{}{suffix}", open_prefix(&run.job));
                if run.is_open() {
                    ops.push(Op::put_json(open, run)?);
                } else {
                    ops.push(Op::delete(open));
                }
            }
            Action::SaveJob(job) => ops.push(Op::put_json(def_key(&job.name), job.as_ref())?),
            Action::SaveProgress { job, progress } => {
                ops.push(Op::put_json(progress_key(job), progress)?)
            }
            Action::LaunchRun { .. } | Action::KillTask { .. } | Action::ScheduleRetry { .. } => {}
        }
    }
    Ok(ops)
}

/// The writes that remove a job with its progress and history.
pub fn delete_ops(store: &dyn Store, name: &str) -> Result<Vec<Op>, StoreError> {
    let mut ops = vec![Op::delete(def_key(name)), Op::delete(progress_key(name))];
    for prefix in [runs_prefix(name), open_prefix(name)] {
        for (key, _) in store.list(&prefix)? {
            ops.push(Op::delete(key));
        }
    }
    Ok(ops)
}

/// What loading found besides the engine.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Jobs that could not be loaded (kept in the store untouched), with the reason.
    pub broken: Vec<(String, String)>,
    /// Open attempts restored.
    pub open_runs: usize,
    /// A plan to persist for jobs stored without progress (a definition written by an
    /// older version); empty otherwise.
    pub plan: Plan,
}

/// Builds the engine from the store: every job with its progress, then every open run.
pub fn load(
    store: &dyn Store,
    config: EngineConfig,
    now: DateTime<Utc>,
) -> Result<(JobEngine, Loaded), StoreError> {
    let mut engine = JobEngine::new(config);
    let mut loaded = Loaded::default();
    let progress: std::collections::HashMap<String, JobProgress> = store
        .list_json::<JobProgress>(PROGRESS)?
        .into_iter()
        .map(|(k, p, _)| (k.trim_start_matches(PROGRESS).to_string(), p))
        .collect();
    let mut progress = progress;
    for (key, job, _) in store.list_json::<ChronosJob>(DEF)? {
        let name = key.trim_start_matches(DEF).to_string();
        let result = match progress.remove(&name) {
            Some(p) => engine.restore_job(job, p),
            None => engine
                .put_job(job, now)
                .map(|plan| loaded.plan.actions.extend(plan.actions)),
        };
        if let Err(e) = result {
            loaded.broken.push((name, e.to_string()));
        }
    }
    for (_, run, _) in store.list_json::<JobRun>(OPEN)? {
        if engine.restore_run(run) {
            loaded.open_runs += 1;
        }
    }
    Ok((engine, loaded))
}

/// When an attempt ended, as retention sees it: `None` while it is open (pending,
/// running, or failed and waiting to retry); otherwise when it finished, or (a record
/// written before end times were kept) the latest time it carries.
pub fn run_ended(run: &JobRun) -> Option<DateTime<Utc>> {
    if run.is_open() {
        return None;
    }
    Some(
        run.finished_at
            .or(run.started_at)
            .or(run.launched_at)
            .unwrap_or(run.scheduled_for),
    )
}

/// Keys of a job's run records to prune under `policy` at `now`, oldest first (see
/// [`drover_service::retention::expired`]); open attempts are never among them. A
/// record that does not parse is left alone.
pub fn prune_keys(
    store: &dyn Store,
    name: &str,
    policy: &Retention,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let records: Vec<Record<String>> = store
        .list(&runs_prefix(name))?
        .into_iter()
        .map(|(key, value)| {
            let ended = serde_json::from_slice::<JobRun>(&value.value)
                .ok()
                .and_then(|r| run_ended(&r));
            Record { key, ended }
        })
        .collect();
    Ok(expired(&records, policy, now))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use chrono::TimeDelta;
    use drover_api::job::parse_job;
    use drover_api::job_run::{JobRunState, RunTrigger};
    use drover_store::MemoryStore;
    use serde_json::json;

    use super::*;

    fn persist(store: &dyn Store, plan: &Plan, extra: Vec<Op>) {
        let mut ops = extra;
        ops.extend(plan_ops(plan).unwrap());
        store.apply(&ops).unwrap();
    }

    #[test]
    fn a_stored_plan_loads_back_with_its_open_run() {
        let store = MemoryStore::new();
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (job, _) = parse_job(
            &json!({"name": "j", "command": "true", "schedule": "R/2026-01-01T00:00:00Z/PT1M"}),
        )
        .unwrap();
        let mut engine = JobEngine::new(EngineConfig::default());
        let plan = engine.put_job(job.clone(), t0).unwrap();
        persist(
            &store,
            &plan,
            vec![Op::put_json(def_key("j"), &job).unwrap()],
        );
        let plan = engine.step(None, t0 + TimeDelta::milliseconds(5));
        assert!(
            plan.actions
                .iter()
                .any(|a| matches!(a, Action::LaunchRun { .. }))
        );
        persist(&store, &plan, Vec::new());
        assert_eq!(store.list(OPEN).unwrap().len(), 1);
        assert_eq!(store.list(&runs_prefix("j")).unwrap().len(), 1);

        // A restart: the same job, the same open run, and no second run for the instant.
        let (mut again, loaded) =
            load(&store, EngineConfig::default(), t0 + TimeDelta::seconds(1)).unwrap();
        assert_eq!(loaded.open_runs, 1);
        assert!(loaded.broken.is_empty());
        assert_eq!(again.open_runs("j").len(), 1);
        let plan = again.step(None, t0 + TimeDelta::seconds(1));
        let launches: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::LaunchRun { .. }))
            .collect();
        assert_eq!(
            launches.len(),
            1,
            "the pending run is re-sent, not a new one started"
        );
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::RecordRun(r) if r.number != 1))
        );

        // Deleting removes everything of the job.
        let ops = delete_ops(&store, "j").unwrap();
        store.apply(&ops).unwrap();
        assert!(store.list("jobs/").unwrap().is_empty());
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_open() {
        let store = MemoryStore::new();
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let run = |n: u64, state: JobRunState, retry: bool| JobRun {
            job: "j".into(),
            run_id: format!("r{n}"),
            number: n,
            scheduled_for: t0 + TimeDelta::seconds(n as i64),
            trigger: RunTrigger::Schedule,
            attempt: 1,
            state,
            skip_reason: None,
            task_id: None,
            node: None,
            launched_at: None,
            started_at: None,
            finished_at: state
                .is_terminal()
                .then(|| t0 + TimeDelta::seconds(n as i64 + 1)),
            duration_seconds: None,
            exit: None,
            retry_at: retry.then_some(t0),
            kill_requested_at: None,
            message: None,
        };
        let mut plan = Plan::default();
        plan.actions
            .push(Action::RecordRun(run(1, JobRunState::Running, false)));
        plan.actions
            .push(Action::RecordRun(run(2, JobRunState::Failed, true)));
        for n in 3..=6 {
            plan.actions
                .push(Action::RecordRun(run(n, JobRunState::Succeeded, false)));
        }
        persist(&store, &plan, Vec::new());
        let key = |n: u64| format!("{}{n:012}.0001", runs_prefix("j"));
        let policy = |count: usize, age: &str| Retention {
            count,
            max_age: age.parse().unwrap(),
        };
        let now = t0 + TimeDelta::seconds(10);
        // The running attempt and the one waiting to retry are never pruned.
        assert_eq!(
            prune_keys(&store, "j", &policy(2, "0"), now).unwrap(),
            vec![key(3), key(4)]
        );
        // Age: run n ended at n + 1 s; 5 s before `now` is a cutoff at 5 s.
        assert_eq!(
            prune_keys(&store, "j", &policy(100, "5s"), now).unwrap(),
            vec![key(3)]
        );
        assert!(
            prune_keys(&store, "j", &policy(4, "0"), now)
                .unwrap()
                .is_empty()
        );
    }
}
