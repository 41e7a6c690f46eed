//! Chronos's endpoints, under both `/scheduler/...` (Chronos 2.x, which `init-cluster`
//! style scripts use) and `/v1/scheduler/...`, with Chronos's answer shapes.
//!
//! | route | what | answer |
//! | --- | --- | --- |
//! | `POST /iso8601` | create or update a scheduled job | 204 |
//! | `POST /dependency` | create or update a dependent job | 204 |
//! | `GET /jobs` | every job | a JSON array of job objects, with Chronos's `successCount`, `errorCount`, `lastSuccess`, `lastError` |
//! | `PUT /job/{name}?arguments=...` | start a run now | 204 |
//! | `PUT /job/success/{name}` | mark the job's run successful (children fire) | 204 |
//! | `DELETE /job/{name}` | delete the job | 204 |
//! | `DELETE /task/kill/{name}` | kill the job's running tasks | 204 |
//! | `GET /job/stat/{name}` | duration statistics | `{"histogram": {...}, ...}`, seconds |
//! | `GET /graph/dot` | the parent graph | Graphviz DOT |
//!
//! Fields Drover keeps but does not act on are logged and named in the
//! `X-Drover-Ignored-Fields` header of the 204 (Chronos's 204 has no body). Errors are
//! Drover's JSON errors naming the field, where Chronos answered a bare 400.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use drover_api::ErrorCode;
use drover_service::http::{ApiPath, ApiQuery, HttpResult};
use serde_json::{Value, json};

use crate::engine::jobs::Command;
use crate::engine::jobs::stats::percentile;
use crate::http::jobs::json_body;
use crate::runtime::jobs::{Jobs, PutKind, graph_dot};

/// The header that names ignored fields on a Chronos 204.
pub const IGNORED_FIELDS_HEADER: &str = "x-drover-ignored-fields";

/// Chronos's routes under both prefixes.
pub fn router(jobs: Arc<Jobs>) -> Router {
    let routes = Router::new()
        .route("/iso8601", post(iso8601))
        .route("/dependency", post(dependency))
        .route("/jobs", get(list))
        .route("/job/{name}", put(start).delete(remove))
        .route("/job/success/{name}", put(success))
        .route("/task/kill/{name}", delete(kill))
        .route("/job/stat/{name}", get(stat))
        .route("/graph/dot", get(dot))
        .with_state(jobs);
    Router::new()
        .nest("/scheduler", routes.clone())
        .nest("/v1/scheduler", routes)
}

fn no_content(ignored: &[String]) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if !ignored.is_empty()
        && let Ok(v) = HeaderValue::from_str(&ignored.join(","))
    {
        resp.headers_mut()
            .insert(HeaderName::from_static(IGNORED_FIELDS_HEADER), v);
    }
    resp
}

async fn iso8601(State(jobs): State<Arc<Jobs>>, body: Bytes) -> HttpResult<Response> {
    let value = json_body(&body)?;
    let o = jobs.put_job(&value, PutKind::Scheduled).await?;
    Ok(no_content(&o.ignored))
}

async fn dependency(State(jobs): State<Arc<Jobs>>, body: Bytes) -> HttpResult<Response> {
    let value = json_body(&body)?;
    let o = jobs.put_job(&value, PutKind::Dependent).await?;
    Ok(no_content(&o.ignored))
}

/// A job as Chronos lists it: the definition plus its run counters.
async fn list(State(jobs): State<Arc<Jobs>>) -> Json<Vec<Value>> {
    let out = jobs
        .list()
        .await
        .into_iter()
        .map(|d| {
            let mut v = serde_json::to_value(&d.job).unwrap_or(Value::Null);
            if let Some(obj) = v.as_object_mut() {
                let s = &d.status.stats;
                let stamp = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default()
                };
                obj.insert("successCount".into(), json!(s.success_count));
                obj.insert("errorCount".into(), json!(s.error_count));
                obj.insert("lastSuccess".into(), json!(stamp(s.last_success)));
                obj.insert("lastError".into(), json!(stamp(s.last_error)));
                obj.insert("state".into(), json!(d.status.state.as_str()));
            }
            v
        })
        .collect();
    Json(out)
}

/// Chronos's `arguments` query parameter: each value split on whitespace.
fn arguments(query: &[(String, String)]) -> Vec<String> {
    query
        .iter()
        .filter(|(k, _)| k == "arguments")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

async fn start(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<Vec<(String, String)>>,
) -> HttpResult<Response> {
    jobs.command(Command::RunNow {
        job: name,
        arguments: arguments(&query),
    })
    .await?;
    Ok(no_content(&[]))
}

async fn success(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Response> {
    jobs.command(Command::MarkSuccess { job: name }).await?;
    Ok(no_content(&[]))
}

async fn remove(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Response> {
    jobs.delete_job(&name).await?;
    Ok(no_content(&[]))
}

async fn kill(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Response> {
    match jobs.command(Command::Kill { job: name }).await {
        Ok(_) => Ok(no_content(&[])),
        // Chronos answers a kill of a job with nothing running without complaint.
        Err(e) if e.code == ErrorCode::Conflict => Ok(no_content(&[])),
        Err(e) => Err(e.into()),
    }
}

/// Chronos's histogram of run durations (in seconds here; Chronos's were milliseconds
/// of its Dropwizard histogram), plus Drover's counters.
async fn stat(
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> HttpResult<Json<Value>> {
    let details = jobs.details(&name, 0).await?;
    let mut sorted = jobs.recent_durations(&name).await.unwrap_or_default();
    sorted.retain(|v| v.is_finite());
    sorted.sort_by(f64::total_cmp);
    let s = &details.status.stats;
    let histogram = match &s.durations {
        Some(d) => json!({
            "count": d.count,
            "mean": d.mean,
            "median": d.median,
            "75thPercentile": d.p75,
            "95thPercentile": d.p95,
            "98thPercentile": percentile(&sorted, 0.98),
            "99thPercentile": d.p99,
        }),
        None => json!({"count": 0}),
    };
    Ok(Json(json!({
        "histogram": histogram,
        "unit": "seconds",
        "successCount": s.success_count,
        "errorCount": s.error_count,
        "skippedCount": s.skipped_count,
        "killedCount": s.killed_count,
    })))
}

async fn dot(State(jobs): State<Arc<Jobs>>) -> Response {
    let defs = jobs.definitions().await;
    (
        [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
        graph_dot(&defs),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_on_whitespace() {
        let q = vec![
            ("arguments".to_string(), "-v --date 2026".to_string()),
            ("x".into(), "y".into()),
        ];
        assert_eq!(arguments(&q), vec!["-v", "--date", "2026"]);
    }
}
