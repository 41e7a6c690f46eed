//! The container a task runs in, as the agent reads it from
//! [`TaskDefinition::container`](crate::task::TaskDefinition::container).
//!
//! A task's `container` travels as JSON in one of three shapes, and [`DockerContainer::parse`]
//! reads them all: the normalised app container ([`crate::app::Container`], what the
//! scheduler sends for Marathon apps), Chronos's job container ([`crate::job::JobContainer`])
//! and Marathon's raw form (`{"type": "DOCKER", "docker": {"image", "network", ...}}`) for
//! tasks posted to the master by hand.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::app::DockerParameter;

/// The labels every container Drover starts carries, so a restarted agent finds its
/// containers again and an operator can tell them apart in `docker ps`.
pub mod labels {
    /// The task id.
    pub const TASK_ID: &str = "drover.task-id";
    /// The task's sandbox directory on the host (names the agent's work dir).
    pub const SANDBOX: &str = "drover.sandbox";
}

/// How a container's network is set up.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DockerNetwork {
    /// The host's network (Marathon's default for Docker apps).
    #[default]
    Host,
    /// Docker's bridge, with port mappings to host ports.
    Bridge,
    /// A named user network (`None`: Docker's default bridge).
    User(Option<String>),
    /// No network.
    None,
}

/// A container port published on (or, without a host port, only exposed by) the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerPort {
    /// The port inside the container; 0 means the same as the host port.
    pub container_port: u16,
    /// Whether it takes one of the task's host ports (they are taken in order).
    pub published: bool,
    /// `tcp`, `udp` or both.
    pub protocols: Vec<String>,
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerVolume {
    /// The host path; relative paths are inside the task's sandbox.
    pub host_path: String,
    /// Where it appears in the container.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What the agent needs to run a task's container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerContainer {
    /// The image reference (`busybox`, `registry:5000/team/app:1.2`).
    pub image: String,
    /// The network mode.
    pub network: DockerNetwork,
    /// Port mappings (bridge and user networks).
    pub ports: Vec<DockerPort>,
    /// Pull the image even when it is present.
    pub force_pull: bool,
    /// Run privileged.
    pub privileged: bool,
    /// Bind mounts.
    pub volumes: Vec<DockerVolume>,
    /// Extra `docker run` options (`docker.parameters`), in order. Read as given here;
    /// the agent applies the ones it knows and fails the task naming any other, as a
    /// `docker run` with an unknown flag would.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<DockerParameter>,
}

impl DockerContainer {
    /// Reads a task's `container` value in any of the shapes it travels in; `Err` says
    /// which field is wrong (relative to `container`).
    pub fn parse(value: &Value) -> Result<DockerContainer, String> {
        let obj = value.as_object().ok_or("must be an object")?;
        let docker = obj.get("docker").and_then(Value::as_object);
        // A field of the container, or of its `docker` object (Marathon's legacy shape).
        let get = |k: &str| obj.get(k).or_else(|| docker.and_then(|d| d.get(k)));
        match obj.get("type").and_then(Value::as_str) {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("docker") || t.eq_ignore_ascii_case("mesos") => {}
            Some(t) => return Err(format!("type: {t:?} is not DOCKER or MESOS")),
        }
        let image = get("image")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .ok_or("image: a container needs an image")?
            .to_string();
        let network = match get("network") {
            None | Some(Value::Null) => DockerNetwork::Host,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "host" => DockerNetwork::Host,
                "bridge" => DockerNetwork::Bridge,
                "none" => DockerNetwork::None,
                "user" => DockerNetwork::User(
                    get("networkName")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ),
                other => {
                    return Err(format!(
                        "network: {other:?} is not HOST, BRIDGE, USER or NONE"
                    ));
                }
            },
            // The app container's typed form: `{"user": "name"}` or `{"user": null}`.
            Some(Value::Object(o)) => match o.get("user") {
                Some(n) => DockerNetwork::User(n.as_str().map(str::to_string)),
                None => return Err("network: unknown network object".to_string()),
            },
            Some(_) => return Err("network: must be a string".to_string()),
        };
        let mut ports = Vec::new();
        if let Some(mappings) = get("portMappings") {
            let list = mappings
                .as_array()
                .ok_or("portMappings: must be an array")?;
            for (i, m) in list.iter().enumerate() {
                ports.push(parse_port(m).map_err(|e| format!("portMappings[{i}].{e}"))?);
            }
        }
        let mut volumes = Vec::new();
        if let Some(vols) = obj.get("volumes") {
            let list = vols.as_array().ok_or("volumes: must be an array")?;
            for (i, v) in list.iter().enumerate() {
                let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
                let (host, cont) = (field("hostPath"), field("containerPath"));
                if host.is_empty() || cont.is_empty() {
                    return Err(format!(
                        "volumes[{i}]: needs hostPath and containerPath (only bind volumes run)"
                    ));
                }
                volumes.push(DockerVolume {
                    host_path: host.to_string(),
                    container_path: cont.to_string(),
                    read_only: field("mode").eq_ignore_ascii_case("RO"),
                });
            }
        }
        let mut parameters = Vec::new();
        if let Some(ps) = get("parameters").filter(|v| !v.is_null()) {
            let list = ps.as_array().ok_or("parameters: must be an array")?;
            for (i, p) in list.iter().enumerate() {
                let field = |k: &str| p.get(k).and_then(Value::as_str);
                let (Some(key), Some(value)) = (field("key"), field("value")) else {
                    return Err(format!("parameters[{i}]: needs key and value strings"));
                };
                parameters.push(DockerParameter {
                    key: key.to_string(),
                    value: value.to_string(),
                });
            }
        }
        let flag = |k: &str| get(k).and_then(Value::as_bool).unwrap_or(false);
        Ok(DockerContainer {
            image,
            network,
            ports,
            force_pull: flag("forcePullImage") || flag("forcePull"),
            privileged: flag("privileged"),
            volumes,
            parameters,
        })
    }
}

