//! Builders for unit tests.

use chrono::{TimeZone, Utc};
use drover_api::node::HostInfo;
use drover_api::task::{Task, TaskDefinition, TaskGoal, TaskSpec};
use drover_api::{PortRange, Resources, TaskId, TaskState};

use crate::model::NodeRecord;

/// A fixed instant, so tests read no clock.
pub fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A ready node with 4 cpus, 4096 MiB, 10000 MiB disk and ports 31000-31004.
pub fn node(name: &str) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        address: format!("http://127.0.0.1:1/{name}"),
        version: "0.1.0".into(),
        attributes: Default::default(),
        capabilities: vec![],
        total: Resources::new(4.0, 4096.0, 10000.0),
        reserved: Resources::default(),
        ports: PortRange {
            begin: 31000,
            end: 31004,
        },
        max_tasks: None,
        host: HostInfo::default(),
        draining: false,
        unreachable: false,
        registered_at: t0(),
        last_heartbeat_at: t0(),
    }
}

/// A task on `node` in `state`.
pub fn task(id: &str, node: &str, res: Resources, state: TaskState, ports: &[u16]) -> Task {
    Task {
        spec: TaskSpec {
            id: TaskId::from(id),
            node: node.into(),
            definition: TaskDefinition {
                name: "web".into(),
                cmd: Some("sleep 9".into()),
                resources: res,
                kill_grace_period_seconds: 5.0,
                ..Default::default()
            },
            host_ports: ports.to_vec(),
        },
        state,
        goal: TaskGoal::Run,
        pid: None,
        exit: None,
        message: None,
        health: None,
        staged_at: t0(),
        started_at: None,
        finished_at: None,
        updated_at: t0(),
    }
}
