//! The agent ⇄ master protocol. The agent opens every connection:
//!
//! 1. `POST /v1/agents/register` once at start (and whenever the master asks for it);
//! 2. `POST /v1/agents/{name}/heartbeat` every interval and at once on any task change,
//!    carrying the state of every task it knows;
//! 3. `GET /v1/agents/{name}/assignments?after=REV` as a long poll: the master answers
//!    as soon as the node's assignments differ from revision `REV`, so launches and kills
//!    reach the agent without waiting for a heartbeat. The answer is the whole list of
//!    tasks the master wants on the node; the agent reconciles against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::node::HostInfo;
use crate::task::{TaskGoal, TaskReport, TaskSpec};
use crate::{PortRange, Resources};

/// What an agent sends when it (re-)registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The node's name, unique in the cluster.
    pub name: String,
    /// The agent's API base URL (`http://host:5051`).
    pub address: String,
    /// The agent's version.
    pub version: String,
    /// Operator-set attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// What it can run besides processes.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Resources offered to tasks (host totals less `reserved`).
    pub total: Resources,
    /// Resources held back for the host.
    pub reserved: Resources,
    /// Host ports for tasks.
    pub ports: PortRange,
    /// Host facts.
    pub host: HostInfo,
    /// Most tasks the node runs at once (its agent's `--max-tasks`, by default what its
    /// process limit allows); `None` from agents that set no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u32>,
    /// Every task the agent runs or has finished and not yet reported.
    #[serde(default)]
    pub tasks: Vec<TaskReport>,
}

/// The master's answer to a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

/// A periodic heartbeat, also sent at once on any task change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// Live host facts and usage.
    pub host: HostInfo,
    /// Every task the agent knows.
    pub tasks: Vec<TaskReport>,
}

/// The master's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// False when the master does not know this node (it must register again).
    pub registered: bool,
}

/// One task the master wants on a node, and what it wants of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAssignment {
    /// The task.
    pub spec: TaskSpec,
    /// Run it, or kill it.
    pub goal: TaskGoal,
}

/// Everything the master wants on a node (`GET /v1/agents/{name}/assignments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAssignments {
    /// Opaque token; pass it back as `after` to wait for the next change.
    pub revision: String,
    /// Tasks to run or kill. A task the agent runs that is in neither list is unknown to
    /// the master and is killed.
    pub tasks: Vec<TaskAssignment>,
}

/// Query of the assignments long poll.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentsQuery {
    /// Answer only once the revision differs from this one (or the wait ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Longest wait in seconds (default 30, at most 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}
