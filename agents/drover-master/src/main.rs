//! `drover-master`: parse flags, start logging, bind, and hand over to
//! [`drover_master::run`]; or, as `drover-master install` / `uninstall`, write or remove
//! this host's config file and systemd unit.

use anyhow::Context;
use drover_master::opts::Command;
use drover_master::{Cli, Config, Opts};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = drover_service::config::parse_with_config();
    match cli.command {
        None | Some(Command::Serve) => {
            drover_service::init_tracing();
            serve(cli.opts).await
        }
        Some(Command::Install(cmd)) => {
            let report =
                drover_master::install::install(&cmd).context("failed to install drover-master")?;
            drover_service::install::print_report(&report);
            Ok(())
        }
        Some(Command::Uninstall(cmd)) => {
            let report = drover_master::install::uninstall(&cmd)
                .context("failed to uninstall drover-master")?;
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
    drover_master::run(listener, config, drover_service::shutdown::signal())
        .await
        .with_context(|| {
            format!(
                "drover-master failed (data dir {})",
                opts.data_dir.display()
            )
        })
}
