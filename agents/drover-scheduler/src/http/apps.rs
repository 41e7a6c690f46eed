//! The native app and deployment API, thin handlers over [`Apps`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /v1/apps` | every app with its status ([`AppDetails`]) |
//! | `POST /v1/apps[?force=true]` | create from Marathon JSON: 201 [`AppChanged`] (with `ignored`) |
//! | `GET /v1/apps/{id}` | the app, its status (unplaceable instances and why, backoff) and running deployment |
//! | `PUT /v1/apps/{id}[?force=true]` | create (201) or update (200) |
//! | `DELETE /v1/apps/{id}[?force=true]` | delete (a deployment that stops every instance) |
//! | `POST /v1/apps/{id}/scale` `{"instances": N}` | scale |
//! | `POST /v1/apps/{id}/restart` | restart (new version, same definition) |
//! | `POST /v1/apps/{id}/rollback` `{"version": V}` | roll back (default: the last healthy version) |
//! | `GET /v1/apps/{id}/versions`, `.../versions/{version}` | stored versions, newest first; one version |
//! | `GET /v1/apps/{id}/tasks` | the app's active tasks |
//! | `GET /v1/deployments` | running and recent deployments, newest first |
//! | `GET /v1/deployments/{id}` | one deployment with its steps and progress |
//! | `DELETE /v1/deployments/{id}` | cancel: it fails now; with `autoRevert` the app rolls back |
//!
//! Errors are Drover's JSON body: an invalid definition is 400 `invalid_field` naming
//! the field (Marathon's `/v2` answers 422 for the same), a conflicting change 409
//! unless `?force=true`, an unknown app 404. Nothing changes on any error.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::routing::get;
use drover_api::app::{AppDefinition, AppId};
use drover_api::client::{
    AppChanged, AppDetails, AppVersions, DeploymentCancelled, ForceQuery, RollbackRequest,
    ScaleRequest,
};
use drover_api::deployment::{Deployment, DeploymentId};
use drover_api::task::Task;
use drover_api::{ApiError, ErrorCode};
use drover_service::http::{ApiPath, ApiQuery, HttpError, HttpResult};
use serde_json::Value;

use crate::engine::apps::{AppChange, Locked};
use crate::runtime::apps::{Apps, Revert, app_not_found};

/// The native app routes.
pub fn router(apps: Arc<Apps>) -> Router {
    Router::new()
        .route("/v1/apps", get(list).post(create))
        .route(
            "/v1/apps/{*rest}",
            get(app_get).put(app_put).delete(app_delete).post(app_post),
        )
        .route("/v1/deployments", get(deployments))
        .route(
            "/v1/deployments/{id}",
            get(deployment).delete(cancel_deployment),
        )
        .with_state(apps)
}

fn body_json(body: &Bytes) -> Result<Value, HttpError> {
    serde_json::from_slice(body).map_err(|e| {
        HttpError(ApiError::new(
            ErrorCode::MalformedBody,
            format!("invalid JSON body: {e}"),
        ))
    })
}

fn parse_id(raw: &str) -> Result<AppId, HttpError> {
    AppId::parse(raw).map_err(|e| HttpError(ApiError::invalid("id", e)))
}

fn answered(c: AppChanged) -> (StatusCode, Json<AppChanged>) {
    let status = if c.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(c))
}

async fn list(State(apps): State<Arc<Apps>>) -> Json<Vec<AppDetails>> {
    Json(apps.list().await)
}

async fn create(
    State(apps): State<Arc<Apps>>,
    ApiQuery(q): ApiQuery<ForceQuery>,
    body: Bytes,
) -> HttpResult<(StatusCode, Json<AppChanged>)> {
    let value = body_json(&body)?;
    let (def, ignored) = AppDefinition::from_marathon(&value)?;
    let id = def.id.clone();
    Ok(answered(
        apps.change(
            &id,
            AppChange::Create(def),
            Locked::from_force(q.force),
            ignored,
        )
        .await?,
    ))
}

/// The parts of `/v1/apps/{*rest}`: the app id and the action after it, if any.
fn split(uri: &OriginalUri) -> (String, Option<String>, Option<String>) {
    let path = uri.path();
    let rest = path
        .strip_prefix("/v1/apps")
        .unwrap_or(path)
        .trim_end_matches('/');
    if let Some((app, v)) = rest.rsplit_once("/versions/")
        && !v.contains('/')
    {
        return (app.into(), Some("versions".into()), Some(v.into()));
    }
    match rest.rsplit_once('/') {
        Some((app, a @ ("scale" | "restart" | "rollback" | "versions" | "tasks")))
            if !app.is_empty() =>
        {
            (app.into(), Some(a.into()), None)
        }
        _ => (rest.into(), None, None),
    }
}

