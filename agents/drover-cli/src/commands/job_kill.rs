//! `drover jobs kill NAME`: kill a job's running runs and cancel their retries.

use crate::cli::JobNameArgs;
use crate::context::Context;
use crate::output;

/// Asks the scheduler to kill the job's open runs.
pub async fn run(ctx: &Context, args: &JobNameArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let status = ctx.call_scheduler(sched.kill_job(&args.name)).await?;
    if ctx.json {
        return output::print_json(&status);
    }
    output::emit(&format!(
        "job {} kill requested (now {})\n",
        args.name, status.state
    ))
}
