//! `drover-agent install` and `uninstall`: the agent's config file and systemd unit,
//! rendered from the Handlebars templates under `templates/` (compiled in).
//!
//! `install` takes the agent's own flags, so the config file holds exactly what the
//! daemon will run with, and refuses what the daemon would refuse at start. The unit
//! keeps tasks alive across agent restarts and upgrades (`KillMode=process`) and adds no
//! sandboxing, which tasks would inherit (the template says why).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use drover_service::install::{
    InstallArgs, InstallError, InstallPlan, InstallReport, Template, unit_path,
};
use serde_json::json;

use crate::cli::RunArgs;

/// The config file's built-in template.
pub const CONFIG_TEMPLATE: &str = include_str!("../templates/agent.toml.hbs");
/// The systemd unit's built-in template.
pub const UNIT_TEMPLATE: &str = include_str!("../templates/drover-agent.service.hbs");
/// The binary the unit starts unless `--bin` says otherwise.
pub const DEFAULT_BIN: &str = "/usr/local/bin/drover-agent";
/// Where the config file goes unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/drover/agent.toml";
/// Where the unit goes unless `--unit` says otherwise.
pub const DEFAULT_UNIT: &str = "/etc/systemd/system/drover-agent.service";
/// Where an agent that runs as a service keeps its sandboxes (root has a home, but a
/// host's tasks do not belong in it).
pub const SERVICE_WORK_DIR: &str = "/var/lib/drover/agent";

/// `drover-agent install`: the agent's flags (written into the config file) plus where
/// things go. Environment variables do not apply here: what is installed depends on the
/// command line alone, so running it twice from different shells gives the same files.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_args(|a: clap::Arg| a.env(None::<&str>)))]
#[command(mut_arg("config", |a: clap::Arg| a
    .default_value(DEFAULT_CONFIG)
    .help("Where to write the config file (the unit starts the agent with --config FILE)")))]
#[command(mut_arg("work_dir", |a: clap::Arg| a
    .default_value(SERVICE_WORK_DIR)
    .help("Where sandboxes and checkpoints live")))]
pub struct InstallCmd {
    /// The agent's flags, as the daemon will get them.
    #[command(flatten)]
    pub run: RunArgs,
    /// Where the unit goes and what it starts.
    #[command(flatten)]
    pub paths: UnitPaths,
    /// `--root`, `--templates`, `--check`.
    #[command(flatten)]
    pub install: InstallArgs,
}

/// The unit file and the binary it starts.
#[derive(Debug, Clone, clap::Args)]
pub struct UnitPaths {
    /// The binary the unit starts (also what task shims run).
    #[arg(long, default_value = DEFAULT_BIN)]
    pub bin: PathBuf,
    /// Where to write the systemd unit.
    #[arg(long, default_value = DEFAULT_UNIT)]
    pub unit: PathBuf,
}

/// `drover-agent uninstall`: removes the files `install` wrote (the work dir, and the
/// tasks, stay).
#[derive(Debug, Clone, clap::Args)]
pub struct UninstallCmd {
    /// The config file to remove.
    #[arg(long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The systemd unit to remove.
    #[arg(long, default_value = DEFAULT_UNIT)]
    pub unit: PathBuf,
    /// `--root`, `--check` (`--templates` is accepted and unused).
    #[command(flatten)]
    pub install: InstallArgs,
}

