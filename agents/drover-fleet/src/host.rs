//! What `drover fleet` needs of each host, taken from its inventory variables the way the
//! playbook roles take them: how to connect, where binaries go, each binary's `install`
//! arguments, and how to restart a unit.

use std::path::PathBuf;

use crate::inventory::{HostVars, Inventory, VarError};

/// The three server binaries and the inventory group each belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `drover-master`, group `masters`.
    Master,
    /// `drover-scheduler`, group `schedulers`.
    Scheduler,
    /// `drover-agent`, group `agents`.
    Agent,
}

impl Role {
    /// In rollout order.
    pub const ALL: [Role; 3] = [Role::Master, Role::Scheduler, Role::Agent];

    /// The binary's (and the unit's) name.
    pub fn binary(self) -> &'static str {
        match self {
            Role::Master => "drover-master",
            Role::Scheduler => "drover-scheduler",
            Role::Agent => "drover-agent",
        }
    }

    /// The inventory group.
    pub fn group(self) -> &'static str {
        match self {
            Role::Master => "masters",
            Role::Scheduler => "schedulers",
            Role::Agent => "agents",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Scheduler => "scheduler",
            Role::Agent => "agent",
        })
    }
}

/// How to reach a host over SSH.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// The inventory name.
    pub host: String,
    /// `ansible_host`, else the inventory name.
    pub address: String,
    /// `ansible_port`, else 22.
    pub port: u16,
    /// `ansible_user`, else the local user (as OpenSSH and Ansible do).
    pub user: String,
    /// `ansible_ssh_private_key_file`; without it ssh-agent, then `~/.ssh/id_*`.
    pub key_file: Option<PathBuf>,
    /// `ansible_become`: run commands through `sudo -n` (when the user is not root).
    pub become_root: bool,
}

impl Connection {
    /// Whether commands need `sudo`.
    pub fn needs_sudo(&self) -> bool {
        self.become_root && self.user != "root"
    }
}

/// One host as `drover fleet` sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetHost {
    /// The inventory name.
    pub name: String,
    /// The connection.
    pub conn: Connection,
    /// The roles it has (by group membership), in rollout order.
    pub roles: Vec<Role>,
    /// `drover_common_bin_dir` (default `/usr/local/bin`).
    pub bin_dir: String,
    /// The node's name at the master (`drover_agent_name`, default the inventory name).
    pub node_name: String,
    /// `drover_fleet_restart_command` with `{unit}` for the unit's name; by default
    /// `systemctl daemon-reload && systemctl enable {unit} && systemctl restart {unit}`
    /// (enabled, so a first install also starts again after a reboot, as the roles do).
    pub restart_command: String,
    /// The scheduler's URL (for its gate), when it is a scheduler.
    pub scheduler_url: String,
    /// The `install` argument lists by role.
    pub install_args: Vec<(Role, Vec<String>)>,
}

impl FleetHost {
    /// Where a role's binary lives on the host.
    pub fn bin_path(&self, role: Role) -> String {
        format!("{}/{}", self.bin_dir.trim_end_matches('/'), role.binary())
    }

    /// The command that restarts a role's unit.
    pub fn restart(&self, role: Role) -> String {
        self.restart_command.replace("{unit}", role.binary())
    }

    /// The `install` arguments for a role.
    pub fn install(&self, role: Role) -> &[String] {
        self.install_args
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, a)| a.as_slice())
            .unwrap_or(&[])
    }
}

/// The fleet read from an inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetInventory {
    /// Hosts with at least one role, in inventory order.
    pub hosts: Vec<FleetHost>,
    /// The master's URL, as the roles compute it (`drover_master_url`, else the first
    /// master's `drover_node_address` on `drover_master_port`).
    pub master_url: Option<String>,
    /// `drover_token` when it is set plainly.
    pub token: Option<String>,
}

/// The default SSH user: the local one, as OpenSSH and Ansible use.
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".into())
}

fn or(v: Result<Option<String>, VarError>, default: impl Into<String>) -> Result<String, VarError> {
    Ok(v?.unwrap_or_else(|| default.into()))
}

/// Turns an inventory into the fleet: roles by group, connections, install arguments
/// (the same ones `playbooks/roles/*/tasks/main.yml` pass).
pub fn fleet_from(inv: &Inventory) -> Result<FleetInventory, VarError> {
    let masters = inv.group_hosts("masters");
    let mut master_url = None;
    let mut token = None;
    if let Some(first) = masters.first().and_then(|m| inv.host_vars(m)) {
        let addr = node_address(&first)?;
        let port = or(first.string("drover_master_port"), "5050")?;
        master_url = Some(format!("http://{addr}:{port}"));
    }
    let mut hosts = Vec::new();
    for (name, _) in &inv.hosts {
        let roles: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| inv.group_hosts(r.group()).contains(name))
            .collect();
        if roles.is_empty() {
            continue;
        }
        let Some(v) = inv.host_vars(name) else {
            continue;
        };
        // A host's own drover_master_url wins, as in the roles.
        let url = match v.string("drover_master_url")? {
            Some(u) => u,
            None => master_url
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:5050".into()),
        };
        if token.is_none() {
            token = v.string("drover_token").ok().flatten();
        }
        hosts.push(host_from(&v, roles, &url)?);
    }
    // drover_master_url set cluster-wide wins over the computed one.
    if let Some(h) = hosts.first().and_then(|h| inv.host_vars(&h.name))
        && let Ok(Some(u)) = h.string("drover_master_url")
    {
        master_url = Some(u);
    }
    Ok(FleetInventory {
        hosts,
        master_url,
        token,
    })
}

