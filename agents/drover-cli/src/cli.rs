//! The command line's shape: global options, then a noun (`nodes`, `tasks`) and a verb.
//!
//! Nouns are variants of [`Command`]; each noun's verbs are its own subcommand enum, so
//! a new noun slots in as a new variant without touching the existing ones. A noun
//! given without a verb lists.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use drover_api::TaskState;

/// Drover's command line: nodes, tasks and their logs.
#[derive(Debug, Clone, Parser)]
#[command(name = "drover", version = drover_api::VERSION, propagate_version = true)]
#[command(about = "Drover's command line: nodes, tasks and their logs")]
pub struct Cli {
    /// Options every command takes, before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes; usable before or after the subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The master's URL.
    #[arg(
        long,
        global = true,
        env = "DROVER_MASTER",
        default_value = drover_api::DEFAULT_MASTER_URL,
        value_name = "URL"
    )]
    pub master: String,
    /// The scheduler's URL, for the app, job and deployment commands (not used by the
    /// node and task commands, which talk to the master).
    #[arg(
        long,
        global = true,
        env = "DROVER_SCHEDULER",
        default_value = drover_api::DEFAULT_SCHEDULER_URL,
        value_name = "URL"
    )]
    pub scheduler: String,
    /// Bearer token for the master and scheduler (wins over --token-file).
    #[arg(
        long,
        global = true,
        env = "DROVER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, global = true, env = "DROVER_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print JSON (the API's own types) instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The nouns.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// List, inspect, drain and activate nodes (`drover nodes` lists them).
    #[command(visible_alias = "node")]
    Nodes(NodesArgs),
    /// List, inspect, launch and kill tasks, and read their logs (`drover tasks` lists them).
    #[command(visible_alias = "task")]
    Tasks(TasksArgs),
    /// List, inspect, create, run and kill jobs; history, stats, logs, graph (talks to
    /// the scheduler; `drover jobs` lists them).
    #[command(visible_alias = "job")]
    Jobs(JobsArgs),
    /// List, inspect, create, update, scale, restart, roll back and delete apps
    /// (Marathon's JSON; talks to the scheduler; `drover apps` lists them).
    #[command(visible_alias = "app")]
    Apps(AppsArgs),
    /// List, inspect, follow and cancel deployments (`drover deployments` lists the
    /// running ones).
    #[command(visible_alias = "deployment")]
    Deployments(DeploymentsArgs),
    /// Create or update everything described in a file or a folder of JSON files (jobs
    /// in Chronos's format, apps in Marathon's).
    Apply(ApplyArgs),
    /// Run a whole cluster on this machine (a master, a scheduler and agents) with the
    /// examples applied, until Ctrl-C.
    Dev(DevArgs),
    /// Roll Drover's own binaries out over SSH (the inventory of the playbooks), gated
    /// on the master; show every host's versions.
    Fleet(FleetArgs),
    /// Print the CLI's version and, if reachable, the master's.
    Version,
}

/// `drover fleet VERB`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// The verb.
    #[command(subcommand)]
    pub command: FleetCommand,
}

/// The verbs on the fleet.
#[derive(Debug, Clone, Subcommand)]
pub enum FleetCommand {
    /// Upgrade the hosts to the binaries of a dist folder: masters one at a time, then
    /// schedulers, then agents in batches (a canary first), each gated on the master and
    /// rolled back if it fails.
    Upgrade(FleetUpgradeArgs),
    /// Show the version of every host's binaries and whether each is healthy.
    Status(FleetCommonArgs),
}

