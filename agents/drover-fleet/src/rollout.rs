//! The thin executor: scans hosts, then runs a [`Plan`] batch by batch. SSH work runs on
//! blocking threads, at most `parallel` hosts at once; the gates poll the master through
//! drover-api's typed client and decide with the pure functions of [`crate::gate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_api::client::{MasterClient, SchedulerClient};
use drover_api::task::{Task, TaskFilter};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::gate::{self, Gate};
use crate::host::{FleetHost, Role};
use crate::plan::{Batch, Phase, Plan, PlanOptions, Step};
use crate::ssh::{SshError, SshHost, SshOptions, quote};

/// Why a rollout could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The dist folder lacks something or cannot be read.
    #[error("dist {path}: {message}")]
    Dist {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Some hosts could not be scanned: nothing was changed.
    #[error("cannot reach every host, nothing was changed:\n{0}")]
    Scan(String),
    /// The selection has no host.
    #[error("no host of the inventory matches {0:?}")]
    NoHosts(String),
}

/// One binary of the dist folder.
#[derive(Debug, Clone, Serialize)]
pub struct DistBinary {
    /// Where it is.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// What it reports with `--version`.
    pub version: String,
}

/// The binaries to roll out.
#[derive(Debug, Clone, Serialize)]
pub struct Dist {
    /// By role; a role missing from the folder is left alone.
    pub binaries: BTreeMap<Role, DistBinary>,
}

/// The hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Reads a dist folder: each server binary's checksum and version (checked against
/// `SHA256SUMS` when the folder has one).
pub fn read_dist(dir: &Path) -> Result<Dist, FleetError> {
    let bad = |path: &Path, message: String| FleetError::Dist {
        path: path.to_path_buf(),
        message,
    };
    if !dir.is_dir() {
        return Err(bad(
            dir,
            "not a folder (build one with scripts/dist)".into(),
        ));
    }
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).ok();
    let mut binaries = BTreeMap::new();
    for role in Role::ALL {
        let path = dir.join(role.binary());
        if !path.is_file() {
            continue;
        }
        let sha256 = sha256_file(&path).map_err(|e| bad(&path, e.to_string()))?;
        if let Some(sums) = &sums {
            let listed = sums.lines().find_map(|l| {
                let (sum, name) = l.split_once(char::is_whitespace)?;
                (name.trim().trim_start_matches('*') == role.binary()).then(|| sum.to_string())
            });
            if listed.is_some_and(|l| l != sha256) {
                return Err(bad(&path, "does not match SHA256SUMS".into()));
            }
        }
        let out = std::process::Command::new(&path)
            .arg("--version")
            .output()
            .map_err(|e| bad(&path, format!("cannot run --version: {e}")))?;
        let version = gate::version_of(&String::from_utf8_lossy(&out.stdout));
        if !out.status.success() || version.is_empty() {
            return Err(bad(&path, "--version printed no version".into()));
        }
        binaries.insert(
            role,
            DistBinary {
                path,
                sha256,
                version,
            },
        );
    }
    if binaries.is_empty() {
        return Err(bad(
            dir,
            "holds no drover-master, drover-scheduler or drover-agent".into(),
        ));
    }
    Ok(Dist { binaries })
}

/// One binary as found on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// SHA-256, hex.
    pub sha256: String,
    /// What `--version` says.
    pub version: String,
}

/// What a scan found on one host, by role (`None`: not installed).
pub type HostScan = BTreeMap<Role, Option<Installed>>;

/// The command that prints `ROLE SHA VERSION` (or `ROLE -`) per role of the host.
fn scan_command(host: &FleetHost) -> String {
    let mut cmd = String::new();
    for role in &host.roles {
        let b = quote(&host.bin_path(*role));
        cmd.push_str(&format!(
            "if [ -f {b} ]; then echo {r} $(sha256sum < {b} | cut -d' ' -f1) $({b} --version 2>/dev/null | tail -n1); else echo {r} -; fi; ",
            r = role.binary()
        ));
    }
    cmd
}

