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
//! - [`app_output`]: the same for apps and deployments, and the `--wait` progress bar.
//! - [`job_output`]: the same for jobs: job list, job details, run history, stats, graph.
//! - [`fleet_output`]: `drover fleet`'s shared parts: loading the inventory, progress
//!   bars, the plan and the summary tables.

pub mod app_output;
pub mod cli;
pub mod commands;
pub mod context;
pub mod fleet_output;
pub mod job_output;
pub mod output;

use cli::{
    AppsCommand, Cli, Command, DeploymentListArgs, DeploymentsCommand, FleetCommand, JobsCommand,
    NodesCommand, TaskListArgs, TasksCommand,
};
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
        Command::Jobs(jobs) => match jobs.command {
            None | Some(JobsCommand::List) => commands::job_list::run(&ctx).await,
            Some(JobsCommand::Show(args)) => commands::job_show::run(&ctx, &args).await,
            Some(JobsCommand::Create(args)) => commands::job_create::run(&ctx, &args).await,
            Some(JobsCommand::Run(args)) => commands::job_run::run(&ctx, &args).await,
            Some(JobsCommand::Kill(args)) => commands::job_kill::run(&ctx, &args).await,
            Some(JobsCommand::History(args)) => commands::job_history::run(&ctx, &args).await,
            Some(JobsCommand::Stats(args)) => commands::job_stats::run(&ctx, &args).await,
            Some(JobsCommand::Logs(args)) => commands::job_logs::run(&ctx, &args).await,
            Some(JobsCommand::Graph(args)) => commands::job_graph::run(&ctx, &args).await,
            Some(JobsCommand::Enable(args)) => commands::job_enable::run(&ctx, &args).await,
            Some(JobsCommand::Disable(args)) => commands::job_disable::run(&ctx, &args).await,
            Some(JobsCommand::Delete(args)) => commands::job_delete::run(&ctx, &args).await,
            Some(JobsCommand::Success(args)) => commands::job_success::run(&ctx, &args).await,
        },
        Command::Apps(apps) => match apps.command {
            None | Some(AppsCommand::List) => commands::app_list::run(&ctx).await,
            Some(AppsCommand::Show(args)) => commands::app_show::run(&ctx, &args).await,
            Some(AppsCommand::Create(args)) => commands::app_create::run(&ctx, &args).await,
            Some(AppsCommand::Update(args)) => commands::app_update::run(&ctx, &args).await,
            Some(AppsCommand::Scale(args)) => commands::app_scale::run(&ctx, &args).await,
            Some(AppsCommand::Restart(args)) => commands::app_restart::run(&ctx, &args).await,
            Some(AppsCommand::Rollback(args)) => commands::app_rollback::run(&ctx, &args).await,
            Some(AppsCommand::Delete(args)) => commands::app_delete::run(&ctx, &args).await,
        },
        Command::Deployments(d) => match d.command {
            None => commands::deployment_list::run(&ctx, &DeploymentListArgs::default()).await,
            Some(DeploymentsCommand::List(args)) => {
                commands::deployment_list::run(&ctx, &args).await
            }
            Some(DeploymentsCommand::Show(args)) => {
                commands::deployment_show::run(&ctx, &args).await
            }
            Some(DeploymentsCommand::Cancel(args)) => {
                commands::deployment_cancel::run(&ctx, &args).await
            }
        },
        Command::Apply(args) => commands::apply::run(&ctx, &args).await,
        Command::Dev(args) => commands::dev::run(&cli.global, &args).await,
        Command::Fleet(f) => match f.command {
            FleetCommand::Upgrade(args) => {
                commands::fleet_upgrade::run(&ctx, &cli.global, &args).await
            }
            FleetCommand::Status(args) => {
                commands::fleet_status::run(&ctx, &cli.global, &args).await
            }
        },
        Command::Version => commands::version::run(&ctx).await,
    }
}
