//! `drover-scheduler`: parse flags, start logging, bind, and hand over to
//! [`drover_scheduler::run`]; or, as `drover-scheduler install` / `uninstall`, write or
//! remove this host's config file and systemd unit.

use drover_scheduler::{Cli, Config};
use drover_service::server::Serving;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = drover_service::config::parse_with_config();
    let opts = &cli.opts;
    let serving = Serving {
        listen: &opts.listen,
        data_dir: &opts.data_dir,
        token: opts.token.as_deref(),
        token_file: opts.token_file.as_deref(),
    };
    let result = drover_service::server::main(
        cli.command,
        serving,
        |token| Config::from_opts(opts, token),
        |listener, config| {
            drover_scheduler::run(listener, config, drover_service::shutdown::signal())
        },
    )
    .await;
    drover_service::server::exit_code(result)
}
