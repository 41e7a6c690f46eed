//! `drover jobs delete NAME`: delete a job and its history.

use crate::cli::JobNameArgs;
use crate::context::Context;
use crate::output;

/// Deletes the job.
pub async fn run(ctx: &Context, args: &JobNameArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let job = ctx.call_scheduler(sched.delete_job(&args.name)).await?;
    if ctx.json {
        return output::print_json(&job);
    }
    output::emit(&format!("job {} deleted\n", job.name))
}
