//! The cluster's identity: the id in the store (`cluster/id`), made once when the store
//! is initialised, and the decision at start whether to use, make or refuse it.
//!
//! Why a master refuses an empty store unless told `--init`: agents trust the master's
//! list of what should run. A master that started empty by accident (a 0-byte or lost
//! store file, a mistyped `--data-dir`) used to make every agent kill every task. Now an
//! empty store is a new cluster only when the operator says so; otherwise the master
//! stops and names the data dir. A store written by a version from before cluster ids
//! holds state, so it is given an id at its first start, with no flag.

use std::path::Path;

use chrono::{DateTime, Utc};
use drover_api::agent::{ClusterId, ClusterInfo};
use drover_store::{Expect, Store, StoreError, StoreExt};

/// The store key of the cluster's identity.
pub const CLUSTER_KEY: &str = "cluster/id";

/// What a master does with a store that holds nothing at all (`--init` or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyStore {
    /// Refuse to start: a lost store or a mistyped data dir must not look like a new
    /// cluster.
    Refuse,
    /// Make a new cluster in it (`--init`).
    Init,
}

impl EmptyStore {
    /// From the `--init` flag.
    pub fn from_init_flag(init: bool) -> EmptyStore {
        if init {
            EmptyStore::Init
        } else {
            EmptyStore::Refuse
        }
    }
}

/// What to do with the store's identity at start.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// The store has one: serve it.
    Existing(ClusterInfo),
    /// Write this one first, then serve it.
    Create {
        /// The new identity.
        info: ClusterInfo,
        /// Why it is made now (for the log).
        why: &'static str,
    },
}

/// Why the master cannot start with this store.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The store was never written and `--init` was not given.
    #[error(
        "the store in {} is empty and this master was not told to start a new cluster: if \
         this is a first start, run it once with --init (or DROVER_MASTER_INIT=true); if \
         the cluster already exists, point --data-dir at its data (or restore it from a \
         backup), because agents refuse a master of a new cluster and keep their tasks",
        data_dir.display()
    )]
    Uninitialised {
        /// The master's data directory.
        data_dir: std::path::PathBuf,
    },
    /// Reading or writing the identity failed.
    #[error("failed to read or write the cluster id in the store")]
    Store(#[source] StoreError),
}

/// Decides from the stored identity (if any), the store's revision (0: never written)
/// and `empty` (`--init`). A store that holds state but no id comes from a version
/// before cluster ids and gets one; an empty one gets one only with [`EmptyStore::Init`].
pub fn decide(
    stored: Option<ClusterInfo>,
    store_revision: u64,
    empty: EmptyStore,
    data_dir: &Path,
    now: DateTime<Utc>,
    new_id: impl FnOnce() -> ClusterId,
) -> Result<Identity, IdentityError> {
    match stored {
        Some(info) => Ok(Identity::Existing(info)),
        None if store_revision > 0 => Ok(Identity::Create {
            info: ClusterInfo {
                id: new_id(),
                created_at: None,
            },
            why: "the store holds state from a version without cluster ids",
        }),
        None if empty == EmptyStore::Init => Ok(Identity::Create {
            info: ClusterInfo {
                id: new_id(),
                created_at: Some(now),
            },
            why: "a new cluster (--init on an empty store)",
        }),
        None => Err(IdentityError::Uninitialised {
            data_dir: data_dir.to_path_buf(),
        }),
    }
}

/// Reads the identity from `store`, makes it where [`decide`] says so, and returns it.
pub fn establish(
    store: &dyn Store,
    empty: EmptyStore,
    data_dir: &Path,
) -> Result<ClusterInfo, IdentityError> {
    let stored = store
        .get_json::<ClusterInfo>(CLUSTER_KEY)
        .map_err(IdentityError::Store)?
        .map(|(info, _)| info);
    let revision = store.revision().map_err(IdentityError::Store)?;
    match decide(
        stored,
        revision,
        empty,
        data_dir,
        Utc::now(),
        ClusterId::generate,
    )? {
        Identity::Existing(info) => {
            if empty == EmptyStore::Init {
                tracing::info!(cluster = %info.id, "--init: the store already belongs to a cluster; nothing to do");
            }
            Ok(info)
        }
        Identity::Create { info, why } => {
            store
                .put_json(CLUSTER_KEY, &info, Expect::Absent)
                .map_err(IdentityError::Store)?;
            tracing::info!(cluster = %info.id, "created the cluster id: {why}");
            Ok(info)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_store::MemoryStore;

    fn id(s: &str) -> ClusterId {
        ClusterId(s.into())
    }

    #[test]
    fn an_existing_id_is_kept_with_or_without_init() {
        let info = ClusterInfo {
            id: id("a"),
            created_at: None,
        };
        for empty in [EmptyStore::Refuse, EmptyStore::Init] {
            let got = decide(
                Some(info.clone()),
                7,
                empty,
                Path::new("/d"),
                Utc::now(),
                || id("new"),
            )
            .unwrap();
            assert_eq!(got, Identity::Existing(info.clone()));
        }
    }

    #[test]
    fn an_empty_store_needs_init() {
        let err = decide(
            None,
            0,
            EmptyStore::Refuse,
            Path::new("/srv/m"),
            Utc::now(),
            || id("x"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/srv/m") && text.contains("--init"), "{text}");
        let got = decide(
            None,
            0,
            EmptyStore::Init,
            Path::new("/srv/m"),
            Utc::now(),
            || id("x"),
        )
        .unwrap();
        assert!(
            matches!(&got, Identity::Create { info, .. } if info.id == id("x") && info.created_at.is_some()),
            "{got:?}"
        );
    }

    #[test]
    fn a_store_from_before_cluster_ids_gets_one_without_init() {
        let got = decide(
            None,
            12,
            EmptyStore::Refuse,
            Path::new("/d"),
            Utc::now(),
            || id("x"),
        )
        .unwrap();
        assert!(
            matches!(&got, Identity::Create { info, .. } if info.id == id("x") && info.created_at.is_none()),
            "{got:?}"
        );
    }

    #[test]
    fn establish_writes_once_and_reads_back() {
        let store = MemoryStore::new();
        assert!(matches!(
            establish(&store, EmptyStore::Refuse, Path::new("/d")),
            Err(IdentityError::Uninitialised { .. })
        ));
        let made = establish(&store, EmptyStore::Init, Path::new("/d")).unwrap();
        assert_eq!(
            establish(&store, EmptyStore::Refuse, Path::new("/d")).unwrap(),
            made
        );
        assert_eq!(
            establish(&store, EmptyStore::Init, Path::new("/d")).unwrap(),
            made
        );
    }
}
