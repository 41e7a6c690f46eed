//! Tables and JSON on hand-built drover-api values.

mod common;

use chrono::TimeDelta;
use common::{node, now, task};
use drover_api::TaskState;
use drover_api::meta::VersionInfo;
use drover_api::node::{Node, NodeState};
use drover_api::task::{Task, TaskDefinition};
use drover_cli::output::{self, VersionReport};

#[test]
fn nodes_table_has_the_columns_and_values() {
    let text = output::nodes_table(&[
        node("n2", NodeState::Draining),
        node("n1", NodeState::Ready),
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for col in [
        "NAME",
        "STATE",
        "VERSION",
        "CPUS free/total",
        "MEM MiB free/total",
        "DISK MiB free/total",
        "TASKS",
        "LOAD 1m",
        "ATTRIBUTES",
    ] {
        assert!(lines[0].contains(col), "missing column {col}: {}", lines[0]);
    }
    assert!(lines[1].starts_with("n1"), "sorted by name: {text}");
    for value in [
        "ready",
        "0.1.0",
        "2.5/4",
        "6656/7680",
        "51200/51200",
        "0.42",
        "rack=r1,zone=a",
    ] {
        assert!(lines[1].contains(value), "missing {value}: {}", lines[1]);
    }
    assert!(lines[2].contains("draining"));
    assert!(
        !text.lines().any(|l| l.ends_with(' ')),
        "no trailing spaces"
    );
}

#[test]
fn node_details_show_host_ledger_and_tasks() {
    let text = output::node_details(
        &node("n1", NodeState::Ready),
        &[task("web.a1", TaskState::Healthy)],
        now(),
    );
    for want in [
        "http://n1:5051",
        "31000-31999 (2 of 1000 in use)",
        "n1.example",
        "Debian GNU/Linux 12",
        "6000 available of 8192",
        "0.42 0.30 0.20",
        "12.5%",
        "reserved",
        "allocated",
        "web.a1",
        "3h ago",
        "docker",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let free = text
        .lines()
        .find(|l| l.trim_start().starts_with("free"))
        .expect("free row");
    assert!(free.contains("2.5") && free.contains("6656"), "{free}");
}

#[test]
fn tasks_table_adds_exit_only_when_a_task_ended() {
    let active = output::tasks_table(&[task("web.a1", TaskState::Running)], now());
    let header = active.lines().next().expect("header");
    for col in [
        "ID", "NAME", "NODE", "STATE", "PID", "PORTS", "CPUS", "MEM", "AGE",
    ] {
        assert!(header.contains(col), "missing column {col}: {header}");
    }
    assert!(!header.contains("EXIT"));
    let row = active.lines().nth(1).expect("row");
    for value in [
        "web.a1",
        "web",
        "n1",
        "running",
        "4242",
        "http:31005,31006",
        "0.25",
        "64",
        "9m",
    ] {
        assert!(row.contains(value), "missing {value}: {row}");
    }

    let mixed = output::tasks_table(
        &[
            task("web.a1", TaskState::Running),
            task("web.b2", TaskState::Killed),
        ],
        now(),
    );
    assert!(mixed.lines().next().expect("header").contains("EXIT"));
    assert!(mixed.contains("signal 15"));
}

#[test]
fn task_details_name_everything() {
    let text = output::task_details(&task("web.b2", TaskState::Killed), now());
    for want in [
        "web.b2",
        "killed",
        "signal 15",
        "killed by request",
        "hello --port $PORT0",
        "cpus 0.25, mem 64 MiB",
        "http:31005,31006",
        "GREETING=hi",
        "drover.app=/web",
        "HTTP /health on port index 0 every 60s",
        "alive",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn json_round_trips_the_api_types() {
    let nodes = vec![node("n1", NodeState::Ready)];
    let back: Vec<Node> =
        serde_json::from_str(&output::to_json(&nodes).expect("json")).expect("nodes back");
    assert_eq!(back, nodes);
    let tasks = vec![
        task("web.a1", TaskState::Running),
        task("web.b2", TaskState::Killed),
    ];
    let back: Vec<Task> =
        serde_json::from_str(&output::to_json(&tasks).expect("json")).expect("tasks back");
    assert_eq!(back, tasks);
    let report = VersionReport {
        cli: VersionInfo {
            name: "drover".into(),
            version: "0.1.0".into(),
        },
        master: None,
    };
    let json = output::to_json(&report).expect("json");
    assert!(!json.contains("master"), "{json}");
    assert_eq!(
        serde_json::from_str::<VersionReport>(&json).expect("report back"),
        report
    );
}

#[test]
fn numbers_and_ages_read_well() {
    assert_eq!(output::num(0.1), "0.1");
    assert_eq!(output::num(32.0), "32");
    assert_eq!(output::num(1.0 / 3.0), "0.33");
    assert_eq!(output::num(0.1 + 0.2), "0.3");
    assert_eq!(output::age(TimeDelta::seconds(42)), "42s");
    assert_eq!(output::age(TimeDelta::seconds(3 * 3600 + 12 * 60)), "3h12m");
    assert_eq!(output::age(TimeDelta::days(4)), "4d");
    assert_eq!(output::age(TimeDelta::seconds(-5)), "0s");
}

#[test]
fn argv_commands_are_quoted_for_display() {
    let def = TaskDefinition {
        name: "x".into(),
        args: Some(vec!["/bin/echo".into(), "a b".into(), "it's".into()]),
        ..Default::default()
    };
    assert_eq!(output::command_line(&def), r#"/bin/echo 'a b' 'it'\''s'"#);
}
