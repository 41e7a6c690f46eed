//! `drover-master install` and `uninstall`: the master's config file and systemd unit,
//! rendered from the Handlebars templates under `templates/` (compiled in).
//!
//! `install` takes the serving flags themselves, so the config file holds exactly what
//! the daemon will run with, and refuses what the daemon would refuse at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use drover_service::install::{
    InstallArgs, InstallError, InstallPlan, InstallReport, Template, state_directory, unit_path,
};
use serde_json::json;

use crate::opts::{Opts, SERVICE_DATA_DIR};

/// The config file's built-in template.
pub const CONFIG_TEMPLATE: &str = include_str!("../templates/master.toml.hbs");
/// The systemd unit's built-in template.
pub const UNIT_TEMPLATE: &str = include_str!("../templates/drover-master.service.hbs");
/// The binary the unit starts unless `--bin` says otherwise.
pub const DEFAULT_BIN: &str = "/usr/local/bin/drover-master";
/// Where the config file goes unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/drover/master.toml";
/// Where the unit goes unless `--unit` says otherwise.
pub const DEFAULT_UNIT: &str = "/etc/systemd/system/drover-master.service";

/// `drover-master install`: the serving flags (written into the config file) plus where
/// things go. Environment variables do not apply here: what is installed depends on the
/// command line alone, so running it twice from different shells gives the same files.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_args(|a: clap::Arg| a.env(None::<&str>)))]
#[command(mut_arg("config", |a: clap::Arg| a
    .default_value(DEFAULT_CONFIG)
    .help("Where to write the config file (the unit starts the master with --config FILE)")))]
// A service has no home directory: its state goes where the serving default puts it for
// a user without one.
#[command(mut_arg("data_dir", |a: clap::Arg| a.default_value(SERVICE_DATA_DIR)))]
pub struct InstallCmd {
    /// The serving flags, as the daemon will get them.
    #[command(flatten)]
    pub opts: Opts,
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
    /// The binary the unit starts.
    #[arg(long, default_value = DEFAULT_BIN)]
    pub bin: PathBuf,
    /// Where to write the systemd unit.
    #[arg(long, default_value = DEFAULT_UNIT)]
    pub unit: PathBuf,
}

/// `drover-master uninstall`: removes the files `install` wrote (the data dir stays).
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

/// The values the templates see, from the serving flags and the unit's paths. Refuses
/// what the daemon would refuse at start, so a bad value fails the install rather than
/// the next restart.
pub fn values(opts: &Opts, config: &Path, bin: &Path) -> Result<serde_json::Value, InstallError> {
    let bad = |flag: &str, message: String| InstallError::Value {
        flag: flag.to_string(),
        message,
    };
    if opts.token.is_some() {
        return Err(bad(
            "token",
            "install writes no secrets into files: put the token in a file and pass --token-file"
                .into(),
        ));
    }
    let addr: SocketAddr = opts
        .listen
        .parse()
        .map_err(|_| bad("listen", format!("{:?} is not IP:PORT", opts.listen)))?;
    if !addr.ip().is_loopback() && opts.token_file.is_none() {
        return Err(bad(
            "listen",
            format!("the master refuses to listen on {addr} without a token: pass --token-file"),
        ));
    }
    crate::server::Config::from_opts(opts, None)
        .map_err(|e| bad("heartbeat-timeout", e.to_string()))?;
    let token_file = opts
        .token_file
        .as_deref()
        .map(|p| unit_path("token-file", p))
        .transpose()?;
    Ok(json!({
        "name": "drover-master",
        "version": drover_api::VERSION,
        "bin": unit_path("bin", bin)?,
        "config": unit_path("config", config)?,
        "listen": opts.listen,
        "data_dir": unit_path("data-dir", &opts.data_dir)?,
        "heartbeat_interval": opts.heartbeat_interval.as_secs_f64(),
        "heartbeat_timeout": opts.heartbeat_timeout.as_secs_f64(),
        "task_history": opts.task_history,
        "token_file": token_file,
        "state_directory": state_directory(&opts.data_dir),
        "privileged_port": addr.port() != 0 && addr.port() < 1024,
    }))
}

