//! A task's sandbox directory and the checkpoint files the agent and the shim keep in it.
//!
//! Layout of `work_dir/tasks/<task-id>/`:
//!
//! | file | written by | holds |
//! | --- | --- | --- |
//! | `task.json` | agent | the [`Checkpoint`]: spec, goal and resolved launch plan |
//! | `shim.json` | shim, first thing | the shim's own pid and start time |
//! | `pid.json` | shim, after spawn | the task's pid and start time ([`PidRecord`]) |
//! | `exit.json` | shim (or agent when it never started) | how it ended ([`ExitRecord`]) |
//! | `stdout`, `stderr` | the task | its output |
//! | `shim.log` | shim | the shim's own complaints |
//! | `acked` | agent | marker: the master has forgotten the task; skipped on rescan |
//! | `container.json` | agent (container tasks) | the container's id, once created ([`ContainerRecord`]) |
//! | `logs.json` | agent (container tasks) | how far its log stream was copied ([`LogCursor`](crate::docker::logs::LogCursor)) |
//!
//! Every JSON file is written whole to a temporary name and renamed into place, so a
//! reader (or an agent restarted at any instant) sees either nothing or the full record.
//!
//! When the task runs as another user than the agent, it shares the directory through
//! its group ([`Sandbox::share_with_group`]: mode 1770, the agent's own), so the task
//! writes its working directory but cannot replace the agent's records; the agent
//! writes its records only as new files (never through a link the task left) and reads
//! only plain files it owns.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use drover_api::TaskId;
use drover_api::task::{ExitStatus, LogStream, TaskGoal, TaskSpec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The directory under the work dir that holds one sandbox per task.
pub const TASKS_DIR: &str = "tasks";

/// Why a sandbox file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `read`, `create`).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A record is not the agent's own (a task wrote it, or it is a link): ignored.
    #[error(
        "{path} is not the agent's own file (owned by uid {owner}, or not a plain file): ignored"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// A checkpoint file holds something that does not decode.
    #[error("corrupt checkpoint {path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
}

/// What the shim needs to start the task, resolved by the agent at launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchPlan {
    /// Program and arguments (`/bin/sh -c CMD` or the task's args).
    pub argv: Vec<String>,
    /// The complete environment; nothing else is inherited.
    pub env: BTreeMap<String, String>,
    /// Run as this uid (set when the agent is root and switches to the task's user;
    /// absent, the task runs as the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Run with this gid, alongside `uid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Run with these supplementary groups, alongside `uid` (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<u32>>,
    /// The user's name, for people reading the checkpoint and for `USER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The cgroup v2 directory the shim joins before spawning, when limits are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
}

impl LaunchPlan {
    /// Who the task runs as when the agent switches users; `None`: as the agent.
    pub fn identity(&self) -> Option<crate::task_user::Identity> {
        let (uid, gid) = self.uid.zip(self.gid)?;
        Some(crate::task_user::Identity {
            uid,
            gid,
            groups: self.groups.clone().unwrap_or_default(),
        })
    }
}

/// `task.json`: what the agent knows about a task that must survive its own restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The task as the master assigned it.
    pub spec: TaskSpec,
    /// Run, or kill once a kill was asked for (so a restarted agent still reports `killed`).
    pub goal: TaskGoal,
    /// How to start it; absent when the task could not be prepared (it has an `exit.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchPlan>,
    /// When the agent accepted it.
    pub created_at: DateTime<Utc>,
    /// Why the kill was asked for, once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_reason: Option<String>,
}

/// A process identified by pid and kernel start time, so a recycled pid is never mistaken
/// for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The process id.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
}

/// `pid.json`: the task's main process, written by the shim right after spawning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    /// The task's process (also its process group id).
    pub process: ProcessRecord,
    /// When it was spawned.
    pub started_at: DateTime<Utc>,
}

/// `exit.json`: how the task ended, written once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Exit code or signal; absent when the task never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExitStatus>,
    /// Why it never ran or could not be watched (spawn error, refused user, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the kernel's OOM killer struck inside the task's cgroup.
    #[serde(default)]
    pub oom_killed: bool,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

impl ExitRecord {
    /// A record for a task that never ran (or vanished), with the reason.
    pub fn error(message: impl Into<String>) -> Self {
        ExitRecord {
            status: None,
            error: Some(message.into()),
            oom_killed: false,
            finished_at: Utc::now(),
        }
    }
}

