//! The loop every runtime runs: tick, then sleep until the tick's wake-up, a read of the
//! master, a poke, or shutdown, whichever comes first, and never longer than
//! [`MAX_SLEEP`]. What a tick does is the runtime's; when it runs is decided here once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::runtime::component::LoopContext;
use crate::runtime::master_sync::stopped;

/// Longest a runtime sleeps between ticks.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// A runtime the loop drives.
pub trait Ticking: Send + Sync + 'static {
    /// Plans and carries the plan out once.
    fn tick(&self) -> impl Future<Output = ()> + Send;
    /// When the last tick wants the next one (at the latest; `None`: no time of its own).
    fn next_wake(&self) -> impl Future<Output = Option<DateTime<Utc>>> + Send;
    /// The current time on the runtime's clock (the one `next_wake` is on).
    fn now(&self) -> DateTime<Utc>;
    /// Poked when something outside the loop changed (an API call): the loop ticks at
    /// once. A permit is kept when the loop is busy, so no poke is lost.
    fn poke(&self) -> &Notify;
}

/// How long to sleep before the tick wanted at `wake_at`, at most [`MAX_SLEEP`].
pub fn sleep_until(wake_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    wake_at
        .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(MAX_SLEEP)
        .min(MAX_SLEEP)
}

/// Runs `runtime`'s ticks until `ctx.stop` turns true. The first tick waits up to
/// `first_view_wait` for a first read of the master, so that it does not decide on an
/// empty view.
pub async fn run<T: Ticking>(runtime: Arc<T>, mut ctx: LoopContext, first_view_wait: Duration) {
    let mut first = ctx.view.clone();
    tokio::select! {
        _ = tokio::time::timeout(first_view_wait, first.wait_for(|v| v.reads > 0)) => {}
        _ = stopped(ctx.stop.clone()) => return,
    }
    loop {
        runtime.tick().await;
        let sleep = sleep_until(runtime.next_wake().await, runtime.now());
        tokio::select! {
            // Stop first: at shutdown the sync loop ends too, and its closed channel
            // must not win the draw and send this loop back to sleep.
            biased;
            _ = stopped(ctx.stop.clone()) => break,
            _ = tokio::time::sleep(sleep) => {}
            _ = runtime.poke().notified() => {}
            r = ctx.view.changed() => if r.is_err() {
                // The sync loop is gone: keep ticking on the clock alone, until stop.
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = stopped(ctx.stop.clone()) => break,
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn sleeps_until_the_wake_up_but_never_past_the_longest_sleep() {
        let now = Utc::now();
        assert_eq!(sleep_until(None, now), MAX_SLEEP);
        assert_eq!(
            sleep_until(Some(now - TimeDelta::seconds(3)), now),
            Duration::ZERO
        );
        assert_eq!(
            sleep_until(Some(now + TimeDelta::milliseconds(250)), now),
            Duration::from_millis(250)
        );
        assert_eq!(sleep_until(Some(now + TimeDelta::hours(1)), now), MAX_SLEEP);
    }
}
