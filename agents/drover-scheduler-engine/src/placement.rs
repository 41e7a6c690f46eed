//! Placement of app instances on a cluster snapshot: a pure function, snapshot in, [`Plan`] out.
//!
//! ```text
//! PlacementRequest + ClusterSnapshot
//!        │
//!        ▼   prepare: intern constraint values, evaluate static checks once per node
//!   ┌──────────────── for each instance ───────────────┐
//!   │ feasible: state, docker, cpus/mem/disk, ports,   │
//!   │           UNIQUE / MAX_PER / CLUSTER / GROUP_BY  │
//!   │ rank:     fewest instances of this app, then     │
//!   │           most free memory and CPU, then name    │
//!   │ apply:    take the resources in the working copy │
//!   └──────────────────────────────────────────────────┘
//!        ▼
//!      Plan { placements, unplaced with a reason per failing check }
//! ```
//!
//! - [`feasible`]: why a node cannot take an instance ([`Rejection`]) and the failure
//!   summary ([`PlacementFailure`]).
//! - [`rank`]: the order among feasible nodes.
//!
//! Vocabulary: a *node* is a [`NodeSnapshot`]; an *instance* is one task of the app; the
//! *value* of a node for a constraint field is its name for `hostname`, else its attribute.
//! The function reads no clock and does no I/O; placing N instances updates a working
//! copy of the snapshot, so one call places many instances consistently. The master
//! re-checks every placement (the scheduler proposes, the master disposes).
//!
//! Semantics worth knowing:
//! - Only `ready` nodes that are not draining take instances; a container app only nodes
//!   with the `docker` capability.
//! - Ports: every requested port takes one of the node's free range ports; a fixed port
//!   must lie in the node's range and not be in `used_ports` (as Mesos offers only ports
//!   of the agent's range).
//! - A node without the constraint's attribute fails every operator but UNLIKE
//!   (Marathon's rule). LIKE/UNLIKE match the whole value.
//! - GROUP_BY keeps the values with the fewest instances among the values that still have
//!   a feasible node (its optional group count is not enforced: placement spreads over the
//!   values it can see). CLUSTER without a value follows the existing instances, or the
//!   first one placed.
//! - Search: one heap of candidates (every check but GROUP_BY only gets stricter as
//!   instances are placed, so a node that fails once is dropped for good), a heap per value
//!   with one GROUP_BY, a full scan per instance with several GROUP_BYs or a single
//!   instance. A property test checks the three agree.
//! - Cost: the per-call setup is one pass over the nodes (about 0.1 ms for 5,000 nodes
//!   without constraints), then O(log n) per instance; see `benches/placement.rs`.

pub mod feasible;
pub mod rank;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use drover_api::app::{AppDefinition, Constraint, ConstraintOperator};
use drover_api::node::{Node, NodeState};
use drover_api::{PortRange, Resources};

pub use feasible::{PlacementFailure, Rejection};

/// The part of a node that placement reads.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSnapshot {
    /// The node's name (its `hostname` for constraints).
    pub name: String,
    /// Ready, draining or unreachable.
    pub state: NodeState,
    /// Set by an operator's drain (also refuses placements while ready).
    pub draining: bool,
    /// Operator-set attributes, for constraints.
    pub attributes: BTreeMap<String, String>,
    /// Whether the node can run Docker containers.
    pub docker: bool,
    /// Free resources.
    pub free: Resources,
    /// The node's host port range.
    pub ports: PortRange,
    /// How many ports of the range are held.
    pub ports_allocated: usize,
    /// Host ports known to be held (for fixed port requests); may be empty when the
    /// source only knows the count.
    pub used_ports: BTreeSet<u16>,
    /// How many more tasks the node takes (its agent's task limit less its active
    /// tasks); `None`: no limit.
    pub task_slots: Option<usize>,
}

impl From<&Node> for NodeSnapshot {
    fn from(n: &Node) -> Self {
        NodeSnapshot {
            name: n.name.clone(),
            state: n.state,
            draining: n.draining,
            attributes: n.attributes.clone(),
            docker: n.capabilities.contains(&drover_api::Capability::Docker),
            free: n.free,
            ports: n.ports,
            ports_allocated: n.ports_allocated,
            used_ports: BTreeSet::new(),
            task_slots: n
                .max_tasks
                .map(|max| (max as usize).saturating_sub(n.active_tasks)),
        }
    }
}

