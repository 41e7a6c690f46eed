//! `drover fleet`'s shared parts: loading the inventory (natively or through
//! `ansible-inventory`), the master client it gates on, progress bars, and the plan and
//! summary tables.
//!
//! Progress uses indicatif: a `MultiProgress` with one bar for the whole rollout and
//! one for the current batch, drawn on stderr and hidden by itself when stderr is not a
//! terminal (CI logs, `--json` pipes), so no separate quiet mode is needed.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail};
use comfy_table::{ContentArrangement, Table, presets};
use drover_api::client::MasterClient;
use drover_fleet::host::{FleetHost, Role, fleet_from};
use drover_fleet::inventory::Inventory;
use drover_fleet::plan::{Batch, Phase, Plan};
use drover_fleet::rollout::{Outcome, Progress, Report};
use drover_fleet::ssh::SshOptions;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::{FleetCommonArgs, GlobalArgs};
use crate::context::Context;

/// The selected hosts and the master to gate on.
pub struct Loaded {
    /// Hosts with a role, after `--limit`, in inventory order.
    pub hosts: Vec<FleetHost>,
    /// Every agent host of the inventory (for `--max-unavailable` counting).
    pub all_hosts: Vec<FleetHost>,
    /// The master.
    pub master: MasterClient,
    /// Its URL.
    pub master_url: String,
    /// The token used for the master (and schedulers).
    pub token: Option<String>,
    /// SSH settings.
    pub ssh: SshOptions,
}

/// Reads the inventory, applies `--limit`, and picks the master and token: `--master`
/// (or `DROVER_MASTER`) when set to something other than the default, else the URL
/// the inventory gives the roles; `--token`/`--token-file` first, else a plainly set
/// `drover_token`.
pub fn load(ctx: &Context, global: &GlobalArgs, args: &FleetCommonArgs) -> anyhow::Result<Loaded> {
    let inv = if args.ansible_inventory {
        let out = std::process::Command::new("ansible-inventory")
            .arg("-i")
            .arg(&args.inventory)
            .arg("--list")
            .output()
            .context("failed to run ansible-inventory (is Ansible installed?)")?;
        if !out.status.success() {
            bail!(
                "ansible-inventory failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Inventory::from_ansible_json(&String::from_utf8_lossy(&out.stdout))
            .context("failed to read the output of ansible-inventory")?
    } else {
        Inventory::load(&args.inventory)
            .with_context(|| format!("failed to read the inventory {}", args.inventory.display()))?
    };
    let fleet = fleet_from(&inv).context("failed to read the inventory's variables")?;
    let selected: Vec<String> = match &args.limit {
        Some(p) => inv.select(p),
        None => inv.hosts.iter().map(|(h, _)| h.clone()).collect(),
    };
    let hosts: Vec<FleetHost> = fleet
        .hosts
        .iter()
        .filter(|h| selected.contains(&h.name))
        .cloned()
        .collect();
    if hosts.is_empty() {
        bail!(
            "no host of the inventory is in masters, schedulers or agents{}",
            args.limit
                .as_ref()
                .map(|l| format!(" and matches --limit {l:?}"))
                .unwrap_or_default()
        );
    }
    let master_url = if global.master.trim_end_matches('/')
        != drover_api::DEFAULT_MASTER_URL.trim_end_matches('/')
    {
        global.master.clone()
    } else {
        fleet
            .master_url
            .clone()
            .unwrap_or_else(|| global.master.clone())
    };
    let token = ctx.token.clone().or(fleet.token.clone());
    let master = MasterClient::new(&master_url, token.clone())
        .map_err(|e| anyhow::anyhow!("invalid master URL {master_url:?}: {e}"))?;
    let mut ssh = SshOptions::new(args.known_hosts.clone(), args.accept_new);
    ssh.connect_timeout = Duration::from_secs(args.connect_timeout.max(1));
    Ok(Loaded {
        hosts,
        all_hosts: fleet.hosts,
        master,
        master_url,
        token,
        ssh,
    })
}

/// A borderless table like the other commands'.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(header.to_vec());
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    t
}

fn short(sha: Option<&str>) -> String {
    sha.map(|s| s.chars().take(12).collect())
        .unwrap_or_else(|| "-".into())
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Master => "master",
        Phase::Scheduler => "scheduler",
        Phase::Canary => "canary",
        Phase::Agents => "agents",
    }
}

