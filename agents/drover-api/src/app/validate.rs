//! The rules an app definition must satisfy, with Marathon's limits and messages.

use std::collections::BTreeSet;

use super::{AppDefinition, ConstraintOperator, ContainerKind, MAX_INSTANCES, NetworkMode};
use crate::ApiError;
use crate::task::HealthCheck;

type Result<T> = std::result::Result<T, ApiError>;

/// Longest canonical app id; keeps the task name within [`crate::task::TaskDefinition`]'s limit.
pub const MAX_ID_LEN: usize = 150;

/// Last id segments Marathon reserves for its own URL paths.
const RESERVED_SEGMENTS: [&str; 3] = ["restart", "tasks", "versions"];

/// Canonicalises a Marathon path id (`web`, `/shop/web`, `/a/../b`) or says what is wrong.
pub(super) fn app_id(raw: &str) -> std::result::Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".to_string());
    }
    if raw.ends_with("/.") || raw.ends_with("/..") || raw == "." || raw == ".." {
        return Err("must not end with any of the following reserved keywords: restart, tasks, versions, ., ..".to_string());
    }
    let mut out: Vec<&str> = Vec::new();
    let body = raw.strip_prefix('/').unwrap_or(raw);
    for seg in body.split('/') {
        match seg {
            // A trailing slash is harmless; an empty segment in the middle is not.
            "" if out.is_empty() && body.is_empty() => {}
            "" => return Err(format!("{raw:?} has an empty path segment")),
            "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(format!("{raw:?}: identifier is not child of '/..'"));
                }
            }
            s if segment_ok(s) => out.push(s),
            s => {
                return Err(format!(
                    "segment {s:?} is invalid: use lower-case letters, digits, '-' and '.', with '-' and '.' only inside a segment (Marathon's id rule)"
                ));
            }
        }
    }
    let Some(last) = out.last() else {
        return Err("must name an app, not the root group".to_string());
    };
    if RESERVED_SEGMENTS.contains(last) {
        return Err(format!("must not end with the reserved keyword {last:?}"));
    }
    let id = format!("/{}", out.join("/"));
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "is {} characters long; the limit is {MAX_ID_LEN}",
            id.len()
        ));
    }
    Ok(id)
}

/// Marathon's segment rule: dot-separated labels of `[a-z0-9]` with inner `-`.
fn segment_ok(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && b.first().is_some_and(alnum)
            && b.last().is_some_and(alnum)
            && b.iter().all(|c| alnum(c) || *c == b'-')
    })
}

/// Marathon's executor rule: `//cmd`, a path without empty segments or trailing slash, or "".
pub(super) fn executor(e: &str) -> std::result::Result<(), String> {
    if e.is_empty() || e == "//cmd" {
        return Ok(());
    }
    let body = e.strip_prefix('/').unwrap_or(e);
    if !body.is_empty() && body.split('/').all(|s| !s.is_empty()) {
        Ok(())
    } else {
        Err(format!(
            "{e:?} must be //cmd or a path without empty segments or a trailing slash"
        ))
    }
}

/// A fetch URI must be a syntactically valid URI (RFC 3986 characters, a sane scheme).
pub(super) fn uri(u: &str) -> std::result::Result<(), String> {
    if u.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    if let Some(c) = u
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\\\"<>^`{|}".contains(*c))
    {
        return Err(format!("URI has invalid syntax: {u:?} contains {c:?}"));
    }
    if let Some((scheme, _)) = u.split_once(':') {
        let ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        // A colon after a slash belongs to the path, not to a scheme.
        if !ok && !scheme.contains('/') {
            return Err(format!("URI has invalid syntax: bad scheme {scheme:?}"));
        }
    }
    let b = u.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err("URI has invalid syntax: '%' not followed by two hex digits".to_string());
        }
    }
    Ok(())
}

/// Builds a constraint operator from Marathon's `[field, OP, value]`, with Marathon's rules.
pub(super) fn constraint(
    field: &str,
    op: &str,
    value: Option<String>,
) -> std::result::Result<ConstraintOperator, String> {
    if field.trim().is_empty() {
        return Err("illegal constraint specification: the field must not be empty".to_string());
    }
    let need =
        |v: Option<String>, what: &str| v.filter(|s| !s.is_empty()).ok_or_else(|| what.to_string());
    let op = match op {
        "UNIQUE" => match value {
            Some(v) if !v.is_empty() => return Err(format!("UNIQUE does not accept a value (got {v:?})")),
            _ => ConstraintOperator::Unique,
        },
        "CLUSTER" => ConstraintOperator::Cluster(value.filter(|v| !v.is_empty())),
        "GROUP_BY" => match value.filter(|v| !v.is_empty()) {
            None => ConstraintOperator::GroupBy(None),
            Some(v) => ConstraintOperator::GroupBy(Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("GROUP_BY must define a positive integer value or else no value at all (got {v:?})"))?,
            )),
        },
        "MAX_PER" => {
            let v = need(value, "MAX_PER requires an integer value")?;
            ConstraintOperator::MaxPer(
                v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("MAX_PER requires a positive integer value (got {v:?})"))?,
            )
        }
        "LIKE" | "UNLIKE" => {
            let v = need(value, "LIKE and UNLIKE require a non-empty regular expression value")?;
            if let Err(e) = regex::Regex::new(&format!("^(?:{v})$")) {
                return Err(format!("{v:?} is not a valid regular expression: {}", last_line(&e.to_string())));
            }
            if op == "LIKE" { ConstraintOperator::Like(v) } else { ConstraintOperator::Unlike(v) }
        }
        "IS" => {
            let v = need(value, "IS requires a value")?;
            // Mesos attribute values are text ([a-zA-Z0-9_/.-]) or scalars; ranges and sets
            // cannot be compared with IS.
            let text = v.chars().all(|c| c.is_ascii_alphanumeric() || "_/.-".contains(c));
            if !text && v.parse::<f64>().is_err() {
                return Err(format!("IS only supports Mesos text and float values (got {v:?})"));
            }
            ConstraintOperator::Is(v)
        }
        other => {
            return Err(format!(
                "operator {other:?} is unknown: must be one of UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS"
            ));
        }
    };
    Ok(op)
}

