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

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` when the server can serve.
    pub status: String,
}
