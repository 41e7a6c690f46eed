//! The `drover-agent` binary: parses flags, starts logging, binds, and hands over to
//! [`drover_agent::run`]; or, as `drover-agent shim SANDBOX`, supervises one task; or,
//! as `drover-agent install` / `uninstall`, writes or removes this host's config file
//! and systemd unit.

use anyhow::Context;
use drover_agent::cli::{Cli, Command};
use drover_service::server::report;

fn main() -> std::process::ExitCode {
    drover_service::server::exit_code(run())
}

fn run() -> anyhow::Result<()> {
    let cli: Cli = drover_service::config::parse_with_config();
    match &cli.command {
        Some(Command::Shim { sandbox }) => std::process::exit(drover_agent::shim::main(sandbox)),
        Some(Command::Install(cmd)) => {
            return report(cmd.install(), "install drover-agent");
        }
        Some(Command::Uninstall(cmd)) => {
            return report(cmd.uninstall(), "uninstall drover-agent");
        }
        None => {}
    }
    drover_service::init_tracing();
    // One thread is plenty for an agent that mostly waits, and keeps it small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let args = &cli.run;
        let token =
            drover_service::listen::resolve_token(args.token.clone(), args.token_file.as_deref())?;
        let listener =
            drover_service::listen::bind_and_announce(&args.listen, token.as_deref()).await?;
        let bound = listener
            .local_addr()
            .context("failed to read the bound address")?;
        let shim_exe = std::env::current_exe()
            .context("failed to find the agent's own binary (for task shims)")?;
        let opts = args
            .resolve(bound, token, shim_exe)
            .context("invalid configuration")?;
        drover_agent::run(listener, opts, drover_service::shutdown::signal())
            .await
            .context("the agent failed")
    })
}
