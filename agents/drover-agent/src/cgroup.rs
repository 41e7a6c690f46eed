//! Resource limits through cgroup v2, behind the small [`CgroupManager`] trait: the Linux
//! implementation gives each task its own cgroup with `memory.max` and `cpu.max`; the no-op
//! one is used where cgroup v2 is missing or not writable (tasks then run without limits).
//!
//! The agent creates the cgroup and writes the limits; the shim joins it before spawning
//! the task (so the task inherits it), reads `memory.events` after the task exits, and
//! removes it.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use drover_api::{Resources, TaskId};

/// Where cgroup v2 is mounted on a unified-hierarchy host.
pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";
/// The cgroup under the mount that holds one child per task.
pub const DROVER_CGROUP: &str = "drover";
/// cgroup v2's CPU period: 100 ms, as in `cpu.max`'s default.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Writing or creating a cgroup file failed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Creates and removes per-task cgroups.
pub trait CgroupManager: Send + Sync + Debug {
    /// Whether limits are enforced at all.
    fn enabled(&self) -> bool;
    /// Creates task `id`'s cgroup with limits from `limits`; returns the directory the shim
    /// must join, or `None` when limits are off.
    fn create(&self, id: &TaskId, limits: &Resources) -> Result<Option<PathBuf>, CgroupError>;
}

/// Limits off: tasks run in the agent's own cgroup.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCgroups;

impl CgroupManager for NoCgroups {
    fn enabled(&self) -> bool {
        false
    }

    fn create(&self, _id: &TaskId, _limits: &Resources) -> Result<Option<PathBuf>, CgroupError> {
        Ok(None)
    }
}

/// cgroup v2 with the memory and cpu controllers delegated to `root`.
#[derive(Debug, Clone)]
pub struct CgroupV2 {
    root: PathBuf,
}

impl CgroupV2 {
    /// A manager over an already prepared `root`, without the checks of [`CgroupV2::detect`]
    /// (for tests, and hosts where the operator delegated a subtree).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        CgroupV2 { root: root.into() }
    }

    /// Checks that `mount` is a writable cgroup2 mount with the memory and cpu
    /// controllers, and prepares `mount/drover` for task cgroups. The error says why
    /// limits cannot be used.
    pub fn detect(mount: &Path) -> Result<CgroupV2, String> {
        let fs = nix::sys::statfs::statfs(mount)
            .map_err(|e| format!("cannot stat {}: {e}", mount.display()))?;
        if fs.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC {
            return Err(format!(
                "{} is not a cgroup v2 (unified) mount",
                mount.display()
            ));
        }
        let controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))
            .map_err(|e| format!("cannot read {}/cgroup.controllers: {e}", mount.display()))?;
        if !has_controllers(&controllers) {
            return Err(format!(
                "the memory and cpu controllers are not available (have: {})",
                controllers.trim()
            ));
        }
        let root = mount.join(DROVER_CGROUP);
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        // Children of `root` get the controllers only when its subtree enables them;
        // the mount's own subtree must enable them for `root` first.
        for dir in [mount, root.as_path()] {
            let path = dir.join("cgroup.subtree_control");
            std::fs::write(&path, "+memory +cpu")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(CgroupV2 { root })
    }
}

impl CgroupManager for CgroupV2 {
    fn enabled(&self) -> bool {
        true
    }

    fn create(&self, id: &TaskId, limits: &Resources) -> Result<Option<PathBuf>, CgroupError> {
        let dir = self.root.join(id.as_str());
        let err = |path: PathBuf| move |source| CgroupError::Io { path, source };
        std::fs::create_dir_all(&dir).map_err(err(dir.clone()))?;
        let mem = dir.join("memory.max");
        std::fs::write(&mem, memory_max(limits.mem)).map_err(err(mem))?;
        let cpu = dir.join("cpu.max");
        std::fs::write(&cpu, cpu_max(limits.cpus)).map_err(err(cpu))?;
        Ok(Some(dir))
    }
}

