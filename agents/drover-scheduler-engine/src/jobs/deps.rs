//! Dependent jobs: who are a job's children, and whether a dependent job is ready.
//!
//! A dependent job runs once every parent has succeeded at least once since its last
//! dependency run. Each dependent keeps [`ParentMarks`]: for each parent, when it last
//! succeeded since then. A parent's success (any run of it, or an operator's "mark
//! success"; a failure too when the parent has `softError`) marks each child; a child
//! whose parents are all marked is ready, and starting it clears its marks. In the
//! diamond A -> B, A -> C, {B, C} -> D, D is ready only when both B and C have marked it,
//! so it runs once per round.
//!
//! The marks are plain data persisted with the dependent job.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// For one dependent job: each parent that succeeded since the job's last dependency
/// run, and when it last did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParentMarks(pub BTreeMap<String, DateTime<Utc>>);

impl ParentMarks {
    /// Records that `parent` succeeded at `at`.
    pub fn mark(&mut self, parent: &str, at: DateTime<Utc>) {
        self.0.insert(parent.to_string(), at);
    }

    /// Whether every one of `parents` is marked (false for no parents: a job without
    /// parents is not a dependent job).
    pub fn ready(&self, parents: &[String]) -> bool {
        !parents.is_empty() && parents.iter().all(|p| self.0.contains_key(p))
    }

    /// The parents not marked yet, in the order given.
    pub fn waiting_for(&self, parents: &[String]) -> Vec<String> {
        parents
            .iter()
            .filter(|p| !self.0.contains_key(*p))
            .cloned()
            .collect()
    }

    /// Forgets every mark (the job has just started a dependency run).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Drops marks of jobs that are no longer parents.
    pub fn retain_parents(&mut self, parents: &[String]) {
        self.0.retain(|p, _| parents.contains(p));
    }
}

/// Each job's children, built from the jobs' parent lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChildIndex(BTreeMap<String, BTreeSet<String>>);

impl ChildIndex {
    /// Builds the index from `(job, parents)` pairs.
    pub fn build<'a>(jobs: impl IntoIterator<Item = (&'a str, &'a [String])>) -> ChildIndex {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (job, parents) in jobs {
            for p in parents {
                map.entry(p.clone()).or_default().insert(job.to_string());
            }
        }
        ChildIndex(map)
    }

    /// The jobs that name `parent` as a parent, in name order.
    pub fn children(&self, parent: &str) -> impl Iterator<Item = &str> {
        self.0.get(parent).into_iter().flatten().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diamond_readiness() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let b = vec!["a".to_string()];
        let d = vec!["b".to_string(), "c".to_string()];
        let idx = ChildIndex::build([
            ("b", b.as_slice()),
            ("c", b.as_slice()),
            ("d", d.as_slice()),
        ]);
        assert_eq!(idx.children("a").collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(idx.children("b").collect::<Vec<_>>(), ["d"]);
        let mut marks = ParentMarks::default();
        assert!(!marks.ready(&d));
        marks.mark("b", t);
        assert!(!marks.ready(&d));
        assert_eq!(marks.waiting_for(&d), ["c"]);
        marks.mark("b", t);
        marks.mark("c", t);
        assert!(marks.ready(&d));
        marks.clear();
        assert!(!marks.ready(&d));
        assert!(!marks.ready(&[]));
    }
}
