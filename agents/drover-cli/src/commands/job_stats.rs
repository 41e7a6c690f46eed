//! `drover jobs stats NAME`: counts and duration statistics.

use crate::cli::JobNameArgs;
use crate::context::Context;
use crate::{job_output, output};

/// Prints the job's statistics.
pub async fn run(ctx: &Context, args: &JobNameArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let stats = ctx.call_scheduler(sched.job_stats(&args.name)).await?;
    if ctx.json {
        return output::print_json(&stats);
    }
    output::emit(&job_output::stats_text(&stats, chrono::Utc::now()))
}
