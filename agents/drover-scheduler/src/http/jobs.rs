//! The native job API, thin handlers over [`Jobs`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/jobs` | every job with its state and next run |
//! | `POST /v1/jobs` | create (201) or update (200) a job from its Chronos JSON; the answer names ignored fields |
//! | `GET /v1/jobs/{name}?next=N` | the job, its state, next N runs (default 5), open attempts, stats |
//! | `PUT /v1/jobs/{name}` | create or update, the body's name must match (or be absent) |
//! | `DELETE /v1/jobs/{name}` | delete the job and its history (refused while it has children) |
//! | `POST /v1/jobs/{name}/run` | start a run now, body `{"arguments": [...]}` optional |
//! | `POST /v1/jobs/{name}/kill` | kill its open runs |
//! | `POST /v1/jobs/{name}/success` | count a success now (its children fire) |
//! | `POST /v1/jobs/{name}/enable`, `.../disable` | enable, disable |
//! | `GET /v1/jobs/{name}/runs?limit=N` | run records (attempts), newest first (default 100) |
//! | `GET /v1/jobs/{name}/stats` | counts and duration statistics |
//! | `GET /v1/jobs/{name}/runs/{run}/logs?stream=&attempt=&offset=` | a run's output, from the master |

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use drover_api::client::{
    ClientError, JobAccepted, JobDetails, JobLogQuery, MasterClient, RunJobRequest,
};
use drover_api::job::ChronosJob;
use drover_api::job_run::{JobRun, JobStats, JobStatus};
use drover_api::task::LogQuery;
use drover_api::{ApiError, ErrorCode};
use drover_service::http::{ApiPath, ApiQuery, HttpError, HttpResult};
use serde::Deserialize;

use crate::engine::jobs::{Action, Command};
use crate::runtime::jobs::{Jobs, PutKind, PutOutcome};

/// Upcoming runs shown when `next` is not given.
pub const DEFAULT_NEXT: usize = 5;
/// Most upcoming runs one request may ask for.
pub const MAX_NEXT: usize = 1000;
/// Run records returned when `limit` is not given.
pub const DEFAULT_RUNS: usize = 100;

/// The native job routes; a run's logs are read from the master through `master`.
pub fn router(jobs: Arc<Jobs>, master: MasterClient) -> Router {
    Router::new()
        .route("/v1/jobs", get(list).post(create))
        .route("/v1/jobs/{name}", get(show).put(update).delete(delete))
        .route("/v1/jobs/{name}/run", post(run_now))
        .route("/v1/jobs/{name}/kill", post(kill))
        .route("/v1/jobs/{name}/success", post(success))
        .route("/v1/jobs/{name}/enable", post(enable))
        .route("/v1/jobs/{name}/disable", post(disable))
        .route("/v1/jobs/{name}/runs", get(runs))
        .route("/v1/jobs/{name}/stats", get(stats))
        .route(
            "/v1/jobs/{name}/runs/{run}/logs",
            get(move |jobs, path, query| logs(jobs, master.clone(), path, query)),
        )
        .with_state(jobs)
}

/// A JSON body as a value: syntax errors are 400 `malformed_body`; the fields are
/// checked by `parse_job`, which names the one at fault.
pub fn json_body(body: &Bytes) -> Result<serde_json::Value, HttpError> {
    serde_json::from_slice(body).map_err(|e| {
        HttpError(ApiError::new(
            ErrorCode::MalformedBody,
            format!("invalid JSON body: {e}"),
        ))
    })
}

fn accepted(o: PutOutcome) -> (StatusCode, Json<JobAccepted>) {
    let status = if o.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(JobAccepted {
            job: o.job,
            created: o.created,
            ignored_fields: o.ignored,
        }),
    )
}

async fn list(State(jobs): State<Arc<Jobs>>) -> Json<Vec<JobDetails>> {
    Json(jobs.list().await)
}

async fn create(
    State(jobs): State<Arc<Jobs>>,
    body: Bytes,
) -> HttpResult<(StatusCode, Json<JobAccepted>)> {
    let value = json_body(&body)?;
    Ok(accepted(jobs.put_job(&value, PutKind::Any).await?))
}

