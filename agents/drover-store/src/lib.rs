//! Drover's key-value-with-revisions store: the one small interface the master and the
//! scheduler keep their state behind, so that a second backend (etcd) can hold the state
//! of a highly available control plane later without touching the callers.
//!
//! The model is etcd's, cut down: every key holds bytes and the revision of the write
//! that last changed it; the store has one revision counter that every changing write
//! (or batch of writes) bumps by one; writes can be made conditional on a key's revision
//! (compare-and-swap) or on its absence.
//!
//! # Layout
//!
//! - [`Store`]: the trait (get, put, delete, list, atomic batches, current revision).
//! - [`StoreExt`]: JSON helpers (`get_json`, `put_json`, `list_json`) on any store.
//! - [`memory`]: an in-memory backend, for unit tests.
//! - [`redb_store`]: the default on-disk backend, one redb file; every write is durable
//!   before it returns, and the batches of concurrent writers share one transaction and
//!   one fsync (group commit, see `group`).
//! - [`PendingWrite`]: a batch handed to the store with [`Store::submit`] and not yet
//!   known to be durable, so a caller can queue its write in order under its own lock
//!   and wait for the fsync outside it.
//! - [`StoreError`]: why an operation failed; a lost compare-and-swap is
//!   [`StoreError::Conflict`].

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod group;
pub mod memory;
pub mod redb_store;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

/// A value and the revision of the write that last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The store revision at which the key was last written.
    pub mod_revision: u64,
}

/// A condition a write puts on the key's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No condition.
    Any,
    /// The key must not exist (create only).
    Absent,
    /// The key must exist and have been last written at exactly this revision.
    Revision(u64),
}

