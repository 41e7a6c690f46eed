//! From an app definition to the [`TaskDefinition`] one instance runs.

use super::{
    AppDefinition, AppHealthProtocol, DEFAULT_KILL_GRACE_SECONDS, HostPort, NetworkMode,
    PortProtocol,
};
use crate::task::{HealthCheck, HealthProtocol, PortRequest, TaskDefinition, labels};

/// What one instance of an app runs, and what of the app the task model cannot carry yet.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskConversion {
    /// The task definition for one instance.
    pub task: TaskDefinition,
    /// App fields (JSON paths, with a reason) that the task does not carry: e.g. `fetch`
    /// (no fetcher yet) or an HTTPS health check run as a TCP check.
    pub not_carried: Vec<String>,
}

impl AppDefinition {
    /// The task definition of one instance: name = app id, labels with the app id and
    /// version, ports with names, health checks mapped to the agent's protocols, kill grace
    /// period and the normalised container. An app without a version gets the version label
    /// `unversioned`; the scheduler stamps a version before it launches anything.
    pub fn to_task_definition(&self) -> TaskConversion {
        let mut not_carried = Vec::new();
        let mut labels_out = self.labels.clone();
        labels_out.insert(labels::APP_ID.to_string(), self.id.to_string());
        labels_out.insert(
            labels::VERSION.to_string(),
            self.version
                .clone()
                .unwrap_or_else(|| "unversioned".to_string()),
        );

        let ports: Vec<PortRequest> = host_ports(self)
            .into_iter()
            .map(|p| PortRequest {
                name: p.name,
                port: p.port,
            })
            .collect();

        // Health-check port indices address the mappings (or definitions); the task's ports
        // are only those with a host port, so translate the index.
        let index_map = health_index_map(self);
        let mut health_checks = Vec::new();
        for (i, hc) in self.health_checks.iter().enumerate() {
            let protocol = match hc.protocol {
                AppHealthProtocol::Http | AppHealthProtocol::MesosHttp => HealthProtocol::Http,
                AppHealthProtocol::Tcp | AppHealthProtocol::MesosTcp => HealthProtocol::Tcp,
                AppHealthProtocol::Command => HealthProtocol::Command,
                AppHealthProtocol::Https | AppHealthProtocol::MesosHttps => {
                    // The agent has no TLS client; a TCP connect still tells a dead task apart.
                    not_carried.push(format!(
                        "healthChecks[{i}].protocol: {} is checked as TCP",
                        hc.protocol.name()
                    ));
                    HealthProtocol::Tcp
                }
            };
            let mut out = HealthCheck::new(protocol);
            out.path = hc.path.clone();
            out.port = hc.port;
            out.command = hc.command.clone();
            out.grace_period_seconds = hc.grace_period_seconds;
            out.interval_seconds = hc.interval_seconds;
            out.timeout_seconds = hc.timeout_seconds;
            out.max_consecutive_failures = hc.max_consecutive_failures;
            out.delay_seconds = hc.delay_seconds;
            if protocol != HealthProtocol::Command && hc.port.is_none() {
                let idx = hc.port_index.unwrap_or(0);
                match index_map.get(idx).copied().flatten() {
                    Some(task_idx) => out.port_index = Some(task_idx),
                    None => {
                        // A user-network mapping without a host port: check the container
                        // port on the task's own address is not possible from the host.
                        not_carried.push(format!(
                            "healthChecks[{i}]: port index {idx} has no host port; check dropped"
                        ));
                        continue;
                    }
                }
            }
            if hc.ignore_http1xx {
                not_carried.push(format!("healthChecks[{i}].ignoreHttp1xx"));
            }
            health_checks.push(out);
        }
        for (i, p) in self.port_definitions.iter().enumerate() {
            if p.protocol != PortProtocol::Tcp {
                // Host ports are reserved for TCP and UDP alike; the note is for the operator.
                not_carried.push(format!(
                    "portDefinitions[{i}].protocol: reserved as a plain host port"
                ));
            }
        }
        if !self.fetch.is_empty() {
            not_carried.push("fetch: the task model has no fetcher yet".to_string());
        }

        let task = TaskDefinition {
            name: self.id.to_string(),
            cmd: self.cmd.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            resources: self.resources,
            ports,
            health_checks,
            kill_grace_period_seconds: self
                .task_kill_grace_period_seconds
                .unwrap_or(DEFAULT_KILL_GRACE_SECONDS),
            labels: labels_out,
            // A Mesos container without an image is a plain process to Drover.
            container: self
                .container
                .as_ref()
                .filter(|c| c.image.is_some())
                .and_then(|c| serde_json::to_value(c).ok()),
            user: self.user.clone(),
        };
        TaskConversion { task, not_carried }
    }
}

/// The host ports one instance needs: the mappings that publish a host port (bridge/user
/// networking), else the port definitions (fixed only with `requirePorts`, since without it
/// Marathon's `port` is a service port and the host port is random).
pub(super) fn host_ports(app: &AppDefinition) -> Vec<HostPort> {
    match &app.container {
        Some(c) if matches!(c.network, NetworkMode::Bridge | NetworkMode::User(_)) => c
            .port_mappings
            .iter()
            .filter_map(|m| {
                m.host_port.map(|port| HostPort {
                    name: m.name.clone(),
                    port,
                })
            })
            .collect(),
        _ => app
            .port_definitions
            .iter()
            .map(|p| HostPort {
                name: p.name.clone(),
                port: if app.require_ports { p.port } else { 0 },
            })
            .collect(),
    }
}

/// For each health-check port index, the index into the task's ports (None: no host port).
fn health_index_map(app: &AppDefinition) -> Vec<Option<usize>> {
    match &app.container {
        Some(c) if matches!(c.network, NetworkMode::Bridge | NetworkMode::User(_)) => {
            let mut next = 0;
            c.port_mappings
                .iter()
                .map(|m| {
                    m.host_port.map(|_| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        }
        _ => (0..app.port_definitions.len()).map(Some).collect(),
    }
}
