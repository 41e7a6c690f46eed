//! `drover apps restart APP`: replace every instance (a rolling restart).

use crate::app_output;
use crate::cli::AppChangeArgs;
use crate::context::Context;

/// Restarts the app; with `--wait`, follows its deployment.
pub async fn run(ctx: &Context, args: &AppChangeArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let changed = ctx
        .call_scheduler(sched.restart_app(&args.app, args.change.force))
        .await?;
    app_output::report_change(ctx, &changed, args.change.wait, args.change.timeout).await
}
