//! The per-task supervisor ("shim", as containerd and Nomad's executor have): the agent
//! re-executes its own binary as `drover-agent shim <sandbox>`, and that process starts
//! the task, records its pid, waits for it and records how it ended. It runs in its own
//! session and catches SIGINT/SIGTERM/SIGHUP, so it and the task outlive the agent
//! (an agent upgrade or crash does not touch running tasks).
//!
//! The shim is synchronous and single-threaded: it has nothing else to do while it waits.

use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::Utc;
use drover_api::task::{ExitStatus, LogStream, TaskGoal};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::cgroup;
use crate::procfs;
use crate::sandbox::{Checkpoint, ExitRecord, PidRecord, ProcessRecord, Sandbox};

/// Runs the shim for the sandbox at `dir`; returns the shim's exit code. Everything the
/// agent needs to know ends up in the sandbox's files, never in this code.
pub fn main(dir: &Path) -> i32 {
    // Its own session: a terminal hang-up or a signal to the agent's process group does
    // not reach it. It fails only if already a group leader, which the agent never makes it.
    let _ = nix::unistd::setsid();
    // Caught by a handler that does nothing, neither ignored nor blocked: exec resets
    // handlers to the default in the task, while an ignored disposition or a blocked mask
    // would be inherited and make SIGTERM useless. A stray `pkill drover-agent` thus
    // leaves shims (and the exit status they will record) alone.
    let swallowed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for s in [SIGINT, SIGTERM, SIGHUP] {
        if let Err(e) = signal_hook::flag::register(s, swallowed.clone()) {
            eprintln!("drover shim: cannot catch signal {s}: {e}");
        }
    }
    let sandbox = Sandbox::at(dir);
    if let Some(me) = procfs::current_process()
        && let Err(e) = sandbox.write_shim(&me)
    {
        eprintln!("drover shim: {e}");
    }
    let record = match sandbox.read_checkpoint() {
        Ok(cp) => supervise(&sandbox, &cp),
        Err(e) => ExitRecord::error(format!(
            "the executor cannot read the task's checkpoint: {e}"
        )),
    };
    match sandbox.write_exit(&record) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drover shim: cannot record the exit: {e}");
            1
        }
    }
}

/// Starts the task, waits for it, and says how it ended.
fn supervise(sandbox: &Sandbox, cp: &Checkpoint) -> ExitRecord {
    if cp.goal == TaskGoal::Kill {
        return ExitRecord::error("killed before it started");
    }
    let Some(plan) = &cp.launch else {
        return ExitRecord::error("the task has no launch plan");
    };
    let Some((program, args)) = plan.argv.split_first() else {
        return ExitRecord::error("the task has an empty command");
    };
    let home_cgroup = cgroup::own_cgroup();
    let mut in_cgroup = None;
    if let Some(dir) = &plan.cgroup {
        match cgroup::join(dir) {
            Ok(()) => in_cgroup = Some(dir.clone()),
            Err(e) => eprintln!(
                "drover shim: cannot join cgroup {}: {e}; running without limits",
                dir.display()
            ),
        }
    }
    let open = |stream: LogStream| {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(sandbox.log_path(stream))
    };
    let (stdout, stderr) = match (open(LogStream::Stdout), open(LogStream::Stderr)) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            return ExitRecord::error(format!("cannot open the sandbox's log files: {e}"));
        }
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(&plan.env)
        .current_dir(sandbox.dir())
        // Its own process group, so a kill reaches everything it forks.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // After the cgroup is joined (above, as the agent's user): the task itself drops to
    // its user, groups first, between fork and exec.
    if let Some(who) = plan.identity() {
        crate::task_user::drop_privileges(&mut cmd, &who);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(dir) = &in_cgroup {
                cgroup::remove(dir, home_cgroup.as_deref());
            }
            return ExitRecord::error(format!("cannot start {program:?}: {e}"));
        }
    };
    let pid = child.id();
    // The child is at worst an unreaped zombie here, so its stat is still readable.
    let start_time = procfs::read_stat(pid).map_or(0, |s| s.start_time);
    let rec = PidRecord {
        process: ProcessRecord { pid, start_time },
        started_at: Utc::now(),
    };
    if let Err(e) = sandbox.write_pid(&rec) {
        eprintln!("drover shim: cannot record the pid: {e}");
    }
    // Wait without reaping, so the pid (and so the process group id) cannot be recycled
    // while the leftovers of the group are killed below.
    let raw = Pid::from_raw(pid as i32);
    while let Err(nix::errno::Errno::EINTR) =
        waitid(Id::Pid(raw), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
    {}
    // Whatever the task forked and left behind dies with it (as under Mesos).
    let _ = nix::sys::signal::killpg(raw, nix::sys::signal::Signal::SIGKILL);
    let status = match child.wait() {
        Ok(s) => Some(ExitStatus {
            code: s.code(),
            signal: s.signal(),
        }),
        Err(e) => {
            eprintln!("drover shim: cannot wait for the task: {e}");
            None
        }
    };
    let mut oom_killed = false;
    if let Some(dir) = &in_cgroup {
        oom_killed = cgroup::oom_kills(dir) > 0;
        cgroup::remove(dir, home_cgroup.as_deref());
    }
    ExitRecord {
        error: status
            .is_none()
            .then(|| "the executor lost track of the task".to_string()),
        status,
        oom_killed,
        finished_at: Utc::now(),
    }
}
