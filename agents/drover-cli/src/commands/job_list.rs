//! `drover jobs`: every job with its state and next run.

use crate::context::Context;
use crate::{job_output, output};

/// Lists the jobs.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let jobs = ctx.call_scheduler(sched.jobs()).await?;
    if ctx.json {
        return output::print_json(&jobs);
    }
    if jobs.is_empty() {
        eprintln!(
            "no jobs are defined on the scheduler at {}",
            ctx.scheduler_url
        );
        return Ok(());
    }
    output::emit(&job_output::jobs_table(&jobs))
}
