//! Marathon app JSON to [`AppDefinition`], by hand, so every field's path is known.
//!
//! Each JSON object is read through an [`Obj`] cursor that remembers which keys were
//! used; whatever is left over is reported as ignored. `null` counts as absent, because
//! Marathon's own `GET /v2/apps` output (which people save and re-post) is full of nulls.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::validate;
use super::{
    AppDefinition, AppHealthCheck, AppHealthProtocol, AppId, Constraint, Container, ContainerKind,
    DockerParameter, FetchUri, KillSelection, NetworkMode, PortDefinition, PortMapping,
    PortProtocol, ReadinessCheck, UpgradeStrategy, Volume, VolumeMode,
};
use crate::error::json_kind;
use crate::{ApiError, ErrorCode};

type Result<T> = std::result::Result<T, ApiError>;

/// Parses a request body: malformed JSON is a `malformed_body` error, anything else goes
/// through [`AppDefinition::from_marathon`].
pub fn parse_app_json(body: &str) -> Result<(AppDefinition, Vec<String>)> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedBody, format!("invalid JSON: {e}")))?;
    parse_app(&value)
}

/// A JSON object being read: which keys were used, and where it sits in the document.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    used: Vec<&'a str>,
}

/// Joins a JSON path and a key: `""` + `id` = `id`, `container` + `docker` = `container.docker`.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Obj<'a>> {
        match v {
            Value::Object(map) => Ok(Obj {
                path: path.to_string(),
                map,
                used: Vec::new(),
            }),
            other => Err(ApiError::invalid(
                or_root(path),
                format!("must be an object, got {}", json_kind(other)),
            )),
        }
    }

    /// The value of `key`, marking it used; `None` when absent or null.
    fn take(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.map.get_key_value(key)?;
        self.used.push(k.as_str());
        if v.is_null() { None } else { Some(v) }
    }

    /// Whether `key` holds a non-null value (does not mark it used).
    fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Marks `key` used and reports it as ignored when it holds something.
    fn ignore(&mut self, key: &str, ignored: &mut Vec<String>) {
        if let Some(v) = self.take(key)
            && !is_empty_value(v)
        {
            ignored.push(self.field(key));
        }
    }

    /// Reports every key not used as ignored.
    fn finish(self, ignored: &mut Vec<String>) {
        for (k, v) in self.map {
            if !self.used.contains(&k.as_str()) && !v.is_null() {
                ignored.push(join(&self.path, k));
            }
        }
    }

    fn string(&mut self, key: &str) -> Result<Option<String>> {
        let field = self.field(key);
        self.take(key).map(|v| as_string(v, &field)).transpose()
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        let field = self.field(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Older Marathon (Jackson) coerced "true"/"false"; accept them too.
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(other) => Err(ApiError::invalid(
                field,
                format!("must be true or false, got {}", json_kind(other)),
            )),
        }
    }

    fn number(&mut self, key: &str) -> Result<Option<f64>> {
        let field = self.field(key);
        self.take(key).map(|v| as_number(v, &field)).transpose()
    }

    fn int(&mut self, key: &str) -> Result<Option<i64>> {
        let field = self.field(key);
        self.take(key).map(|v| as_int(v, &field)).transpose()
    }

    fn port(&mut self, key: &str) -> Result<Option<u16>> {
        let field = self.field(key);
        match self.int(key)? {
            None => Ok(None),
            Some(p) => u16::try_from(p).map(Some).map_err(|_| {
                ApiError::invalid(field, format!("{p} is not a port number (0-65535)"))
            }),
        }
    }

    fn array(&mut self, key: &str) -> Result<Option<&'a Vec<Value>>> {
        let field = self.field(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Err(ApiError::invalid(
                field,
                format!("must be an array, got {}", json_kind(other)),
            )),
        }
    }

    fn string_map(&mut self, key: &str) -> Result<BTreeMap<String, String>> {
        let field = self.field(key);
        match self.take(key) {
            None => Ok(BTreeMap::new()),
            Some(v) => string_map(v, &field),
        }
    }
}

fn or_root(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn as_string(v: &Value, field: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(ApiError::invalid(
            field,
            format!("must be a string, got {}", json_kind(other)),
        )),
    }
}

/// A number, or a string holding one (older Marathon accepted `"cpus": "0.5"`).
fn as_number(v: &Value, field: &str) -> Result<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() => Ok(n),
        _ => Err(ApiError::invalid(
            field,
            format!("must be a number, got {}", describe(v)),
        )),
    }
}

