//! Whether a failed attempt is retried, and when.
//!
//! A job with `retries: n` gets up to `n + 1` attempts per run. After attempt `a` fails
//! (exits non-zero, is lost, or is refused by the master), attempt `a + 1` starts after a
//! fixed delay when `a <= n`; otherwise the run has failed. The delay is fixed, as
//! Chronos's `--failure_retry` was (its default, 60 s, is ours too), and configurable in
//! [`RetryPolicy`]: a job that fails because of its node or a brief outage gets a
//! fresh placement soon, without a retry storm. A killed attempt is never retried: a kill
//! is someone's decision.

use chrono::{DateTime, TimeDelta, Utc};

/// The delay Chronos used between attempts (`--failure_retry`, 60 000 ms).
pub const DEFAULT_RETRY_DELAY: TimeDelta = TimeDelta::seconds(60);

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Time from a failed attempt's end to the next attempt's launch.
    pub delay: TimeDelta,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            delay: DEFAULT_RETRY_DELAY,
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Launch attempt `attempt` at `at`.
    RetryAt {
        /// The next attempt's number.
        attempt: u32,
        /// When to launch it.
        at: DateTime<Utc>,
    },
    /// That was the last attempt: the run has failed.
    GiveUp,
}

impl RetryPolicy {
    /// What follows the failure of `attempt` (1-based) of a job allowed `retries`
    /// retries, which failed at `failed_at`.
    pub fn after_failure(
        &self,
        attempt: u32,
        retries: u32,
        failed_at: DateTime<Utc>,
    ) -> AfterFailure {
        if attempt > retries {
            return AfterFailure::GiveUp;
        }
        let at = failed_at
            .checked_add_signed(self.delay.max(TimeDelta::zero()))
            .unwrap_or(failed_at);
        AfterFailure::RetryAt {
            attempt: attempt.saturating_add(1),
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_two_means_three_attempts() {
        let p = RetryPolicy {
            delay: TimeDelta::seconds(5),
        };
        let t = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            p.after_failure(1, 2, t),
            AfterFailure::RetryAt {
                attempt: 2,
                at: t + TimeDelta::seconds(5)
            }
        );
        assert_eq!(
            p.after_failure(2, 2, t),
            AfterFailure::RetryAt {
                attempt: 3,
                at: t + TimeDelta::seconds(5)
            }
        );
        assert_eq!(p.after_failure(3, 2, t), AfterFailure::GiveUp);
        assert_eq!(p.after_failure(1, 0, t), AfterFailure::GiveUp);
        assert_eq!(RetryPolicy::default().delay, TimeDelta::seconds(60));
    }
}