/// A read-only view of the cluster at one revision of the master's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSnapshot {
    /// The master's state revision this snapshot was read at; carried into the plan.
    pub revision: u64,
    /// The nodes.
    pub nodes: Vec<NodeSnapshot>,
}

impl ClusterSnapshot {
    /// A snapshot of the master's nodes.
    pub fn from_nodes(revision: u64, nodes: &[Node]) -> Self {
        ClusterSnapshot {
            revision,
            nodes: nodes.iter().map(NodeSnapshot::from).collect(),
        }
    }

    /// Takes a plan's placements out of the snapshot's free resources and ports, so that
    /// the next app is placed against what this one will use.
    pub fn apply(&mut self, request: &PlacementRequest<'_>, plan: &Plan) {
        let by_name: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let idx: Vec<Option<usize>> = plan
            .placements
            .iter()
            .map(|p| by_name.get(p.node.as_str()).copied())
            .collect();
        for i in idx.into_iter().flatten() {
            let n = &mut self.nodes[i];
            n.free = n.free.minus(request.resources);
            n.ports_allocated += request.port_count();
            n.used_ports.extend(request.fixed_ports.iter().copied());
            if let Some(slots) = &mut n.task_slots {
                *slots = slots.saturating_sub(1);
            }
        }
    }
}

/// What to place: one app's per-instance needs, its constraints and its current instances.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementRequest<'a> {
    /// The app, for messages.
    pub app_id: &'a str,
    /// Per-instance resources.
    pub resources: Resources,
    /// Fixed host ports each instance needs (must be free and in the node's range).
    pub fixed_ports: Vec<u16>,
    /// Further host ports each instance needs, any free port of the range.
    pub random_ports: usize,
    /// Whether the instance runs a container (needs the `docker` capability).
    pub needs_docker: bool,
    /// Placement constraints.
    pub constraints: &'a [Constraint],
    /// How many new instances to place.
    pub count: usize,
    /// The app's instances that already run (or are planned), by node name.
    pub existing: &'a BTreeMap<String, usize>,
}

impl<'a> PlacementRequest<'a> {
    /// The request for `count` new instances of `app`, given its instances per node.
    pub fn for_app(
        app: &'a AppDefinition,
        count: usize,
        existing: &'a BTreeMap<String, usize>,
    ) -> Self {
        let ports = app.host_ports();
        PlacementRequest {
            app_id: app.id.as_str(),
            resources: app.resources,
            fixed_ports: ports
                .iter()
                .filter(|p| p.port != 0)
                .map(|p| p.port)
                .collect(),
            random_ports: ports.iter().filter(|p| p.port == 0).count(),
            needs_docker: app.image().is_some(),
            constraints: &app.constraints,
            count,
            existing,
        }
    }

    /// All host ports one instance holds.
    pub fn port_count(&self) -> usize {
        self.fixed_ports.len() + self.random_ports
    }
}

/// One instance's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The node to launch on.
    pub node: String,
}

/// Instances that could not be placed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unplaced {
    /// How many of the requested instances are left unplaced.
    pub count: usize,
    /// Why no node could take the next one, per failing check with its node count.
    pub reason: PlacementFailure,
}

/// The outcome of a placement: where each instance goes and what could not be placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The snapshot revision the plan was computed at (the master re-checks against it).
    pub revision: u64,
    /// One entry per placed instance, in placement order.
    pub placements: Vec<Placement>,
    /// The instances left over, if any.
    pub unplaced: Option<Unplaced>,
}

impl Plan {
    /// How many instances the plan puts on each node.
    pub fn per_node(&self) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for p in &self.placements {
            *out.entry(p.node.as_str()).or_insert(0) += 1;
        }
        out
    }
}

/// Sentinel value id: the node has no such attribute.
const MISSING: u32 = u32::MAX;