/// An integer (or an integral number, or a string holding one).
fn as_int(v: &Value, field: &str) -> Result<i64> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    let n = as_number(v, field).map_err(|_| {
        ApiError::invalid(field, format!("must be an integer, got {}", describe(v)))
    })?;
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        // The guard keeps the cast exact.
        Ok(n as i64)
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be an integer, got {n}"),
        ))
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => json_kind(other).to_string(),
    }
}

fn string_map(v: &Value, field: &str) -> Result<BTreeMap<String, String>> {
    let Value::Object(m) = v else {
        return Err(ApiError::invalid(
            field,
            format!("must be an object of strings, got {}", json_kind(v)),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, val) in m {
        let f = join(field, k);
        match val {
            Value::String(s) => {
                out.insert(k.clone(), s.clone());
            }
            other => {
                return Err(ApiError::invalid(
                    f,
                    format!("must be a string, got {}", json_kind(other)),
                ));
            }
        }
    }
    Ok(out)
}

fn in_range(field: String, v: f64, lo: f64, hi: f64) -> Result<f64> {
    if v < lo || v > hi {
        Err(ApiError::invalid(
            field,
            format!("got {v}, expected between {lo} and {hi}"),
        ))
    } else {
        Ok(v)
    }
}

/// Marathon app JSON to a validated definition plus the paths of fields Drover ignores.
pub(crate) fn parse_app(value: &Value) -> Result<(AppDefinition, Vec<String>)> {
    let mut ignored = Vec::new();
    let mut o = Obj::new(value, "")?;

    // Refusals first, so an app that uses an unsupported feature is told about the feature,
    // not about a side effect of it.
    refuse_unsupported(value)?;

    let raw_id = match o.take("id") {
        Some(v) => as_string(v, "id")?,
        None => return Err(ApiError::invalid("id", "is required")),
    };
    let id = AppId::parse(&raw_id).map_err(|m| ApiError::invalid("id", m))?;
    let mut app = AppDefinition::new(id, "");
    app.cmd = o.string("cmd")?;
    // An empty `args` (common in Marathon's own GET output) means no args.
    app.args = match o.array("args")? {
        Some(a) if !a.is_empty() => Some(
            a.iter()
                .enumerate()
                .map(|(i, v)| as_string(v, &format!("args[{i}]")))
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => None,
    };

    if let Some(n) = o.int("instances")? {
        if n < 0 {
            return Err(ApiError::invalid(
                "instances",
                format!("got {n}, expected 0 or more"),
            ));
        }
        app.instances = u32::try_from(n)
            .ok()
            .filter(|n| *n <= super::MAX_INSTANCES)
            .ok_or_else(|| ApiError::invalid("instances", super::too_many_instances(n)))?;
    }
    for (key, slot) in [("cpus", 0), ("mem", 1), ("disk", 2)] {
        if let Some(v) = o.number(key)? {
            match slot {
                0 => app.resources.cpus = v,
                1 => app.resources.mem = v,
                _ => app.resources.disk = v,
            }
        }
    }
    // gpus > 0 was refused above; 0 is Marathon's default and means nothing here.
    if let Some(g) = o.number("gpus")?
        && g < 0.0
    {
        return Err(ApiError::invalid(
            "gpus",
            format!("got {g}, expected 0 or more"),
        ));
    }

    app.env = parse_env(&mut o)?;
    app.labels = o.string_map("labels")?;
    app.user = o.string("user")?;

    let networks = parse_networks(&mut o, &mut ignored)?;
    let ip_address = parse_ip_address(&mut o, &mut ignored)?;
    if let Some(c) = o.take("container") {
        app.container = Some(parse_container(
            c,
            networks.clone(),
            ip_address.clone(),
            &mut ignored,
        )?);
    } else if let Some(net) = networks.as_ref().filter(|n| **n != NetworkMode::Host) {
        // Checked again by refuse_unsupported for the user case; bridge without an image
        // has nothing to bridge.
        return Err(ApiError::invalid(
            "networks",
            format!("network mode {net:?} needs a container image"),
        ));
    }
    let docker = app
        .container
        .as_ref()
        .is_some_and(|c| c.kind == ContainerKind::Docker);
    if ip_address.is_some()
        && docker
        && value
            .pointer("/ipAddress/discovery")
            .is_some_and(|d| !d.is_null())
    {
        return Err(ApiError::invalid(
            "ipAddress.discovery",
            "is not allowed for Docker containers",
        ));
    }

    // Ports: `ports` (legacy list of numbers) or `portDefinitions`.
    let ports = parse_legacy_ports(&mut o)?;
    let port_defs = parse_port_definitions(&mut o)?;
    let defs = match (ports, port_defs) {
        (Some(p), Some(d)) => {
            if p.iter().map(|x| x.port).ne(d.iter().map(|x| x.port)) {
                return Err(ApiError::invalid(
                    "ports",
                    "cannot specify both ports and portDefinitions",
                ));
            }
            Some(d)
        }
        (Some(p), None) => Some(p),
        (None, d) => d,
    };
    let host_networking = app
        .container
        .as_ref()
        .is_none_or(|c| c.network == NetworkMode::Host);
    match defs {
        Some(d) if host_networking => app.port_definitions = d,
        Some(d) if !d.is_empty() => {
            if ip_address.is_some() && value.get("ports").is_some_and(|p| !is_empty_value(p)) {
                return Err(ApiError::invalid(
                    "ports",
                    "non-empty ports cannot be combined with ipAddress",
                ));
            }
            // Marathon 1.3 accepted `ports` next to a bridge network and made them
            // service ports; the port mappings decide the host ports.
            let which = if value.get("portDefinitions").is_some_and(|p| !p.is_null()) {
                "portDefinitions"
            } else {
                "ports"
            };
            ignored.push(which.to_string());
        }
        Some(_) => {}
        // Marathon gives a host-networking app without any port field one random port,
        // which is why `$PORT` works in so many old examples.
        None if host_networking && ip_address.is_none() => {
            app.port_definitions = vec![PortDefinition {
                port: 0,
                protocol: PortProtocol::Tcp,
                name: None,
                labels: BTreeMap::new(),
            }]
        }
        None => {}
    }
    app.require_ports = o.bool("requirePorts")?.unwrap_or(false);

    if let Some(cs) = o.array("constraints")? {
        for (i, c) in cs.iter().enumerate() {
            app.constraints
                .push(parse_constraint(c, &format!("constraints[{i}]"))?);
        }
    }
    if let Some(hcs) = o.array("healthChecks")? {
        for (i, hc) in hcs.iter().enumerate() {
            app.health_checks.push(parse_health_check(
                hc,
                &format!("healthChecks[{i}]"),
                &mut ignored,
            )?);
        }
    }
    if let Some(rcs) = o.array("readinessChecks")? {
        for (i, rc) in rcs.iter().enumerate() {
            app.readiness_checks.push(parse_readiness_check(
                rc,
                &format!("readinessChecks[{i}]"),
                &mut ignored,
            )?);
        }
    }
    if let Some(us) = o.take("upgradeStrategy") {
        let mut u = Obj::new(us, "upgradeStrategy")?;
        let mut s = UpgradeStrategy::default();
        if let Some(v) = u.number("minimumHealthCapacity")? {
            s.minimum_health_capacity = in_range(u.field("minimumHealthCapacity"), v, 0.0, 1.0)?;
        }
        if let Some(v) = u.number("maximumOverCapacity")? {
            s.maximum_over_capacity = in_range(u.field("maximumOverCapacity"), v, 0.0, 1.0)?;
        }
        u.finish(&mut ignored);
        app.upgrade_strategy = s;
    }
    if let Some(v) = o.number("backoffSeconds")? {
        app.backoff_seconds = v;
    }
    if let Some(v) = o.number("backoffFactor")? {
        app.backoff_factor = v;
    }
    if let Some(v) = o.number("maxLaunchDelaySeconds")? {
        app.max_launch_delay_seconds = v;
    }
    if let Some(v) = o.take("killSelection") {
        app.kill_selection = match v.as_str() {
            Some("YOUNGEST_FIRST") => KillSelection::YoungestFirst,
            Some("OLDEST_FIRST") => KillSelection::OldestFirst,
            _ => {
                return Err(ApiError::invalid(
                    "killSelection",
                    format!(
                        "got {}, expected YOUNGEST_FIRST or OLDEST_FIRST",
                        describe(v)
                    ),
                ));
            }
        };
    }
    app.task_kill_grace_period_seconds = o.number("taskKillGracePeriodSeconds")?;
    if let Some(deps) = o.array("dependencies")? {
        for (i, d) in deps.iter().enumerate() {
            let f = format!("dependencies[{i}]");
            let s = as_string(d, &f)?;
            app.dependencies
                .push(AppId::parse(&s).map_err(|m| ApiError::invalid(f, m))?);
        }
    }
    app.fetch = parse_fetch(&mut o, &mut ignored)?;
    app.version = o.string("version")?;
    if let Some(v) = o.number("progressDeadlineSeconds")? {
        app.progress_deadline_seconds = v;
    }
    app.auto_revert = o.bool("autoRevert")?.unwrap_or(false);

    if let Some(v) = o.take("acceptedResourceRoles") {
        if v.as_array().is_some_and(|a| a.is_empty()) {
            return Err(ApiError::invalid(
                "acceptedResourceRoles",
                "must not be empty when given (omit it instead)",
            ));
        }
        // Drover has no resource roles: every node's resources are for everyone.
        ignored.push("acceptedResourceRoles".to_string());
    }
    if let Some(v) = o.take("executor") {
        let f = "executor";
        let e = as_string(v, f)?;
        validate::executor(&e).map_err(|m| ApiError::invalid(f, m))?;
        // "" and "//cmd" name the default command executor, which is what Drover runs.
        if !e.is_empty() && e != "//cmd" {
            ignored.push(f.to_string());
        }
    }
    // Known Marathon fields Drover does not act on; reported, never silently dropped.
    for key in [
        "tty",
        "unreachableStrategy",
        "check",
        "residency",
        "secrets",
        "role",
        "storeUrls",
        "gpus",
    ] {
        o.ignore(key, &mut ignored);
    }
    o.finish(&mut ignored);

    validate::app(&app)?;
    ignored.sort();
    ignored.dedup();
    Ok((app, ignored))
}

/// Refuses the features listed in [`super::REFUSED_FEATURES`], naming the field.
fn refuse_unsupported(value: &Value) -> Result<()> {
    if let Some(g) = value.get("gpus")
        && let Ok(n) = as_number(g, "gpus")
        && n > 0.0
    {
        return Err(ApiError::invalid(
            "gpus",
            "GPUs are not supported by Drover (it does not schedule GPUs)",
        ));
    }
    if let Some(Value::Object(env)) = value.get("env") {
        for (k, v) in env {
            if v.get("secret").is_some() {
                return Err(ApiError::invalid(
                    format!("env.{k}"),
                    "secrets are not supported by Drover; give the value as a plain string",
                ));
            }
        }
    }
    if let Some(Value::Array(vols)) = value.pointer("/container/volumes") {
        for (i, vol) in vols.iter().enumerate() {
            for (key, what) in [
                (
                    "persistent",
                    "persistent volumes are not supported by Drover (no reserved node-local storage)",
                ),
                (
                    "external",
                    "external volumes are not supported by Drover (no network storage driver)",
                ),
                (
                    "secret",
                    "secret volumes are not supported by Drover (no secret store)",
                ),
            ] {
                if vol.get(key).is_some_and(|v| !v.is_null()) {
                    return Err(ApiError::invalid(
                        format!("container.volumes[{i}].{key}"),
                        what,
                    ));
                }
            }
        }
    }
    let has_image = value
        .pointer("/container/docker/image")
        .is_some_and(|v| !v.is_null());
    if !has_image {
        if value.get("ipAddress").is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                "ipAddress",
                "IP-per-task networking for a plain command is not supported by Drover (no CNI networks; Docker containers may join a named network)",
            ));
        }
        if let Some(Value::Array(nets)) = value.get("networks") {
            for (i, n) in nets.iter().enumerate() {
                if n.get("mode").and_then(Value::as_str) == Some("container") {
                    return Err(ApiError::invalid(
                        format!("networks[{i}].mode"),
                        "container networks for a plain command are not supported by Drover (no CNI networks; Docker containers may join a named network)",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn parse_env(o: &mut Obj<'_>) -> Result<BTreeMap<String, String>> {
    let Some(v) = o.take("env") else {
        return Ok(BTreeMap::new());
    };
    let map = string_map(v, "env")?;
    for k in map.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(ApiError::invalid(
                format!("env.{k}"),
                format!("{k:?} is not a valid variable name"),
            ));
        }
    }
    Ok(map)
}

/// The 1.5+ `networks` array: at most one network for Drover.
fn parse_networks(o: &mut Obj<'_>, ignored: &mut Vec<String>) -> Result<Option<NetworkMode>> {
    let Some(nets) = o.array("networks")? else {
        return Ok(None);
    };
    let mut mode = None;
    for (i, n) in nets.iter().enumerate() {
        let path = format!("networks[{i}]");
        let mut no = Obj::new(n, &path)?;
        let m = no
            .string("mode")?
            .unwrap_or_else(|| "container".to_string());
        let name = no.string("name")?;
        let this = match m.as_str() {
            "host" => NetworkMode::Host,
            "container/bridge" => NetworkMode::Bridge,
            "container" => NetworkMode::User(name),
            other => {
                return Err(ApiError::invalid(
                    no.field("mode"),
                    format!("got {other:?}, expected host, container/bridge or container"),
                ));
            }
        };
        no.ignore("labels", ignored);
        no.finish(ignored);
        if mode.is_some() {
            // A Docker container joins one network at start; the rest would be ignored.
            ignored.push(path);
            continue;
        }
        mode = Some(this);
    }
    Ok(mode)
}

/// The legacy `ipAddress` object (IP-per-task): its network name, if any.
fn parse_ip_address(o: &mut Obj<'_>, ignored: &mut Vec<String>) -> Result<Option<Option<String>>> {
    let Some(ip) = o.take("ipAddress") else {
        return Ok(None);
    };
    let mut io = Obj::new(ip, "ipAddress")?;
    let name = io.string("networkName")?;
    if let Some(d) = io.take("discovery") {
        let mut dobj = Obj::new(d, "ipAddress.discovery")?;
        if let Some(ports) = dobj.array("ports")? {
            for (i, p) in ports.iter().enumerate() {
                let mut po = Obj::new(p, &format!("ipAddress.discovery.ports[{i}]"))?;
                if let Some(proto) = po.string("protocol")?
                    && proto != "tcp"
                    && proto != "udp"
                {
                    return Err(ApiError::invalid(
                        po.field("protocol"),
                        format!("got {proto:?}, expected tcp or udp"),
                    ));
                }
                po.port("number")?;
                po.string("name")?;
            }
        }
        // Discovery info is for Mesos-DNS; Drover publishes no service discovery records.
        ignored.push("ipAddress.discovery".to_string());
    }
    io.ignore("groups", ignored);
    io.ignore("labels", ignored);
    io.finish(ignored);
    Ok(Some(name))
}

fn parse_container(
    v: &Value,
    networks: Option<NetworkMode>,
    ip_address: Option<Option<String>>,
    ignored: &mut Vec<String>,
) -> Result<Container> {
    let mut c = Obj::new(v, "container")?;
    let kind = match c.string("type")?.as_deref() {
        Some("DOCKER") => ContainerKind::Docker,
        Some("MESOS") => ContainerKind::Mesos,
        Some(other) => {
            return Err(ApiError::invalid(
                "container.type",
                format!("got {other:?}, expected DOCKER or MESOS"),
            ));
        }
        // Marathon's default container type is DOCKER, which needs `docker`.
        None => ContainerKind::Docker,
    };
    let docker = c.take("docker");
    if kind == ContainerKind::Docker && docker.is_none() {
        return Err(ApiError::invalid(
            "container.docker",
            "not defined (a DOCKER container needs docker.image)",
        ));
    }
    let mut image = None;
    let mut legacy_network = None;
    let mut legacy_mappings = None;
    let mut force_pull_image = false;
    let mut privileged = false;
    let mut parameters = Vec::new();
    if let Some(d) = docker {
        let mut dobj = Obj::new(d, "container.docker")?;
        let img = dobj.string("image")?.unwrap_or_default();
        if img.trim().is_empty() {
            return Err(ApiError::invalid(
                "container.docker.image",
                "is required and must not be empty",
            ));
        }
        image = Some(img);
        if dobj.take("credential").is_some() {
            return Err(ApiError::invalid(
                "container.docker.credential",
                "must be empty (Docker credentials are not supported)",
            ));
        }
        if kind == ContainerKind::Mesos {
            for key in ["network", "parameters", "portMappings", "privileged"] {
                if dobj.has(key) {
                    return Err(ApiError::invalid(
                        dobj.field(key),
                        "must be empty for a MESOS container (use type DOCKER for Docker options)",
                    ));
                }
            }
            // The Mesos containerizer's name for forcePullImage.
            force_pull_image = dobj.bool("forcePull")?.unwrap_or(false);
        }
        if let Some(n) = dobj.string("network")? {
            legacy_network = Some(match n.as_str() {
                "HOST" => NetworkMode::Host,
                "BRIDGE" => NetworkMode::Bridge,
                "USER" => NetworkMode::User(None),
                "NONE" => NetworkMode::None,
                other => {
                    return Err(ApiError::invalid(
                        "container.docker.network",
                        format!("got {other:?}, expected HOST, BRIDGE, USER or NONE"),
                    ));
                }
            });
        }
        if let Some(pm) = dobj.array("portMappings")? {
            legacy_mappings = Some(parse_port_mappings(
                pm,
                "container.docker.portMappings",
                ignored,
            )?);
        }
        force_pull_image |= dobj.bool("forcePullImage")?.unwrap_or(false);
        privileged = dobj.bool("privileged")?.unwrap_or(false);
        if let Some(ps) = dobj.array("parameters")? {
            for (i, p) in ps.iter().enumerate() {
                let mut po = Obj::new(p, &format!("container.docker.parameters[{i}]"))?;
                let key = po.string("key")?.unwrap_or_default();
                if key.is_empty() {
                    return Err(ApiError::invalid(po.field("key"), "is required"));
                }
                let value = po.string("value")?.unwrap_or_default();
                po.finish(ignored);
                parameters.push(DockerParameter { key, value });
            }
        }
        // pullConfig names a secret with registry credentials; the node's own Docker
        // login is used instead.
        dobj.ignore("pullConfig", ignored);
        dobj.finish(ignored);
    }
    let mut port_mappings = match c.array("portMappings")? {
        Some(pm) => parse_port_mappings(pm, "container.portMappings", ignored)?,
        None => Vec::new(),
    };
    if let Some(legacy) = legacy_mappings {
        if !port_mappings.is_empty() && !legacy.is_empty() {
            return Err(ApiError::invalid(
                "container.portMappings",
                "give port mappings in container or in container.docker, not both",
            ));
        }
        if port_mappings.is_empty() {
            port_mappings = legacy;
        }
    }
    let mut volumes = Vec::new();
    if let Some(vs) = c.array("volumes")? {
        for (i, vol) in vs.iter().enumerate() {
            let path = format!("container.volumes[{i}]");
            let mut vo = Obj::new(vol, &path)?;
            let container_path = vo.string("containerPath")?.unwrap_or_default();
            if container_path.is_empty() {
                return Err(ApiError::invalid(vo.field("containerPath"), "is required"));
            }
            let Some(host_path) = vo.string("hostPath")? else {
                // Persistent, external and secret volumes were refused before parsing.
                return Err(ApiError::invalid(
                    vo.field("hostPath"),
                    "is required for a bind volume",
                ));
            };
            let mode = match vo.string("mode")?.as_deref() {
                None | Some("RW") => VolumeMode::ReadWrite,
                Some("RO") => VolumeMode::ReadOnly,
                Some(other) => {
                    return Err(ApiError::invalid(
                        vo.field("mode"),
                        format!("got {other:?}, expected RO or RW"),
                    ));
                }
            };
            vo.finish(ignored);
            volumes.push(Volume {
                container_path,
                host_path,
                mode,
            });
        }
    }
    // Seccomp and other Linux isolation settings of the Mesos containerizer.
    c.ignore("linuxInfo", ignored);
    c.finish(ignored);

    // The network: the 1.5+ `networks` array wins over the legacy docker.network.
    let network = match (networks, legacy_network) {
        (Some(n), _) => n,
        (None, Some(NetworkMode::User(_))) => NetworkMode::User(ip_address.clone().flatten()),
        (None, Some(n)) => n,
        (None, None) => match &ip_address {
            Some(name) => NetworkMode::User(name.clone()),
            None => NetworkMode::Host,
        },
    };
    if !port_mappings.is_empty() && matches!(network, NetworkMode::Host | NetworkMode::None) {
        return Err(ApiError::invalid(
            "container.portMappings",
            "port mappings need a bridge or user network (docker.network BRIDGE/USER or networks container/bridge)",
        ));
    }
    if network == NetworkMode::Bridge {
        for (i, m) in port_mappings.iter_mut().enumerate() {
            // On a bridge every mapping publishes a host port; absent means any.
            if m.host_port.is_none() {
                m.host_port = Some(0);
            }
            let _ = i;
        }
    }
    Ok(Container {
        kind,
        image,
        network,
        port_mappings,
        force_pull_image,
        privileged,
        parameters,
        volumes,
        marathon: v.clone(),
    })
}

fn parse_protocol(v: Option<String>, field: String) -> Result<PortProtocol> {
    match v.as_deref() {
        None | Some("tcp") => Ok(PortProtocol::Tcp),
        Some("udp") => Ok(PortProtocol::Udp),
        Some("udp,tcp") | Some("tcp,udp") => Ok(PortProtocol::UdpTcp),
        Some(other) => Err(ApiError::invalid(
            field,
            format!("got {other:?}, expected tcp, udp or udp,tcp"),
        )),
    }
}

fn parse_port_mappings(
    pm: &[Value],
    path: &str,
    ignored: &mut Vec<String>,
) -> Result<Vec<PortMapping>> {
    let mut out = Vec::new();
    for (i, m) in pm.iter().enumerate() {
        let mut mo = Obj::new(m, &format!("{path}[{i}]"))?;
        let container_port = mo.port("containerPort")?.unwrap_or(0);
        let host_port = mo.port("hostPort")?;
        let service_port = mo.port("servicePort")?;
        let protocol = parse_protocol(mo.string("protocol")?, mo.field("protocol"))?;
        let name = mo.string("name")?;
        let labels = mo.string_map("labels")?;
        // Mapping a port to a named network's address range; Drover's Docker user
        // networks publish no per-network host ports.
        mo.ignore("networkNames", ignored);
        mo.finish(ignored);
        out.push(PortMapping {
            container_port,
            host_port,
            service_port,
            protocol,
            name,
            labels,
        });
    }
    Ok(out)
}

fn parse_legacy_ports(o: &mut Obj<'_>) -> Result<Option<Vec<PortDefinition>>> {
    let Some(ps) = o.array("ports")? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let f = format!("ports[{i}]");
        let n = as_int(p, &f)?;
        let port = u16::try_from(n)
            .map_err(|_| ApiError::invalid(f, format!("{n} is not a port number (0-65535)")))?;
        out.push(PortDefinition {
            port,
            protocol: PortProtocol::Tcp,
            name: None,
            labels: BTreeMap::new(),
        });
    }
    Ok(Some(out))
}

fn parse_port_definitions(o: &mut Obj<'_>) -> Result<Option<Vec<PortDefinition>>> {
    let Some(ps) = o.array("portDefinitions")? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut sink = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let mut po = Obj::new(p, &format!("portDefinitions[{i}]"))?;
        let port = po.port("port")?.unwrap_or(0);
        let protocol = parse_protocol(po.string("protocol")?, po.field("protocol"))?;
        let name = po.string("name")?;
        let labels = po.string_map("labels")?;
        po.finish(&mut sink);
        out.push(PortDefinition {
            port,
            protocol,
            name,
            labels,
        });
    }
    if let Some(first) = sink.into_iter().next() {
        return Err(ApiError::invalid(first, "unknown port definition field"));
    }
    Ok(Some(out))
}

/// One constraint, in the array form `[field, OP, value?]` or the object form.
pub(crate) fn parse_constraint(v: &Value, path: &str) -> Result<Constraint> {
    let (field, op, value): (String, String, Option<&Value>) = match v {
        Value::Array(a) => {
            if a.len() < 2 || a.len() > 3 {
                return Err(ApiError::invalid(
                    path,
                    "a constraint is [field, operator] or [field, operator, value]",
                ));
            }
            (
                as_string(&a[0], &format!("{path}[0]"))?,
                as_string(&a[1], &format!("{path}[1]"))?,
                a.get(2),
            )
        }
        Value::Object(_) => {
            let mut co = Obj::new(v, path)?;
            let field = co.string("fieldName")?.unwrap_or_default();
            let op = co.string("operator")?.unwrap_or_default();
            let value = co.take("value");
            let mut extra = Vec::new();
            co.finish(&mut extra);
            if let Some(x) = extra.into_iter().next() {
                return Err(ApiError::invalid(
                    x,
                    "unknown constraint field (fieldName, operator, value)",
                ));
            }
            (field, op, value)
        }
        other => {
            return Err(ApiError::invalid(
                path,
                format!("must be an array or an object, got {}", json_kind(other)),
            ));
        }
    };
    let value = match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::invalid(
                path,
                format!(
                    "constraint value must be a string, got {}",
                    json_kind(other)
                ),
            ));
        }
    };
    let operator =
        validate::constraint(&field, &op, value).map_err(|m| ApiError::invalid(path, m))?;
    Ok(Constraint { field, operator })
}

