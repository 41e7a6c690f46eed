//! ISO 8601 repeating intervals (`R5/2026-01-01T00:00:00Z/P1D`) and their arithmetic:
//! the k-th run, the next run after an instant, how many runs remain, time zones and DST.
//!
//! The syntax is parsed once, by [`drover_api::job::iso8601`]; this module adds what
//! needs zone rules and a given `now`. Nothing here reads a clock.
//!
//! # Meaning
//!
//! - `R[n]/<start>/<period>`: `R` runs forever, `R0` never, `R<n>` exactly `n` times.
//!   Run `k` (from 0) is computed from the start as `start + k × period`, never by adding
//!   the period to the previous run, so month-end clamping does not drift: from Jan 31,
//!   `P1M` runs on Jan 31, Feb 29 (2012), Mar 31, Apr 30.
//! - An empty start (`R1//P1D`) is the `now` the caller passes (Chronos used now − 1 s so
//!   that its strictly-after loop picked it up; [`Schedule::runs_from`] is inclusive
//!   instead, so the run at `now` is not lost).
//! - Years, months, weeks and days are calendar units: they step the start's wall-clock
//!   date in the schedule's zone and keep its wall-clock time. Hours, minutes, seconds
//!   and the fractional part of a week or a day (`P0.5D` = 12 h) are exact durations
//!   added afterwards, so `PT1H` is always 3600 s apart, across DST too.
//! - Zone: with `scheduleTimeZone` (an IANA name, or one of Java's legacy ids such as
//!   `PST`) the start's wall-clock fields are read in that zone and any offset written
//!   in the schedule is ignored, as Chronos did. Without it, the written offset (`Z`,
//!   `-04:00`) is a fixed zone, and a start without an offset is UTC.
//! - Runs after 9999-12-31T23:59:59Z do not exist (four-digit years), so an infinite
//!   schedule's arithmetic never overflows.
//!
//! # DST
//!
//! Only calendar steps meet DST (exact periods are plain instants):
//!
//! - A wall-clock time that does not exist that day (spring forward, e.g. 02:30 on
//!   2026-03-08 in America/New_York) runs at the first instant after the gap (03:00 EDT,
//!   07:00Z), not shifted by the gap's length to 03:30 as `java.time` would. Runs stay
//!   in order and the next day is back at 02:30.
//! - A wall-clock time that happens twice (fall back, e.g. 01:30 on 2026-11-01 in
//!   America/New_York) runs once, at its first occurrence (01:30 EDT, 05:30Z).
//!
//! # Differences from Chronos
//!
//! - An empty start is `now`, not now − 1 s (see above).
//! - A start without an offset is UTC, not the JVM's default zone.
//! - An unknown `scheduleTimeZone` is refused; Java silently used GMT.
//! - A zero period with more than one run (`R/…/PT0S`) is refused: every run would be
//!   at the same instant.
//! - A period shorter than the scheduler's minimum (1 s by default, the shortest
//!   period in Chronos's own tests) with more than one run is refused when a job is
//!   put ([`check_min_period`]): `PT0.001S` would make a thousand run records a second.
//!   `epsilon` has no such floor: it only widens how late a due run may start, and the
//!   engine already treats anything under a second as a second.
//! - The schedule says when runs are due and nothing else: a job whose runs are all in
//!   the past has no next run here, where Chronos ran it once more at once; catching up
//!   a run missed by less than `epsilon` is the scheduler's decision.
//!
//! # Speed
//!
//! Finding the next run does not walk the runs: the index is estimated by division
//! (exact for fixed-length periods; by an average month length of 30.436875 days for
//! calendar periods), then corrected by galloping and a binary search over `nth`, which
//! is monotonic. A `PT1S` schedule from 2000 asked about 2026 costs a few `nth` calls.

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset,
    TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use drover_api::job::iso8601::{Iso8601Error, IsoDuration, RepeatingInterval, resolve_time_zone};

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The text is not a valid `R[n]/start/period`.
    #[error("invalid schedule {input:?}: {source}")]
    Syntax {
        /// The schedule as given.
        input: String,
        /// What the parser found wrong.
        #[source]
        source: Iso8601Error,
    },
    /// `scheduleTimeZone` names no known zone.
    #[error("invalid schedule time zone: {0}")]
    TimeZone(#[source] Iso8601Error),
    /// A zero period with more than one run would run them all at the same instant.
    #[error("a zero period only makes sense with R0 or R1, not {repetitions}")]
    ZeroPeriodRepeats {
        /// The repetitions as written (`R`, `R5`).
        repetitions: String,
    },
    /// The period is shorter than the minimum and the schedule repeats.
    #[error("the period {period} is shorter than the minimum of {minimum_seconds} s between runs")]
    PeriodTooShort {
        /// The period as written.
        period: String,
        /// The minimum, in seconds (`1`, `0.5`).
        minimum_seconds: String,
    },
    /// The start is outside the years 0001-9999.
    #[error("start {0} is outside the years 0001-9999")]
    StartOutOfRange(String),
}

