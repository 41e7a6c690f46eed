//! `drover-scheduler`: parse flags, start logging, bind, and hand over to
//! [`drover_scheduler::run`]; or, as `drover-scheduler install` / `uninstall`, write or
//! remove this host's config file and systemd unit.

use anyhow::Context;
use drover_scheduler::opts::Command;
use drover_scheduler::{Cli, Config, Opts};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = drover_service::config::parse_with_config();
    match cli.command {
        None | Some(Command::Serve) => {
            drover_service::init_tracing();
            serve(cli.opts).await
        }
        Some(Command::Install(cmd)) => {
            let report = drover_scheduler::install::install(&cmd)
                .context("failed to install drover-scheduler")?;
            drover_service::install::print_report(&report);
            Ok(())
        }
        Some(Command::Uninstall(cmd)) => {
            let report = drover_scheduler::install::uninstall(&cmd)
                .context("failed to uninstall drover-scheduler")?;
            drover_service::install::print_report(&report);
            Ok(())
        }
    }
}

async fn serve(opts: Opts) -> anyhow::Result<()> {
    let token =
        drover_service::listen::resolve_token(opts.token.clone(), opts.token_file.as_deref())?;
    let config = Config::from_opts(&opts, token.clone()).context("invalid settings")?;
    let listener =
        drover_service::listen::bind_and_announce(&opts.listen, token.as_deref()).await?;
    drover_scheduler::run(listener, config, drover_service::shutdown::signal())
        .await
        .with_context(|| {
            format!(
                "drover-scheduler failed (data dir {})",
                opts.data_dir.display()
            )
        })
}
