//! The on-disk [`Store`](crate::Store): one redb file. Every write transaction commits
//! with immediate durability, so a write that returned `Ok` survives a crash.
//!
//! Layout: table `kv` maps each key to its record (8 bytes of big-endian mod revision,
//! then the value); table `meta` holds the store revision under `revision`.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{Op, Store, StoreError, Versioned};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION_KEY: &str = "revision";

/// A store in one redb file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

fn backend(op: &'static str) -> impl FnOnce(redb::Error) -> StoreError {
    move |e| StoreError::Backend {
        op,
        source: Box::new(e),
    }
}

fn encode(rev: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&rev.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(key: &str, raw: &[u8]) -> Result<Versioned, StoreError> {
    let (head, value) = raw
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt {
            key: key.to_string(),
            message: format!("record of {} bytes is shorter than its header", raw.len()),
        })?;
    Ok(Versioned {
        value: value.to_vec(),
        mod_revision: u64::from_be_bytes(*head),
    })
}

impl RedbStore {
    /// Opens the store file at `path`, creating it (and its directory) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            source: Box::new(e),
        })?;
        let store = RedbStore { db, path };
        // Create both tables up front so reads of a fresh file find them.
        store.write(|_, _| Ok(false))?;
        Ok(store)
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a durable write transaction over the two tables; commits when `f`
    /// returns `Ok` (bumping nothing itself) and aborts on `Err`.
    fn write<T>(
        &self,
        f: impl FnOnce(
            &mut redb::Table<&str, &[u8]>,
            &mut redb::Table<&str, u64>,
        ) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| backend("begin write")(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| backend("set durability")(e.into()))?;
        let out = {
            let mut kv = txn
                .open_table(KV)
                .map_err(|e| backend("open table kv")(e.into()))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| backend("open table meta")(e.into()))?;
            f(&mut kv, &mut meta)
        };
        match out {
            Ok(v) => {
                txn.commit().map_err(|e| backend("commit")(e.into()))?;
                Ok(v)
            }
            Err(e) => {
                // Dropping would abort too; aborting explicitly reports backend trouble.
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    /// Applies `ops` in one durable transaction; the revision after, and whether
    /// anything changed.
    fn apply_counted(&self, ops: &[Op]) -> Result<(u64, bool), StoreError> {
        self.write(|kv, meta| {
            let current = meta
                .get(REVISION_KEY)
                .map_err(|e| backend("read revision")(e.into()))?
                .map_or(0, |g| g.value());
            let next = current + 1;
            let mut changed = false;
            for op in ops {
                let actual = match kv.get(op.key()).map_err(|e| backend("read")(e.into()))? {
                    None => None,
                    Some(g) => Some(decode(op.key(), g.value())?.mod_revision),
                };
                match op {
                    Op::Put { key, value, expect } => {
                        if !expect.holds(actual) {
                            return Err(StoreError::Conflict {
                                key: key.clone(),
                                expected: *expect,
                                actual,
                            });
                        }
                        let record = encode(next, value);
                        kv.insert(key.as_str(), record.as_slice())
                            .map_err(|e| backend("insert")(e.into()))?;
                        changed = true;
                    }
                    Op::Delete { key, expect } => {
                        if !expect.holds(actual) {
                            return Err(StoreError::Conflict {
                                key: key.clone(),
                                expected: *expect,
                                actual,
                            });
                        }
                        if actual.is_some() {
                            kv.remove(key.as_str())
                                .map_err(|e| backend("remove")(e.into()))?;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                return Ok((current, false));
            }
            meta.insert(REVISION_KEY, next)
                .map_err(|e| backend("write revision")(e.into()))?;
            Ok((next, true))
        })
    }

    fn read_txn(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db
            .begin_read()
            .map_err(|e| backend("begin read")(e.into()))
    }
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let txn = self.read_txn()?;
        let kv = txn
            .open_table(KV)
            .map_err(|e| backend("open table kv")(e.into()))?;
        match kv.get(key).map_err(|e| backend("read")(e.into()))? {
            None => Ok(None),
            Some(guard) => decode(key, guard.value()).map(Some),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let txn = self.read_txn()?;
        let kv = txn
            .open_table(KV)
            .map_err(|e| backend("open table kv")(e.into()))?;
        let mut out = Vec::new();
        for item in kv
            .range::<&str>(prefix..)
            .map_err(|e| backend("range")(e.into()))?
        {
            let (k, v) = item.map_err(|e| backend("range")(e.into()))?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_string(), decode(key, v.value())?));
        }
        Ok(out)
    }

    fn apply(&self, ops: &[Op]) -> Result<u64, StoreError> {
        self.apply_counted(ops).map(|(rev, _)| rev)
    }

    fn delete(&self, key: &str, expect: crate::Expect) -> Result<Option<u64>, StoreError> {
        let (rev, changed) = self.apply_counted(&[Op::Delete {
            key: key.to_string(),
            expect,
        }])?;
        Ok(changed.then_some(rev))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let txn = self.read_txn()?;
        let meta = txn
            .open_table(META)
            .map_err(|e| backend("open table meta")(e.into()))?;
        Ok(meta
            .get(REVISION_KEY)
            .map_err(|e| backend("read revision")(e.into()))?
            .map_or(0, |g| g.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expect, StoreExt};

    #[test]
    fn redb_store_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        crate::contract::all(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::new(RedbStore::open(dir.path().join(format!("s{i}.redb"))).unwrap())
        });
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/state.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            s.put_json("tasks/a", &vec![1, 2, 3], Expect::Absent)
                .unwrap();
            s.put("tasks/b", b"x", Expect::Any).unwrap();
            s.delete("tasks/b", Expect::Any).unwrap();
        }
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.revision().unwrap(), 3);
        assert_eq!(
            s.get_json::<Vec<i32>>("tasks/a").unwrap(),
            Some((vec![1, 2, 3], 1))
        );
        assert_eq!(s.get("tasks/b").unwrap(), None);
        // Revisions keep counting from where they were.
        assert_eq!(s.put("tasks/c", b"y", Expect::Absent).unwrap(), 4);
        assert!(
            s.put("tasks/a", b"z", Expect::Absent)
                .unwrap_err()
                .is_conflict()
        );
    }

    #[test]
    fn a_second_open_of_the_same_file_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let _first = RedbStore::open(&path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
    }

    #[test]
    fn corrupt_record_is_an_error_not_a_panic() {
        assert!(matches!(
            decode("k", b"abc").unwrap_err(),
            StoreError::Corrupt { .. }
        ));
        assert_eq!(
            decode("k", &encode(5, b"v")).unwrap(),
            Versioned {
                value: b"v".to_vec(),
                mod_revision: 5
            }
        );
    }
}
