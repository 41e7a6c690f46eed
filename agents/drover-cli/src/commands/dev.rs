//! `drover dev`: a whole cluster on this machine in one command.
//!
//! Starts a master, N agents and a scheduler as child processes (the sibling binaries of
//! the running `drover`, else from `PATH`), each listening on `127.0.0.1:0` and announcing
//! its URL on its first stdout line. Every agent gets its own work dir, port range and
//! node name, so they behave as separate nodes. Unless `--empty`, the examples are applied
//! through the same code as `drover apply` (only those that do not exist yet, so a second
//! run resumes instead of re-creating), then it waits until every node is registered and
//! every app is ready, prints the URLs, the exports and a summary, and runs until SIGINT
//! or SIGTERM. Shutdown stops the scheduler (so nothing is relaunched), kills every task
//! through the master, stops the agents, sweeps the sandboxes for leftover shims and
//! tasks, and stops the master.
//!
//! Layout of the data dir: `master/`, `scheduler/`, `agent-N/` (work dirs), `logs/`
//! (one log per child), `apply/` (the examples still missing, handed to apply).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use drover_api::client::{MasterClient, SchedulerClient};
use drover_api::node::NodeState;
use drover_api::task::TaskFilter;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{ApplyArgs, DevArgs, GlobalArgs};
use crate::context::Context;

/// How long a child may take to announce its address.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for nodes to register and apps to become ready before printing
/// the summary anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long killed tasks get to be reported terminal.
const TASK_KILL_TIMEOUT: Duration = Duration::from_secs(20);
/// Host ports handed to each agent's tasks; agent i gets `base + i*PORTS_PER_AGENT ..`.
const PORTS_PER_AGENT: u16 = 100;

/// One child process of `drover dev`.
struct Proc {
    name: String,
    child: Child,
    url: String,
}

/// Everything `drover dev` started, for shutdown.
#[derive(Default)]
struct Procs {
    master: Option<Proc>,
    scheduler: Option<Proc>,
    agents: Vec<Proc>,
    agent_dirs: Vec<PathBuf>,
}

/// Runs `drover dev` until a signal, then stops everything it started.
pub async fn run(global: &GlobalArgs, args: &DevArgs) -> anyhow::Result<()> {
    if args.agents == 0 {
        bail!("--agents must be at least 1");
    }
    // Install the handlers first, so that a Ctrl-C during startup still cleans up.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    if nix::unistd::geteuid().is_root() {
        // The agents (root) run tasks as their task user, who must pass through here to
        // its sandbox (mode 0711: through, not list). The agents warn if a folder above
        // (root's home, say) keeps it out.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot open {} to the task user", data_dir.display()))?;
    }
    // Held until `drover dev` exits (the kernel drops it on any exit, SIGKILL included).
    let _lock = lock_data_dir(&data_dir)?;
    let bins = Binaries::find()?;
    let mut procs = Procs::default();
    let outcome = tokio::select! {
        r = start_and_serve(&mut procs, global, args, &data_dir, &bins) => r,
        _ = sigint.recv() => Ok(()),
        _ = sigterm.recv() => Ok(()),
    };
    eprintln!("\nstopping the cluster...");
    shutdown(&mut procs).await;
    eprintln!("stopped; state kept in {}", data_dir.display());
    outcome
}

/// Takes `DATA_DIR/dev.lock`: a second `drover dev` on the same folder would share its
/// stores and logs with the first (and fail half-started), so it is refused at once.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("dev.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `drover dev` runs on {}; stop it first, or give this one its own --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The server binaries and the directory holding `hello`, if any.
struct Binaries {
    /// The directory of the running `drover`, for the `PATH` export dev prints.
    cli_dir: Option<PathBuf>,
    master: PathBuf,
    agent: PathBuf,
    scheduler: PathBuf,
    /// Directories to put first on the agents' `PATH` (which they pass to tasks), so the
    /// examples find `hello` by name.
    task_path: Vec<PathBuf>,
}

