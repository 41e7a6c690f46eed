//! CPU, memory, disk and port quantities, with the arithmetic the ledger needs.

use serde::{Deserialize, Serialize};

/// Scalar resources, in Marathon's units: CPUs (fractional cores), memory and disk in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Fractional CPU cores.
    #[serde(default)]
    pub cpus: f64,
    /// Memory in MiB.
    #[serde(default)]
    pub mem: f64,
    /// Disk in MiB.
    #[serde(default)]
    pub disk: f64,
}

/// Largest value accepted for any single resource quantity; anything above is absurd.
pub const MAX_QUANTITY: f64 = 1.0e9;

/// Fewest CPUs a task, app instance or job run may reserve: the `minimum` Marathon's API
/// schema declares for `cpus`. A task that reserves no CPU costs nothing in the ledger,
/// so without a floor one request could pack unbounded tasks onto a node.
pub const MIN_CPUS: f64 = 0.001;

/// Least memory in MiB a task, app instance or job run may reserve: the `minimum`
/// Marathon's API schema declares for a pod's `mem` (its app schema says only `0`, and
/// a task that reserves no memory would be as free as one with no CPU).
pub const MIN_MEM: f64 = 0.001;

impl Resources {
    /// Resources with the given CPUs, memory and disk.
    pub fn new(cpus: f64, mem: f64, disk: f64) -> Self {
        Resources { cpus, mem, disk }
    }

    /// Component-wise sum.
    pub fn plus(self, other: Resources) -> Resources {
        Resources::new(
            self.cpus + other.cpus,
            self.mem + other.mem,
            self.disk + other.disk,
        )
    }

    /// Component-wise difference, floored at zero.
    pub fn minus(self, other: Resources) -> Resources {
        Resources::new(
            (self.cpus - other.cpus).max(0.0),
            (self.mem - other.mem).max(0.0),
            (self.disk - other.disk).max(0.0),
        )
    }

    /// Whether `self` fits inside `free`. A tiny epsilon absorbs float rounding of sums.
    pub fn fits_in(&self, free: &Resources) -> bool {
        const EPS: f64 = 1e-9;
        self.cpus <= free.cpus + EPS && self.mem <= free.mem + EPS && self.disk <= free.disk + EPS
    }

    /// The names of the resources in `self` that do not fit in `free`, with both figures.
    pub fn shortfall(&self, free: &Resources) -> Vec<String> {
        const EPS: f64 = 1e-9;
        let mut out = Vec::new();
        if self.cpus > free.cpus + EPS {
            out.push(format!(
                "cpus: wants {} but {} free",
                self.cpus,
                round2(free.cpus)
            ));
        }
        if self.mem > free.mem + EPS {
            out.push(format!(
                "mem: wants {} MiB but {} MiB free",
                self.mem,
                round2(free.mem)
            ));
        }
        if self.disk > free.disk + EPS {
            out.push(format!(
                "disk: wants {} MiB but {} MiB free",
                self.disk,
                round2(free.disk)
            ));
        }
        out
    }

    /// Checks that every quantity is finite, non-negative and not absurd; names the field
    /// (under `prefix`) that is not.
    pub fn validate(&self, prefix: &str) -> Result<(), crate::ApiError> {
        for (name, v) in [("cpus", self.cpus), ("mem", self.mem), ("disk", self.disk)] {
            if !v.is_finite() || v < 0.0 {
                return Err(crate::ApiError::invalid(
                    format!("{prefix}{name}"),
                    format!("must be a non-negative number, got {v}"),
                ));
            }
            if v > MAX_QUANTITY {
                return Err(crate::ApiError::invalid(
                    format!("{prefix}{name}"),
                    format!("{v} is absurdly large (limit {MAX_QUANTITY})"),
                ));
            }
        }
        Ok(())
    }

    /// [`Resources::validate`] plus the floors a running task needs: at least
    /// [`MIN_CPUS`] and [`MIN_MEM`], so every task takes room on its node.
    pub fn validate_task(&self, prefix: &str) -> Result<(), crate::ApiError> {
        self.validate(prefix)?;
        for (name, v, min) in [("cpus", self.cpus, MIN_CPUS), ("mem", self.mem, MIN_MEM)] {
            if v < min {
                return Err(crate::ApiError::invalid(
                    format!("{prefix}{name}"),
                    format!("{v} is below the minimum of {min} (a task must reserve some {name})"),
                ));
            }
        }
        Ok(())
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// An inclusive range of host ports an agent hands out to tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    /// First port of the range.
    pub begin: u16,
    /// Last port of the range (inclusive).
    pub end: u16,
}

impl Default for PortRange {
    /// Mesos's default port range.
    fn default() -> Self {
        PortRange {
            begin: 31000,
            end: 32000,
        }
    }
}

impl PortRange {
    /// Whether `port` lies inside the range.
    pub fn contains(&self, port: u16) -> bool {
        self.begin <= port && port <= self.end
    }

    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        if self.end < self.begin {
            0
        } else {
            (self.end - self.begin) as usize + 1
        }
    }

    /// Whether the range holds no port.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    /// Parses `LO-HI`, e.g. `31000-32000`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("expected LO-HI, got {s:?}"))?;
        let begin: u16 = lo.trim().parse().map_err(|_| format!("bad port {lo:?}"))?;
        let end: u16 = hi.trim().parse().map_err(|_| format!("bad port {hi:?}"))?;
        if begin == 0 || end < begin {
            return Err(format!("port range {s:?} is empty or starts at 0"));
        }
        Ok(PortRange { begin, end })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.begin, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_and_shortfall() {
        let free = Resources::new(1.0, 512.0, 100.0);
        assert!(Resources::new(1.0, 512.0, 0.0).fits_in(&free));
        let big = Resources::new(2.0, 100.0, 0.0);
        assert!(!big.fits_in(&free));
        assert_eq!(big.shortfall(&free).len(), 1);
        assert!(big.shortfall(&free)[0].starts_with("cpus"));
    }

    #[test]
    fn validate_rejects_negative_nan_and_absurd() {
        assert!(Resources::new(-1.0, 0.0, 0.0).validate("").is_err());
        assert!(Resources::new(f64::NAN, 0.0, 0.0).validate("").is_err());
        let e = Resources::new(0.0, 1e12, 0.0)
            .validate("task.resources.")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("task.resources.mem"));
    }

    #[test]
    fn validate_task_needs_some_cpu_and_memory() {
        assert!(
            Resources::new(MIN_CPUS, MIN_MEM, 0.0)
                .validate_task("")
                .is_ok()
        );
        let e = Resources::new(0.0, 64.0, 0.0)
            .validate_task("task.resources.")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("task.resources.cpus"));
        assert!(e.message.contains("minimum of 0.001"), "{}", e.message);
        let e = Resources::new(0.5, 0.0, 0.0).validate_task("").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("mem"));
        // Disk may stay zero, as in Marathon.
        assert!(Resources::new(0.5, 64.0, 0.0).validate_task("").is_ok());
        // The plain checks still come first.
        let e = Resources::new(-1.0, 64.0, 0.0)
            .validate_task("")
            .unwrap_err();
        assert!(e.message.contains("non-negative"), "{}", e.message);
    }

    #[test]
    fn port_range_parse() {
        let r: PortRange = "31000-31009".parse().unwrap();
        assert_eq!(r.len(), 10);
        assert!("5-1".parse::<PortRange>().is_err());
        assert!("abc".parse::<PortRange>().is_err());
    }
}
