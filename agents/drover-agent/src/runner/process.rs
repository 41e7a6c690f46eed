//! Process tasks: the runner's shim path. Each task gets a shim (the agent's own binary
//! re-executed, see [`crate::shim`]) that starts it, records its pid and its exit in the
//! sandbox, and outlives the agent. A monitor job polls the sandbox for those records and
//! carries out kills (SIGTERM to the task's process group, SIGKILL after its grace period).

use std::sync::Arc;

use drover_api::TaskId;
use drover_api::task::TaskSpec;
use nix::sys::signal::Signal;
use tokio::sync::{Notify, watch};

use super::executor::Executor;
use super::{Entry, Inner};
use crate::docker::Engine;
use crate::env;
use crate::health;
use crate::outcome::VANISHED;
use crate::procfs::{self, Liveness};
use crate::sandbox::{ExitRecord, LaunchPlan, ProcessRecord, Sandbox};

/// Runs a task as a process under a shim.
#[derive(Debug)]
pub(super) struct ProcessExecutor;

impl Executor for ProcessExecutor {
    /// Resolves the argv, user, environment and cgroup the shim will run the task with.
    fn prepare(&self, inner: &Inner, spec: &TaskSpec, sb: &Sandbox) -> Result<LaunchPlan, String> {
        let argv = env::argv(&spec.definition)?;
        let user = inner.task_user(spec, spec.definition.user.as_deref(), sb)?;
        let home = Some(user.home.as_path()).filter(|h| h.is_dir());
        let base = env::with_user(&inner.base_env, &user.name, home, sb.dir());
        let env = env::task_env(spec, &base, &inner.config.host, sb.dir());
        let cgroup = match inner
            .config
            .cgroups
            .create(&spec.id, &spec.definition.resources)
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(task = %spec.id, "running without resource limits: {e}");
                None
            }
        };
        let switching = inner.config.task_users.switching;
        Ok(LaunchPlan {
            argv,
            env,
            uid: switching.then_some(user.uid),
            gid: switching.then_some(user.gid),
            groups: switching.then(|| user.groups.clone()),
            user: Some(user.name),
            cgroup,
        })
    }

    /// Spawns the shim, a job that reaps it, and the task's monitor.
    fn start(&self, inner: &Arc<Inner>, id: TaskId, mut entry: Entry, sb: &Sandbox) {
        let child = match spawn_shim(inner, sb) {
            Ok(c) => c,
            Err(e) => {
                let rec = ExitRecord::error(format!("cannot start the task's executor: {e}"));
                let _ = sb.write_exit(&rec);
                entry.finish(&rec);
                inner.insert(id, entry);
                return;
            }
        };
        let (tx, rx) = watch::channel(None);
        // Reaps the shim, so no zombie is left behind, and tells the monitor.
        inner.spawn_job(async move {
            let mut child = child;
            let how = match child.wait().await {
                Ok(s) => format!("executor exited: {s}"),
                Err(e) => format!("cannot wait for the executor: {e}"),
            };
            let _ = tx.send(Some(how));
        });
        let wake = entry.wake.clone();
        inner.insert(id.clone(), entry);
        inner.spawn_job(monitor(inner.clone(), id, ShimWatch::Child(rx), wake));
    }

    /// Watches the task again if its process or its shim is still there; fails it as
    /// vanished if neither is and no exit was recorded.
    fn resume(&self, inner: &Arc<Inner>, id: TaskId, mut entry: Entry, sb: &Sandbox) {
        let shim = sb.read_shim().ok().flatten();
        let present = |l: Liveness| matches!(l, Liveness::Alive | Liveness::Zombie);
        let pid = sb.read_pid().ok().flatten();
        let watchable = match (&pid, &shim) {
            (Some(p), _) => present(procfs::check(&p.process)),
            (None, Some(s)) => present(procfs::check(s)),
            (None, None) => false,
        };
        if !watchable {
            // One more look: the shim may have finished between the reads above.
            let rec = match sb.read_exit() {
                Ok(Some(rec)) => rec,
                _ => {
                    let rec = ExitRecord::error(VANISHED);
                    if let Err(e) = sb.write_exit(&rec) {
                        tracing::warn!(task = %id, "{e}");
                    }
                    rec
                }
            };
            if let Some(p) = pid {
                entry.process = Some(p.process);
                entry.started_at = Some(p.started_at);
            }
            entry.finish(&rec);
            inner.insert(id, entry);
            return;
        }
        let wake = entry.wake.clone();
        inner.insert(id.clone(), entry);
        if let Some(p) = pid {
            inner.set_running(&id, p);
        }
        tracing::info!(task = %id, "re-adopted a running task");
        inner.spawn_job(monitor(inner.clone(), id, ShimWatch::Adopted(shim), wake));
    }

    /// Nothing: an ended process leaves only its sandbox.
    fn clean_up_ended(&self, _inner: &Inner, _id: &TaskId) {}

    /// None: COMMAND checks of a process task run on the host, as the task's user.
    fn probe_container(&self, _inner: &Inner, _id: &TaskId) -> Option<(Engine, String)> {
        None
    }
}

