//! The rollout plan, a pure function: the selected hosts, what each runs now and what the
//! dist holds, and the options in; ordered batches out. Masters go one at a time, then
//! schedulers one at a time, then agents: a canary batch, then batches of `--batch`, never
//! larger than `--max-unavailable`. A binary whose checksum already matches is skipped.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::host::{FleetHost, Role};

/// A batch size: a count or a share of the agents being upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Size {
    /// This many hosts.
    Count(usize),
    /// This percentage of the agents being upgraded (rounded up, at least 1).
    Percent(u32),
}

impl Size {
    /// Hosts this size means out of `total`.
    pub fn of(self, total: usize) -> usize {
        match self {
            Size::Count(n) => n,
            Size::Percent(p) => (total * p as usize).div_ceil(100).max(1),
        }
    }
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: u32 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not N or N%"))?;
            if p == 0 || p > 100 {
                return Err(format!("{s:?}: a percentage must be 1-100"));
            }
            return Ok(Size::Percent(p));
        }
        let n: usize = s.parse().map_err(|_| format!("{s:?} is not N or N%"))?;
        if n == 0 {
            return Err(format!("{s:?}: must be at least 1"));
        }
        Ok(Size::Count(n))
    }
}

/// The options that shape the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanOptions {
    /// Agents in the first (canary) batch; 0 for none.
    pub canary: usize,
    /// Agents per batch after the canary.
    pub batch: Size,
    /// At most this many agents down at once (caps every agent batch).
    pub max_unavailable: Option<Size>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            canary: 1,
            batch: Size::Percent(25),
            max_unavailable: None,
        }
    }
}

/// One binary to replace on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The inventory host.
    pub host: String,
    /// Which binary.
    pub role: Role,
    /// The SHA-256 installed now (`None`: not installed).
    pub from: Option<String>,
    /// The SHA-256 of the dist binary.
    pub to: String,
}

/// Which part of the rollout a batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// One master.
    Master,
    /// One scheduler.
    Scheduler,
    /// The first agents.
    Canary,
    /// A batch of agents.
    Agents,
}

/// Steps done together, gated together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// Which part of the rollout.
    pub phase: Phase,
    /// The steps (one per host).
    pub steps: Vec<Step>,
}

/// The whole rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// In order.
    pub batches: Vec<Batch>,
    /// Host and binary pairs already on the dist's build.
    pub unchanged: Vec<(String, Role)>,
    /// Roles some host has but the dist lacks a binary for (left alone).
    pub missing_in_dist: Vec<Role>,
    /// The effective agent batch size after the canary.
    pub agent_batch: usize,
}

impl Plan {
    /// Every host the plan touches, in order.
    pub fn hosts(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in &self.batches {
            for s in &b.steps {
                if !out.contains(&s.host) {
                    out.push(s.host.clone());
                }
            }
        }
        out
    }
}

