//! `drover jobs create -f FILE`: create or update a job from its Chronos JSON.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;

use crate::cli::JobCreateArgs;
use crate::context::Context;
use crate::output;

/// Reads a JSON file (`-` for stdin).
pub fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("failed to read stdin")?;
        s
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Sends the job to the scheduler and says what happened.
pub async fn run(ctx: &Context, args: &JobCreateArgs) -> anyhow::Result<()> {
    let value = read_json(&args.file)?;
    let sched = ctx.scheduler()?;
    let accepted = ctx.call_scheduler(sched.put_job(&value)).await?;
    if ctx.json {
        return output::print_json(&accepted);
    }
    let verb = if accepted.created {
        "created"
    } else {
        "updated"
    };
    let mut text = format!("job {} {verb}\n", accepted.job.name);
    if !accepted.ignored_fields.is_empty() {
        text.push_str(&format!(
            "note: kept but not acted on: {}\n",
            accepted.ignored_fields.join(", ")
        ));
    }
    output::emit(&text)
}
