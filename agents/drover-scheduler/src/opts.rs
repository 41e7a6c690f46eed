//! The command line: every flag also from `DROVER_SCHEDULER_<NAME>` and from the
//! `--config` TOML file (see `drover_service::config`).

use std::path::PathBuf;
use std::time::Duration;

/// The command line: the serving flags, or `serve`, `install` or `uninstall`.
pub type Cli = drover_service::server::Cli<Opts>;

/// The serving flags; `install` takes the same ones and writes them into the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// The master's URL.
    #[arg(long, env = "DROVER_SCHEDULER_MASTER", default_value = drover_api::DEFAULT_MASTER_URL)]
    pub master: String,
    /// Address to listen on (anything but loopback requires a token); Marathon's port.
    #[arg(
        long,
        env = "DROVER_SCHEDULER_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,
    /// Directory of the scheduler's state file.
    #[arg(
        long,
        env = "DROVER_SCHEDULER_DATA_DIR",
        default_value_os_t = drover_service::server::default_data_dir("drover/scheduler")
    )]
    pub data_dir: PathBuf,
    /// Bearer token clients must present, and the scheduler presents to the master.
    #[arg(long, env = "DROVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token.
    #[arg(long, env = "DROVER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds between a failed job attempt and its retry (Chronos's `--failure_retry`).
    #[arg(long, env = "DROVER_SCHEDULER_JOB_RETRY_DELAY", default_value = "60", value_parser = parse_seconds)]
    pub job_retry_delay: Duration,
    /// How many run records (attempts) to keep per job; older finished ones are pruned.
    #[arg(long, env = "DROVER_SCHEDULER_JOB_HISTORY", default_value_t = 1000)]
    pub job_history: usize,
    /// Shortest period, in seconds, between the runs of a repeating job schedule; a job
    /// put with a shorter one is refused (0 allows any non-zero period).
    #[arg(long, env = "DROVER_SCHEDULER_MIN_JOB_PERIOD", default_value = "1", value_parser = parse_seconds)]
    pub min_job_period: Duration,
    /// Most connections served at once; past it, the connection slowest to send its
    /// headers (or idle longest) is closed for a new one [default: three quarters of the
    /// open-file limit].
    #[arg(long, env = "DROVER_SCHEDULER_MAX_CONNECTIONS", value_parser = drover_service::connections::parse_max_connections)]
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers before it is disconnected.
    #[arg(long, env = "DROVER_SCHEDULER_HEADER_TIMEOUT", default_value = "10", value_parser = drover_service::connections::parse_timeout)]
    pub header_timeout: Duration,
    /// Seconds a kept-alive connection may sit between requests before it is closed
    /// (event streams in progress are not idle).
    #[arg(long, env = "DROVER_SCHEDULER_IDLE_TIMEOUT", default_value = "60", value_parser = drover_service::connections::parse_timeout)]
    pub idle_timeout: Duration,
    /// TOML file of flag values (keys are the long flag names).
    #[arg(long, env = "DROVER_SCHEDULER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Subcommands: `serve`, `install`, `uninstall`.
pub type Command = drover_service::server::Command<Opts>;

/// Where a scheduler that runs as a service keeps its state (it has no home directory).
pub const SERVICE_DATA_DIR: &str = "/var/lib/drover/scheduler";

/// Parses a non-negative number of seconds (fractions allowed), at most a day.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{s:?} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["drover-scheduler"]).unwrap();
        assert!(cli.command.is_none());
        let o = cli.opts;
        assert_eq!(o.listen, "127.0.0.1:8080");
        assert_eq!(o.master, "http://127.0.0.1:5050");
        assert_eq!(o.job_retry_delay, Duration::from_secs(60));
        assert_eq!(o.min_job_period, Duration::from_secs(1));
        assert!(o.data_dir.ends_with("drover/scheduler"));
        let o = Cli::try_parse_from(["drover-scheduler", "--job-retry-delay", "0.5"])
            .unwrap()
            .opts;
        assert_eq!(o.job_retry_delay, Duration::from_millis(500));
        assert!(Cli::try_parse_from(["drover-scheduler", "--job-retry-delay", "-1"]).is_err());
        let o = Cli::try_parse_from(["drover-scheduler", "--min-job-period", "0.25"])
            .unwrap()
            .opts;
        assert_eq!(o.min_job_period, Duration::from_millis(250));
        assert!(Cli::try_parse_from(["drover-scheduler", "--min-job-period", "-1"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["drover-scheduler", "serve"])
                .unwrap()
                .command,
            Some(Command::Serve)
        ));
    }
}
