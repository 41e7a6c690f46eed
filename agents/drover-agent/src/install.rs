//! `drover-agent install` and `uninstall`: the agent's config file and systemd unit,
//! rendered from the Handlebars templates under `templates/` (compiled in).
//!
//! `install` takes the agent's own flags, so the config file holds exactly what the
//! daemon will run with, and refuses what the daemon would refuse at start. The unit
//! keeps tasks alive across agent restarts and upgrades (`KillMode=process`) and adds no
//! sandboxing, which tasks would inherit (the template says why).

use std::path::Path;

use drover_service::install::{
    Builtin, DaemonFlags, InstallError, Service, listen_addr, refuse_token, service_values,
};
use serde_json::json;

use crate::cli::RunArgs;

/// The agent as `install` sees it.
#[derive(Debug, Clone)]
pub struct AgentService;

impl Service for AgentService {
    const NAME: &'static str = "drover-agent";
    const ROLE: &'static str = "agent";
    const ABOUT: &'static str =
        "Drover's per-host agent: runs and watches the tasks a master assigns";
    const CONFIG_TEMPLATE: Builtin = Builtin {
        name: "agent.toml.hbs",
        text: include_str!("../templates/agent.toml.hbs"),
    };
    const UNIT_TEMPLATE: Builtin = Builtin {
        name: "drover-agent.service.hbs",
        text: include_str!("../templates/drover-agent.service.hbs"),
    };
    const DEFAULT_BIN: &'static str = "/usr/local/bin/drover-agent";
    const DEFAULT_CONFIG: &'static str = "/etc/drover/agent.toml";
    const DEFAULT_UNIT: &'static str = "/etc/systemd/system/drover-agent.service";
}

/// Where an agent that runs as a service keeps its sandboxes (root has a home, but a
/// host's tasks do not belong in it).
pub const SERVICE_WORK_DIR: &str = "/var/lib/drover/agent";

/// `drover-agent uninstall` (the work dir, and the tasks, stay).
pub type UninstallCmd = drover_service::install::UninstallCmd<AgentService>;

/// `drover-agent install`.
pub type InstallCmd = drover_service::install::InstallCmd<RunArgs>;

impl DaemonFlags for RunArgs {
    type Service = AgentService;