/// A constraint whose verdict depends on where instances are (evaluated per placement).
#[derive(Debug)]
struct Dynamic<'s> {
    /// Index into the request's constraints, for messages.
    index: usize,
    kind: DynKind,
    /// Instances of the app per value id.
    counts: Vec<u32>,
    /// Value names by id, for messages and tie-breaks.
    names: Vec<&'s str>,
    /// For CLUSTER without a value: the value all instances must share, once one runs.
    cluster_value: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DynKind {
    Unique,
    MaxPer(u32),
    /// CLUSTER without a value: all instances share the first one's value.
    ClusterFirst,
    GroupBy,
}

/// The per-call working copy of a node.
#[derive(Debug)]
struct Work {
    free: Resources,
    ports_free: usize,
    task_slots: Option<usize>,
    /// Whether this call already placed an instance here, which holds the fixed ports.
    fixed_taken: bool,
    app_count: u32,
    /// The node fails a check that no placement changes (state, docker, a static
    /// constraint, a fixed port); `explain` recomputes which one, only when needed.
    blocked: bool,
}

/// Places `request.count` instances on the snapshot; deterministic for equal inputs and
/// independent of the order of the snapshot's nodes (node names are unique).
pub fn place(request: &PlacementRequest<'_>, snapshot: &ClusterSnapshot) -> Plan {
    place_in(request, snapshot)
}

