//! Every flag also from an environment variable (clap's `env`) and from a TOML file
//! named by `--config FILE` (or the `--config` flag's environment variable).
//!
//! Precedence, highest first: command line, environment, config file, built-in default.
//! The file's keys are the long flag names (`work-dir` or `work_dir`); an unknown key is
//! an error, so a typo never goes unnoticed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A key names no flag.
    #[error("config file {path}: unknown key {key:?}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A value is a table or other shape a flag cannot take.
    #[error("config file {path}: key {key:?} must be a string, number, boolean or array of those")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// Parses the process's arguments into `T`, filling flags not given on the command line
/// or in the environment from the `--config` TOML file. Exits with clap's message on a
/// usage error, like `T::parse()`.
pub fn parse_with_config<T: Parser>() -> T {
    match try_parse_from(std::env::args_os()) {
        Ok(t) => t,
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Config(e)) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// Why parsing failed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A usage error from clap (includes `--help`).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Like [`parse_with_config`], from an explicit argument list.
pub fn try_parse_from<T: Parser, I, A>(args: I) -> Result<T, ParseError>
where
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = T::command().args_override_self(true);
    // First pass only to find --config; errors are reported by the second pass. The file
    // holds the server's own flags, so a subcommand (`install`, which has flags of its
    // own) is parsed without it: splicing the server's flags in front of a subcommand
    // would make clap refuse them, e.g. with `DROVER_AGENT_CONFIG` set in the environment.
    let config_path = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args.clone())
        .ok()
        .filter(|m| m.subcommand_name().is_none())
        .and_then(|m| m.try_get_one::<PathBuf>("config").ok().flatten().cloned());
    let mut full = args.clone();
    if let Some(path) = config_path {
        let extra = config_args(&command, &path)?;
        // Config values go right after argv[0], so anything on the command line wins.
        full.splice(1.min(full.len())..1.min(full.len()), extra);
    }
    let matches = command.try_get_matches_from(full)?;
    Ok(T::from_arg_matches(&matches)?)
}

/// Turns the config file into `--flag=value` arguments, skipping flags whose
/// environment variable is set (the environment beats the file).
fn config_args(command: &clap::Command, path: &Path) -> Result<Vec<OsString>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.into(),
                key: key.clone(),
            })?;
        if long == "config" {
            continue;
        }
        if let Some(env) = arg.get_env()
            && std::env::var_os(env).is_some()
        {
            continue;
        }
        let values: Vec<String> = match &value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<_>>(),
            v => scalar(v).map(|s| vec![s]),
        }
        .ok_or_else(|| ConfigError::BadValue {
            path: path.into(),
            key: key.clone(),
        })?;
        let takes_value = arg.get_action().takes_values();
        if !takes_value {
            // A switch: `true` turns it on, `false` leaves it off.
            if values.first().map(String::as_str) == Some("true") {
                out.push(OsString::from(format!("--{long}")));
            }
            continue;
        }
        for v in values {
            out.push(OsString::from(format!("--{long}={v}")));
        }
    }
    Ok(out)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Parser, Debug)]
    struct Opts {
        #[arg(long, env = "DROVER_TEST_CONFIG_ONLY_CONFIG")]
        config: Option<PathBuf>,
        #[arg(
            long,
            env = "DROVER_TEST_CONFIG_ONLY_LISTEN",
            default_value = "127.0.0.1:1"
        )]
        listen: String,
        #[arg(
            long,
            env = "DROVER_TEST_CONFIG_ONLY_WORK_DIR",
            default_value = "/tmp/x"
        )]
        work_dir: PathBuf,
        #[arg(long)]
        verbose: bool,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn file_fills_defaults_and_command_line_wins() {
        let f = file("listen = \"127.0.0.1:7\"\nwork_dir = \"/srv/w\"\nverbose = true\n");
        let path = f.path().to_str().unwrap();
        let o: Opts = try_parse_from(["x", "--config", path]).unwrap();
        assert_eq!(o.listen, "127.0.0.1:7");
        assert_eq!(o.work_dir, PathBuf::from("/srv/w"));
        assert!(o.verbose);
        let o: Opts = try_parse_from(["x", "--config", path, "--listen", "127.0.0.1:9"]).unwrap();
        assert_eq!(o.listen, "127.0.0.1:9");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let f = file("lisen = \"x\"\n");
        let err = try_parse_from::<Opts, _, _>(["x", "--config", f.path().to_str().unwrap()])
            .unwrap_err();
        assert!(err.to_string().contains("unknown key \"lisen\""), "{err}");
    }

    /// A server with an `install` subcommand, shaped like the agent's CLI; its config
    /// file's variable is its own, read by no other test.
    #[derive(Parser, Debug)]
    #[command(args_conflicts_with_subcommands = true)]
    struct Server {
        #[command(subcommand)]
        command: Option<Sub>,
        #[arg(long, env = "DROVER_TEST_CONFIG_SUBCOMMAND_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:1")]
        listen: String,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Sub {
        Install {
            #[arg(long)]
            listen: Option<String>,
        },
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_subcommand_is_parsed_without_the_servers_config_file() {
        let f = file("listen = \"127.0.0.1:7\"\n");
        // SAFETY: only this test reads the variable, and std's environment functions
        // take a lock against each other; nothing here calls C's getenv concurrently.
        unsafe { std::env::set_var("DROVER_TEST_CONFIG_SUBCOMMAND_CONFIG", f.path()) };
        // The server itself reads the file named by the environment.
        let s: Server = try_parse_from(["x"]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7");
        // A subcommand gets only its own flags, not the file's spliced in front of it
        // (which clap refused as conflicting with the subcommand).
        let s: Server = try_parse_from(["x", "install", "--listen", "0.0.0.0:1"]).unwrap();
        match s.command {
            Some(Sub::Install { listen }) => assert_eq!(listen.as_deref(), Some("0.0.0.0:1")),
            None => panic!("install was not parsed"),
        }
    }
}