impl Binaries {
    /// Looks next to the running `drover` first (a build's target dir, an unpacked
    /// release), then on `PATH`.
    fn find() -> anyhow::Result<Binaries> {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf));
        let find = |name: &str| -> Option<PathBuf> {
            if let Some(d) = &exe_dir {
                let p = d.join(name);
                if p.is_file() {
                    return Some(p);
                }
            }
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        };
        let names = ["drover-master", "drover-agent", "drover-scheduler"];
        let found: Vec<Option<PathBuf>> = names.iter().map(|n| find(n)).collect();
        let missing: Vec<&str> = names
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            bail!(
                "cannot find {} next to {} or on PATH (build them with `cargo build --workspace --bins`)",
                missing.join(", "),
                exe_dir
                    .as_deref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "drover".into())
            );
        }
        let mut it = found.into_iter().flatten();
        let (Some(master), Some(agent), Some(scheduler)) = (it.next(), it.next(), it.next()) else {
            bail!("cannot find the server binaries");
        };
        let mut task_path = Vec::new();
        if let Some(hello) = find("hello")
            && let Some(dir) = hello.parent()
        {
            task_path.push(dir.to_path_buf());
        }
        Ok(Binaries {
            cli_dir: exe_dir,
            master,
            agent,
            scheduler,
            task_path,
        })
    }
}

/// `$XDG_DATA_HOME/drover/dev`, or `~/.local/share/drover/dev`.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("drover/dev"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("neither XDG_DATA_HOME nor HOME is set: give --data-dir"))?;
    Ok(PathBuf::from(home).join(".local/share/drover/dev"))
}

/// Starts one server and waits for its `listening on URL` first line; its stderr and
/// the rest of its stdout go to `log`.
async fn spawn_server(
    name: &str,
    program: &Path,
    args: &[String],
    envs: &[(String, String)],
    log: &Path,
) -> anyhow::Result<Proc> {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        // Its own process group: the terminal's Ctrl-C reaches only `drover dev`, which
        // then stops the children in the right order (tasks first, master last).
        .process_group(0)
        .kill_on_drop(true);
    // A `drover dev` killed outright (SIGKILL, a closed terminal's session) cannot stop
    // its servers; the kernel sends them SIGTERM instead. Tasks outlive their agents
    // by design and are adopted by the next run.
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // prctl(2), which is async-signal-safe; it allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout pipe for {name}"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = match tokio::time::timeout(ANNOUNCE_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        _ => {
            let _ = child.start_kill();
            bail!(
                "{name} did not announce its address within {}s; see {}",
                ANNOUNCE_TIMEOUT.as_secs(),
                log.display()
            );
        }
    };
    let url = first
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow!("unexpected first line from {name}: {first:?}"))?
        .trim()
        .to_string();
    // Keep draining stdout into the log, so the child never blocks on a full pipe.
    let log_path = log.to_path_buf();
    tokio::spawn(async move {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .await
            .ok();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(f) = file.as_mut() {
                let _ = f.write_all(format!("{line}\n").as_bytes()).await;
            }
        }
    });
    Ok(Proc {
        name: name.to_string(),
        child,
        url,
    })
}

/// Starts the cluster, applies the examples, waits until ready, prints the summary and
/// then watches the children until one of them dies (an error) — the caller's signal
/// handlers end it otherwise.
async fn start_and_serve(
    procs: &mut Procs,
    global: &GlobalArgs,
    args: &DevArgs,
    data_dir: &Path,
    bins: &Binaries,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let logs = data_dir.join("logs");
    let s = |p: &Path| p.display().to_string();
    let mut master_args = vec![
        "--listen".to_string(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        s(&data_dir.join("master")),
    ];
    // The first run of this data dir makes a new cluster; later runs keep it, and a
    // master whose store went missing since refuses to start rather than begin empty.
    if !data_dir.join("master").join("master.redb").exists() {
        master_args.push("--init".into());
    }
    let master = spawn_server(
        "drover-master",
        &bins.master,
        &master_args,
        &[],
        &logs.join("master.log"),
    )
    .await?;
    let master_url = master.url.clone();
    procs.master = Some(master);

    // Agents pass their PATH on to tasks: put hello's directory first.
    let mut path: Vec<PathBuf> = bins.task_path.clone();
    if let Some(p) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&p));
    }
    let path = std::env::join_paths(path).context("cannot build the agents' PATH")?;
    let path = path.to_string_lossy().into_owned();
    for i in 0..args.agents {
        let lo = u32::from(args.port_base) + i as u32 * u32::from(PORTS_PER_AGENT);
        let hi = lo + u32::from(PORTS_PER_AGENT) - 1;
        if hi >= 32768 {
            bail!(
                "too many agents for --port-base {}: ports must stay below 32768",
                args.port_base
            );
        }
        let dir = data_dir.join(format!("agent-{i}"));
        let agent = spawn_server(
            &format!("dev-agent-{i}"),
            &bins.agent,
            &[
                "--master".into(),
                master_url.clone(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--name".into(),
                format!("dev-agent-{i}"),
                "--work-dir".into(),
                s(&dir),
                "--ports".into(),
                format!("{lo}-{hi}"),
                // rack and zone: what the examples' constraints look at.
                "--attributes".into(),
                format!("rack=r{},zone=z", i % 2),
            ],
            &[("PATH".into(), path.clone())],
            &logs.join(format!("agent-{i}.log")),
        )
        .await?;
        procs.agents.push(agent);
        procs.agent_dirs.push(dir);
    }
    let scheduler = spawn_server(
        "drover-scheduler",
        &bins.scheduler,
        &[
            "--master".into(),
            master_url.clone(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            s(&data_dir.join("scheduler")),
        ],
        &[],
        &logs.join("scheduler.log"),
    )
    .await?;
    let scheduler_url = scheduler.url.clone();
    procs.scheduler = Some(scheduler);

    let mut g = global.clone();
    g.master = master_url.clone();
    g.scheduler = scheduler_url.clone();
    g.json = false;
    let ctx = Context::from_globals(&g)?;
    let sched = ctx.scheduler()?;

    if !args.empty {
        apply_examples(&ctx, &sched, args, data_dir).await?;
    }
    wait_ready(ctx.master(), &sched, args.agents, procs, &logs).await?;
    let ready_in = started.elapsed();

    println!();
    println!("Drover dev cluster ready in {:.1}s", ready_in.as_secs_f64());
    println!("  master API     {master_url}");
    println!("  scheduler API  {scheduler_url}  (Marathon /v2, Chronos /scheduler)");
    println!("  data dir       {}", data_dir.display());
    println!("  logs           {}", logs.display());
    println!();
    print_summary(ctx.master(), &sched).await;
    println!();
    println!("For the CLI in another shell:");
    // The CLI sits next to the servers (a build's target dir), rarely on PATH already.
    if let Some(dir) = &bins.cli_dir {
        println!("{}", path_export(dir));
    }
    println!("export DROVER_MASTER={master_url} DROVER_SCHEDULER={scheduler_url}");
    println!();
    println!("Ctrl-C stops everything (tasks included); running it again resumes.");

    // Watch the children: a dead one means the cluster is broken.
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        check_children(procs, &logs)?;
    }
}

