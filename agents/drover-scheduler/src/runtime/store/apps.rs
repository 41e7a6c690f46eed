//! Where the apps live in the store, how a tick's [`AppsPlan`] and an API change become
//! one batch of writes, and how everything is loaded back at start-up.
//!
//! Keys (an app id is `/`-separated lower-case labels and never holds `|`, so `|`
//! separates the id from a version safely, and one app's versions never share a prefix
//! with another app's):
//!
//! | key | value |
//! | --- | --- |
//! | `apps/app/<id>` | the app's [`AppState`] (with its launches not confirmed yet) |
//! | `apps/version/<id>\|<version>` | the [`AppDefinition`] of that version (`version` set) |
//! | `apps/deployment/<deployment id>` | a [`Deployment`], running or finished |
//!
//! Finished deployments are pruned under a retention policy (by default the newest
//! [`DEPLOYMENT_HISTORY`], none older than a week), oldest first.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use drover_api::app::{AppDefinition, AppId};
use drover_api::deployment::{Deployment, DeploymentId};
use drover_service::retention::{Record, Retention, expired};
use drover_store::{Op, Store, StoreError, StoreExt};

use crate::engine::apps::{AppState, AppsPlan, Began};

/// Prefix of app states.
pub const APP: &str = "apps/app/";
/// Prefix of stored versions.
pub const VERSION: &str = "apps/version/";
/// Prefix of deployments.
pub const DEPLOYMENT: &str = "apps/deployment/";
/// Finished deployments kept by default (all apps together); older ones are pruned.
pub const DEPLOYMENT_HISTORY: usize = 200;

/// The key of an app's state.
pub fn app_key(id: &AppId) -> String {
    format!("{APP}{id}")
}

/// The prefix of an app's stored versions.
pub fn versions_prefix(id: &AppId) -> String {
    format!("{VERSION}{id}|")
}

/// The key of one stored version.
pub fn version_key(id: &AppId, version: &str) -> String {
    format!("{}{version}", versions_prefix(id))
}

/// The key of a deployment.
pub fn deployment_key(id: &DeploymentId) -> String {
    format!("{DEPLOYMENT}{id}")
}

/// The writes of an accepted change: the app, its new version's definition, the new
/// deployment and the ones it superseded.
pub fn began_ops(began: &Began) -> Result<Vec<Op>, StoreError> {
    let mut ops = vec![
        Op::put_json(app_key(began.app.id()), &began.app)?,
        Op::put_json(
            version_key(began.app.id(), &began.app.version),
            &began.app.definition,
        )?,
        Op::put_json(deployment_key(&began.deployment.id), &began.deployment)?,
    ];
    for d in &began.superseded {
        ops.push(Op::put_json(deployment_key(&d.id), d)?);
    }
    Ok(ops)
}

/// The writes of a tick's plan: changed apps (with the definition of their version, so
/// an auto-revert's target is always stored), changed deployments, and removed apps
/// with every stored version of theirs.
pub fn plan_ops(store: &dyn Store, plan: &AppsPlan) -> Result<Vec<Op>, StoreError> {
    let mut ops = Vec::new();
    for app in &plan.apps {
        ops.push(Op::put_json(app_key(app.id()), app)?);
        ops.push(Op::put_json(
            version_key(app.id(), &app.version),
            &app.definition,
        )?);
    }
    for d in &plan.deployments {
        ops.push(Op::put_json(deployment_key(&d.id), d)?);
    }
    for id in &plan.removed {
        ops.push(Op::delete(app_key(id)));
        for (key, _) in store.list(&versions_prefix(id))? {
            ops.push(Op::delete(key));
        }
    }
    Ok(ops)
}

/// The stored versions of an app, oldest first (version stamps sort in time order).
pub fn versions(store: &dyn Store, id: &AppId) -> Result<Vec<String>, StoreError> {
    let prefix = versions_prefix(id);
    Ok(store
        .list(&prefix)?
        .into_iter()
        .map(|(k, _)| k.trim_start_matches(&prefix).to_string())
        .collect())
}

/// One stored version's definition, if it is stored.
pub fn version(
    store: &dyn Store,
    id: &AppId,
    version: &str,
) -> Result<Option<AppDefinition>, StoreError> {
    Ok(store
        .get_json::<AppDefinition>(&version_key(id, version))?
        .map(|(d, _)| d))
}

