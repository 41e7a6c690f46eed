//! `drover apps`: every app with its instance counts and running deployment.

use crate::context::Context;
use crate::{app_output, output};

/// Lists the apps.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    let apps = ctx.call_scheduler(sched.apps()).await?;
    if ctx.json {
        return output::print_json(&apps);
    }
    if apps.is_empty() {
        eprintln!(
            "no apps are defined on the scheduler at {}",
            ctx.scheduler_url
        );
        return Ok(());
    }
    output::emit(&app_output::apps_table(&apps))
}
