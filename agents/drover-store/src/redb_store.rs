//! The on-disk [`Store`](crate::Store): one redb file. Every write transaction commits
//! with immediate durability, so a write that returned `Ok` survives a crash.
//!
//! Writes go through a group-commit queue (see `group`): the batches of concurrent
//! writers are applied in one write transaction with one fsync, each batch atomically
//! and with its own revision, and every writer is answered only after that transaction
//! is durable. [`CommitMode::Single`] turns the queue off (one transaction per batch), for
//! comparison.
//!
//! A failed commit (a full disk, an I/O error) takes the write queue down: redb refuses
//! every operation on a database after an I/O error, so a thread reopens the file, with
//! a growing pause between tries, until a write transaction commits again, and then
//! resumes the queue. Meanwhile [`Store::health`] names the cause and writes are refused
//! at once with [`StoreError::Unavailable`].
//!
//! Layout: table `kv` maps each key to its record (8 bytes of big-endian mod revision,
//! then the value); table `meta` holds the store revision under `revision`.
//!
//! Beside the file, `<file>.revision` records the store revision of the last commit
//! (see [`RevisionRecord`]). redb checks its own structures on open, but a damaged
//! newest commit slot makes it fall back to the commit before, silently: the record is
//! how a file that lost its newest writes, or was emptied, is refused at open
//! ([`StoreError::RolledBack`], [`StoreError::Emptied`]) instead of served.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::group::{GroupCommitter, Outcome, WriteQueue};
use crate::{Op, PendingWrite, Store, StoreError, Versioned};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION_KEY: &str = "revision";

/// How a [`RedbStore`] turns batches into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Concurrent writers' batches share one transaction and one fsync (the default).
    #[default]
    Group,
    /// Every batch is its own transaction with its own fsync (for comparison benches).
    Single,
}

/// A store in one redb file.
pub struct RedbStore {
    shared: Arc<Shared>,
    mode: CommitMode,
}

/// What the store's writers share: the database and the queue in front of it. Pending
/// writes hold it too, so a batch can be waited for after the store handle is gone.
struct Shared {
    /// `None` only while the file is being reopened after a failed commit.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    queue: WriteQueue,
    /// Itself, for the thread that reopens the file after a failure.
    me: Weak<Shared>,
    /// A reopening thread is at work.
    recovering: AtomicBool,
    /// The revision of the last commit, kept beside the file.
    record: RevisionRecord,
}

/// First pause before reopening the file after a failed commit; doubled after each
/// failed try, up to [`MAX_REOPEN_PAUSE`].
const FIRST_REOPEN_PAUSE: Duration = Duration::from_millis(100);
const MAX_REOPEN_PAUSE: Duration = Duration::from_secs(5);

impl Shared {
    /// Runs `f` on the open database, or fails with the reason the store is down.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner());
        match db.as_ref() {
            Some(db) => f(db),
            None => Err(StoreError::Unavailable {
                reason: self
                    .queue
                    .down_reason()
                    .unwrap_or_else(|| "the store file is being reopened".into()),
            }),
        }
    }

    /// Closes the database and opens it again, proving with a write transaction that
    /// the file takes writes.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The old handle holds the file's lock and refuses everything after the I/O
        // error: it must be gone before the file is opened again.
        *db = None;
        let reopened = Database::create(&self.path).map_err(|e| StoreError::Open {
            path: self.path.clone(),
            source: Box::new(e),
        })?;
        create_tables(&reopened)?;
        *db = Some(reopened);
        Ok(())
    }
}

/// Reopens the store after a failed commit until it takes writes again, then resumes
/// its queue. Holds only a weak reference between tries, so a store dropped meanwhile
/// ends it.
fn recover(store: Weak<Shared>) {
    let mut pause = FIRST_REOPEN_PAUSE;
    loop {
        std::thread::sleep(pause);
        let Some(shared) = store.upgrade() else {
            return;
        };
        match shared.reopen() {
            Ok(()) => {
                shared.recovering.store(false, Ordering::SeqCst);
                shared.queue.resume();
                tracing::info!(path = %shared.path.display(), "store recovered: it takes writes again");
                return;
            }
            Err(e) => {
                tracing::warn!(
                    path = %shared.path.display(),
                    "store still cannot write: {e}; trying again in {pause:?}"
                );
                pause = (pause * 2).min(MAX_REOPEN_PAUSE);
            }
        }
    }
}