/// The values the templates see, from the agent's flags and the unit's paths. Refuses
/// what the agent would refuse at start, so a bad value fails the install rather than
/// the next restart. Values left unset are `null`, and the agent picks their defaults
/// when it starts (the host name, the bound address).
pub fn values(run: &RunArgs, config: &Path, bin: &Path) -> Result<serde_json::Value, InstallError> {
    let bad = |flag: &str, message: String| InstallError::Value {
        flag: flag.to_string(),
        message,
    };
    if run.token.is_some() {
        return Err(bad(
            "token",
            "install writes no secrets into files: put the token in a file and pass --token-file"
                .into(),
        ));
    }
    let addr: SocketAddr = run
        .listen
        .parse()
        .map_err(|_| bad("listen", format!("{:?} is not IP:PORT", run.listen)))?;
    if !addr.ip().is_loopback() && run.token_file.is_none() {
        return Err(bad(
            "listen",
            format!("the agent refuses to listen on {addr} without a token: pass --token-file"),
        ));
    }
    // The same checks the agent makes at start (URLs, reservations, interval).
    run.resolve(addr, None, bin.to_path_buf())
        .map_err(|e| match e {
            crate::cli::CliError::Invalid { flag, message } => bad(flag, message),
        })?;
    let work_dir = run
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
    let attributes = run
        .attributes
        .as_ref()
        .filter(|a| !a.0.is_empty())
        .map(|a| {
            a.0.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
    Ok(json!({
        "name": "drover-agent",
        "version": drover_api::VERSION,
        "bin": unit_path("bin", bin)?,
        "config": unit_path("config", config)?,
        "master": run.master,
        "listen": run.listen,
        "advertise": run.advertise,
        "work_dir": text("work-dir", work_dir)?,
        "node_name": run.name.as_deref().filter(|n| !n.trim().is_empty()),
        "attributes": attributes,
        "ports": run.ports.to_string(),
        "reserved_cpus": run.reserved_cpus,
        "reserved_mem": run.reserved_mem,
        "reserved_disk": run.reserved_disk,
        "token_file": run.token_file.as_deref().map(|p| text("token-file", p)).transpose()?,
        "resource_interval": run.resource_interval,
    }))
}

/// The two files, with `values` for their templates.
pub fn plan(values: serde_json::Value, config: &Path, unit: &Path) -> InstallPlan {
    InstallPlan {
        templates: vec![
            // No secrets inside (the token stays in its own file).
            Template {
                name: "agent.toml.hbs",
                builtin: CONFIG_TEMPLATE,
                dest: config.into(),
                mode: 0o644,
            },
            Template {
                name: "drover-agent.service.hbs",
                builtin: UNIT_TEMPLATE,
                dest: unit.into(),
                mode: 0o644,
            },
        ],
        values,
    }
}

/// Renders and writes (or with `--check`, diffs) the config file and the unit.
pub fn install(cmd: &InstallCmd) -> Result<InstallReport, InstallError> {
    let config = cmd
        .run
        .config
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_CONFIG));
    let values = values(&cmd.run, config, &cmd.paths.bin)?;
    drover_service::install::install(&plan(values, config, &cmd.paths.unit), &cmd.install)
}

/// Removes the config file and the unit.
pub fn uninstall(cmd: &UninstallCmd) -> Result<InstallReport, InstallError> {
    drover_service::install::uninstall(
        &plan(serde_json::Value::Null, &cmd.config, &cmd.unit),
        &cmd.install,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn install_cmd(args: &[&str]) -> InstallCmd {
        let mut argv = vec!["drover-agent", "install"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Install(cmd)) => *cmd,
            other => panic!("not install: {other:?}"),
        }
    }

    fn values_of(cmd: &InstallCmd) -> serde_json::Value {
        values(&cmd.run, cmd.run.config.as_deref().unwrap(), &cmd.paths.bin).unwrap()
    }

    fn rendered(cmd: &InstallCmd) -> (String, String) {
        let config = cmd.run.config.clone().unwrap();
        let mut files =
            drover_service::install::render(&plan(values_of(cmd), &config, &cmd.paths.unit), None)
                .unwrap();
        let unit = files.pop().unwrap().1;
        (files.pop().unwrap().1, unit)
    }

    #[test]
    fn defaults_are_the_service_ones() {
        let cmd = install_cmd(&[]);
        let v = values_of(&cmd);
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
        assert_eq!(cmd.paths.unit, PathBuf::from(DEFAULT_UNIT));
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
            let err = values(&cmd.run, Path::new(DEFAULT_CONFIG), &cmd.paths.bin).unwrap_err();
            assert!(err.to_string().starts_with(&format!("--{flag}:")), "{err}");
        };
        refused(&["--master", "ftp://m"], "master");
        refused(&["--listen", "0.0.0.0:5051"], "listen");
        refused(&["--token", "s3cret"], "token");
        refused(&["--reserved-mem=-1"], "reserved-mem");
        refused(&["--advertise", "agent:5051"], "advertise");
        refused(&["--work-dir", "w"], "work-dir");
        refused(&["--bin", "drover-agent"], "bin");
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
        let (a, b) = (&cmd.run, &back.run);
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
    }

    #[test]
    fn unset_values_stay_unset_in_the_config() {
        let (config, _) = rendered(&install_cmd(&[]));
        let table: toml::Table = toml::from_str(&config).unwrap();
        let keys: Vec<_> = table.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["listen", "master", "ports", "resource-interval", "work-dir"],
            "{config}"
        );
    }

    #[test]
    fn uninstall_removes_what_install_wrote() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_str().unwrap();
        let cmd = install_cmd(&["--root", r]);
        assert!(install(&cmd).unwrap().changed);
        assert!(!install(&cmd).unwrap().changed);
        let un = match Cli::try_parse_from(["drover-agent", "uninstall", "--root", r])
            .unwrap()
            .command
        {
            Some(Command::Uninstall(u)) => u,
            other => panic!("not uninstall: {other:?}"),
        };
        assert!(uninstall(&un).unwrap().changed);
        assert!(
            std::fs::read_dir(root.path().join("etc/drover"))
                .unwrap()
                .next()
                .is_none()
        );
    }
}