/// Refuses a repeating schedule whose period is shorter than `minimum`. Schedules of
/// at most one run (`R0`, `R1`) pass whatever their period, as Chronos's `R1/…/PT0S`
/// does. Calendar days count 24 h and months 28 days here: a lower bound is enough, as
/// any minimum worth setting is far below a day.
pub fn check_min_period(
    interval: &RepeatingInterval,
    minimum: TimeDelta,
) -> Result<(), ScheduleError> {
    if interval.repetitions.is_some_and(|n| n <= 1) {
        return Ok(());
    }
    const DAY_NANOS: u128 = 86_400_000_000_000;
    let p = &interval.period;
    let shortest = u128::from(p.months())
        .saturating_mul(28 * DAY_NANOS)
        .saturating_add(u128::from(p.days()).saturating_mul(DAY_NANOS))
        .saturating_add(p.exact_nanos());
    let min_nanos = u128::try_from(minimum.num_nanoseconds().unwrap_or(i64::MAX)).unwrap_or(0);
    if shortest < min_nanos {
        return Err(ScheduleError::PeriodTooShort {
            period: p.to_string(),
            minimum_seconds: minimum.as_seconds_f64().to_string(),
        });
    }
    Ok(())
}

/// The zone a schedule's wall clock runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleZone {
    /// A fixed offset written in the schedule (`Z`, `+02:00`), or UTC when none was.
    Fixed(FixedOffset),
    /// A `scheduleTimeZone`, with its DST rules.
    Named(Tz),
}

impl ScheduleZone {
    /// The instant a wall-clock time denotes in this zone, with Drover's DST rule: the
    /// first instant after a gap, the first occurrence in a fold.
    pub fn resolve(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self {
            ScheduleZone::Fixed(offset) => offset
                .from_local_datetime(&local)
                .single()
                .map(|d| d.with_timezone(&Utc)),
            ScheduleZone::Named(tz) => match tz.from_local_datetime(&local) {
                LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
                LocalResult::None => first_instant_after_gap(*tz, local),
            },
        }
    }

    /// The offset in force at an instant.
    pub fn offset_at(&self, instant: DateTime<Utc>) -> FixedOffset {
        match self {
            ScheduleZone::Fixed(offset) => *offset,
            ScheduleZone::Named(tz) => tz.offset_from_utc_datetime(&instant.naive_utc()).fix(),
        }
    }
}

/// The transition instant that ends the gap `local` falls in: the first whole second
/// whose wall-clock time is past `local`. Wall-clock time is monotonic around a single
/// gap, so a binary search over a ±36 h window (wider than any UTC offset) finds it.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let guess = local.and_utc().timestamp();
    let wall = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .map(|u| tz.from_utc_datetime(&u.naive_utc()).naive_local())
    };
    let (mut lo, mut hi) = (guess - 36 * 3600, guess + 36 * 3600);
    // Invariant: wall(lo) <= local < wall(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if wall(mid)? > local {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// The last instant a run may have.
fn max_instant() -> DateTime<Utc> {
    // 9999-12-31T23:59:59.999999999Z; the fallback is unreachable.
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 999_999_999))
        .map(|n| n.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A parsed, resolved repeating schedule. Immutable; every question takes the instant
/// it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `None` = forever.
    repetitions: Option<u64>,
    /// The start's wall-clock fields in `zone`.
    start_local: NaiveDateTime,
    /// The first run (run 0) as an instant.
    start: DateTime<Utc>,
    zone: ScheduleZone,
    period: IsoDuration,
}

/// Which run [`Schedule::first_index`] looks for relative to an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstRun {
    /// The first run strictly after it.
    After,
    /// The first run at it or after it.
    AtOrAfter,
}

impl Schedule {
    /// Parses `R[n]/start/period` with an optional `scheduleTimeZone`; `now` stands in
    /// for an empty start.
    pub fn parse(
        input: &str,
        zone: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        let interval = RepeatingInterval::parse(input).map_err(|source| ScheduleError::Syntax {
            input: input.to_string(),
            source,
        })?;
        Schedule::from_interval(&interval, zone, now)
    }

