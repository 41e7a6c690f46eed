//! App dependencies (Marathon's `dependencies`): what an id stands for, refusing cycles,
//! and whether a deployment may start instances yet.
//!
//! Rules:
//! - a dependency names an app, or, when no app has that id, every app under it
//!   (`/shop` stands for `/shop/db` and `/shop/cache`: Marathon's group dependencies);
//! - a change that would close a cycle (`/a` needs `/b` needs `/a`) is refused with a
//!   422 (400 on `/v1`) naming the cycle, as Marathon refuses "cyclic dependencies";
//! - a dependency that does not exist is accepted, as Marathon accepts it; the
//!   deployment waits until it exists (so a folder of files applies in any order);
//! - an app that others depend on may be deleted, as in Marathon: what runs keeps
//!   running, and the dependents' next deployments wait until it exists again;
//! - a deployment that starts instances (create, update, restart, rollback, scale up)
//!   starts none until every app it depends on is *ready*: it exists, is not being
//!   deleted, has no running deployment, and runs all its instances of its current
//!   version ready (healthy, or running without health checks). Once released, it does
//!   not wait again; while it waits its progress deadline does not run.

use std::collections::{BTreeMap, BTreeSet};

use drover_api::ApiError;
use drover_api::app::{AppDefinition, AppId};

/// The apps `dep` stands for among `ids`: the app itself, else every app under it.
pub fn resolve<'a>(dep: &AppId, ids: impl IntoIterator<Item = &'a AppId>) -> Vec<&'a AppId> {
    let prefix = format!("{}/", dep.as_str().trim_end_matches('/'));
    let mut under = Vec::new();
    for id in ids {
        if id == dep {
            return vec![id];
        }
        if id.as_str().starts_with(&prefix) {
            under.push(id);
        }
    }
    under
}

/// Refuses `def` (about to replace or join `apps`) when its dependencies, with those of
/// the other apps, form a cycle through it; the error names the cycle
/// (`dependency cycle: /a -> /b -> /a`) on the field `dependencies`.
pub fn check_cycles<'a>(
    def: &'a AppDefinition,
    apps: impl IntoIterator<Item = &'a AppDefinition>,
) -> Result<(), ApiError> {
    let mut all: BTreeMap<&AppId, &AppDefinition> = apps.into_iter().map(|a| (&a.id, a)).collect();
    all.insert(&def.id, def);
    let ids: Vec<&AppId> = all.keys().copied().collect();
    let edges: BTreeMap<&AppId, Vec<&AppId>> = all
        .iter()
        .map(|(id, a)| {
            let mut to: Vec<&AppId> = a
                .dependencies
                .iter()
                .flat_map(|d| resolve(d, ids.iter().copied()))
                .collect();
            to.sort();
            to.dedup();
            (*id, to)
        })
        .collect();
    // Depth-first from the changed app: any new cycle passes through it.
    let mut path: Vec<&AppId> = vec![&def.id];
    let mut next: Vec<usize> = vec![0];
    let mut done: BTreeSet<&AppId> = BTreeSet::new();
    while let (Some(&at), Some(i)) = (path.last(), next.last_mut()) {
        let to = edges.get(at).map_or(&[][..], Vec::as_slice);
        let Some(&n) = to.get(*i) else {
            done.insert(at);
            path.pop();
            next.pop();
            continue;
        };
        *i += 1;
        if n == &def.id {
            let names: Vec<&str> = path.iter().chain([&n]).map(|x| x.as_str()).collect();
            return Err(ApiError::invalid(
                "dependencies",
                format!("dependency cycle: {}", names.join(" -> ")),
            ));
        }
        if !done.contains(n) && !path.contains(&n) {
            path.push(n);
            next.push(0);
        }
    }
    Ok(())
}

/// What a dependent needs to know of an app in a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DependencyState {
    /// Instances wanted.
    pub instances: u32,
    /// Ready instances of its current version (not being stopped).
    pub ready: u32,
    /// A deployment of its own runs.
    pub deploying: bool,
    /// It is being deleted.
    pub deleting: bool,
}

impl DependencyState {
    /// Whether dependents may start instances.
    pub fn is_ready(&self) -> bool {
        !self.deploying && !self.deleting && self.ready >= self.instances
    }
}

/// Why `app` may not start instances yet, or `None` when every dependency is ready:
/// `waiting for dependencies: /db (1 of 2 healthy), /cache (does not exist)`.
pub fn waiting(app: &AppDefinition, states: &BTreeMap<AppId, DependencyState>) -> Option<String> {
    let mut reasons = Vec::new();
    for dep in &app.dependencies {
        let found = resolve(dep, states.keys());
        if found.is_empty() {
            reasons.push(format!("{dep} (does not exist)"));
            continue;
        }
        for id in found {
            let Some(s) = states.get(id) else { continue };
            if s.is_ready() {
                continue;
            }
            let what = if s.deleting {
                "being deleted".to_string()
            } else if s.deploying {
                format!(
                    "{} of {} healthy, deployment running",
                    s.ready.min(s.instances),
                    s.instances
                )
            } else {
                format!("{} of {} healthy", s.ready.min(s.instances), s.instances)
            };
            reasons.push(format!("{id} ({what})"));
        }
    }
    reasons.dedup();
    (!reasons.is_empty()).then(|| format!("waiting for dependencies: {}", reasons.join(", ")))
}
