//! The command line: `drover-agent [FLAGS]` runs the agent; `drover-agent shim SANDBOX`
//! (hidden) is the per-task supervisor the agent starts; `drover-agent install` and
//! `uninstall` write and remove the host's config file and systemd unit. Every flag also
//! comes from `DROVER_AGENT_<NAME>` and from the `--config` TOML file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use drover_api::PortRange;
use drover_service::connections::ConnectionLimits;
use drover_service::install::Service;

use crate::host::Reservation;
use crate::install::AgentService;
use crate::task_user::{self, TaskUserFlags, TaskUsers};

/// `drover-agent`: runs tasks on this host for a Drover master.
#[derive(Debug, Parser)]
#[command(
    name = AgentService::NAME,
    version = drover_api::VERSION,
    about = AgentService::ABOUT
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A subcommand; none runs the agent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The agent's flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands besides running the agent.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Supervise one task (started by the agent, not by people).
    #[command(hide = true)]
    Shim {
        /// The task's sandbox directory.
        sandbox: PathBuf,
    },
    /// Write this host's config file and systemd unit (only what changed).
    Install(Box<crate::install::InstallCmd>),
    /// Remove the config file and systemd unit `install` wrote (tasks and work dir stay).
    Uninstall(crate::install::UninstallCmd),
}

/// Flags of the agent itself.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The master's URL.
    #[arg(long, env = "DROVER_AGENT_MASTER", default_value = drover_api::DEFAULT_MASTER_URL)]
    pub master: String,
    /// Address to serve the agent's API on (IP:PORT; port 0 picks one).
    #[arg(long, env = "DROVER_AGENT_LISTEN", default_value = drover_api::DEFAULT_AGENT_LISTEN)]
    pub listen: String,
    /// The URL the master and tools use to reach this agent [default: http://BOUND-ADDRESS].
    #[arg(long, env = "DROVER_AGENT_ADVERTISE")]
    pub advertise: Option<String>,
    /// Where sandboxes and checkpoints live [default: $XDG_DATA_HOME or ~/.local/share, + /drover/agent].
    #[arg(long, env = "DROVER_AGENT_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// The node's name, unique in the cluster [default: the host name].
    #[arg(long, env = "DROVER_AGENT_NAME")]
    pub name: Option<String>,
    /// Attributes for placement constraints: k=v,k=v.
    #[arg(long, env = "DROVER_AGENT_ATTRIBUTES", value_parser = parse_attributes)]
    pub attributes: Option<Attributes>,
    /// Host ports handed to tasks: LO-HI.
    #[arg(long, env = "DROVER_AGENT_PORTS", default_value = "31000-32000")]
    pub ports: PortRange,
    /// CPUs kept for the host [default: 0].
    #[arg(long, env = "DROVER_AGENT_RESERVED_CPUS")]
    pub reserved_cpus: Option<f64>,
    /// Memory kept for the host, MiB [default: min(1024, half of total)].
    #[arg(long, env = "DROVER_AGENT_RESERVED_MEM")]
    pub reserved_mem: Option<f64>,
    /// Disk kept for the host, MiB [default: min(5120, half of total)].
    #[arg(long, env = "DROVER_AGENT_RESERVED_DISK")]
    pub reserved_disk: Option<f64>,
    /// Bearer token: required of callers of this agent and sent to the master.
    #[arg(long, env = "DROVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the bearer token.
    #[arg(long, env = "DROVER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A TOML file of these flags (keys are the long names).
    #[arg(long, env = "DROVER_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds between refreshes of the host's resource usage.
    #[arg(long, env = "DROVER_AGENT_RESOURCE_INTERVAL", default_value_t = 5.0)]
    pub resource_interval: f64,
    /// The Docker Engine's unix socket; where an engine answers, the node runs DOCKER
    /// tasks. An empty value turns Docker off.
    #[arg(long, env = "DROVER_AGENT_DOCKER_SOCKET", default_value = crate::docker::DEFAULT_SOCKET, value_parser = parse_socket_path)]
    pub docker_socket: PathBuf,
    /// The Unix user tasks run as [default: drover-task if the host has it, else nobody;
    /// an agent that is not root runs tasks as itself and accepts only its own user].
    #[arg(long, env = "DROVER_AGENT_TASK_USER")]
    pub task_user: Option<String>,
    /// Other users a task may name in its `user` (comma-separated; root needs
    /// --allow-root-tasks instead) [default: none].
    #[arg(long, env = "DROVER_AGENT_ALLOWED_TASK_USERS", value_delimiter = ',')]
    pub allowed_task_users: Vec<String>,
    /// Let tasks run as root (uid 0) when they ask for it.
    #[arg(long, env = "DROVER_AGENT_ALLOW_ROOT_TASKS")]
    pub allow_root_tasks: bool,
    /// Accept the cluster of the master this agent next registers with, instead of
    /// refusing a master whose cluster id differs from the one remembered in the work
    /// dir (`cluster-id`). For moving a node to a new cluster, once: remove it afterwards.
    #[arg(long, env = "DROVER_AGENT_JOIN_NEW_CLUSTER")]
    pub join_new_cluster: bool,
    /// Most tasks the node runs at once; the master refuses launches past it [default:
    /// what the process limit allows, one task per 16 processes, at most 2000].
    #[arg(long, env = "DROVER_AGENT_MAX_TASKS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tasks: Option<u32>,
    /// Most connections the agent's API serves at once; past it, the connection slowest
    /// to send its headers (or idle longest) is closed for a new one [default: three
    /// quarters of the open-file limit].
    #[arg(long, env = "DROVER_AGENT_MAX_CONNECTIONS", value_parser = drover_service::connections::parse_max_connections)]
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers before it is disconnected.
    #[arg(long, env = "DROVER_AGENT_HEADER_TIMEOUT", default_value = "10", value_parser = drover_service::connections::parse_timeout)]
    pub header_timeout: Duration,
    /// Seconds a kept-alive connection may sit between requests before it is closed
    /// (log follows in progress are not idle).
    #[arg(long, env = "DROVER_AGENT_IDLE_TIMEOUT", default_value = "60", value_parser = drover_service::connections::parse_timeout)]
    pub idle_timeout: Duration,
}