async fn update(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> HttpResult<(StatusCode, Json<JobAccepted>)> {
    let value = json_body(&body)?;
    Ok(accepted(jobs.put_job(&value, PutKind::Named(name)).await?))
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    next: Option<usize>,
}

async fn show(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> HttpResult<Json<JobDetails>> {
    let next = q.next.unwrap_or(DEFAULT_NEXT);
    if next > MAX_NEXT {
        return Err(HttpError(ApiError::invalid(
            "next",
            format!("at most {MAX_NEXT}"),
        )));
    }
    Ok(Json(jobs.details(&name, next).await?))
}

async fn delete(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Json<ChronosJob>> {
    Ok(Json(jobs.delete_job(&name).await?))
}

async fn run_now(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> HttpResult<Json<JobRun>> {
    let req: RunJobRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RunJobRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            HttpError(ApiError::new(
                ErrorCode::InvalidField,
                format!("invalid JSON body: {e}"),
            ))
        })?
    };
    let plan = jobs
        .command(Command::RunNow {
            job: name.clone(),
            arguments: req.arguments,
        })
        .await?;
    started_run(&plan.actions, &name).map(Json).ok_or_else(|| {
        HttpError(ApiError::new(
            ErrorCode::Internal,
            "the run was accepted but its record is missing",
        ))
    })
}

/// The first attempt a plan recorded for `job`.
pub fn started_run(actions: &[Action], job: &str) -> Option<JobRun> {
    actions.iter().find_map(|a| match a {
        Action::RecordRun(r) if r.job == job && r.attempt == 1 => Some(r.clone()),
        _ => None,
    })
}

async fn status_after(jobs: &Jobs, name: &str) -> HttpResult<Json<JobStatus>> {
    Ok(Json(jobs.details(name, DEFAULT_NEXT).await?.status))
}

async fn kill(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Json<JobStatus>> {
    jobs.command(Command::Kill { job: name.clone() }).await?;
    status_after(&jobs, &name).await
}

async fn success(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Json<JobStatus>> {
    jobs.command(Command::MarkSuccess { job: name.clone() })
        .await?;
    status_after(&jobs, &name).await
}

async fn enable(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Json<JobDetails>> {
    jobs.command(Command::Enable { job: name.clone() }).await?;
    Ok(Json(jobs.details(&name, DEFAULT_NEXT).await?))
}

async fn disable(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Json<JobDetails>> {
    jobs.command(Command::Disable { job: name.clone() }).await?;
    Ok(Json(jobs.details(&name, DEFAULT_NEXT).await?))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    limit: Option<usize>,
}

async fn runs(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> HttpResult<Json<Vec<JobRun>>> {
    Ok(Json(
        jobs.runs(&name, q.limit.unwrap_or(DEFAULT_RUNS)).await?,
    ))
}

async fn stats(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Json<JobStats>> {
    Ok(Json(jobs.details(&name, 0).await?.status.stats))
}

/// The attempt whose logs to read: `run` is a run number, a run id, or `latest` (the
/// newest run that launched a task); `attempt` defaults to the run's latest.
pub fn pick_attempt<'a>(runs: &'a [JobRun], run: &str, attempt: Option<u32>) -> Option<&'a JobRun> {
    let with_task = |r: &&JobRun| r.task_id.is_some();
    // `runs` is newest first.
    let run_id = if run == "latest" {
        runs.iter().find(with_task)?.run_id.clone()
    } else if let Ok(n) = run.parse::<u64>() {
        runs.iter().find(|r| r.number == n)?.run_id.clone()
    } else {
        run.to_string()
    };
    runs.iter()
        .filter(|r| r.run_id == run_id)
        .filter(with_task)
        .find(|r| attempt.is_none_or(|a| r.attempt == a))
}

async fn logs(
    State(jobs): State<Arc<Jobs>>,
    master: MasterClient,
    ApiPath((name, run)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<JobLogQuery>,
) -> HttpResult<Response> {
    let runs = jobs.runs(&name, usize::MAX).await?;
    let attempt = pick_attempt(&runs, &run, q.attempt).ok_or_else(|| {
        HttpError(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "job {name:?} has no run {run:?}{} that started a task",
                q.attempt
                    .map(|a| format!(" attempt {a}"))
                    .unwrap_or_default()
            ),
        ))
    })?;
    let Some(task_id) = attempt.task_id.clone() else {
        return Err(HttpError(ApiError::not_found("run", &run)));
    };
    let query = LogQuery {
        stream: q.stream,
        follow: false,
        offset: q.offset,
    };
    match master.logs(&task_id, &query).await {
        Ok(stream) => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Body::from_stream(stream),
        )
            .into_response()),
        Err(ClientError::Api { status, body, .. }) if status != 401 && status < 500 => {
            Err(HttpError(*body))
        }
        Err(e) => Err(HttpError(ApiError::new(
            ErrorCode::Unavailable,
            format!("cannot read the logs of task {task_id} from the master: {e}"),
        ))),
    }
}