fn parse_health_check(v: &Value, path: &str, ignored: &mut Vec<String>) -> Result<AppHealthCheck> {
    let mut h = Obj::new(v, path)?;
    let protocol = match h.string("protocol")?.as_deref() {
        None | Some("HTTP") => AppHealthProtocol::Http,
        Some("HTTPS") => AppHealthProtocol::Https,
        Some("TCP") => AppHealthProtocol::Tcp,
        Some("COMMAND") | Some("MESOS_COMMAND") => AppHealthProtocol::Command,
        Some("MESOS_HTTP") => AppHealthProtocol::MesosHttp,
        Some("MESOS_HTTPS") => AppHealthProtocol::MesosHttps,
        Some("MESOS_TCP") => AppHealthProtocol::MesosTcp,
        Some(other) => {
            return Err(ApiError::invalid(
                h.field("protocol"),
                format!(
                    "got {other:?}, expected HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS or MESOS_TCP"
                ),
            ));
        }
    };
    let mut hc = AppHealthCheck::new(protocol);
    hc.path = h.string("path")?;
    if let Some(i) = h.int("portIndex")? {
        hc.port_index = Some(usize::try_from(i).map_err(|_| {
            ApiError::invalid(h.field("portIndex"), format!("got {i}, expected 0 or more"))
        })?);
    }
    hc.port = h.port("port")?;
    if let Some(c) = h.take("command") {
        let f = h.field("command");
        match c {
            Value::Object(_) => {
                let mut co = Obj::new(c, &f)?;
                hc.command = co.string("value")?;
                co.finish(ignored);
            }
            _ => {
                return Err(ApiError::invalid(
                    f,
                    "must be an object {\"value\": \"...\"}, not a plain string",
                ));
            }
        }
    }
    for (key, slot) in [
        ("gracePeriodSeconds", &mut hc.grace_period_seconds),
        ("intervalSeconds", &mut hc.interval_seconds),
        ("timeoutSeconds", &mut hc.timeout_seconds),
        ("delaySeconds", &mut hc.delay_seconds),
    ] {
        if let Some(n) = h.number(key)? {
            *slot = n;
        }
    }
    if let Some(n) = h.int("maxConsecutiveFailures")? {
        hc.max_consecutive_failures = u32::try_from(n).map_err(|_| {
            ApiError::invalid(
                h.field("maxConsecutiveFailures"),
                format!("got {n}, expected 0 or more"),
            )
        })?;
    }
    hc.ignore_http1xx = h.bool("ignoreHttp1xx")?.unwrap_or(false);
    // IPv4/IPv6 choice of MESOS_* checks; the agent checks the address the task listens on.
    h.ignore("ipProtocol", ignored);
    h.finish(ignored);
    Ok(hc)
}