fn parse_port(m: &Value) -> Result<DockerPort, String> {
    let port = |k: &str| -> Result<Option<u16>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .map(Some)
                .ok_or_else(|| format!("{k}: must be a port number")),
        }
    };
    let container_port = port("containerPort")?.unwrap_or(0);
    let published = port("hostPort")?.is_some();
    let protocols = m
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("tcp")
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>();
    if let Some(bad) = protocols.iter().find(|p| *p != "tcp" && *p != "udp") {
        return Err(format!("protocol: {bad:?} is not tcp or udp"));
    }
    if container_port == 0 && !published {
        return Err("containerPort: a mapping without a host port needs a container port".into());
    }
    Ok(DockerPort {
        container_port,
        published,
        protocols,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_app_container_shape() {
        let c = DockerContainer::parse(&json!({
            "type": "DOCKER", "image": "drover/hello:1", "network": "bridge",
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"},
                             {"containerPort": 53, "protocol": "udp,tcp"}],
            "forcePullImage": true, "privileged": false,
            "volumes": [{"containerPath": "/data", "hostPath": "data", "mode": "RO"}],
            "marathon": {}
        }))
        .unwrap();
        assert_eq!(c.image, "drover/hello:1");
        assert_eq!(c.network, DockerNetwork::Bridge);
        assert_eq!(c.ports.len(), 2);
        assert!(c.ports[0].published && !c.ports[1].published);
        assert_eq!(c.ports[1].protocols, vec!["udp", "tcp"]);
        assert!(c.force_pull);
        assert!(c.volumes[0].read_only);
        let user = DockerContainer::parse(&json!({"image": "x", "network": {"user": "front"}}));
        assert_eq!(
            user.unwrap().network,
            DockerNetwork::User(Some("front".into()))
        );
    }

    #[test]
    fn reads_chronos_and_raw_marathon_shapes() {
        let c = DockerContainer::parse(&json!({"type": "DOCKER", "image": "busybox", "network": "BRIDGE", "forcePullImage": false}))
            .unwrap();
        assert_eq!(
            (c.image.as_str(), c.network),
            ("busybox", DockerNetwork::Bridge)
        );
        let c = DockerContainer::parse(
            &json!({"type": "DOCKER", "docker": {"image": "nginx", "network": "HOST"}}),
        )
        .unwrap();
        assert_eq!(
            (c.image.as_str(), c.network),
            ("nginx", DockerNetwork::Host)
        );
    }

    #[test]
    fn names_the_bad_field() {
        assert!(
            DockerContainer::parse(&json!({"type": "DOCKER"}))
                .unwrap_err()
                .starts_with("image")
        );
        assert!(
            DockerContainer::parse(&json!({"image": "x", "network": "WEIRD"}))
                .unwrap_err()
                .starts_with("network")
        );
        let e = DockerContainer::parse(
            &json!({"image": "x", "portMappings": [{"containerPort": 99999}]}),
        )
        .unwrap_err();
        assert!(e.starts_with("portMappings[0].containerPort"), "{e}");
        assert!(DockerContainer::parse(&json!({"image": "x", "type": "RKT"})).is_err());
        let e = DockerContainer::parse(&json!({"image": "x", "parameters": [{"key": "init"}]}))
            .unwrap_err();
        assert!(e.starts_with("parameters[0]"), "{e}");
    }

    #[test]
    fn reads_parameters_in_every_shape() {
        let want = vec![DockerParameter {
            key: "hostname".into(),
            value: "a.corp.org".into(),
        }];
        for shape in [
            json!({"type": "DOCKER", "image": "x", "parameters": [{"key": "hostname", "value": "a.corp.org"}]}),
            json!({"type": "DOCKER", "docker": {"image": "x", "parameters": [{"key": "hostname", "value": "a.corp.org"}]}}),
        ] {
            assert_eq!(DockerContainer::parse(&shape).unwrap().parameters, want);
        }
    }
}