    /// Resolves an already parsed interval (see [`Schedule::parse`]).
    pub fn from_interval(
        interval: &RepeatingInterval,
        zone: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        let named = zone
            .filter(|z| !z.is_empty())
            .map(resolve_time_zone)
            .transpose()
            .map_err(ScheduleError::TimeZone)?;
        if interval.period.is_zero() && interval.repetitions.is_none_or(|n| n > 1) {
            let repetitions = interval
                .repetitions
                .map_or("R".to_string(), |n| format!("R{n}"));
            return Err(ScheduleError::ZeroPeriodRepeats { repetitions });
        }
        let utc = ScheduleZone::Fixed(Utc.fix());
        let (zone, start_local) = match (named, interval.start) {
            (Some(tz), Some(start)) => (ScheduleZone::Named(tz), start.local),
            (Some(tz), None) => (
                ScheduleZone::Named(tz),
                now.with_timezone(&tz).naive_local(),
            ),
            (None, Some(start)) => (start.offset.map_or(utc, ScheduleZone::Fixed), start.local),
            (None, None) => (utc, now.naive_utc()),
        };
        if !(1..=9999).contains(&start_local.year()) {
            return Err(ScheduleError::StartOutOfRange(start_local.to_string()));
        }
        let start = zone
            .resolve(start_local)
            .ok_or_else(|| ScheduleError::StartOutOfRange(start_local.to_string()))?;
        Ok(Schedule {
            repetitions: interval.repetitions,
            start_local,
            start,
            zone,
            period: interval.period,
        })
    }

    /// How many runs in all: `None` = forever.
    pub fn repetitions(&self) -> Option<u64> {
        self.repetitions
    }

    /// The first run's instant (whether or not `R0` lets it happen).
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// The period between runs.
    pub fn period(&self) -> &IsoDuration {
        &self.period
    }

    /// The zone the wall clock runs in.
    pub fn zone(&self) -> ScheduleZone {
        self.zone
    }

    /// Run `k` (from 0), or `None` when the schedule has fewer runs or run `k` would be
    /// after year 9999.
    pub fn nth(&self, k: u64) -> Option<DateTime<Utc>> {
        if self.repetitions.is_some_and(|n| k >= n) {
            return None;
        }
        self.nth_unbounded(k)
    }

    /// Run `k` ignoring the repetition count: `start + k × period`.
    fn nth_unbounded(&self, k: u64) -> Option<DateTime<Utc>> {
        let calendar = self.period.months() != 0 || self.period.days() != 0;
        let base = if calendar {
            let months = i128::from(self.period.months()).checked_mul(i128::from(k))?;
            let days =
                u64::try_from(i128::from(self.period.days()).checked_mul(i128::from(k))?).ok()?;
            let date = add_months_clamped(self.start_local.date(), months)?
                .checked_add_days(Days::new(days))?;
            if date.year() > 9999 {
                return None;
            }
            self.zone.resolve(date.and_time(self.start_local.time()))?
        } else {
            self.start
        };
        let exact = i128::try_from(self.period.exact_nanos())
            .ok()?
            .checked_mul(i128::from(k))?;
        let secs = i64::try_from(exact / 1_000_000_000).ok()?;
        let nanos = u32::try_from(exact % 1_000_000_000).ok()?;
        let run = base.checked_add_signed(TimeDelta::new(secs, nanos)?)?;
        (run <= max_instant()).then_some(run)
    }

