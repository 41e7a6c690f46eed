//! The resource ledger: whether a task fits a node, and which host ports it gets.
//! Pure functions over a node record and the node's tasks.

use std::collections::BTreeSet;

use drover_api::task::{PortRequest, Task, TaskDefinition};
use drover_api::{ApiError, Capability, ErrorCode, PortRange, Resources};

use crate::model::NodeRecord;

/// The sum of the requests of the active tasks among `tasks`.
pub fn allocated<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Resources {
    tasks
        .into_iter()
        .filter(|t| t.state.is_active())
        .fold(Resources::default(), |acc, t| {
            acc.plus(t.spec.definition.resources)
        })
}

/// The host ports held by the active tasks among `tasks`.
pub fn ports_in_use<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> BTreeSet<u16> {
    tasks
        .into_iter()
        .filter(|t| t.state.is_active())
        .flat_map(|t| t.spec.host_ports.iter().copied())
        .collect()
}

/// Checks that `def` can go on `node` next to `tasks` (the node's tasks, any state) and
/// returns the host ports it gets. Refusals say why: the node's state, a missing
/// capability, the node's task limit, the resource shortfall, or the port problem.
pub fn place<'a>(
    node: &NodeRecord,
    tasks: impl IntoIterator<Item = &'a Task> + Clone,
    def: &TaskDefinition,
) -> Result<Vec<u16>, ApiError> {
    if node.unreachable {
        return Err(conflict(format!(
            "node {:?} is unreachable: it takes no new tasks until it heartbeats again",
            node.name
        )));
    }
    if node.draining {
        return Err(conflict(format!(
            "node {:?} is draining: it takes no new tasks",
            node.name
        )));
    }
    if def.container.is_some() && !node.can(&Capability::Docker) {
        return Err(ApiError {
            code: ErrorCode::Conflict,
            message: format!(
                "node {:?} cannot run containers: its agent has no docker capability",
                node.name
            ),
            field: Some("task.container".into()),
        });
    }
    if let Some(max) = node.max_tasks {
        let active = tasks
            .clone()
            .into_iter()
            .filter(|t| t.state.is_active())
            .count();
        if active >= max as usize {
            return Err(ApiError {
                code: ErrorCode::InsufficientResources,
                message: format!(
                    "node {:?} already runs {active} tasks, its most at once ({max}, from its agent's --max-tasks or process limit; raise it there)",
                    node.name
                ),
                field: Some("node".into()),
            });
        }
    }
    let free = node.total.minus(allocated(tasks.clone()));
    let short = def.resources.shortfall(&free);
    if !short.is_empty() {
        return Err(ApiError {
            code: ErrorCode::InsufficientResources,
            message: format!(
                "task does not fit on node {:?}: {}",
                node.name,
                short.join("; ")
            ),
            field: Some("task.resources".into()),
        });
    }
    assign_ports(&node.name, node.ports, &ports_in_use(tasks), &def.ports)
}

/// Gives each port request a host port: a fixed request must lie in `range` and be
/// free; a request for 0 gets the lowest port of the range still free.
pub fn assign_ports(
    node: &str,
    range: PortRange,
    in_use: &BTreeSet<u16>,
    requests: &[PortRequest],
) -> Result<Vec<u16>, ApiError> {
    let mut taken = in_use.clone();
    // Fixed ports first, so a later 0 cannot grab a port an earlier entry names.
    for (i, req) in requests.iter().enumerate() {
        if req.port == 0 {
            continue;
        }
        let field = format!("task.ports[{i}].port");
        if !range.contains(req.port) {
            return Err(ApiError {
                code: ErrorCode::Conflict,
                message: format!(
                    "port {} is outside node {node:?}'s port range {range}",
                    req.port
                ),
                field: Some(field),
            });
        }
        if !taken.insert(req.port) {
            return Err(ApiError {
                code: ErrorCode::Conflict,
                message: format!("port {} on node {node:?} is already taken", req.port),
                field: Some(field),
            });
        }
    }
    let mut next = range.begin;
    let mut out = Vec::with_capacity(requests.len());
    for (i, req) in requests.iter().enumerate() {
        if req.port != 0 {
            out.push(req.port);
            continue;
        }
        let found = (next..=range.end)
            .find(|p| !taken.contains(p))
            .filter(|_| !range.is_empty());
        match found {
            Some(p) => {
                taken.insert(p);
                out.push(p);
                next = p.saturating_add(1);
            }
            None => {
                return Err(ApiError {
                    code: ErrorCode::Conflict,
                    message: format!("no free port left in node {node:?}'s port range {range}"),
                    field: Some(format!("task.ports[{i}]")),
                });
            }
        }
    }
    Ok(out)
}

