//! Which scheduled instant is due now, which were missed, and when to wake up next.
//!
//! The rule, for the instants of a schedule after the [`Cursor`] (what is already
//! handled) and at or before `now`:
//!
//! - At most one run is due: the most recent such instant, if `now - instant <= epsilon`
//!   (inclusive, so an instant exactly `epsilon` old still runs).
//! - Every other one is missed: recorded as skipped, never run. Catch-up runs are never
//!   started in bulk, whatever the length of the outage.
//! - The cursor moves to the most recent instant considered, due or missed, so a second
//!   call with the same `now` finds nothing.
//!
//! Counting and picking instants uses the schedule's `nth` by galloping and bisection,
//! so a `PT1S` schedule asked about after a week's outage costs a few dozen `nth` calls,
//! not 604,800. Only the latest [`MAX_LISTED_SKIPS`] missed instants are listed one by
//! one; the rest are counted.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// How many missed instants one decision lists individually (and the engine records one
/// skipped run for each); older ones are only counted.
pub const MAX_LISTED_SKIPS: usize = 10;

/// How far along its schedule a job is: which instants are already handled (run or
/// skipped). Persisted with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "snake_case")]
pub enum Cursor {
    /// Nothing at or after this instant is handled yet; instants before it are not the
    /// job's business (a new job starts at `created_at - epsilon`, an enabled job at the
    /// instant it was enabled).
    From(DateTime<Utc>),
    /// This instant and every one before it are handled.
    After(DateTime<Utc>),
}

impl Cursor {
    /// Whether `instant` is still to be handled.
    pub fn admits(&self, instant: DateTime<Utc>) -> bool {
        match *self {
            Cursor::From(t) => instant >= t,
            Cursor::After(t) => instant > t,
        }
    }
}

/// What [`decide`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDecision {
    /// The instant to run now, if any.
    pub due: Option<DateTime<Utc>>,
    /// The latest missed instants (at most [`MAX_LISTED_SKIPS`]), oldest first.
    pub skipped: Vec<DateTime<Utc>>,
    /// Missed instants older than those in `skipped`, only counted.
    pub skipped_unlisted: u64,
    /// The cursor after this decision.
    pub cursor: Cursor,
    /// The first instant still to come (after `now` and after the cursor): when to wake
    /// up next. `None` when the schedule has no run left.
    pub next: Option<DateTime<Utc>>,
}

impl DueDecision {
    /// How many instants were missed in all.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.len() as u64 + self.skipped_unlisted
    }
}

/// Decides what of `schedule` is due at `now`, given what the cursor says is handled.
/// `epsilon` below zero counts as zero.
pub fn decide(
    schedule: &Schedule,
    cursor: Cursor,
    now: DateTime<Utc>,
    epsilon: TimeDelta,
) -> DueDecision {
    let epsilon = epsilon.max(TimeDelta::zero());
    // Index of the first instant the cursor admits, and of the first instant after now.
    let lo = match cursor {
        Cursor::From(t) => count_runs(schedule, |run| run < t),
        Cursor::After(t) => count_runs(schedule, |run| run <= t),
    };
    let hi = count_runs(schedule, |run| run <= now);
    if hi <= lo {
        return DueDecision {
            due: None,
            skipped: Vec::new(),
            skipped_unlisted: 0,
            cursor,
            next: schedule.nth(lo.max(hi)),
        };
    }
    let next = schedule.nth(hi);
    // `hi - 1 >= lo`, so the latest instant exists (count_runs only counts existing runs).
    let Some(latest) = schedule.nth(hi - 1) else {
        return DueDecision {
            due: None,
            skipped: Vec::new(),
            skipped_unlisted: 0,
            cursor,
            next,
        };
    };
    let due = (now - latest <= epsilon).then_some(latest);
    // Missed: [lo, hi - 1) when the latest runs, else [lo, hi).
    let missed_end = if due.is_some() { hi - 1 } else { hi };
    let missed = missed_end - lo;
    let listed_from = missed_end.saturating_sub(MAX_LISTED_SKIPS as u64).max(lo);
    let skipped: Vec<_> = (listed_from..missed_end)
        .filter_map(|k| schedule.nth(k))
        .collect();
    DueDecision {
        due,
        skipped_unlisted: missed - skipped.len() as u64,
        skipped,
        cursor: Cursor::After(latest),
        next,
    }
}

