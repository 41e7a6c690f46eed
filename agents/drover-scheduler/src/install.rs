//! `drover-scheduler install` and `uninstall`: the scheduler's config file and systemd
//! unit, rendered from the Handlebars templates under `templates/` (compiled in).
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
pub const CONFIG_TEMPLATE: &str = include_str!("../templates/scheduler.toml.hbs");
/// The systemd unit's built-in template.
pub const UNIT_TEMPLATE: &str = include_str!("../templates/drover-scheduler.service.hbs");
/// The binary the unit starts unless `--bin` says otherwise.
pub const DEFAULT_BIN: &str = "/usr/local/bin/drover-scheduler";
/// Where the config file goes unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/drover/scheduler.toml";
/// Where the unit goes unless `--unit` says otherwise.
pub const DEFAULT_UNIT: &str = "/etc/systemd/system/drover-scheduler.service";

/// `drover-scheduler install`: the serving flags (written into the config file) plus where
/// things go. Environment variables do not apply here: what is installed depends on the
/// command line alone, so running it twice from different shells gives the same files.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_args(|a: clap::Arg| a.env(None::<&str>)))]
#[command(mut_arg("config", |a: clap::Arg| a
    .default_value(DEFAULT_CONFIG)
    .help("Where to write the config file (the unit starts the scheduler with --config FILE)")))]
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

/// `drover-scheduler uninstall`: removes the files `install` wrote (the data dir stays).
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
    if !(opts.master.starts_with("http://") || opts.master.starts_with("https://")) {
        return Err(bad(
            "master",
            format!("{:?} is not an http(s) URL", opts.master),
        ));
    }
    let addr: SocketAddr = opts
        .listen
        .parse()
        .map_err(|_| bad("listen", format!("{:?} is not IP:PORT", opts.listen)))?;
    if !addr.ip().is_loopback() && opts.token_file.is_none() {
        return Err(bad(
            "listen",
            format!("the scheduler refuses to listen on {addr} without a token: pass --token-file"),
        ));
    }
    crate::server::Config::from_opts(opts, None).map_err(|e| bad("job-history", e.to_string()))?;
    let token_file = opts
        .token_file
        .as_deref()
        .map(|p| unit_path("token-file", p))
        .transpose()?;
    Ok(json!({
        "name": "drover-scheduler",
        "version": drover_api::VERSION,
        "bin": unit_path("bin", bin)?,
        "config": unit_path("config", config)?,
        "master": opts.master,
        "listen": opts.listen,
        "data_dir": unit_path("data-dir", &opts.data_dir)?,
        "job_retry_delay": opts.job_retry_delay.as_secs_f64(),
        "job_history": opts.job_history,
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
                name: "scheduler.toml.hbs",
                builtin: CONFIG_TEMPLATE,
                dest: config.into(),
                mode: 0o644,
            },
            Template {
                name: "drover-scheduler.service.hbs",
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
        let v = values(
            &cmd.opts,
            cmd.opts.config.as_deref().unwrap(),
            &cmd.paths.bin,
        )
        .unwrap();
        assert_eq!(v["bin"], "/usr/local/bin/drover-scheduler");
        assert_eq!(v["config"], "/etc/drover/scheduler.toml");
        assert_eq!(v["master"], "http://127.0.0.1:5050");
        assert_eq!(v["listen"], "127.0.0.1:8080");
        assert_eq!(v["data_dir"], "/var/lib/drover/scheduler");
        assert_eq!(v["state_directory"], "drover/scheduler");
        assert_eq!(v["job_retry_delay"], 60.0);
        assert_eq!(v["job_history"], 1000);
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
            let err = values(&cmd.opts, Path::new(DEFAULT_CONFIG), &cmd.paths.bin).unwrap_err();
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
        ]);
        let config = cmd.opts.config.clone().unwrap();
        let v = values(&cmd.opts, &config, &cmd.paths.bin).unwrap();
        let mut files =
            drover_service::install::render(&plan(v, &config, &cmd.paths.unit), None).unwrap();
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
        let (a, b) = (&cmd.opts, &back.opts);
        assert_eq!(a.master, b.master, "{text}");
        assert_eq!(a.listen, b.listen);
        assert_eq!(a.data_dir, b.data_dir);
        assert_eq!(a.token_file, b.token_file);
        assert_eq!(a.job_retry_delay, b.job_retry_delay);
        assert_eq!(a.job_history, b.job_history);
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