/// What every fleet verb takes: the inventory and how to connect.
#[derive(Debug, Clone, Args)]
pub struct FleetCommonArgs {
    /// The Ansible inventory: a folder (host files, group_vars/, host_vars/) or a file.
    #[arg(long, short = 'i', value_name = "PATH")]
    pub inventory: PathBuf,
    /// Read the inventory through `ansible-inventory --list` (Ansible renders its Jinja)
    /// instead of the built-in reader.
    #[arg(long)]
    pub ansible_inventory: bool,
    /// Only these hosts (Ansible's pattern syntax: `agents:!web3`, `web*`, `a,b`).
    #[arg(long, short = 'l', value_name = "PATTERN")]
    pub limit: Option<String>,
    /// The known hosts file host keys are checked against.
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Add the key of a host that is not in the known hosts file (a changed key is
    /// still refused), like OpenSSH's StrictHostKeyChecking=accept-new.
    #[arg(long)]
    pub accept_new: bool,
    /// At most this many SSH connections at once.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub parallel: usize,
    /// Seconds to wait for a TCP connection.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
}

/// `drover fleet upgrade --inventory DIR --dist DIR [...]`.
#[derive(Debug, Clone, Args)]
pub struct FleetUpgradeArgs {
    /// Inventory and connection.
    #[command(flatten)]
    pub common: FleetCommonArgs,
    /// The folder of binaries to roll out (what `scripts/dist` builds).
    #[arg(long, value_name = "DIR")]
    pub dist: PathBuf,
    /// Agents in the first (canary) batch; 0 for none.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub canary: usize,
    /// Agents per batch after the canary: a number or a percentage of the agents.
    #[arg(long, value_name = "N|N%", default_value = "25%")]
    pub batch: drover_fleet::plan::Size,
    /// Never more than this many agents down at once (a number or a percentage), counting
    /// those the master lists as down before each batch; if the master cannot be read
    /// then, the rollout halts.
    #[arg(long, value_name = "N|N%")]
    pub max_unavailable: Option<drover_fleet::plan::Size>,
    /// Drain each agent through the master before its swap; re-activate it after.
    #[arg(long)]
    pub drain: bool,
    /// Print the plan (hosts, batches, binaries that change) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds a host may take to pass its health gate before it is rolled back.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub gate_timeout: u64,
}

/// `drover jobs [VERB]`.
#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    /// The verb; none lists.
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
}

/// The verbs on jobs.
#[derive(Debug, Clone, Subcommand)]
pub enum JobsCommand {
    /// List the jobs with their state and next run.
    #[command(visible_alias = "ls")]
    List,
    /// Show a job: definition, state, next runs (UTC and the job's zone), open runs, stats.
    Show(JobShowArgs),
    /// Create or update a job from a Chronos-format JSON file (`-` reads stdin).
    Create(JobCreateArgs),
    /// Run a job now: `drover jobs run NAME [-- ARGS...]`.
    Run(JobRunArgs),
    /// Kill a job's running (and retry-waiting) runs.
    Kill(JobNameArgs),
    /// A job's runs, newest first (one row per attempt).
    History(JobHistoryArgs),
    /// A job's counts and duration statistics.
    Stats(JobNameArgs),
    /// Print a run's output (default: the latest run; stdout, or stderr with --stderr).
    Logs(JobLogsArgs),
    /// Print the dependency graph (text, or Graphviz DOT with --dot).
    Graph(JobGraphArgs),
    /// Enable a job (instants before now are not run).
    Enable(JobNameArgs),
    /// Disable a job: nothing new starts; runs going on finish.
    Disable(JobNameArgs),
    /// Delete a job and its history.
    Delete(JobNameArgs),
    /// Count a success of the job now, so its children run (Chronos's "mark success").
    Success(JobNameArgs),
}

/// A verb that takes only the job's name.
#[derive(Debug, Clone, Args)]
pub struct JobNameArgs {
    /// The job's name.
    pub name: String,
}

/// `drover jobs show NAME [--next N]`.
#[derive(Debug, Clone, Args)]
pub struct JobShowArgs {
    /// The job's name.
    pub name: String,
    /// How many upcoming runs to list.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub next: usize,
}

/// `drover jobs create -f FILE`.
#[derive(Debug, Clone, Args)]
pub struct JobCreateArgs {
    /// The job file (Chronos JSON); `-` for stdin.
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    pub file: PathBuf,
}

/// `drover jobs run NAME [-- ARGS...]`.
#[derive(Debug, Clone, Args)]
pub struct JobRunArgs {
    /// The job's name.
    pub name: String,
    /// Extra arguments appended to the job's command for this run.
    #[arg(last = true, value_name = "ARGS")]
    pub arguments: Vec<String>,
}

