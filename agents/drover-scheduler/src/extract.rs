//! Path and query extractors whose rejections are JSON [`ApiError`]s naming the
//! problem, like `drover_service::http::ApiJson` is for bodies.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use drover_api::{ApiError, ErrorCode};
use drover_service::http::HttpError;
use serde::de::DeserializeOwned;

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

/// The path parameters of a route as strings; a segment that does not decode (bad
/// percent-encoding, invalid UTF-8) is a 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

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