/// The plan as people read it.
pub fn plan_text(plan: &Plan, dist: &Path) -> String {
    let mut t = table(&["BATCH", "PHASE", "HOST", "BINARY", "FROM", "TO"]);
    for (i, b) in plan.batches.iter().enumerate() {
        for s in &b.steps {
            t.add_row(vec![
                (i + 1).to_string(),
                phase_name(b.phase).to_string(),
                s.host.clone(),
                s.role.binary().to_string(),
                short(s.from.as_deref()),
                short(Some(&s.to)),
            ]);
        }
    }
    let mut out = format!(
        "plan: {} batch(es), {} host(s) to change, from {}\n",
        plan.batches.len(),
        plan.hosts().len(),
        dist.display()
    );
    if !plan.batches.is_empty() {
        out.push_str(&format!("{t}\n"));
    }
    if !plan.unchanged.is_empty() {
        let names: Vec<String> = plan
            .unchanged
            .iter()
            .map(|(h, r)| format!("{h} ({})", r.binary()))
            .collect();
        out.push_str(&format!("already up to date: {}\n", names.join(", ")));
    }
    for r in &plan.missing_in_dist {
        out.push_str(&format!("left alone: the dist has no {}\n", r.binary()));
    }
    out
}

/// The summary at the end.
pub fn report_text(report: &Report) -> String {
    let mut t = table(&["HOST", "BINARY", "RESULT", "VERSION", "SECONDS", "DETAIL"]);
    for h in &report.hosts {
        let (result, detail) = match &h.outcome {
            Outcome::Upgraded => ("upgraded", String::new()),
            Outcome::Unchanged => ("unchanged", String::new()),
            Outcome::NotStarted => ("not started", String::new()),
            Outcome::Failed {
                reason,
                rolled_back: true,
            } => ("rolled back", reason.clone()),
            Outcome::Failed { reason, .. } => ("FAILED", reason.clone()),
        };
        t.add_row(vec![
            h.host.clone(),
            h.role.binary().to_string(),
            result.to_string(),
            h.version.clone().unwrap_or_else(|| "?".into()),
            format!("{:.1}", h.seconds),
            detail,
        ]);
    }
    let mut out = format!("{t}\n");
    match &report.halted {
        None => out.push_str(&format!("rollout complete in {:.1}s\n", report.seconds)),
        Some(why) => out.push_str(&format!(
            "rollout HALTED after {:.1}s: {why}\n",
            report.seconds
        )),
    }
    out
}

/// indicatif bars: the whole rollout, and the current batch.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    batch: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Bars on stderr (hidden when it is not a terminal, or with `hidden`).
    pub fn new(hidden: bool) -> Bars {
        let multi = MultiProgress::new();
        if hidden {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "rollout {bar:30} {pos}/{len} steps  {elapsed_precise}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bars {
            multi,
            total,
            batch: Mutex::new(None),
        }
    }
}

impl Progress for Bars {
    fn start(&self, steps: usize, _batches: usize) {
        self.total.set_length(steps as u64);
    }

    fn batch(&self, index: usize, batch: &Batch) {
        let bar = self.multi.add(ProgressBar::new(batch.steps.len() as u64));
        bar.set_style(
            ProgressStyle::with_template("batch {prefix} {bar:30} {pos}/{len}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{} ({})", index + 1, phase_name(batch.phase)));
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut slot = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.replace(bar) {
            old.finish();
        }
    }

    fn stage(&self, host: &str, role: Role, stage: &str) {
        if let Some(b) = self
            .batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            b.set_message(format!("{host} ({role}): {stage}"));
        }
    }

    fn done(&self, host: &str, role: Role, outcome: &Outcome) {
        self.total.inc(1);
        if let Some(b) = self
            .batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            b.inc(1);
            let what = match outcome {
                Outcome::Upgraded => "upgraded",
                Outcome::Failed { .. } => "failed",
                _ => "done",
            };
            b.set_message(format!("{host} ({role}): {what}"));
        }
    }

    fn finish(&self, report: &Report) {
        if let Some(b) = self.batch.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish();
        }
        self.total
            .finish_with_message(if report.ok { "done" } else { "halted" });
    }
}