fn parse_readiness_check(
    v: &Value,
    path: &str,
    ignored: &mut Vec<String>,
) -> Result<ReadinessCheck> {
    let mut r = Obj::new(v, path)?;
    let protocol = match r.string("protocol")?.as_deref() {
        None | Some("HTTP") => AppHealthProtocol::Http,
        Some("HTTPS") => AppHealthProtocol::Https,
        Some(other) => {
            return Err(ApiError::invalid(
                r.field("protocol"),
                format!("got {other:?}, expected HTTP or HTTPS"),
            ));
        }
    };
    let mut codes = Vec::new();
    if let Some(cs) = r.array("httpStatusCodesForReady")? {
        for (i, c) in cs.iter().enumerate() {
            let f = format!("{path}.httpStatusCodesForReady[{i}]");
            let n = as_int(c, &f)?;
            codes.push(
                u16::try_from(n)
                    .ok()
                    .filter(|n| (100..=599).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(f, format!("{n} is not an HTTP status code"))
                    })?,
            );
        }
    }
    if protocol == AppHealthProtocol::Https {
        // The scheduler has no TLS client: an HTTPS check is a TCP connect.
        ignored.push(r.field("protocol"));
    }
    let rc = ReadinessCheck {
        name: r
            .string("name")?
            .unwrap_or_else(|| "readinessCheck".to_string()),
        protocol,
        path: r.string("path")?.unwrap_or_else(|| "/".to_string()),
        port_name: r.string("portName")?.unwrap_or_else(|| "http".to_string()),
        interval_seconds: r.number("intervalSeconds")?.unwrap_or(30.0),
        timeout_seconds: r.number("timeoutSeconds")?.unwrap_or(10.0),
        http_status_codes_for_ready: if codes.is_empty() { vec![200] } else { codes },
        preserve_last_response: r.bool("preserveLastResponse")?.unwrap_or(false),
    };
    r.finish(ignored);
    Ok(rc)
}

