//! The command line: every flag also from `DROVER_MASTER_<NAME>` and from the
//! `--config` TOML file (see `drover_service::config`).

use std::path::PathBuf;
use std::time::Duration;

use drover_service::retention::{DEFAULT_MAX_AGE_TEXT, MaxAge, parse_max_age};

/// The command line: the serving flags, or `serve`, `install` or `uninstall`.
pub type Cli = drover_service::server::Cli<Opts>;

/// The serving flags; `install` takes the same ones and writes them into the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Address to listen on (anything but loopback requires a token).
    #[arg(long, env = "DROVER_MASTER_LISTEN", default_value = "127.0.0.1:5050")]
    pub listen: String,
    /// Directory of the master's state file.
    #[arg(
        long,
        env = "DROVER_MASTER_DATA_DIR",
        default_value_os_t = drover_service::server::default_data_dir("drover/master")
    )]
    pub data_dir: PathBuf,
    /// Start a new cluster when the store is empty: make its cluster id. Without it a
    /// master refuses an empty store (a lost file or a wrong --data-dir must not look like
    /// a new cluster); on a store that has an id it does nothing. For a first start only:
    /// `install` does not write it into the service's config.
    #[arg(long, env = "DROVER_MASTER_INIT")]
    pub init: bool,
    /// Seconds between agent heartbeats (told to agents when they register).
    #[arg(long, env = "DROVER_MASTER_HEARTBEAT_INTERVAL", default_value = "1", value_parser = parse_seconds)]
    pub heartbeat_interval: Duration,
    /// Seconds of silence after which a node is unreachable and its tasks lost.
    #[arg(long, env = "DROVER_MASTER_HEARTBEAT_TIMEOUT", default_value = "5", value_parser = parse_seconds)]
    pub heartbeat_timeout: Duration,
    /// How many finished, failed, killed or lost tasks to keep as history (the newest).
    #[arg(long, env = "DROVER_MASTER_TASK_HISTORY", default_value_t = 10_000)]
    pub task_history: usize,
    /// How long an ended task is kept as history: a whole number with a unit (90s, 30m,
    /// 12h, 7d, 2w), or 0 for no age limit; the newest ended task stays whatever its age.
    #[arg(long, env = "DROVER_MASTER_TASK_HISTORY_MAX_AGE", default_value = DEFAULT_MAX_AGE_TEXT, value_parser = parse_max_age)]
    pub task_history_max_age: MaxAge,
    /// Most connections served at once; past it, the connection slowest to send its
    /// headers (or idle longest) is closed for a new one, and a few slots stay for agents
    /// [default: three quarters of the open-file limit].
    #[arg(long, env = "DROVER_MASTER_MAX_CONNECTIONS", value_parser = drover_service::connections::parse_max_connections)]
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers before it is disconnected.
    #[arg(long, env = "DROVER_MASTER_HEADER_TIMEOUT", default_value = "10", value_parser = drover_service::connections::parse_timeout)]
    pub header_timeout: Duration,
    /// Seconds a kept-alive connection may sit between requests before it is closed
    /// (long polls and event streams in progress are not idle).
    #[arg(long, env = "DROVER_MASTER_IDLE_TIMEOUT", default_value = "60", value_parser = drover_service::connections::parse_timeout)]
    pub idle_timeout: Duration,
    /// Bearer token clients and agents must present (and the master presents to agents).
    #[arg(long, env = "DROVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token.
    #[arg(long, env = "DROVER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// TOML file of flag values (keys are the long flag names).
    #[arg(long, env = "DROVER_MASTER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Subcommands: `serve`, `install`, `uninstall`.
pub type Command = drover_service::server::Command<Opts>;

/// Where a master that runs as a service keeps its state (it has no home directory).
pub const SERVICE_DATA_DIR: &str = "/var/lib/drover/master";

/// Parses a positive number of seconds (fractions allowed), at most an hour.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 3600.0 {
        return Err(format!(
            "{s:?} must be more than 0 and at most 3600 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_and_seconds() {
        let cli = Cli::try_parse_from(["drover-master"]).unwrap();
        let o = &cli.opts;
        assert_eq!(o.listen, "127.0.0.1:5050");
        assert_eq!(o.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(o.heartbeat_timeout, Duration::from_secs(5));
        assert_eq!(o.max_connections, None);
        assert_eq!(o.header_timeout, Duration::from_secs(10));
        assert_eq!(o.idle_timeout, Duration::from_secs(60));
        assert!(cli.command.is_none());
        assert!(o.data_dir.ends_with("drover/master"));
        assert!(!o.init);
        assert!(
            Cli::try_parse_from(["drover-master", "--init"])
                .unwrap()
                .opts
                .init
        );
        let cli = Cli::try_parse_from(["drover-master", "--heartbeat-interval", "0.3"]).unwrap();
        assert_eq!(cli.opts.heartbeat_interval, Duration::from_millis(300));
        assert!(matches!(
            Cli::try_parse_from(["drover-master", "serve"])
                .unwrap()
                .command,
            Some(Command::Serve)
        ));
        assert!(Cli::try_parse_from(["drover-master", "--heartbeat-timeout", "-1"]).is_err());
        assert!(Cli::try_parse_from(["drover-master", "--heartbeat-timeout", "NaN"]).is_err());
        assert!(Cli::try_parse_from(["drover-master", "--max-connections", "0"]).is_err());
        assert!(Cli::try_parse_from(["drover-master", "--header-timeout", "0"]).is_err());
        let cli = Cli::try_parse_from([
            "drover-master",
            "--max-connections",
            "500",
            "--idle-timeout",
            "2.5",
        ])
        .unwrap();
        assert_eq!(cli.opts.max_connections, Some(500));
        assert_eq!(cli.opts.idle_timeout, Duration::from_millis(2500));
        // Serving flags before a subcommand would be ignored by it: refused instead.
        assert!(
            Cli::try_parse_from(["drover-master", "--listen", "127.0.0.1:1", "install"]).is_err()
        );
    }
}
