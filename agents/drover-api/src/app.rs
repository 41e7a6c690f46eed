//! Marathon-compatible app definitions: parse, validate, and turn into task definitions.
//!
//! An existing Marathon app JSON (`POST /v2/apps`) deploys as it is. The pipeline is:
//!
//! ```text
//! serde_json::Value ──parse──▶ AppDefinition + ignored paths ──validate──▶ AppDefinition
//!                                                                   │
//!                                          to_task_definition ◀─────┘  (one instance)
//! ```
//!
//! - [`AppDefinition::from_marathon`] walks the JSON by hand (not serde derive) so that it
//!   can accept Marathon's many legacy shapes (`ports` vs `portDefinitions`, port mappings in
//!   `container.docker` or `container`, `uris` vs `fetch`, numbers given as strings), name
//!   the JSON path of every problem, and list every field it does not use. Fields Drover
//!   does not support are never dropped silently: they come back as JSON paths in the
//!   `ignored` list. Features an app cannot sensibly run without are refused with an
//!   [`ApiError`] naming the field (see [`REFUSED_FEATURES`]).
//! - [`AppDefinition::validate`] checks a typed definition; `from_marathon` calls it, and the
//!   scheduler can call it again on a definition read back from its store.
//! - [`AppDefinition::to_task_definition`] builds what one instance runs
//!   ([`TaskDefinition`](crate::task::TaskDefinition)) and lists what the task model cannot carry yet.
//!
//! Defaults are Marathon 1.10's, with one documented choice: `maxLaunchDelaySeconds`
//! defaults to 3600 (Marathon ≥ 1.4; older releases used 300).
//!
//! Drover's own extras (not in Marathon; absent in a Marathon file, so defaults apply):
//! `progressDeadlineSeconds` (default 600; a deployment step that makes no progress for this
//! long fails; 0 = never) and `autoRevert` (default false; a failed deployment rolls back
//! to the previous version).

mod convert;
mod parse;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ApiError, Resources};

pub use convert::TaskConversion;
pub use parse::parse_app_json;

/// Features Drover refuses (the app is rejected with an error naming the field), with why.
///
/// Everything else Drover does not model is accepted and reported as ignored.
pub const REFUSED_FEATURES: &[(&str, &str)] = &[
    (
        "container.volumes[].persistent / residency",
        "local persistent volumes: Drover keeps no reserved per-node storage, so the data would be lost on restart",
    ),
    (
        "container.volumes[].external",
        "external (DVDI/REX-Ray) volumes: Drover attaches no network storage",
    ),
    (
        "env.*.secret / container.volumes[].secret",
        "secrets referenced by env or volumes: Drover has no secret store, and the app would start without its secret",
    ),
    (
        "ipAddress / networks[mode=container] without a container image",
        "IP-per-task (CNI) networking for plain commands: only Docker containers can join a named network",
    ),
    (
        "gpus > 0",
        "GPU scheduling: Drover does not account for GPUs",
    ),
];

/// The phrase every refusal of an unsupported feature carries in its message.
pub const UNSUPPORTED: &str = "not supported by Drover";

/// Whether an error from [`AppDefinition::from_marathon`] refuses a feature Drover does
/// not support (see [`REFUSED_FEATURES`]) rather than an invalid definition.
pub fn is_unsupported(e: &ApiError) -> bool {
    e.message.contains(UNSUPPORTED)
}

/// Most instances one app may ask for. One request must not cost without bound: each
/// instance is a task record, a process and (usually) a host port, and an agent hands
/// out 1,001 ports by default (Mesos's 31000-32000), so a thousand instances already
/// fill a node's ports. Marathon itself has no limit; a bigger service is several apps.
pub const MAX_INSTANCES: u32 = 1_000;

/// The message for an `instances` above [`MAX_INSTANCES`], shared by create, update
/// and scale so each names the limit and the way round it.
pub fn too_many_instances(n: impl std::fmt::Display) -> String {
    format!(
        "{n} is more than the limit of {MAX_INSTANCES} instances per app (a fixed limit: split a bigger service into several apps)"
    )
}