/// What a start-up load found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The apps, by id.
    pub apps: BTreeMap<AppId, AppState>,
    /// Every kept deployment, by id.
    pub deployments: BTreeMap<DeploymentId, Deployment>,
    /// Records that did not decode (kept in the store untouched), with the reason.
    pub broken: Vec<(String, String)>,
}

/// Reads every app and deployment.
pub fn load(store: &dyn Store) -> Result<Loaded, StoreError> {
    let mut out = Loaded::default();
    for (key, value) in store.list(APP)? {
        match serde_json::from_slice::<AppState>(&value.value) {
            Ok(a) => {
                out.apps.insert(a.id().clone(), a);
            }
            Err(e) => out.broken.push((key, e.to_string())),
        }
    }
    for (key, value) in store.list(DEPLOYMENT)? {
        match serde_json::from_slice::<Deployment>(&value.value) {
            Ok(d) => {
                out.deployments.insert(d.id.clone(), d);
            }
            Err(e) => out.broken.push((key, e.to_string())),
        }
    }
    Ok(out)
}

/// The finished deployments to forget under `policy` at `now`, oldest first; running
/// ones are always kept.
pub fn prune(
    deployments: &BTreeMap<DeploymentId, Deployment>,
    policy: &Retention,
    now: DateTime<Utc>,
) -> Vec<DeploymentId> {
    let records: Vec<Record<DeploymentId>> = deployments
        .values()
        .map(|d| Record {
            key: d.id.clone(),
            ended: (!d.is_running()).then(|| d.finished_at.unwrap_or(d.started_at)),
        })
        .collect();
    expired(&records, policy, now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use chrono::Utc;
    use drover_store::MemoryStore;

    use super::*;
    use crate::engine::apps::{AppChange, Locked, begin};

    #[test]
    fn a_change_loads_back_and_versions_do_not_mix_between_apps() {
        let store = MemoryStore::new();
        let now = Utc::now();
        for id in ["/shop", "/shop/web"] {
            let def = AppDefinition::new(AppId::parse(id).unwrap(), "sleep 100");
            let began = begin(AppChange::Create(def), None, &[], Locked::Refuse, now).unwrap();
            store.apply(&began_ops(&began).unwrap()).unwrap();
        }
        let loaded = load(&store).unwrap();
        assert_eq!(loaded.apps.len(), 2);
        assert_eq!(loaded.deployments.len(), 2);
        assert!(loaded.broken.is_empty());
        let shop = AppId::parse("/shop").unwrap();
        let v = versions(&store, &shop).unwrap();
        assert_eq!(v.len(), 1);
        let def = version(&store, &shop, &v[0]).unwrap().unwrap();
        assert_eq!(def.version.as_deref(), Some(v[0].as_str()));
    }

    #[test]
    fn prune_drops_old_finished_deployments_and_keeps_running_ones() {
        let t0 = Utc::now() - chrono::TimeDelta::days(1);
        let mut deployments = BTreeMap::new();
        let mut ids = Vec::new();
        for (i, finished) in [Some(0), Some(1), Some(2), None].into_iter().enumerate() {
            let def = AppDefinition::new(AppId::parse(&format!("/app{i}")).unwrap(), "true");
            let mut d = begin(AppChange::Create(def), None, &[], Locked::Refuse, t0)
                .unwrap()
                .deployment;
            if let Some(h) = finished {
                d.state = drover_api::deployment::DeploymentState::Succeeded;
                d.finished_at = Some(t0 + chrono::TimeDelta::hours(h));
            }
            ids.push(d.id.clone());
            deployments.insert(d.id.clone(), d);
        }
        let policy = |count: usize, age: &str| Retention {
            count,
            max_age: age.parse().unwrap(),
        };
        let now = t0 + chrono::TimeDelta::hours(2);
        assert_eq!(prune(&deployments, &policy(1, "0"), now), ids[..2].to_vec());
        assert_eq!(
            prune(&deployments, &policy(10, "90m"), now),
            ids[..1].to_vec()
        );
        assert!(prune(&deployments, &policy(3, "0"), now).is_empty());
        // Far later: every finished one is too old but the newest; the running one stays.
        let later = now + chrono::TimeDelta::days(30);
        assert_eq!(
            prune(&deployments, &policy(10, "7d"), later),
            ids[..2].to_vec()
        );
    }
}