/// The manager for this host: cgroup v2 if usable, else the no-op one and the reason.
pub fn detect() -> (std::sync::Arc<dyn CgroupManager>, Option<String>) {
    match CgroupV2::detect(Path::new(CGROUP_MOUNT)) {
        Ok(v2) => (std::sync::Arc::new(v2), None),
        Err(why) => (std::sync::Arc::new(NoCgroups), Some(why)),
    }
}

/// Whether a `cgroup.controllers` line offers both memory and cpu.
pub fn has_controllers(controllers: &str) -> bool {
    let set: Vec<&str> = controllers.split_whitespace().collect();
    set.contains(&"memory") && set.contains(&"cpu")
}

/// `memory.max` for a task asking `mem_mib` MiB (`max` when it asks for none).
pub fn memory_max(mem_mib: f64) -> String {
    if mem_mib.is_finite() && mem_mib > 0.0 {
        format!("{}", (mem_mib * 1024.0 * 1024.0).round() as u64)
    } else {
        "max".to_string()
    }
}

/// `cpu.max` for a task asking `cpus` cores: quota = cpus x period (at least the kernel's
/// 1 ms minimum), `max` when it asks for none.
pub fn cpu_max(cpus: f64) -> String {
    if cpus.is_finite() && cpus > 0.0 {
        let quota = ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000);
        format!("{quota} {CPU_PERIOD_US}")
    } else {
        format!("max {CPU_PERIOD_US}")
    }
}

/// The `oom_kill` count of a `memory.events` file.
pub fn parse_oom_kills(memory_events: &str) -> u64 {
    memory_events
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "oom_kill")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The current process's cgroup v2 directory, from `/proc/self/cgroup` (`0::/path`).
pub fn own_cgroup() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new(CGROUP_MOUNT).join(rel.trim_start_matches('/')))
}

/// Moves the calling process into `dir` (the shim does this before it spawns the task).
pub fn join(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
}

/// How many times the OOM killer struck inside `dir`.
pub fn oom_kills(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("memory.events"))
        .map(|t| parse_oom_kills(&t))
        .unwrap_or(0)
}

/// Moves the caller (the shim) back to `home`, kills whatever is left in `dir` and
/// removes `dir`. The move comes first: `cgroup.kill` would otherwise kill the caller too.
pub fn remove(dir: &Path, home: Option<&Path>) {
    if let Some(home) = home {
        let _ = std::fs::write(home.join("cgroup.procs"), std::process::id().to_string());
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    // The kill is asynchronous; a few tries let the last processes leave.
    for _ in 0..20 {
        if std::fs::remove_dir(dir).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_strings() {
        assert_eq!(memory_max(128.0), "134217728");
        assert_eq!(memory_max(0.0), "max");
        assert_eq!(cpu_max(0.5), "50000 100000");
        assert_eq!(cpu_max(2.0), "200000 100000");
        assert_eq!(cpu_max(0.001), "1000 100000");
        assert_eq!(cpu_max(0.0), "max 100000");
    }

    #[test]
    fn oom_kill_count() {
        assert_eq!(
            parse_oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n"),
            2
        );
        assert_eq!(parse_oom_kills(""), 0);
    }

    #[test]
    fn controllers() {
        assert!(has_controllers("cpuset cpu io memory pids"));
        assert!(!has_controllers("cpuset io memory"));
    }

    #[test]
    fn create_writes_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let m = CgroupV2::with_root(dir.path());
        let path = m
            .create(&TaskId::from("t.1"), &Resources::new(0.5, 64.0, 0.0))
            .unwrap()
            .unwrap();
        assert_eq!(path, dir.path().join("t.1"));
        assert_eq!(
            std::fs::read_to_string(path.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(path.join("cpu.max")).unwrap(),
            "50000 100000"
        );
        assert!(m.enabled());
        assert_eq!(
            NoCgroups
                .create(&TaskId::from("t.1"), &Resources::default())
                .unwrap(),
            None
        );
    }

    #[test]
    fn detection_refuses_what_is_not_cgroup2() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            CgroupV2::detect(dir.path())
                .unwrap_err()
                .contains("not a cgroup v2")
        );
    }
}
