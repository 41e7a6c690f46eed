//! `drover deployments`: running and recent deployments, newest first.

use crate::cli::DeploymentListArgs;
use crate::context::Context;
use crate::{app_output, output};

/// Lists the deployments (running ones only unless `--all`).
pub async fn run(ctx: &Context, args: &DeploymentListArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let mut ds = ctx.call_scheduler(sched.deployments()).await?;
    if !args.all {
        ds.retain(|d| d.is_running());
    }
    if ctx.json {
        return output::print_json(&ds);
    }
    if ds.is_empty() {
        eprintln!(
            "no {}deployments on the scheduler at {}",
            if args.all { "" } else { "running " },
            ctx.scheduler_url
        );
        return Ok(());
    }
    output::emit(&app_output::deployments_table(&ds))
}