/// Parses [`scan_command`]'s output.
pub fn parse_scan(out: &str) -> HostScan {
    let mut scan = HostScan::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        let (Some(bin), Some(sum)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(role) = Role::ALL.into_iter().find(|r| r.binary() == bin) else {
            continue;
        };
        if sum == "-" {
            scan.insert(role, None);
        } else {
            let version = words.last().unwrap_or("").to_string();
            scan.insert(
                role,
                Some(Installed {
                    sha256: sum.to_string(),
                    version,
                }),
            );
        }
    }
    scan
}

/// Scans hosts in parallel (at most `parallel` connections): each role's binary's
/// checksum and version. Per host, the scan or the error.
pub async fn scan(
    hosts: &[FleetHost],
    ssh: &SshOptions,
    parallel: usize,
) -> BTreeMap<String, Result<HostScan, String>> {
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let mut handles = Vec::new();
    for h in hosts {
        let (h, ssh, sem) = (h.clone(), ssh.clone(), sem.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let name = h.name.clone();
            let r = tokio::task::spawn_blocking(move || -> Result<HostScan, SshError> {
                let s = SshHost::connect(&h.conn, &ssh)?;
                Ok(parse_scan(&s.run(&scan_command(&h))?))
            })
            .await;
            let r = match r {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(format!("scan thread failed: {e}")),
            };
            (name, r)
        }));
    }
    let mut out = BTreeMap::new();
    for h in handles {
        if let Ok((name, r)) = h.await {
            out.insert(name, r);
        }
    }
    out
}

/// How to run an upgrade.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// Canary, batch, max unavailable.
    pub plan: PlanOptions,
    /// Drain agents through the master before their swap, re-activate after.
    pub drain: bool,
    /// How long a host may take to pass its gate.
    pub gate_timeout: Duration,
    /// How often the gates ask the master.
    pub poll: Duration,
    /// At most this many SSH connections at once.
    pub parallel: usize,
}

/// What happened to one binary on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Swapped, restarted, passed its gate.
    Upgraded,
    /// Already the dist's build.
    Unchanged,
    /// Failed; `rolled_back` says whether the previous binary was put back.
    Failed {
        /// Why.
        reason: String,
        /// Whether the previous binary runs again.
        rolled_back: bool,
    },
    /// Not started: the rollout halted first.
    NotStarted,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// The host.
    pub host: String,
    /// The binary.
    pub role: Role,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The version before.
    pub from_version: Option<String>,
    /// The version it runs now (as far as the rollout knows).
    pub version: Option<String>,
    /// Seconds the step took.
    pub seconds: f64,
}

/// The rollout's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether every step succeeded.
    pub ok: bool,
    /// Why it stopped early, if it did.
    pub halted: Option<String>,
    /// Seconds for the whole rollout.
    pub seconds: f64,
    /// The plan that ran.
    pub plan: Plan,
    /// One line per host and binary, in plan order.
    pub hosts: Vec<HostReport>,
}

/// Progress callbacks (the CLI draws bars with them).
pub trait Progress: Send + Sync {
    /// The rollout starts: `steps` host-binary pairs in `batches` batches.
    fn start(&self, steps: usize, batches: usize);
    /// Batch `index` (0-based) starts.
    fn batch(&self, index: usize, batch: &Batch);
    /// A host moved to another stage.
    fn stage(&self, host: &str, role: Role, stage: &str);
    /// A host's step ended.
    fn done(&self, host: &str, role: Role, outcome: &Outcome);
    /// The rollout ended.
    fn finish(&self, report: &Report);
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: usize, _: usize) {}
    fn batch(&self, _: usize, _: &Batch) {}
    fn stage(&self, _: &str, _: Role, _: &str) {}
    fn done(&self, _: &str, _: Role, _: &Outcome) {}
    fn finish(&self, _: &Report) {}
}

/// Everything a step needs, shared by the batch's tasks.
struct Ctx {
    master: MasterClient,
    token: Option<String>,
    ssh: SshOptions,
    opts: UpgradeOptions,
    dist: Dist,
    sem: Arc<Semaphore>,
    progress: Arc<dyn Progress>,
}

