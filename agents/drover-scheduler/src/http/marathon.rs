//! Marathon's most used app endpoints on the scheduler, in Marathon's shapes, so that
//! existing scripts and `curl` recipes work unchanged. Thin handlers over [`Apps`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v2/apps` | `{"apps": [...]}` (`?embed=apps.tasks` adds each app's tasks, `?embed=apps.readiness` its `readinessCheckResults`) |
//! | `POST /v2/apps[?force=true]` | create: 201 with the app (`deployments`, `version`, and `ignored`: fields kept but not acted on) |
//! | `GET /v2/apps/{id}` | `{"app": {...}}` with its tasks and `readinessCheckResults` |
//! | `PUT /v2/apps/{id}[?force=true]` | create (201) or update (200): `{"version", "deploymentId"}` |
//! | `DELETE /v2/apps/{id}[?force=true]` | delete: `{"version", "deploymentId"}` |
//! | `POST /v2/apps/{id}/restart[?force=true]` | restart: `{"version", "deploymentId"}` |
//! | `GET /v2/apps/{id}/tasks` | `{"tasks": [...]}` |
//! | `GET /v2/apps/{id}/versions` | `{"versions": [...]}`, newest first |
//! | `GET /v2/apps/{id}/versions/{version}` | that version's definition |
//! | `GET /v2/tasks` | `{"tasks": [...]}` of every app |
//! | `GET /v2/deployments` | running deployments, Marathon's shape (with `currentActions[].readinessCheckResults`, and Drover's `waiting` while one waits for dependencies) |
//! | `GET /v2/deployments/{id}` | one deployment (running or recent), Marathon's shape |
//! | `DELETE /v2/deployments/{id}[?force=true]` | cancel: rolls back to the version before (200 `{"version", "deploymentId"}`), or with `force` just stops (202) |
//! | `GET /v2/events` | Server-Sent Events: `api_post_event`, `deployment_info`, `deployment_success`, `deployment_failed`, `status_update_event`, `app_terminated_event` |
//!
//! App ids are paths (`/shop/web`), so the app routes are one wildcard whose tail is
//! parsed: a last segment `restart`, `tasks` or `versions` is the action (Marathon
//! reserves those names, so no app has them).
//!
//! Errors: an invalid definition is **422** with Marathon's body (`message`, and
//! `details: [{path, errors}]`) plus Drover's `code` and `field`; malformed JSON is 400;
//! a change while the app's deployment runs is 409 unless `?force=true`; an unknown app
//! or deployment is 404; dependencies that would form a cycle are 422 naming it. Nothing
//! is created on any error.
//!
//! Readiness results (`readinessCheckResults`: `name`, `taskId`, `ready`, `lastResponse`
//! when the check preserves it, and Drover's `message` and `checkedAt`) are those of the
//! instances the app's running deployment started; empty otherwise.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use drover_api::app::{AppDefinition, AppId};
use drover_api::client::ForceQuery;
use drover_api::deployment::{AppStatus, DeploymentId, DeploymentKind, DeploymentState};
use drover_api::task::{Task, TaskGoal, TaskState, labels};
use drover_api::{ApiError, ErrorCode};
use drover_service::http::ApiQuery;
use futures::{Stream, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::engine::apps::{AppChange, Locked};
use crate::runtime::apps::{AppEvent, AppEventKind, Apps, Revert, app_not_found, task_app};
use crate::runtime::master_sync::stopped;

/// Keep-alive comment interval of the event stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Marathon's routes; `/v2/events` streams end once `stop` turns true.
pub fn router(apps: Arc<Apps>, stop: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/v2/apps", get(list).post(create))
        .route(
            "/v2/apps/{*rest}",
            get(app_get).put(app_put).delete(app_delete).post(app_post),
        )
        .route("/v2/tasks", get(all_tasks))
        .route("/v2/deployments", get(deployments))
        .route(
            "/v2/deployments/{id}",
            get(deployment).delete(cancel_deployment),
        )
        .route(
            "/v2/events",
            get(move |State(apps): State<Arc<Apps>>| events(apps, stop.clone())),
        )
        .with_state(apps)
}

/// An error in Marathon's shape, with Drover's `code` and `field` besides.
#[derive(Debug)]
pub struct MarathonError {
    /// What went wrong.
    pub error: ApiError,
    /// For a change refused because deployments of the app run: their ids, which
    /// Marathon's 409 lists in `deployments` (clients use them to wait or cancel).
    pub deployments: Vec<String>,
}

impl From<ApiError> for MarathonError {
    fn from(error: ApiError) -> Self {
        MarathonError {
            error,
            deployments: Vec::new(),
        }
    }
}

impl IntoResponse for MarathonError {
    fn into_response(self) -> Response {
        let e = self.error;
        let status = match e.code {
            // Marathon answers validation errors with 422.
            ErrorCode::InvalidField => StatusCode::UNPROCESSABLE_ENTITY,
            c => StatusCode::from_u16(c.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let mut body = json!({
            "message": e.message,
            "code": e.code,
        });
        if let (false, Some(o)) = (self.deployments.is_empty(), body.as_object_mut()) {
            let ids: Vec<Value> = self
                .deployments
                .iter()
                .map(|id| json!({ "id": id }))
                .collect();
            o.insert("deployments".into(), ids.into());
        }
        if let (Some(f), Some(o)) = (&e.field, body.as_object_mut()) {
            o.insert("field".into(), f.clone().into());
            o.insert(
                "details".into(),
                json!([{ "path": format!("/{}", f.replace('.', "/")), "errors": [e.message] }]),
            );
        }
        (status, Json(body)).into_response()
    }
}

type MResult<T> = Result<T, MarathonError>;

fn parse_body(body: &Bytes) -> MResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        MarathonError::from(ApiError::new(
            ErrorCode::MalformedBody,
            format!("invalid JSON body: {e}"),
        ))
    })
}