/// The number of leading runs of `schedule` for which `before` holds (`before` must be
/// true for a prefix of the runs and false after, as `run < t` is for increasing runs).
fn count_runs(schedule: &Schedule, before: impl Fn(DateTime<Utc>) -> bool) -> u64 {
    // A run that does not exist (past the count or year 9999) ends the prefix.
    let holds = |k: u64| schedule.nth(k).is_some_and(&before);
    if !holds(0) {
        return 0;
    }
    // Gallop: find `hi` with !holds(hi), keeping holds(lo).
    let (mut lo, mut hi) = (0u64, 1u64);
    while holds(hi) {
        lo = hi;
        match hi.checked_mul(2) {
            Some(next) => hi = next,
            None => return u64::MAX,
        }
    }
    // Bisect: holds(lo), !holds(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sched(s: &str) -> Schedule {
        Schedule::parse(s, None, at("2026-01-01T00:00:00Z")).unwrap()
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    #[test]
    fn table() {
        let every2 = sched("R/2026-01-01T00:00:00Z/PT2S");
        let start = Cursor::From(at("2026-01-01T00:00:00Z"));
        struct Case {
            name: &'static str,
            cursor: Cursor,
            now: &'static str,
            epsilon: i64,
            due: Option<&'static str>,
            skipped: u64,
            next: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "exactly on time",
                cursor: start,
                now: "2026-01-01T00:00:00Z",
                epsilon: 0,
                due: Some("2026-01-01T00:00:00Z"),
                skipped: 0,
                next: Some("2026-01-01T00:00:02Z"),
            },
            Case {
                name: "before the start",
                cursor: start,
                now: "2025-12-31T23:59:59Z",
                epsilon: 60,
                due: None,
                skipped: 0,
                next: Some("2026-01-01T00:00:00Z"),
            },
            Case {
                name: "already handled",
                cursor: Cursor::After(at("2026-01-01T00:00:00Z")),
                now: "2026-01-01T00:00:01Z",
                epsilon: 60,
                due: None,
                skipped: 0,
                next: Some("2026-01-01T00:00:02Z"),
            },
            Case {
                name: "late within epsilon",
                cursor: start,
                now: "2026-01-01T00:00:01Z",
                epsilon: 1,
                due: Some("2026-01-01T00:00:00Z"),
                skipped: 0,
                next: Some("2026-01-01T00:00:02Z"),
            },
            Case {
                name: "late beyond epsilon",
                cursor: start,
                now: "2026-01-01T00:00:01.5Z",
                epsilon: 1,
                due: None,
                skipped: 1,
                next: Some("2026-01-01T00:00:02Z"),
            },
            Case {
                name: "down across two, large epsilon",
                cursor: Cursor::After(at("2026-01-01T00:00:00Z")),
                now: "2026-01-01T00:00:05Z",
                epsilon: 60,
                due: Some("2026-01-01T00:00:04Z"),
                skipped: 1,
                next: Some("2026-01-01T00:00:06Z"),
            },
            Case {
                name: "down across two, small epsilon",
                cursor: Cursor::After(at("2026-01-01T00:00:00Z")),
                now: "2026-01-01T00:00:05Z",
                epsilon: 0,
                due: None,
                skipped: 2,
                next: Some("2026-01-01T00:00:06Z"),
            },
        ];
        for c in cases {
            let d = decide(&every2, c.cursor, at(c.now), secs(c.epsilon));
            assert_eq!(d.due, c.due.map(at), "{}", c.name);
            assert_eq!(d.skipped_total(), c.skipped, "{}", c.name);
            assert_eq!(d.next, c.next.map(at), "{}", c.name);
        }
    }

    #[test]
    fn finite_schedules_end() {
        let s = sched("R2/2026-01-01T00:00:00Z/PT1M");
        let d = decide(
            &s,
            Cursor::After(at("2026-01-01T00:00:00Z")),
            at("2026-01-01T00:01:00Z"),
            secs(0),
        );
        assert_eq!(d.due, Some(at("2026-01-01T00:01:00Z")));
        assert_eq!(d.next, None);
        let again = decide(&s, d.cursor, at("2026-01-02T00:00:00Z"), secs(60));
        assert_eq!(
            (again.due, again.skipped_total(), again.next),
            (None, 0, None)
        );
        let r0 = sched("R0/2026-01-01T00:00:00Z/PT1M");
        let d = decide(
            &r0,
            Cursor::From(at("2025-01-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z"),
            secs(60),
        );
        assert_eq!((d.due, d.skipped_total(), d.next), (None, 0, None));
    }

    proptest::proptest! {
        /// Checking a schedule at arbitrary, increasing instants handles every instant
        /// exactly once: run (only within epsilon of the check) or skipped, and at most
        /// one run per check.
        #[test]
        fn every_instant_is_handled_once(
            period_ms in 100i64..5_000,
            reps in proptest::option::of(0u64..40),
            epsilon_ms in 0i64..6_000,
            gaps in proptest::collection::vec(0i64..12_000, 1..40),
        ) {
            let start = at("2026-01-01T00:00:00Z");
            let text = format!(
                "R{}/2026-01-01T00:00:00Z/PT{}.{:03}S",
                reps.map(|n| n.to_string()).unwrap_or_default(),
                period_ms / 1000,
                period_ms % 1000
            );
            let s = sched(&text);
            let epsilon = TimeDelta::milliseconds(epsilon_ms);
            let mut cursor = Cursor::From(start);
            let mut now = start;
            let mut handled = Vec::new();
            for g in gaps {
                now += TimeDelta::milliseconds(g);
                let d = decide(&s, cursor, now, epsilon);
                proptest::prop_assert!(d.skipped_unlisted == 0 || d.skipped.len() == MAX_LISTED_SKIPS);
                if let Some(due) = d.due {
                    proptest::prop_assert!(due <= now && now - due <= epsilon);
                    proptest::prop_assert!(d.skipped.iter().all(|k| *k < due));
                }
                if let Some(next) = d.next {
                    proptest::prop_assert!(next > now);
                }
                // Listed skips are the latest ones; count the rest as placeholders.
                handled.extend(std::iter::repeat_n(None, d.skipped_unlisted as usize));
                handled.extend(d.skipped.iter().copied().map(Some));
                handled.extend(d.due.map(Some));
                cursor = d.cursor;
            }
            let expected: Vec<_> = s.runs_from(start).take_while(|r| *r <= now).collect();
            proptest::prop_assert_eq!(handled.len(), expected.len());
            for (h, e) in handled.iter().zip(&expected) {
                if let Some(h) = h {
                    proptest::prop_assert_eq!(h, e);
                }
            }
        }
    }

    #[test]
    fn long_outage_is_counted_not_walked() {
        let s = sched("R/2026-01-01T00:00:00Z/PT1S");
        let d = decide(
            &s,
            Cursor::From(at("2026-01-01T00:00:00Z")),
            at("2026-01-08T00:00:00.5Z"),
            secs(1),
        );
        assert_eq!(d.due, Some(at("2026-01-08T00:00:00Z")));
        assert_eq!(d.skipped_total(), 7 * 86_400);
        assert_eq!(d.skipped.len(), MAX_LISTED_SKIPS);
        assert_eq!(d.skipped.last().copied(), Some(at("2026-01-07T23:59:59Z")));
        assert_eq!(d.cursor, Cursor::After(at("2026-01-08T00:00:00Z")));
    }
}