/// `container.json`: the Docker container of a container task, written right after it
/// was created (so a restarted agent that finds no container knows it vanished).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The container's id.
    pub id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One task's sandbox directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    /// The sandbox of task `id` under `work_dir` (the id must already be validated).
    pub fn new(work_dir: &Path, id: &TaskId) -> Self {
        Sandbox {
            dir: tasks_dir(work_dir).join(id.as_str()),
        }
    }

    /// A sandbox at an explicit directory (the shim gets it on its command line).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Sandbox { dir: dir.into() }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// The file holding one output stream.
    pub fn log_path(&self, stream: LogStream) -> PathBuf {
        self.dir.join(stream.file_name())
    }

    /// The checkpoint file.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("task.json")
    }

    /// The task-process record.
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("pid.json")
    }

    /// The shim-process record.
    pub fn shim_path(&self) -> PathBuf {
        self.dir.join("shim.json")
    }

    /// The exit record.
    pub fn exit_path(&self) -> PathBuf {
        self.dir.join("exit.json")
    }

    /// Where the shim's own stderr goes.
    pub fn shim_log_path(&self) -> PathBuf {
        self.dir.join("shim.log")
    }

    /// The marker saying the master has forgotten this task.
    pub fn ack_path(&self) -> PathBuf {
        self.dir.join("acked")
    }

    /// Creates the directory and empty stdout/stderr files (so logs can be read at once).
    pub fn create(&self) -> Result<(), SandboxError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| io("create", &self.dir, source))?;
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let path = self.log_path(stream);
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| io("create", &path, source))?;
        }
        Ok(())
    }

    /// Writes `task.json`.
    pub fn write_checkpoint(&self, cp: &Checkpoint) -> Result<(), SandboxError> {
        write_json_atomic(&self.checkpoint_path(), cp)
    }

    /// Writes `task.json` under its temporary name; [`commit_staged`] makes it durable.
    pub fn stage_checkpoint(&self, cp: &Checkpoint) -> Result<StagedFile, SandboxError> {
        stage_json(&self.checkpoint_path(), cp)
    }

    /// Reads `task.json`.
    pub fn read_checkpoint(&self) -> Result<Checkpoint, SandboxError> {
        let path = self.checkpoint_path();
        read_json(&path)?.ok_or_else(|| io("read", &path, std::io::ErrorKind::NotFound.into()))
    }

    /// Reads `pid.json`, if the shim has written it.
    pub fn read_pid(&self) -> Result<Option<PidRecord>, SandboxError> {
        read_json(&self.pid_path())
    }

    /// Writes `pid.json`.
    pub fn write_pid(&self, rec: &PidRecord) -> Result<(), SandboxError> {
        write_json_atomic(&self.pid_path(), rec)
    }

    /// Reads `shim.json`, if the shim has written it.
    pub fn read_shim(&self) -> Result<Option<ProcessRecord>, SandboxError> {
        read_json(&self.shim_path())
    }

    /// Writes `shim.json`.
    pub fn write_shim(&self, rec: &ProcessRecord) -> Result<(), SandboxError> {
        write_json_atomic(&self.shim_path(), rec)
    }

    /// Reads `exit.json`, if the task has ended.
    pub fn read_exit(&self) -> Result<Option<ExitRecord>, SandboxError> {
        read_json(&self.exit_path())
    }

    /// Writes `exit.json`.
    pub fn write_exit(&self, rec: &ExitRecord) -> Result<(), SandboxError> {
        write_json_atomic(&self.exit_path(), rec)
    }

    /// The container record.
    pub fn container_path(&self) -> PathBuf {
        self.dir.join("container.json")
    }

    /// Reads `container.json`, if the task's container was created.
    pub fn read_container(&self) -> Result<Option<ContainerRecord>, SandboxError> {
        read_json(&self.container_path())
    }

    /// Writes `container.json`.
    pub fn write_container(&self, rec: &ContainerRecord) -> Result<(), SandboxError> {
        write_json_atomic(&self.container_path(), rec)
    }

    /// Reads `logs.json`, if a container's logs were copied before.
    pub fn read_log_cursor(&self) -> Result<Option<crate::docker::logs::LogCursor>, SandboxError> {
        read_json(&self.dir.join("logs.json"))
    }

    /// Writes `logs.json`. Not synced: it only has to survive the agent, not the host
    /// (whose reboot ends the container too), and it is written often.
    pub fn write_log_cursor(
        &self,
        cursor: &crate::docker::logs::LogCursor,
    ) -> Result<(), SandboxError> {
        write_json(&self.dir.join("logs.json"), cursor, false)
    }

    /// Whether the master has forgotten this task.
    pub fn is_acked(&self) -> bool {
        self.ack_path().exists()
    }

    /// Marks the task as forgotten by the master.
    pub fn ack(&self) -> Result<(), SandboxError> {
        let path = self.ack_path();
        // Whatever the task may have put under that name goes first, and the marker is
        // made new, never through a link.
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map(drop)
            .map_err(|source| io("write", &path, source))
    }

    /// Lets a task running as another user (group `gid`) work in this sandbox without
    /// touching the agent's records: the directory stays the agent's, with group `gid`
    /// and mode 1770 (the task creates and removes its own files; the sticky bit keeps
    /// it from renaming or removing the agent's), and `stdout`/`stderr` are the agent's,
    /// group-writable (the task may reopen them as `/dev/stdout`, never swap them for a
    /// link the agent would then read or write through).
    pub fn share_with_group(&self, gid: u32) -> Result<(), SandboxError> {
        use std::os::unix::fs::PermissionsExt;
        let give = |path: &Path, mode: u32| {
            std::os::unix::fs::chown(path, None, Some(gid))
                .and_then(|()| {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                })
                .map_err(|source| io("share", path, source))
        };
        give(&self.dir, 0o1770)?;
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            give(&self.log_path(stream), 0o660)?;
        }
        Ok(())
    }

    /// Clears the forgotten marker (the master listed the task again).
    pub fn unack(&self) {
        let _ = std::fs::remove_file(self.ack_path());
    }
}

