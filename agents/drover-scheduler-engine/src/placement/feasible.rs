//! Feasibility: why a node cannot take one more instance, and the summary of why none can.

use std::fmt;

use drover_api::app::ConstraintOperator;
use drover_api::node::NodeState;
use regex::Regex;

use super::{DynKind, Dynamic, Fnv, MISSING, NodeSnapshot, PlacementRequest, Work};
use std::collections::HashMap;

/// The constraint field that means the node itself.
pub const HOSTNAME: &str = "hostname";

/// One reason a node cannot take an instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// The node missed its heartbeats.
    Unreachable,
    /// The node is draining.
    Draining,
    /// The instance runs a container and the node has no `docker` capability.
    NoDocker,
    /// Not enough free CPUs for one instance.
    Cpus {
        /// CPUs one instance wants.
        wants: f64,
    },
    /// Not enough free memory.
    Mem {
        /// MiB one instance wants.
        wants: f64,
    },
    /// Not enough free disk.
    Disk {
        /// MiB one instance wants.
        wants: f64,
    },
    /// Not enough free host ports in the node's range.
    Ports {
        /// Ports one instance wants.
        wants: usize,
    },
    /// The node runs as many tasks as its agent allows.
    TaskLimit,
    /// A fixed host port is already held on the node.
    PortInUse(u16),
    /// A fixed host port is outside the node's port range.
    PortOutsideRange(u16),
    /// A constraint fails here.
    Constraint {
        /// The constraint as Marathon writes it (`hostname UNIQUE`).
        constraint: String,
        /// Why it fails on this node.
        why: String,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unreachable => f.write_str("unreachable"),
            Rejection::Draining => f.write_str("draining"),
            Rejection::NoDocker => f.write_str("no docker capability (the app runs a container)"),
            Rejection::Cpus { wants } => write!(f, "insufficient cpus (wants {wants})"),
            Rejection::Mem { wants } => write!(f, "insufficient mem (wants {wants} MiB)"),
            Rejection::Disk { wants } => write!(f, "insufficient disk (wants {wants} MiB)"),
            Rejection::Ports { wants } => write!(f, "insufficient free ports (wants {wants})"),
            Rejection::TaskLimit => {
                f.write_str("runs its most tasks at once (drover-agent --max-tasks)")
            }
            Rejection::PortInUse(p) => write!(f, "port {p} already in use"),
            Rejection::PortOutsideRange(p) => write!(f, "port {p} outside the node's port range"),
            Rejection::Constraint { constraint, why } => write!(f, "{constraint} {why}"),
        }
    }
}

/// Why no node can take the next instance: each node counted once, under the first check
/// it fails (state, docker, cpus, mem, disk, ports, then constraints in order).
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementFailure {
    /// The app.
    pub app_id: String,
    /// Nodes in the snapshot.
    pub total_nodes: usize,
    /// Each distinct reason with how many nodes it rules out, in check order.
    pub reasons: Vec<(Rejection, usize)>,
}

impl fmt::Display for PlacementFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.total_nodes == 0 {
            return write!(
                f,
                "no node can take an instance of {}: the cluster has no nodes",
                self.app_id
            );
        }
        write!(f, "no node can take an instance of {}: ", self.app_id)?;
        for (i, (r, n)) in self.reasons.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let noun = if self.total_nodes == 1 {
                "node"
            } else {
                "nodes"
            };
            write!(f, "{n} of {} {noun}: {r}", self.total_nodes)?;
        }
        Ok(())
    }
}

/// A node's value for a constraint field: its name for `hostname`, else its attribute.
pub fn field_value<'n>(node: &'n NodeSnapshot, field: &str) -> Option<&'n str> {
    if field == HOSTNAME {
        Some(node.name.as_str())
    } else {
        node.attributes.get(field).map(String::as_str)
    }
}

/// Whether the node takes placements at all, and whether it can run the instance's kind.
pub(super) fn node_rejection(
    request: &PlacementRequest<'_>,
    node: &NodeSnapshot,
) -> Option<Rejection> {
    match node.state {
        NodeState::Unreachable => return Some(Rejection::Unreachable),
        NodeState::Draining => return Some(Rejection::Draining),
        NodeState::Ready if node.draining => return Some(Rejection::Draining),
        NodeState::Ready => {}
    }
    if request.needs_docker && !node.docker {
        return Some(Rejection::NoDocker);
    }
    None
}

