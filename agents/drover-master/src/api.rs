//! The HTTP API: one handler per route, each a thin shell that decodes the request,
//! calls [`Master`] (on the blocking pool when it writes) and encodes the answer.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/nodes`, `GET /v1/nodes/{name}` | node views |
//! | `POST /v1/nodes/{name}/drain`, `.../activate` | refuse / accept new placements |
//! | `GET /v1/tasks?node=&state=&active=&label=k=v` | tasks, filtered |
//! | `POST /v1/tasks` | place a task (201, or 200 for an idempotent retry) |
//! | `POST /v1/launches` | place several tasks; one outcome each, one write for all |
//! | `GET /v1/tasks/{id}`, `POST /v1/tasks/{id}/kill` | one task; kill it |
//! | `GET /v1/tasks/{id}/logs?stream=&follow=&offset=` | its output, proxied from its agent |
//! | `GET /v1/events` | Server-Sent Events |
//! | `POST /v1/agents/register`, `POST /v1/agents/{name}/heartbeat` | agent protocol |
//! | `GET /v1/agents/{name}/assignments?after=&wait=` | the agent's long poll |

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use drover_api::agent::{
    AssignmentsQuery, ClusterInfo, HeartbeatRequest, HeartbeatResponse, NodeAssignments,
    RegisterRequest, RegisterResponse,
};
use drover_api::client::{AgentClient, ClientError};
use drover_api::node::Node;
use drover_api::task::{
    LaunchBatchRequest, LaunchBatchResponse, LaunchOutcome, LaunchRequest, LogQuery, Task,
    TaskFilter,
};
use drover_api::{ApiError, ErrorCode, TaskId};
use drover_service::http::{ApiJson, HttpError, HttpResult};
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::extract::{ApiPath, ApiQuery};
use crate::master::{Drain, Launched, Master};

/// Longest an assignments long poll waits, whatever the agent asks.
const MAX_WAIT_SECS: u64 = 60;
/// How long an assignments long poll waits when the agent does not say.
const DEFAULT_WAIT_SECS: u64 = 30;
/// Keep-alive comment interval of the event stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Fault injection, for tests only: with `DROVER_TEST_CRASH_AFTER_LAUNCH_COMMIT=1` in the
/// master's environment at start, the master aborts right after a launch batch that
/// created a task is durable and before it answers, the window in which a lost answer
/// must not turn into a second launch (`tests/tests/launch_once.rs`). Never set it
/// anywhere else.
static CRASH_AFTER_LAUNCH_COMMIT: LazyLock<bool> = LazyLock::new(|| {
    std::env::var_os("DROVER_TEST_CRASH_AFTER_LAUNCH_COMMIT").is_some_and(|v| v == "1")
});

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The core.
    pub master: Arc<Master>,
    /// Turns true when the server shuts down; streams and long polls end on it so the
    /// graceful shutdown does not wait for them. The server holds the sender.
    pub stop: watch::Receiver<bool>,
    /// The token the master presents to agents when it proxies log reads.
    pub token: Option<String>,
}

/// Resolves once the server is shutting down (or its stop sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The API routes, without the shared ones `finish_router` adds.
pub fn router(state: AppState) -> Router {
    if *CRASH_AFTER_LAUNCH_COMMIT {
        tracing::warn!(
            "DROVER_TEST_CRASH_AFTER_LAUNCH_COMMIT=1: this master aborts after its first durable launch batch (a test hook)"
        );
    }
    Router::new()
        .route("/v1/cluster", get(cluster))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(get_node))
        .route("/v1/nodes/{name}/drain", post(drain_node))
        .route("/v1/nodes/{name}/activate", post(activate_node))
        .route("/v1/tasks", get(list_tasks).post(launch))
        .route("/v1/launches", post(launch_batch))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/kill", post(kill))
        .route("/v1/tasks/{id}/logs", get(logs))
        .route("/v1/events", get(events))
        .route("/v1/agents/register", post(register))
        .route("/v1/agents/{name}/heartbeat", post(heartbeat))
        .route("/v1/agents/{name}/assignments", get(assignments))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A known path with the wrong method: 405 with a JSON body like every other error.