/// A socket path that may be empty: clap's own `PathBuf` parser refuses `""`, which is
/// how `--docker-socket ""` says "no Docker".
fn parse_socket_path(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

/// Parsed `k=v,k=v` attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(pub BTreeMap<String, String>);

/// Parses `k=v,k=v` (empty parts are skipped; a part without `=` is an error).
pub fn parse_attributes(s: &str) -> Result<Attributes, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("attribute {part:?} is not key=value"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("attribute {part:?} has an empty key"));
        }
        out.insert(k.to_string(), v.trim().to_string());
    }
    Ok(Attributes(out))
}

/// Why the flags do not make a usable configuration.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag has a value out of range.
    #[error("--{flag}: {message}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The task-user flags do not fit this host or the agent's own user.
    #[error(transparent)]
    TaskUser(#[from] task_user::TaskUserError),
}

/// The agent's settings, resolved from the flags and the bound address.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The master's URL.
    pub master: String,
    /// This agent's URL as others reach it.
    pub advertise: String,
    /// The work dir.
    pub work_dir: PathBuf,
    /// The node's name.
    pub name: String,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Task ports.
    pub ports: PortRange,
    /// What the operator reserved for the host.
    pub reserved: Reservation,
    /// The bearer token.
    pub token: Option<String>,
    /// Between refreshes of host usage.
    pub resource_interval: Duration,
    /// The binary started as each task's shim.
    pub shim_exe: PathBuf,
    /// The Docker Engine's socket, unless Docker is turned off.
    pub docker_socket: Option<PathBuf>,
    /// Who tasks run as, and who they may ask to run as.
    pub task_users: TaskUsers,
    /// How the API treats its connections.
    pub connections: ConnectionLimits,
    /// Most tasks the node runs at once.
    pub max_tasks: u32,
    /// Accept the next master's cluster even if it differs from the remembered one.
    pub join_new_cluster: bool,
}