fn parse_id(raw: &str) -> MResult<AppId> {
    AppId::parse(raw).map_err(|e| MarathonError::from(ApiError::invalid("id", e)))
}

/// A Marathon task state name (`TASK_RUNNING`) for a task.
pub fn task_status(t: &Task) -> &'static str {
    if t.goal == TaskGoal::Kill && t.state.is_active() {
        return "TASK_KILLING";
    }
    match t.state {
        TaskState::Staging => "TASK_STAGING",
        TaskState::Running | TaskState::Healthy | TaskState::Unhealthy => "TASK_RUNNING",
        TaskState::Finished => "TASK_FINISHED",
        TaskState::Failed => "TASK_FAILED",
        TaskState::Killed => "TASK_KILLED",
        TaskState::Lost => "TASK_LOST",
    }
}

/// A task in Marathon's shape (`GET /v2/apps/{id}/tasks`).
pub fn task_json(t: &Task, host: &str) -> Value {
    let labels = &t.spec.definition.labels;
    let health: Vec<Value> = match &t.health {
        Some(h) if !t.spec.definition.health_checks.is_empty() => vec![json!({
            "alive": h.alive,
            "consecutiveFailures": h.consecutive_failures,
            "firstSuccess": Value::Null,
            "lastSuccess": if h.alive { h.last_check_at.map(|x| x.to_rfc3339()) } else { None },
            "lastFailure": if h.alive { None } else { h.last_check_at.map(|x| x.to_rfc3339()) },
            "lastFailureCause": h.last_failure,
            "taskId": t.spec.id.as_str(),
            "instanceId": t.spec.id.as_str(),
        })],
        _ => Vec::new(),
    };
    json!({
        "id": t.spec.id.as_str(),
        "appId": labels.get(labels::APP_ID),
        "host": host,
        "ports": t.spec.host_ports,
        "servicePorts": [],
        "ipAddresses": [{ "ipAddress": host, "protocol": "IPv4" }],
        "slaveId": t.spec.node,
        "agentId": t.spec.node,
        "state": task_status(t),
        "stagedAt": t.staged_at.to_rfc3339(),
        "startedAt": t.started_at.map(|x| x.to_rfc3339()),
        "version": labels.get(labels::VERSION),
        "healthCheckResults": health,
    })
}

/// A definition in Marathon's shape: resources at the top level, constraints as
/// arrays, the container as it was given.
pub fn app_json(def: &AppDefinition) -> Value {
    let mut v = serde_json::to_value(def).unwrap_or_else(|_| json!({ "id": def.id.as_str() }));
    if let Some(o) = v.as_object_mut() {
        o.remove("resources");
        o.insert("cpus".into(), def.resources.cpus.into());
        o.insert("mem".into(), def.resources.mem.into());
        o.insert("disk".into(), def.resources.disk.into());
        o.insert(
            "constraints".into(),
            def.constraints.iter().map(|c| c.to_marathon()).collect(),
        );
        if let Some(c) = &def.container {
            o.insert("container".into(), c.marathon.clone());
        }
        o.insert(
            "ports".into(),
            def.port_definitions.iter().map(|p| p.port).collect(),
        );
    }
    v
}

