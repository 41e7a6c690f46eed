//! `drover jobs disable NAME`.

use crate::cli::JobNameArgs;
use crate::context::Context;
use crate::output;

/// Disables the job and prints its state.
pub async fn run(ctx: &Context, args: &JobNameArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let details = ctx.call_scheduler(sched.disable_job(&args.name)).await?;
    if ctx.json {
        return output::print_json(&details);
    }
    output::emit(&format!(
        "job {} {}d (now {})\n",
        args.name,
        "disable".trim_end_matches('e'),
        details.status.state
    ))
}
