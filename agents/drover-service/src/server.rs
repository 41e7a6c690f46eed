//! What the master's and the scheduler's `main` share: the command line around their
//! serving flags, the default data directory, and the way from parsed flags to a serving
//! process. The serving flags themselves stay each binary's own, since their help texts
//! and environment variables differ; [`Serving`] borrows the few that serving reads.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::install::{DaemonFlags, InstallCmd, InstallError, InstallReport, Service, UninstallCmd};

/// A server's command line: its serving flags `F`, or a subcommand.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = F::Service::NAME, version = drover_api::VERSION, about = F::Service::ABOUT)]
// Serving flags and a subcommand do not mix: `install` takes the same flags itself, and
// flags given before it would otherwise be silently ignored.
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli<F: DaemonFlags> {
    /// What to do; serving the API when absent.
    #[command(subcommand)]
    pub command: Option<Command<F>>,
    /// The serving flags.
    #[command(flatten)]
    pub opts: F,
}

/// A server's subcommands, `F` being its serving flags; serving needs none.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command<F: DaemonFlags> {
    /// Serve the API (the default; the serving flags go without a subcommand).
    Serve,
    /// Write this host's config file and systemd unit (only what changed).
    Install(InstallCmd<F>),
    /// Remove the config file and systemd unit `install` wrote (the data dir stays).
    Uninstall(UninstallCmd<F::Service>),
}

/// `$XDG_DATA_HOME/<dir>`, else `~/.local/share/<dir>`, else `/var/lib/<dir>` (a service
/// user without a home).
pub fn default_data_dir(dir: &str) -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        });
    base.unwrap_or_else(|| PathBuf::from("/var/lib")).join(dir)
}

/// The serving flags [`main`] reads, borrowed from the binary's own.
#[derive(Debug, Clone, Copy)]
pub struct Serving<'a> {
    /// `--listen`.
    pub listen: &'a str,
    /// `--data-dir`, named when the server fails.
    pub data_dir: &'a Path,
    /// `--token`.
    pub token: Option<&'a str>,
    /// `--token-file`.
    pub token_file: Option<&'a Path>,
}

/// Does what `command` says: `install` or `uninstall`, printing the report; or serve (the
/// default): start logging, resolve the token, check the `settings` before anything
/// binds, bind and announce, then `run` on the listener.
pub async fn main<F, C, E, Fut, R>(
    command: Option<Command<F>>,
    serving: Serving<'_>,
    settings: impl FnOnce(Option<String>) -> Result<C, E>,
    run: impl FnOnce(tokio::net::TcpListener, C) -> Fut,
) -> anyhow::Result<()>
where
    F: DaemonFlags,
    E: std::error::Error + Send + Sync + 'static,
    Fut: Future<Output = Result<(), R>>,
    R: std::error::Error + Send + Sync + 'static,
{
    let name = F::Service::NAME;
    match command {
        None | Some(Command::Serve) => {}
        Some(Command::Install(cmd)) => return report(cmd.install(), &format!("install {name}")),
        Some(Command::Uninstall(cmd)) => {
            return report(cmd.uninstall(), &format!("uninstall {name}"));
        }
    }
    crate::init_tracing();
    let token =
        crate::listen::resolve_token(serving.token.map(str::to_string), serving.token_file)?;
    let config = settings(token.clone()).context("invalid settings")?;
    let listener = crate::listen::bind_and_announce(serving.listen, token.as_deref()).await?;
    run(listener, config)
        .await
        .with_context(|| format!("{name} failed (data dir {})", serving.data_dir.display()))
}

/// Ends a server binary's `main`: success, or the error printed with its causes and a
/// failure status. Returning the `anyhow::Error` from `main` instead would print its
/// `Debug` form, which adds a `Stack backtrace` block whenever `RUST_BACKTRACE` is set
/// (as it often is on a developer's machine); for a refused start (a damaged store, a
/// bad flag) the causes say everything and the backtrace only hides them.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its chain of causes in anyhow's layout, without a backtrace.
pub fn error_report(e: &anyhow::Error) -> String {
    let mut out = format!("Error: {e}");
    let mut causes = e.chain().skip(1).peekable();
    if causes.peek().is_some() {
        out.push_str("\n\nCaused by:");
        for (i, cause) in causes.enumerate() {
            out.push_str(&format!("\n    {i}: {cause}"));
        }
    }
    out
}

/// Prints what `install` or `uninstall` did (`action`: "install drover-agent"), or fails
/// saying which failed.
pub fn report(result: Result<InstallReport, InstallError>, action: &str) -> anyhow::Result<()> {
    let report = result.with_context(|| format!("failed to {action}"))?;
    crate::install::print_report(&report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_report_lists_causes_without_a_backtrace() {
        let e = anyhow::Error::new(std::io::Error::other("checksum mismatch"))
            .context("failed to open the store")
            .context("drover-master failed (data dir /d)");
        assert_eq!(
            error_report(&e),
            "Error: drover-master failed (data dir /d)\n\nCaused by:\n    0: failed to open the store\n    1: checksum mismatch"
        );
        assert_eq!(
            error_report(&anyhow::anyhow!("bad flag")),
            "Error: bad flag"
        );
    }
}
