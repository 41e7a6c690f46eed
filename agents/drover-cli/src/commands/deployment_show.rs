//! `drover deployments show ID [--wait]`: a deployment's steps and progress.

use anyhow::bail;
use drover_api::deployment::DeploymentState;

use crate::cli::DeploymentShowArgs;
use crate::context::Context;
use crate::{app_output, output};

/// Shows one deployment; with `--wait`, follows it to the end.
pub async fn run(ctx: &Context, args: &DeploymentShowArgs) -> anyhow::Result<()> {
    let d = if args.wait {
        let d = app_output::follow(ctx, &args.id, args.timeout).await?;
        if d.state != DeploymentState::Succeeded {
            if ctx.json {
                output::print_json(&d)?;
            }
            bail!(
                "deployment {} {}: {}",
                d.id,
                d.state,
                d.message.as_deref().unwrap_or("no reason given")
            );
        }
        d
    } else {
        let sched = ctx.scheduler()?;
        ctx.call_scheduler(sched.deployment(&args.id)).await?
    };
    if ctx.json {
        return output::print_json(&d);
    }
    output::emit(&app_output::deployment_details(&d, chrono::Utc::now()))
}
