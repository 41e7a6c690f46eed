//! The `drover` binary: parse, run, print `error: ...` and exit 1 on failure.

use std::process::ExitCode;

use clap::Parser;
use drover_cli::cli::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match drover_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
