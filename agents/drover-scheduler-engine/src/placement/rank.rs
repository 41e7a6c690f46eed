//! Ranking: among the nodes that can take an instance, which one does.
//!
//! Spread by default: the node with the fewest instances of this app, then the most free
//! memory, then the most free CPUs, then the smallest name. The last key makes the choice
//! independent of the order of nodes in the snapshot.

use std::cmp::Ordering;

use super::{NodeSnapshot, Work};

/// A node's standing: compares greater when the node is the better choice, so a
/// `BinaryHeap` (a max-heap) pops the best node first.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key<'s> {
    app_count: u32,
    mem: f64,
    cpus: f64,
    name: &'s str,
    /// The node's index in the snapshot.
    pub(super) index: usize,
}

impl<'s> Key<'s> {
    pub(super) fn of(index: usize, nodes: &'s [NodeSnapshot], work: &[Work]) -> Key<'s> {
        let w = &work[index];
        Key {
            app_count: w.app_count,
            mem: w.free.mem,
            cpus: w.free.cpus,
            name: &nodes[index].name,
            index,
        }
    }
}

impl Ord for Key<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .app_count
            .cmp(&self.app_count)
            .then_with(|| self.mem.total_cmp(&other.mem))
            .then_with(|| self.cpus.total_cmp(&other.cpus))
            .then_with(|| other.name.cmp(self.name))
            .then_with(|| other.index.cmp(&self.index))
    }
}

impl PartialOrd for Key<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key<'_> {}

/// The best of the candidates, if there is any.
pub(super) fn best(candidates: &[usize], nodes: &[NodeSnapshot], work: &[Work]) -> Option<usize> {
    candidates
        .iter()
        .map(|&i| Key::of(i, nodes, work))
        .max()
        .map(|k| k.index)
}