/// `<store file>.revision`: the store revision of the last commit, overwritten in place
/// after each commit as one short line (the revision and a checksum of it).
///
/// Cheap on purpose, since every commit pays it: one `pwrite` into the page cache on a
/// handle kept open, no fsync, no new file and no rename (either would add metadata to
/// the journal commit that the next fsync of the store waits for). That is safe because
/// the record is written only after its commit is durable: a crash or power loss can
/// only leave it behind the file (an older revision, or none), never ahead of it, and a
/// torn or unreadable line fails its checksum and counts as no record. A lagging record
/// can therefore miss a rollback of the last few commits, but it can never make a
/// healthy file look rolled back.
#[derive(Debug)]
pub struct RevisionRecord {
    path: PathBuf,
    /// Opened at the store's open (created if missing); `None` if that failed, and then
    /// nothing is recorded (which only under-detects).
    file: Option<std::fs::File>,
}

/// FNV-1a over the line's revision digits: a line torn between two writes fails it.
fn record_checksum(digits: &str) -> u64 {
    digits.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl RevisionRecord {
    /// The record of the store file at `store` (not opened for writing).
    pub fn of(store: &Path) -> RevisionRecord {
        let mut name = store
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".revision");
        RevisionRecord {
            path: store.with_file_name(name),
            file: None,
        }
    }

    /// Opens the record for writing, creating it if missing.
    fn open_for_writing(mut self) -> RevisionRecord {
        self.file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .ok();
        self
    }

    /// The record file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorded revision; `None` when there is no record or it cannot be read or
    /// fails its checksum (which only under-detects).
    pub fn read(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let (digits, check) = text.trim().split_once(' ')?;
        let sum = u64::from_str_radix(check, 16).ok()?;
        (sum == record_checksum(digits)).then_some(())?;
        digits.parse().ok()
    }

    /// Records `revision` as committed (a fixed-width line at offset 0, so each write
    /// replaces the whole previous one). A failure is ignored: the record then lags,
    /// which can only under-detect.
    pub fn write(&self, revision: u64) {
        use std::os::unix::fs::FileExt;
        if let Some(file) = &self.file {
            let digits = format!("{revision:020}");
            let line = format!("{digits} {:016x}\n", record_checksum(&digits));
            let _ = file.write_at(line.as_bytes(), 0);
        }
    }
}

/// Refuses a store file that is missing or empty although commits were recorded.
fn check_not_emptied(path: &Path, record: &RevisionRecord) -> Result<(), StoreError> {
    let Some(recorded_revision) = record.read().filter(|r| *r > 0) else {
        return Ok(());
    };
    let state = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        Ok(m) if m.len() == 0 => "empty (0 bytes)",
        _ => return Ok(()),
    };
    Err(StoreError::Emptied {
        path: path.to_path_buf(),
        state,
        recorded_revision,
        record: record.path().to_path_buf(),
    })
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.shared.path)
            .field("mode", &self.mode)
            .finish()
    }
}