/// Scans the hosts and builds the plan; fails (changing nothing) when a host cannot be
/// scanned. Returns the plan and the scans.
pub async fn prepare(
    hosts: &[FleetHost],
    dist: &Dist,
    ssh: &SshOptions,
    opts: &UpgradeOptions,
) -> Result<(Plan, BTreeMap<String, HostScan>), FleetError> {
    let scans = scan(hosts, ssh, opts.parallel).await;
    let mut errors = Vec::new();
    let mut ok = BTreeMap::new();
    for h in hosts {
        match scans.get(&h.name) {
            Some(Ok(s)) => {
                ok.insert(h.name.clone(), s.clone());
            }
            Some(Err(e)) => errors.push(format!("  {}: {e}", h.name)),
            None => errors.push(format!("  {}: not scanned", h.name)),
        }
    }
    if !errors.is_empty() {
        return Err(FleetError::Scan(errors.join("\n")));
    }
    let installed: BTreeMap<(String, Role), Option<String>> = ok
        .iter()
        .flat_map(|(h, s)| {
            s.iter()
                .map(|(r, i)| ((h.clone(), *r), i.as_ref().map(|i| i.sha256.clone())))
        })
        .collect();
    let sums: BTreeMap<Role, String> = dist
        .binaries
        .iter()
        .map(|(r, b)| (*r, b.sha256.clone()))
        .collect();
    Ok((crate::plan::plan(hosts, &installed, &sums, &opts.plan), ok))
}

/// A rollout ready to run: the plan from [`prepare`] and everything its steps need.
pub struct Rollout<'a> {
    /// The selected hosts.
    pub hosts: &'a [FleetHost],
    /// The whole inventory's hosts: every agent among them counts towards
    /// `--max-unavailable`, not only the selected ones.
    pub all_hosts: &'a [FleetHost],
    /// What to do, batch by batch.
    pub plan: Plan,
    /// What the scan found on each selected host (the versions before).
    pub scans: &'a BTreeMap<String, HostScan>,
    /// The binaries to roll out.
    pub dist: &'a Dist,
    /// The master the gates ask.
    pub master: MasterClient,
    /// The bearer token for the schedulers' gates.
    pub token: Option<String>,
    /// How to reach the hosts.
    pub ssh: &'a SshOptions,
    /// How to run it.
    pub opts: &'a UpgradeOptions,
    /// Told each step's progress.
    pub progress: Arc<dyn Progress>,
}

