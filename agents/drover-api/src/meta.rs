//! Version and health documents served by every binary.

use serde::{Deserialize, Serialize};

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Which binary answered (`drover-master`).
    pub name: String,
    /// Its version.
    pub version: String,
}

/// `GET /health`: 200 with `ok`, or 503 with `unavailable` and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` when the server can do its work, `unavailable` when it is up but cannot
    /// (its store cannot write, say).
    pub status: String,
    /// Why it is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Health {
    /// A server that can do its work.
    pub fn ok() -> Health {
        Health {
            status: "ok".into(),
            message: None,
        }
    }

    /// A server that is up but cannot do its work, and why.
    pub fn unavailable(message: impl Into<String>) -> Health {
        Health {
            status: "unavailable".into(),
            message: Some(message.into()),
        }
    }
}
