//! `drover jobs show NAME [--next N]`: a job, its state, next runs, open runs and stats.

use crate::cli::JobShowArgs;
use crate::context::Context;
use crate::{job_output, output};

/// Shows one job.
pub async fn run(ctx: &Context, args: &JobShowArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let details = ctx
        .call_scheduler(sched.job(&args.name, Some(args.next)))
        .await?;
    if ctx.json {
        return output::print_json(&details);
    }
    output::emit(&job_output::job_details(&details, chrono::Utc::now()))
}