impl Rollout<'_> {
    /// Runs the plan batch by batch. It halts after a batch with a failure (its failed
    /// hosts rolled back), and before a batch of agents that `--max-unavailable` does not
    /// allow or that cannot be checked against it because the master cannot be read.
    pub async fn run(self) -> Report {
        let started = Instant::now();
        let ctx = Arc::new(Ctx {
            master: self.master.clone(),
            token: self.token.clone(),
            ssh: self.ssh.clone(),
            opts: self.opts.clone(),
            dist: self.dist.clone(),
            sem: Arc::new(Semaphore::new(self.opts.parallel.max(1))),
            progress: self.progress.clone(),
        });
        let by_name: BTreeMap<String, FleetHost> = self
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.clone()))
            .collect();
        let all_agents: Vec<String> = self
            .all_hosts
            .iter()
            .filter(|h| h.roles.contains(&Role::Agent))
            .map(|h| h.node_name.clone())
            .collect();
        let plan = &self.plan;
        let steps: usize = plan.batches.iter().map(|b| b.steps.len()).sum();
        self.progress.start(steps, plan.batches.len());
        let mut reports: Vec<HostReport> = Vec::new();
        let mut halted: Option<String> = None;
        for (i, batch) in plan.batches.iter().enumerate() {
            if halted.is_some() {
                reports.extend(self.not_started(batch));
                continue;
            }
            self.progress.batch(i, batch);
            if let Some(why) = self.refusal(i, batch, &by_name, &all_agents).await {
                halted = Some(why);
                reports.extend(self.not_started(batch));
                continue;
            }
            let mut handles = Vec::new();
            for s in &batch.steps {
                let Some(h) = by_name.get(&s.host).cloned() else {
                    continue;
                };
                let (ctx, s) = (ctx.clone(), s.clone());
                let previous = self.version_before(&s.host, s.role);
                handles.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let outcome = run_step(&ctx, &h, &s, previous.as_deref()).await;
                    ctx.progress.done(&h.name, s.role, &outcome);
                    (s, outcome, t.elapsed().as_secs_f64())
                }));
            }
            let mut failed = Vec::new();
            for handle in handles {
                let (s, outcome, seconds) = match handle.await {
                    Ok(r) => r,
                    Err(e) => {
                        halted = Some(format!("a step panicked: {e}"));
                        continue;
                    }
                };
                let before = self.version_before(&s.host, s.role);
                let new = self.dist.binaries.get(&s.role).map(|b| b.version.clone());
                let version = match &outcome {
                    Outcome::Upgraded => new,
                    Outcome::Failed {
                        rolled_back: true, ..
                    } => before.clone(),
                    Outcome::Failed { .. } => None,
                    _ => before.clone(),
                };
                if let Outcome::Failed { reason, .. } = &outcome {
                    failed.push(format!("{} ({}): {reason}", s.host, s.role.binary()));
                }
                reports.push(HostReport {
                    host: s.host,
                    role: s.role,
                    outcome,
                    from_version: before,
                    version,
                    seconds,
                });
            }
            if !failed.is_empty() && halted.is_none() {
                halted = Some(format!(
                    "batch {} of {} failed, no further batch was started: {}",
                    i + 1,
                    plan.batches.len(),
                    failed.join("; ")
                ));
            }
        }
        for (host, role) in &plan.unchanged {
            let v = self.version_before(host, *role);
            reports.push(HostReport {
                host: host.clone(),
                role: *role,
                outcome: Outcome::Unchanged,
                from_version: v.clone(),
                version: v,
                seconds: 0.0,
            });
        }
        let report = Report {
            ok: halted.is_none(),
            halted,
            seconds: started.elapsed().as_secs_f64(),
            plan: self.plan,
            hosts: reports,
        };
        self.progress.finish(&report);
        report
    }

    /// The version the scan found for `role` on `host`.
    fn version_before(&self, host: &str, role: Role) -> Option<String> {
        self.scans
            .get(host)
            .and_then(|s| s.get(&role).cloned().flatten())
            .map(|i| i.version)
    }

    /// The report lines of a batch that was not started: each host as it was.
    fn not_started(&self, batch: &Batch) -> Vec<HostReport> {
        batch
            .steps
            .iter()
            .map(|s| {
                let v = self.version_before(&s.host, s.role);
                HostReport {
                    host: s.host.clone(),
                    role: s.role,
                    outcome: Outcome::NotStarted,
                    from_version: v.clone(),
                    version: v,
                    seconds: 0.0,
                }
            })
            .collect()
    }

    /// Why batch `index` (0-based) must not start: with the agents already down (as the
    /// master lists its nodes now) it would exceed `--max-unavailable`, or the master
    /// cannot be read to tell. `None` when it may start, takes no agent down, or no limit
    /// is set.
    async fn refusal(
        &self,
        index: usize,
        batch: &Batch,
        by_name: &BTreeMap<String, FleetHost>,
        all_agents: &[String],
    ) -> Option<String> {
        if !matches!(batch.phase, Phase::Canary | Phase::Agents) {
            return None;
        }
        let max = self.opts.plan.max_unavailable?.of(all_agents.len());
        let in_batch: Vec<String> = batch
            .steps
            .iter()
            .filter_map(|s| by_name.get(&s.host).map(|h| h.node_name.clone()))
            .collect();
        let nodes = self.master.nodes().await.map_err(|e| with_causes(&e));
        gate::admit(nodes.as_deref(), all_agents, &in_batch, max).halt_reason(
            index + 1,
            in_batch.len(),
            max,
            self.master.http().base(),
        )
    }
}

