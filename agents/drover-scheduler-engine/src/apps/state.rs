//! What the server keeps per app between ticks, and Marathon-style version stamps.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use drover_api::app::{AppDefinition, AppId};
use drover_api::deployment::Backoff;
use drover_api::task::TaskId;
use serde::{Deserialize, Serialize};

/// One app as the server persists it: the definition in force and the engine's memory.
///
/// `definition.version` always equals `version`; the server also keeps every version's
/// definition (for `GET /v2/apps/{id}/versions` and rollbacks) under `(id, version)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppState {
    /// The definition new instances are launched from.
    pub definition: AppDefinition,
    /// The version instances carry in their `VERSION` label: an RFC 3339 timestamp with
    /// milliseconds (`2026-01-01T12:00:00.000Z`), Marathon-style. A scale keeps it (no
    /// instance is replaced); create, update and restart stamp a new one; a rollback
    /// takes the earlier version's own.
    pub version: String,
    /// The crash-loop backoff of this version.
    #[serde(default)]
    pub backoff: Backoff,
    /// The last version that ran with every wanted instance ready and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy_version: Option<String>,
    /// A delete deployment is stopping the app's instances; the app goes once they end.
    #[serde(default)]
    pub deleting: bool,
    /// Deployments begun for this app so far (numbers deployment ids).
    #[serde(default)]
    pub deployments_begun: u64,
    /// Launches decided (and persisted) whose task the master has not shown yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_launches: Vec<PendingLaunch>,
    /// When the app was created.
    pub created_at: DateTime<Utc>,
    /// When the app last changed by request (not by the engine's own bookkeeping).
    pub updated_at: DateTime<Utc>,
}

impl AppState {
    /// The app's id.
    pub fn id(&self) -> &AppId {
        &self.definition.id
    }
}

/// One instance launch the engine decided, kept with the app until the master's tasks
/// show its id. The server persists it before it sends the launch, so whatever dies
/// before the answer is read (the master, the scheduler, the connection), the launch is
/// sent again under the same task id, which the master answers with the task it already
/// has; meanwhile the instance counts as starting and no second one is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingLaunch {
    /// The task id the engine chose.
    pub task_id: TaskId,
    /// The node it was placed on (a repeat must go to the same node).
    pub node: String,
    /// The app version it runs (its definition is the stored one of that version).
    pub version: String,
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
}

/// The text form of a version stamp.
pub fn format_version(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A version stamp parsed back, if it is one.
pub fn parse_version(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The version a change made at `now` gets: `now`, or one millisecond after `previous`
/// when `now` is not later (two changes in the same millisecond, or a clock step back),
/// so an app's versions are distinct and increase.
pub fn next_version(now: DateTime<Utc>, previous: Option<&str>) -> String {
    let now = truncate_millis(now);
    match previous.and_then(parse_version) {
        Some(p) if p >= now => format_version(p + TimeDelta::milliseconds(1)),
        _ => format_version(now),
    }
}

fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    let ms = t.timestamp_millis();
    DateTime::from_timestamp_millis(ms).unwrap_or(t)
}

/// Seconds as a time span, saturating at about 100 years (and 0 for NaN or negatives).
pub(crate) fn seconds(s: f64) -> TimeDelta {
    if !s.is_finite() || s <= 0.0 {
        return if s.is_infinite() && s > 0.0 {
            TimeDelta::days(36_500)
        } else {
            TimeDelta::zero()
        };
    }
    let ms = (s * 1000.0).min(36_500.0 * 86_400_000.0);
    // The bound above keeps the cast in range.
    #[allow(clippy::cast_possible_truncation)]
    TimeDelta::milliseconds(ms.round() as i64)
}
