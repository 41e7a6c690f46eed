//! `drover apps update -f FILE`: a new definition for an app (created when absent).

use anyhow::Context as _;

use crate::app_output;
use crate::cli::AppFileArgs;
use crate::commands::job_create::read_json;
use crate::context::Context;

/// Updates the app; with `--wait`, follows its deployment.
pub async fn run(ctx: &Context, args: &AppFileArgs) -> anyhow::Result<()> {
    let value = read_json(&args.file)?;
    let id = value
        .get("id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{} has no \"id\"", args.file.display()))?;
    let sched = ctx.scheduler()?;
    let changed = ctx
        .call_scheduler(sched.put_app(&id, &value, args.change.force))
        .await?;
    app_output::report_change(ctx, &changed, args.change.wait, args.change.timeout).await
}
