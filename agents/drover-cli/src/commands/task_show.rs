//! `drover tasks show TASK`: one task in full.

use crate::cli::TaskShowArgs;
use crate::context::{Context, task_id};
use crate::output;

/// Shows one task.
pub async fn run(ctx: &Context, args: &TaskShowArgs) -> anyhow::Result<()> {
    let id = task_id(&args.task)?;
    let task = ctx.call(ctx.master().task(&id)).await?;
    if ctx.json {
        return output::print_json(&task);
    }
    output::emit(&output::task_details(&task, chrono::Utc::now()))
}
