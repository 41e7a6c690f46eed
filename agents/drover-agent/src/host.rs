//! The host's facts and resources: sysinfo for CPUs, memory, load and names (refreshing
//! only what is needed, never the process list), statvfs for the work dir's filesystem,
//! and the pure arithmetic of what is reserved for the host and offered to tasks.

use std::path::{Path, PathBuf};

use drover_api::Resources;
use drover_api::node::HostInfo;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

const MIB: f64 = 1024.0 * 1024.0;

/// Why host facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// sysinfo could not initialise on this platform.
    #[error("cannot read host facts: {0}")]
    Sysinfo(String),
}

/// Reservations given on the command line (MiB for memory and disk); unset ones take
/// Mesos's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reservation {
    /// CPUs kept for the host (default 0).
    pub cpus: Option<f64>,
    /// Memory kept for the host (default min(1024, half of total)).
    pub mem: Option<f64>,
    /// Disk kept for the host (default min(5120, half of total)).
    pub disk: Option<f64>,
}

/// What is reserved for the host given its totals, with Mesos's defaults for what the
/// operator did not set; never more than the host has.
pub fn reserved(host: &HostInfo, flags: Reservation) -> Resources {
    let cpus = flags.cpus.unwrap_or(0.0).clamp(0.0, f64::from(host.cpus));
    let mem = flags
        .mem
        .unwrap_or_else(|| (host.mem_total_mb / 2.0).min(1024.0))
        .clamp(0.0, host.mem_total_mb);
    let disk = flags
        .disk
        .unwrap_or_else(|| (host.disk_total_mb / 2.0).min(5120.0))
        .clamp(0.0, host.disk_total_mb);
    Resources::new(cpus, mem, disk)
}

/// What the agent offers to tasks: the host's totals less the reservation.
pub fn offered(host: &HostInfo, reserved: &Resources) -> Resources {
    Resources::new(
        f64::from(host.cpus),
        host.mem_total_mb.floor(),
        host.disk_total_mb.floor(),
    )
    .minus(*reserved)
}

/// Processes a task is counted for when the task limit comes from the process limit:
/// its shim, the task and what it starts.
const PROCESSES_PER_TASK: u64 = 16;
/// The default task limit never exceeds this, however high the process limit.
pub const DEFAULT_MAX_TASKS_CEILING: u32 = 2000;

/// The task limit when the operator sets none: one task per [`PROCESSES_PER_TASK`] of
/// the process limit, at least 1 and at most [`DEFAULT_MAX_TASKS_CEILING`], so a node
/// refuses tasks before it can no longer fork (or the agent spawn a thread).
pub fn default_max_tasks(process_limit: Option<u64>) -> u32 {
    process_limit.map_or(DEFAULT_MAX_TASKS_CEILING, |p| {
        let by_processes = (p / PROCESSES_PER_TASK).clamp(1, u64::from(DEFAULT_MAX_TASKS_CEILING));
        u32::try_from(by_processes).unwrap_or(DEFAULT_MAX_TASKS_CEILING)
    })
}

/// The fewest processes the agent and its tasks may have: the kernel's thread and pid
/// limits, `pids.max` of the agent's cgroup and every cgroup above it, and (unless the
/// agent is root, whom it does not bind) `RLIMIT_NPROC`. `None` when none can be read.
pub fn process_limit() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mut limits: Vec<u64> = ["/proc/sys/kernel/threads-max", "/proc/sys/kernel/pid_max"]
        .into_iter()
        .filter_map(|p| read(p)?.trim().parse().ok())
        .collect();
    if let Some(path) = read("/proc/self/cgroup")
        .as_deref()
        .and_then(cgroup_v2_path)
    {
        let root = Path::new("/sys/fs/cgroup");
        let mut dir = root.join(path.trim_start_matches('/'));
        while dir.starts_with(root) {
            if let Some(max) = read(&dir.join("pids.max").to_string_lossy())
                .as_deref()
                .and_then(parse_pids_max)
            {
                limits.push(max);
            }
            if !dir.pop() {
                break;
            }
        }
    }
    let status = read("/proc/self/status").unwrap_or_default();
    if effective_uid(&status) != Some(0) {
        limits.extend(
            read("/proc/self/limits")
                .as_deref()
                .and_then(parse_max_processes),
        );
    }
    limits.into_iter().min()
}

