//! `drover fleet upgrade`: scan every selected host over SSH, plan, and (unless
//! `--dry-run`) roll the dist's binaries out batch by batch, gated on the master.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use drover_fleet::plan::PlanOptions;
use drover_fleet::rollout::{self, Rollout, UpgradeOptions};
use serde::Serialize;

use crate::cli::{FleetUpgradeArgs, GlobalArgs};
use crate::context::Context;
use crate::fleet_output::{self, Bars};
use crate::output;

/// The `--dry-run --json` document.
#[derive(Serialize)]
struct DryRun<'a> {
    dry_run: bool,
    master: &'a str,
    dist: &'a rollout::Dist,
    plan: &'a drover_fleet::plan::Plan,
}

/// Runs the upgrade (or prints its plan); fails when the rollout halted.
pub async fn run(
    ctx: &Context,
    global: &GlobalArgs,
    args: &FleetUpgradeArgs,
) -> anyhow::Result<()> {
    let loaded = fleet_output::load(ctx, global, &args.common)?;
    let dist = rollout::read_dist(&args.dist).context("failed to read the dist folder")?;
    let opts = UpgradeOptions {
        plan: PlanOptions {
            canary: args.canary,
            batch: args.batch,
            max_unavailable: args.max_unavailable,
        },
        drain: args.drain,
        gate_timeout: Duration::from_secs(args.gate_timeout.max(1)),
        poll: Duration::from_millis(250),
        parallel: args.common.parallel.max(1),
    };
    let (plan, scans) = rollout::prepare(&loaded.hosts, &dist, &loaded.ssh, &opts)
        .await
        .context("failed to scan the hosts")?;
    if args.dry_run {
        if ctx.json {
            return output::print_json(&DryRun {
                dry_run: true,
                master: &loaded.master_url,
                dist: &dist,
                plan: &plan,
            });
        }
        return output::emit(&format!(
            "{}dry run: nothing was changed\n",
            fleet_output::plan_text(&plan, &args.dist)
        ));
    }
    if !ctx.json {
        eprint!("{}", fleet_output::plan_text(&plan, &args.dist));
    }
    let bars = Arc::new(Bars::new(ctx.json));
    let report = Rollout {
        hosts: &loaded.hosts,
        all_hosts: &loaded.all_hosts,
        plan,
        scans: &scans,
        dist: &dist,
        master: loaded.master.clone(),
        token: loaded.token.clone(),
        ssh: &loaded.ssh,
        opts: &opts,
        progress: bars,
    }
    .run()
    .await;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        output::emit(&fleet_output::report_text(&report))?;
    }
    if let Some(why) = &report.halted {
        bail!("the rollout halted: {why}");
    }
    Ok(())
}