    fn config(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// Values left unset are `null`, and the agent picks their defaults when it starts
    /// (the host name, the bound address).
    fn values(&self, config: &Path, bin: &Path) -> Result<serde_json::Value, InstallError> {
        let bad = |flag: &str, message: String| InstallError::Value {
            flag: flag.to_string(),
            message,
        };
        refuse_token(self.token.as_deref())?;
        if self.join_new_cluster {
            // Kept in the service's config it would follow any master to any cluster.
            return Err(bad(
                "join-new-cluster",
                "is not written into the service's config: start the agent once with it \
                 (e.g. DROVER_AGENT_JOIN_NEW_CLUSTER=true in a one-off drop-in) instead"
                    .into(),
            ));
        }
        listen_addr("agent", &self.listen, self.token_file.as_deref())?;
        // The checks the agent makes at start that need nothing from this host (URLs,
        // reservations, interval); whether the task user exists is checked at start.
        self.check().map_err(|e| match e {
            crate::cli::CliError::Invalid { flag, message } => bad(flag, message),
            other => bad("task-user", other.to_string()),
        })?;
        let work_dir = self
            .work_dir
            .as_deref()
            .unwrap_or(Path::new(SERVICE_WORK_DIR));
        if !work_dir.is_absolute() {
            return Err(bad(
                "work-dir",
                format!("{} must be an absolute path", work_dir.display()),
            ));
        }
        let text = |flag: &str, p: &Path| {
            p.to_str()
                .map(str::to_string)
                .ok_or_else(|| bad(flag, format!("{} is not UTF-8", p.display())))
        };
        let attributes = self
            .attributes
            .as_ref()
            .filter(|a| !a.0.is_empty())
            .map(|a| {
                a.0.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
        let mut values = service_values::<AgentService>(config, bin)?;
        values["master"] = json!(self.master);
        values["listen"] = json!(self.listen);
        values["advertise"] = json!(self.advertise);
        values["work_dir"] = json!(text("work-dir", work_dir)?);
        values["node_name"] = json!(self.name.as_deref().filter(|n| !n.trim().is_empty()));
        values["attributes"] = json!(attributes);
        values["ports"] = json!(self.ports.to_string());
        values["reserved_cpus"] = json!(self.reserved_cpus);
        values["reserved_mem"] = json!(self.reserved_mem);
        values["reserved_disk"] = json!(self.reserved_disk);
        let token_file = self.token_file.as_deref();
        values["token_file"] = json!(token_file.map(|p| text("token-file", p)).transpose()?);
        values["resource_interval"] = json!(self.resource_interval);
        values["task_user"] = json!(self.task_user.as_deref().map(str::trim));
        let allowed: Vec<&str> = self.allowed_task_users.iter().map(|u| u.trim()).collect();
        values["allowed_task_users"] = json!((!allowed.is_empty()).then_some(allowed));
        values["allow_root_tasks"] = json!(self.allow_root_tasks);
        values["max_tasks"] = json!(self.max_tasks);
        values["max_connections"] = json!(self.max_connections);
        values["header_timeout"] = json!(self.header_timeout.as_secs_f64());
        values["idle_timeout"] = json!(self.idle_timeout.as_secs_f64());
        Ok(values)
    }

    fn install_arg(arg: clap::Arg) -> clap::Arg {
        match arg.get_id().as_str() {
            "work_dir" => arg
                .default_value(SERVICE_WORK_DIR)
                .help("Where sandboxes and checkpoints live"),
            "bin" => arg.help("The binary the unit starts (also what task shims run)"),
            _ => arg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use std::path::PathBuf;

    fn install_cmd(args: &[&str]) -> InstallCmd {
        let mut argv = vec!["drover-agent", "install"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Install(cmd)) => *cmd,
            other => panic!("not install: {other:?}"),
        }
    }

    fn rendered(cmd: &InstallCmd) -> (String, String) {
        let mut files = drover_service::install::render(&cmd.plan().unwrap(), None).unwrap();
        let unit = files.pop().unwrap().1;
        (files.pop().unwrap().1, unit)
    }

    #[test]
    fn defaults_are_the_service_ones() {
        let cmd = install_cmd(&[]);
        let v = cmd.plan().unwrap().values;
        assert_eq!(v["bin"], "/usr/local/bin/drover-agent");
        assert_eq!(v["config"], "/etc/drover/agent.toml");
        assert_eq!(v["master"], "http://127.0.0.1:5050");
        assert_eq!(v["listen"], "127.0.0.1:5051");
        assert_eq!(v["work_dir"], "/var/lib/drover/agent");
        assert_eq!(v["ports"], "31000-32000");
        assert_eq!(v["resource_interval"], 5.0);
        for unset in [
            "advertise",
            "node_name",
            "attributes",
            "reserved_cpus",
            "reserved_mem",
            "reserved_disk",
            "token_file",
        ] {
            assert_eq!(v[unset], serde_json::Value::Null, "{unset}");
        }
        assert_eq!(cmd.paths.unit, PathBuf::from(AgentService::DEFAULT_UNIT));
    }

    #[test]
    fn unit_keeps_tasks_alive_and_adds_no_sandbox() {
        let (_, unit) = rendered(&install_cmd(&[]));
        for line in [
            "ExecStart=/usr/local/bin/drover-agent --config /etc/drover/agent.toml",
            "KillMode=process",
            "Delegate=yes",
            "Restart=on-failure",
        ] {
            assert!(
                unit.lines().any(|l| l == line),
                "missing {line:?} in:\n{unit}"
            );
        }
        // Tasks would inherit these.
        for prefix in [
            "ProtectSystem=",
            "PrivateTmp=",
            "NoNewPrivileges=",
            "SystemCallFilter=",
            "DynamicUser=",
            "User=",
        ] {
            assert!(
                !unit.lines().any(|l| l.starts_with(prefix)),
                "{prefix} in:\n{unit}"
            );
        }
        assert!(!unit.contains("\n\n\n"), "stray blank lines:\n{unit}");
    }

    #[test]
    fn refuses_what_the_agent_would() {
        let refused = |args: &[&str], flag: &str| {
            let cmd = install_cmd(args);
            let err = cmd.plan().unwrap_err();
            assert!(err.to_string().starts_with(&format!("--{flag}:")), "{err}");
        };
        refused(&["--master", "ftp://m"], "master");
        refused(&["--listen", "0.0.0.0:5051"], "listen");
        refused(&["--token", "s3cret"], "token");
        refused(&["--join-new-cluster"], "join-new-cluster");
        refused(&["--reserved-mem=-1"], "reserved-mem");
        refused(&["--advertise", "agent:5051"], "advertise");
        refused(&["--work-dir", "w"], "work-dir");
        refused(&["--bin", "drover-agent"], "bin");
        refused(&["--task-user", ""], "task-user");
    }

    #[test]
    fn rendered_config_reads_back_as_the_same_flags() {
        let cmd = install_cmd(&[
            "--master",
            "http://10.0.0.1:5050",
            "--listen",
            "0.0.0.0:5051",
            "--advertise",
            "http://10.0.0.7:5051",
            "--name",
            "node \"7\"",
            "--attributes",
            "rack=r1,zone=a",
            "--ports",
            "40000-40100",
            "--reserved-cpus",
            "0.5",
            "--reserved-mem",
            "512",
            "--reserved-disk",
            "1024",
            "--token-file",
            "/etc/drover/token",
            "--resource-interval",
            "2.5",
            "--work-dir",
            "/srv/agent",
            "--task-user",
            "drover-task",
            "--allowed-task-users",
            "app,batch",
            "--allow-root-tasks",
            "--header-timeout",
            "3",
        ]);
        let (config, _) = rendered(&cmd);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, &config).unwrap();
        let back: Cli = drover_service::config::try_parse_from([
            "drover-agent",
            "--config",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let (a, b) = (&cmd.daemon, &back.run);
        assert_eq!(a.master, b.master, "{config}");
        assert_eq!(a.listen, b.listen);
        assert_eq!(a.advertise, b.advertise);
        assert_eq!(a.work_dir, b.work_dir);
        assert_eq!(a.name, b.name);
        assert_eq!(a.attributes, b.attributes);
        assert_eq!(a.ports, b.ports);
        assert_eq!(a.reserved_cpus, b.reserved_cpus);
        assert_eq!(a.reserved_mem, b.reserved_mem);
        assert_eq!(a.reserved_disk, b.reserved_disk);
        assert_eq!(a.token_file, b.token_file);
        assert_eq!(a.resource_interval, b.resource_interval);
        assert_eq!(a.task_user.as_deref(), Some("drover-task"));
        assert_eq!(a.task_user_flags(), b.task_user_flags(), "{config}");
        assert_eq!(b.max_connections, None);
        assert_eq!(b.header_timeout, std::time::Duration::from_secs(3));
        assert_eq!(a.idle_timeout, b.idle_timeout);
    }

    #[test]
    fn unset_values_stay_unset_in_the_config() {
        let (config, _) = rendered(&install_cmd(&[]));
        let table: toml::Table = toml::from_str(&config).unwrap();
        let keys: Vec<_> = table.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "header-timeout",
                "idle-timeout",
                "listen",
                "master",
                "ports",
                "resource-interval",
                "work-dir"
            ],
            "{config}"
        );
    }
}
