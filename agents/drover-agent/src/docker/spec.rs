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
    let mut body = ContainerCreateBody {
        image: Some(container.image.clone()),
        entrypoint,
        cmd,
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(container_labels(spec, sandbox)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(host_config),
        ..Default::default()
    };
    for p in &container.parameters {
        apply_parameter(&mut body, &p.key, &p.value)
            .map_err(|e| format!("docker parameter {:?}: {e}", p.key))?;
    }
    Ok(body)
}

/// The user a container task asks for: its `user`, or a `user` (`u`) parameter, which
/// goes through the same allow-list (a parameter cannot make a container root where
/// `user` could not). Names only: the container runs with that host user's uid and gid.
pub fn requested_user<'a>(
    user: Option<&'a str>,
    container: &'a DockerContainer,
) -> Result<Option<&'a str>, String> {
    let param = container
        .parameters
        .iter()
        .filter(|p| matches!(p.key.trim_start_matches('-'), "user" | "u"))
        .map(|p| p.value.trim())
        .next_back();
    match (user.map(str::trim).filter(|u| !u.is_empty()), param) {
        (_, Some(p)) if p.is_empty() || p.contains(':') => Err(format!(
            "docker parameter \"user\": {p:?} must be a user name (the container runs with that user's uid and gid)"
        )),
        (Some(u), Some(p)) if u != p => Err(format!(
            "docker parameter \"user\" {p:?} differs from the task's user {u:?}"
        )),
        (Some(u), _) => Ok(Some(u)),
        (None, p) => Ok(p),
    }
}

/// The `docker run` options `docker.parameters` may carry (long names; `e`, `h`, `l`,
/// `u`, `v` and `w` as their short forms are accepted too).
pub const SUPPORTED_PARAMETERS: &[&str] = &[
    "add-host",
    "cap-add",
    "cap-drop",
    "dns",
    "dns-option",
    "dns-search",
    "env",
    "hostname",
    "init",
    "label",
    "oom-score-adj",
    "pids-limit",
    "read-only",
    "security-opt",
    "shm-size",
    "stop-signal",
    "sysctl",
    "tmpfs",
    "ulimit",
    "user",
    "volume",
    "volumes-from",
    "workdir",
];

/// Applies one `docker run` option to the create body, as the docker CLI would; `Err`
/// says why it cannot be (an option Drover does not apply, or a value it cannot read).
pub fn apply_parameter(
    body: &mut ContainerCreateBody,
    key: &str,
    value: &str,
) -> Result<(), String> {
    let key = key.trim_start_matches('-');
    let long = match key {
        "e" => "env",
        "h" => "hostname",
        "l" => "label",
        "u" => "user",
        "v" => "volume",
        "w" => "workdir",
        k => k,
    };
    let host = body.host_config.get_or_insert_default();
    let push =
        |list: &mut Option<Vec<String>>| list.get_or_insert_default().push(value.to_string());
    match long {
        "hostname" => body.hostname = Some(value.to_string()),
        "user" => body.user = Some(value.to_string()),
        "workdir" => body.working_dir = Some(value.to_string()),
        "stop-signal" => body.stop_signal = Some(value.to_string()),
        "env" => {
            if !value.contains('=') {
                return Err("expects NAME=VALUE".into());
            }
            push(&mut body.env);
        }
        "label" => {
            let (k, v) = value.split_once('=').unwrap_or((value, ""));
            if k.starts_with("drover.") {
                return Err("labels under drover. are Drover's own".into());
            }
            body.labels
                .get_or_insert_default()
                .insert(k.to_string(), v.to_string());
        }
        "add-host" => push(&mut host.extra_hosts),
        "cap-add" => push(&mut host.cap_add),
        "cap-drop" => push(&mut host.cap_drop),
        "dns" => push(&mut host.dns),
        "dns-option" => push(&mut host.dns_options),
        "dns-search" => push(&mut host.dns_search),
        "security-opt" => push(&mut host.security_opt),
        "volume" => push(&mut host.binds),
        "volumes-from" => push(&mut host.volumes_from),
        "init" => host.init = Some(parse_flag(value)?),
        "read-only" => host.readonly_rootfs = Some(parse_flag(value)?),
        "pids-limit" => host.pids_limit = Some(parse_int(value)?),
        "oom-score-adj" => host.oom_score_adj = Some(parse_int(value)?),
        "shm-size" => host.shm_size = Some(parse_size(value)?),
        "sysctl" => {
            let (k, v) = value.split_once('=').ok_or("expects NAME=VALUE")?;
            host.sysctls
                .get_or_insert_default()
                .insert(k.to_string(), v.to_string());
        }
        "tmpfs" => {
            let (path, opts) = value.split_once(':').unwrap_or((value, ""));
            host.tmpfs
                .get_or_insert_default()
                .insert(path.to_string(), opts.to_string());
        }
        "ulimit" => {
            let (name, limits) = value.split_once('=').ok_or("expects NAME=SOFT[:HARD]")?;
            let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
            host.ulimits
                .get_or_insert_default()
                .push(bollard::models::ResourcesUlimits {
                    name: Some(name.to_string()),
                    soft: Some(parse_int(soft)?),
                    hard: Some(parse_int(hard)?),
                });
        }
        other => {
            return Err(format!(
                "--{other} is not applied by Drover (it applies {})",
                SUPPORTED_PARAMETERS.join(", ")
            ));
        }
    }
    Ok(())
}

