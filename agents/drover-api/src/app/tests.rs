//! Unit tests of parsing, validation and conversion.

#![allow(clippy::unwrap_used)] // tests may unwrap

use serde_json::json;

use super::*;
use crate::task::HealthProtocol;

fn parse(v: serde_json::Value) -> Result<(AppDefinition, Vec<String>), ApiError> {
    AppDefinition::from_marathon(&v)
}

fn err_field(v: serde_json::Value) -> String {
    parse(v).unwrap_err().field.unwrap_or_default()
}

#[test]
fn minimal_app_gets_marathons_defaults() {
    let (app, ignored) = parse(json!({"id": "web", "cmd": "sleep 1"})).unwrap();
    assert_eq!(app.id.as_str(), "/web");
    assert_eq!(app.instances, 1);
    assert_eq!(app.resources, Resources::new(1.0, 128.0, 0.0));
    assert_eq!(
        app.upgrade_strategy,
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0
        }
    );
    assert_eq!(app.backoff_seconds, 1.0);
    assert_eq!(app.backoff_factor, 1.15);
    assert_eq!(app.max_launch_delay_seconds, 3600.0);
    assert_eq!(app.kill_selection, KillSelection::YoungestFirst);
    // Marathon gives a host-networking app without port fields one random port.
    assert_eq!(app.port_definitions.len(), 1);
    assert_eq!(app.progress_deadline_seconds, 600.0);
    assert!(!app.auto_revert);
    assert!(ignored.is_empty());
}

#[test]
fn numbers_as_strings_are_accepted() {
    let (app, _) =
        parse(json!({"id": "/a", "cmd": "x", "cpus": "0.5", "mem": "64", "instances": "3"}))
            .unwrap();
    assert_eq!(app.resources.cpus, 0.5);
    assert_eq!(app.resources.mem, 64.0);
    assert_eq!(app.instances, 3);
}

#[test]
fn unknown_and_unsupported_fields_are_reported_by_path() {
    let (_, ignored) = parse(json!({
        "id": "/a", "cmd": "x", "tty": true, "frobnicate": 1,
        "acceptedResourceRoles": ["*"],
        "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/", "ipProtocol": "IPv6", "portIndex": 0, "bogus": 1}],
        "container": {"type": "DOCKER", "docker": {"image": "x", "pullConfig": {"secret": "s"}, "requirePorts": true}}
    }))
    .unwrap();
    assert_eq!(
        ignored,
        vec![
            "acceptedResourceRoles",
            "container.docker.pullConfig",
            "container.docker.requirePorts",
            "frobnicate",
            "healthChecks[0].bogus",
            "healthChecks[0].ipProtocol",
            "tty"
        ]
    );
}

