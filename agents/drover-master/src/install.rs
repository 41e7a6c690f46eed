//! `drover-master install` and `uninstall`: the master's config file and systemd unit,
//! rendered from the Handlebars templates under `templates/` (compiled in).
//!
//! `install` takes the serving flags themselves, so the config file holds exactly what
//! the daemon will run with, and refuses what the daemon would refuse at start.

use std::path::Path;

use drover_service::install::{
    Builtin, DaemonFlags, InstallError, Service, listen_addr, refuse_token, service_values,
    state_directory, unit_path,
};
use serde_json::json;

use crate::opts::{Opts, SERVICE_DATA_DIR};

/// The master as `install` sees it.
#[derive(Debug, Clone)]
pub struct MasterService;

impl Service for MasterService {
    const NAME: &'static str = "drover-master";
    const ROLE: &'static str = "master";
    const ABOUT: &'static str = "Drover's master: node registry, resource ledger and task tracker";
    const CONFIG_TEMPLATE: Builtin = Builtin {
        name: "master.toml.hbs",
        text: include_str!("../templates/master.toml.hbs"),
    };
    const UNIT_TEMPLATE: Builtin = Builtin {
        name: "drover-master.service.hbs",
        text: include_str!("../templates/drover-master.service.hbs"),
    };
    const DEFAULT_BIN: &'static str = "/usr/local/bin/drover-master";
    const DEFAULT_CONFIG: &'static str = "/etc/drover/master.toml";
    const DEFAULT_UNIT: &'static str = "/etc/systemd/system/drover-master.service";
}

/// `drover-master install`.
pub type InstallCmd = drover_service::install::InstallCmd<Opts>;

impl DaemonFlags for Opts {
    type Service = MasterService;

    fn config(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    fn values(&self, config: &Path, bin: &Path) -> Result<serde_json::Value, InstallError> {
        refuse_token(self.token.as_deref())?;
        if self.init {
            // In the service's config, --init would turn a lost or emptied data dir into a
            // new, empty cluster at the next restart, which is what it exists to prevent.
            return Err(InstallError::Value {
                flag: "init".into(),
                message: "is not written into the service's config: start the master once with \
                          --init (or DROVER_MASTER_INIT=true) on a first install instead"
                    .into(),
            });
        }
        let addr = listen_addr("master", &self.listen, self.token_file.as_deref())?;
        crate::server::Config::from_opts(self, None).map_err(|e| InstallError::Value {
            flag: "heartbeat-timeout".into(),
            message: e.to_string(),
        })?;
        let token_file = self
            .token_file
            .as_deref()
            .map(|p| unit_path("token-file", p))
            .transpose()?;
        let mut values = service_values::<MasterService>(config, bin)?;
        values["listen"] = json!(self.listen);
        values["data_dir"] = json!(unit_path("data-dir", &self.data_dir)?);
        values["heartbeat_interval"] = json!(self.heartbeat_interval.as_secs_f64());
        values["heartbeat_timeout"] = json!(self.heartbeat_timeout.as_secs_f64());
        values["task_history"] = json!(self.task_history);
        values["task_history_max_age"] = json!(self.task_history_max_age.to_string());
        values["max_connections"] = json!(self.max_connections);
        values["header_timeout"] = json!(self.header_timeout.as_secs_f64());
        values["idle_timeout"] = json!(self.idle_timeout.as_secs_f64());
        values["token_file"] = json!(token_file);
        values["state_directory"] = json!(state_directory(&self.data_dir));
        values["privileged_port"] = json!(addr.port() != 0 && addr.port() < 1024);
        Ok(values)
    }

    /// A service has no home directory: its state goes where the serving default puts it
    /// for a user without one.
    fn install_arg(arg: clap::Arg) -> clap::Arg {
        match arg.get_id().as_str() {
            "data_dir" => arg.default_value(SERVICE_DATA_DIR),
            _ => arg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opts::{Cli, Command};
    use clap::Parser;
    use std::path::PathBuf;
    use std::time::Duration;

    fn install_cmd(args: &[&str]) -> InstallCmd {
        let mut argv = vec!["drover-master", "install"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Install(cmd)) => cmd,
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
        assert_eq!(v["bin"], "/usr/local/bin/drover-master");
        assert_eq!(v["config"], "/etc/drover/master.toml");
        assert_eq!(v["listen"], "127.0.0.1:5050");
        assert_eq!(v["data_dir"], "/var/lib/drover/master");
        assert_eq!(v["state_directory"], "drover/master");
        assert_eq!(v["heartbeat_interval"], 1.0);
        assert_eq!(v["heartbeat_timeout"], 5.0);
        assert_eq!(v["task_history"], 10_000);
        assert_eq!(v["task_history_max_age"], "7d");
        assert_eq!(v["max_connections"], serde_json::Value::Null);
        assert_eq!(v["header_timeout"], 10.0);
        assert_eq!(v["idle_timeout"], 60.0);
        assert_eq!(v["token_file"], serde_json::Value::Null);
        assert_eq!(v["privileged_port"], false);
        assert_eq!(cmd.paths.unit, PathBuf::from(MasterService::DEFAULT_UNIT));
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
        let v = cmd.plan().unwrap().values;
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
            let err = cmd.plan().unwrap_err();
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
        refused(&["--init"], "init");
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
            "--task-history-max-age",
            "2w",
            "--token-file",
            "/etc/drover/token",
            "--max-connections",
            "900",
            "--header-timeout",
            "4.5",
            "--idle-timeout",
            "30",
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
        let (a, b) = (&cmd.daemon, &back.opts);
        assert_eq!(a.listen, b.listen, "{config}");
        assert_eq!(a.data_dir, b.data_dir);
        assert_eq!(a.heartbeat_interval, b.heartbeat_interval);
        assert_eq!(a.heartbeat_timeout, b.heartbeat_timeout);
        assert_eq!(a.task_history, b.task_history);
        assert_eq!(
            b.task_history_max_age.0,
            Some(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(a.token_file, b.token_file);
        assert_eq!(b.max_connections, Some(900));
        assert_eq!(b.header_timeout, Duration::from_millis(4500));
        assert_eq!(b.idle_timeout, Duration::from_secs(30));
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
}
