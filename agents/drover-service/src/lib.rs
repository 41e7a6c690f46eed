//! Plumbing every Drover server shares, so each binary stays thin.
//!
//! # Layout
//!
//! - [`connections`]: the rules for connections (header and idle timeouts, the cap,
//!   which connection to evict), as plain functions.
//! - [`accept`]: the accept loop that serves HTTP/1.1 under those rules, with graceful
//!   shutdown.
//! - [`config`]: every flag also from an environment variable and a TOML `--config` file.
//! - [`retention`]: which ended records of a history to drop (count and age).
//! - [`listen`]: bind, print the bound address on the first line, refuse wide binds
//!   without a token.
//! - [`auth`]: the bearer-token check.
//! - [`http`]: JSON errors, a JSON extractor whose rejections name the problem, the
//!   body-size limit, and the `/health`, `/v1/version`, `/metrics` routes.
//! - [`install`]: render config and systemd unit from templates, write only on change.
//! - [`server`]: the master's and the scheduler's subcommands and `main`.
//! - [`shutdown`]: SIGINT/SIGTERM as a future.

pub mod accept;
pub mod auth;
pub mod config;
pub mod connections;
pub mod http;
pub mod install;
pub mod listen;
pub mod retention;
pub mod server;
pub mod shutdown;
pub mod systemd;

/// Starts logging to stderr; `RUST_LOG` overrides the default level (`info`). Colours
/// only on a terminal: a log file or journald would keep the escape codes as text.
pub fn init_tracing() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Whether logs get colours: on a terminal, unless `NO_COLOR` is set to anything but
/// the empty string (<https://no-color.org>).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new(""))));
    }
}
