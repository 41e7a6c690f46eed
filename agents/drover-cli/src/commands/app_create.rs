//! `drover apps create -f FILE`: create an app from its Marathon JSON.

use crate::app_output;
use crate::cli::AppFileArgs;
use crate::commands::job_create::read_json;
use crate::context::Context;

/// Creates the app; with `--wait`, follows its deployment.
pub async fn run(ctx: &Context, args: &AppFileArgs) -> anyhow::Result<()> {
    let value = read_json(&args.file)?;
    let sched = ctx.scheduler()?;
    let changed = ctx
        .call_scheduler(sched.create_app(&value, args.change.force))
        .await?;
    app_output::report_change(ctx, &changed, args.change.wait, args.change.timeout).await
}