async fn method_not_allowed(req: axum::extract::Request) -> Response {
    let body = ApiError::new(
        ErrorCode::NotFound,
        format!(
            "method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    );
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// Runs a writing operation on the blocking pool: the store commits durably before the
/// operation returns, and that must not stall the async workers.
async fn blocking<T: Send + 'static>(
    master: &Arc<Master>,
    f: impl FnOnce(&Master) -> Result<T, ApiError> + Send + 'static,
) -> HttpResult<T> {
    let master = master.clone();
    match tokio::task::spawn_blocking(move || f(&master)).await {
        Ok(r) => r.map_err(HttpError),
        Err(e) => Err(HttpError(ApiError::new(
            ErrorCode::Internal,
            format!("the operation did not complete: {e}"),
        ))),
    }
}

async fn cluster(State(app): State<AppState>) -> Json<ClusterInfo> {
    Json(app.master.cluster().clone())
}

async fn list_nodes(State(app): State<AppState>) -> Json<Vec<Node>> {
    Json(app.master.nodes())
}

async fn get_node(State(app): State<AppState>, ApiPath(name): ApiPath) -> HttpResult<Json<Node>> {
    Ok(Json(app.master.node(&name)?))
}

async fn drain_node(State(app): State<AppState>, ApiPath(name): ApiPath) -> HttpResult<Json<Node>> {
    Ok(Json(
        blocking(&app.master, move |m| {
            m.drain(&name, Drain::Start, Utc::now())
        })
        .await?,
    ))
}

async fn activate_node(
    State(app): State<AppState>,
    ApiPath(name): ApiPath,
) -> HttpResult<Json<Node>> {
    Ok(Json(
        blocking(&app.master, move |m| {
            m.drain(&name, Drain::Stop, Utc::now())
        })
        .await?,
    ))
}

async fn list_tasks(
    State(app): State<AppState>,
    ApiQuery(filter): ApiQuery<TaskFilter>,
) -> HttpResult<Json<Vec<Task>>> {
    Ok(Json(app.master.tasks(&filter)?))
}

async fn get_task(State(app): State<AppState>, ApiPath(id): ApiPath) -> HttpResult<Json<Task>> {
    Ok(Json(app.master.task(&TaskId(id))?))
}

async fn launch(
    State(app): State<AppState>,
    ApiJson(req): ApiJson<LaunchRequest>,
) -> HttpResult<(StatusCode, Json<Task>)> {
    Ok(
        match blocking(&app.master, move |m| m.launch(req, Utc::now())).await? {
            Launched::Created(task) => (StatusCode::CREATED, Json(task)),
            Launched::Existing(task) => (StatusCode::OK, Json(task)),
        },
    )
}

async fn launch_batch(
    State(app): State<AppState>,
    ApiJson(req): ApiJson<LaunchBatchRequest>,
) -> HttpResult<Json<LaunchBatchResponse>> {
    let results = blocking(&app.master, move |m| {
        m.launch_batch(req.launches, Utc::now())
    })
    .await?;
    if *CRASH_AFTER_LAUNCH_COMMIT
        && results
            .iter()
            .any(|r| matches!(r, LaunchOutcome::Created { .. }))
    {
        // The test hook above: durable, not answered.
        std::process::abort();
    }
    Ok(Json(LaunchBatchResponse { results }))
}

async fn kill(State(app): State<AppState>, ApiPath(id): ApiPath) -> HttpResult<Json<Task>> {
    Ok(Json(
        blocking(&app.master, move |m| m.kill(&TaskId(id), Utc::now())).await?,
    ))
}

async fn register(
    State(app): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> HttpResult<Json<RegisterResponse>> {
    let name = req.name.clone();
    let resp = blocking(&app.master, move |m| m.register(&req, Utc::now())).await?;
    tracing::info!(node = %name, "agent registered");
    Ok(Json(resp))
}

async fn heartbeat(
    State(app): State<AppState>,
    ApiPath(name): ApiPath,
    ApiJson(req): ApiJson<HeartbeatRequest>,
) -> HttpResult<Json<HeartbeatResponse>> {
    Ok(Json(
        blocking(&app.master, move |m| m.heartbeat(&name, &req, Utc::now())).await?,
    ))
}

/// The long poll: answers at once when the node's revision differs from `after`,
/// otherwise when it changes or the wait ends.
async fn assignments(
    State(app): State<AppState>,
    ApiPath(name): ApiPath,
    ApiQuery(q): ApiQuery<AssignmentsQuery>,
) -> HttpResult<Json<NodeAssignments>> {
    let wait = Duration::from_secs(q.wait.unwrap_or(DEFAULT_WAIT_SECS).min(MAX_WAIT_SECS));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (current, mut changed) = app.master.assignments(&name)?;
        if q.after.as_deref() != Some(current.revision.as_str()) {
            return Ok(Json(current));
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return Ok(Json(current)) },
            _ = tokio::time::sleep_until(deadline) => return Ok(Json(current)),
            _ = stopped(app.stop.clone()) => return Ok(Json(current)),
        }
    }
}

/// Server-Sent Events: `event:` is the kind's name, `data:` the event as JSON, `id:` its
/// sequence number.
async fn events(
    State(app): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(app.master.subscribe())
        .map(|r| {
            Ok(match r {
                Ok(ev) => SseEvent::default()
                    .event(ev.kind.name())
                    .id(ev.seq.to_string())
                    .data(serde_json::to_string(&ev).unwrap_or_default()),
                Err(BroadcastStreamRecvError::Lagged(n)) => SseEvent::default()
                    .comment(format!("this subscriber fell behind and missed {n} events")),
            })
        })
        .take_until(stopped(app.stop.clone()));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// Proxies the task's log stream from its agent, with the master's token.
async fn logs(
    State(app): State<AppState>,
    ApiPath(id): ApiPath,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> HttpResult<Response> {
    let id = TaskId(id);
    let (node, address) = app.master.task_agent(&id)?;
    let unavailable = |what: String| HttpError(ApiError::new(ErrorCode::Unavailable, what));
    let client = AgentClient::new(&address, app.token.clone()).map_err(|e| {
        unavailable(format!(
            "cannot read logs from the agent of node {node:?}: {e}"
        ))
    })?;
    match client.logs(&id, &q).await {
        Ok(stream) => {
            let stream = stream.take_until(stopped(app.stop.clone()));
            Ok((
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                Body::from_stream(stream),
            )
                .into_response())
        }
        Err(ClientError::Api { status, body, .. }) if status != 401 && status < 500 => {
            Err(HttpError(*body))
        }
        Err(e) => Err(unavailable(format!(
            "cannot read logs of task {:?} from the agent of node {node:?}: {e}",
            id.as_str()
        ))),
    }
}