/// [`place`] with one lifetime for the request's and the snapshot's strings, so the
/// working state can borrow names instead of copying them.
fn place_in<'s>(request: &PlacementRequest<'s>, snapshot: &'s ClusterSnapshot) -> Plan {
    let nodes = &snapshot.nodes;
    let mut statics = feasible::Statics::new(request);
    // Existing instances on nodes of the snapshot, by node index; the rest ran on nodes
    // that are gone, which only `hostname` constraints can still name.
    let mut existing_at: Vec<(usize, u32)> = Vec::with_capacity(request.existing.len());
    let mut work: Vec<Work> = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let app_count = match request.existing.get(&n.name) {
            None => 0,
            Some(k) => {
                let k = u32::try_from(*k).unwrap_or(u32::MAX);
                existing_at.push((i, k));
                k
            }
        };
        work.push(Work {
            free: n.free,
            ports_free: n.ports.len().saturating_sub(n.ports_allocated),
            task_slots: n.task_slots,
            fixed_taken: false,
            app_count,
            blocked: feasible::node_rejection(request, n).is_some() || !statics.passes(request, n),
        });
    }
    let gone: Vec<(&'s str, u32)> = if existing_at.len() == request.existing.len() {
        Vec::new()
    } else {
        let present: std::collections::HashSet<&str> = existing_at
            .iter()
            .map(|(i, _)| nodes[*i].name.as_str())
            .collect();
        request
            .existing
            .iter()
            .filter(|(name, _)| !present.contains(name.as_str()))
            .map(|(name, k)| (name.as_str(), u32::try_from(*k).unwrap_or(u32::MAX)))
            .collect()
    };

    // Intern each dynamic constraint's values: vals[j][node] = value id of node for dynamic j.
    let mut dynamics = Vec::new();
    let mut vals: Vec<Vec<u32>> = Vec::new();
    for (index, c) in request.constraints.iter().enumerate() {
        let kind = match &c.operator {
            ConstraintOperator::Unique => DynKind::Unique,
            ConstraintOperator::MaxPer(n) => DynKind::MaxPer(*n),
            ConstraintOperator::Cluster(None) => DynKind::ClusterFirst,
            ConstraintOperator::GroupBy(_) => DynKind::GroupBy,
            // LIKE, UNLIKE, IS and CLUSTER with a value are static: see feasible.rs.
            _ => continue,
        };
        let (node_vals, mut names) = if c.field == feasible::HOSTNAME {
            // Every node is its own value: no hashing needed.
            let ids = (0..nodes.len())
                .map(|i| u32::try_from(i).unwrap_or(MISSING))
                .collect();
            (
                ids,
                nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            )
        } else {
            let mut ids: HashMap<&'s str, u32, Fnv> = HashMap::default();
            let mut names = Vec::new();
            let node_vals = nodes
                .iter()
                .map(|n| match feasible::field_value(n, &c.field) {
                    Some(v) => *ids.entry(v).or_insert_with(|| {
                        names.push(v);
                        u32::try_from(names.len() - 1).unwrap_or(MISSING)
                    }),
                    None => MISSING,
                })
                .collect::<Vec<u32>>();
            (node_vals, names)
        };
        let mut counts = vec![0u32; names.len()];
        for &(i, k) in &existing_at {
            let id = node_vals[i];
            if id != MISSING {
                counts[id as usize] = counts[id as usize].saturating_add(k);
            }
        }
        if c.field == feasible::HOSTNAME {
            // A gone node is a host of its own: it counts, but no node has its value.
            for &(name, k) in &gone {
                names.push(name);
                counts.push(k);
            }
        }
        // CLUSTER without a value follows the value most existing instances have (ties:
        // the smallest value, so the choice does not depend on map order).
        let cluster_value = (kind == DynKind::ClusterFirst)
            .then(|| {
                (0..counts.len())
                    .filter(|&id| counts[id] > 0)
                    .max_by(|&a, &b| {
                        counts[a]
                            .cmp(&counts[b])
                            .then_with(|| names[b].cmp(names[a]))
                    })
                    .and_then(|id| u32::try_from(id).ok())
            })
            .flatten();
        dynamics.push(Dynamic {
            index,
            kind,
            counts,
            names,
            cluster_value,
        });
        vals.push(node_vals);
    }

    let mut placements = Vec::with_capacity(request.count);
    // Every check but GROUP_BY is monotone within a call (resources only shrink, counts
    // only grow), so a node that fails once can be dropped for good: a heap of the
    // candidates, best first, makes each placement O(log n). GROUP_BY ("fewest instances
    // among the values that can still take one") is not monotone across values, but it is
    // within one value: one heap per value, and the least-loaded value's best node wins.
    // Two GROUP_BYs at once fall back to a scan of every node per placement.
    let group_bys: Vec<usize> = (0..dynamics.len())
        .filter(|&j| dynamics[j].kind == DynKind::GroupBy)
        .collect();
    let candidates = |i: &usize| !work[*i].blocked;
    let mut search = match group_bys.as_slice() {
        // One instance: a single pass beats building a heap.
        _ if request.count <= 1 => Search::Scan(Vec::with_capacity(if group_bys.is_empty() {
            0
        } else {
            nodes.len()
        })),
        [] => Search::Heap(
            (0..nodes.len())
                .filter(candidates)
                .map(|i| rank::Key::of(i, nodes, &work))
                .collect(),
        ),
        [g] => {
            let mut heaps: Vec<BinaryHeap<rank::Key<'_>>> = (0..dynamics[*g].counts.len())
                .map(|_| BinaryHeap::new())
                .collect();
            for i in (0..nodes.len()).filter(candidates) {
                let id = vals[*g][i];
                if id != MISSING {
                    heaps[id as usize].push(rank::Key::of(i, nodes, &work));
                }
            }
            Search::Groups { dynamic: *g, heaps }
        }
        _ => Search::Scan(Vec::with_capacity(nodes.len())),
    };
    for placed in 0..request.count {
        let ok = |i: usize, work: &[Work]| {
            feasible::fits(request, &work[i]).is_none() && dynamics_ok(&dynamics, &vals, i)
        };
        let chosen = match &mut search {
            Search::Heap(heap) => {
                while heap.peek().is_some_and(|k| !ok(k.index, &work)) {
                    heap.pop();
                }
                heap.pop().map(|k| k.index)
            }
            Search::Groups { dynamic, heaps } => {
                let counts = &dynamics[*dynamic].counts;
                let mut best: Option<(u32, rank::Key<'_>)> = None;
                for (g, heap) in heaps.iter_mut().enumerate() {
                    while heap.peek().is_some_and(|k| !ok(k.index, &work)) {
                        heap.pop();
                    }
                    if let Some(top) = heap.peek() {
                        let better =
                            best.is_none_or(|(c, k)| counts[g] < c || (counts[g] == c && *top > k));
                        if better {
                            best = Some((counts[g], *top));
                        }
                    }
                }
                best.map(|(_, k)| {
                    let g = vals[*dynamic][k.index] as usize;
                    heaps[g].pop();
                    k.index
                })
            }
            // Without GROUP_BY one fused pass suffices: no candidate list.
            Search::Scan(_) if group_bys.is_empty() => (0..work.len())
                .filter(|&i| !work[i].blocked && ok(i, &work))
                .map(|i| rank::Key::of(i, nodes, &work))
                .max()
                .map(|k| k.index),
            Search::Scan(feasible_idx) => {
                feasible_idx.clear();
                feasible_idx.extend((0..work.len()).filter(|&i| !work[i].blocked && ok(i, &work)));
                for (d, v) in dynamics.iter().zip(&vals) {
                    if d.kind == DynKind::GroupBy {
                        let min = feasible_idx.iter().map(|&i| group_count(d, v[i])).min();
                        if let Some(min) = min {
                            feasible_idx.retain(|&i| group_count(d, v[i]) == min);
                        }
                    }
                }
                rank::best(feasible_idx, nodes, &work)
            }
        };
        let Some(best) = chosen else {
            let reason = feasible::explain(request, nodes, &statics, &work, &dynamics, &vals);
            return Plan {
                revision: snapshot.revision,
                placements,
                unplaced: Some(Unplaced {
                    count: request.count - placed,
                    reason,
                }),
            };
        };
        let w = &mut work[best];
        w.free = w.free.minus(request.resources);
        w.ports_free = w.ports_free.saturating_sub(request.port_count());
        if let Some(slots) = &mut w.task_slots {
            *slots = slots.saturating_sub(1);
        }
        w.fixed_taken |= !request.fixed_ports.is_empty();
        w.app_count = w.app_count.saturating_add(1);
        for (d, v) in dynamics.iter_mut().zip(&vals) {
            let id = v[best];
            if id != MISSING {
                d.counts[id as usize] += 1;
                if d.kind == DynKind::ClusterFirst && d.cluster_value.is_none() {
                    d.cluster_value = Some(id);
                }
            }
        }
        // The node goes back with its new standing (its value's heap for GROUP_BY).
        match &mut search {
            Search::Heap(heap) => heap.push(rank::Key::of(best, nodes, &work)),
            Search::Groups { dynamic, heaps } => {
                heaps[vals[*dynamic][best] as usize].push(rank::Key::of(best, nodes, &work));
            }
            Search::Scan(_) => {}
        }
        placements.push(Placement {
            node: nodes[best].name.clone(),
        });
    }
    Plan {
        revision: snapshot.revision,
        placements,
        unplaced: None,
    }
}