fn node_address(v: &HostVars) -> Result<String, VarError> {
    match v.string("drover_node_address")? {
        Some(a) => Ok(a),
        None => or(v.string("ansible_host"), v.host.clone()),
    }
}

fn host_from(v: &HostVars, roles: Vec<Role>, master_url: &str) -> Result<FleetHost, VarError> {
    let port_text = or(v.string("ansible_port"), "22")?;
    let port = port_text.parse().map_err(|_| VarError::Type {
        host: v.host.clone(),
        name: "ansible_port".into(),
        expected: "a port number",
        value: port_text.clone(),
    })?;
    let conn = Connection {
        host: v.host.clone(),
        address: or(v.string("ansible_host"), v.host.clone())?,
        port,
        user: or(
            v.string("ansible_user").and_then(|u| {
                if u.is_some() {
                    Ok(u)
                } else {
                    v.string("ansible_ssh_user")
                }
            }),
            local_user(),
        )?,
        key_file: v
            .string("ansible_ssh_private_key_file")?
            .or(v.string("ansible_private_key_file")?)
            .map(|k| PathBuf::from(expand_home(&k))),
        become_root: v.boolean("ansible_become")?.unwrap_or(false),
    };
    let address = node_address(v)?;
    let config_dir = or(v.string("drover_common_config_dir"), "/etc/drover")?;
    let data_dir = or(v.string("drover_common_data_dir"), "/var/lib/drover")?;
    let token_file = or(
        v.string("drover_common_token_file"),
        format!("{config_dir}/token"),
    )?;
    let node_name = or(v.string("drover_agent_name"), v.host.clone())?;
    let mut install_args = Vec::new();
    for role in &roles {
        let args = match role {
            Role::Master => {
                let port = or(v.string("drover_master_port"), "5050")?;
                let mut a = vec![
                    "--listen".into(),
                    or(v.string("drover_master_listen"), format!("0.0.0.0:{port}"))?,
                    "--data-dir".into(),
                    or(
                        v.string("drover_master_data_dir"),
                        format!("{data_dir}/master"),
                    )?,
                    "--token-file".into(),
                    token_file.clone(),
                ];
                a.extend(v.list("drover_master_extra_args")?);
                a
            }
            Role::Scheduler => {
                let port = or(v.string("drover_scheduler_port"), "8080")?;
                let mut a = vec![
                    "--master".into(),
                    master_url.to_string(),
                    "--listen".into(),
                    or(
                        v.string("drover_scheduler_listen"),
                        format!("0.0.0.0:{port}"),
                    )?,
                    "--data-dir".into(),
                    or(
                        v.string("drover_scheduler_data_dir"),
                        format!("{data_dir}/scheduler"),
                    )?,
                    "--token-file".into(),
                    token_file.clone(),
                ];
                a.extend(v.list("drover_scheduler_extra_args")?);
                a
            }
            Role::Agent => {
                let port = or(v.string("drover_agent_port"), "5051")?;
                let mut a = vec![
                    "--name".into(),
                    node_name.clone(),
                    "--master".into(),
                    master_url.to_string(),
                    "--listen".into(),
                    or(v.string("drover_agent_listen"), format!("0.0.0.0:{port}"))?,
                    "--advertise".into(),
                    or(
                        v.string("drover_agent_advertise"),
                        format!("http://{address}:{port}"),
                    )?,
                    "--work-dir".into(),
                    or(
                        v.string("drover_agent_work_dir"),
                        format!("{data_dir}/agent"),
                    )?,
                    "--ports".into(),
                    or(v.string("drover_agent_ports"), "31000-32000")?,
                    "--token-file".into(),
                    token_file.clone(),
                ];
                let attrs = v.map("drover_agent_attributes")?;
                if !attrs.is_empty() {
                    let joined: Vec<String> =
                        attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    a.extend(["--attributes".into(), joined.join(",")]);
                }
                for (var, flag) in [
                    ("drover_agent_reserved_cpus", "--reserved-cpus"),
                    ("drover_agent_reserved_mem", "--reserved-mem"),
                    ("drover_agent_reserved_disk", "--reserved-disk"),
                ] {
                    if let Some(x) = v.string(var)? {
                        a.extend([flag.into(), x]);
                    }
                }
                // The role's default (drover-task) is not assumed: the role creates that
                // user and `drover fleet` does not, and an agent given a user the host
                // lacks refuses to start. Unset, the agent picks drover-task where it
                // exists, else nobody.
                if let Some(user) = v.string("drover_agent_task_user")? {
                    a.extend(["--task-user".into(), user]);
                }
                let allowed = v.list("drover_agent_allowed_task_users")?;
                if !allowed.is_empty() {
                    a.extend(["--allowed-task-users".into(), allowed.join(",")]);
                }
                if v.boolean("drover_agent_allow_root_tasks")? == Some(true) {
                    a.push("--allow-root-tasks".into());
                }
                a.extend(v.list("drover_agent_extra_args")?);
                a
            }
        };
        install_args.push((*role, args));
    }
    let sched_port = or(v.string("drover_scheduler_port"), "8080")?;
    Ok(FleetHost {
        name: v.host.clone(),
        conn,
        roles,
        bin_dir: or(v.string("drover_common_bin_dir"), "/usr/local/bin")?,
        node_name,
        restart_command: or(
            v.string("drover_fleet_restart_command"),
            "systemctl daemon-reload && systemctl enable {unit} && systemctl restart {unit}",
        )?,
        scheduler_url: or(
            v.string("drover_scheduler_url"),
            format!("http://{address}:{sched_port}"),
        )?,
        install_args,
    })
}

fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => p.to_string(),
    }
}