fn spawn_shim(inner: &Inner, sb: &Sandbox) -> std::io::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sb.shim_log_path())?;
    tokio::process::Command::new(&inner.config.shim_exe)
        .arg("shim")
        .arg(sb.dir())
        // The shim needs nothing of the agent's environment (the task's is in the
        // checkpoint), and a clean one keeps --config and DROVER_AGENT_* out of it.
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
}

/// How a monitor learns that the shim has gone.
enum ShimWatch {
    /// A shim this runner spawned: its reaper job sends how it exited.
    Child(watch::Receiver<Option<String>>),
    /// A shim from before a restart, identified by its record (if it wrote one).
    Adopted(Option<ProcessRecord>),
}

impl ShimWatch {
    /// `Some(how)` once the shim is known to have exited.
    fn exited(&self) -> Option<String> {
        match self {
            ShimWatch::Child(rx) => rx.borrow().clone(),
            ShimWatch::Adopted(Some(rec)) => match procfs::check(rec) {
                Liveness::Alive => None,
                other => Some(format!("executor {} is {other:?}", rec.pid).to_lowercase()),
            },
            ShimWatch::Adopted(None) => None,
        }
    }

    /// Resolves when a spawned shim's reaper reports; never for adopted shims.
    async fn changed(&mut self) {
        match self {
            ShimWatch::Child(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            ShimWatch::Adopted(_) => std::future::pending().await,
        }
    }
}

/// Watches one active task until it ends: learns its pid, carries out a kill, and
/// records its exit (or the shim's disappearance).
async fn monitor(inner: Arc<Inner>, id: TaskId, mut shim: ShimWatch, wake: Arc<Notify>) {
    let poll = inner.config.poll_interval;
    let mut term_sent: Option<tokio::time::Instant> = None;
    let mut kill_sent = false;
    loop {
        // The shim writes exit.json before it exits, so checking the shim first and
        // the file second never misses an exit that was recorded.
        let shim_gone = shim.exited();
        let (sb, process, kill, grace) = {
            let tasks = inner.lock();
            let Some(e) = tasks.get(&id) else { return };
            if e.state.is_terminal() {
                return;
            }
            let Some(sb) = e.sandbox.clone() else { return };
            (
                sb,
                e.process,
                e.kill.is_some(),
                health::secs(e.spec.definition.kill_grace_period_seconds),
            )
        };
        match sb.read_exit() {
            Ok(Some(rec)) => {
                if process.is_none()
                    && let Ok(Some(p)) = sb.read_pid()
                {
                    inner.set_running(&id, p);
                }
                inner.finish(&id, &rec);
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(task = %id, "{e}"),
        }
        let mut process = process;
        if process.is_none()
            && let Ok(Some(p)) = sb.read_pid()
        {
            inner.set_running(&id, p);
            process = Some(p.process);
        }
        if let Some(how) = shim_gone {
            if let Some(p) = &process {
                signal_group(p, Signal::SIGKILL);
            }
            let rec = ExitRecord::error(format!(
                "the task's executor ended without recording how the task did ({how})"
            ));
            let _ = sb.write_exit(&rec);
            inner.finish(&id, &rec);
            return;
        }
        if let (true, Some(p)) = (kill, &process) {
            match term_sent {
                None => {
                    signal_group(p, Signal::SIGTERM);
                    term_sent = Some(tokio::time::Instant::now());
                }
                Some(t) if !kill_sent && t.elapsed() >= grace => {
                    signal_group(p, Signal::SIGKILL);
                    kill_sent = true;
                }
                _ => {}
            }
        }
        let mut nap = poll;
        if let (Some(t), false) = (term_sent, kill_sent) {
            nap = nap.min(grace.saturating_sub(t.elapsed()));
        }
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = wake.notified() => {}
            _ = shim.changed() => {}
        }
    }
}

/// Signals the task's whole process group, after checking the pid is still the task's.
fn signal_group(p: &ProcessRecord, sig: Signal) {
    if !matches!(procfs::check(p), Liveness::Alive | Liveness::Zombie) {
        return;
    }
    // Never 0 or 1: killpg(0) would hit the agent's own group, 1 is init.
    let Some(pgid) = i32::try_from(p.pid).ok().filter(|p| *p > 1) else {
        return;
    };
    if let Err(e) = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig) {
        tracing::debug!("signal {sig} to process group {pgid}: {e}");
    }
}
