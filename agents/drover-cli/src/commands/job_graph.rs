//! `drover jobs graph [--dot]`: the dependency graph, as text or Graphviz DOT.

use drover_api::job::ChronosJob;

use crate::cli::JobGraphArgs;
use crate::context::Context;
use crate::{job_output, output};

/// Prints the graph.
pub async fn run(ctx: &Context, args: &JobGraphArgs) -> anyhow::Result<()> {
    let sched = ctx.scheduler()?;
    if args.dot {
        let dot = ctx.call_scheduler(sched.job_graph_dot()).await?;
        return output::emit(&dot);
    }
    let jobs: Vec<ChronosJob> = ctx
        .call_scheduler(sched.jobs())
        .await?
        .into_iter()
        .map(|d| d.job)
        .collect();
    if ctx.json {
        let edges: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| serde_json::json!({"name": j.name, "parents": j.parents}))
            .collect();
        return output::print_json(&edges);
    }
    output::emit(&job_output::graph_text(&jobs))
}