async fn app_get(State(apps): State<Arc<Apps>>, uri: OriginalUri) -> HttpResult<Json<Value>> {
    let (raw, action, version) = split(&uri);
    let id = parse_id(&raw)?;
    let v = match (action.as_deref(), version) {
        (None, _) => serde_json::to_value(apps.details(&id).await?),
        (Some("versions"), None) => serde_json::to_value(AppVersions {
            versions: apps.versions(&id).await?,
        }),
        (Some("versions"), Some(v)) => {
            if !apps.exists(&id).await {
                return Err(HttpError(app_not_found(&id)));
            }
            serde_json::to_value(apps.version(&id, &v).await?)
        }
        (Some("tasks"), _) => {
            if !apps.exists(&id).await {
                return Err(HttpError(app_not_found(&id)));
            }
            let tasks: Vec<Task> = apps.tasks(Some(&id)).await;
            serde_json::to_value(tasks)
        }
        (Some(a), _) => {
            return Err(HttpError(ApiError::new(
                ErrorCode::NotFound,
                format!("GET is not allowed on /{a}; use POST"),
            )));
        }
    };
    v.map(Json)
        .map_err(|e| HttpError(ApiError::new(ErrorCode::Internal, e.to_string())))
}

async fn app_put(
    State(apps): State<Arc<Apps>>,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<ForceQuery>,
    body: Bytes,
) -> HttpResult<(StatusCode, Json<AppChanged>)> {
    let (raw, action, _) = split(&uri);
    if action.is_some() {
        return Err(HttpError(ApiError::new(
            ErrorCode::NotFound,
            "PUT is allowed on an app only",
        )));
    }
    let id = parse_id(&raw)?;
    let mut value = body_json(&body)?;
    if let Some(o) = value.as_object_mut() {
        match o.get("id").and_then(Value::as_str) {
            None => {
                o.insert("id".into(), id.as_str().into());
            }
            Some(given) if AppId::parse(given).ok().as_ref() == Some(&id) => {}
            Some(given) => {
                return Err(HttpError(ApiError::invalid(
                    "id",
                    format!("{given:?} does not match the app in the path, {id}"),
                )));
            }
        }
    }
    let (def, ignored) = AppDefinition::from_marathon(&value)?;
    Ok(answered(
        apps.change(
            &id,
            AppChange::Update(def),
            Locked::from_force(q.force),
            ignored,
        )
        .await?,
    ))
}

async fn app_delete(
    State(apps): State<Arc<Apps>>,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> HttpResult<Json<AppChanged>> {
    let (raw, action, _) = split(&uri);
    if action.is_some() {
        return Err(HttpError(ApiError::new(
            ErrorCode::NotFound,
            "DELETE is allowed on an app only",
        )));
    }
    let id = parse_id(&raw)?;
    Ok(Json(
        apps.change(
            &id,
            AppChange::Delete,
            Locked::from_force(q.force),
            Vec::new(),
        )
        .await?,
    ))
}

async fn app_post(
    State(apps): State<Arc<Apps>>,
    uri: OriginalUri,
    ApiQuery(q): ApiQuery<ForceQuery>,
    body: Bytes,
) -> HttpResult<Json<AppChanged>> {
    let (raw, action, _) = split(&uri);
    let id = parse_id(&raw)?;
    let empty = body.iter().all(u8::is_ascii_whitespace);
    let change = match action.as_deref() {
        Some("scale") => {
            let req: ScaleRequest = serde_json::from_slice(&body).map_err(|e| {
                HttpError(ApiError::invalid(
                    "instances",
                    format!("expected {{\"instances\": N}}: {e}"),
                ))
            })?;
            AppChange::Scale {
                instances: req.instances,
            }
        }
        Some("restart") => AppChange::Restart,
        Some("rollback") => {
            let req: RollbackRequest = if empty {
                RollbackRequest::default()
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    HttpError(ApiError::invalid(
                        "version",
                        format!("expected {{\"version\": V}}: {e}"),
                    ))
                })?
            };
            if !apps.exists(&id).await {
                return Err(HttpError(app_not_found(&id)));
            }
            AppChange::Rollback(apps.rollback_target(&id, req.version.as_deref()).await?)
        }
        _ => {
            return Err(HttpError(ApiError::new(
                ErrorCode::NotFound,
                "POST on an app takes /scale, /restart or /rollback",
            )));
        }
    };
    Ok(Json(
        apps.change(&id, change, Locked::from_force(q.force), Vec::new())
            .await?,
    ))
}

async fn deployments(State(apps): State<Arc<Apps>>) -> Json<Vec<Deployment>> {
    Json(apps.deployments().await)
}

async fn deployment(
    State(apps): State<Arc<Apps>>,
    ApiPath(id): ApiPath<String>,
) -> HttpResult<Json<Deployment>> {
    Ok(Json(apps.deployment(&DeploymentId(id)).await?))
}

async fn cancel_deployment(
    State(apps): State<Arc<Apps>>,
    ApiPath(id): ApiPath<String>,
) -> HttpResult<Json<DeploymentCancelled>> {
    let (deployment, rollback) = apps.cancel(&DeploymentId(id), Revert::AutoRevert).await?;
    Ok(Json(DeploymentCancelled {
        deployment,
        rollback,
    }))
}