/// An error with its causes (`cannot reach …: … : Connection refused (os error 111)`),
/// leaving out a cause its parent's message already shows.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// One host, one binary: prepare at the master, swap over SSH, gate, and roll back on
/// failure (then wait until the previous build, `previous`, answers again).
async fn run_step(ctx: &Arc<Ctx>, h: &FleetHost, s: &Step, previous: Option<&str>) -> Outcome {
    let Some(bin) = ctx.dist.binaries.get(&s.role).cloned() else {
        return Outcome::Failed {
            reason: "no binary in the dist".into(),
            rolled_back: false,
        };
    };
    // Before: what the gate compares with.
    let mut tasks_before: Vec<Task> = Vec::new();
    let mut agents_before: Vec<String> = Vec::new();
    match s.role {
        Role::Agent => {
            ctx.progress.stage(&h.name, s.role, "reading tasks");
            let filter = TaskFilter {
                node: Some(h.node_name.clone()),
                active: Some(true),
                ..TaskFilter::default()
            };
            match ctx.master.tasks(&filter).await {
                Ok(t) => tasks_before = t,
                Err(e) => {
                    return Outcome::Failed {
                        reason: format!("cannot list the node's tasks at the master: {e}"),
                        rolled_back: false,
                    };
                }
            }
            if ctx.opts.drain && s.from.is_some() {
                ctx.progress.stage(&h.name, s.role, "draining");
                if let Err(e) = ctx.master.drain(&h.node_name).await {
                    return Outcome::Failed {
                        reason: format!("cannot drain the node: {e}"),
                        rolled_back: false,
                    };
                }
            }
        }
        Role::Master => {
            let nodes = ctx.master.nodes().await.map_err(|e| with_causes(&e));
            match gate::agents_to_get_back(nodes.as_deref(), s.from.is_none()) {
                Ok(agents) => agents_before = agents,
                Err(reason) => {
                    return Outcome::Failed {
                        reason,
                        rolled_back: false,
                    };
                }
            }
        }
        Role::Scheduler => {}
    }
    ctx.progress.stage(&h.name, s.role, "uploading");
    let swap = {
        let (h2, s2, path, sha, ssh, sem) = (
            h.clone(),
            s.clone(),
            bin.path.clone(),
            bin.sha256.clone(),
            ctx.ssh.clone(),
            ctx.sem.clone(),
        );
        let _permit = sem.acquire_owned().await;
        let first = if s2.from.is_none() {
            Start::First
        } else {
            Start::Again
        };
        tokio::task::spawn_blocking(move || {
            swap_and_restart(&h2, s2.role, first, &path, &sha, &ssh)
        })
        .await
    };
    let swapped = match swap {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("ssh thread failed: {e}")),
    };
    let result = match swapped {
        Err(e) => Err(e),
        Ok(()) => {
            ctx.progress.stage(&h.name, s.role, "waiting for the gate");
            wait_gate(ctx, h, s.role, &bin.version, &tasks_before, &agents_before).await
        }
    };
    match result {
        Ok(()) => {
            if s.role == Role::Agent
                && ctx.opts.drain
                && s.from.is_some()
                && let Err(e) = ctx.master.activate(&h.node_name).await
            {
                return Outcome::Failed {
                    reason: format!("upgraded, but cannot re-activate the node: {e}"),
                    rolled_back: false,
                };
            }
            Outcome::Upgraded
        }
        Err(reason) => {
            if s.from.is_none() {
                return Outcome::Failed {
                    reason: format!("{reason} (nothing to roll back to: it was a first install)"),
                    rolled_back: false,
                };
            }
            ctx.progress.stage(&h.name, s.role, "rolling back");
            let (h2, role, ssh) = (h.clone(), s.role, ctx.ssh.clone());
            let rb = tokio::task::spawn_blocking(move || roll_back(&h2, role, &ssh)).await;
            match rb {
                Ok(Ok(())) => {
                    // Back on the previous build: registered (agents) or answering
                    // (masters, schedulers) with its version. Tasks are not checked: a
                    // host that stayed down past the heartbeat timeout lost them.
                    ctx.progress
                        .stage(&h.name, s.role, "waiting for the previous build");
                    let back = match previous {
                        Some(v) => wait_gate(ctx, h, s.role, v, &[], &[]).await,
                        None => Ok(()),
                    };
                    match back {
                        Ok(()) => Outcome::Failed {
                            reason,
                            rolled_back: true,
                        },
                        Err(e) => Outcome::Failed {
                            reason: format!(
                                "{reason}; the previous binary was put back but is not healthy: {e}"
                            ),
                            rolled_back: false,
                        },
                    }
                }
                Ok(Err(e)) => Outcome::Failed {
                    reason: format!("{reason}; the roll-back failed too: {e}"),
                    rolled_back: false,
                },
                Err(e) => Outcome::Failed {
                    reason: format!("{reason}; the roll-back thread failed: {e}"),
                    rolled_back: false,
                },
            }
        }
    }
}