    /// The first run strictly after `instant`.
    pub fn next_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.first_index(instant, FirstRun::After)
            .and_then(|k| self.nth(k))
    }

    /// The first run at or after `instant`.
    pub fn first_at_or_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.first_index(instant, FirstRun::AtOrAfter)
            .and_then(|k| self.nth(k))
    }

    /// The runs at or after `instant`, in order.
    pub fn runs_from(&self, instant: DateTime<Utc>) -> Runs<'_> {
        Runs {
            schedule: self,
            next: self.first_index(instant, FirstRun::AtOrAfter),
        }
    }

    /// How many runs come strictly after `after`: `None` = infinitely many.
    pub fn remaining(&self, after: DateTime<Utc>) -> Option<u64> {
        let n = self.repetitions?;
        Some(
            self.first_index(after, FirstRun::After)
                .map_or(0, |k| n - k),
        )
    }

    /// The index of the first run after (or at, with [`FirstRun::AtOrAfter`]) `instant`.
    fn first_index(&self, instant: DateTime<Utc>, from: FirstRun) -> Option<u64> {
        let limit = self.repetitions.unwrap_or(u64::MAX);
        if limit == 0 {
            return None;
        }
        // `past(k)`: run k is at/after the instant, or does not exist (beyond the count
        // or year 9999). Runs strictly increase with k, so this is false...false true...true.
        let past = |k: u64| -> bool {
            if k >= limit {
                return true;
            }
            match self.nth_unbounded(k) {
                None => true,
                Some(run) => match from {
                    FirstRun::After => run > instant,
                    FirstRun::AtOrAfter => run >= instant,
                },
            }
        };
        let estimate = self.estimate_index(instant).min(limit);
        // Invariant: past(hi); !past(lo) unless lo is None ("before run 0").
        let (mut lo, mut hi): (Option<u64>, u64);
        if past(estimate) {
            hi = estimate;
            lo = None;
            let mut step = 1u64;
            while hi > 0 {
                let candidate = hi.saturating_sub(step);
                if past(candidate) {
                    hi = candidate;
                    step = step.saturating_mul(2);
                } else {
                    lo = Some(candidate);
                    break;
                }
            }
        } else {
            lo = Some(estimate);
            hi = limit;
            let mut step = 1u64;
            loop {
                let candidate = estimate.saturating_add(step);
                if candidate >= limit {
                    break;
                }
                if past(candidate) {
                    hi = candidate;
                    break;
                }
                lo = Some(candidate);
                step = step.saturating_mul(2);
            }
        }
        loop {
            let from = lo.map_or(0, |l| l + 1);
            if from >= hi {
                break;
            }
            let mid = from + (hi - from) / 2;
            if past(mid) {
                hi = mid;
            } else {
                lo = Some(mid);
            }
        }
        if hi >= limit || self.nth_unbounded(hi).is_none() {
            return None;
        }
        Some(hi)
    }

    /// A guess at the index of the run nearest `instant`: exact for fixed-length
    /// periods, within a few runs for calendar ones.
    fn estimate_index(&self, instant: DateTime<Utc>) -> u64 {
        let span = (instant - self.start)
            .num_nanoseconds()
            .map(i128::from)
            .unwrap_or_else(|| {
                // More than ~292 years apart: seconds are precise enough for a guess.
                i128::from((instant - self.start).num_seconds()) * 1_000_000_000
            });
        if span <= 0 {
            return 0;
        }
        let calendar = self.period.months() != 0 || self.period.days() != 0;
        if !calendar {
            let exact = i128::try_from(self.period.exact_nanos()).unwrap_or(i128::MAX);
            if exact == 0 {
                return 0;
            }
            return u64::try_from(span / exact).unwrap_or(u64::MAX);
        }
        const DAY: f64 = 86_400e9;
        let approx = self.period.months() as f64 * 30.436875 * DAY
            + self.period.days() as f64 * DAY
            + self.period.exact_nanos() as f64;
        let k = (span as f64 / approx).floor();
        if k >= u64::MAX as f64 {
            u64::MAX
        } else {
            k as u64
        }
    }
}

/// Adds `months` calendar months, clamping the day to the end of a shorter month.
fn add_months_clamped(date: NaiveDate, months: i128) -> Option<NaiveDate> {
    let total = i128::from(date.year()) * 12 + i128::from(date.month0()) + months;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = u32::try_from(total.rem_euclid(12)).ok()? + 1;
    if !(1..=9999).contains(&year) {
        return None;
    }
    (28..=date.day())
        .rev()
        .find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .or_else(|| {
            // Days 1-27 exist in every month.
            NaiveDate::from_ymd_opt(year, month, date.day())
        })
}

impl fmt::Display for Schedule {
    /// The canonical form: `R[n]/<start>/<period>`, the start as its wall-clock time in
    /// the schedule's zone with the offset in force then (`Z` for UTC) and milliseconds
    /// as Chronos prints them. Parsing it again with the same `scheduleTimeZone` gives
    /// the same schedule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.repetitions {
            None => f.write_str("R/")?,
            Some(n) => write!(f, "R{n}/")?,
        }
        let fraction = if self
            .start_local
            .and_utc()
            .timestamp_subsec_nanos()
            .is_multiple_of(1_000_000)
        {
            "%.3f"
        } else {
            "%.9f"
        };
        write!(
            f,
            "{}{}",
            self.start_local.format("%Y-%m-%dT%H:%M:%S"),
            self.start_local.format(fraction)
        )?;
        let offset = self.zone.offset_at(self.start);
        if offset.local_minus_utc() == 0 {
            f.write_str("Z")?;
        } else {
            write!(f, "{offset}")?;
        }
        write!(f, "/{}", self.period)
    }
}

