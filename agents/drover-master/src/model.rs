//! The master's records: what it persists about a node, and how a node is shown.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use drover_api::node::{HostInfo, Node, NodeState};
use drover_api::task::Task;
use drover_api::{Capability, PortRange, Resources};
use serde::{Deserialize, Serialize};

/// Store key prefix of node records.
pub const NODE_PREFIX: &str = "nodes/";
/// Store key prefix of task records.
pub const TASK_PREFIX: &str = "tasks/";

/// The store key of a node.
pub fn node_key(name: &str) -> String {
    format!("{NODE_PREFIX}{name}")
}

/// The store key of a task.
pub fn task_key(id: &str) -> String {
    format!("{TASK_PREFIX}{id}")
}

/// What the master keeps about a node, in memory and in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// The node's name.
    pub name: String,
    /// The agent's API base URL.
    pub address: String,
    /// The agent's version.
    pub version: String,
    /// Operator-set attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// What the agent can run besides processes.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Resources offered to tasks (after the reservation).
    pub total: Resources,
    /// Resources held back for the host.
    pub reserved: Resources,
    /// Host ports for tasks.
    pub ports: PortRange,
    /// Most tasks the node runs at once, as its agent last said; `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u32>,
    /// Host facts: as of the registration in the store, as of the latest heartbeat in memory.
    pub host: HostInfo,
    /// Set by an operator's drain, cleared by activate.
    #[serde(default)]
    pub draining: bool,
    /// Set when the node missed its heartbeats, cleared when it is heard from again.
    #[serde(default)]
    pub unreachable: bool,
    /// When the agent first registered.
    pub registered_at: DateTime<Utc>,
    /// When the master last heard from it.
    pub last_heartbeat_at: DateTime<Utc>,
}

impl NodeRecord {
    /// Ready, draining or unreachable; unreachable wins over draining.
    pub fn state(&self) -> NodeState {
        if self.unreachable {
            NodeState::Unreachable
        } else if self.draining {
            NodeState::Draining
        } else {
            NodeState::Ready
        }
    }

    /// Whether the node has the capability.
    pub fn can(&self, capability: &Capability) -> bool {
        self.capabilities.contains(capability)
    }

    /// The public view, given the node's tasks (any state; only active ones count).
    pub fn view<'a>(&self, tasks: impl IntoIterator<Item = &'a Task>) -> Node {
        let mut allocated = Resources::default();
        let mut ports_allocated = 0;
        let mut active_tasks = 0;
        for t in tasks.into_iter().filter(|t| t.state.is_active()) {
            allocated = allocated.plus(t.spec.definition.resources);
            ports_allocated += t
                .spec
                .host_ports
                .iter()
                .filter(|p| self.ports.contains(**p))
                .count();
            active_tasks += 1;
        }
        Node {
            name: self.name.clone(),
            state: self.state(),
            draining: self.draining,
            address: self.address.clone(),
            version: self.version.clone(),
            attributes: self.attributes.clone(),
            capabilities: self.capabilities.clone(),
            total: self.total,
            reserved: self.reserved,
            allocated,
            free: self.total.minus(allocated),
            ports: self.ports,
            ports_allocated,
            host: self.host.clone(),
            active_tasks,
            max_tasks: self.max_tasks,
            registered_at: self.registered_at,
            last_heartbeat_at: self.last_heartbeat_at,
        }
    }
}
