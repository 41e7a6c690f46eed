//! From a job and a run record to what the master is asked to run: run ids, task ids
//! and the [`TaskDefinition`].
//!
//! Everything here is a function of its arguments, so a pending run launched again after
//! a restart is sent with the same task id and the same definition, which the master
//! treats as an idempotent retry.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use drover_api::job::ChronosJob;
use drover_api::job_run::{JobRun, RunTrigger, labels as run_labels};
use drover_api::task::{TaskDefinition, TaskId, labels};

/// Longest task id the master accepts ([`TaskId::validate`]).
const MAX_TASK_ID: usize = 200;
/// Longest task name the master accepts ([`TaskDefinition::validate`]).
const MAX_TASK_NAME: usize = 150;

/// A run's id: the job's creation instant (milliseconds, base 36) and the run's number,
/// e.g. `mh3k2x1a-7`. The creation instant keeps ids of a job deleted and created again
/// apart from the old ones, whose tasks the master may still remember.
pub fn run_id(job_created_at: DateTime<Utc>, number: u64) -> String {
    format!(
        "{}-{number}",
        base36(job_created_at.timestamp_millis().unsigned_abs())
    )
}

/// An attempt's task id: `<job name>.<run id>.<attempt>`, the name shortened so the id
/// fits the master's 200 characters (job names use the same alphabet as task ids).
pub fn task_id(job: &str, run_id: &str, attempt: u32) -> TaskId {
    let suffix = format!(".{run_id}.{attempt}");
    let room = MAX_TASK_ID.saturating_sub(suffix.len());
    // Task ids may not start with '.'; job names may.
    let name: String = if job.starts_with('.') || job.is_empty() {
        format!("job{job}")
    } else {
        job.to_string()
    };
    let name: String = name.chars().take(room).collect();
    TaskId(format!("{name}{suffix}"))
}

/// Quotes `arg` for `sh -c`: single quotes, with embedded ones as `'\''`.
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The task the master is asked to run for `run` of `job`: the command (through the
/// shell, or as an argv), the manual run's extra arguments, the job's environment,
/// resources and container, and labels naming the job, run and attempt.
pub fn task_definition(job: &ChronosJob, run: &JobRun, kill_grace_seconds: f64) -> TaskDefinition {
    let extra: &[String] = match &run.trigger {
        RunTrigger::Manual { arguments } | RunTrigger::Retry { arguments } => arguments,
        _ => &[],
    };
    let (cmd, args) = if job.shell {
        let mut line = job.command.clone();
        for a in job.arguments.iter().chain(extra) {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        (Some(line).filter(|l| !l.trim().is_empty()), None)
    } else {
        let argv: Vec<String> = std::iter::once(&job.command)
            .filter(|c| !c.is_empty())
            .chain(job.arguments.iter())
            .chain(extra)
            .cloned()
            .collect();
        (None, Some(argv).filter(|a| !a.is_empty()))
    };
    let env: BTreeMap<String, String> = job
        .environment_variables
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    let labels = BTreeMap::from([
        (labels::JOB_NAME.to_string(), job.name.clone()),
        (run_labels::RUN_ID.to_string(), run.run_id.clone()),
        (run_labels::ATTEMPT.to_string(), run.attempt.to_string()),
    ]);
    TaskDefinition {
        name: job.name.chars().take(MAX_TASK_NAME).collect(),
        cmd,
        args,
        env,
        resources: job.resources(),
        kill_grace_period_seconds: kill_grace_seconds,
        labels,
        // Chronos's container object as the job gave it; the agent reads its image.
        container: job
            .container
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
        ..TaskDefinition::default()
    }
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use drover_api::job::parse_job;
    use drover_api::job_run::JobRunState;
    use serde_json::json;

    use super::*;

    fn run(trigger: RunTrigger) -> JobRun {
        JobRun {
            job: "j".into(),
            run_id: "abc-1".into(),
            number: 1,
            scheduled_for: DateTime::<Utc>::UNIX_EPOCH,
            trigger,
            attempt: 2,
            state: JobRunState::Pending,
            skip_reason: None,
            task_id: None,
            node: None,
            launched_at: None,
            started_at: None,
            finished_at: None,
            duration_seconds: None,
            exit: None,
            retry_at: None,
            kill_requested_at: None,
            message: None,
        }
    }

    #[test]
    fn ids_are_valid_and_bounded() {
        let id = run_id(
            DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::milliseconds(36 * 36),
            7,
        );
        assert_eq!(id, "100-7");
        let long = "x".repeat(200);
        let t = task_id(&long, "mh3k2x1a-7", 3);
        assert!(t.validate().is_ok(), "{t}");
        assert!(t.as_str().ends_with(".mh3k2x1a-7.3"));
        assert!(task_id(".hidden", "a-1", 1).validate().is_ok());
    }

    #[test]
    fn definitions_follow_the_job() {
        let (job, _) = parse_job(&json!({
            "name": "report", "command": "echo hi", "schedule": "R/2026-01-01T00:00:00Z/PT1M",
            "environmentVariables": [{"name": "A", "value": "1"}], "cpus": 0.5,
            "container": {"type": "DOCKER", "image": "busybox"}
        }))
        .unwrap();
        let d = task_definition(
            &job,
            &run(RunTrigger::Manual {
                arguments: vec!["it's".into()],
            }),
            7.0,
        );
        assert_eq!(d.cmd.as_deref(), Some(r"echo hi 'it'\''s'"));
        assert_eq!(d.env["A"], "1");
        assert_eq!(d.resources.cpus, 0.5);
        assert_eq!(d.labels[labels::JOB_NAME], "report");
        assert_eq!(d.labels[run_labels::RUN_ID], "abc-1");
        assert_eq!(d.labels[run_labels::ATTEMPT], "2");
        assert_eq!(d.kill_grace_period_seconds, 7.0);
        assert_eq!(d.container.as_ref().unwrap()["image"], "busybox");
        assert!(d.validate("").is_ok());

        let (job, _) = parse_job(&json!({
            "name": "argv", "command": "/bin/echo", "shell": false, "arguments": ["a"],
            "schedule": "R/2026-01-01T00:00:00Z/PT1M"
        }))
        .unwrap();
        let d = task_definition(
            &job,
            &run(RunTrigger::Manual {
                arguments: vec!["b c".into()],
            }),
            5.0,
        );
        assert_eq!(d.cmd, None);
        assert_eq!(
            d.args,
            Some(vec!["/bin/echo".into(), "a".into(), "b c".into()])
        );
    }
}
