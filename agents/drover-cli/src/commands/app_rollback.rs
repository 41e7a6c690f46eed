//! `drover apps rollback APP [VERSION]`: go back to an earlier version (default: the
//! last fully healthy one).

use crate::app_output;
use crate::cli::AppRollbackArgs;
use crate::context::Context;

/// Rolls the app back; with `--wait`, follows its deployment.
pub async fn run(ctx: &Context, args: &AppRollbackArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let changed = ctx
        .call_scheduler(sched.rollback_app(&args.app, args.to_version.clone(), args.change.force))
        .await?;
    app_output::report_change(ctx, &changed, args.change.wait, args.change.timeout).await
}
