//! The master-sync loop: keeps a recent [`MasterView`] (all tasks and nodes) and
//! publishes it on a watch channel that every component's loop listens to.
//!
//! It reads `GET /v1/tasks` and `GET /v1/nodes` about once a second, and at once (at
//! most every [`MIN_FETCH_GAP`]) after an event on the master's `GET /v1/events` stream,
//! which it keeps subscribed to, reconnecting when the master comes back. While the
//! master is down the view keeps its last contents and says it is stale; the components
//! keep working (and the API stays up) without it.

use std::sync::Arc;
use std::time::Duration;

// tokio's clock, which tests can pause and advance.
use tokio::time::Instant;

use drover_api::client::MasterClient;
use drover_api::node::Node;
use drover_api::task::{Task, TaskFilter};
use futures::StreamExt;
use tokio::sync::{Notify, watch};

/// Longest gap between two reads of the master.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Shortest gap between two reads, so a burst of events costs one read, not hundreds.
pub const MIN_FETCH_GAP: Duration = Duration::from_millis(20);
/// How long one read may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before subscribing to the event stream again after it broke.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// The master's tasks and nodes as last read.
#[derive(Debug, Clone, Default)]
pub struct MasterView {
    /// Every task the master knows (active and its history), or `None` before the first
    /// successful read.
    pub tasks: Option<Arc<Vec<Task>>>,
    /// The nodes, as last read (empty before the first read).
    pub nodes: Arc<Vec<Node>>,
    /// When the request of the last successful read was sent: the view holds at least
    /// everything the master knew then.
    pub as_of: Option<Instant>,
    /// Whether the last read succeeded.
    pub reachable: bool,
    /// How many reads succeeded so far.
    pub reads: u64,
}

impl MasterView {
    /// The tasks, if they were read within `max_age`.
    pub fn fresh_tasks(&self, max_age: Duration) -> Option<&Arc<Vec<Task>>> {
        let as_of = self.as_of?;
        if as_of.elapsed() > max_age {
            return None;
        }
        self.tasks.as_ref()
    }
}

/// Runs the sync loop until `stop` turns true, publishing each read on `tx`.
pub async fn run(
    master: MasterClient,
    tx: watch::Sender<Arc<MasterView>>,
    stop: watch::Receiver<bool>,
) {
    // The event subscriber pokes this; a permit is kept when nobody waits.
    let poke = Arc::new(Notify::new());
    let subscriber = tokio::spawn(subscribe(master.clone(), poke.clone(), stop.clone()));
    let mut last_fetch: Option<Instant> = None;
    loop {
        if let Some(t) = last_fetch {
            let gap = MIN_FETCH_GAP.saturating_sub(t.elapsed());
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
        last_fetch = Some(Instant::now());
        let previous = tx.borrow().clone();
        // A master that does not answer must not hold shutdown up for the read's timeout.
        let view = tokio::select! {
            view = fetch(&master, &previous) => view,
            _ = stopped(stop.clone()) => break,
        };
        let was = tx.borrow().reachable;
        if was != view.reachable {
            if view.reachable {
                tracing::info!(master = %master.http().base(), "master reachable");
            } else {
                tracing::warn!(master = %master.http().base(), "master unreachable; jobs keep their schedule and launches are re-sent later");
            }
        }
        tx.send_replace(Arc::new(view));
        tokio::select! {
            _ = poke.notified() => {}
            _ = tokio::time::sleep(REFRESH_EVERY) => {}
            _ = stopped(stop.clone()) => break,
        }
    }
    subscriber.abort();
}

/// One read of tasks and nodes; on failure the previous contents, marked unreachable.
async fn fetch(master: &MasterClient, previous: &MasterView) -> MasterView {
    let sent = Instant::now();
    let filter = TaskFilter::default();
    let both = async { tokio::join!(master.tasks(&filter), master.nodes()) };
    match tokio::time::timeout(FETCH_TIMEOUT, both).await {
        Ok((Ok(tasks), Ok(nodes))) => MasterView {
            tasks: Some(Arc::new(tasks)),
            nodes: Arc::new(nodes),
            as_of: Some(sent),
            reachable: true,
            reads: previous.reads.saturating_add(1),
        },
        Ok((Err(e), _)) | Ok((_, Err(e))) => {
            tracing::debug!("cannot read the master: {e}");
            MasterView {
                reachable: false,
                ..previous.clone()
            }
        }
        Err(_) => {
            tracing::debug!("the master did not answer within {FETCH_TIMEOUT:?}");
            MasterView {
                reachable: false,
                ..previous.clone()
            }
        }
    }
}

/// Keeps a subscription to the master's event stream and pokes the loop on each event
/// (and on each new subscription, as events may have been missed in between).
async fn subscribe(master: MasterClient, poke: Arc<Notify>, stop: watch::Receiver<bool>) {
    loop {
        match master.events().await {
            Ok(stream) => {
                poke.notify_one();
                let mut stream = std::pin::pin!(stream);
                loop {
                    tokio::select! {
                        item = stream.next() => match item {
                            Some(Ok(_)) => poke.notify_one(),
                            // An event this version cannot decode still means a change.
                            Some(Err(drover_api::client::ClientError::Decode { .. })) => poke.notify_one(),
                            Some(Err(_)) | None => break,
                        },
                        _ = stopped(stop.clone()) => return,
                    }
                }
            }
            Err(e) => tracing::debug!("cannot subscribe to the master's events: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            _ = stopped(stop.clone()) => return,
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