/// Default `backoffSeconds` (Marathon: 1).
pub const DEFAULT_BACKOFF_SECONDS: f64 = 1.0;
/// Default `backoffFactor` (Marathon: 1.15).
pub const DEFAULT_BACKOFF_FACTOR: f64 = 1.15;
/// Default `maxLaunchDelaySeconds`: Marathon 1.4+ uses 3600 (older releases 300); Drover
/// follows the newer releases so a Marathon 1.10 file behaves as it did there.
pub const DEFAULT_MAX_LAUNCH_DELAY_SECONDS: f64 = 3600.0;
/// Default kill grace period when `taskKillGracePeriodSeconds` is absent (matches
/// [`TaskDefinition`](crate::task::TaskDefinition)'s default).
pub const DEFAULT_KILL_GRACE_SECONDS: f64 = 5.0;
/// Default Drover `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: f64 = 600.0;
/// The Marathon label that marks an app as single-instance (at most one instance, and
/// upgrades stop the old one before starting the new).
pub const SINGLE_INSTANCE_LABEL: &str = "MARATHON_SINGLE_INSTANCE_APP";

/// An app's id in canonical absolute form: `/shop/web`.
///
/// Marathon's rules: `/`-separated segments, each of lower-case letters, digits, `-` and
/// `.`, where `-` and `.` only appear inside a segment's dot-separated labels; relative ids
/// (`web`) are taken from the root; `.` and `..` segments are resolved; the last segment
/// may not be `restart`, `tasks` or `versions`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

impl AppId {
    /// Parses and canonicalises an id, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<AppId, String> {
        validate::app_id(raw).map(AppId)
    }

    /// The canonical id, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path segments (`["shop", "web"]`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }
}

impl TryFrom<String> for AppId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AppId::parse(&s)
    }
}

impl From<AppId> for String {
    fn from(id: AppId) -> String {
        id.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Marathon app definition, as Drover keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDefinition {
    /// Canonical path id.
    pub id: AppId,
    /// A shell command (`/bin/sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// An argv run directly (or appended to the image's entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Desired instance count (Marathon default 1).
    pub instances: u32,
    /// Per-instance CPUs, memory and disk (Marathon defaults 1, 128, 0).
    pub resources: Resources,
    /// Environment variables (plain strings only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Unix user to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The container, if the app runs in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Host ports for host-networking apps, from `portDefinitions` or the legacy `ports`.
    /// Absent both, Marathon (and Drover) give a host-networking app one random port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_definitions: Vec<PortDefinition>,
    /// Whether `portDefinitions[].port` are the host ports themselves (true) or service
    /// ports with random host ports (false, Marathon's default).
    #[serde(default)]
    pub require_ports: bool,
    /// Placement constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Health checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<AppHealthCheck>,
    /// Readiness checks a deployment waits for before counting an instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness_checks: Vec<ReadinessCheck>,
    /// How rolling upgrades keep capacity.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// Initial delay before relaunching a failed instance (Marathon: 1 s).
    pub backoff_seconds: f64,
    /// Factor the delay grows by per consecutive failure (Marathon: 1.15).
    pub backoff_factor: f64,
    /// Upper bound of the relaunch delay (see [`DEFAULT_MAX_LAUNCH_DELAY_SECONDS`]).
    pub max_launch_delay_seconds: f64,
    /// Which instances go first when scaling down.
    #[serde(default)]
    pub kill_selection: KillSelection,
    /// Seconds between SIGTERM and SIGKILL; `None` uses [`DEFAULT_KILL_GRACE_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,
    /// App ids this app depends on, canonicalised: a deployment of this app starts no
    /// instance until each of them exists and is ready (every instance healthy, no
    /// deployment running). An id with no app of its own stands for every app under it
    /// (Marathon's group dependencies). Cycles are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<AppId>,
    /// Files to fetch into the sandbox before start (`fetch`, or the legacy `uris`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetch: Vec<FetchUri>,
    /// The version (Marathon: an ISO 8601 timestamp); the scheduler stamps it on store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Drover extra: seconds a deployment may go without progress before it fails
    /// (default 600; 0 = no deadline).
    pub progress_deadline_seconds: f64,
    /// Drover extra: roll back to the previous version when a deployment fails
    /// (default false).
    #[serde(default)]
    pub auto_revert: bool,
}

impl AppDefinition {
    /// A definition with Marathon's defaults for every field but the id and the command.
    pub fn new(id: AppId, cmd: impl Into<String>) -> Self {
        AppDefinition {
            id,
            cmd: Some(cmd.into()),
            args: None,
            instances: 1,
            resources: Resources::new(1.0, 128.0, 0.0),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            user: None,
            container: None,
            port_definitions: Vec::new(),
            require_ports: false,
            constraints: Vec::new(),
            health_checks: Vec::new(),
            readiness_checks: Vec::new(),
            upgrade_strategy: UpgradeStrategy::default(),
            backoff_seconds: DEFAULT_BACKOFF_SECONDS,
            backoff_factor: DEFAULT_BACKOFF_FACTOR,
            max_launch_delay_seconds: DEFAULT_MAX_LAUNCH_DELAY_SECONDS,
            kill_selection: KillSelection::default(),
            task_kill_grace_period_seconds: None,
            dependencies: Vec::new(),
            fetch: Vec::new(),
            version: None,
            progress_deadline_seconds: DEFAULT_PROGRESS_DEADLINE_SECONDS,
            auto_revert: false,
        }
    }

    /// Parses and validates a Marathon app JSON. Returns the definition and the JSON paths
    /// of the fields Drover does not use, or an error naming the field and the reason.
    pub fn from_marathon(
        value: &serde_json::Value,
    ) -> Result<(AppDefinition, Vec<String>), ApiError> {
        parse::parse_app(value)
    }

    /// Checks a typed definition (e.g. one read back from the store, or built in code)
    /// against the same rules as [`AppDefinition::from_marathon`]; names the first bad field.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate::app(self)
    }

    /// The container image the app runs, if any.
    pub fn image(&self) -> Option<&str> {
        self.container.as_ref().and_then(|c| c.image.as_deref())
    }

    /// Whether the app is marked single-instance with Marathon's label.
    pub fn is_single_instance(&self) -> bool {
        self.labels
            .get(SINGLE_INSTANCE_LABEL)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The ports one instance asks for, in the order `PORT0..n` are numbered: port mappings
    /// with a host port for bridge/user networking, else the port definitions.
    pub fn host_ports(&self) -> Vec<HostPort> {
        convert::host_ports(self)
    }

    /// The names of all ports (definitions or mappings), for readiness checks and env.
    pub fn port_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .port_definitions
            .iter()
            .filter_map(|p| p.name.as_deref())
            .collect();
        if let Some(c) = &self.container {
            out.extend(c.port_mappings.iter().filter_map(|p| p.name.as_deref()));
        }
        out
    }
}

/// One host port an instance needs, derived from the app's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The port's name, if it has one (`PORT_<NAME>`).
    pub name: Option<String>,
    /// A fixed host port, or 0 for any free port.
    pub port: u16,
}