/// `drover jobs history NAME [--limit N]`.
#[derive(Debug, Clone, Args)]
pub struct JobHistoryArgs {
    /// The job's name.
    pub name: String,
    /// How many attempts to show.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

/// `drover jobs logs NAME [RUN] [--stderr]`.
#[derive(Debug, Clone, Args)]
pub struct JobLogsArgs {
    /// The job's name.
    pub name: String,
    /// The run: its number (as in `history`), its id, or `latest` (the default).
    pub run: Option<String>,
    /// Read stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// The attempt (default: the run's latest).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Start this many bytes before the end.
    #[arg(long, value_name = "BYTES")]
    pub tail: Option<u64>,
}

/// `drover jobs graph [--dot]`.
#[derive(Debug, Clone, Args)]
pub struct JobGraphArgs {
    /// Print Graphviz DOT instead of text.
    #[arg(long)]
    pub dot: bool,
}

/// `drover apps [VERB]`.
#[derive(Debug, Clone, Args)]
pub struct AppsArgs {
    /// The verb; none lists.
    #[command(subcommand)]
    pub command: Option<AppsCommand>,
}

/// The verbs on apps.
#[derive(Debug, Clone, Subcommand)]
pub enum AppsCommand {
    /// List the apps with their instance counts and running deployment.
    #[command(visible_alias = "ls")]
    List,
    /// Show an app: definition, tasks, why instances cannot be placed, backoff.
    Show(AppIdArgs),
    /// Create an app from a Marathon JSON file (`-` reads stdin).
    Create(AppFileArgs),
    /// Update an app (or create it) from a Marathon JSON file; the file's `id` names it.
    Update(AppFileArgs),
    /// Change an app's instance count; nothing is replaced.
    Scale(AppScaleArgs),
    /// Replace every instance of an app, honouring its upgrade strategy.
    Restart(AppChangeArgs),
    /// Go back to an earlier version (default: the last fully healthy one).
    Rollback(AppRollbackArgs),
    /// Stop every instance, then remove the app.
    Delete(AppChangeArgs),
}

/// A verb that takes only the app's id.
#[derive(Debug, Clone, Args)]
pub struct AppIdArgs {
    /// The app's id (`/shop/web` or `shop/web`).
    pub app: String,
}

/// Options of every change to an app.
#[derive(Debug, Clone, Args)]
pub struct ChangeOptions {
    /// Supersede the app's running deployment instead of being refused.
    #[arg(long)]
    pub force: bool,
    /// Follow the deployment with a progress bar until it ends; exit non-zero if it fails.
    #[arg(long)]
    pub wait: bool,
    /// With --wait, give up waiting after this many seconds (the deployment goes on).
    #[arg(long, value_name = "SECS", default_value_t = 900, requires = "wait")]
    pub timeout: u64,
}

/// `drover apps create|update -f FILE`.
#[derive(Debug, Clone, Args)]
pub struct AppFileArgs {
    /// The app file (Marathon JSON); `-` for stdin.
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    pub file: PathBuf,
    /// Force, wait.
    #[command(flatten)]
    pub change: ChangeOptions,
}

/// `drover apps restart|delete APP`.
#[derive(Debug, Clone, Args)]
pub struct AppChangeArgs {
    /// The app's id.
    pub app: String,
    /// Force, wait.
    #[command(flatten)]
    pub change: ChangeOptions,
}

/// `drover apps scale APP N`.
#[derive(Debug, Clone, Args)]
pub struct AppScaleArgs {
    /// The app's id.
    pub app: String,
    /// Instances wanted.
    pub instances: u32,
    /// Force, wait.
    #[command(flatten)]
    pub change: ChangeOptions,
}

/// `drover apps rollback APP [VERSION]`.
#[derive(Debug, Clone, Args)]
pub struct AppRollbackArgs {
    /// The app's id.
    pub app: String,
    /// The version to go back to (see `GET /v2/apps/{id}/versions`). Named apart from
    /// `version` because clap's `--version` flag owns that id.
    #[arg(value_name = "VERSION")]
    pub to_version: Option<String>,
    /// Force, wait.
    #[command(flatten)]
    pub change: ChangeOptions,
}

/// `drover deployments [VERB]`.
#[derive(Debug, Clone, Args)]
pub struct DeploymentsArgs {
    /// The verb; none lists the running ones.
    #[command(subcommand)]
    pub command: Option<DeploymentsCommand>,
}

/// The verbs on deployments.
#[derive(Debug, Clone, Subcommand)]
pub enum DeploymentsCommand {
    /// List deployments (running ones unless --all).
    #[command(visible_alias = "ls")]
    List(DeploymentListArgs),
    /// Show a deployment's steps and progress; --wait follows it to the end.
    Show(DeploymentShowArgs),
    /// Cancel a running deployment (an app with autoRevert rolls back).
    Cancel(DeploymentIdArgs),
}

/// `drover deployments list [--all]`.
#[derive(Debug, Clone, Default, Args)]
pub struct DeploymentListArgs {
    /// Include finished deployments.
    #[arg(long, short = 'a')]
    pub all: bool,
}

/// `drover deployments show ID`.
#[derive(Debug, Clone, Args)]
pub struct DeploymentShowArgs {
    /// The deployment's id.
    pub id: String,
    /// Follow it with a progress bar until it ends; exit non-zero if it fails.
    #[arg(long)]
    pub wait: bool,
    /// With --wait, give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 900, requires = "wait")]
    pub timeout: u64,
}

/// `drover deployments cancel ID`.
#[derive(Debug, Clone, Args)]
pub struct DeploymentIdArgs {
    /// The deployment's id.
    pub id: String,
}

/// `drover apply -f FILE_OR_DIR`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// A JSON file, or a folder whose `*.json` files (and subfolders') are applied.
    #[arg(long = "file", short = 'f', value_name = "FILE_OR_DIR")]
    pub file: PathBuf,
}

