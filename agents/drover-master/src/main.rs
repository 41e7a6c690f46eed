//! `drover-master`: parse flags, start logging, bind, and hand over to
//! [`drover_master::run`].

use anyhow::Context;
use drover_master::opts::Command;
use drover_master::{Config, Opts};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts: Opts = drover_service::config::parse_with_config();
    drover_service::init_tracing();
    match opts.command {
        None | Some(Command::Serve) => serve(opts).await,
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