/// Whether one more instance fits the node's remaining resources and ports.
pub(super) fn fits(request: &PlacementRequest<'_>, w: &Work) -> Option<Rejection> {
    const EPS: f64 = 1e-9;
    if w.task_slots == Some(0) {
        return Some(Rejection::TaskLimit);
    }
    let r = &request.resources;
    if r.cpus > w.free.cpus + EPS {
        return Some(Rejection::Cpus { wants: r.cpus });
    }
    if r.mem > w.free.mem + EPS {
        return Some(Rejection::Mem { wants: r.mem });
    }
    if r.disk > w.free.disk + EPS {
        return Some(Rejection::Disk { wants: r.disk });
    }
    if request.port_count() > w.ports_free {
        return Some(Rejection::Ports {
            wants: request.port_count(),
        });
    }
    if w.fixed_taken {
        // An instance placed by this call holds the fixed ports now.
        return request
            .fixed_ports
            .first()
            .map(|p| Rejection::PortInUse(*p));
    }
    None
}

/// Constraints whose verdict depends only on the node (LIKE, UNLIKE, IS, CLUSTER with a
/// value), with their regular expressions compiled once per call.
pub(super) struct Statics<'s> {
    checks: Vec<(usize, Static)>,
    /// Verdicts per check and value: a regular expression runs once per distinct value,
    /// not once per node (not used for `hostname`, where every value is distinct).
    memo: Vec<HashMap<&'s str, bool, Fnv>>,
}

enum Static {
    Like(Option<Regex>),
    Unlike(Option<Regex>),
    Is(String),
    Cluster(String),
}

impl<'s> Statics<'s> {
    pub(super) fn new(request: &PlacementRequest<'_>) -> Statics<'s> {
        // Marathon matches the whole value (Java `matches`), hence the anchors. A pattern
        // that does not compile was refused by app validation; here it matches nothing.
        let full = |re: &str| Regex::new(&format!("^(?:{re})$")).ok();
        let checks: Vec<(usize, Static)> = request
            .constraints
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let s = match &c.operator {
                    ConstraintOperator::Like(re) => Static::Like(full(re)),
                    ConstraintOperator::Unlike(re) => Static::Unlike(full(re)),
                    ConstraintOperator::Is(v) => Static::Is(v.clone()),
                    ConstraintOperator::Cluster(Some(v)) => Static::Cluster(v.clone()),
                    _ => return None,
                };
                Some((i, s))
            })
            .collect();
        let memo = checks.iter().map(|_| HashMap::default()).collect();
        Statics { checks, memo }
    }

    /// Whether every static constraint and fixed port passes on `node` (no message built).
    pub(super) fn passes(
        &mut self,
        request: &PlacementRequest<'_>,
        node: &'s NodeSnapshot,
    ) -> bool {
        let ports_ok = request
            .fixed_ports
            .iter()
            .all(|p| node.ports.contains(*p) && !node.used_ports.contains(p));
        ports_ok
            && self
                .checks
                .iter()
                .zip(self.memo.iter_mut())
                .all(|((i, s), memo)| {
                    let field = &request.constraints[*i].field;
                    match field_value(node, field) {
                        Some(v) if field != HOSTNAME => {
                            *memo.entry(v).or_insert_with(|| s.passes(Some(v)))
                        }
                        v => s.passes(v),
                    }
                })
    }

    /// The first static constraint or fixed port that fails on `node`.
    pub(super) fn rejection(
        &self,
        request: &PlacementRequest<'_>,
        node: &NodeSnapshot,
    ) -> Option<Rejection> {
        for p in &request.fixed_ports {
            if !node.ports.contains(*p) {
                return Some(Rejection::PortOutsideRange(*p));
            }
            if node.used_ports.contains(p) {
                return Some(Rejection::PortInUse(*p));
            }
        }
        let (i, _) = self
            .checks
            .iter()
            .find(|(i, s)| !s.passes(field_value(node, &request.constraints[*i].field)))?;
        let c = &request.constraints[*i];
        let why = match field_value(node, &c.field) {
            None => format!("node has no attribute {}", c.field),
            Some(v) => match &c.operator {
                ConstraintOperator::Like(_) => format!("does not match {v:?}"),
                ConstraintOperator::Unlike(_) => format!("matches {v:?}"),
                _ => format!("is {v:?}"),
            },
        };
        Some(Rejection::Constraint {
            constraint: c.to_string(),
            why,
        })
    }
}