impl RunArgs {
    /// The task-user flags as given.
    pub fn task_user_flags(&self) -> TaskUserFlags {
        TaskUserFlags {
            task_user: self.task_user.clone(),
            allowed: self.allowed_task_users.clone(),
            allow_root: self.allow_root_tasks,
        }
    }

    /// Resolves defaults that depend on the host and the bound address, and the task
    /// users (from the host's user database, as the agent's own user sees it).
    pub fn resolve(
        &self,
        bound: SocketAddr,
        token: Option<String>,
        shim_exe: PathBuf,
    ) -> Result<AgentOptions, CliError> {
        self.check()?;
        let task_users = task_user::check_flags(
            &self.task_user_flags(),
            &task_user::current(),
            task_user::lookup,
        )?;
        let advertise = match &self.advertise {
            Some(a) => a.trim_end_matches('/').to_string(),
            None => default_advertise(bound, &crate::host::hostname()),
        };
        let name = self
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(crate::host::hostname);
        Ok(AgentOptions {
            master: self.master.clone(),
            advertise,
            work_dir: self.work_dir.clone().unwrap_or_else(|| {
                default_work_dir(
                    std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
                    std::env::var_os("HOME").map(PathBuf::from),
                )
            }),
            name,
            attributes: self.attributes.clone().unwrap_or_default().0,
            ports: self.ports,
            reserved: Reservation {
                cpus: self.reserved_cpus,
                mem: self.reserved_mem,
                disk: self.reserved_disk,
            },
            token,
            resource_interval: Duration::from_secs_f64(self.resource_interval),
            shim_exe,
            docker_socket: Some(self.docker_socket.clone()).filter(|p| !p.as_os_str().is_empty()),
            task_users,
            connections: ConnectionLimits::new(
                self.max_connections,
                self.header_timeout,
                self.idle_timeout,
            ),
            max_tasks: self
                .max_tasks
                .unwrap_or_else(|| crate::host::default_max_tasks(crate::host::process_limit())),
            join_new_cluster: self.join_new_cluster,
        })
    }

    /// The checks that need nothing from the host (`install` makes them too; the task
    /// users are looked up only where the agent runs).
    pub fn check(&self) -> Result<(), CliError> {
        let invalid = |flag, message: String| CliError::Invalid { flag, message };
        if !(self.master.starts_with("http://") || self.master.starts_with("https://")) {
            return Err(invalid(
                "master",
                format!("{:?} is not an http(s) URL", self.master),
            ));
        }
        for (flag, v) in [
            ("reserved-cpus", self.reserved_cpus),
            ("reserved-mem", self.reserved_mem),
            ("reserved-disk", self.reserved_disk),
        ] {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                return Err(invalid(
                    flag,
                    format!("must be a non-negative number, got {v}"),
                ));
            }
        }
        if !self.resource_interval.is_finite() || !(0.1..=3600.0).contains(&self.resource_interval)
        {
            return Err(invalid(
                "resource-interval",
                format!(
                    "must be between 0.1 and 3600 seconds, got {}",
                    self.resource_interval
                ),
            ));
        }
        if let Some(a) = &self.advertise
            && !(a.starts_with("http://") || a.starts_with("https://"))
        {
            return Err(invalid("advertise", format!("{a:?} is not an http(s) URL")));
        }
        if self
            .task_user
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return Err(invalid("task-user", "must not be empty".to_string()));
        }
        if self.allowed_task_users.iter().any(|u| u.trim().is_empty()) {
            return Err(invalid(
                "allowed-task-users",
                "has an empty user name".to_string(),
            ));
        }
        Ok(())
    }
}

