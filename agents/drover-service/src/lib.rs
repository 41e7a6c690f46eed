//! Plumbing every Drover server shares, so each binary stays thin.
//!
//! # Layout
//!
//! - [`config`]: every flag also from an environment variable and a TOML `--config` file.
//! - [`listen`]: bind, print the bound address on the first line, refuse wide binds
//!   without a token.
//! - [`auth`]: the bearer-token check.
//! - [`http`]: JSON errors, a JSON extractor whose rejections name the problem, the
//!   body-size limit, and the `/health`, `/v1/version`, `/metrics` routes.
//! - [`install`]: render config and systemd unit from templates, write only on change.
//! - [`server`]: the master's and the scheduler's subcommands and `main`.
//! - [`shutdown`]: SIGINT/SIGTERM as a future.

pub mod auth;
pub mod config;
pub mod http;
pub mod install;
pub mod listen;
pub mod server;
pub mod shutdown;

/// Starts logging to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