/// Whether a sandbox acknowledged at `acked_at` is old enough to delete at `now`.
pub fn is_garbage(
    acked_at: std::time::SystemTime,
    now: std::time::SystemTime,
    delay: std::time::Duration,
) -> bool {
    now.duration_since(acked_at).is_ok_and(|age| age >= delay)
}

/// `work_dir/tasks`.
pub fn tasks_dir(work_dir: &Path) -> PathBuf {
    work_dir.join(TASKS_DIR)
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> SandboxError {
    SandboxError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` as JSON to `path` through a temporary file and a rename, so readers
/// never see half a record. Mode 0600: the checkpoint may hold secrets from `env`.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), SandboxError> {
    write_json(path, value, true)
}

/// [`write_json_atomic`], with the fsync optional.
fn write_json<T: Serialize>(path: &Path, value: &T, sync: bool) -> Result<(), SandboxError> {
    stage_json(path, value)?.commit(sync)
}

/// Writes `value` as JSON to `path`'s temporary name, leaving the sync and the rename
/// to [`StagedFile::commit`] or [`commit_staged`].
fn stage_json<T: Serialize>(path: &Path, value: &T) -> Result<StagedFile, SandboxError> {
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| SandboxError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    // A task may share the directory: whatever it left under the temporary name (a link
    // to a file of the agent's choosing) is removed, and the file is made new.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("write", &tmp, e));
        }
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|source| io("write", &tmp, source))?;
    f.write_all(&bytes)
        .map_err(|source| io("write", &tmp, source))?;
    Ok(StagedFile {
        tmp,
        path: path.to_path_buf(),
    })
}

/// A JSON record written under its temporary name, neither synced nor in place yet.
#[derive(Debug)]
pub struct StagedFile {
    tmp: PathBuf,
    path: PathBuf,
}

impl StagedFile {
    /// Syncs it (if `sync`) and renames it into place.
    fn commit(self, sync: bool) -> Result<(), SandboxError> {
        if sync {
            // Reopened rather than kept open, so a batch of 1,000 holds no descriptors.
            std::fs::File::open(&self.tmp)
                .and_then(|f| f.sync_all())
                .map_err(|source| io("sync", &self.tmp, source))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|source| io("rename", &self.path, source))
    }
}

/// Threads that sync a batch of staged records side by side.
const SYNC_THREADS: usize = 16;

/// Makes staged records durable and puts them in place; one result each, in order.
/// One fsync costs a journal commit (about 4 ms on the build machine's disk), so a burst
/// of 500 launches synced one after another took 2 s; synced side by side, the
/// filesystem commits the waiting fsyncs together.
pub fn commit_staged(files: Vec<StagedFile>) -> Vec<Result<(), SandboxError>> {
    if files.len() <= 1 {
        return files.into_iter().map(|f| f.commit(true)).collect();
    }
    let threads = files.len().min(SYNC_THREADS);
    let mut lanes: Vec<Vec<(usize, StagedFile)>> = (0..threads).map(|_| Vec::new()).collect();
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    for (i, f) in files.into_iter().enumerate() {
        lanes[i % threads].push((i, f));
    }
    let mut results: Vec<Option<Result<(), SandboxError>>> = paths.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                scope.spawn(move || {
                    lane.into_iter()
                        .map(|(i, f)| (i, f.commit(true)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A lane only does file I/O; if one panicked anyway its records stay
            // unsynced and are reported as failed below.
            if let Ok(done) = h.join() {
                for (i, r) in done {
                    results[i] = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .zip(&paths)
        .map(|(r, path)| {
            r.unwrap_or_else(|| {
                Err(io(
                    "sync",
                    path,
                    std::io::Error::other("the syncing thread panicked"),
                ))
            })
        })
        .collect()
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist. Only a plain file
/// owned by the agent's own user counts: a task sharing the sandbox could otherwise
/// forge its exit or point `pid.json` at another process for the agent to signal.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, SandboxError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(SandboxError::Foreign {
                path: path.to_path_buf(),
                owner: u32::MAX,
            });
        }
        Err(source) => return Err(io("read", path, source)),
    };
    let meta = file.metadata().map_err(|source| io("read", path, source))?;
    if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(SandboxError::Foreign {
            path: path.to_path_buf(),
            owner: meta.uid(),
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| io("read", path, source))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SandboxError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::new(dir.path(), &TaskId::from("t.1"));
        sb.create().unwrap();
        assert!(sb.read_exit().unwrap().is_none());
        let rec = ExitRecord::error("boom");
        sb.write_exit(&rec).unwrap();
        assert_eq!(sb.read_exit().unwrap(), Some(rec));
        assert!(sb.log_path(LogStream::Stdout).exists());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(sb.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
            "{names:?}"
        );
    }

    #[test]
    fn staged_records_appear_only_once_committed_each_with_its_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Vec::new();
        let mut sandboxes = Vec::new();
        for i in 0..40 {
            let sb = Sandbox::new(dir.path(), &TaskId::from(format!("t-{i}").as_str()));
            sb.create().unwrap();
            staged.push(stage_json(&sb.exit_path(), &ExitRecord::error(format!("r{i}"))).unwrap());
            sandboxes.push(sb);
        }
        // A record whose sandbox vanished before the commit fails alone.
        std::fs::remove_dir_all(sandboxes[7].dir()).unwrap();
        assert!(
            sandboxes[3].read_exit().unwrap().is_none(),
            "not in place before the commit"
        );
        let results = commit_staged(staged);
        assert_eq!(results.len(), 40);
        for (i, (r, sb)) in results.iter().zip(&sandboxes).enumerate() {
            if i == 7 {
                assert!(r.is_err(), "{r:?}");
                continue;
            }
            assert!(r.is_ok(), "{i}: {r:?}");
            let rec = sb.read_exit().unwrap().unwrap();
            assert_eq!(rec.error, Some(format!("r{i}")));
        }
    }

    #[test]
    fn garbage_age() {
        use std::time::{Duration, SystemTime};
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        assert!(is_garbage(now - 8 * day, now, 7 * day));
        assert!(!is_garbage(now - day, now, 7 * day));
        assert!(
            !is_garbage(now + day, now, 7 * day),
            "a clock step back keeps it"
        );
    }

    #[test]
    fn links_are_neither_read_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::at(dir.path());
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        // A link left under the temporary name is replaced, not written through.
        std::os::unix::fs::symlink(&target, dir.path().join(".exit.json.tmp")).unwrap();
        sb.write_exit(&ExitRecord::error("x")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        // A record that is a link is not the agent's.
        std::os::unix::fs::symlink(sb.exit_path(), sb.pid_path()).unwrap();
        assert!(matches!(sb.read_pid(), Err(SandboxError::Foreign { .. })));
        // Nor is the ack marker written through a link.
        std::os::unix::fs::symlink(&target, sb.ack_path()).unwrap();
        sb.ack().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        assert!(sb.is_acked());
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::at(dir.path());
        std::fs::write(sb.pid_path(), b"{not json").unwrap();
        assert!(matches!(sb.read_pid(), Err(SandboxError::Corrupt { .. })));
    }
}