impl Static {
    /// Whether a node whose value is `v` (None: no such attribute) passes.
    fn passes(&self, v: Option<&str>) -> bool {
        match (self, v) {
            // A node without the attribute is unlike anything; it fails every other check.
            (Static::Unlike(_), None) => true,
            (_, None) => false,
            (Static::Like(re), Some(v)) => re.as_ref().is_some_and(|re| re.is_match(v)),
            (Static::Unlike(re), Some(v)) => !re.as_ref().is_some_and(|re| re.is_match(v)),
            (Static::Is(want) | Static::Cluster(want), Some(v)) => v == want,
        }
    }
}

/// Whether a dynamic constraint allows one more instance on a node whose value is `id`.
/// The hot loop only needs yes or no; `explain` builds the message.
pub(super) fn dynamic_ok(d: &Dynamic<'_>, id: u32) -> bool {
    if id == MISSING {
        return false;
    }
    let count = d.counts[id as usize];
    match d.kind {
        DynKind::Unique => count == 0,
        DynKind::MaxPer(n) => count < n,
        DynKind::ClusterFirst => d.cluster_value.is_none_or(|c| c == id),
        // GROUP_BY narrows the feasible set afterwards; it never rules a node out alone.
        DynKind::GroupBy => true,
    }
}

/// The message of a dynamic constraint that fails on a node with value `id`.
fn dynamic_message(request: &PlacementRequest<'_>, d: &Dynamic<'_>, id: u32) -> Rejection {
    let c = &request.constraints[d.index];
    let why = if id == MISSING {
        format!("node has no attribute {}", c.field)
    } else {
        let count = d.counts[id as usize];
        let value = &d.names[id as usize];
        match d.kind {
            DynKind::Unique if c.field == HOSTNAME => "already has an instance".to_string(),
            DynKind::Unique => "value already has an instance".to_string(),
            DynKind::MaxPer(n) => format!("value already has {count} instance(s) (max {n})"),
            DynKind::ClusterFirst => {
                let first = d
                    .cluster_value
                    .map(|c| d.names[c as usize])
                    .unwrap_or_default();
                format!("is {value:?}, instances run on {first:?}")
            }
            DynKind::GroupBy => format!("value {value:?} already has more instances than another"),
        }
    };
    Rejection::Constraint {
        constraint: c.to_string(),
        why,
    }
}

/// Counts, per first failing check, the nodes that cannot take the next instance.
pub(super) fn explain(
    request: &PlacementRequest<'_>,
    nodes: &[NodeSnapshot],
    statics: &Statics<'_>,
    work: &[Work],
    dynamics: &[Dynamic<'_>],
    vals: &[Vec<u32>],
) -> PlacementFailure {
    let mut reasons: Vec<(Rejection, usize)> = Vec::new();
    let mut order: Vec<(u8, String)> = Vec::new();
    for (i, w) in work.iter().enumerate() {
        let (rank, r) = if let Some(r) = node_rejection(request, &nodes[i]) {
            (0, r)
        } else if let Some(r) = fits(request, w) {
            (1, r)
        } else if let Some(r) = statics.rejection(request, &nodes[i]) {
            (2, r)
        } else if let Some((d, v)) = dynamics
            .iter()
            .zip(vals)
            .find(|(d, v)| !dynamic_ok(d, v[i]))
        {
            (3, dynamic_message(request, d, v[i]))
        } else {
            // Feasible but cut by GROUP_BY balancing; cannot be the only reason, since the
            // least-loaded value always stays feasible.
            continue;
        };
        let key = (rank, r.to_string());
        // The same text can come from two checks (a fixed port held before or during
        // this call); count it once, under the earlier check.
        match order.iter().position(|k| k.1 == key.1) {
            Some(p) => {
                reasons[p].1 += 1;
                order[p].0 = order[p].0.min(rank);
            }
            None => {
                order.push(key);
                reasons.push((r, 1));
            }
        }
    }
    // Check order first, then the most common reason, then the text, for a stable message.
    let mut idx: Vec<usize> = (0..reasons.len()).collect();
    idx.sort_by(|&a, &b| {
        order[a]
            .0
            .cmp(&order[b].0)
            .then(reasons[b].1.cmp(&reasons[a].1))
            .then(order[a].1.cmp(&order[b].1))
    });
    let reasons = idx.into_iter().map(|i| reasons[i].clone()).collect();
    PlacementFailure {
        app_id: request.app_id.to_string(),
        total_nodes: work.len(),
        reasons,
    }
}
