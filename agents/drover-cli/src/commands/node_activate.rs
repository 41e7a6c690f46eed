//! `drover nodes activate NODE`: accept placements again after a drain.

use crate::cli::NodeActivateArgs;
use crate::context::Context;
use crate::output;

/// Activates one node and prints its new state.
pub async fn run(ctx: &Context, args: &NodeActivateArgs) -> anyhow::Result<()> {
    let node = ctx.call(ctx.master().activate(&args.node)).await?;
    if ctx.json {
        return output::print_json(&node);
    }
    output::emit(&format!("{} {}\n", node.name, node.state))
}
