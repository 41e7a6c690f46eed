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