/// `drover dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// How many agents (nodes) to run.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub agents: usize,
    /// Where the cluster's state and logs live [default: $XDG_DATA_HOME or
    /// ~/.local/share, + /drover/dev].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The folder of example apps and jobs to apply [default: ./examples if present].
    #[arg(long, value_name = "DIR")]
    pub examples: Option<PathBuf>,
    /// Apply no examples.
    #[arg(long, conflicts_with = "examples")]
    pub empty: bool,
    /// First host port handed to tasks; agent i gets 100 ports from base + 100*i
    /// (all below 32768, the kernel's ephemeral range).
    #[arg(long, default_value_t = 24000, value_name = "PORT")]
    pub port_base: u16,
}

/// `drover nodes [VERB]`.
#[derive(Debug, Clone, Args)]
pub struct NodesArgs {
    /// The verb; none lists.
    #[command(subcommand)]
    pub command: Option<NodesCommand>,
}

/// The verbs on nodes.
#[derive(Debug, Clone, Subcommand)]
pub enum NodesCommand {
    /// List the nodes with their free and total resources.
    #[command(visible_alias = "ls")]
    List,
    /// Show everything about one node: host, resources, tasks.
    Show(NodeShowArgs),
    /// Refuse new placements on a node; its tasks keep running.
    Drain(NodeDrainArgs),
    /// Accept placements on a node again.
    Activate(NodeActivateArgs),
}

/// `drover nodes show NODE`.
#[derive(Debug, Clone, Args)]
pub struct NodeShowArgs {
    /// The node's name.
    pub node: String,
}

/// `drover nodes drain NODE`.
#[derive(Debug, Clone, Args)]
pub struct NodeDrainArgs {
    /// The node's name.
    pub node: String,
}

/// `drover nodes activate NODE`.
#[derive(Debug, Clone, Args)]
pub struct NodeActivateArgs {
    /// The node's name.
    pub node: String,
}

/// `drover tasks [VERB]`; without a verb it takes the list options.
///
/// (Not `args_conflicts_with_subcommands`: clap then also refuses global options given
/// between `tasks` and the verb; [`crate::run`] refuses list options with a verb instead.)
#[derive(Debug, Clone, Args)]
pub struct TasksArgs {
    /// The verb; none lists.
    #[command(subcommand)]
    pub command: Option<TasksCommand>,
    /// List options, for `drover tasks` without a verb.
    #[command(flatten)]
    pub list: TaskListArgs,
}

/// The verbs on tasks.
#[derive(Debug, Clone, Subcommand)]
pub enum TasksCommand {
    /// List tasks (active ones unless --all or --state).
    #[command(visible_alias = "ls")]
    List(TaskListArgs),
    /// Show everything about one task.
    Show(TaskShowArgs),
    /// Kill a task: SIGTERM, then SIGKILL after its grace period.
    Kill(TaskKillArgs),
    /// Print a task's output (stdout, or stderr with --stderr).
    Logs(TaskLogsArgs),
    /// Run a command on a node: `drover tasks launch --node N -- CMD...`.
    Launch(Box<TaskLaunchArgs>),
}

