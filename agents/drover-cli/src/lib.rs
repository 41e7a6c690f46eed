//! `drover`, the command line of a Drover cluster.
//!
//! The binary is thin: it parses a [`cli::Cli`] and hands it to [`run`]. Every command
//! talks to the master only through [`drover_api::client::MasterClient`] and prints the
//! drover-api types: tables for people, JSON (`--json`) for scripts.
//!
//! # Layout
//!
//! - [`cli`]: the clap definitions: global options, nouns and verbs.
//! - [`context`]: what every command gets: the resolved options and a client, and the
//!   mapping of client failures to the messages the CLI prints.
//! - [`commands`]: one file per verb (`node_drain.rs`, `task_launch.rs`, ...).
//! - [`output`]: tables, detail views and JSON printing; pure functions over the
//!   drover-api types.

pub mod cli;
pub mod commands;
pub mod context;
pub mod output;

use cli::{Cli, Command, NodesCommand, TaskListArgs, TasksCommand};
use context::Context;

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::from_globals(&cli.global)?;
    match cli.command {
        Command::Nodes(nodes) => match nodes.command {
            None | Some(NodesCommand::List) => commands::node_list::run(&ctx).await,
            Some(NodesCommand::Show(args)) => commands::node_show::run(&ctx, &args).await,
            Some(NodesCommand::Drain(args)) => commands::node_drain::run(&ctx, &args).await,
            Some(NodesCommand::Activate(args)) => commands::node_activate::run(&ctx, &args).await,
        },
        Command::Tasks(tasks) => match tasks.command {
            None => commands::task_list::run(&ctx, &tasks.list).await,
            Some(_) if tasks.list != TaskListArgs::default() => {
                anyhow::bail!(
                    "the list options (--node, --state, --all, --label) go with `drover tasks` or `drover tasks list`, not with another verb"
                )
            }
            Some(TasksCommand::List(args)) => commands::task_list::run(&ctx, &args).await,
            Some(TasksCommand::Show(args)) => commands::task_show::run(&ctx, &args).await,
            Some(TasksCommand::Kill(args)) => commands::task_kill::run(&ctx, &args).await,
            Some(TasksCommand::Logs(args)) => commands::task_logs::run(&ctx, &args).await,
            Some(TasksCommand::Launch(args)) => commands::task_launch::run(&ctx, &args).await,
        },
        Command::Version => commands::version::run(&ctx).await,
    }
}
