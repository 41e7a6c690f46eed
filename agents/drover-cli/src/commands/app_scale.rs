//! `drover apps scale APP N`: change an app's instance count; nothing is replaced.

use crate::app_output;
use crate::cli::AppScaleArgs;
use crate::context::Context;

/// Scales the app; with `--wait`, follows its deployment.
pub async fn run(ctx: &Context, args: &AppScaleArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let changed = ctx
        .call_scheduler(sched.scale_app(&args.app, args.instances, args.change.force))
        .await?;
    app_output::report_change(ctx, &changed, args.change.wait, args.change.timeout).await
}
