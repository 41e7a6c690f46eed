//! `drover jobs run NAME [-- ARGS...]`: start a run now.

use crate::cli::JobRunArgs;
use crate::context::Context;
use crate::output;

/// Starts a run and prints its number and task.
pub async fn run(ctx: &Context, args: &JobRunArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let run = ctx
        .call_scheduler(sched.run_job(&args.name, args.arguments.clone()))
        .await?;
    if ctx.json {
        return output::print_json(&run);
    }
    let task = run
        .task_id
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|| "-".into());
    output::emit(&format!(
        "job {} run {} started (task {task})\n",
        run.job, run.number
    ))
}