/// The kind of container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContainerKind {
    /// Docker runs the image.
    Docker,
    /// Marathon's Mesos containerizer (UCR). With an image, Drover runs it with Docker too;
    /// without one, the command runs as a plain process.
    Mesos,
}

/// How a container's network is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetworkMode {
    /// The host's network namespace (Marathon HOST, `networks: [{mode: host}]`).
    Host,
    /// Docker's bridge with port mappings (BRIDGE, `container/bridge`).
    Bridge,
    /// A named (user-defined) Docker network (USER + `ipAddress.networkName`, or
    /// `networks: [{mode: container, name}]`); `None` means Docker's default user network.
    User(Option<String>),
    /// No network (Docker NONE).
    None,
}

/// A port mapping of a bridge or user-network container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port inside the container (0: the same as the host port).
    pub container_port: u16,
    /// The host port: `Some(0)` any free port, `Some(p)` exactly `p`, `None` no host port
    /// (user networks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Marathon's service port, for load balancers; kept, not used by placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: PortProtocol,
    /// Name, exported as `PORT_<NAME>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels (`VIP_0`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A host port of a host-networking app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDefinition {
    /// A service port (or, with `requirePorts`, the host port); 0 = any.
    pub port: u16,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: PortProtocol,
    /// Name, exported as `PORT_<NAME>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The transport protocol(s) of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PortProtocol {
    /// TCP (default).
    #[default]
    #[serde(rename = "tcp")]
    Tcp,
    /// UDP.
    #[serde(rename = "udp")]
    Udp,
    /// Both.
    #[serde(rename = "udp,tcp")]
    UdpTcp,
}

/// A volume of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Where it appears inside the container.
    pub container_path: String,
    /// The host directory (absolute) or sandbox-relative path it binds.
    pub host_path: String,
    /// Read-only (`RO`) or read-write (`RW`).
    pub mode: VolumeMode,
}