/// Polls the master until the host passes its gate, fails it, or the timeout passes.
async fn wait_gate(
    ctx: &Ctx,
    h: &FleetHost,
    role: Role,
    version: &str,
    tasks_before: &[Task],
    agents_before: &[String],
) -> Result<(), String> {
    let deadline = Instant::now() + ctx.opts.gate_timeout;
    let mut last: String;
    loop {
        let verdict = match role {
            Role::Agent => {
                // A node the master does not know is one not registered yet; any other
                // failed read says nothing about the node.
                let node = match ctx.master.node(&h.node_name).await {
                    Ok(node) => Ok(Some(node)),
                    Err(e) if e.status() == Some(404) => Ok(None),
                    Err(e) => Err(with_causes(&e)),
                };
                let filter = TaskFilter {
                    node: Some(h.node_name.clone()),
                    ..TaskFilter::default()
                };
                match (ctx.master.tasks(&filter).await, node) {
                    (Err(e), _) => Gate::Waiting(format!("cannot list tasks: {e}")),
                    (Ok(_), Err(e)) => {
                        Gate::Waiting(format!("cannot read the node at the master: {e}"))
                    }
                    (Ok(now), Ok(node)) => {
                        gate::agent_gate(node.as_ref(), tasks_before, &now, version)
                    }
                }
            }
            Role::Master => {
                let health = ctx.master.http().health().await;
                let unhealthy = gate::health_problem(health.as_ref().map_err(|e| with_causes(e)));
                let answered = ctx.master.version().await.ok().map(|v| v.version);
                let nodes = ctx.master.nodes().await.map_err(|e| with_causes(&e));
                gate::master_gate(
                    answered.as_deref(),
                    unhealthy.as_deref(),
                    version,
                    agents_before,
                    nodes.as_deref(),
                )
            }
            Role::Scheduler => match SchedulerClient::new(&h.scheduler_url, ctx.token.clone()) {
                Ok(c) => match c.version().await {
                    Ok(v) if v.version == version => {
                        let health = c.http().health().await;
                        match gate::health_problem(health.as_ref().map_err(|e| with_causes(e))) {
                            Some(why) => {
                                Gate::Waiting(format!("the scheduler is not healthy: {why}"))
                            }
                            None => Gate::Passed,
                        }
                    }
                    Ok(v) => {
                        Gate::Waiting(format!("the scheduler answers with version {}", v.version))
                    }
                    Err(e) => Gate::Waiting(format!("the scheduler does not answer: {e}")),
                },
                Err(e) => Gate::Failed(format!("bad scheduler URL {}: {e}", h.scheduler_url)),
            },
        };
        match verdict {
            Gate::Passed => return Ok(()),
            Gate::Failed(why) => return Err(why),
            Gate::Waiting(why) => last = why,
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "did not pass its health gate within {}s: {last}",
                ctx.opts.gate_timeout.as_secs()
            ));
        }
        tokio::time::sleep(ctx.opts.poll).await;
    }
}

/// Uploads the binary to a temporary path, verifies it there, keeps the running one as
/// `.previous`, swaps atomically (a rename in the same folder), runs `install` with the
/// host's arguments and restarts the unit.
fn swap_and_restart(
    h: &FleetHost,
    role: Role,
    start: Start,
    local: &Path,
    sha: &str,
    ssh: &SshOptions,
) -> Result<(), SshError> {
    let s = SshHost::connect(&h.conn, ssh)?;
    // Unique per host, run and binary: hosts may share /tmp (containers, test hosts), and
    // two rollouts must not remove each other's uploads.
    let tmp = format!(
        "/tmp/.drover-fleet-{}-{}-{}-{}",
        role.binary(),
        h.name.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
            "_"
        ),
        std::process::id(),
        &sha[..12]
    );
    s.upload(local, &tmp)?;
    let bin = h.bin_path(role);
    let (qb, qt) = (quote(&bin), quote(&tmp));
    let dir = quote(&h.bin_dir);
    let swap = format!(
        "set -e; trap 'rm -f {qt} {qb}.fleet-new' EXIT; \
         echo '{sha}  {tmp}' | sha256sum -c --status - || {{ echo 'checksum mismatch after upload' >&2; exit 1; }}; \
         mkdir -p {dir}; install -m 0755 {qt} {qb}.fleet-new; \
         if [ -f {qb} ]; then cp -p {qb} {qb}.previous; fi; \
         mv -f {qb}.fleet-new {qb}"
    );
    s.run_as(&format!("swap {bin}"), &swap)?;
    install_and_restart(&s, h, role, start)
}