/// `http://<bound address>`; an unspecified IP (0.0.0.0) is useless to others, so the
/// host name stands in for it.
pub fn default_advertise(bound: SocketAddr, hostname: &str) -> String {
    if bound.ip().is_unspecified() {
        format!("http://{hostname}:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

/// `$XDG_DATA_HOME/drover/agent`, else `~/.local/share/drover/agent`, else
/// `/var/lib/drover/agent` when there is no home at all.
pub fn default_work_dir(xdg_data_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    let base = xdg_data_home.filter(|p| p.is_absolute()).or_else(|| {
        home.filter(|h| h.is_absolute())
            .map(|h| h.join(".local/share"))
    });
    match base {
        Some(b) => b.join("drover/agent"),
        None => PathBuf::from("/var/lib/drover/agent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_subcommand() {
        let cli = Cli::try_parse_from([
            "drover-agent",
            "--ports",
            "40000-40010",
            "--attributes",
            "rack=r1, zone=a",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            cli.run.ports,
            PortRange {
                begin: 40000,
                end: 40010
            }
        );
        let attrs = cli.run.attributes.unwrap().0;
        assert_eq!(attrs["rack"], "r1");
        assert_eq!(attrs["zone"], "a");
        let cli = Cli::try_parse_from(["drover-agent", "shim", "/w/tasks/t.1"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Shim { ref sandbox }) if sandbox == &PathBuf::from("/w/tasks/t.1"))
        );
        assert!(Cli::try_parse_from(["drover-agent", "--attributes", "novalue"]).is_err());
    }

    #[test]
    fn defaults() {
        assert_eq!(
            default_advertise("127.0.0.1:5051".parse().unwrap(), "h"),
            "http://127.0.0.1:5051"
        );
        assert_eq!(
            default_advertise("0.0.0.0:5051".parse().unwrap(), "h"),
            "http://h:5051"
        );
        assert_eq!(
            default_work_dir(Some("/x".into()), Some("/home/u".into())),
            PathBuf::from("/x/drover/agent")
        );
        assert_eq!(
            default_work_dir(None, Some("/home/u".into())),
            PathBuf::from("/home/u/.local/share/drover/agent")
        );
        assert_eq!(
            default_work_dir(None, None),
            PathBuf::from("/var/lib/drover/agent")
        );
    }

    #[test]
    fn resolve_checks_values() {
        let cli = Cli::try_parse_from(["drover-agent", "--reserved-mem=-5"]).unwrap();
        let err = cli
            .run
            .resolve("127.0.0.1:1".parse().unwrap(), None, "/bin/x".into())
            .unwrap_err();
        assert!(err.to_string().contains("--reserved-mem"), "{err}");
        let cli =
            Cli::try_parse_from(["drover-agent", "--name", "n1", "--work-dir", "/w"]).unwrap();
        let o = cli
            .run
            .resolve("127.0.0.1:5051".parse().unwrap(), None, "/bin/x".into())
            .unwrap();
        assert_eq!(o.name, "n1");
        assert_eq!(o.advertise, "http://127.0.0.1:5051");
        assert_eq!(o.resource_interval, Duration::from_secs(5));
        assert!(o.docker_socket.is_some());
    }

    #[test]
    fn task_user_flags_from_the_command_line_and_the_environment() {
        let cli = Cli::try_parse_from([
            "drover-agent",
            "--task-user",
            "app",
            "--allowed-task-users",
            "a,b",
            "--allow-root-tasks",
        ])
        .unwrap();
        assert_eq!(
            cli.run.task_user_flags(),
            TaskUserFlags {
                task_user: Some("app".into()),
                allowed: vec!["a".into(), "b".into()],
                allow_root: true,
            }
        );
        let cli = Cli::try_parse_from(["drover-agent"]).unwrap();
        assert_eq!(cli.run.task_user_flags(), TaskUserFlags::default());
        let cli = Cli::try_parse_from(["drover-agent", "--task-user", " "]).unwrap();
        let err = cli.run.check().unwrap_err();
        assert!(err.to_string().contains("--task-user"), "{err}");
    }

    #[test]
    fn empty_docker_socket_turns_docker_off() {
        let cli = Cli::try_parse_from(["drover-agent", "--docker-socket", ""]).unwrap();
        let o = cli
            .run
            .resolve("127.0.0.1:5051".parse().unwrap(), None, "/bin/x".into())
            .unwrap();
        assert_eq!(o.docker_socket, None);
    }
}
