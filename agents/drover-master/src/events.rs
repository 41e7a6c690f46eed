//! The event bus behind `GET /v1/events`: numbered events fanned out to every
//! subscriber. Slow subscribers miss events (they are told how many) rather than
//! holding the master back.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use drover_api::event::{Event, EventKind};
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it starts missing some.
const BUFFER: usize = 4096;

/// Numbers events and fans them out.
#[derive(Debug)]
pub struct EventBus {
    /// Every subscriber holds a receiver; sending with none is not an error.
    tx: broadcast::Sender<Event>,
    /// The last sequence number handed out.
    seq: AtomicU64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::Sender::new(BUFFER),
            seq: AtomicU64::new(0),
        }
    }
}

impl EventBus {
    /// Numbers and sends one event.
    pub fn publish(&self, kind: EventKind, at: DateTime<Utc>) -> Event {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let event = Event { seq, at, kind };
        // No subscriber is fine: nobody is watching.
        let _ = self.tx.send(event.clone());
        event
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_in_order() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        let kind = EventKind::NodeRegistered {
            node: "n".into(),
            version: "1".into(),
        };
        bus.publish(kind.clone(), crate::testutil::t0());
        bus.publish(kind, crate::testutil::t0());
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        assert_eq!(rx.try_recv().unwrap().seq, 2);
    }
}
