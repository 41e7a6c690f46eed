//! Pure: what the Docker Engine is asked to create for a task, and how an ended
//! container is read back. No I/O; the shell in [`crate::docker`] sends the result.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::models::{ContainerCreateBody, ContainerState, HostConfig, PortBinding};
use chrono::{DateTime, Utc};
use drover_api::TaskId;
use drover_api::container::{DockerContainer, DockerNetwork, labels};
use drover_api::task::{ExitStatus, TaskSpec};

use crate::sandbox::ExitRecord;

/// Where the task's sandbox appears inside its container (Mesos's path, which Marathon
/// apps expect in `MESOS_SANDBOX`).
pub const SANDBOX_IN_CONTAINER: &str = "/mnt/mesos/sandbox";

/// The container's name: `drover-<task id>` (task ids are valid Docker names).
pub fn container_name(id: &TaskId) -> String {
    format!("drover-{id}")
}

/// The environment of a container task: the task's own variables and Drover's, but
/// nothing of the agent's (the image's `PATH` and the like stay as the image sets them).
pub fn container_env(spec: &TaskSpec, host: &str) -> BTreeMap<String, String> {
    crate::env::task_env(
        spec,
        &BTreeMap::new(),
        host,
        Path::new(SANDBOX_IN_CONTAINER),
    )
}

/// The create request for `spec` running `container`, with environment `env`, whose
/// sandbox on the host is `sandbox`. `Err` is why the task cannot run.
///
/// Marathon's semantics: `cmd` runs through `/bin/sh -c` in the container (replacing the
/// image's entrypoint); `args` are appended to the image's entrypoint; neither runs the
/// image's own command. Published port mappings take the task's host ports in order.
pub fn create_body(
    spec: &TaskSpec,
    container: &DockerContainer,
    env: &BTreeMap<String, String>,
    sandbox: &Path,
) -> Result<ContainerCreateBody, String> {
    let def = &spec.definition;
    let (entrypoint, cmd) = match (&def.cmd, &def.args) {
        (Some(c), _) if !c.trim().is_empty() => (
            Some(vec!["/bin/sh".to_string(), "-c".to_string()]),
            Some(vec![c.clone()]),
        ),
        (_, Some(args)) if !args.is_empty() => (None, Some(args.clone())),
        _ => (None, None),
    };
    let network_mode = match &container.network {
        DockerNetwork::Host => "host".to_string(),
        DockerNetwork::Bridge => "bridge".to_string(),
        DockerNetwork::None => "none".to_string(),
        DockerNetwork::User(Some(name)) => name.clone(),
        DockerNetwork::User(None) => "bridge".to_string(),
    };
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    if container.network != DockerNetwork::Host {
        let mut host_ports = spec.host_ports.iter();
        for (i, p) in container.ports.iter().enumerate() {
            let host_port = if p.published {
                Some(*host_ports.next().ok_or_else(|| {
                    format!("port mapping {i} publishes a host port the task was not given")
                })?)
            } else {
                None
            };
            let inside = match (p.container_port, host_port) {
                (0, Some(h)) => h,
                (c, _) => c,
            };
            for proto in &p.protocols {
                let key = format!("{inside}/{proto}");
                exposed.push(key.clone());
                if let Some(h) = host_port {
                    bindings
                        .entry(key)
                        .or_insert(None)
                        .get_or_insert_default()
                        .push(PortBinding {
                            host_ip: None,
                            host_port: Some(h.to_string()),
                        });
                }
            }
        }
    }
    let mut binds = vec![format!("{}:{SANDBOX_IN_CONTAINER}", sandbox.display())];
    for v in &container.volumes {
        // Relative host paths live in the sandbox, as with Mesos.
        let host = if Path::new(&v.host_path).is_absolute() {
            v.host_path.clone()
        } else {
            sandbox.join(&v.host_path).display().to_string()
        };
        let mode = if v.read_only { ":ro" } else { "" };
        binds.push(format!("{host}:{}{mode}", v.container_path));
    }
    let res = def.resources;
    let mem = (res.mem > 0.0).then_some((res.mem * 1024.0 * 1024.0) as i64);
    let host_config = HostConfig {
        network_mode: Some(network_mode),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        binds: Some(binds),
        // The memory limit is the task's `mem`, without swap on top: over it, the kernel's
        // OOM killer ends the task and the inspect says so.
        memory: mem,
        memory_swap: mem,
        nano_cpus: (res.cpus > 0.0).then_some((res.cpus * 1e9) as i64),
        cpu_shares: (res.cpus > 0.0).then(|| ((res.cpus * 1024.0) as i64).max(2)),
        privileged: container.privileged.then_some(true),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: Some(container.image.clone()),
        entrypoint,
        cmd,
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(container_labels(spec, sandbox)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(host_config),
        ..Default::default()
    })
}

