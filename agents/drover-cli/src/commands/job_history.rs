//! `drover jobs history NAME [--limit N]`: a job's runs, one row per attempt.

use crate::cli::JobHistoryArgs;
use crate::context::Context;
use crate::{job_output, output};

/// Lists the job's run records, newest first.
pub async fn run(ctx: &Context, args: &JobHistoryArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let runs = ctx
        .call_scheduler(sched.job_runs(&args.name, Some(args.limit)))
        .await?;
    if ctx.json {
        return output::print_json(&runs);
    }
    if runs.is_empty() {
        eprintln!("job {} has not run yet", args.name);
        return Ok(());
    }
    output::emit(&job_output::runs_table(&runs, chrono::Utc::now()))
}