impl Expect {
    /// Whether a key whose current revision is `actual` (`None`: absent) meets the condition.
    pub fn holds(self, actual: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => actual.is_none(),
            Expect::Revision(r) => actual == Some(r),
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Any => f.write_str("any"),
            Expect::Absent => f.write_str("absent"),
            Expect::Revision(r) => write!(f, "revision {r}"),
        }
    }
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value` if `expect` holds.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The condition.
        expect: Expect,
    },
    /// Remove `key` if `expect` holds (removing an absent key under `Expect::Any` is a no-op).
    Delete {
        /// The key.
        key: String,
        /// The condition.
        expect: Expect,
    },
}

impl Op {
    /// An unconditional put.
    pub fn put(key: impl Into<String>, value: Vec<u8>) -> Op {
        Op::Put {
            key: key.into(),
            value,
            expect: Expect::Any,
        }
    }

    /// An unconditional delete.
    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete {
            key: key.into(),
            expect: Expect::Any,
        }
    }

    /// A put of `value` encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(
        key: impl Into<String>,
        value: &T,
    ) -> Result<Op, StoreError> {
        let key = key.into();
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
            key: key.clone(),
            source,
        })?;
        Ok(Op::Put {
            key,
            value: bytes,
            expect: Expect::Any,
        })
    }

    /// The key the op writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write's condition did not hold; nothing of its batch was applied. This is an
    /// expected outcome of compare-and-swap, not a fault.
    #[error("conflict on key {key:?}: expected {expected}, found {}", actual.map_or("no key".to_string(), |r| format!("revision {r}")))]
    Conflict {
        /// The key whose condition failed.
        key: String,
        /// What the write expected.
        expected: Expect,
        /// The key's actual revision (`None`: absent).
        actual: Option<u64>,
    },
    /// The directory for the database file could not be created.
    #[error("failed to create store directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened or created.
    #[error("failed to open store {path}: {source}")]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// The store file holds an older state than the last commit recorded beside it:
    /// redb fell back to an earlier commit (a damaged newest page or commit slot), or
    /// the file was replaced by an older copy. Opening it would silently forget
    /// acknowledged writes.
    #[error(
        "store {path} is at revision {file_revision}, but {record} recorded a commit at revision {recorded_revision}: the newest writes are missing (a damaged file, or an older copy put in its place). Restore the newest backup of the file and remove {record} to accept it, or move both aside and start afresh (the master with --init)"
    )]
    RolledBack {
        /// The store file.
        path: std::path::PathBuf,
        /// The revision the file holds.
        file_revision: u64,
        /// The revision last recorded as committed.
        recorded_revision: u64,
        /// The record file.
        record: std::path::PathBuf,
    },
    /// The store file is missing or empty, though commits to it were recorded.
    #[error(
        "store {path} is {state}, but {record} recorded a commit at revision {recorded_revision}: its data is lost. Restore the file from a backup and remove {record} to accept it, or move both aside and start afresh (the master with --init)"
    )]
    Emptied {
        /// The store file.
        path: std::path::PathBuf,
        /// `missing` or `empty (0 bytes)`.
        state: &'static str,
        /// The revision last recorded as committed.
        recorded_revision: u64,
        /// The record file.
        record: std::path::PathBuf,
    },
    /// The backend failed during an operation.
    #[error("store backend failed to {op}: {source}")]
    Backend {
        /// The step that failed (`begin write`, `commit`, ...).
        op: &'static str,
        /// The cause (shared: a failed group commit reports it to every writer in it).
        #[source]
        source: Arc<redb::Error>,
    },
    /// A commit failed, and the store takes no writes until it has reopened its file and
    /// can write again (it retries by itself: a full disk that gets room, say). Later
    /// batches may have been planned on top of the failed one, and a failed fsync cannot
    /// safely be retried, so the batches queued behind it fail too.
    #[error("the store cannot write ({reason}); it retries by itself")]
    Unavailable {
        /// Why the commit failed.
        reason: String,
    },
    /// A stored record is not in the format this version writes.
    #[error("stored record for key {key:?} is corrupt: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value could not be encoded as JSON.
    #[error("failed to encode value for key {key:?}: {source}")]
    Encode {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value could not be decoded from JSON.
    #[error("failed to decode value of key {key:?}: {source}")]
    Decode {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// Whether this is a lost compare-and-swap rather than a fault.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether the store itself failed (I/O, a full disk, a file it cannot reopen)
    /// rather than the request: the same write may succeed once the store recovers.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Backend { .. } | StoreError::Unavailable { .. }
        )
    }

    /// The same failure for another writer of a failed group (backend errors are shared;
    /// anything else is reported as the reason the store is unavailable).
    fn replicate(&self) -> StoreError {
        match self {
            StoreError::Backend { op, source } => StoreError::Backend {
                op,
                source: source.clone(),
            },
            StoreError::Unavailable { reason } => StoreError::Unavailable {
                reason: reason.clone(),
            },
            other => StoreError::Unavailable {
                reason: other.to_string(),
            },
        }
    }
}

/// A batch submitted with [`Store::submit`]: queued behind every batch submitted before
/// it, durable (or failed) once [`PendingWrite::wait`] returns.
///
/// Dropping it without waiting does not cancel the batch: it is still committed with the
/// next group (or when the store is closed), only nobody learns the outcome.
#[must_use = "a submitted batch is known durable only once waited for"]
pub struct PendingWrite {
    inner: Pending,
}

enum Pending {
    Done(group::Outcome),
    Queued {
        committer: Arc<dyn group::GroupCommitter>,
        slot: Arc<group::Slot>,
    },
}

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.inner {
            Pending::Done(_) => "done",
            Pending::Queued { .. } => "queued",
        };
        f.debug_struct("PendingWrite")
            .field("state", &state)
            .finish()
    }
}

impl PendingWrite {
    /// A write that has already ended (a backend that commits each batch at once).
    pub fn done(result: Result<u64, StoreError>) -> PendingWrite {
        PendingWrite {
            inner: Pending::Done(result.map(|rev| (rev, true))),
        }
    }

    fn from_outcome(outcome: group::Outcome) -> PendingWrite {
        PendingWrite {
            inner: Pending::Done(outcome),
        }
    }

    fn queued(committer: Arc<dyn group::GroupCommitter>, slot: Arc<group::Slot>) -> PendingWrite {
        PendingWrite {
            inner: Pending::Queued { committer, slot },
        }
    }

    /// Blocks until the batch is durable; the store revision after it. A batch whose
    /// condition failed returns its [`StoreError::Conflict`] and was not applied.
    pub fn wait(self) -> Result<u64, StoreError> {
        self.wait_counted().map(|(rev, _)| rev)
    }

    /// [`PendingWrite::wait`], also saying whether the batch changed anything.
    fn wait_counted(self) -> group::Outcome {
        match self.inner {
            Pending::Done(outcome) => outcome,
            Pending::Queued { committer, slot } => committer.queue().wait(&*committer, &slot),
        }
    }
}

/// The key-value-with-revisions interface. Implementations are internally synchronised,
/// and every method that returns `Ok` after a write has made that write durable (as far
/// as the backend promises durability).
pub trait Store: Send + Sync {
    /// The key's value and revision, or `None` if absent.
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Every key starting with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError>;

    /// Applies the ops in order as one atomic transaction: either all conditions hold
    /// (each checked against the state left by the ops before it) and every op is
    /// applied, or nothing is and the first failed condition is returned as
    /// [`StoreError::Conflict`]. Returns the store revision after the batch; a batch that
    /// changes nothing leaves the revision as it was.
    fn apply(&self, ops: &[Op]) -> Result<u64, StoreError>;

    /// The store's current revision (0 for a fresh store).
    fn revision(&self) -> Result<u64, StoreError>;

    /// Whether the store takes writes now: [`StoreError::Unavailable`] with the cause
    /// while it is recovering from a failed write. Cheap (no I/O), for `/health` and for
    /// refusing a write before anything is changed for it.
    fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Queues `ops` as one batch behind every batch submitted before it and returns
    /// without waiting for the disk; [`PendingWrite::wait`] then blocks until the batch
    /// is durable. Batches are applied in submission order, so a caller that submits
    /// under its own lock and waits after releasing it keeps its writes in the order it
    /// decided them while its fsync is shared with other writers. The default applies
    /// the batch at once.
    fn submit(&self, ops: Vec<Op>) -> PendingWrite {
        PendingWrite::done(self.apply(&ops))
    }

    /// Sets `key` to `value` if `expect` holds; returns the new revision.
    fn put(&self, key: &str, value: &[u8], expect: Expect) -> Result<u64, StoreError> {
        self.apply(&[Op::Put {
            key: key.to_string(),
            value: value.to_vec(),
            expect,
        }])
    }

    /// Removes `key` if `expect` holds; returns the new revision if a key was removed,
    /// `None` if there was nothing to remove. The default compares the revision around
    /// the write, which is exact only without concurrent writers; both backends here
    /// override it with an atomic answer.
    fn delete(&self, key: &str, expect: Expect) -> Result<Option<u64>, StoreError> {
        let before = self.revision()?;
        let after = self.apply(&[Op::Delete {
            key: key.to_string(),
            expect,
        }])?;
        Ok((after != before).then_some(after))
    }
}

/// JSON helpers over any [`Store`].
pub trait StoreExt: Store {
    /// The key's value decoded from JSON, with its revision.
    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, u64)>, StoreError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => {
                let t = serde_json::from_slice(&v.value).map_err(|source| StoreError::Decode {
                    key: key.to_string(),
                    source,
                })?;
                Ok(Some((t, v.mod_revision)))
            }
        }
    }

    /// Stores `value` as JSON if `expect` holds; returns the new revision.
    fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        expect: Expect,
    ) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
            key: key.to_string(),
            source,
        })?;
        self.put(key, &bytes, expect)
    }

    /// Every key under `prefix`, decoded from JSON, in key order.
    fn list_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T, u64)>, StoreError> {
        self.list(prefix)?
            .into_iter()
            .map(|(k, v)| {
                let t = serde_json::from_slice(&v.value).map_err(|source| StoreError::Decode {
                    key: k.clone(),
                    source,
                })?;
                Ok((k, t, v.mod_revision))
            })
            .collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every backend must show, run against each of them.

    use super::*;

    pub fn basic_crud(s: &dyn Store) {
        assert_eq!(s.revision().unwrap(), 0);
        assert_eq!(s.get("a").unwrap(), None);
        let r1 = s.put("a", b"1", Expect::Absent).unwrap();
        assert_eq!(r1, 1);
        assert_eq!(
            s.get("a").unwrap(),
            Some(Versioned {
                value: b"1".to_vec(),
                mod_revision: 1
            })
        );
        let r2 = s.put("b", b"2", Expect::Any).unwrap();
        assert_eq!(r2, 2);
        assert_eq!(s.revision().unwrap(), 2);
        let r3 = s.put("a", b"1b", Expect::Revision(1)).unwrap();
        assert_eq!(r3, 3);
        assert_eq!(s.get("a").unwrap().unwrap().mod_revision, 3);
        assert_eq!(s.delete("b", Expect::Any).unwrap(), Some(4));
        assert_eq!(s.delete("b", Expect::Any).unwrap(), None);
        assert_eq!(s.revision().unwrap(), 4);
        assert_eq!(s.get("b").unwrap(), None);
    }

    pub fn conflicts(s: &dyn Store) {
        s.put("k", b"v", Expect::Any).unwrap();
        let e = s.put("k", b"w", Expect::Absent).unwrap_err();
        assert!(e.is_conflict(), "{e}");
        let e = s.put("k", b"w", Expect::Revision(99)).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Conflict {
                    actual: Some(1),
                    ..
                }
            ),
            "{e}"
        );
        let e = s.put("missing", b"w", Expect::Revision(1)).unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict { actual: None, .. }),
            "{e}"
        );
        let e = s.delete("k", Expect::Revision(7)).unwrap_err();
        assert!(e.is_conflict());
        assert_eq!(s.get("k").unwrap().unwrap().value, b"v");
        assert_eq!(s.revision().unwrap(), 1);
    }

    pub fn batches_are_atomic(s: &dyn Store) {
        s.put("x/1", b"a", Expect::Any).unwrap();
        // The second op's condition fails: the first must not be applied either.
        let e = s
            .apply(&[
                Op::put("x/2", b"b".to_vec()),
                Op::Put {
                    key: "x/1".into(),
                    value: b"z".to_vec(),
                    expect: Expect::Absent,
                },
            ])
            .unwrap_err();
        assert!(e.is_conflict());
        assert_eq!(s.get("x/2").unwrap(), None);
        assert_eq!(s.revision().unwrap(), 1);
        // A good batch is one revision, shared by every key it writes.
        let rev = s
            .apply(&[
                Op::put("x/2", b"b".to_vec()),
                Op::put("x/3", b"c".to_vec()),
                Op::delete("x/1"),
            ])
            .unwrap();
        assert_eq!(rev, 2);
        assert_eq!(s.get("x/2").unwrap().unwrap().mod_revision, 2);
        assert_eq!(s.get("x/3").unwrap().unwrap().mod_revision, 2);
        assert_eq!(s.get("x/1").unwrap(), None);
        // Conditions see earlier ops of the same batch.
        let rev = s
            .apply(&[
                Op::put("y", b"1".to_vec()),
                Op::Put {
                    key: "y".into(),
                    value: b"2".to_vec(),
                    expect: Expect::Revision(3),
                },
            ])
            .unwrap();
        assert_eq!(rev, 3);
        assert_eq!(s.get("y").unwrap().unwrap().value, b"2");
        // A batch that changes nothing keeps the revision.
        assert_eq!(s.apply(&[]).unwrap(), 3);
        assert_eq!(s.apply(&[Op::delete("nothing")]).unwrap(), 3);
    }

    pub fn list_by_prefix(s: &dyn Store) {
        for k in ["nodes/b", "nodes/a", "tasks/x", "nodes", "nodes0"] {
            s.put(k, k.as_bytes(), Expect::Any).unwrap();
        }
        let keys: Vec<String> = s
            .list("nodes/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["nodes/a", "nodes/b"]);
        assert_eq!(s.list("").unwrap().len(), 5);
        assert!(s.list("zzz").unwrap().is_empty());
    }

    pub fn json_helpers(s: &dyn Store) {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Rec {
            n: u32,
        }
        let rev = s.put_json("r/1", &Rec { n: 7 }, Expect::Absent).unwrap();
        assert_eq!(s.get_json::<Rec>("r/1").unwrap(), Some((Rec { n: 7 }, rev)));
        let all = s.list_json::<Rec>("r/").unwrap();
        assert_eq!(all, vec![("r/1".to_string(), Rec { n: 7 }, rev)]);
        s.put("r/2", b"not json", Expect::Any).unwrap();
        assert!(matches!(
            s.get_json::<Rec>("r/2").unwrap_err(),
            StoreError::Decode { .. }
        ));
    }

    pub fn all(make: &dyn Fn() -> Box<dyn Store>) {
        basic_crud(&*make());
        conflicts(&*make());
        batches_are_atomic(&*make());
        list_by_prefix(&*make());
        json_helpers(&*make());
    }
}