/// The labels: the task id and sandbox (how a restarted agent finds its containers), and
/// the task's own `drover.*` labels (app, job, version) for people reading `docker ps`.
pub fn container_labels(spec: &TaskSpec, sandbox: &Path) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = spec
        .definition
        .labels
        .iter()
        .filter(|(k, _)| k.starts_with("drover."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(labels::TASK_ID.to_string(), spec.id.to_string());
    out.insert(labels::SANDBOX.to_string(), sandbox.display().to_string());
    out
}

/// Docker's stop timeout for a grace period: whole seconds, rounded up (at least 1 when
/// there is any grace, so SIGTERM always comes first).
pub fn stop_timeout(grace_seconds: f64) -> i32 {
    if grace_seconds.is_finite() && grace_seconds > 0.0 {
        grace_seconds.ceil().min(3600.0) as i32
    } else {
        0
    }
}

/// A Docker timestamp (`0001-01-01T00:00:00Z` means never).
pub fn docker_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s?).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// How an exited container ended, from its inspected state.
pub fn exit_record(state: &ContainerState) -> ExitRecord {
    let code = state.exit_code.and_then(|c| i32::try_from(c).ok());
    let error = state.error.clone().filter(|e| !e.is_empty());
    ExitRecord {
        // A container that failed to start has an error and exit code 127/128: say why.
        status: if error.is_some() && code.is_none_or(|c| c != 0) {
            None
        } else {
            Some(ExitStatus { code, signal: None })
        },
        error: error.map(|e| format!("the container could not run: {e}")),
        oom_killed: state.oom_killed.unwrap_or(false),
        finished_at: docker_time(state.finished_at.as_deref()).unwrap_or_else(Utc::now),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use drover_api::Resources;
    use drover_api::task::{PortRequest, TaskDefinition, labels as task_labels};
    use serde_json::json;

    fn spec(container: serde_json::Value, host_ports: Vec<u16>) -> TaskSpec {
        let mut def = TaskDefinition {
            name: "/web".into(),
            resources: Resources::new(0.5, 64.0, 0.0),
            ports: host_ports.iter().map(|_| PortRequest::default()).collect(),
            container: Some(container),
            ..Default::default()
        };
        def.env.insert("GREETING".into(), "hi".into());
        def.labels.insert(task_labels::APP_ID.into(), "/web".into());
        def.labels.insert("team".into(), "shop".into());
        TaskSpec {
            id: "web.1".into(),
            node: "n1".into(),
            definition: def,
            host_ports,
        }
    }

    fn body(spec: &TaskSpec) -> ContainerCreateBody {
        let c = DockerContainer::parse(spec.definition.container.as_ref().unwrap()).unwrap();
        let env = container_env(spec, "10.0.0.5");
        create_body(spec, &c, &env, Path::new("/w/tasks/web.1")).unwrap()
    }

    #[test]
    fn cmd_runs_through_the_shell_and_args_follow_the_entrypoint() {
        let mut s = spec(json!({"type": "DOCKER", "image": "busybox"}), vec![]);
        s.definition.cmd = Some("while sleep 10; do date -u +%T; done".into());
        let b = body(&s);
        assert_eq!(b.entrypoint.unwrap(), vec!["/bin/sh", "-c"]);
        assert_eq!(b.cmd.unwrap(), vec!["while sleep 10; do date -u +%T; done"]);
        s.definition.cmd = None;
        s.definition.args = Some(vec!["--port".into(), "8080".into()]);
        let b = body(&s);
        assert_eq!(b.entrypoint, None, "the image's entrypoint stays");
        assert_eq!(b.cmd.unwrap(), vec!["--port", "8080"]);
        s.definition.args = None;
        let b = body(&s);
        assert_eq!(
            (b.entrypoint, b.cmd),
            (None, None),
            "the image's own command"
        );
        assert_eq!(b.image.as_deref(), Some("busybox"));
    }

    #[test]
    fn env_has_the_tasks_and_drovers_variables_not_the_agents() {
        let s = spec(
            json!({"image": "x", "network": "bridge", "portMappings": [{"containerPort": 8080, "hostPort": 0}]}),
            vec![31005],
        );
        let env = body(&s).env.unwrap();
        for want in [
            "GREETING=hi",
            "PORT0=31005",
            "PORT=31005",
            "HOST=10.0.0.5",
            "DROVER_TASK_ID=web.1",
            "DROVER_APP_ID=/web",
            "MESOS_SANDBOX=/mnt/mesos/sandbox",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} missing from {env:?}");
        }
        assert!(!env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    }

    #[test]
    fn bridge_mappings_take_the_host_ports_in_order() {
        let s = spec(
            json!({"image": "x", "network": "bridge", "portMappings": [
                {"containerPort": 8080, "hostPort": 0},
                {"containerPort": 9000},
                {"containerPort": 0, "hostPort": 0, "protocol": "udp,tcp"}]}),
            vec![31005, 31006],
        );
        let b = body(&s);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("bridge"));
        let pb = hc.port_bindings.unwrap();
        let port = |k: &str| pb[k].as_ref().unwrap()[0].host_port.clone().unwrap();
        assert_eq!(port("8080/tcp"), "31005");
        assert_eq!(
            port("31006/udp"),
            "31006",
            "container port 0 is the host port"
        );
        assert_eq!(port("31006/tcp"), "31006");
        assert!(!pb.contains_key("9000/tcp"), "not published");
        assert!(b.exposed_ports.unwrap().contains(&"9000/tcp".to_string()));
        // Too few host ports is an error, not a silent drop.
        let short = spec(
            json!({"image": "x", "network": "bridge", "portMappings": [{"containerPort": 1, "hostPort": 0}]}),
            vec![],
        );
        let c = DockerContainer::parse(short.definition.container.as_ref().unwrap()).unwrap();
        assert!(create_body(&short, &c, &BTreeMap::new(), Path::new("/s")).is_err());
    }

    #[test]
    fn host_network_publishes_nothing() {
        let s = spec(json!({"image": "x", "network": "HOST"}), vec![31005]);
        let b = body(&s);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("host"));
        assert!(hc.port_bindings.is_none());
        assert!(b.env.unwrap().contains(&"PORT0=31005".to_string()));
    }

    #[test]
    fn limits_labels_and_mounts() {
        let s = spec(
            json!({"image": "x", "volumes": [{"containerPath": "/data", "hostPath": "data", "mode": "RO"},
                                              {"containerPath": "/etc/x", "hostPath": "/etc/x", "mode": "RW"}]}),
            vec![],
        );
        let b = body(&s);
        let hc = b.host_config.unwrap();
        assert_eq!(hc.memory, Some(64 * 1024 * 1024));
        assert_eq!(hc.memory_swap, hc.memory, "no swap on top of the limit");
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!(hc.cpu_shares, Some(512));
        assert_eq!(
            hc.binds.unwrap(),
            vec![
                "/w/tasks/web.1:/mnt/mesos/sandbox",
                "/w/tasks/web.1/data:/data:ro",
                "/etc/x:/etc/x"
            ]
        );
        let labels = b.labels.unwrap();
        assert_eq!(labels[labels::TASK_ID], "web.1");
        assert_eq!(labels[labels::SANDBOX], "/w/tasks/web.1");
        assert_eq!(labels[task_labels::APP_ID], "/web");
        assert!(
            !labels.contains_key("team"),
            "only drover.* labels are copied"
        );
    }

    #[test]
    fn exits_oom_and_start_errors() {
        let st = |code: i64, oom: bool, error: &str| ContainerState {
            exit_code: Some(code),
            oom_killed: Some(oom),
            error: Some(error.into()),
            finished_at: Some("2026-11-27T10:00:00.5Z".into()),
            ..Default::default()
        };
        let r = exit_record(&st(0, false, ""));
        assert!(r.status.unwrap().success());
        assert_eq!(r.finished_at.timestamp_subsec_millis(), 500);
        let r = exit_record(&st(137, true, ""));
        assert!(r.oom_killed);
        assert_eq!(r.status.unwrap().code, Some(137));
        let (state, msg) = crate::outcome::classify(&r, None, 16.0);
        assert_eq!(state, drover_api::TaskState::Failed);
        assert!(msg.unwrap().contains("OOM"));
        let r = exit_record(&st(127, false, "exec: \"nope\": not found"));
        assert!(r.status.is_none());
        assert!(r.error.unwrap().contains("not found"));
        assert_eq!(stop_timeout(2.5), 3);
        assert_eq!(stop_timeout(0.0), 0);
        assert_eq!(docker_time(Some("0001-01-01T00:00:00Z")), None);
    }
}