fn parse_fetch(o: &mut Obj<'_>, ignored: &mut Vec<String>) -> Result<Vec<FetchUri>> {
    let uris = o.array("uris")?;
    let fetch = o.array("fetch")?;
    if uris.is_some_and(|u| !u.is_empty()) && fetch.is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::invalid("fetch", "give uris or fetch, not both"));
    }
    let mut out = Vec::new();
    for (i, u) in uris.into_iter().flatten().enumerate() {
        let f = format!("uris[{i}]");
        let uri = as_string(u, &f)?;
        validate::uri(&uri).map_err(|m| ApiError::invalid(f, m))?;
        out.push(FetchUri {
            uri,
            executable: false,
            extract: true,
            cache: false,
            dest_path: None,
        });
    }
    for (i, item) in fetch.into_iter().flatten().enumerate() {
        let path = format!("fetch[{i}]");
        let mut fo = Obj::new(item, &path)?;
        let uri = fo
            .string("uri")?
            .ok_or_else(|| ApiError::invalid(format!("{path}.uri"), "is required"))?;
        validate::uri(&uri).map_err(|m| ApiError::invalid(format!("{path}.uri"), m))?;
        let fu = FetchUri {
            uri,
            executable: fo.bool("executable")?.unwrap_or(false),
            extract: fo.bool("extract")?.unwrap_or(true),
            cache: fo.bool("cache")?.unwrap_or(false),
            dest_path: fo.string("destPath")?,
        };
        fo.finish(ignored);
        out.push(fu);
    }
    Ok(out)
}
