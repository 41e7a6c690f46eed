//! `drover jobs enable NAME`.

use crate::cli::JobNameArgs;
use crate::context::Context;
use crate::output;

/// Enables the job and prints its state.
pub async fn run(ctx: &Context, args: &JobNameArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let details = ctx.call_scheduler(sched.enable_job(&args.name)).await?;
    if ctx.json {
        return output::print_json(&details);
    }
    output::emit(&format!(
        "job {} {}d (now {})\n",
        args.name,
        "enable".trim_end_matches('e'),
        details.status.state
    ))
}