/// `drover tasks list`.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct TaskListArgs {
    /// Only tasks on this node.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Only tasks in this state (staging, running, healthy, unhealthy, finished, failed,
    /// killed, lost); includes terminal tasks.
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    pub state: Option<TaskState>,
    /// Include terminal tasks (finished, failed, killed, lost).
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Only tasks with this label.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label_filter)]
    pub label: Option<String>,
}

/// `drover tasks show TASK`.
#[derive(Debug, Clone, Args)]
pub struct TaskShowArgs {
    /// The task's id.
    pub task: String,
}

/// `drover tasks kill TASK`.
#[derive(Debug, Clone, Args)]
pub struct TaskKillArgs {
    /// The task's id.
    pub task: String,
    /// Wait until the task has ended and print its final state.
    #[arg(long)]
    pub wait: bool,
    /// With --wait, give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "wait")]
    pub timeout: u64,
}

/// `drover tasks logs TASK`.
#[derive(Debug, Clone, Args)]
pub struct TaskLogsArgs {
    /// The task's id.
    pub task: String,
    /// Keep printing new output as the task writes it.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Read stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Start this many bytes before the end.
    #[arg(long, value_name = "BYTES")]
    pub tail: Option<u64>,
}

/// `drover tasks launch --node N [options] -- CMD...`.
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("health").args(["health_http", "health_tcp", "health_cmd"]).multiple(false)
))]
pub struct TaskLaunchArgs {
    /// The node to run on.
    #[arg(long, value_name = "NODE")]
    pub node: String,
    /// The task's name (prefixes its id); default: the command's first word.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// CPU cores to reserve.
    #[arg(long, value_name = "CPUS", default_value_t = 0.1)]
    pub cpus: f64,
    /// Memory to reserve, in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 32.0)]
    pub mem: f64,
    /// Disk to reserve, in MiB.
    #[arg(long, value_name = "MiB", default_value_t = 0.0)]
    pub disk: f64,
    /// Ask for a host port (repeatable); the task sees it as PORT0.., and as PORT_<NAME>
    /// when named. A bare --port just before the command takes the command's first word
    /// as its name unless the command follows `--`.
    #[arg(
        long = "port",
        value_name = "NAME",
        num_args = 0..=1,
        default_missing_value = "",
        value_parser = parse_port_name
    )]
    pub ports: Vec<String>,
    /// An environment variable for the task (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,
    /// A label on the task (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// Seconds between SIGTERM and SIGKILL when the task is killed.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub grace: f64,
    /// Run CMD... as an argv, without a shell (default: joined with spaces and run with
    /// `sh -c`).
    #[arg(long)]
    pub argv: bool,
    /// Health check: HTTP GET of PATH on the task's first port.
    #[arg(long, value_name = "PATH")]
    pub health_http: Option<String>,
    /// Health check: TCP connect to the task's first port.
    #[arg(long)]
    pub health_tcp: bool,
    /// Health check: a shell command in the task's environment; exit 0 passes.
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Seconds between health checks (default 60).
    #[arg(long, value_name = "SECS", requires = "health")]
    pub health_interval: Option<f64>,
    /// Seconds after start during which failures do not count (default 300).
    #[arg(long, value_name = "SECS", requires = "health")]
    pub health_grace: Option<f64>,
    /// Seconds before one check counts as failed (default 20).
    #[arg(long, value_name = "SECS", requires = "health")]
    pub health_timeout: Option<f64>,
    /// Seconds after start before the first check (default 15).
    #[arg(long, value_name = "SECS", requires = "health")]
    pub health_delay: Option<f64>,
    /// Consecutive failures after which the task is unhealthy (default 3).
    #[arg(long, value_name = "N", requires = "health")]
    pub health_max_failures: Option<u32>,
    /// The command to run; put it after `--` when it has options of its own.
    #[arg(
        value_name = "CMD",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// Parses a task state by its lowercase name.
pub fn parse_state(s: &str) -> Result<TaskState, String> {
    s.parse()
}

/// Parses `KEY=VALUE`; the key must be non-empty, the value may be empty or hold `=`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Checks a `--label` filter has the `KEY=VALUE` shape and keeps it as one string.
pub fn parse_label_filter(s: &str) -> Result<String, String> {
    parse_key_value(s).map(|_| s.to_string())
}

/// Checks a port name: letters, digits, `_` and `-` (empty means unnamed).
pub fn parse_port_name(s: &str) -> Result<String, String> {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a valid port name (letters, digits, '_' and '-')"
        ))
    }
}