/// A volume's access mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VolumeMode {
    /// Read-only.
    #[serde(rename = "RO")]
    ReadOnly,
    /// Read-write (Marathon's default).
    #[default]
    #[serde(rename = "RW")]
    ReadWrite,
}

/// One `docker run` parameter (`--key=value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerParameter {
    /// The option name without dashes (`hostname`).
    pub key: String,
    /// Its value.
    pub value: String,
}

/// An app's container, normalised from Marathon's legacy and current shapes.
///
/// This is also the `container` a task carries to the agent: [`AppDefinition::to_task_definition`]
/// serialises it, and the agent deserialises it back into this type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// DOCKER or MESOS.
    #[serde(rename = "type")]
    pub kind: ContainerKind,
    /// The image (`docker.image`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How the network is set up (from `docker.network`, top-level `networks`, `ipAddress`).
    pub network: NetworkMode,
    /// Port mappings (from `container.portMappings` or `container.docker.portMappings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<PortMapping>,
    /// Pull the image on every start (`docker.forcePullImage`, UCR `docker.forcePull`).
    #[serde(default)]
    pub force_pull_image: bool,
    /// Run privileged.
    #[serde(default)]
    pub privileged: bool,
    /// Extra `docker run` parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<DockerParameter>,
    /// Bind volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// The container object exactly as the app definition gave it.
    #[serde(default)]
    pub marathon: serde_json::Value,
}

/// A placement constraint: `[field, OPERATOR, value?]` in Marathon's array form, or
/// `{"fieldName", "operator", "value"}` in the object form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Constraint {
    /// `hostname` or a node attribute name.
    pub field: String,
    /// What must hold of the field's value.
    pub operator: ConstraintOperator,
}

impl Constraint {
    /// Marathon's array form, e.g. `["rack", "GROUP_BY", "3"]`.
    pub fn to_marathon(&self) -> serde_json::Value {
        let mut v = vec![
            serde_json::Value::from(self.field.clone()),
            self.operator.name().into(),
        ];
        if let Some(val) = self.operator.value() {
            v.push(val.into());
        }
        serde_json::Value::Array(v)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operator.value() {
            Some(v) => write!(f, "{} {} {v}", self.field, self.operator.name()),
            None => write!(f, "{} {}", self.field, self.operator.name()),
        }
    }
}

/// A constraint's operator with its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", tag = "op", content = "value")]
pub enum ConstraintOperator {
    /// At most one instance per distinct value.
    Unique,
    /// All instances on nodes with this value (or, without one, the value of the first
    /// instance's node).
    Cluster(Option<String>),
    /// Spread evenly over the distinct values (optionally: over at least this many).
    GroupBy(Option<u32>),
    /// The value must fully match the regular expression.
    Like(String),
    /// The value must not fully match the regular expression.
    Unlike(String),
    /// At most this many instances per distinct value.
    MaxPer(u32),
    /// The value must equal this text.
    Is(String),
}

impl ConstraintOperator {
    /// Marathon's operator name.
    pub fn name(&self) -> &'static str {
        match self {
            ConstraintOperator::Unique => "UNIQUE",
            ConstraintOperator::Cluster(_) => "CLUSTER",
            ConstraintOperator::GroupBy(_) => "GROUP_BY",
            ConstraintOperator::Like(_) => "LIKE",
            ConstraintOperator::Unlike(_) => "UNLIKE",
            ConstraintOperator::MaxPer(_) => "MAX_PER",
            ConstraintOperator::Is(_) => "IS",
        }
    }

    /// The operator's value as Marathon writes it, if it has one.
    pub fn value(&self) -> Option<String> {
        match self {
            ConstraintOperator::Unique
            | ConstraintOperator::Cluster(None)
            | ConstraintOperator::GroupBy(None) => None,
            ConstraintOperator::Cluster(Some(v))
            | ConstraintOperator::Like(v)
            | ConstraintOperator::Unlike(v)
            | ConstraintOperator::Is(v) => Some(v.clone()),
            ConstraintOperator::GroupBy(Some(n)) | ConstraintOperator::MaxPer(n) => {
                Some(n.to_string())
            }
        }
    }
}

/// A health check's protocol, with Marathon's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppHealthProtocol {
    /// HTTP GET from the scheduler side (Drover: from the agent).
    Http,
    /// HTTPS GET.
    Https,
    /// TCP connect.
    Tcp,
    /// A command in the task's environment.
    Command,
    /// HTTP GET by the Mesos executor (Drover: the agent).
    MesosHttp,
    /// HTTPS GET by the Mesos executor.
    MesosHttps,
    /// TCP connect by the Mesos executor.
    MesosTcp,
}