/// The two files, with `values` for their templates.
pub fn plan(values: serde_json::Value, config: &Path, unit: &Path) -> InstallPlan {
    InstallPlan {
        templates: vec![
            // No secrets inside (the token stays in its own file), so readable by all,
            // including the service's dynamic user.
            Template {
                name: "master.toml.hbs",
                builtin: CONFIG_TEMPLATE,
                dest: config.into(),
                mode: 0o644,
            },
            Template {
                name: "drover-master.service.hbs",
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
        .opts
        .config
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_CONFIG));
    let values = values(&cmd.opts, config, &cmd.paths.bin)?;
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
    use crate::opts::{Cli, Command};
    use clap::Parser;

    fn install_cmd(args: &[&str]) -> InstallCmd {
        let mut argv = vec!["drover-master", "install"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Install(cmd)) => cmd,
            other => panic!("not install: {other:?}"),
        }
    }

    fn rendered(cmd: &InstallCmd) -> (String, String) {
        let config = cmd.opts.config.clone().unwrap();
        let v = values(&cmd.opts, &config, &cmd.paths.bin).unwrap();
        let mut files =
            drover_service::install::render(&plan(v, &config, &cmd.paths.unit), None).unwrap();
        let unit = files.pop().unwrap().1;
        (files.pop().unwrap().1, unit)
    }

    #[test]
    fn defaults_are_the_service_ones() {
        let cmd = install_cmd(&[]);
        let v = values(
            &cmd.opts,
            cmd.opts.config.as_deref().unwrap(),
            &cmd.paths.bin,
        )
        .unwrap();
        assert_eq!(v["bin"], "/usr/local/bin/drover-master");
        assert_eq!(v["config"], "/etc/drover/master.toml");
        assert_eq!(v["listen"], "127.0.0.1:5050");
        assert_eq!(v["data_dir"], "/var/lib/drover/master");
        assert_eq!(v["state_directory"], "drover/master");
        assert_eq!(v["heartbeat_interval"], 1.0);
        assert_eq!(v["heartbeat_timeout"], 5.0);
        assert_eq!(v["task_history"], 10_000);
        assert_eq!(v["token_file"], serde_json::Value::Null);
        assert_eq!(v["privileged_port"], false);
        assert_eq!(cmd.paths.unit, PathBuf::from(DEFAULT_UNIT));
    }

    #[test]
    fn flags_become_values() {
        let cmd = install_cmd(&[
            "--listen",
            "0.0.0.0:80",
            "--token-file",
            "/etc/drover/token",
            "--data-dir",
            "/srv/drover",
            "--heartbeat-interval",
            "0.5",
            "--bin",
            "/opt/drover/drover-master",
            "--config",
            "/etc/drover/m.toml",
        ]);
        let v = values(
            &cmd.opts,
            cmd.opts.config.as_deref().unwrap(),
            &cmd.paths.bin,
        )
        .unwrap();
        assert_eq!(v["listen"], "0.0.0.0:80");
        assert_eq!(v["token_file"], "/etc/drover/token");
        assert_eq!(v["data_dir"], "/srv/drover");
        assert_eq!(v["state_directory"], serde_json::Value::Null);
        assert_eq!(v["heartbeat_interval"], 0.5);
        assert_eq!(v["bin"], "/opt/drover/drover-master");
        assert_eq!(v["config"], "/etc/drover/m.toml");
        assert_eq!(v["privileged_port"], true);
        let (_, unit) = rendered(&cmd);
        assert!(unit.contains("ReadWritePaths=/srv/drover\n"), "{unit}");
        assert!(
            unit.contains("LoadCredential=token:/etc/drover/token\n"),
            "{unit}"
        );
        assert!(
            unit.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE\n"),
            "{unit}"
        );
    }

    #[test]
    fn refuses_what_the_daemon_would() {
        let refused = |args: &[&str], flag: &str| {
            let cmd = install_cmd(args);
            let err = values(&cmd.opts, Path::new(DEFAULT_CONFIG), &cmd.paths.bin).unwrap_err();
            assert!(err.to_string().starts_with(&format!("--{flag}:")), "{err}");
        };
        refused(&["--listen", "0.0.0.0:5050"], "listen");
        refused(&["--listen", "nowhere"], "listen");
        refused(&["--token", "s3cret"], "token");
        refused(
            &["--heartbeat-interval", "5", "--heartbeat-timeout", "2"],
            "heartbeat-timeout",
        );
        refused(&["--data-dir", "relative/dir"], "data-dir");
        refused(&["--bin", "/opt/my drover/drover-master"], "bin");
    }

    #[test]
    fn environment_does_not_leak_into_install() {
        // Only the install subcommand drops the environment; serving still reads it.
        let cmd = install_cmd(&[]);
        let ids: Vec<_> = <InstallCmd as clap::Args>::augment_args(clap::Command::new("x"))
            .get_arguments()
            .filter(|a| a.get_env().is_some())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(ids.is_empty(), "{ids:?}");
        assert!(cmd.opts.token.is_none());
    }

    #[test]
    fn rendered_config_reads_back_as_the_same_flags() {
        let cmd = install_cmd(&[
            "--listen",
            "127.0.0.1:6060",
            "--data-dir",
            "/var/lib/drover/m2",
            "--heartbeat-interval",
            "0.3",
            "--heartbeat-timeout",
            "7",
            "--task-history",
            "42",
            "--token-file",
            "/etc/drover/token",
        ]);
        let (config, unit) = rendered(&cmd);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        std::fs::write(&path, &config).unwrap();
        let back: Cli = drover_service::config::try_parse_from([
            "drover-master",
            "--config",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let (a, b) = (&cmd.opts, &back.opts);
        assert_eq!(a.listen, b.listen, "{config}");
        assert_eq!(a.data_dir, b.data_dir);
        assert_eq!(a.heartbeat_interval, b.heartbeat_interval);
        assert_eq!(a.heartbeat_timeout, b.heartbeat_timeout);
        assert_eq!(a.task_history, b.task_history);
        assert_eq!(a.token_file, b.token_file);
        assert!(
            unit.contains(
                "ExecStart=/usr/local/bin/drover-master --config /etc/drover/master.toml\n"
            ),
            "{unit}"
        );
        assert!(unit.contains("StateDirectory=drover/m2\n"), "{unit}");
        assert!(unit.contains("\nDynamicUser=yes\n"), "{unit}");
        assert!(unit.contains("\nRestart=on-failure\n"), "{unit}");
        assert!(!unit.contains("\n\n\n"), "stray blank lines:\n{unit}");
    }

    #[test]
    fn uninstall_removes_what_install_wrote() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_str().unwrap();
        let cmd = install_cmd(&["--root", r]);
        assert!(install(&cmd).unwrap().changed);
        assert!(!install(&cmd).unwrap().changed);
        let un = match Cli::try_parse_from(["drover-master", "uninstall", "--root", r])
            .unwrap()
            .command
        {
            Some(Command::Uninstall(u)) => u,
            other => panic!("not uninstall: {other:?}"),
        };
        let report = uninstall(&un).unwrap();
        assert!(report.changed);
        assert!(report.files.iter().all(|f| !f.path.exists()));
        assert!(!uninstall(&un).unwrap().changed);
    }
}