/// Whether a binary is started on its host for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A first install: a master then makes its cluster (`--init`).
    First,
    /// An upgrade or a roll-back.
    Again,
}

/// The restart command for a master's very first start: the same command with a systemd
/// drop-in under /run that sets `DROVER_MASTER_INIT=true`, removed as soon as the unit
/// has started. The master refuses an empty store without it, and it must never stay:
/// a later restart on a lost store has to refuse, not start an empty cluster. (The
/// playbooks' master role does the same.)
fn first_master_start(restart: &str) -> String {
    let dir = "/run/systemd/system/drover-master.service.d";
    format!(
        "mkdir -p {dir} && printf '[Service]\\nEnvironment=DROVER_MASTER_INIT=true\\n' > {dir}/init.conf \
         && systemctl daemon-reload && {{ {restart}; }}; rc=$?; rm -f {dir}/init.conf; \
         systemctl daemon-reload; exit $rc"
    )
}

fn install_and_restart(
    s: &SshHost,
    h: &FleetHost,
    role: Role,
    start: Start,
) -> Result<(), SshError> {
    let bin = h.bin_path(role);
    let mut install = vec![quote(&bin), "install".to_string()];
    install.extend(h.install(role).iter().map(|a| quote(a)));
    s.run_as(&format!("{bin} install"), &install.join(" "))?;
    let restart = match (role, start) {
        (Role::Master, Start::First) => first_master_start(&h.restart(role)),
        _ => h.restart(role),
    };
    s.run_as(&format!("restart {}", role.binary()), &restart)?;
    Ok(())
}

/// Puts `.previous` back (atomically), re-renders with it and restarts.
fn roll_back(h: &FleetHost, role: Role, ssh: &SshOptions) -> Result<(), SshError> {
    let s = SshHost::connect(&h.conn, ssh)?;
    let qb = quote(&h.bin_path(role));
    s.run_as(
        &format!("put {qb}.previous back"),
        &format!(
            "set -e; test -f {qb}.previous || {{ echo 'no previous binary' >&2; exit 1; }}; \
         cp -p {qb}.previous {qb}.fleet-rb; mv -f {qb}.fleet-rb {qb}"
        ),
    )?;
    install_and_restart(&s, h, role, Start::Again)
}

#[cfg(test)]
mod first_start_tests {
    use super::*;

    #[test]
    fn a_first_master_start_sets_init_for_that_start_only() {
        let cmd = first_master_start("systemctl restart drover-master");
        assert!(cmd.contains("Environment=DROVER_MASTER_INIT=true"), "{cmd}");
        let (before, after) = cmd.split_once("systemctl restart drover-master").unwrap();
        assert!(before.contains("init.conf"), "{cmd}");
        assert!(
            after.contains("rm -f") && after.contains("exit $rc"),
            "{cmd}"
        );
        // The drop-in is a valid unit file once printf has run.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf '[Service]\\nEnvironment=DROVER_MASTER_INIT=true\\n'")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[Service]\nEnvironment=DROVER_MASTER_INIT=true\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_output_parses() {
        let s = parse_scan("drover-agent abc drover-agent 0.1.0\ndrover-master -\njunk\n");
        assert_eq!(
            s.get(&Role::Agent),
            Some(&Some(Installed {
                sha256: "abc".into(),
                version: "0.1.0".into()
            }))
        );
        assert_eq!(s.get(&Role::Master), Some(&None));
        assert_eq!(s.len(), 2);
    }
}