/// An app in Marathon's `GET /v2/apps` shape: the definition, task counts, the running
/// deployment, (when given) the tasks, and (with `readiness`) `readinessCheckResults`.
fn app_with_status(
    def: &AppDefinition,
    status: Option<&AppStatus>,
    deployment: Option<&DeploymentId>,
    tasks: Option<Vec<Value>>,
    readiness: bool,
) -> Value {
    let mut v = app_json(def);
    if let Some(o) = v.as_object_mut() {
        let c = status.map(|s| s.tasks).unwrap_or_default();
        o.insert("tasksStaged".into(), c.staged.into());
        o.insert(
            "tasksRunning".into(),
            (c.running + c.healthy + c.unhealthy).into(),
        );
        o.insert("tasksHealthy".into(), c.healthy.into());
        o.insert("tasksUnhealthy".into(), c.unhealthy.into());
        o.insert(
            "deployments".into(),
            deployment
                .map(|d| vec![json!({ "id": d.as_str() })])
                .unwrap_or_default()
                .into(),
        );
        if let Some(u) = status.and_then(|s| s.unplaceable.as_ref()) {
            o.insert(
                "lastTaskFailure".into(),
                json!({ "message": u.message, "state": "TASK_UNPLACEABLE" }),
            );
            o.insert("unplaceable".into(), json!(u));
        }
        if let Some(t) = tasks {
            o.insert("tasks".into(), t.into());
        }
        if readiness {
            let r = status.map(|s| s.readiness.as_slice()).unwrap_or_default();
            o.insert("readinessCheckResults".into(), json!(r));
        }
    }
    v
}

fn tasks_json(apps: &Apps, tasks: &[Task]) -> Vec<Value> {
    let hosts = apps.node_hosts();
    tasks
        .iter()
        .map(|t| {
            let host = hosts
                .get(&t.spec.node)
                .map_or(t.spec.node.as_str(), String::as_str);
            task_json(t, host)
        })
        .collect()
}

async fn list(State(apps): State<Arc<Apps>>, uri: OriginalUri) -> MResult<Json<Value>> {
    // `embed` may repeat (`embed=apps.tasks&embed=apps.counts`), which a struct query
    // cannot take; read the raw query.
    let query = uri.query().unwrap_or("");
    let embeds = |what: &str| {
        query.split('&').any(|kv| {
            kv.strip_prefix("embed=")
                .is_some_and(|v| percent_decode(v).contains(what))
        })
    };
    let embed_tasks = embeds("tasks");
    let embed_readiness = embeds("readiness");
    let id_filter = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("id="))
        .map(percent_decode);
    let all = apps.list().await;
    let tasks = if embed_tasks {
        apps.tasks(None).await
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for d in all {
        if id_filter
            .as_deref()
            .is_some_and(|f| !d.app.id.as_str().contains(f))
        {
            continue;
        }
        let mine = embed_tasks.then(|| {
            let t: Vec<Task> = tasks
                .iter()
                .filter(|t| task_app(t) == Some(d.app.id.as_str()))
                .cloned()
                .collect();
            tasks_json(&apps, &t)
        });
        out.push(app_with_status(
            &d.app,
            d.status.as_ref(),
            d.deployment.as_ref().map(|x| &x.id),
            mine,
            embed_readiness,
        ));
    }
    Ok(Json(json!({ "apps": out })))
}

async fn create(
    State(apps): State<Arc<Apps>>,
    ApiQuery(q): ApiQuery<ForceQuery>,
    body: Bytes,
) -> MResult<Response> {
    let value = parse_body(&body)?;
    let (def, ignored) = AppDefinition::from_marathon(&value)?;
    let id = def.id.clone();
    if !ignored.is_empty() {
        tracing::info!(app = %id, ignored = ?ignored, "app accepted; these fields are kept but not acted on");
    }
    let changed = change(
        &apps,
        &id,
        AppChange::Create(def),
        Locked::from_force(q.force),
        ignored,
    )
    .await?;
    let mut v = app_with_status(
        &changed.app,
        None,
        Some(&changed.deployment.id),
        None,
        false,
    );
    if let Some(o) = v.as_object_mut() {
        o.insert("ignored".into(), json!(changed.ignored));
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v2/apps{id}"))],
        Json(v),
    )
        .into_response())
}