fn backend(op: &'static str) -> impl FnOnce(redb::Error) -> StoreError {
    move |e| StoreError::Backend {
        op,
        source: Arc::new(e),
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

type KvTable<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// Checks a batch's conditions against the transaction's current view (which holds the
/// batches before it in the group), each op seeing the ops before it in the batch.
/// The outer `Err` is a failed transaction; the inner one fails this batch alone.
/// `Ok(Ok(changed))`: the conditions hold, and whether applying the batch changes
/// anything (deleting absent keys does not). `next` is the revision the batch gets if
/// it changes something.
fn check_batch(
    kv: &KvTable<'_>,
    ops: &[Op],
    next: u64,
) -> Result<Result<bool, StoreError>, StoreError> {
    // Keys written earlier in this batch: their revision (`None`: deleted).
    let mut written: HashMap<&str, Option<u64>> = HashMap::new();
    let mut changed = false;
    for op in ops {
        let key = op.key();
        let actual = match written.get(key) {
            Some(rev) => *rev,
            None => match kv.get(key).map_err(|e| backend("read")(e.into()))? {
                None => None,
                Some(g) => match decode(key, g.value()) {
                    Ok(v) => Some(v.mod_revision),
                    Err(e) => return Ok(Err(e)),
                },
            },
        };
        let (expect, after) = match op {
            Op::Put { expect, .. } => (expect, Some(next)),
            Op::Delete { expect, .. } => (expect, None),
        };
        if !expect.holds(actual) {
            return Ok(Err(StoreError::Conflict {
                key: key.to_string(),
                expected: *expect,
                actual,
            }));
        }
        changed |= after.is_some() || actual.is_some();
        written.insert(key, after);
    }
    Ok(Ok(changed))
}

/// Writes a checked batch at revision `rev`.
fn write_batch(kv: &mut KvTable<'_>, ops: &[Op], rev: u64) -> Result<(), StoreError> {
    for op in ops {
        match op {
            Op::Put { key, value, .. } => {
                let record = encode(rev, value);
                kv.insert(key.as_str(), record.as_slice())
                    .map_err(|e| backend("insert")(e.into()))?;
            }
            Op::Delete { key, .. } => {
                kv.remove(key.as_str())
                    .map_err(|e| backend("remove")(e.into()))?;
            }
        }
    }
    Ok(())
}

impl GroupCommitter for Shared {
    fn queue(&self) -> &WriteQueue {
        &self.queue
    }

    fn went_down(&self, reason: &str) {
        tracing::error!(path = %self.path.display(), "store write failed: {reason}; refusing writes until the file can be reopened");
        if self.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.me.clone();
        let spawned = std::thread::Builder::new()
            .name("store-recovery".into())
            .spawn(move || recover(me));
        if let Err(e) = spawned {
            self.recovering.store(false, Ordering::SeqCst);
            tracing::error!("cannot start the store's recovery thread: {e}");
        }
    }

    fn commit_group(&self, batches: &[Vec<Op>]) -> Result<Vec<Outcome>, StoreError> {
        let outcomes = self.with_db(|db| commit_group_to(db, batches))?;
        // Only after the commit is durable, so the record never leads the file.
        if let Some(rev) = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .filter(|(_, changed)| *changed)
            .map(|(r, _)| *r)
            .max()
        {
            self.record.write(rev);
        }
        Ok(outcomes)
    }
}

/// [`GroupCommitter::commit_group`] on an open database.
fn commit_group_to(db: &Database, batches: &[Vec<Op>]) -> Result<Vec<Outcome>, StoreError> {
    let mut txn = db
        .begin_write()
        .map_err(|e| backend("begin write")(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| backend("set durability")(e.into()))?;
    let (outcomes, changed) = {
        let mut kv = txn
            .open_table(KV)
            .map_err(|e| backend("open table kv")(e.into()))?;
        let mut meta = txn
            .open_table(META)
            .map_err(|e| backend("open table meta")(e.into()))?;
        let current = meta
            .get(REVISION_KEY)
            .map_err(|e| backend("read revision")(e.into()))?
            .map_or(0, |g| g.value());
        let mut rev = current;
        let mut outcomes = Vec::with_capacity(batches.len());
        for ops in batches {
            match check_batch(&kv, ops, rev + 1)? {
                Err(e) => outcomes.push(Err(e)),
                Ok(false) => outcomes.push(Ok((rev, false))),
                Ok(true) => {
                    rev += 1;
                    write_batch(&mut kv, ops, rev)?;
                    outcomes.push(Ok((rev, true)));
                }
            }
        }
        if rev != current {
            meta.insert(REVISION_KEY, rev)
                .map_err(|e| backend("write revision")(e.into()))?;
        }
        (outcomes, rev != current)
    };
    if changed {
        txn.commit().map_err(|e| backend("commit")(e.into()))?;
    } else {
        // Nothing to make durable (conflicts and no-ops only): skip the fsync. What
        // the checks saw was committed durably by earlier groups.
        txn.abort().map_err(|e| backend("abort")(e.into()))?;
    }
    Ok(outcomes)
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Batches whose writers dropped their pending write without waiting were
        // still accepted into the queue: commit them before the file closes.
        self.queue.flush(&*self);
    }
}

impl RedbStore {
    /// Opens the store file at `path`, creating it (and its directory) if needed, with
    /// group commit.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_mode(path, CommitMode::Group)
    }

    /// [`RedbStore::open`] with the given commit mode.
    pub fn open_with_mode(path: impl AsRef<Path>, mode: CommitMode) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let record = RevisionRecord::of(&path);
        check_not_emptied(&path, &record)?;
        let record = record.open_for_writing();
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            source: Box::new(e),
        })?;
        create_tables(&db)?;
        let store = RedbStore {
            shared: Arc::new_cyclic(|me| Shared {
                db: RwLock::new(Some(db)),
                path,
                queue: WriteQueue::default(),
                me: me.clone(),
                recovering: AtomicBool::new(false),
                record,
            }),
            mode,
        };
        let file_revision = store.revision()?;
        if let Some(recorded_revision) = store.shared.record.read()
            && recorded_revision > file_revision
        {
            return Err(StoreError::RolledBack {
                path: store.shared.path.clone(),
                file_revision,
                recorded_revision,
                record: store.shared.record.path().to_path_buf(),
            });
        }
        Ok(store)
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Applies `ops` durably; the revision after, and whether anything changed.
    fn apply_counted(&self, ops: Vec<Op>) -> Outcome {
        match self.mode {
            CommitMode::Group => self.submit(ops).wait_counted(),
            CommitMode::Single => {
                let mut outcomes = self.shared.commit_group(std::slice::from_ref(&ops))?;
                outcomes.pop().unwrap_or_else(|| {
                    Err(StoreError::Unavailable {
                        reason: "a batch got no outcome".into(),
                    })
                })
            }
        }
    }
}

