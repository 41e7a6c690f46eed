//! `drover nodes drain NODE`: refuse new placements; running tasks stay.

use crate::cli::NodeDrainArgs;
use crate::context::Context;
use crate::output;

/// Drains one node and prints its new state.
pub async fn run(ctx: &Context, args: &NodeDrainArgs) -> anyhow::Result<()> {
    let node = ctx.call(ctx.master().drain(&args.node)).await?;
    if ctx.json {
        return output::print_json(&node);
    }
    output::emit(&format!("{} {}\n", node.name, node.state))
}