fn conflict(message: String) -> ApiError {
    ApiError::new(ErrorCode::Conflict, message)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::{node, task};
    use drover_api::TaskState;

    fn def(cpus: f64, mem: f64, ports: &[u16]) -> TaskDefinition {
        TaskDefinition {
            name: "web".into(),
            cmd: Some("sleep 9".into()),
            resources: Resources::new(cpus, mem, 0.0),
            ports: ports
                .iter()
                .map(|p| PortRequest {
                    name: None,
                    port: *p,
                })
                .collect(),
            kill_grace_period_seconds: 5.0,
            ..Default::default()
        }
    }

    #[test]
    fn fits_until_full_and_only_active_tasks_count() {
        let n = node("n1"); // 4 cpus, 4096 mem, ports 31000-31004
        let a = task(
            "a",
            "n1",
            Resources::new(3.0, 1000.0, 0.0),
            TaskState::Running,
            &[],
        );
        let mut done = task(
            "b",
            "n1",
            Resources::new(3.0, 1000.0, 0.0),
            TaskState::Finished,
            &[],
        );
        done.state = TaskState::Finished;
        let tasks = [a, done];
        assert!(place(&n, &tasks, &def(1.0, 100.0, &[])).is_ok());
        let e = place(&n, &tasks, &def(1.5, 100.0, &[])).unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientResources);
        assert!(
            e.message.contains("cpus: wants 1.5 but 1 free"),
            "{}",
            e.message
        );
        let e = place(&n, &tasks, &def(0.5, 5000.0, &[])).unwrap_err();
        assert!(e.message.contains("mem"), "{}", e.message);
    }

    #[test]
    fn a_node_takes_no_more_active_tasks_than_its_agent_allows() {
        let mut n = node("n1");
        n.max_tasks = Some(2);
        let running = |id| {
            task(
                id,
                "n1",
                Resources::new(0.1, 1.0, 0.0),
                TaskState::Running,
                &[],
            )
        };
        let ended = task(
            "c",
            "n1",
            Resources::new(0.1, 1.0, 0.0),
            TaskState::Failed,
            &[],
        );
        assert!(place(&n, &[running("a"), ended.clone()], &def(0.1, 1.0, &[])).is_ok());
        let e = place(
            &n,
            &[running("a"), running("b"), ended],
            &def(0.1, 1.0, &[]),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientResources);
        assert!(e.message.contains("most at once (2"), "{}", e.message);
        assert!(e.message.contains("--max-tasks"), "{}", e.message);
        n.max_tasks = None;
        assert!(place(&n, &[running("a"), running("b")], &def(0.1, 1.0, &[])).is_ok());
    }

    #[test]
    fn draining_unreachable_and_containers_are_refused_with_reasons() {
        let mut n = node("n1");
        n.draining = true;
        assert!(
            place(&n, &[], &def(0.1, 1.0, &[]))
                .unwrap_err()
                .message
                .contains("draining")
        );
        n.unreachable = true;
        assert!(
            place(&n, &[], &def(0.1, 1.0, &[]))
                .unwrap_err()
                .message
                .contains("unreachable")
        );
        let n = node("n1");
        let mut d = def(0.1, 1.0, &[]);
        d.container = Some(serde_json::json!({"type": "DOCKER", "docker": {"image": "nginx"}}));
        let e = place(&n, &[], &d).unwrap_err();
        assert!(e.message.contains("cannot run containers"), "{}", e.message);
        let mut docker = node("n2");
        docker.capabilities.push(Capability::Docker);
        assert!(place(&docker, &[], &d).is_ok());
    }

    #[test]
    fn ports_fixed_and_dynamic() {
        let range = PortRange {
            begin: 31000,
            end: 31004,
        };
        let used: BTreeSet<u16> = [31000].into();
        let req = |ps: &[u16]| {
            ps.iter()
                .map(|p| PortRequest {
                    name: None,
                    port: *p,
                })
                .collect::<Vec<_>>()
        };
        // A dynamic port skips used ones and the fixed one named later in the request.
        assert_eq!(
            assign_ports("n", range, &used, &req(&[0, 31001, 0])).unwrap(),
            vec![31002, 31001, 31003]
        );
        assert!(
            assign_ports("n", range, &used, &req(&[31000]))
                .unwrap_err()
                .message
                .contains("already taken")
        );
        assert!(
            assign_ports("n", range, &used, &req(&[31001, 31001]))
                .unwrap_err()
                .message
                .contains("already taken")
        );
        let e = assign_ports("n", range, &used, &req(&[8080])).unwrap_err();
        assert!(e.message.contains("outside"), "{}", e.message);
        assert_eq!(e.field.as_deref(), Some("task.ports[0].port"));
        assert_eq!(
            assign_ports("n", range, &used, &req(&[0, 0, 0, 0])).unwrap(),
            vec![31001, 31002, 31003, 31004]
        );
        let e = assign_ports("n", range, &used, &req(&[0, 0, 0, 0, 0])).unwrap_err();
        assert!(e.message.contains("no free port"), "{}", e.message);
        // The top of the u16 range must not overflow.
        let top = PortRange {
            begin: 65534,
            end: 65535,
        };
        assert_eq!(
            assign_ports("n", top, &BTreeSet::new(), &req(&[0, 0])).unwrap(),
            vec![65534, 65535]
        );
        assert!(assign_ports("n", top, &BTreeSet::new(), &req(&[0, 0, 0])).is_err());
    }

    #[test]
    fn placement_takes_ports_of_active_tasks_only() {
        let n = node("n1");
        let held = task(
            "a",
            "n1",
            Resources::default(),
            TaskState::Running,
            &[31000],
        );
        let freed = task("b", "n1", Resources::default(), TaskState::Failed, &[31001]);
        assert_eq!(
            place(&n, &[held, freed], &def(0.0, 0.0, &[0, 0])).unwrap(),
            vec![31001, 31002]
        );
    }
}
