//! `drover apps delete APP`: stop every instance, then remove the app.

use crate::app_output;
use crate::cli::AppChangeArgs;
use crate::context::Context;

/// Deletes the app; with `--wait`, follows the delete until the app is gone.
pub async fn run(ctx: &Context, args: &AppChangeArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let changed = ctx
        .call_scheduler(sched.delete_app(&args.app, args.change.force))
        .await?;
    app_output::report_change(ctx, &changed, args.change.wait, args.change.timeout).await
}
