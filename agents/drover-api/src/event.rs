//! The master's event stream (`GET /v1/events`, Server-Sent Events).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::node::NodeState;
use crate::task::{TaskId, TaskState};

/// One event; sent as an SSE `data:` line with `event:` set to the kind's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Increasing sequence number within one master process.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A task changed state.
    TaskState {
        /// The task.
        task: TaskId,
        /// Its node.
        node: String,
        /// The state before, absent for a new task.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<TaskState>,
        /// The state now.
        to: TaskState,
        /// Why, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A kill was requested for a task.
    TaskKillRequested {
        /// The task.
        task: TaskId,
        /// Its node.
        node: String,
    },
    /// An agent registered (first time or again).
    NodeRegistered {
        /// The node.
        node: String,
        /// The agent's version.
        version: String,
    },
    /// A node changed state.
    NodeState {
        /// The node.
        node: String,
        /// The state before.
        from: NodeState,
        /// The state now.
        to: NodeState,
    },
}

impl EventKind {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::TaskState { .. } => "task_state",
            EventKind::TaskKillRequested { .. } => "task_kill_requested",
            EventKind::NodeRegistered { .. } => "node_registered",
            EventKind::NodeState { .. } => "node_state",
        }
    }
}
