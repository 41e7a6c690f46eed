//! JSON errors, body, path and query extractors whose rejections name the problem, the
//! body-size limit, and the routes every binary serves: `/health`, `/v1/version`,
//! `/metrics`.

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use drover_api::meta::{Health, VersionInfo};
use drover_api::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

/// Largest request body any Drover server accepts (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An [`ApiError`] as an HTTP response: its status and its JSON body.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

/// Result type for handlers.
pub type HttpResult<T> = Result<T, HttpError>;

/// Like `axum::Json`, but a bad body becomes a JSON [`ApiError`] naming the problem
/// (and the field path serde reports), never a plain-text rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(HttpError(json_rejection(rejection))),
        }
    }
}

/// A query string decoded as `T`; a bad one is a 400 `invalid_field`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => {
                let text = e.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                Err(HttpError(ApiError::new(
                    ErrorCode::InvalidField,
                    format!("invalid query string: {text}"),
                )))
            }
        }
    }
}

/// The path parameters of a route (by default the single one, as a string); a segment
/// that does not decode (bad percent-encoding, invalid UTF-8) is a 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T = String>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(HttpError(ApiError::new(
                ErrorCode::InvalidField,
                format!("invalid path: {}", e.body_text()),
            ))),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        );
    }
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::MalformedBody,
            "expected a JSON body with content-type application/json",
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::new(ErrorCode::InvalidField, body_text(&e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::new(ErrorCode::MalformedBody, body_text(&e.body_text()))
        }
        other => ApiError::new(ErrorCode::MalformedBody, body_text(&other.body_text())),
    }
}

/// axum's rejection texts start with a capitalised preamble; keep the useful part lowercase.
fn body_text(s: &str) -> String {
    let s = s
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(s);
    let s = s
        .strip_prefix("Failed to parse the request body as JSON: ")
        .unwrap_or(s);
    format!("invalid JSON body: {s}")
}

/// Builds a router with the shared routes, the body limit, panic catching, JSON 404s,
/// and (when `token` is set) the bearer-token check. `health` says whether the server
/// can do its work (`Err` with the cause, say a store that cannot write): `/health`
/// answers 200 `ok`, or 503 `unavailable` with the cause, so supervisors and rollouts
/// that wait on it see a server that is up but cannot serve.
pub fn finish_router(
    api: Router,
    name: &'static str,
    health: impl Fn() -> Result<(), String> + Clone + Send + Sync + 'static,
    metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
    token: Option<String>,
) -> Router {
    let router = api
        .route(
            "/health",
            get(move || {
                let answer = health();
                async move { health_response(answer) }
            }),
        )
        .route(
            "/v1/version",
            get(move || async move {
                axum::Json(VersionInfo {
                    name: name.to_string(),
                    version: drover_api::VERSION.to_string(),
                })
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        metrics(),
                    )
                }
            }),
        )
        .fallback(|req: Request| async move {
            HttpError(ApiError::new(
                ErrorCode::NotFound,
                format!("no route for {} {}", req.method(), req.uri().path()),
            ))
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            HttpError(ApiError::new(
                ErrorCode::Internal,
                "internal error (the server caught a panic)",
            ))
            .into_response()
        }));
    crate::auth::require_token(router, token)
}

/// `/health`'s answer to what the server's health check said.
fn health_response(health: Result<(), String>) -> Response {
    match health {
        Ok(()) => axum::Json(Health::ok()).into_response(),
        Err(message) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health::unavailable(message)),
        )
            .into_response(),
    }
}

/// A server that is always healthy once it serves (for [`finish_router`]).
pub fn always_healthy() -> Result<(), String> {
    Ok(())
}

/// A Prometheus text-format writer for the few gauges each binary exports.
#[derive(Debug, Default)]
pub struct Metrics(String);

impl Metrics {
    /// Adds unlabelled gauges, one per `(name, help, value)` row.
    pub fn gauges(&mut self, rows: &[(&str, &str, f64)]) -> &mut Self {
        for (name, help, value) in rows {
            self.gauge(name, help, &[], *value);
        }
        self
    }

    /// Adds a gauge with optional labels.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> &mut Self {
        use std::fmt::Write;
        if !self.0.contains(&format!("# TYPE {name} ")) {
            let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge");
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "'")))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
        self
    }

    /// The rendered text.
    pub fn render(self) -> String {
        self.0
    }
}

/// Serves `router` on `listener` under the connection `limits` until `shutdown`
/// resolves; see [`crate::accept::serve`]. Under a systemd notify unit it says when it
/// is ready and stopping, and keeps the unit's watchdog fed while `/health` answers
/// (see [`crate::systemd`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: crate::connections::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watchdog = crate::systemd::watchdog_interval()
        .map(|every| tokio::spawn(crate::systemd::watchdog(router.clone(), every)));
    crate::systemd::notify("READY=1");
    let served = crate::accept::serve(listener, router, limits, shutdown).await;
    crate::systemd::notify("STOPPING=1");
    if let Some(w) = watchdog {
        w.abort();
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Body1 {
        n: u32,
    }

    async fn call(app: &Router, body: &'static str) -> (u16, ApiError) {
        let req = Request::post("/x")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn bad_bodies_get_json_errors() {
        let app = finish_router(
            Router::new().route("/x", post(|ApiJson(_b): ApiJson<Body1>| async { "ok" })),
            "t",
            always_healthy,
            String::new,
            None,
        );
        let (s, e) = call(&app, "{").await;
        assert_eq!((s, e.code), (400, ErrorCode::MalformedBody));
        let (s, e) = call(&app, r#"{"n": -1}"#).await;
        assert_eq!((s, e.code), (400, ErrorCode::InvalidField));
        assert!(e.message.contains("n"), "{}", e.message);
        let big: &'static str = Box::leak(
            format!(
                "{{\"n\": 1, \"pad\": \"{}\"}}",
                "x".repeat(2 * MAX_BODY_BYTES)
            )
            .into_boxed_str(),
        );
        let (s, e) = call(&app, big).await;
        assert_eq!((s, e.code), (413, ErrorCode::PayloadTooLarge));
    }

    #[tokio::test]
    async fn health_answers_503_with_the_cause_when_the_server_cannot_work() {
        async fn health(app: Router) -> (u16, Health) {
            let req = Request::get("/health").body(Body::empty()).unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, serde_json::from_slice(&bytes).unwrap())
        }
        let up = finish_router(Router::new(), "t", always_healthy, String::new, None);
        assert_eq!(health(up).await, (200, Health::ok()));
        let down = finish_router(
            Router::new(),
            "t",
            || Err("the store cannot write (disk full)".to_string()),
            String::new,
            Some("secret".into()),
        );
        let (status, body) = health(down).await;
        assert_eq!((status, body.status.as_str()), (503, "unavailable"));
        assert_eq!(
            body.message.as_deref(),
            Some("the store cannot write (disk full)")
        );
    }

    #[test]
    fn metrics_render() {
        let mut m = Metrics::default();
        m.gauge("drover_nodes", "nodes", &[("state", "ready")], 2.0)
            .gauge("drover_nodes", "nodes", &[("state", "draining")], 0.0);
        let text = m.render();
        assert_eq!(text.matches("# TYPE drover_nodes gauge").count(), 1);
        assert!(text.contains("drover_nodes{state=\"ready\"} 2"));
    }
}
