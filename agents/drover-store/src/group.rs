//! Group commit: the batches that concurrent writers submit wait in one queue, and one
//! of the writers (the leader) commits everything queued so far in one transaction with
//! one fsync, then hands each writer its own outcome.
//!
//! - The first writer that finds no leader at work becomes the leader: it takes the
//!   queued batches (its own among them), commits them, publishes every outcome, and
//!   wakes the writer now at the head of the queue to lead the next group. No timer
//!   gathers a group: the batches that arrive while one group's fsync runs make the next
//!   group, so a lone writer pays one fsync and nothing more.
//! - Groups commit one at a time, in queue order, so batches are applied in the order
//!   they were submitted, and a batch's outcome is published only after the transaction
//!   holding it is durable: when a writer learns its batch is durable, every batch
//!   submitted before it is durable too.
//! - A group whose transaction fails fails every batch in it and every batch queued
//!   behind it, and the queue is *down*: it refuses new batches at once
//!   ([`StoreError::Unavailable`]) until the backend has reopened its file and
//!   [`WriteQueue::resume`] is called. A batch submitted after a failed one may have been
//!   planned on top of it, and a failed fsync cannot be retried safely, so nothing is
//!   retried here: the writers learn of the failure and decide again once the store is
//!   back (the master and the scheduler reload their state from it).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::{Op, StoreError};

/// A batch's result: the store revision after it, and whether it changed anything.
pub(crate) type Outcome = Result<(u64, bool), StoreError>;

/// Most batches one transaction takes, so one group's transaction stays bounded.
const MAX_GROUP: usize = 4096;

/// A backend that can commit several batches in one durable transaction.
pub(crate) trait GroupCommitter: Send + Sync {
    /// The queue the backend's writers share.
    fn queue(&self) -> &WriteQueue;

    /// Called once each time the queue goes down after a failed group (`reason`), with
    /// the queue's lock held: the backend starts reopening itself (elsewhere), and calls
    /// [`WriteQueue::resume`] once it can write again.
    fn went_down(&self, reason: &str);

    /// Applies `batches` in order in one durable transaction, each atomically: a batch
    /// whose condition fails (checked against the state the batches before it left) gets
    /// its conflict and is not applied, and the others still are. `Err` when the
    /// transaction as a whole failed: nothing of the group was committed.
    fn commit_group(&self, batches: &[Vec<Op>]) -> Result<Vec<Outcome>, StoreError>;
}

/// Where a submitted batch's outcome appears.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Set (under the queue's lock) once the batch's transaction has ended.
    outcome: Mutex<Option<Outcome>>,
    /// Wakes the writer when its outcome is set or when it should lead the next group.
    /// Always waited on with the queue's lock.
    wake: Condvar,
}

impl Slot {
    fn take(&self) -> Option<Outcome> {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn set(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.wake.notify_one();
    }
}

/// The queue of batches waiting for a transaction.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    pending: VecDeque<(Vec<Op>, Arc<Slot>)>,
    /// A writer is committing a group (outside the lock).
    leader_busy: bool,
    /// Why the queue takes no batches, from a failed group until the backend resumes it.
    down: Option<String>,
}

