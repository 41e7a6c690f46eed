//! `drover nodes`: every node with its free and total resources.

use crate::context::Context;
use crate::output;

/// Lists the nodes.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let nodes = ctx.call(ctx.master().nodes()).await?;
    if ctx.json {
        return output::print_json(&nodes);
    }
    if nodes.is_empty() {
        eprintln!(
            "no nodes have registered with the master at {}",
            ctx.master_url
        );
        return Ok(());
    }
    output::emit(&output::nodes_table(&nodes))
}
