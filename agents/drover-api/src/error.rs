//! The JSON error body every Drover API returns with a 4xx or 5xx status.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes. The HTTP status is chosen from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON or does not match the expected shape.
    MalformedBody,
    /// A field has a value outside what is allowed.
    InvalidField,
    /// The named resource (node, task, app, job) does not exist.
    NotFound,
    /// The request conflicts with current state (e.g. placement on a draining node).
    Conflict,
    /// The request does not fit the node's free resources.
    InsufficientResources,
    /// The body exceeds the server's size limit.
    PayloadTooLarge,
    /// No or a wrong bearer token.
    Unauthorized,
    /// The server failed; the message says where.
    Internal,
    /// The server is not ready to serve this request yet.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status code that goes with this error code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedBody | ErrorCode::InvalidField => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::InsufficientResources => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// The body of every error response: `{"code": "...", "message": "...", "field": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// A human-readable, lowercase explanation that names the problem.
    pub message: String,
    /// The request field at fault, as a JSON path (`task.resources.cpus`), if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// An `invalid_field` error naming the field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError {
            code: ErrorCode::InvalidField,
            message: format!("{field}: {message}"),
            field: Some(field),
        }
    }

    /// A `not_found` error for a kind of thing and its id.
    pub fn not_found(kind: &str, id: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{kind} {id:?} not found"))
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

/// How an error message names the JSON value it got: `a string`, `null`, ...
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
