//! Sends launches to the master, for jobs and apps alike: in batches through
//! `POST /v1/launches`, so a burst (1,000 jobs due at once, an app scaled by hundreds)
//! costs the master a few requests and store writes instead of one each; one by one
//! through `POST /v1/tasks` where the master has no such route (an older master during
//! a rolling upgrade) or a batch is over its body limit.

use std::time::Duration;

use drover_api::client::{ClientError, MasterClient};
use drover_api::task::{LaunchBatchRequest, LaunchOutcome, LaunchRequest, Task, TaskId};
use drover_api::{ApiError, ErrorCode};
use futures::StreamExt;

/// Launches sent in one `POST /v1/launches`.
const LAUNCH_BATCH: usize = 100;
/// Launch batches in flight at once (their writes share fsyncs in the master's store).
const BATCH_CALLS: usize = 4;
/// Single launches (and kills) in flight at once, when the master takes no batches.
const SINGLE_CALLS: usize = 32;

/// Why a launch did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum LaunchFailure {
    /// The master refused it, with the reason `POST /v1/tasks` gives.
    Refused(ApiError),
    /// No usable answer (the master is down, slow, or answered nonsense): it may or may
    /// not have happened; the caller's retry is idempotent by task id.
    Unanswered(String),
}

impl LaunchFailure {
    /// Whether the master will certainly not run this launch, so that the caller may
    /// decide the instance again under a new id: a refusal of the task or its node. Not
    /// final: no answer, the master's own failure (its store), or a task id already
    /// taken (the master has a task under that id; its task list shows it).
    pub fn is_final(&self) -> bool {
        match self {
            LaunchFailure::Unanswered(_) => false,
            LaunchFailure::Refused(e) => {
                let id_taken = e.code == ErrorCode::AlreadyExists;
                !id_taken && !matches!(e.code, ErrorCode::Internal | ErrorCode::Unavailable)
            }
        }
    }
}

impl std::fmt::Display for LaunchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchFailure::Refused(e) => write!(f, "refused: {}", e.message),
            LaunchFailure::Unanswered(why) => write!(f, "not answered: {why}"),
        }
    }
}

/// Sends every launch; one result each, in the order given. Each call is bounded by
/// `timeout`.
pub async fn send(
    master: &MasterClient,
    launches: Vec<LaunchRequest>,
    timeout: Duration,
) -> Vec<Result<Task, LaunchFailure>> {
    let mut chunks = Vec::new();
    let mut rest = launches.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(LAUNCH_BATCH).collect::<Vec<_>>());
    }
    futures::stream::iter(chunks)
        .map(|chunk| send_batch(master.clone(), chunk, timeout))
        .buffered(BATCH_CALLS)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

async fn send_batch(
    master: MasterClient,
    launches: Vec<LaunchRequest>,
    timeout: Duration,
) -> Vec<Result<Task, LaunchFailure>> {
    let batch = LaunchBatchRequest { launches };
    let n = batch.launches.len();
    let why = match tokio::time::timeout(timeout, master.launch_batch(&batch)).await {
        Ok(Ok(outcomes)) if outcomes.len() == n => {
            return outcomes
                .into_iter()
                .map(|o| match o {
                    LaunchOutcome::Created { task } | LaunchOutcome::Existing { task } => Ok(*task),
                    LaunchOutcome::Refused { error } => Err(LaunchFailure::Refused(error)),
                })
                .collect();
        }
        Ok(Ok(outcomes)) => format!(
            "the master answered {} outcomes for {n} launches",
            outcomes.len()
        ),
        Ok(Err(e)) if matches!(e.status(), Some(404 | 405 | 413)) => {
            tracing::info!("the master took no batch ({e}); sending {n} launches one by one");
            return futures::stream::iter(batch.launches)
                .map(|req| send_one(master.clone(), req, timeout))
                .buffered(SINGLE_CALLS)
                .collect()
                .await;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("the master did not answer within {timeout:?}"),
    };
    (0..n)
        .map(|_| Err(LaunchFailure::Unanswered(why.clone())))
        .collect()
}

async fn send_one(
    master: MasterClient,
    req: LaunchRequest,
    timeout: Duration,
) -> Result<Task, LaunchFailure> {
    match tokio::time::timeout(timeout, master.launch(&req)).await {
        Ok(Ok(task)) => Ok(task),
        Ok(Err(ClientError::Api { status, body, .. }))
            if (400..500).contains(&status) && status != 401 =>
        {
            Err(LaunchFailure::Refused(*body))
        }
        Ok(Err(e)) => Err(LaunchFailure::Unanswered(e.to_string())),
        Err(_) => Err(LaunchFailure::Unanswered(format!(
            "the master did not answer within {timeout:?}"
        ))),
    }
}

/// Sends a kill for every task, [`SINGLE_CALLS`] at a time, each bounded by `timeout`.
/// A task the master no longer has (404) counts as killed; any other failure is logged
/// and left to the caller's resend (the engines resend kills of tasks still running).
pub async fn kill_all(master: &MasterClient, tasks: Vec<TaskId>, timeout: Duration) {
    futures::stream::iter(tasks)
        .for_each_concurrent(SINGLE_CALLS, |id| {
            let master = master.clone();
            async move {
                match tokio::time::timeout(timeout, master.kill(&id)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if e.status() == Some(404) => {}
                    Ok(Err(e)) => tracing::warn!(task = %id, "kill failed: {e}"),
                    Err(_) => tracing::warn!(task = %id, "kill not answered in time"),
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_of_the_task_or_its_node_is_final() {
        let refused = |code, field: Option<&str>| {
            let mut e = ApiError::new(code, "no");
            e.field = field.map(str::to_string);
            LaunchFailure::Refused(e)
        };
        assert!(refused(ErrorCode::InsufficientResources, None).is_final());
        assert!(refused(ErrorCode::NotFound, Some("node")).is_final());
        assert!(refused(ErrorCode::Conflict, None).is_final());
        // The id is taken: the master has the task.
        assert!(!refused(ErrorCode::AlreadyExists, Some("id")).is_final());
        assert!(refused(ErrorCode::InvalidField, Some("id")).is_final());
        assert!(!refused(ErrorCode::Internal, None).is_final());
        assert!(!LaunchFailure::Unanswered("reset".into()).is_final());
    }
}
