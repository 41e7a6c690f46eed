//! The JSON error body every Drover API returns with a 4xx or 5xx status.
//!
//! Peers of different versions read each other's errors during a rolling upgrade, and
//! one that meets a `code` it does not know cannot read the body at all. So a code
//! added later goes out as the general code older peers know (which has the same
//! HTTP status), with the specific one beside it in `reason`: `{"code": "conflict",
//! "reason": "already_exists", ...}`. A `reason` this build does not know is ignored.

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
    /// The request creates something under an id that is already taken: a launch that
    /// names a task id the master has (with another node or definition). A 409 sent as
    /// `conflict` with `reason: already_exists`; a `conflict` on field `id` without a
    /// reason, as masters said it before this code, reads as this code too.
    AlreadyExists,
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
            ErrorCode::Conflict | ErrorCode::AlreadyExists | ErrorCode::InsufficientResources => {
                409
            }
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// The body of every error response: `{"code": "...", "message": "...", "field": "..."}`,
/// plus `reason` for a code older peers do not know (see the module's notes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(into = "WireError", from = "WireError")]
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

/// [`ApiError`] as it is on the wire.
#[derive(Serialize, Deserialize)]
struct WireError {
    code: ErrorCode,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The `reason` that carries [`ErrorCode::AlreadyExists`].
const ALREADY_EXISTS: &str = "already_exists";

impl From<ApiError> for WireError {
    fn from(e: ApiError) -> Self {
        let (code, reason) = match e.code {
            ErrorCode::AlreadyExists => (ErrorCode::Conflict, Some(ALREADY_EXISTS.to_string())),
            code => (code, None),
        };
        WireError {
            code,
            message: e.message,
            field: e.field,
            reason,
        }
    }
}

impl From<WireError> for ApiError {
    fn from(w: WireError) -> Self {
        let code = match (w.code, w.reason.as_deref(), w.field.as_deref()) {
            (ErrorCode::Conflict, Some(ALREADY_EXISTS), _) => ErrorCode::AlreadyExists,
            // How masters said it before this code, for a scheduler newer than its master.
            (ErrorCode::Conflict, None, Some("id")) => ErrorCode::AlreadyExists,
            (code, _, _) => code,
        };
        ApiError {
            code,
            message: w.message,
            field: w.field,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `ApiError` and `ErrorCode` as builds from before `reason` decode them.
    #[derive(Debug, PartialEq, Deserialize)]
    struct OlderApiError {
        code: OlderErrorCode,
        message: String,
        #[serde(default)]
        field: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum OlderErrorCode {
        MalformedBody,
        InvalidField,
        NotFound,
        Conflict,
        InsufficientResources,
        PayloadTooLarge,
        Unauthorized,
        Internal,
        Unavailable,
    }

    fn taken() -> ApiError {
        ApiError {
            code: ErrorCode::AlreadyExists,
            message: "task id \"web.1\" is already taken".into(),
            field: Some("id".into()),
        }
    }

    #[test]
    fn already_exists_is_a_409_conflict_with_a_reason_on_the_wire() {
        let e = taken();
        assert_eq!(e.http_status(), 409);
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(
            wire,
            json!({"code": "conflict", "message": "task id \"web.1\" is already taken",
                   "field": "id", "reason": "already_exists"})
        );
        assert_eq!(serde_json::from_value::<ApiError>(wire).unwrap(), e);
    }

    #[test]
    fn an_older_peer_reads_already_exists_as_a_conflict_on_the_id() {
        let older: OlderApiError =
            serde_json::from_value(serde_json::to_value(taken()).unwrap()).unwrap();
        assert_eq!(older.code, OlderErrorCode::Conflict);
        assert_eq!(older.field.as_deref(), Some("id"));
        assert!(older.message.contains("already taken"));
    }

    #[test]
    fn an_older_masters_taken_id_reads_as_already_exists() {
        let older = json!({"code": "conflict", "message": "taken", "field": "id"});
        let e: ApiError = serde_json::from_value(older).unwrap();
        assert_eq!(e.code, ErrorCode::AlreadyExists);
        // Other conflicts stay conflicts.
        for other in [
            json!({"code": "conflict", "message": "draining", "field": "node"}),
            json!({"code": "conflict", "message": "done"}),
        ] {
            let e: ApiError = serde_json::from_value(other).unwrap();
            assert_eq!(e.code, ErrorCode::Conflict);
        }
    }

    #[test]
    fn an_unknown_reason_leaves_the_general_code() {
        let newer =
            json!({"code": "conflict", "message": "m", "field": "node", "reason": "future"});
        let e: ApiError = serde_json::from_value(newer).unwrap();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::Conflict, Some("node"))
        );
        let newer = json!({"code": "not_found", "message": "m", "reason": "already_exists"});
        let e: ApiError = serde_json::from_value(newer).unwrap();
        assert_eq!(e.code, ErrorCode::NotFound);
    }

    #[test]
    fn every_other_code_keeps_its_shape() {
        let e = ApiError::invalid("task.cpus", "must be positive");
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(
            wire,
            json!({"code": "invalid_field", "message": "task.cpus: must be positive", "field": "task.cpus"})
        );
        assert_eq!(serde_json::from_value::<ApiError>(wire).unwrap(), e);
        let e = ApiError::new(ErrorCode::Conflict, "node \"n1\" is draining");
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(
            wire,
            json!({"code": "conflict", "message": "node \"n1\" is draining"})
        );
        assert_eq!(serde_json::from_value::<ApiError>(wire).unwrap(), e);
    }
}
