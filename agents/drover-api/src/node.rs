//! What an agent says about its host, and the master's view of a node.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{PortRange, Resources};

/// Facts about an agent's host, read with sysinfo at start and refreshed periodically.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostInfo {
    /// The host's name.
    pub hostname: String,
    /// Operating system name and version (`Debian GNU/Linux 12`).
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// Logical CPUs.
    pub cpus: u32,
    /// Total memory in MiB.
    pub mem_total_mb: f64,
    /// Available memory in MiB.
    pub mem_available_mb: f64,
    /// Total size of the work directory's filesystem in MiB.
    pub disk_total_mb: f64,
    /// Available space on the work directory's filesystem in MiB.
    pub disk_available_mb: f64,
    /// 1, 5 and 15 minute load averages.
    pub load_avg: [f64; 3],
    /// Host-wide CPU use, percent of all cores (0-100).
    pub cpu_usage_percent: f64,
}

/// Something an agent can run besides processes, as it advertises in its registration
/// and the master shows on its node. On the wire each is a lowercase string (`"docker"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Capability {
    /// A reachable Docker Engine: the node runs tasks that name a container.
    Docker,
    /// A capability this build does not know (a newer agent's), kept as it was sent so
    /// an older master still takes the registration and shows it. Parsing never yields
    /// this for a name listed above.
    Other(String),
}

impl Capability {
    /// The name on the wire and in the CLI.
    pub fn as_str(&self) -> &str {
        match self {
            Capability::Docker => "docker",
            Capability::Other(name) => name,
        }
    }
}

impl From<String> for Capability {
    /// Known names match in any case, as masters always compared them.
    fn from(name: String) -> Self {
        if name.eq_ignore_ascii_case("docker") {
            Capability::Docker
        } else {
            Capability::Other(name)
        }
    }
}

impl From<Capability> for String {
    fn from(capability: Capability) -> Self {
        match capability {
            Capability::Other(name) => name,
            known => known.as_str().to_string(),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a node takes new tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Heartbeating and accepting placements.
    Ready,
    /// Heartbeating but refusing new placements; its tasks keep running.
    Draining,
    /// Missed its heartbeats past the timeout; its tasks are lost.
    Unreachable,
}

impl NodeState {
    /// The lowercase name used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Draining => "draining",
            NodeState::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The master's view of a node (`GET /v1/nodes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// The node's name (unique in the cluster).
    pub name: String,
    /// Ready, draining or unreachable.
    pub state: NodeState,
    /// Set by an operator's drain; kept while the node is unreachable.
    pub draining: bool,
    /// The agent's API base URL, used to proxy log reads.
    pub address: String,
    /// The agent's version.
    pub version: String,
    /// Operator-set attributes (`rack=r1`), used by constraints.
    pub attributes: BTreeMap<String, String>,
    /// What the agent can run besides processes (e.g. `docker`).
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Resources offered to tasks: the host's totals less the reserved share.
    pub total: Resources,
    /// Resources held back for the host's own use.
    pub reserved: Resources,
    /// Sum of the requests of the node's active tasks.
    pub allocated: Resources,
    /// `total - allocated`.
    pub free: Resources,
    /// Host ports handed to tasks.
    pub ports: PortRange,
    /// How many of those ports active tasks hold.
    pub ports_allocated: usize,
    /// Live host facts and usage, as last reported.
    pub host: HostInfo,
    /// Active tasks on the node.
    pub active_tasks: usize,
    /// Most tasks the node runs at once; `None`: no limit set by its agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tasks: Option<u32>,
    /// When the agent first registered.
    pub registered_at: DateTime<Utc>,
    /// When the master last heard from it.
    pub last_heartbeat_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capabilities_are_the_strings_they_always_were() {
        let caps = vec![Capability::Docker, Capability::Other("gpu".into())];
        let wire = serde_json::to_value(&caps).unwrap();
        assert_eq!(wire, json!(["docker", "gpu"]));
        let back: Vec<Capability> = serde_json::from_value(wire).unwrap();
        assert_eq!(back, caps);
        assert_eq!(Capability::Docker.to_string(), "docker");
    }

    #[test]
    fn an_unknown_capability_is_kept_and_a_known_one_matches_in_any_case() {
        let caps: Vec<Capability> =
            serde_json::from_value(json!(["DOCKER", "Docker", "wasm", ""])).unwrap();
        assert_eq!(
            caps,
            vec![
                Capability::Docker,
                Capability::Docker,
                Capability::Other("wasm".into()),
                Capability::Other(String::new()),
            ]
        );
        assert_eq!(serde_json::to_value(&caps[2]).unwrap(), json!("wasm"));
        // Not a string: the registration is refused as before.
        assert!(serde_json::from_value::<Vec<Capability>>(json!([1])).is_err());
    }
}
