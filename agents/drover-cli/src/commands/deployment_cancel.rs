//! `drover deployments cancel ID`: the deployment fails now; an app with `autoRevert`
//! rolls back to its last healthy version.

use crate::cli::DeploymentIdArgs;
use crate::context::Context;
use crate::output;

/// Cancels a running deployment.
pub async fn run(ctx: &Context, args: &DeploymentIdArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let c = ctx
        .call_scheduler(sched.cancel_deployment(&args.id))
        .await?;
    if ctx.json {
        return output::print_json(&c);
    }
    let mut text = format!("deployment {} {}\n", c.deployment.id, c.deployment.state);
    if let Some(r) = &c.rollback {
        text.push_str(&format!(
            "rolling back: deployment {} to version {}\n",
            r.id, r.version
        ));
    }
    output::emit(&text)
}
