//! `drover apps show APP`: the app, its status (why instances cannot be placed, the
//! backoff), its running deployment and its tasks.

use crate::cli::AppIdArgs;
use crate::context::Context;
use crate::{app_output, output};

/// Shows one app.
pub async fn run(ctx: &Context, args: &AppIdArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let app = ctx.call_scheduler(sched.app(&args.app)).await?;
    if ctx.json {
        return output::print_json(&app);
    }
    let tasks = ctx.call_scheduler(sched.app_tasks(&args.app)).await?;
    output::emit(&app_output::app_details(&app, &tasks, chrono::Utc::now()))
}