/// Builds the plan. `installed` maps (host, role) to the SHA-256 found on the host
/// (`None`: no binary); `dist` maps each role to the dist binary's SHA-256.
pub fn plan(
    hosts: &[FleetHost],
    installed: &BTreeMap<(String, Role), Option<String>>,
    dist: &BTreeMap<Role, String>,
    opts: &PlanOptions,
) -> Plan {
    let mut unchanged = Vec::new();
    let mut missing_in_dist = Vec::new();
    let mut by_role: BTreeMap<Role, Vec<Step>> = BTreeMap::new();
    for h in hosts {
        for role in &h.roles {
            let Some(to) = dist.get(role) else {
                if !missing_in_dist.contains(role) {
                    missing_in_dist.push(*role);
                }
                continue;
            };
            let from = installed.get(&(h.name.clone(), *role)).cloned().flatten();
            if from.as_deref() == Some(to.as_str()) {
                unchanged.push((h.name.clone(), *role));
                continue;
            }
            by_role.entry(*role).or_default().push(Step {
                host: h.name.clone(),
                role: *role,
                from,
                to: to.clone(),
            });
        }
    }
    let mut batches = Vec::new();
    for (role, phase) in [
        (Role::Master, Phase::Master),
        (Role::Scheduler, Phase::Scheduler),
    ] {
        for s in by_role.remove(&role).unwrap_or_default() {
            batches.push(Batch {
                phase,
                steps: vec![s],
            });
        }
    }
    let agents = by_role.remove(&Role::Agent).unwrap_or_default();
    let total = agents.len();
    let cap = opts
        .max_unavailable
        .map(|m| m.of(total))
        .unwrap_or(usize::MAX)
        .max(1);
    let batch = opts.batch.of(total).min(cap).max(1);
    let canary = opts.canary.min(cap);
    let mut rest = agents.into_iter();
    if canary > 0 {
        let steps: Vec<Step> = rest.by_ref().take(canary).collect();
        if !steps.is_empty() {
            batches.push(Batch {
                phase: Phase::Canary,
                steps,
            });
        }
    }
    loop {
        let steps: Vec<Step> = rest.by_ref().take(batch).collect();
        if steps.is_empty() {
            break;
        }
        batches.push(Batch {
            phase: Phase::Agents,
            steps,
        });
    }
    Plan {
        batches,
        unchanged,
        missing_in_dist,
        agent_batch: batch,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::host::Connection;

    fn host(name: &str, roles: &[Role]) -> FleetHost {
        FleetHost {
            name: name.into(),
            conn: Connection {
                host: name.into(),
                address: name.into(),
                port: 22,
                user: "root".into(),
                key_file: None,
                become_root: false,
            },
            roles: roles.to_vec(),
            bin_dir: "/usr/local/bin".into(),
            node_name: name.into(),
            restart_command: String::new(),
            scheduler_url: String::new(),
            install_args: Vec::new(),
        }
    }

    fn dist() -> BTreeMap<Role, String> {
        Role::ALL
            .into_iter()
            .map(|r| (r, format!("new-{r}")))
            .collect()
    }

    fn shape(p: &Plan) -> Vec<(Phase, Vec<String>)> {
        p.batches
            .iter()
            .map(|b| (b.phase, b.steps.iter().map(|s| s.host.clone()).collect()))
            .collect()
    }

    #[test]
    fn masters_then_schedulers_then_canary_then_batches() {
        let mut hosts = vec![host("m", &[Role::Master, Role::Scheduler])];
        for i in 1..=7 {
            hosts.push(host(&format!("a{i}"), &[Role::Agent]));
        }
        let opts = PlanOptions {
            canary: 1,
            batch: Size::Count(3),
            max_unavailable: None,
        };
        let p = plan(&hosts, &BTreeMap::new(), &dist(), &opts);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shape(&p),
            vec![
                (Phase::Master, s(&["m"])),
                (Phase::Scheduler, s(&["m"])),
                (Phase::Canary, s(&["a1"])),
                (Phase::Agents, s(&["a2", "a3", "a4"])),
                (Phase::Agents, s(&["a5", "a6", "a7"])),
            ]
        );
    }

    #[test]
    fn max_unavailable_caps_batches_and_percent_rounds_up() {
        let hosts: Vec<FleetHost> = (1..=10)
            .map(|i| host(&format!("a{i}"), &[Role::Agent]))
            .collect();
        let opts = PlanOptions {
            canary: 2,
            batch: Size::Percent(50),
            max_unavailable: Some(Size::Count(3)),
        };
        let p = plan(&hosts, &BTreeMap::new(), &dist(), &opts);
        let sizes: Vec<usize> = p.batches.iter().map(|b| b.steps.len()).collect();
        assert_eq!(sizes, vec![2, 3, 3, 2]);
        assert!(p.batches.iter().all(|b| b.steps.len() <= 3));
        assert_eq!(Size::Percent(25).of(10), 3);
        assert_eq!(Size::Percent(1).of(3), 1);
    }

    #[test]
    fn up_to_date_binaries_are_skipped_and_missing_dist_reported() {
        let hosts = vec![
            host("a1", &[Role::Agent]),
            host("a2", &[Role::Agent]),
            host("s", &[Role::Scheduler]),
        ];
        let mut installed = BTreeMap::new();
        installed.insert(
            ("a1".to_string(), Role::Agent),
            Some("new-agent".to_string()),
        );
        installed.insert(("a2".to_string(), Role::Agent), Some("old".to_string()));
        let mut d = dist();
        d.remove(&Role::Scheduler);
        let p = plan(&hosts, &installed, &d, &PlanOptions::default());
        assert_eq!(p.unchanged, vec![("a1".to_string(), Role::Agent)]);
        assert_eq!(p.missing_in_dist, vec![Role::Scheduler]);
        assert_eq!(p.batches.len(), 1);
        assert_eq!(p.batches[0].steps[0].from.as_deref(), Some("old"));
        assert_eq!(p.hosts(), vec!["a2".to_string()]);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!("3".parse::<Size>(), Ok(Size::Count(3)));
        assert_eq!("25%".parse::<Size>(), Ok(Size::Percent(25)));
        assert!("0".parse::<Size>().is_err());
        assert!("150%".parse::<Size>().is_err());
        assert!("x".parse::<Size>().is_err());
    }

    #[test]
    fn no_canary_means_batches_from_the_start() {
        let hosts: Vec<FleetHost> = (1..=4)
            .map(|i| host(&format!("a{i}"), &[Role::Agent]))
            .collect();
        let opts = PlanOptions {
            canary: 0,
            batch: Size::Count(2),
            max_unavailable: None,
        };
        let p = plan(&hosts, &BTreeMap::new(), &dist(), &opts);
        assert!(
            p.batches
                .iter()
                .all(|b| b.phase == Phase::Agents && b.steps.len() == 2)
        );
    }
}
