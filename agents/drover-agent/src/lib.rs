//! `drover-agent`: one per host, like the Mesos agent or Nomad's client. It tells the
//! master what the host has, runs the tasks the master assigns as supervised processes,
//! checks their health, keeps their logs, and survives its own restart without killing
//! them.
//!
//! # Layout
//!
//! - [`cli`]: flags (also from the environment and a `--config` file) and their defaults.
//! - [`install`]: `install` / `uninstall`: the config file and systemd unit from templates.
//! - [`host`]: host facts with sysinfo and statvfs; reserved and offered resources.
//! - [`master`]: register, heartbeat and the assignments long poll.
//! - [`cluster`]: the cluster the agent joined, and whether a master's answer is from it.
//! - [`reconcile`]: pure: local tasks and assignments in, actions out.
//! - [`runner`]: launches, watches, kills and re-adopts tasks; runs their health checks.
//! - [`shim`]: the per-task supervisor process (`drover-agent shim SANDBOX`).
//! - [`docker`]: the Docker executor: containers through the Docker Engine API, no shim.
//! - [`sandbox`]: a task's directory and its checkpoint files.
//! - [`env`](mod@env): a task's argv and environment.
//! - [`task_user`]: which Unix user a task runs as (the task user, the allow-list, root).
//! - [`health`]: Marathon-style health checks: pure counting, and the probes.
//! - [`outcome`]: pure: how an ended task is classified.
//! - [`procfs`]: `/proc` reading and the PID-reuse check.
//! - [`cgroup`]: per-task cgroup v2 limits behind a trait, with a no-op fallback.
//! - [`api`]: the HTTP API (tasks, logs, metrics).

#![warn(missing_docs)]

pub mod api;
pub mod cgroup;
pub mod cli;
pub mod cluster;
pub mod docker;
pub mod env;
pub mod health;
pub mod host;
pub mod install;
pub mod master;
pub mod outcome;
pub mod procfs;
pub mod reconcile;
pub mod runner;
pub mod sandbox;
pub mod shim;
pub mod task_user;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use drover_api::client::{ClientError, MasterClient};
use tokio::sync::watch;