/// `export PATH="DIR:$PATH"`, with DIR escaped for the double quotes.
fn path_export(dir: &Path) -> String {
    let mut quoted = String::new();
    for c in dir.to_string_lossy().chars() {
        if matches!(c, '"' | '$' | '`' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    format!("export PATH=\"{quoted}:$PATH\"")
}

/// `Err` naming the first child that has exited: the cluster is broken without it.
fn check_children(procs: &mut Procs, logs: &Path) -> anyhow::Result<()> {
    let all = procs
        .master
        .iter_mut()
        .chain(procs.scheduler.iter_mut())
        .chain(procs.agents.iter_mut());
    for p in all {
        if let Ok(Some(status)) = p.child.try_wait() {
            bail!(
                "{} exited unexpectedly ({status}); see {}",
                p.name,
                logs.display()
            );
        }
    }
    Ok(())
}

/// Applies the example files whose job or app does not exist yet, through
/// `drover apply`'s code. Only the missing ones: a second run resumes the stored apps
/// and jobs untouched (no new app version, no job update).
async fn apply_examples(
    ctx: &Context,
    sched: &SchedulerClient,
    args: &DevArgs,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let dir = match &args.examples {
        Some(d) => d.clone(),
        None => {
            let d = PathBuf::from("examples");
            if !d.is_dir() {
                eprintln!(
                    "note: no examples/ here and no --examples DIR: starting an empty cluster"
                );
                return Ok(());
            }
            d
        }
    };
    let files = super::apply::json_files(&dir)?;
    let jobs: std::collections::HashSet<String> = ctx
        .call_scheduler(sched.jobs())
        .await?
        .into_iter()
        .map(|j| j.job.name)
        .collect();
    let apps: std::collections::HashSet<String> = ctx
        .call_scheduler(sched.apps())
        .await?
        .into_iter()
        .map(|a| a.app.id.to_string())
        .collect();
    let staging = data_dir.join("apply");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let (mut missing, mut present) = (0usize, 0usize);
    for (n, f) in files.iter().enumerate() {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let exists = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| match super::apply::classify(&v) {
                Some(super::apply::Kind::Job) => {
                    let name = v.get("name")?.as_str()?;
                    Some(jobs.contains(name))
                }
                Some(super::apply::Kind::App) => {
                    let id = v.get("id")?.as_str()?;
                    let id = format!("/{}", id.trim_matches('/'));
                    Some(apps.contains(&id))
                }
                None => None,
            })
            .unwrap_or(false);
        if exists {
            present += 1;
            continue;
        }
        missing += 1;
        let name = f
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Numbered so that names from different subfolders do not collide.
        let dest = staging.join(format!("{n:03}-{name}"));
        std::fs::write(&dest, text).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    if present > 0 {
        eprintln!(
            "resuming: {present} example(s) from {} already exist, left as they are",
            dir.display()
        );
    }
    if missing > 0 {
        eprintln!("applying {missing} example(s) from {}:", dir.display());
        if let Err(e) = super::apply::run(ctx, &ApplyArgs { file: staging }).await {
            // The cluster is still usable: say what failed and go on.
            eprintln!("warning: applying the examples: {e:#}");
        }
    }
    Ok(())
}

/// Waits (with a progress line) until every agent is registered and every app has its
/// instances ready or cannot be placed on any node, or [`READY_TIMEOUT`] passes.
async fn wait_ready(
    master: &MasterClient,
    sched: &SchedulerClient,
    agents: usize,
    procs: &mut Procs,
    logs: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    // Redrawn in place on a terminal; one line per change elsewhere (a log file).
    let redraw = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        check_children(procs, logs)?;
        let nodes = master
            .nodes()
            .await
            .map(|ns| {
                ns.iter()
                    .filter(|n| n.name.starts_with("dev-agent-") && n.state == NodeState::Ready)
                    .count()
            })
            .unwrap_or(0);
        let (mut apps_ready, mut apps_total) = (0usize, 0usize);
        // Apps whose missing instances no node can take (a container example on a machine
        // without a Docker Engine, say): not waited for, and named at the end.
        let mut unplaceable = Vec::new();
        if let Ok(apps) = sched.apps().await {
            for a in &apps {
                apps_total += 1;
                let status = a.status.as_ref();
                let ready = status.map(|s| s.tasks.ready).unwrap_or(0);
                if ready >= a.app.instances {
                    apps_ready += 1;
                } else if let Some(u) = status.and_then(|s| s.unplaceable.as_ref())
                    && ready + u.count >= a.app.instances
                {
                    unplaceable.push(format!("{}: {}", a.app.id, u.message));
                }
            }
        }
        let mut line = format!(
            "waiting: {nodes}/{agents} nodes registered, {apps_ready}/{apps_total} apps ready"
        );
        if !unplaceable.is_empty() {
            line.push_str(&format!(", {} cannot be placed", unplaceable.len()));
        }
        if line != last {
            if redraw {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
        if nodes >= agents && apps_ready + unplaceable.len() == apps_total {
            if redraw {
                eprintln!();
            }
            for u in &unplaceable {
                eprintln!("note: {u}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            eprintln!(
                "\nwarning: not everything is ready after {}s; see `drover apps` and the logs",
                READY_TIMEOUT.as_secs()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the nodes, apps and jobs.
async fn print_summary(master: &MasterClient, sched: &SchedulerClient) {
    if let Ok(nodes) = master.nodes().await {
        println!(
            "{:<14} {:<10} {:<24} ADDRESS",
            "NODE", "STATE", "ATTRIBUTES"
        );
        for n in nodes {
            let attrs: Vec<String> = n
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "{:<14} {:<10} {:<24} {}",
                n.name,
                format!("{:?}", n.state).to_lowercase(),
                attrs.join(","),
                n.address
            );
        }
    }
    if let Ok(apps) = sched.apps().await
        && !apps.is_empty()
    {
        println!();
        println!("{:<20} {:>9}  CMD", "APP", "READY");
        for a in apps {
            let ready = a.status.as_ref().map(|s| s.tasks.ready).unwrap_or(0);
            let cmd = a.app.cmd.clone().unwrap_or_default();
            let cmd: String = cmd.chars().take(50).collect();
            println!(
                "{:<20} {:>9}  {cmd}",
                a.app.id.to_string(),
                format!("{ready}/{}", a.app.instances)
            );
        }
    }
    if let Ok(jobs) = sched.jobs().await
        && !jobs.is_empty()
    {
        println!();
        println!("{:<24} {:<18} SCHEDULE", "JOB", "STATE");
        for j in jobs {
            let when = match &j.job.schedule {
                Some(s) => s.clone(),
                None => format!("after {}", j.job.parents.join(", ")),
            };
            println!(
                "{:<24} {:<18} {when}",
                j.job.name,
                format!("{:?}", j.status.state).to_lowercase()
            );
        }
    }
}

/// Stops everything: the scheduler first (so nothing is relaunched), every task through
/// the master, the agents, leftover shims and tasks, the master last.
async fn shutdown(procs: &mut Procs) {
    if let Some(p) = procs.scheduler.as_mut() {
        stop(p).await;
    }
    if let Some(m) = &procs.master
        && let Ok(client) = MasterClient::new(&m.url, None)
    {
        kill_all_tasks(&client).await;
    }
    for a in procs.agents.iter() {
        // SIGTERM all first, then wait, so the agents stop in parallel.
        signal_child(&a.child, Signal::SIGTERM);
    }
    for a in procs.agents.iter_mut() {
        stop(a).await;
    }
    // The shims and tasks run in their own sessions and outlive an agent by design:
    // whatever the kill above did not end is ended here from the sandboxes' records.
    for dir in &procs.agent_dirs {
        sweep_sandboxes(dir);
    }
    if let Some(p) = procs.master.as_mut() {
        stop(p).await;
    }
}

/// Kills every active task through the master and waits until they are terminal.
async fn kill_all_tasks(client: &MasterClient) {
    let active = TaskFilter {
        active: Some(true),
        ..TaskFilter::default()
    };
    let Ok(Ok(tasks)) = tokio::time::timeout(Duration::from_secs(5), client.tasks(&active)).await
    else {
        return;
    };
    if tasks.is_empty() {
        return;
    }
    eprintln!("killing {} task(s)...", tasks.len());
    for t in &tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.kill(&t.spec.id)).await;
    }
    let deadline = Instant::now() + TASK_KILL_TIMEOUT;
    while Instant::now() < deadline {
        match client.tasks(&active).await {
            Ok(ts) if ts.is_empty() => return,
            Err(_) => return,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Sends `sig` to a child not reaped yet (a reaped one has no pid, so a recycled pid is
/// never hit), quietly: it may have exited meanwhile.
fn signal_child(child: &Child, sig: Signal) {
    if let Some(pid) = child.id().and_then(pid_of) {
        let _ = kill(pid, sig);
    }
}

/// `pid` for kill(2), unless it is 0 or 1 or does not fit: kill(2) reads 0 as "my own
/// process group", and a record under a sandbox is never init.
fn pid_of(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .map(Pid::from_raw)
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps the child.
async fn stop(p: &mut Proc) {
    if let Ok(Some(_)) = p.child.try_wait() {
        return;
    }
    signal_child(&p.child, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, p.child.wait())
        .await
        .is_err()
    {
        eprintln!(
            "{} did not stop within {}s: killing it",
            p.name,
            STOP_GRACE.as_secs()
        );
        let _ = p.child.kill().await;
    }
}

/// Kills the shims and task process groups still alive under an agent's work dir,
/// checking each pid's start time so a recycled pid is never hit.
fn sweep_sandboxes(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir.join("tasks")) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        // pid.json: {"process": {"pid", "start_time"}, ...}; the pid is also the group.
        if let Some((pid, start)) = read_record(&dir.join("pid.json"), Some("process"))
            && alive_with_start(pid, start)
            && let Some(pid) = pid_of(pid)
        {
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = kill(pid, Signal::SIGKILL);
        }
        // shim.json: {"pid", "start_time"}.
        if let Some((pid, start)) = read_record(&dir.join("shim.json"), None)
            && alive_with_start(pid, start)
            && let Some(pid) = pid_of(pid)
        {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// The (pid, start time) of a sandbox record, under `key` if given.
fn read_record(path: &Path, key: Option<&str>) -> Option<(u32, u64)> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let rec = match key {
        Some(k) => v.get(k)?,
        None => &v,
    };
    let pid = u32::try_from(rec.get("pid")?.as_u64()?).ok()?;
    Some((pid, rec.get("start_time")?.as_u64()?))
}

/// Whether `pid` is a live (non-zombie) process started at `start` (field 22 of stat).
fn alive_with_start(pid: u32, start: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is index 19.
    fields.first().is_some_and(|s| *s != "Z")
        && fields.get(19).and_then(|s| s.parse::<u64>().ok()) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_export_puts_the_directory_first() {
        assert_eq!(
            path_export(Path::new("/src/drover/target/debug")),
            r#"export PATH="/src/drover/target/debug:$PATH""#
        );
    }

    #[test]
    fn path_export_escapes_what_double_quotes_expand() {
        assert_eq!(
            path_export(Path::new(r#"/a b/$x/`y`/"z"/\w"#)),
            r#"export PATH="/a b/\$x/\`y\`/\"z\"/\\w:$PATH""#
        );
    }

    #[test]
    fn pid_of_refuses_what_kill_would_read_as_a_group_or_init() {
        assert_eq!(pid_of(0), None);
        assert_eq!(pid_of(1), None);
        assert_eq!(pid_of(u32::MAX), None);
        assert_eq!(pid_of(4242), Some(Pid::from_raw(4242)));
    }
}
