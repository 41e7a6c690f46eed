//! The agent ⇄ master protocol. The agent opens every connection:
//!
//! 1. `POST /v1/agents/register` once at start (and whenever the master asks for it);
//! 2. `POST /v1/agents/{name}/heartbeat` every interval and at once on any task change,
//!    carrying the state of every task it knows;
//! 3. `GET /v1/agents/{name}/assignments?after=REV` as a long poll: the master answers
//!    as soon as the node's assignments differ from revision `REV`, so launches and kills
//!    reach the agent without waiting for a heartbeat. The answer is the whole list of
//!    tasks the master wants on the node; the agent reconciles against it.
//!
//! Every master belongs to one cluster, named by a [`ClusterId`] created when its store
//! was initialised. An agent remembers the cluster it first joined and refuses a master
//! of another (or of none): it keeps its tasks running and applies none of that master's
//! assignments. A master in turn refuses the registration of an agent that says it
//! belongs to another cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::node::{Capability, HostInfo};
use crate::task::{TaskGoal, TaskReport, TaskSpec};
use crate::{PortRange, Resources};

/// A cluster's identity: a UUID made once, when the master's store was initialised, and
/// remembered by every agent that joined the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterId(pub String);

impl ClusterId {
    /// A new random id.
    pub fn generate() -> ClusterId {
        ClusterId(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses an id as written in a file or sent by a peer: a UUID, surrounding
    /// whitespace ignored.
    pub fn parse(text: &str) -> Result<ClusterId, String> {
        let text = text.trim();
        uuid::Uuid::parse_str(text)
            .map(|u| ClusterId(u.to_string()))
            .map_err(|e| format!("{text:?} is not a cluster id (a UUID): {e}"))
    }
}

impl std::fmt::Display for ClusterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `GET /v1/cluster`: the cluster this master serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// The cluster's id.
    pub id: ClusterId,
    /// When the cluster was created (its store initialised); `None` for a cluster whose
    /// store was made by a version of Drover from before cluster ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

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
    pub capabilities: Vec<Capability>,
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
    /// The spec of every active task in `tasks`, so that a master that does not know one
    /// (its store was rolled back or lost) adopts it instead of having it killed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specs: Vec<TaskSpec>,
    /// The cluster the agent joined before, if any: a master of another cluster refuses
    /// the registration. `None` for an agent that has joined no cluster yet (or was told
    /// to join a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<ClusterId>,
}

/// The master's answer to a registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// The master's cluster (`None` from a master older than cluster ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<ClusterId>,
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
    /// The master's cluster (`None` from a master older than cluster ids): an agent
    /// applies the answer only when it is the cluster it joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<ClusterId>,
    /// Tasks to run or kill. A task the agent runs that is in neither list is left
    /// running: the master adopts it from the agent's registration, or lists it to kill.
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