/// How `place` finds the best feasible node for each instance.
enum Search<'s> {
    /// No GROUP_BY: one heap of all candidates.
    Heap(BinaryHeap<rank::Key<'s>>),
    /// One GROUP_BY: a heap per value of its field.
    Groups {
        /// Index of the GROUP_BY among the dynamic constraints.
        dynamic: usize,
        /// Candidates by value id.
        heaps: Vec<BinaryHeap<rank::Key<'s>>>,
    },
    /// Several GROUP_BYs, or a single instance: scan every node (the buffer is reused
    /// between instances).
    Scan(Vec<usize>),
}

fn dynamics_ok(dynamics: &[Dynamic<'_>], vals: &[Vec<u32>], i: usize) -> bool {
    dynamics
        .iter()
        .zip(vals)
        .all(|(d, v)| feasible::dynamic_ok(d, v[i]))
}

fn group_count(d: &Dynamic<'_>, id: u32) -> u32 {
    if id == MISSING {
        u32::MAX
    } else {
        d.counts[id as usize]
    }
}

#[cfg(test)]
mod tests;

/// FNV-1a: interning attribute values hashes thousands of short strings per call, where
/// SipHash's DoS resistance buys nothing (the values come from operators, not the network).
#[derive(Default, Clone, Copy)]
struct Fnv;

impl std::hash::BuildHasher for Fnv {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

/// The running FNV-1a state.
struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