#[test]
fn ids_follow_marathons_rules() {
    for ok in ["web", "/shop/web", "/a.b/c-d", "/a/../b", "x1"] {
        assert!(AppId::parse(ok).is_ok(), "{ok}");
    }
    assert_eq!(AppId::parse("/a/../b").unwrap().as_str(), "/b");
    for bad in [
        "",
        "/",
        "Sleep",
        "/app-",
        "/nest/-ted",
        "/nest./ted",
        "/asd asd",
        "/asd/sadf+",
        "/test/.",
        "/../x",
        "/.../a",
        "/a/tasks",
        "//a",
    ] {
        assert!(AppId::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn rejections_name_the_field() {
    let cases = [
        (json!({"id": "/a"}), "cmd"),
        (json!({"id": "/a", "cmd": "x", "args": ["y"]}), "cmd"),
        (json!({"id": "/A", "cmd": "x"}), "id"),
        (json!({"id": "/a", "cmd": "x", "cpus": -1}), "cpus"),
        (json!({"id": "/a", "cmd": "x", "mem": 1e12}), "mem"),
        // Marathon's schema floors: cpus 0.001; mem above zero.
        (json!({"id": "/a", "cmd": "x", "cpus": 0}), "cpus"),
        (json!({"id": "/a", "cmd": "x", "cpus": 0.0005}), "cpus"),
        (json!({"id": "/a", "cmd": "x", "mem": 0}), "mem"),
        (
            json!({"id": "/a", "cmd": "x", "instances": 1001}),
            "instances",
        ),
        (
            json!({"id": "/a", "cmd": "x", "instances": 100000}),
            "instances",
        ),
        (
            json!({"id": "/a", "cmd": "x", "instances": -1}),
            "instances",
        ),
        (
            json!({"id": "/a", "cmd": "x", "constraints": [["rack", "NEAR"]]}),
            "constraints[0]",
        ),
        (
            json!({"id": "/a", "cmd": "x", "constraints": [["rack", "LIKE", "*"]]}),
            "constraints[0]",
        ),
        (
            json!({"id": "/a", "cmd": "x", "ports": [], "healthChecks": [{"protocol": "HTTP"}]}),
            "healthChecks[0].portIndex",
        ),
        (
            json!({"id": "/a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1.5}}),
            "upgradeStrategy.minimumHealthCapacity",
        ),
        (
            json!({"id": "/a", "cmd": "x", "upgradeStrategy": {"maximumOverCapacity": -0.1}}),
            "upgradeStrategy.maximumOverCapacity",
        ),
        (
            json!({"id": "/a", "cmd": "x", "portDefinitions": [{"port": 0, "name": "h"}, {"port": 0, "name": "h"}]}),
            "portDefinitions",
        ),
        (
            json!({"id": "/a", "cmd": "x", "env": {"S": {"secret": "s"}}}),
            "env.S",
        ),
        (
            json!({"id": "/a", "cmd": "x", "killSelection": "RANDOM"}),
            "killSelection",
        ),
        (
            json!({"id": "/a", "cmd": "x", "container": {}}),
            "container.docker",
        ),
        (
            json!({"id": "/a", "cmd": "x", "taskKillGracePeriodSeconds": 7200}),
            "taskKillGracePeriodSeconds",
        ),
    ];
    for (v, field) in cases {
        assert_eq!(err_field(v.clone()), field, "{v}");
    }
}

#[test]
fn constraints_parse_in_both_forms() {
    let (app, _) = parse(json!({"id": "/a", "cmd": "x", "constraints": [
        ["hostname", "UNIQUE"], ["rack", "GROUP_BY", "3"], ["rack", "GROUP_BY"],
        {"fieldName": "zone", "operator": "LIKE", "value": "eu-.*"}, ["rack", "MAX_PER", "2"], ["os", "IS", "linux"]
    ]}))
    .unwrap();
    let ops: Vec<_> = app.constraints.iter().map(|c| c.operator.clone()).collect();
    assert_eq!(
        ops,
        vec![
            ConstraintOperator::Unique,
            ConstraintOperator::GroupBy(Some(3)),
            ConstraintOperator::GroupBy(None),
            ConstraintOperator::Like("eu-.*".into()),
            ConstraintOperator::MaxPer(2),
            ConstraintOperator::Is("linux".into()),
        ]
    );
    assert_eq!(
        app.constraints[1].to_marathon(),
        json!(["rack", "GROUP_BY", "3"])
    );
}

#[test]
fn bridge_app_converts_to_a_task() {
    let (mut app, _) = parse(json!({
        "id": "/shop/web", "cmd": "serve", "instances": 2, "cpus": 0.5, "mem": 64,
        "container": {"type": "DOCKER", "docker": {"image": "python:3", "network": "BRIDGE",
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"}, {"containerPort": 443, "hostPort": 0, "name": "https"}]}},
        "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "path": "/health"}, {"protocol": "HTTPS", "portIndex": 1}],
        "taskKillGracePeriodSeconds": 30
    }))
    .unwrap();
    app.version = Some("2026-01-01T00:00:00Z".into());
    let conv = app.to_task_definition();
    let t = &conv.task;
    assert_eq!(t.name, "/shop/web");
    assert_eq!(t.labels[crate::task::labels::APP_ID], "/shop/web");
    assert_eq!(
        t.labels[crate::task::labels::VERSION],
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(
        t.ports
            .iter()
            .map(|p| p.name.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("http"), Some("https")]
    );
    assert_eq!(t.health_checks[0].protocol, HealthProtocol::Http);
    assert_eq!(t.health_checks[1].protocol, HealthProtocol::Tcp);
    assert_eq!(t.health_checks[1].port_index, Some(1));
    assert_eq!(t.kill_grace_period_seconds, 30.0);
    assert!(conv.not_carried.iter().any(|n| n.contains("HTTPS")));
    t.validate("task.").unwrap();
    let c: Container = serde_json::from_value(t.container.clone().unwrap()).unwrap();
    assert_eq!(c.image.as_deref(), Some("python:3"));
    assert_eq!(c.network, NetworkMode::Bridge);
}

#[test]
fn require_ports_decides_fixed_host_ports() {
    let (app, _) = parse(json!({"id": "/a", "cmd": "x", "ports": [8080, 0]})).unwrap();
    assert!(app.host_ports().iter().all(|p| p.port == 0));
    let (app, _) =
        parse(json!({"id": "/a", "cmd": "x", "ports": [8080, 0], "requirePorts": true})).unwrap();
    assert_eq!(
        app.host_ports().iter().map(|p| p.port).collect::<Vec<_>>(),
        vec![8080, 0]
    );
}

#[test]
fn definition_round_trips_through_serde() {
    let (app, _) = parse(
        json!({"id": "/a", "cmd": "x", "constraints": [["rack", "CLUSTER", "r1"]],
        "container": {"type": "DOCKER", "docker": {"image": "busybox"}}}),
    )
    .unwrap();
    let s = serde_json::to_string(&app).unwrap();
    let back: AppDefinition = serde_json::from_str(&s).unwrap();
    assert_eq!(back, app);
}

#[test]
fn malformed_json_is_a_malformed_body() {
    let e = parse_app_json("{\"id\":\"/test").unwrap_err();
    assert_eq!(e.code, crate::ErrorCode::MalformedBody);
}

#[test]
fn mesos_container_without_image_runs_as_a_process() {
    let (app, _) =
        parse(json!({"id": "/m", "cmd": "sleep 1", "args": [], "container": {"type": "MESOS"}}))
            .unwrap();
    assert_eq!(app.args, None);
    let t = app.to_task_definition().task;
    assert_eq!(t.container, None);
    t.validate("task.").unwrap();
}

#[test]
fn null_fields_from_marathon_get_output_are_absent() {
    let (app, ignored) = parse(
        json!({"id": "/n", "cmd": "x", "args": null, "user": null, "container": null,
        "healthChecks": [], "constraints": [], "env": {}, "labels": {}}),
    )
    .unwrap();
    assert_eq!(app.user, None);
    assert!(app.container.is_none());
    assert!(ignored.is_empty());
}

#[test]
fn validate_checks_typed_definitions() {
    let mut app = AppDefinition::new(AppId::parse("/t").unwrap(), "run");
    app.validate().unwrap();
    app.upgrade_strategy.maximum_over_capacity = 2.0;
    assert_eq!(
        app.validate().unwrap_err().field.as_deref(),
        Some("upgradeStrategy.maximumOverCapacity")
    );
}

#[test]
fn refusals_are_marked_unsupported_and_name_the_field() {
    for (v, field) in [
        (json!({"id": "/a", "cmd": "x", "gpus": 1}), "gpus"),
        (
            json!({"id": "/a", "cmd": "x", "env": {"P": {"secret": "s"}}}),
            "env.P",
        ),
        (
            json!({"id": "/a", "cmd": "x", "ipAddress": {"networkName": "n"}}),
            "ipAddress",
        ),
        (
            json!({"id": "/a", "container": {"type": "DOCKER", "docker": {"image": "i"},
                "volumes": [{"containerPath": "d", "mode": "RW", "persistent": {"size": 1}}]}}),
            "container.volumes[0].persistent",
        ),
    ] {
        let e = parse(v).unwrap_err();
        assert!(is_unsupported(&e), "{e}");
        assert_eq!(e.field.as_deref(), Some(field));
    }
    assert!(!is_unsupported(
        &parse(json!({"id": "/a", "cmd": "x", "gpus": -1})).unwrap_err()
    ));
    // A Docker container may join a named network.
    let (app, _) = parse(json!({"id": "/a", "ipAddress": {"networkName": "n"},
        "container": {"type": "DOCKER", "docker": {"image": "i", "network": "USER"}}}))
    .unwrap();
    assert_eq!(
        app.container.unwrap().network,
        NetworkMode::User(Some("n".into()))
    );
}

#[test]
fn typed_definitions_meet_the_same_limits() {
    let (mut app, _) = parse(json!({"id": "/a", "cmd": "x", "instances": MAX_INSTANCES})).unwrap();
    app.validate().unwrap();
    app.instances = MAX_INSTANCES + 1;
    let e = app.validate().unwrap_err();
    assert_eq!(e.field.as_deref(), Some("instances"));
    assert!(e.message.contains("limit of 1000"), "{}", e.message);
    app.instances = 1;
    app.resources.cpus = 0.0;
    assert_eq!(app.validate().unwrap_err().field.as_deref(), Some("cpus"));
    // Marathon's defaults when a definition gives none: 1 CPU, 128 MiB.
    let (app, _) = parse(json!({"id": "/a", "cmd": "x"})).unwrap();
    assert_eq!((app.resources.cpus, app.resources.mem), (1.0, 128.0));
}