/// The unified (v2) hierarchy's path in `/proc/self/cgroup` (`0::/path`).
fn cgroup_v2_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// A cgroup's `pids.max`: a number, or `max` for none.
fn parse_pids_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The soft "Max processes" of `/proc/self/limits` (`unlimited`: none).
fn parse_max_processes(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max processes"))?;
    line.trim_start_matches("Max processes")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The effective uid of `/proc/self/status` (`Uid:\treal\teffective\t...`).
fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Reads host facts; keep one and call [`HostProbe::refresh`] periodically.
#[derive(Debug)]
pub struct HostProbe {
    sys: System,
    work_dir: PathBuf,
    /// Static facts read once.
    hostname: String,
    os: String,
    kernel: String,
}

impl HostProbe {
    /// A probe for the host, measuring disk on `work_dir`'s filesystem.
    pub fn new(work_dir: &Path) -> Result<Self, HostError> {
        let mut sys = System::new().map_err(|e| HostError::Sysinfo(e.to_string()))?;
        sys.refresh_cpu_list(CpuRefreshKind::nothing());
        Ok(HostProbe {
            sys,
            work_dir: work_dir.to_path_buf(),
            hostname: hostname(),
            os: System::long_os_version()
                .or_else(|_| System::name())
                .unwrap_or_else(|_| "unknown".into()),
            kernel: System::kernel_version().unwrap_or_else(|_| "unknown".into()),
        })
    }

    /// Refreshes memory, CPU usage, load and disk (nothing else) and returns the facts.
    pub fn refresh(&mut self) -> HostInfo {
        self.sys
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        self.sys.refresh_cpu_usage();
        let load = System::load_average().unwrap_or_default();
        let (disk_total_mb, disk_available_mb) = disk_space(&self.work_dir).unwrap_or((0.0, 0.0));
        let cpus = match self.sys.cpus().len() {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        HostInfo {
            hostname: self.hostname.clone(),
            os: self.os.clone(),
            kernel: self.kernel.clone(),
            cpus: u32::try_from(cpus).unwrap_or(u32::MAX),
            mem_total_mb: self.sys.total_memory() as f64 / MIB,
            mem_available_mb: self.sys.available_memory() as f64 / MIB,
            disk_total_mb,
            disk_available_mb,
            load_avg: [load.one, load.five, load.fifteen],
            cpu_usage_percent: f64::from(self.sys.global_cpu_usage()).clamp(0.0, 100.0),
        }
    }
}

/// The host's name (sysinfo, else `$HOSTNAME`, else `localhost`).
pub fn hostname() -> String {
    System::host_name()
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Total and available MiB of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> Option<(f64, f64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as f64;
    Some((
        st.blocks() as f64 * frag / MIB,
        st.blocks_available() as f64 * frag / MIB,
    ))
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_default_task_limit_follows_the_process_limit_within_bounds() {
        assert_eq!(default_max_tasks(None), DEFAULT_MAX_TASKS_CEILING);
        assert_eq!(default_max_tasks(Some(4915)), 307);
        assert_eq!(default_max_tasks(Some(4)), 1);
        assert_eq!(
            default_max_tasks(Some(4_194_304)),
            DEFAULT_MAX_TASKS_CEILING
        );
    }

    #[test]
    fn process_limits_are_read_from_proc_and_cgroup_files() {
        assert_eq!(
            cgroup_v2_path("1:cpu:/\n0::/system.slice/drover-agent.service\n"),
            Some("/system.slice/drover-agent.service")
        );
        assert_eq!(cgroup_v2_path("1:cpu:/\n"), None);
        assert_eq!(parse_pids_max("max\n"), None);
        assert_eq!(parse_pids_max("4915\n"), Some(4915));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax processes             63346                63346                processes\n";
        assert_eq!(parse_max_processes(limits), Some(63346));
        assert_eq!(
            parse_max_processes(
                "Max processes             unlimited            unlimited            processes\n"
            ),
            None
        );
        assert_eq!(effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\n"), Some(0));
        assert_eq!(effective_uid("Uid:\t1000\t1000\t1000\t1000\n"), Some(1000));
    }

    use super::*;

    fn host(cpus: u32, mem: f64, disk: f64) -> HostInfo {
        HostInfo {
            cpus,
            mem_total_mb: mem,
            disk_total_mb: disk,
            ..Default::default()
        }
    }

    #[test]
    fn mesos_default_reservations() {
        let big = host(8, 32768.0, 100_000.0);
        assert_eq!(
            reserved(&big, Reservation::default()),
            Resources::new(0.0, 1024.0, 5120.0)
        );
        let small = host(1, 1000.0, 2000.0);
        assert_eq!(
            reserved(&small, Reservation::default()),
            Resources::new(0.0, 500.0, 1000.0)
        );
        assert_eq!(
            offered(&small, &reserved(&small, Reservation::default())),
            Resources::new(1.0, 500.0, 1000.0)
        );
    }

    #[test]
    fn explicit_reservations_are_capped_by_the_host() {
        let h = host(4, 8192.0, 10_000.0);
        let flags = Reservation {
            cpus: Some(1.0),
            mem: Some(100_000.0),
            disk: Some(0.0),
        };
        let r = reserved(&h, flags);
        assert_eq!(r, Resources::new(1.0, 8192.0, 0.0));
        assert_eq!(offered(&h, &r), Resources::new(3.0, 0.0, 10_000.0));
    }

    #[test]
    fn probe_reads_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = HostProbe::new(dir.path()).unwrap();
        let info = p.refresh();
        assert!(info.cpus >= 1);
        assert!(info.mem_total_mb > 0.0);
        assert!(info.disk_total_mb > 0.0);
        assert!(!info.hostname.is_empty());
    }
}