/// What the tail of `/v2/apps/{*rest}` names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    App(String),
    Tasks(String),
    Versions(String),
    Version(String, String),
    Restart(String),
}

fn target(rest: &str) -> Target {
    let rest = rest.trim_end_matches('/');
    if let Some((app, v)) = rest.rsplit_once("/versions/")
        && !v.contains('/')
    {
        return Target::Version(app.to_string(), v.to_string());
    }
    match rest.rsplit_once('/') {
        Some((app, "tasks")) => Target::Tasks(app.to_string()),
        Some((app, "versions")) => Target::Versions(app.to_string()),
        Some((app, "restart")) => Target::Restart(app.to_string()),
        _ => Target::App(rest.to_string()),
    }
}

fn rest_of(uri: &OriginalUri) -> String {
    let path = uri.path();
    let rest = path.strip_prefix("/v2/apps").unwrap_or(path);
    // Percent-decoding: app ids never need escapes, but clients may send them.
    percent_decode(rest)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn app_get(State(apps): State<Arc<Apps>>, uri: OriginalUri) -> MResult<Json<Value>> {
    match target(&rest_of(&uri)) {
        Target::App(raw) => {
            let id = parse_id(&raw)?;
            let d = apps.details(&id).await?;
            let tasks = apps.tasks(Some(&id)).await;
            let t = tasks_json(&apps, &tasks);
            Ok(Json(json!({
                "app": app_with_status(&d.app, d.status.as_ref(), d.deployment.as_ref().map(|x| &x.id), Some(t), true)
            })))
        }
        Target::Tasks(raw) => {
            let id = parse_id(&raw)?;
            if !apps.exists(&id).await {
                return Err(app_not_found(&id).into());
            }
            let tasks = apps.tasks(Some(&id)).await;
            Ok(Json(json!({ "tasks": tasks_json(&apps, &tasks) })))
        }
        Target::Versions(raw) => {
            let id = parse_id(&raw)?;
            Ok(Json(json!({ "versions": apps.versions(&id).await? })))
        }
        Target::Version(raw, v) => {
            let id = parse_id(&raw)?;
            if !apps.exists(&id).await {
                return Err(app_not_found(&id).into());
            }
            Ok(Json(app_json(&apps.version(&id, &v).await?)))
        }
        Target::Restart(_) => Err(method_not_allowed(Method::GET)),
    }
}

/// Makes a change; a refusal while deployments of the app run names them, as
/// Marathon's 409 does.
async fn change(
    apps: &Apps,
    id: &AppId,
    change: AppChange,
    locked: Locked,
    ignored: Vec<String>,
) -> MResult<drover_api::client::AppChanged> {
    match apps.change(id, change, locked, ignored).await {
        Ok(changed) => Ok(changed),
        Err(error) if error.code == ErrorCode::Conflict => {
            let deployments = apps
                .deployments()
                .await
                .into_iter()
                .filter(|d| d.is_running() && &d.app_id == id)
                .map(|d| d.id.to_string())
                .collect();
            Err(MarathonError { error, deployments })
        }
        Err(error) => Err(error.into()),
    }
}

fn method_not_allowed(m: Method) -> MarathonError {
    MarathonError::from(ApiError::new(
        ErrorCode::NotFound,
        format!("method {m} is not allowed here"),
    ))
}

fn change_answer(changed: &drover_api::client::AppChanged) -> Value {
    json!({
        "version": changed.deployment.version,
        "deploymentId": changed.deployment.id.as_str(),
    })
}

async fn app_put(
    State(apps): State<Arc<Apps>>,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<ForceQuery>,
    body: Bytes,
) -> MResult<Response> {
    let Target::App(raw) = target(&rest_of(&uri)) else {
        return Err(method_not_allowed(Method::PUT));
    };
    let id = parse_id(&raw)?;
    let mut value = parse_body(&body)?;
    if let Some(o) = value.as_object_mut() {
        match o.get("id").and_then(Value::as_str) {
            None => {
                o.insert("id".into(), id.as_str().into());
            }
            Some(given) => {
                if AppId::parse(given).ok().as_ref() != Some(&id) {
                    return Err(ApiError::invalid(
                        "id",
                        format!("{given:?} does not match the app in the path, {id}"),
                    )
                    .into());
                }
            }
        }
    }
    let (def, ignored) = AppDefinition::from_marathon(&value)?;
    let changed = change(
        &apps,
        &id,
        AppChange::Update(def),
        Locked::from_force(q.force),
        ignored,
    )
    .await?;
    let status = if changed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut v = change_answer(&changed);
    if let Some(o) = v.as_object_mut() {
        o.insert("ignored".into(), json!(changed.ignored));
    }
    Ok((status, Json(v)).into_response())
}

async fn app_delete(
    State(apps): State<Arc<Apps>>,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> MResult<Json<Value>> {
    let Target::App(raw) = target(&rest_of(&uri)) else {
        return Err(method_not_allowed(Method::DELETE));
    };
    let id = parse_id(&raw)?;
    let changed = change(
        &apps,
        &id,
        AppChange::Delete,
        Locked::from_force(q.force),
        Vec::new(),
    )
    .await?;
    Ok(Json(change_answer(&changed)))
}

async fn app_post(
    State(apps): State<Arc<Apps>>,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> MResult<Json<Value>> {
    let Target::Restart(raw) = target(&rest_of(&uri)) else {
        return Err(method_not_allowed(Method::POST));
    };
    let id = parse_id(&raw)?;
    let changed = change(
        &apps,
        &id,
        AppChange::Restart,
        Locked::from_force(q.force),
        Vec::new(),
    )
    .await?;
    Ok(Json(change_answer(&changed)))
}

async fn all_tasks(State(apps): State<Arc<Apps>>) -> Json<Value> {
    let tasks = apps.tasks(None).await;
    Json(json!({ "tasks": tasks_json(&apps, &tasks) }))
}

async fn deployments(State(apps): State<Arc<Apps>>) -> Json<Value> {
    let all = apps.deployments().await;
    let mut out: Vec<Value> = Vec::new();
    for d in all.iter().filter(|d| d.is_running()) {
        out.push(d.to_marathon_with(&apps.readiness(&d.app_id).await));
    }
    Json(Value::Array(out))
}

async fn deployment(
    State(apps): State<Arc<Apps>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> MResult<Json<Value>> {
    let d = apps.deployment(&DeploymentId(id)).await?;
    let readiness = if d.is_running() {
        apps.readiness(&d.app_id).await
    } else {
        Vec::new()
    };
    let mut v = d.to_marathon_with(&readiness);
    if let Some(o) = v.as_object_mut() {
        o.insert("state".into(), d.state.as_str().into());
    }
    Ok(Json(v))
}

async fn cancel_deployment(
    State(apps): State<Arc<Apps>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> MResult<Response> {
    let revert = if q.force {
        Revert::Nothing
    } else {
        Revert::Previous
    };
    let (cancelled, rollback) = apps.cancel(&DeploymentId(id), revert).await?;
    match rollback {
        Some(r) => Ok(Json(json!({
            "version": r.version,
            "deploymentId": r.id.as_str(),
        }))
        .into_response()),
        None => {
            let kind = cancelled.kind;
            let code = if kind == DeploymentKind::Delete {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok((code, Json(json!({ "deploymentId": cancelled.id.as_str() }))).into_response())
        }
    }
}

/// The event stream, until `stop`: the sender lives as long as `apps`, which outlives
/// the server, so the stream would otherwise never end and graceful shutdown would
/// wait on it forever.
async fn events(
    apps: Arc<Apps>,
    stop: watch::Receiver<bool>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = apps.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(ev) => {
                let (kind, data) = event_json(&ev);
                SseEvent::default().event(kind).data(data.to_string())
            }
            // A slow reader missed some: say so rather than end the stream.
            Err(broadcast::error::RecvError::Lagged(n)) => SseEvent::default()
                .event("events_dropped")
                .data(json!({ "eventType": "events_dropped", "dropped": n }).to_string()),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    })
    .take_until(stopped(stop));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// An event's Marathon type (`deployment_info`, `status_update_event`, ...) and its JSON,
/// with `eventType` and `timestamp` inside it as Marathon puts them.
fn event_json(ev: &AppEvent) -> (&'static str, Value) {
    let (kind, mut data) = match &ev.kind {
        AppEventKind::ApiPost { app } => {
            ("api_post_event", json!({ "appDefinition": app_json(app) }))
        }
        AppEventKind::Deployment { deployment: d, app } => {
            let kind = match d.state {
                DeploymentState::Running => "deployment_info",
                DeploymentState::Succeeded => "deployment_success",
                DeploymentState::Failed | DeploymentState::Superseded => "deployment_failed",
            };
            let mut data = json!({ "id": d.id.as_str(), "plan": d.to_marathon(), "deployment": d });
            if let (Some(a), Some(o)) = (app, data.as_object_mut()) {
                let actions: Vec<Value> = d
                    .marathon_actions()
                    .iter()
                    .map(|x| json!({ "action": x, "app": a.id.as_str() }))
                    .collect();
                o.insert("currentStep".into(), json!({ "actions": actions }));
            }
            (kind, data)
        }
        AppEventKind::StatusUpdate { task: t, host } => {
            let mut data = task_json(t, host);
            if let Some(o) = data.as_object_mut() {
                o.insert("taskId".into(), t.spec.id.as_str().into());
                o.insert("taskStatus".into(), task_status(t).into());
                o.insert("slaveId".into(), t.spec.node.clone().into());
                if let Some(m) = &t.message {
                    o.insert("message".into(), m.clone().into());
                }
            }
            ("status_update_event", data)
        }
        AppEventKind::AppTerminated { app_id } => {
            ("app_terminated_event", json!({ "appId": app_id.as_str() }))
        }
    };
    if let Some(o) = data.as_object_mut() {
        o.insert("eventType".into(), kind.into());
        o.insert(
            "timestamp".into(),
            crate::engine::apps::state::format_version(ev.at).into(),
        );
    }
    (kind, data)
}

/// Host names by node, for handlers that format tasks (re-exported for the native API).
pub fn hosts(apps: &Apps) -> HashMap<String, String> {
    apps.node_hosts()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_type_and_time_in_marathons_shape() {
        use chrono::{TimeZone, Utc};
        use drover_api::task::{TaskDefinition, TaskId, TaskSpec};

        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let gone = AppEvent {
            at,
            kind: AppEventKind::AppTerminated {
                app_id: AppId::parse("/shop/web").unwrap(),
            },
        };
        let (kind, data) = event_json(&gone);
        assert_eq!(kind, "app_terminated_event");
        assert_eq!(data["eventType"], "app_terminated_event");
        assert_eq!(data["appId"], "/shop/web");
        assert_eq!(data["timestamp"], "2026-01-02T03:04:05.000Z");

        let mut task = Task::staging(
            TaskSpec {
                id: TaskId::from("shop_web.1"),
                node: "agent-1".into(),
                definition: TaskDefinition::default(),
                host_ports: vec![31000],
            },
            at,
        );
        task.message = Some("pulled".into());
        let update = AppEvent {
            at,
            kind: AppEventKind::StatusUpdate {
                task: Box::new(task),
                host: "10.0.0.5".into(),
            },
        };
        let (kind, data) = event_json(&update);
        assert_eq!(kind, "status_update_event");
        assert_eq!(data["eventType"], "status_update_event");
        assert_eq!(data["taskId"], "shop_web.1");
        assert_eq!(data["taskStatus"], "TASK_STAGING");
        assert_eq!(data["slaveId"], "agent-1");
        assert_eq!(data["host"], "10.0.0.5");
        assert_eq!(data["ports"], json!([31000]));
        assert_eq!(data["message"], "pulled");
    }

    #[test]
    fn tails_name_the_action() {
        assert_eq!(target("/shop/web"), Target::App("/shop/web".into()));
        assert_eq!(target("/shop/web/"), Target::App("/shop/web".into()));
        assert_eq!(target("/shop/web/tasks"), Target::Tasks("/shop/web".into()));
        assert_eq!(target("/web/versions"), Target::Versions("/web".into()));
        assert_eq!(
            target("/web/versions/2026-01-01T00:00:00.000Z"),
            Target::Version("/web".into(), "2026-01-01T00:00:00.000Z".into())
        );
        assert_eq!(target("/web/restart"), Target::Restart("/web".into()));
        assert_eq!(percent_decode("/a%2Fb"), "/a/b");
    }
}