pub use cli::AgentOptions;
pub use runner::{RunnerConfig, TaskRunner};

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The work dir could not be created.
    #[error("cannot create the work dir {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Host facts could not be read.
    #[error(transparent)]
    Host(#[from] host::HostError),
    /// The task runner could not start.
    #[error(transparent)]
    Runner(#[from] runner::RunnerError),
    /// The remembered cluster id cannot be read.
    #[error(transparent)]
    Membership(#[from] cluster::MembershipError),
    /// The master client could not be built (bad URL).
    #[error("cannot talk to the master: {0}")]
    Master(#[from] ClientError),
    /// Serving the API failed.
    #[error("serving the API failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Runs the agent on an already-bound `listener` until `shutdown` resolves. Tasks keep
/// running after it returns (an upgrade restarts the agent, not the tasks).
pub async fn run(
    listener: tokio::net::TcpListener,
    opts: AgentOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&opts.work_dir).map_err(|source| AgentError::WorkDir {
        path: opts.work_dir.clone(),
        source,
    })?;
    prepare_work_dir(&opts)?;
    let membership = cluster::Membership::load(&opts.work_dir, opts.join_new_cluster)?;
    let mut probe = host::HostProbe::new(&opts.work_dir)?;
    let facts = probe.refresh();
    let reserved = host::reserved(&facts, opts.reserved);
    let total = host::offered(&facts, &reserved);
    tracing::info!(
        node = %opts.name,
        cpus = total.cpus, mem_mib = total.mem, disk_mib = total.disk,
        "offering resources (host totals less the reservation)"
    );
    let (cgroups, why_not) = cgroup::detect();
    if let Some(why) = why_not {
        tracing::warn!("resource limits are off, tasks run without memory and cpu limits: {why}");
    }
    let mut docker_later = None;
    let docker = match &opts.docker_socket {
        Some(socket) => match docker::Engine::detect(socket).await {
            Ok(engine) => {
                tracing::info!(
                    "Docker Engine {} at {}: DOCKER tasks run here",
                    engine.version,
                    socket.display()
                );
                Some(engine)
            }
            Err(e) => {
                tracing::info!(
                    "{e}: DOCKER tasks will not be placed on this node until the engine answers (looked for every {}s)",
                    DOCKER_RETRY.as_secs()
                );
                docker_later = Some(socket.clone());
                None
            }
        },
        None => None,
    };
    let runner = TaskRunner::start(RunnerConfig {
        work_dir: opts.work_dir.clone(),
        shim_exe: opts.shim_exe.clone(),
        host: env::host_of(&opts.advertise),
        cgroups,
        poll_interval: runner::DEFAULT_POLL,
        docker,
        task_users: opts.task_users.clone(),
    })?;
    let client = MasterClient::new(&opts.master, opts.token.clone())?;
    let (host_tx, host_rx) = watch::channel(facts);
    let session = master::Session {
        client,
        name: opts.name.clone(),
        address: opts.advertise.clone(),
        attributes: opts.attributes.clone(),
        total,
        reserved,
        ports: opts.ports,
        max_tasks: opts.max_tasks,
        host: host_rx,
        runner: runner.clone(),
        registered: watch::channel(false).0,
        membership: std::sync::Arc::new(membership),
    };
    let interval = opts.resource_interval;
    let mut jobs = vec![
        tokio::spawn(session.clone().heartbeat_loop()),
        tokio::spawn(session.assignments_loop()),
        tokio::spawn(refresh_loop(probe, host_tx, interval)),
        tokio::spawn(gc_loop(runner.clone())),
    ];
    if let Some(socket) = docker_later {
        jobs.push(tokio::spawn(docker_loop(socket, runner.clone())));
    }
    let (closing_tx, closing_rx) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        closing_tx.send_replace(true);
    };
    let router = api::router(runner.clone(), opts.token.clone(), closing_rx);
    let served =
        drover_service::http::serve(listener, router, opts.connections.clone(), shutdown).await;
    for j in &jobs {
        j.abort();
    }
    runner.detach();
    served.map_err(AgentError::Serve)
}

/// Closes the work dir to tasks that run as another user: they may pass through it and
/// `tasks/` to their own sandbox, but list and read nothing else (mode 0711). Says who
/// tasks run as, and warns when a directory above keeps them from reaching their
/// sandboxes by path.
fn prepare_work_dir(opts: &AgentOptions) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    let users = &opts.task_users;
    let user = &users.default;
    tracing::info!(
        user = %user.name, uid = user.uid, gid = user.gid,
        allowed = ?users.allowed, allow_root = users.allow_root,
        "tasks run as {}{}",
        user.name,
        if users.switching { "" } else { " (the agent's own user: it is not root)" }
    );
    if !users.switching {
        return Ok(());
    }
    let tasks = sandbox::tasks_dir(&opts.work_dir);
    for dir in [&opts.work_dir, &tasks] {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)))
            .map_err(|source| AgentError::WorkDir {
                path: dir.clone(),
                source,
            })?;
    }
    if let Some(blocked) = task_user::blocked_on_the_way(user, &tasks) {
        tracing::warn!(
            "user {} cannot pass through {}: its tasks start in their sandboxes but cannot reach them by path ($MESOS_SANDBOX); make it traversable (chmod o+x) or use another --work-dir",
            user.name,
            blocked.display()
        );
    }
    Ok(())
}

/// How long the sandbox of a task the master has forgotten is kept for its logs (Mesos's
/// default `gc_delay`).
pub const SANDBOX_GC_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often an agent without a Docker Engine looks for one again (dockerd may start
/// after the agent, e.g. at boot).
pub const DOCKER_RETRY: Duration = Duration::from_secs(10);

/// Looks for the Docker Engine until it answers, then hands it to the runner.
async fn docker_loop(socket: std::path::PathBuf, runner: TaskRunner) {
    loop {
        tokio::time::sleep(DOCKER_RETRY).await;
        if let Ok(engine) = docker::Engine::detect(&socket).await {
            tracing::info!(
                "Docker Engine {} at {}: DOCKER tasks run here from now on",
                engine.version,
                socket.display()
            );
            runner.attach_docker(engine);
            return;
        }
    }
}

/// Deletes old forgotten sandboxes at start and then hourly.
async fn gc_loop(runner: TaskRunner) {
    loop {
        let n = runner.collect_garbage(SANDBOX_GC_DELAY);
        if n > 0 {
            tracing::info!("removed {n} old task sandboxes");
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Refreshes host usage every `interval`; the heartbeat reads the latest.
async fn refresh_loop(
    mut probe: host::HostProbe,
    tx: watch::Sender<drover_api::node::HostInfo>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        tx.send_replace(probe.refresh());
    }
}
