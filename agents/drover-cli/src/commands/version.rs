//! `drover version`: the CLI's version and, if reachable, the master's.

use drover_api::meta::VersionInfo;

use crate::context::Context;
use crate::output::{self, VersionReport};

/// Prints both versions; an unreachable master is reported, not an error.
pub async fn run(ctx: &Context) -> anyhow::Result<()> {
    let cli = VersionInfo {
        name: "drover".into(),
        version: drover_api::VERSION.into(),
    };
    let (master, error) = match ctx.call(ctx.master().version()).await {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let report = VersionReport { cli, master };
    if ctx.json {
        if let Some(e) = &error {
            eprintln!("warning: {e}");
        }
        return output::print_json(&report);
    }
    output::emit(&output::version_text(
        &report,
        &ctx.master_url,
        error.as_deref(),
    ))
}
