//! An in-memory [`Store`](crate::Store), for unit tests and throwaway state.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{Op, Store, StoreError, Versioned};

/// A store held in a `BTreeMap` behind a mutex; nothing survives a drop.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    revision: u64,
    data: BTreeMap<String, Versioned>,
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch (batches are
        // applied to a copy first), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryStore {
    /// Applies `ops` atomically; the revision after, and whether anything changed.
    fn apply_counted(&self, ops: &[Op]) -> Result<(u64, bool), StoreError> {
        let mut inner = self.lock();
        let next = inner.revision + 1;
        // Work on a copy so a failed condition leaves the store untouched.
        let mut data = inner.data.clone();
        let mut changed = false;
        for op in ops {
            let actual = data.get(op.key()).map(|v| v.mod_revision);
            match op {
                Op::Put { key, value, expect } => {
                    if !expect.holds(actual) {
                        return Err(StoreError::Conflict {
                            key: key.clone(),
                            expected: *expect,
                            actual,
                        });
                    }
                    data.insert(
                        key.clone(),
                        Versioned {
                            value: value.clone(),
                            mod_revision: next,
                        },
                    );
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
                    changed |= data.remove(key).is_some();
                }
            }
        }
        if changed {
            inner.data = data;
            inner.revision = next;
        }
        Ok((inner.revision, changed))
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.lock().data.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
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
        Ok(self.lock().revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_meets_the_contract() {
        crate::contract::all(&|| Box::new(MemoryStore::new()));
    }
}