fn parse_flag(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

fn parse_int(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

/// A size as the docker CLI reads it: bytes, or a number with `b`, `k`, `m` or `g`.
fn parse_size(value: &str) -> Result<i64, String> {
    let v = value.trim().to_ascii_lowercase();
    let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => v.split_at(i),
        None => (v.as_str(), ""),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{value:?} is not a size like 64m"))?;
    let scale: i64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return Err(format!("{value:?} is not a size like 64m")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{value:?} is too large"))
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
    fn a_user_parameter_is_a_request_for_that_user_not_a_way_around_the_allow_list() {
        let c = |params: serde_json::Value| {
            DockerContainer::parse(
                &json!({"type": "DOCKER", "image": "busybox", "parameters": params}),
            )
            .unwrap()
        };
        let none = c(json!([]));
        assert_eq!(requested_user(None, &none), Ok(None));
        assert_eq!(requested_user(Some("app"), &none), Ok(Some("app")));
        let root = c(json!([{"key": "user", "value": "root"}]));
        assert_eq!(requested_user(None, &root), Ok(Some("root")));
        let short = c(json!([{"key": "u", "value": "app"}]));
        assert_eq!(requested_user(Some("app"), &short), Ok(Some("app")));
        assert!(requested_user(Some("other"), &short).is_err());
        let numeric = c(json!([{"key": "user", "value": "0:0"}]));
        assert!(
            requested_user(None, &numeric)
                .unwrap_err()
                .contains("must be a user name")
        );
    }

    #[test]
    fn parameters_become_engine_settings_and_unknown_ones_fail_the_task() {
        let s = spec(
            json!({"type": "DOCKER", "image": "busybox", "parameters": [
                {"key": "hostname", "value": "a.corp.org"},
                {"key": "label", "value": "tier=web"},
                {"key": "e", "value": "MODE=fast"},
                {"key": "ulimit", "value": "nofile=1024:2048"},
                {"key": "shm-size", "value": "64m"},
                {"key": "read-only", "value": "true"},
                {"key": "cap-add", "value": "NET_ADMIN"},
                {"key": "sysctl", "value": "net.core.somaxconn=1024"},
                {"key": "tmpfs", "value": "/run:size=8m"}
            ]}),
            vec![],
        );
        let b = body(&s);
        assert_eq!(b.hostname.as_deref(), Some("a.corp.org"));
        assert_eq!(b.labels.as_ref().unwrap()["tier"], "web");
        assert!(b.env.as_ref().unwrap().contains(&"MODE=fast".to_string()));
        let h = b.host_config.unwrap();
        let u = &h.ulimits.unwrap()[0];
        assert_eq!(
            (u.name.as_deref(), u.soft, u.hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        assert_eq!(h.shm_size, Some(64 << 20));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.cap_add.unwrap(), vec!["NET_ADMIN"]);
        assert_eq!(h.sysctls.unwrap()["net.core.somaxconn"], "1024");
        assert_eq!(h.tmpfs.unwrap()["/run"], "size=8m");

        for (param, why) in [
            (
                json!({"key": "lxc-conf", "value": "..."}),
                "--lxc-conf is not applied",
            ),
            (json!({"key": "ulimit", "value": "nofile"}), "NAME=SOFT"),
            (json!({"key": "shm-size", "value": "lots"}), "not a size"),
            (
                json!({"key": "label", "value": "drover.task-id=x"}),
                "Drover's own",
            ),
        ] {
            let s = spec(json!({"image": "busybox", "parameters": [param]}), vec![]);
            let c = DockerContainer::parse(s.definition.container.as_ref().unwrap()).unwrap();
            let e = create_body(&s, &c, &BTreeMap::new(), Path::new("/w")).unwrap_err();
            assert!(e.contains(why) && e.starts_with("docker parameter"), "{e}");
        }
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
