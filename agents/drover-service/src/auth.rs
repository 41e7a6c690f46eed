//! The bearer-token check: with a token configured, every request except `GET /health`
//! must carry `Authorization: Bearer <token>`, or gets 401 with a JSON error.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_api::{ApiError, ErrorCode};

use crate::http::HttpError;

/// Adds the token check to `router` when `token` is set.
pub fn require_token(router: axum::Router, token: Option<String>) -> axum::Router {
    match token {
        None => router,
        Some(token) => {
            let token: Arc<str> = token.into();
            router.layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let token = token.clone();
                    async move { check(req, next, &token).await }
                },
            ))
        }
    }
}

async fn check(req: Request, next: Next, token: &str) -> Response {
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => {
            HttpError(ApiError::new(ErrorCode::Unauthorized, "wrong bearer token")).into_response()
        }
        None => HttpError(ApiError::new(
            ErrorCode::Unauthorized,
            "this server requires a bearer token",
        ))
        .into_response(),
    }
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn token_is_required_except_for_health() {
        let app = require_token(
            axum::Router::new()
                .route("/health", get(|| async { "ok" }))
                .route("/v1/x", get(|| async { "x" })),
            Some("s3cret".into()),
        );
        let status = |req: axum::http::Request<Body>| {
            let app = app.clone();
            async move { app.oneshot(req).await.unwrap().status().as_u16() }
        };
        assert_eq!(
            status(Request::get("/health").body(Body::empty()).unwrap()).await,
            200
        );
        assert_eq!(
            status(Request::get("/v1/x").body(Body::empty()).unwrap()).await,
            401
        );
        let wrong = Request::get("/v1/x")
            .header("authorization", "Bearer nope")
            .body(Body::empty())
            .unwrap();
        assert_eq!(status(wrong).await, 401);
        let right = Request::get("/v1/x")
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        assert_eq!(status(right).await, 200);
    }
}
