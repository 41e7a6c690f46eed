//! Hand-built drover-api values shared by the output and fake-master tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use drover_api::node::{Capability, HostInfo, Node, NodeState};
use drover_api::task::{
    ExitStatus, HealthCheck, HealthProtocol, HealthReport, PortRequest, Task, TaskDefinition,
    TaskGoal, TaskSpec,
};
use drover_api::{PortRange, Resources, TaskId, TaskState};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub fn node(name: &str, state: NodeState) -> Node {
    Node {
        name: name.into(),
        state,
        draining: state == NodeState::Draining,
        address: format!("http://{name}:5051"),
        version: "0.1.0".into(),
        attributes: BTreeMap::from([
            ("rack".to_string(), "r1".to_string()),
            ("zone".into(), "a".into()),
        ]),
        capabilities: vec![Capability::Docker],
        total: Resources::new(4.0, 7680.0, 51200.0),
        reserved: Resources::new(0.0, 512.0, 1024.0),
        allocated: Resources::new(1.5, 1024.0, 0.0),
        free: Resources::new(2.5, 6656.0, 51200.0),
        ports: PortRange {
            begin: 31000,
            end: 31999,
        },
        ports_allocated: 2,
        host: HostInfo {
            hostname: format!("{name}.example"),
            os: "Debian GNU/Linux 12".into(),
            kernel: "6.1.0".into(),
            cpus: 4,
            mem_total_mb: 8192.0,
            mem_available_mb: 6000.0,
            disk_total_mb: 52224.0,
            disk_available_mb: 40000.0,
            load_avg: [0.42, 0.3, 0.2],
            cpu_usage_percent: 12.5,
        },
        active_tasks: 2,
        max_tasks: None,
        registered_at: now() - TimeDelta::hours(3),
        last_heartbeat_at: now() - TimeDelta::seconds(2),
    }
}

pub fn task(id: &str, state: TaskState) -> Task {
    let definition = TaskDefinition {
        name: id.split('.').next().unwrap_or(id).into(),
        cmd: Some("hello --port $PORT0".into()),
        resources: Resources::new(0.25, 64.0, 0.0),
        ports: vec![
            PortRequest {
                name: Some("http".into()),
                port: 0,
            },
            PortRequest::default(),
        ],
        health_checks: vec![HealthCheck {
            path: Some("/health".into()),
            ..HealthCheck::new(HealthProtocol::Http)
        }],
        kill_grace_period_seconds: 5.0,
        labels: BTreeMap::from([("drover.app".to_string(), "/web".to_string())]),
        env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
        ..Default::default()
    };
    let ended = state.is_terminal();
    Task {
        spec: TaskSpec {
            id: TaskId::from(id),
            node: "n1".into(),
            definition,
            host_ports: vec![31005, 31006],
        },
        state,
        goal: if state == TaskState::Killed {
            TaskGoal::Kill
        } else {
            TaskGoal::Run
        },
        pid: Some(4242),
        exit: ended.then_some(ExitStatus {
            code: None,
            signal: Some(15),
        }),
        message: ended.then(|| "killed by request".to_string()),
        health: Some(HealthReport {
            alive: true,
            consecutive_failures: 0,
            last_check_at: Some(now()),
            last_failure: None,
        }),
        staged_at: now() - TimeDelta::minutes(10),
        started_at: Some(now() - TimeDelta::minutes(9)),
        finished_at: ended.then(|| now() - TimeDelta::minutes(1)),
        updated_at: now() - TimeDelta::minutes(1),
    }
}
