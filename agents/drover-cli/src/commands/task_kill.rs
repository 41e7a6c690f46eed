//! `drover tasks kill TASK [--wait]`: SIGTERM, then SIGKILL after the grace period.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cli::TaskKillArgs;
use crate::context::{Context, task_id};
use crate::output;

/// How often `--wait` asks the master for the task's state.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Asks the master to kill a task; with `--wait`, polls until it has ended.
pub async fn run(ctx: &Context, args: &TaskKillArgs) -> anyhow::Result<()> {
    let id = task_id(&args.task)?;
    let mut task = ctx.call(ctx.master().kill(&id)).await?;
    if args.wait {
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        while task.state.is_active() {
            if Instant::now() >= deadline {
                bail!("task {id} is still {} after {}s", task.state, args.timeout);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            task = ctx.call(ctx.master().task(&id)).await?;
        }
    }
    if ctx.json {
        return output::print_json(&task);
    }
    if task.state.is_active() {
        output::emit(&format!("{id} kill requested (now {})\n", task.state))
    } else {
        output::emit(&output::task_outcome(&task))
    }
}