impl AppHealthProtocol {
    /// Marathon's name.
    pub fn name(self) -> &'static str {
        match self {
            AppHealthProtocol::Http => "HTTP",
            AppHealthProtocol::Https => "HTTPS",
            AppHealthProtocol::Tcp => "TCP",
            AppHealthProtocol::Command => "COMMAND",
            AppHealthProtocol::MesosHttp => "MESOS_HTTP",
            AppHealthProtocol::MesosHttps => "MESOS_HTTPS",
            AppHealthProtocol::MesosTcp => "MESOS_TCP",
        }
    }

    /// Whether the check needs a port (everything but COMMAND).
    pub fn needs_port(self) -> bool {
        self != AppHealthProtocol::Command
    }
}

/// A Marathon health check with Marathon's field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppHealthCheck {
    /// The protocol (default HTTP).
    pub protocol: AppHealthProtocol,
    /// HTTP(S) path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the app's ports (default 0 when `port` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<usize>,
    /// A fixed port instead of one of the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The command of a COMMAND check (`command.value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Failures in this many seconds after start do not count (300).
    pub grace_period_seconds: f64,
    /// Seconds between checks (60).
    pub interval_seconds: f64,
    /// Seconds before a check counts as failed (20).
    pub timeout_seconds: f64,
    /// Failures in a row after which the task is killed (3; 0 = never).
    pub max_consecutive_failures: u32,
    /// Seconds before the first check (15).
    pub delay_seconds: f64,
    /// Treat HTTP 1xx answers as neither pass nor fail (false).
    #[serde(default)]
    pub ignore_http1xx: bool,
}

impl AppHealthCheck {
    /// A check of `protocol` with Marathon's defaults.
    pub fn new(protocol: AppHealthProtocol) -> Self {
        AppHealthCheck {
            protocol,
            path: None,
            port_index: None,
            port: None,
            command: None,
            grace_period_seconds: 300.0,
            interval_seconds: 60.0,
            timeout_seconds: 20.0,
            max_consecutive_failures: 3,
            delay_seconds: 15.0,
            ignore_http1xx: false,
        }
    }
}

/// A readiness check: a deployment counts an instance it started only once it answers
/// ready.
///
/// The scheduler probes `GET <protocol>://<node host>:<host port named portName><path>`
/// every `intervalSeconds` (the first at once) until the answer's status is one of
/// `httpStatusCodesForReady`; then it stops. Only instances started by a running
/// deployment are checked; others count as soon as they are healthy. The scheduler has
/// no TLS client: an HTTPS check counts an instance ready once its port accepts a TCP
/// connection (and the field is reported as ignored). Names are unique within an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessCheck {
    /// Name (default `readinessCheck`).
    pub name: String,
    /// HTTP or HTTPS (default HTTP).
    pub protocol: AppHealthProtocol,
    /// Path (default `/`).
    pub path: String,
    /// Name of the app port to query (default `http`).
    pub port_name: String,
    /// Seconds between checks (30).
    pub interval_seconds: f64,
    /// Seconds before a check fails (10).
    pub timeout_seconds: f64,
    /// Status codes that mean ready (default `[200]`).
    pub http_status_codes_for_ready: Vec<u16>,
    /// Keep the last response for the API (false).
    #[serde(default)]
    pub preserve_last_response: bool,
}

/// How many instances a rolling upgrade keeps and may add, as fractions of `instances`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Fraction of instances that must stay healthy during an upgrade (0..=1, default 1).
    pub minimum_health_capacity: f64,
    /// Fraction of instances that may run on top of `instances` (0..=1, default 1).
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// Which instances are killed first when an app scales down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillSelection {
    /// The most recently started first (Marathon's default).
    #[default]
    YoungestFirst,
    /// The longest running first.
    OldestFirst,
}

/// A file fetched into the sandbox before the task starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchUri {
    /// What to fetch.
    pub uri: String,
    /// Make it executable (false).
    #[serde(default)]
    pub executable: bool,
    /// Unpack archives (true).
    pub extract: bool,
    /// Cache it on the node (false).
    #[serde(default)]
    pub cache: bool,
    /// The file name in the sandbox, if not the URI's last segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
}

#[cfg(test)]
mod tests;