impl WriteQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every step under this lock only moves batches and outcomes around (no step
        // panics halfway), so a poisoned lock still guards a consistent queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `ops` behind every batch submitted before; does not block on I/O.
    pub(crate) fn submit(&self, ops: Vec<Op>) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        let mut q = self.lock();
        match &q.down {
            Some(reason) => slot.set(Err(StoreError::Unavailable {
                reason: reason.clone(),
            })),
            None => q.pending.push_back((ops, slot.clone())),
        }
        slot
    }

    /// Blocks until the batch behind `slot` has been committed (durably) or has failed,
    /// leading groups through `committer` whenever no other writer does.
    pub(crate) fn wait(&self, committer: &dyn GroupCommitter, slot: &Slot) -> Outcome {
        let mut q = self.lock();
        loop {
            if let Some(outcome) = slot.take() {
                return outcome;
            }
            if q.leader_busy {
                q = slot.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            q = self.lead(committer, q);
        }
    }

    /// Commits the head of the queue as one group; returns with the lock held again.
    fn lead<'q>(
        &'q self,
        committer: &dyn GroupCommitter,
        mut q: MutexGuard<'q, QueueState>,
    ) -> MutexGuard<'q, QueueState> {
        let take = q.pending.len().min(MAX_GROUP);
        if take == 0 {
            return q;
        }
        q.leader_busy = true;
        let (batches, slots): (Vec<Vec<Op>>, Vec<Arc<Slot>>) = q.pending.drain(..take).unzip();
        drop(q);
        let mut guard = LeaderGuard {
            queue: self,
            committer,
            slots,
            finished: false,
        };
        let result = committer.commit_group(&batches);
        let mut q = self.lock();
        guard.finished = true;
        let slots = std::mem::take(&mut guard.slots);
        match result {
            Ok(outcomes) if outcomes.len() == slots.len() => {
                for (slot, outcome) in slots.iter().zip(outcomes) {
                    slot.set(outcome);
                }
            }
            Ok(outcomes) => {
                // A backend bug, not an I/O failure; whatever it committed cannot be
                // matched to its writers, so nothing more may be accepted.
                let reason = format!(
                    "a group of {} batches got {} outcomes",
                    slots.len(),
                    outcomes.len()
                );
                for slot in &slots {
                    slot.set(Err(StoreError::Unavailable {
                        reason: reason.clone(),
                    }));
                }
                self.go_down(committer, &mut q, reason);
            }
            Err(e) => {
                for slot in &slots {
                    slot.set(Err(e.replicate()));
                }
                self.go_down(committer, &mut q, e.to_string());
            }
        }
        q.leader_busy = false;
        self.after_group(&mut q);
        q
    }

    /// Marks the queue down (once per failure) and tells the backend to recover.
    fn go_down(&self, committer: &dyn GroupCommitter, q: &mut QueueState, reason: String) {
        if q.down.is_none() {
            committer.went_down(&reason);
            q.down = Some(reason);
        }
    }

    /// After a group: fails everything queued if the queue is down, else wakes the next
    /// leader.
    fn after_group(&self, q: &mut QueueState) {
        if let Some(reason) = q.down.clone() {
            for (_, slot) in q.pending.drain(..) {
                slot.set(Err(StoreError::Unavailable {
                    reason: reason.clone(),
                }));
            }
        } else if let Some((_, next)) = q.pending.front() {
            next.wake.notify_one();
        }
    }

    /// Why the queue refuses batches, while it is down.
    pub(crate) fn down_reason(&self) -> Option<String> {
        self.lock().down.clone()
    }

    /// Takes batches again: the backend has recovered from the failure that took the
    /// queue down.
    pub(crate) fn resume(&self) {
        self.lock().down = None;
    }

    /// Commits whatever is still queued (batches whose writers stopped waiting), for a
    /// backend being closed.
    pub(crate) fn flush(&self, committer: &dyn GroupCommitter) {
        let mut q = self.lock();
        while !q.pending.is_empty() && !q.leader_busy {
            q = self.lead(committer, q);
        }
    }
}

/// Keeps a panicking commit from leaving the queue without a leader forever: its
/// writers get an error and the queue goes down until the backend recovers.
struct LeaderGuard<'q> {
    queue: &'q WriteQueue,
    committer: &'q dyn GroupCommitter,
    slots: Vec<Arc<Slot>>,
    finished: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let reason = "a commit panicked".to_string();
        let mut q = self.queue.lock();
        for slot in &self.slots {
            slot.set(Err(StoreError::Unavailable {
                reason: reason.clone(),
            }));
        }
        self.queue.go_down(self.committer, &mut q, reason);
        q.leader_busy = false;
        self.queue.after_group(&mut q);
    }
}
