//! The agent's HTTP API: `GET /v1/tasks` (every task's report) and
//! `GET /v1/tasks/{id}/logs` (a task's stdout or stderr, optionally followed), plus the
//! shared `/health`, `/v1/version` and `/metrics` (tasks by state, the agent's RSS).

use std::io::SeekFrom;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use drover_api::task::{LogQuery, TaskReport, TaskState};
use drover_api::{ApiError, ErrorCode, TaskId};
use drover_service::http::{HttpError, HttpResult, Metrics, finish_router};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use crate::runner::TaskRunner;

/// How often a followed log is polled for new bytes.
pub const FOLLOW_POLL: Duration = Duration::from_millis(150);
/// Largest chunk sent at once.
const CHUNK: usize = 64 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
struct ApiState {
    runner: TaskRunner,
    /// Turns true when the agent shuts down, so followed logs end and the graceful
    /// shutdown does not wait on them. The sender belongs to [`crate::run`].
    closing: watch::Receiver<bool>,
}

/// The complete router, with the shared routes and (when `token` is set) the token check.
/// Followed log streams end once `closing` turns true.
pub fn router(runner: TaskRunner, token: Option<String>, closing: watch::Receiver<bool>) -> Router {
    let metrics_runner = runner.clone();
    let api = Router::new()
        .route("/v1/tasks", get(tasks))
        .route("/v1/tasks/{id}/logs", get(logs))
        .with_state(ApiState { runner, closing });
    finish_router(
        api,
        "drover-agent",
        drover_service::http::always_healthy,
        move || metrics(&metrics_runner),
        token,
    )
}

async fn tasks(State(state): State<ApiState>) -> axum::Json<Vec<TaskReport>> {
    axum::Json(state.runner.reports())
}

/// Where a read starts: a non-negative offset as given but at most `len`, a negative one
/// back from `len`. A read from past the end returns nothing either way, and clamping
/// keeps an absurd offset (`i64::MAX`) from reaching `lseek`, which refuses offsets
/// beyond the filesystem's largest file and would turn the read into a server error.
pub fn start_offset(offset: Option<i64>, len: u64) -> u64 {
    match offset {
        None => 0,
        Some(o) if o >= 0 => o.unsigned_abs().min(len),
        Some(o) => len.saturating_sub(o.unsigned_abs()),
    }
}

async fn logs(
    State(ApiState { runner, closing }): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> HttpResult<Response> {
    let Query(q) = query.map_err(|e| {
        HttpError(ApiError::new(
            ErrorCode::InvalidField,
            format!("invalid query: {}", e.body_text()),
        ))
    })?;
    let id = TaskId(id);
    let sandbox = runner
        .sandbox(&id)
        .ok_or_else(|| HttpError(ApiError::not_found("task", id.as_str())))?;
    let path = sandbox.log_path(q.stream);
    // Never through a link: the sandbox is shared with the task's user.
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .await
        .map_err(|e| {
            HttpError(ApiError::new(
                ErrorCode::Internal,
                format!("cannot open {}: {e}", path.display()),
            ))
        })?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let pos = start_offset(q.offset, len);
    file.seek(SeekFrom::Start(pos)).await.map_err(|e| {
        HttpError(ApiError::new(
            ErrorCode::Internal,
            format!("cannot seek {}: {e}", path.display()),
        ))
    })?;
    let follow = q.follow;
    // State: the open file, whether the task had ended at the last empty read (one more
    // read after that drains what it wrote last), and whether the stream is over.
    let stream = futures::stream::unfold((file, false, false), move |(mut file, ended, done)| {
        let runner = runner.clone();
        let id = id.clone();
        let closing = closing.clone();
        async move {
            if done {
                return None;
            }
            let mut ended = ended;
            loop {
                let mut buf = vec![0u8; CHUNK];
                match file.read(&mut buf).await {
                    Ok(0) => {
                        if !follow || ended {
                            return None;
                        }
                        if !runner.is_active(&id) {
                            ended = true;
                            continue;
                        }
                        if *closing.borrow() {
                            return None;
                        }
                        tokio::time::sleep(FOLLOW_POLL).await;
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        return Some((
                            Ok::<Bytes, std::io::Error>(Bytes::from(buf)),
                            (file, ended, false),
                        ));
                    }
                    Err(e) => return Some((Err(e), (file, ended, true))),
                }
            }
        }
    });
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The Prometheus text of the agent's gauges.
pub fn metrics(runner: &TaskRunner) -> String {
    let counts = runner.counts();
    let mut m = Metrics::default();
    for state in TaskState::ALL {
        let n = counts.get(&state).copied().unwrap_or(0);
        m.gauge(
            "drover_agent_tasks",
            "Tasks the agent knows, by state",
            &[("state", state.as_str())],
            n as f64,
        );
    }
    if let Some(rss) = crate::procfs::self_rss_bytes() {
        m.gauge(
            "drover_agent_resident_memory_bytes",
            "The agent's own resident set size",
            &[],
            rss as f64,
        );
    }
    m.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(start_offset(None, 100), 0);
        assert_eq!(start_offset(Some(10), 100), 10);
        assert_eq!(start_offset(Some(500), 100), 100);
        assert_eq!(start_offset(Some(i64::MAX), 100), 100);
        assert_eq!(start_offset(Some(i64::MIN), 100), 0);
        assert_eq!(start_offset(Some(-10), 100), 90);
        assert_eq!(start_offset(Some(-500), 100), 0);
        assert_eq!(start_offset(Some(i64::MIN), 100), 0);
    }
}