fn last_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

fn seconds(field: &str, v: f64, max: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(ApiError::invalid(
            field,
            format!("got {v}, expected between 0 and {max} seconds"),
        ));
    }
    Ok(())
}

/// Checks a typed definition; the first problem names its field.
pub(super) fn app(app: &AppDefinition) -> Result<()> {
    app_id(app.id.as_str()).map_err(|m| ApiError::invalid("id", m))?;
    let has_cmd = app.cmd.is_some();
    let has_args = app.args.as_ref().is_some_and(|a| !a.is_empty());
    if has_cmd && has_args {
        return Err(ApiError::invalid(
            "cmd",
            "AppDefinition must contain one of 'cmd' or 'args', not both",
        ));
    }
    if app.cmd.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(ApiError::invalid("cmd", "must not be empty"));
    }
    if app
        .args
        .as_ref()
        .is_some_and(|a| a.iter().any(|s| s.contains('\0')))
    {
        return Err(ApiError::invalid("args", "must not contain NUL characters"));
    }
    if !has_cmd && !has_args && app.image().is_none() {
        return Err(ApiError::invalid(
            "cmd",
            "AppDefinition must contain one of 'cmd' or 'args', and/or a container image",
        ));
    }
    if app.instances > MAX_INSTANCES {
        return Err(ApiError::invalid(
            "instances",
            super::too_many_instances(app.instances),
        ));
    }
    for (name, v) in [
        ("cpus", app.resources.cpus),
        ("mem", app.resources.mem),
        ("disk", app.resources.disk),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(ApiError::invalid(
                name,
                format!("got {v}, expected 0.0 or more"),
            ));
        }
    }
    app.resources.validate_task("")?;
    for k in app.env.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(ApiError::invalid(
                format!("env.{k}"),
                format!("{k:?} is not a valid variable name"),
            ));
        }
    }
    if let Some(u) = &app.user
        && (u.trim().is_empty() || u.contains('\0'))
    {
        return Err(ApiError::invalid("user", "must be a user name"));
    }
    if let Some(c) = &app.container {
        if c.kind == ContainerKind::Docker && c.image.is_none() {
            return Err(ApiError::invalid(
                "container.docker.image",
                "is required for a DOCKER container",
            ));
        }
        if c.kind == ContainerKind::Mesos && c.image.is_none() && c.network != NetworkMode::Host {
            return Err(ApiError::invalid(
                "container",
                "a MESOS container without an image runs on the host network",
            ));
        }
    }

    // Ports: unique names across definitions and mappings, unique fixed ports.
    let mut names = BTreeSet::new();
    for n in app.port_names() {
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ApiError::invalid(
                "portDefinitions",
                format!("port name {n:?} must be [A-Za-z0-9_-]+"),
            ));
        }
        if !names.insert(n) {
            return Err(ApiError::invalid(
                "portDefinitions",
                format!("port names must be unique ({n:?} repeats)"),
            ));
        }
    }
    let mut fixed = BTreeSet::new();
    for p in &app.port_definitions {
        if p.port != 0 && !fixed.insert(p.port) {
            return Err(ApiError::invalid(
                "portDefinitions",
                format!("ports must be unique ({} repeats)", p.port),
            ));
        }
    }
    let host_ports = app.host_ports();
    let mut fixed_host = BTreeSet::new();
    for p in &host_ports {
        if p.port != 0 && !fixed_host.insert(p.port) {
            return Err(ApiError::invalid(
                "container.portMappings",
                format!("host ports must be unique ({} repeats)", p.port),
            ));
        }
    }
    if host_ports.len() > 100 {
        return Err(ApiError::invalid(
            "portDefinitions",
            "at most 100 ports per app",
        ));
    }

    // Health checks: the task model's checks (intervals, port index) plus Marathon's.
    let port_slots = health_port_slots(app);
    for (i, hc) in app.health_checks.iter().enumerate() {
        let prefix = format!("healthChecks[{i}].");
        if hc.protocol.needs_port() && hc.port.is_none() {
            let idx = hc.port_index.unwrap_or(0);
            if idx >= port_slots {
                return Err(ApiError::invalid(
                    format!("healthChecks[{i}].portIndex"),
                    format!(
                        "health check port indices must address an element of the ports array or container port mappings: index {idx}, {port_slots} port(s)"
                    ),
                ));
            }
        }
        if hc.protocol == super::AppHealthProtocol::Command
            && hc.command.as_deref().is_none_or(|c| c.trim().is_empty())
        {
            return Err(ApiError::invalid(
                format!("{prefix}command"),
                "a COMMAND health check needs command.value",
            ));
        }
        // Reuse the task model's limits on the timing fields so the converted task validates.
        let mut probe = HealthCheck::new(crate::task::HealthProtocol::Tcp);
        probe.port = Some(1);
        probe.grace_period_seconds = hc.grace_period_seconds;
        probe.interval_seconds = hc.interval_seconds;
        probe.timeout_seconds = hc.timeout_seconds;
        probe.delay_seconds = hc.delay_seconds;
        probe.validate(&prefix, 0)?;
    }
    let port_names: BTreeSet<&str> = app.port_names().into_iter().collect();
    for (i, rc) in app.readiness_checks.iter().enumerate() {
        if app.readiness_checks[..i].iter().any(|o| o.name == rc.name) {
            return Err(ApiError::invalid(
                format!("readinessChecks[{i}].name"),
                format!("{:?} names another readiness check too", rc.name),
            ));
        }
        if !port_names.contains(rc.port_name.as_str()) {
            return Err(ApiError::invalid(
                format!("readinessChecks[{i}].portName"),
                format!(
                    "{:?} names no port of the app (ports: {:?})",
                    rc.port_name, port_names
                ),
            ));
        }
        seconds(
            &format!("readinessChecks[{i}].intervalSeconds"),
            rc.interval_seconds,
            86_400.0,
        )?;
        seconds(
            &format!("readinessChecks[{i}].timeoutSeconds"),
            rc.timeout_seconds,
            86_400.0,
        )?;
        if rc.timeout_seconds >= rc.interval_seconds && rc.interval_seconds > 0.0 {
            return Err(ApiError::invalid(
                format!("readinessChecks[{i}].timeoutSeconds"),
                "must be less than intervalSeconds",
            ));
        }
    }

    let us = &app.upgrade_strategy;
    for (name, v) in [
        ("minimumHealthCapacity", us.minimum_health_capacity),
        ("maximumOverCapacity", us.maximum_over_capacity),
    ] {
        if !v.is_finite() || !(0.0..=1.0).contains(&v) {
            return Err(ApiError::invalid(
                format!("upgradeStrategy.{name}"),
                format!("got {v}, expected between 0.0 and 1.0"),
            ));
        }
    }
    if app.is_single_instance() {
        if app.instances > 1 {
            return Err(ApiError::invalid(
                "instances",
                "single instance app may only have one instance",
            ));
        }
        if us.minimum_health_capacity != 0.0 || us.maximum_over_capacity != 0.0 {
            return Err(ApiError::invalid(
                "upgradeStrategy",
                "a single instance app needs minimumHealthCapacity 0 and maximumOverCapacity 0",
            ));
        }
    }
    seconds("backoffSeconds", app.backoff_seconds, 86_400.0)?;
    if !app.backoff_factor.is_finite() || !(1.0..=100.0).contains(&app.backoff_factor) {
        return Err(ApiError::invalid(
            "backoffFactor",
            format!("got {}, expected between 1 and 100", app.backoff_factor),
        ));
    }
    seconds(
        "maxLaunchDelaySeconds",
        app.max_launch_delay_seconds,
        86_400.0 * 7.0,
    )?;
    if let Some(g) = app.task_kill_grace_period_seconds {
        seconds("taskKillGracePeriodSeconds", g, 3600.0)?;
    }
    seconds(
        "progressDeadlineSeconds",
        app.progress_deadline_seconds,
        86_400.0 * 7.0,
    )?;
    if app.dependencies.contains(&app.id) {
        return Err(ApiError::invalid(
            "dependencies",
            "an app cannot depend on itself",
        ));
    }
    if let Some(v) = &app.version
        && (v.trim().is_empty() || v.len() > 100)
    {
        return Err(ApiError::invalid("version", "must be 1 to 100 characters"));
    }
    for (i, c) in app.constraints.iter().enumerate() {
        constraint(&c.field, c.operator.name(), c.operator.value())
            .map_err(|m| ApiError::invalid(format!("constraints[{i}]"), m))?;
    }
    Ok(())
}

/// How many ports a health check's `portIndex` may address: the port mappings of a
/// bridge/user container, else the port definitions.
fn health_port_slots(app: &AppDefinition) -> usize {
    match &app.container {
        Some(c) if !c.port_mappings.is_empty() => c.port_mappings.len(),
        _ => app.port_definitions.len(),
    }
}
