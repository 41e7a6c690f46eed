//! `drover nodes show NODE`: one node in full, with its active tasks.

use drover_api::task::TaskFilter;

use crate::cli::NodeShowArgs;
use crate::context::Context;
use crate::output;

/// Shows one node.
pub async fn run(ctx: &Context, args: &NodeShowArgs) -> anyhow::Result<()> {
    let node = ctx.call(ctx.master().node(&args.node)).await?;
    if ctx.json {
        return output::print_json(&node);
    }
    let filter = TaskFilter {
        node: Some(node.name.clone()),
        active: Some(true),
        ..Default::default()
    };
    let tasks = ctx.call(ctx.master().tasks(&filter)).await?;
    output::emit(&output::node_details(&node, &tasks, chrono::Utc::now()))
}
