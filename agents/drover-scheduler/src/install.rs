//! `drover-scheduler install` and `uninstall`: the scheduler's config file and systemd
//! unit, rendered from the Handlebars templates under `templates/` (compiled in).
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

/// The scheduler as `install` sees it.
#[derive(Debug, Clone)]
pub struct SchedulerService;

impl Service for SchedulerService {
    const NAME: &'static str = "drover-scheduler";
    const ROLE: &'static str = "scheduler";
    const ABOUT: &'static str =
        "Drover's scheduler: repeating and dependent jobs (Chronos's API included)";
    const CONFIG_TEMPLATE: Builtin = Builtin {
        name: "scheduler.toml.hbs",
        text: include_str!("../templates/scheduler.toml.hbs"),
    };
    const UNIT_TEMPLATE: Builtin = Builtin {
        name: "drover-scheduler.service.hbs",
        text: include_str!("../templates/drover-scheduler.service.hbs"),
    };
    const DEFAULT_BIN: &'static str = "/usr/local/bin/drover-scheduler";
    const DEFAULT_CONFIG: &'static str = "/etc/drover/scheduler.toml";
    const DEFAULT_UNIT: &'static str = "/etc/systemd/system/drover-scheduler.service";
}

/// `drover-scheduler install`.
pub type InstallCmd = drover_service::install::InstallCmd<Opts>;

impl DaemonFlags for Opts {
    type Service = SchedulerService;

    fn config(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    fn values(&self, config: &Path, bin: &Path) -> Result<serde_json::Value, InstallError> {
        let bad = |flag: &str, message: String| InstallError::Value {
            flag: flag.to_string(),
            message,
        };
        refuse_token(self.token.as_deref())?;
        if !(self.master.starts_with("http://") || self.master.starts_with("https://")) {
            return Err(bad(
                "master",
                format!("{:?} is not an http(s) URL", self.master),
            ));
        }
        let addr = listen_addr("scheduler", &self.listen, self.token_file.as_deref())?;
        crate::server::Config::from_opts(self, None)
            .map_err(|e| bad("job-history", e.to_string()))?;
        let token_file = self
            .token_file
            .as_deref()
            .map(|p| unit_path("token-file", p))
            .transpose()?;
        let mut values = service_values::<SchedulerService>(config, bin)?;
        values["master"] = json!(self.master);
        values["listen"] = json!(self.listen);
        values["data_dir"] = json!(unit_path("data-dir", &self.data_dir)?);
        values["job_retry_delay"] = json!(self.job_retry_delay.as_secs_f64());
        values["job_history"] = json!(self.job_history);
        values["min_job_period"] = json!(self.min_job_period.as_secs_f64());
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
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::opts::{Cli, Command};
    use clap::Parser;

    fn install_cmd(args: &[&str]) -> InstallCmd {
        let mut argv = vec!["drover-scheduler", "install"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Install(cmd)) => cmd,
            other => panic!("not install: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_service_ones() {
        let cmd = install_cmd(&[]);
        let v = cmd.plan().unwrap().values;
        assert_eq!(v["bin"], "/usr/local/bin/drover-scheduler");
        assert_eq!(v["config"], "/etc/drover/scheduler.toml");
        assert_eq!(v["master"], "http://127.0.0.1:5050");
        assert_eq!(v["listen"], "127.0.0.1:8080");
        assert_eq!(v["data_dir"], "/var/lib/drover/scheduler");
        assert_eq!(v["state_directory"], "drover/scheduler");
        assert_eq!(v["job_retry_delay"], 60.0);
        assert_eq!(v["job_history"], 1000);
        assert_eq!(v["min_job_period"], 1.0);
        assert_eq!(v["token_file"], serde_json::Value::Null);
    }

    #[test]
    fn refuses_what_the_daemon_would() {
        for (args, flag) in [
            (&["--listen", "0.0.0.0:8080"][..], "listen"),
            (&["--master", "m:5050"][..], "master"),
            (&["--token", "s3cret"][..], "token"),
            (&["--job-history", "0"][..], "job-history"),
        ] {
            let cmd = install_cmd(args);
            let err = cmd.plan().unwrap_err();
            assert!(err.to_string().starts_with(&format!("--{flag}:")), "{err}");
        }
    }

    #[test]
    fn rendered_config_reads_back_as_the_same_flags() {
        let cmd = install_cmd(&[
            "--master",
            "http://10.0.0.1:5050",
            "--listen",
            "0.0.0.0:8080",
            "--token-file",
            "/etc/drover/token",
            "--job-retry-delay",
            "2.5",
            "--job-history",
            "5",
            "--max-connections",
            "300",
            "--idle-timeout",
            "5",
        ]);
        let mut files = drover_service::install::render(&cmd.plan().unwrap(), None).unwrap();
        let unit = files.pop().unwrap().1;
        let text = files.pop().unwrap().1;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler.toml");
        std::fs::write(&path, &text).unwrap();
        let back: Cli = drover_service::config::try_parse_from([
            "drover-scheduler",
            "--config",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let (a, b) = (&cmd.daemon, &back.opts);
        assert_eq!(a.master, b.master, "{text}");
        assert_eq!(a.listen, b.listen);
        assert_eq!(a.data_dir, b.data_dir);
        assert_eq!(a.token_file, b.token_file);
        assert_eq!(a.job_retry_delay, b.job_retry_delay);
        assert_eq!(a.job_history, b.job_history);
        assert_eq!(a.min_job_period, b.min_job_period);
        assert_eq!(b.max_connections, Some(300));
        assert_eq!(a.header_timeout, b.header_timeout);
        assert_eq!(b.idle_timeout, std::time::Duration::from_secs(5));
        assert!(
            unit.contains("\nDynamicUser=yes\n") && unit.contains("\nRestart=on-failure\n"),
            "{unit}"
        );
        assert!(
            unit.contains("LoadCredential=token:/etc/drover/token\n"),
            "{unit}"
        );
    }
}
