//! `drover jobs success NAME`: count a success now, so the job's children run.

use crate::cli::JobNameArgs;
use crate::context::Context;
use crate::output;

/// Marks the job successful.
pub async fn run(ctx: &Context, args: &JobNameArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let status = ctx
        .call_scheduler(sched.mark_job_success(&args.name))
        .await?;
    if ctx.json {
        return output::print_json(&status);
    }
    output::emit(&format!("job {} marked successful\n", args.name))
}