fn read_txn(db: &Database) -> Result<redb::ReadTransaction, StoreError> {
    db.begin_read().map_err(|e| backend("begin read")(e.into()))
}

/// Creates both tables up front so reads of a fresh file find them.
fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db
        .begin_write()
        .map_err(|e| backend("begin write")(e.into()))?;
    txn.open_table(KV)
        .map_err(|e| backend("open table kv")(e.into()))?;
    txn.open_table(META)
        .map_err(|e| backend("open table meta")(e.into()))?;
    txn.commit().map_err(|e| backend("commit")(e.into()))
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.shared.with_db(|db| {
            let txn = read_txn(db)?;
            let kv = txn
                .open_table(KV)
                .map_err(|e| backend("open table kv")(e.into()))?;
            match kv.get(key).map_err(|e| backend("read")(e.into()))? {
                None => Ok(None),
                Some(guard) => decode(key, guard.value()).map(Some),
            }
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        self.shared.with_db(|db| {
            let txn = read_txn(db)?;
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
        })
    }

    fn apply(&self, ops: &[Op]) -> Result<u64, StoreError> {
        self.apply_counted(ops.to_vec()).map(|(rev, _)| rev)
    }

    fn submit(&self, ops: Vec<Op>) -> PendingWrite {
        match self.mode {
            CommitMode::Group => {
                let slot = self.shared.queue.submit(ops);
                PendingWrite::queued(self.shared.clone(), slot)
            }
            CommitMode::Single => PendingWrite::from_outcome(self.apply_counted(ops)),
        }
    }

    fn delete(&self, key: &str, expect: crate::Expect) -> Result<Option<u64>, StoreError> {
        let (rev, changed) = self.apply_counted(vec![Op::Delete {
            key: key.to_string(),
            expect,
        }])?;
        Ok(changed.then_some(rev))
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.shared.with_db(|db| {
            let txn = read_txn(db)?;
            let meta = txn
                .open_table(META)
                .map_err(|e| backend("open table meta")(e.into()))?;
            Ok(meta
                .get(REVISION_KEY)
                .map_err(|e| backend("read revision")(e.into()))?
                .map_or(0, |g| g.value()))
        })
    }

    fn health(&self) -> Result<(), StoreError> {
        match self.shared.queue.down_reason() {
            None => Ok(()),
            Some(reason) => Err(StoreError::Unavailable { reason }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expect, StoreExt};
    use std::sync::Arc;

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
    fn single_commit_mode_meets_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        crate::contract::all(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::new(
                RedbStore::open_with_mode(
                    dir.path().join(format!("s{i}.redb")),
                    CommitMode::Single,
                )
                .unwrap(),
            )
        });
    }

    /// Many threads writing at once: every write is answered with its own revision, the
    /// revisions are exactly 1..=N with no gap or repeat, each thread sees its own
    /// revisions rise and reads its own writes, and everything is there after a reopen.
    #[test]
    fn concurrent_writers_are_all_durable_with_consistent_revisions() {
        const THREADS: usize = 8;
        const WRITES: usize = 40;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..WRITES {
                        let key = format!("w/{t:02}/{i:03}");
                        let rev = if i % 2 == 0 {
                            store.put(&key, key.as_bytes(), Expect::Absent).unwrap()
                        } else {
                            // Two keys in one batch share its revision.
                            store
                                .apply(&[
                                    Op::put(key.clone(), key.as_bytes().to_vec()),
                                    Op::put(format!("{key}/pair"), b"p".to_vec()),
                                ])
                                .unwrap()
                        };
                        assert_eq!(store.get(&key).unwrap().unwrap().mod_revision, rev);
                        if let Some((_, last)) = mine.last() {
                            assert!(rev > *last, "revisions of one writer rise");
                        }
                        mine.push((key, rev));
                    }
                    mine
                })
            })
            .collect();
        let written: Vec<(String, u64)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let total = (THREADS * WRITES) as u64;
        let mut revs: Vec<u64> = written.iter().map(|(_, r)| *r).collect();
        revs.sort_unstable();
        assert_eq!(revs, (1..=total).collect::<Vec<_>>());
        assert_eq!(store.revision().unwrap(), total);
        drop(store);

        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.revision().unwrap(), total);
        for (key, rev) in &written {
            let got = store.get(key).unwrap().unwrap();
            assert_eq!(
                (got.value.as_slice(), got.mod_revision),
                (key.as_bytes(), *rev)
            );
        }
        assert_eq!(store.list("w/").unwrap().len(), THREADS * WRITES * 3 / 2);
        assert_eq!(store.put("next", b"x", Expect::Absent).unwrap(), total + 1);
    }

    /// Compare-and-swap increments from many threads: each lost race is a conflict that
    /// changed nothing, so the counter ends at exactly the number of increments.
    #[test]
    fn concurrent_compare_and_swap_loses_no_increment() {
        const THREADS: usize = 6;
        const INCREMENTS: usize = 25;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Arc::new(RedbStore::open(&path).unwrap());
        store.put_json("counter", &0u64, Expect::Absent).unwrap();
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut conflicts = 0u64;
                    for _ in 0..INCREMENTS {
                        loop {
                            let (n, rev) = store.get_json::<u64>("counter").unwrap().unwrap();
                            match store.put_json("counter", &(n + 1), Expect::Revision(rev)) {
                                Ok(new_rev) => {
                                    assert!(new_rev > rev);
                                    break;
                                }
                                Err(e) if e.is_conflict() => conflicts += 1,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let expected = (THREADS * INCREMENTS) as u64;
        let (n, rev) = store.get_json::<u64>("counter").unwrap().unwrap();
        assert_eq!(n, expected);
        // One revision per successful write, none for the conflicts.
        assert_eq!(rev, expected + 1);
        assert_eq!(store.revision().unwrap(), expected + 1);
        drop(store);
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(
            store.get_json::<u64>("counter").unwrap(),
            Some((expected, rev))
        );
    }

    /// Batches submitted before anyone waits make one group: a batch whose condition
    /// fails against the batches before it fails alone, the rest commit in order.
    #[test]
    fn a_conflicting_batch_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = RedbStore::open(&path).unwrap();
        store.put("old", b"0", Expect::Any).unwrap();
        let first = store.submit(vec![Op::Put {
            key: "a".into(),
            value: b"1".to_vec(),
            expect: Expect::Absent,
        }]);
        // Fails: `a` was created by the batch before it in the same group.
        let conflicting = store.submit(vec![
            Op::put("b", b"2".to_vec()),
            Op::Put {
                key: "a".into(),
                value: b"x".to_vec(),
                expect: Expect::Absent,
            },
        ]);
        // Holds: sees `a` at the revision the first batch gave it.
        let dependent = store.submit(vec![Op::Put {
            key: "a".into(),
            value: b"3".to_vec(),
            expect: Expect::Revision(2),
        }]);
        let unchanged = store.submit(vec![Op::delete("never-there")]);
        let deleting = store.submit(vec![Op::Delete {
            key: "old".into(),
            expect: Expect::Revision(1),
        }]);
        assert_eq!(first.wait().unwrap(), 2);
        let e = conflicting.wait().unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict { key, actual: Some(2), .. } if key == "a"),
            "{e}"
        );
        assert_eq!(dependent.wait().unwrap(), 3);
        assert_eq!(unchanged.wait().unwrap(), 3);
        assert_eq!(deleting.wait().unwrap(), 4);
        drop(store);

        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.revision().unwrap(), 4);
        assert_eq!(
            store.get("a").unwrap(),
            Some(Versioned {
                value: b"3".to_vec(),
                mod_revision: 3
            })
        );
        assert_eq!(store.get("b").unwrap(), None);
        assert_eq!(store.get("old").unwrap(), None);
    }

    #[test]
    fn submitted_batches_apply_in_order_even_if_never_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            let a = store.submit(vec![Op::put("k", b"1".to_vec())]);
            let b = store.submit(vec![Op::put("k", b"2".to_vec())]);
            // Waiting for the later batch implies the earlier one is durable too.
            assert_eq!(b.wait().unwrap(), 2);
            assert_eq!(a.wait().unwrap(), 1);
            // Dropped without waiting: still committed when the store closes.
            drop(store.submit(vec![Op::put("k", b"3".to_vec())]));
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.get("k").unwrap().unwrap().value, b"3");
        assert_eq!(store.revision().unwrap(), 3);
    }

    /// A failed group fails its batches and takes the queue down: later batches are
    /// refused at once, the backend is told once, and once it resumes the queue, writes
    /// go through again.
    #[test]
    fn a_failed_group_takes_the_queue_down_until_it_resumes() {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        #[derive(Default)]
        struct Flaky {
            queue: WriteQueue,
            failing: AtomicBool,
            downs: AtomicUsize,
        }
        impl GroupCommitter for Flaky {
            fn queue(&self) -> &WriteQueue {
                &self.queue
            }
            fn went_down(&self, _: &str) {
                self.downs.fetch_add(1, Ordering::SeqCst);
            }
            fn commit_group(&self, batches: &[Vec<Op>]) -> Result<Vec<Outcome>, StoreError> {
                if self.failing.load(Ordering::SeqCst) {
                    return Err(backend("commit")(redb::Error::PreviousIo));
                }
                Ok(batches.iter().map(|_| Ok((1, true))).collect())
            }
        }
        let flaky = Arc::new(Flaky::default());
        flaky.failing.store(true, Ordering::SeqCst);
        let submit = || PendingWrite::queued(flaky.clone(), flaky.queue.submit(vec![]));
        let first = submit();
        let second = submit();
        assert!(matches!(first.wait(), Err(StoreError::Backend { .. })));
        assert!(matches!(second.wait(), Err(StoreError::Backend { .. })));
        let refused = submit().wait().unwrap_err();
        assert!(
            matches!(refused, StoreError::Unavailable { .. }),
            "{refused}"
        );
        assert!(refused.is_unavailable());
        assert!(refused.to_string().contains("Previous I/O"), "{refused}");
        assert_eq!(flaky.downs.load(Ordering::SeqCst), 1);
        assert!(flaky.queue.down_reason().is_some());

        flaky.failing.store(false, Ordering::SeqCst);
        flaky.queue.resume();
        assert_eq!(submit().wait().unwrap(), 1);
        assert_eq!(flaky.downs.load(Ordering::SeqCst), 1);
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
    fn an_older_copy_of_the_file_is_refused_as_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            s.put("a", b"1", Expect::Any).unwrap();
        }
        std::fs::copy(&path, dir.path().join("old.redb")).unwrap();
        {
            let s = RedbStore::open(&path).unwrap();
            s.put("b", b"2", Expect::Any).unwrap();
            s.put("c", b"3", Expect::Any).unwrap();
        }
        assert_eq!(RevisionRecord::of(&path).read(), Some(3));
        std::fs::copy(dir.path().join("old.redb"), &path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::RolledBack {
                    file_revision: 1,
                    recorded_revision: 3,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("state.redb.revision") && text.contains("backup"),
            "{text}"
        );
        // The operator accepts the older file by removing the record.
        std::fs::remove_file(RevisionRecord::of(&path).path()).unwrap();
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.revision().unwrap(), 1);
    }

    #[test]
    fn an_emptied_or_missing_file_with_a_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            s.put("a", b"1", Expect::Any).unwrap();
        }
        std::fs::write(&path, b"").unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Emptied {
                    recorded_revision: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("0 bytes"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Emptied {
                    state: "missing",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!path.exists(), "a refused open creates nothing");
    }

    #[test]
    fn a_zero_byte_file_without_a_record_opens_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        std::fs::write(&path, b"").unwrap();
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.revision().unwrap(), 0);
        assert_eq!(s.list("").unwrap(), vec![]);
    }

    #[test]
    fn a_torn_or_foreign_record_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            for i in 0..12 {
                s.put("k", format!("{i}").as_bytes(), Expect::Any).unwrap();
            }
        }
        let record = RevisionRecord::of(&path);
        assert_eq!(record.read(), Some(12));
        let line = std::fs::read_to_string(record.path()).unwrap();
        // One digit of a newer revision over an older line: the checksum no longer holds.
        let torn = line.replacen("00012", "00013", 1);
        std::fs::write(record.path(), torn).unwrap();
        assert_eq!(record.read(), None);
        std::fs::write(record.path(), "garbage").unwrap();
        assert_eq!(record.read(), None);
        // And the store opens: an unreadable record never refuses a file.
        assert_eq!(RedbStore::open(&path).unwrap().revision().unwrap(), 12);
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