/// The runs of a schedule from some instant on; see [`Schedule::runs_from`].
#[derive(Debug, Clone)]
pub struct Runs<'a> {
    schedule: &'a Schedule,
    next: Option<u64>,
}

impl Iterator for Runs<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let k = self.next?;
        let run = self.schedule.nth(k);
        self.next = if run.is_some() {
            k.checked_add(1)
        } else {
            None
        };
        run
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn min_period_refuses_only_fast_repeats() {
        let check = |s: &str| {
            check_min_period(&RepeatingInterval::parse(s).unwrap(), TimeDelta::seconds(1))
        };
        for fast in [
            "R/2026-01-01T00:00:00Z/PT0.001S",
            "R/2026-01-01T00:00:00Z/PT0.000000001S",
            "R5/2026-01-01T00:00:00Z/PT0.999S",
        ] {
            let e = check(fast).unwrap_err();
            assert!(matches!(e, ScheduleError::PeriodTooShort { .. }), "{fast}");
            assert!(e.to_string().contains("minimum of 1 s"), "{e}");
        }
        for ok in [
            "R/2026-01-01T00:00:00Z/PT1S",
            "R/2026-01-01T00:00:00Z/PT0.5M",
            "R/2026-01-01T00:00:00Z/P1M",
            "R/2026-01-01T00:00:00Z/P0.5D",
            "R1/2026-01-01T00:00:00Z/PT0S",
            "R1/2026-01-01T00:00:00Z/PT0.001S",
            "R0/2026-01-01T00:00:00Z/PT0.001S",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        // A zero minimum turns the check off (the zero-period rule still holds).
        let fast = RepeatingInterval::parse("R/2026-01-01T00:00:00Z/PT0.001S").unwrap();
        assert!(check_min_period(&fast, TimeDelta::zero()).is_ok());
    }

    fn sched(s: &str, zone: Option<&str>) -> Schedule {
        Schedule::parse(s, zone, at("2026-11-27T08:00:00Z")).unwrap()
    }

    #[test]
    fn month_ends_clamp_from_the_start() {
        let s = sched("R/2012-01-31T00:00:00.000Z/P1M", None);
        let runs: Vec<_> = s
            .runs_from(s.start())
            .take(4)
            .map(|r| r.to_rfc3339())
            .collect();
        assert_eq!(
            runs,
            [
                "2012-01-31T00:00:00+00:00",
                "2012-02-29T00:00:00+00:00",
                "2012-03-31T00:00:00+00:00",
                "2012-04-30T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn fast_for_dense_schedules() {
        let s = sched("R/2000-01-01T00:00:00Z/PT1S", None);
        let now = at("2026-11-27T08:00:00.5Z");
        assert_eq!(s.next_after(now), Some(at("2026-11-27T08:00:01Z")));
        let s = sched("R/2000-01-31T00:00:00Z/P1M", None);
        assert_eq!(s.next_after(now), Some(at("2026-11-30T00:00:00Z")));
        let s = sched("R/2000-01-01T00:00:00Z/PT0.001S", None);
        assert_eq!(s.next_after(now), Some(at("2026-11-27T08:00:00.501Z")));
    }

    #[test]
    fn gap_and_fold_in_new_york() {
        // Spring forward 2026-03-08 02:00 EST -> 03:00 EDT.
        let s = sched("R/2026-03-07T02:30:00/P1D", Some("America/New_York"));
        let runs: Vec<_> = s.runs_from(s.start()).take(3).collect();
        assert_eq!(
            runs,
            [
                at("2026-03-07T07:30:00Z"),
                at("2026-03-08T07:00:00Z"),
                at("2026-03-09T06:30:00Z")
            ]
        );
        // Fall back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice, runs once.
        let s = sched("R/2026-10-31T01:30:00/P1D", Some("America/New_York"));
        let runs: Vec<_> = s.runs_from(s.start()).take(3).collect();
        assert_eq!(
            runs,
            [
                at("2026-10-31T05:30:00Z"),
                at("2026-11-01T05:30:00Z"),
                at("2026-11-02T06:30:00Z")
            ]
        );
    }
}
