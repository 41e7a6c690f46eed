//! Chronos-compatible job definitions: parsing, validation and the parent graph.
//!
//! A Chronos job JSON (`POST /scheduler/iso8601`, `POST /scheduler/dependency`) is
//! accepted as it is. [`parse_job`] turns a `serde_json::Value` into a [`ChronosJob`] plus
//! the list of fields Drover keeps but does not act on (never silently ignored), or an
//! [`ApiError`] naming the field at fault. [`check_job_graph`] checks a set of jobs'
//! parents for cycles and missing parents.
//!
//! # Layout
//!
//! - [`iso8601`]: the one parser of schedule strings (`R5/2026-01-01T00:00:00Z/P1D`),
//!   durations (`PT60S`) and zone names. `drover_scheduler_engine::schedule` builds next-run
//!   arithmetic on its values, so the syntax lives here, once, and the scheduler adds
//!   only what needs a clock or the zone rules.
//! - [`ChronosJob`] and its parts ([`JobContainer`], [`JobVolume`], [`EnvironmentVariable`]).
//! - [`parse_job`], [`ChronosJob::validate`], [`check_job_graph`].
//!
//! # Differences from Chronos
//!
//! - A `scheduleTimeZone` Drover does not know is refused (Java fell back to GMT).
//! - Names `.` and `..` are refused (they are path components in sandboxes).
//! - Numbers and booleans given as strings (`"cpus": "0.5"`, `"shell": "false"`) are
//!   accepted as Chronos did, but a string that is not a number is refused (Java read 0).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::app::{Constraint, ConstraintOperator};
use crate::{ApiError, Resources};

pub use self::iso8601::{IsoDuration, RepeatingInterval, resolve_time_zone};

/// The syntax of ISO 8601 durations and repeating intervals, as Chronos writes them.
///
/// This is the one parser of schedule strings in Drover: `drover-api` uses it to validate
/// a job's `schedule` and `epsilon`, and `drover_scheduler_engine::schedule` builds its run-time
/// arithmetic (zones, DST, next run) on the values it returns. It only reads text: no
/// clock, no time-zone rules beyond looking a zone name up.
///
/// # Grammar
///
/// - Repeating interval: `R[n]/<start>/<period>`. `R` alone repeats forever, `R0` never
///   runs, an empty start (`R1//P1D`) means "now" (the caller supplies it).
/// - Start (Joda's `dateTimeParser`, the parser Chronos used): `YYYY`, `YYYY-MM`,
///   `YYYY-MM-DD`, `YYYY-DDD` (ordinal) or `YYYY-Www[-D]` (week date), optionally followed
///   by `T` and `HH[:MM[:SS]]` with a decimal fraction (`.` or `,`) on the last time field,
///   and an offset `Z`, `±HH`, `±HHMM` or `±HH:MM`. Without an offset the start is UTC
///   (Chronos used the JVM's default zone, which is UTC on its usual hosts).
/// - Duration: `P[nY][nM][nW][nD][T[nH][nM][nS]]`, with a decimal fraction allowed on the
///   smallest unit given. `P1M` is a month, `PT1M` a minute; a bare `P` is a zero duration
///   (Joda accepts it and Chronos's `R1//P` relies on it).
pub mod iso8601 {
    use std::fmt;

    use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Weekday};

    /// Why a schedule, duration or zone name was refused.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum Iso8601Error {
        /// The text is empty.
        #[error("is empty")]
        Empty,
        /// The text is not three `/`-separated parts starting with `R`.
        #[error(
            "{0:?} is not an iso 8601 repeating interval (expected R[n]/start/period, e.g. R/2026-01-01T00:00:00Z/P1D)"
        )]
        NotRepeatingInterval(String),
        /// The repetition part is not `R` or `R` followed by a count.
        #[error("repetitions {0:?} must be R (forever) or R followed by a count, e.g. R5")]
        BadRepetitions(String),
        /// The start is not an ISO 8601 date or date-time.
        #[error("start {input:?} is not an iso 8601 date-time: {reason}")]
        BadStart {
            /// The start as written.
            input: String,
            /// What is wrong with it.
            reason: String,
        },
        /// The period or duration is not an ISO 8601 duration.
        #[error("{input:?} is not an iso 8601 duration: {reason}")]
        BadDuration {
            /// The duration as written.
            input: String,
            /// What is wrong with it.
            reason: String,
        },
        /// The zone name is neither an IANA zone nor one of Java's legacy short ids.
        #[error(
            "unknown time zone {0:?} (use an IANA name such as America/New_York or Europe/Berlin)"
        )]
        UnknownTimeZone(String),
    }

    /// A unit of an ISO 8601 duration, largest first.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum DurationUnit {
        /// `Y`: calendar years.
        Years,
        /// `M` before `T`: calendar months.
        Months,
        /// `W`: weeks of seven calendar days.
        Weeks,
        /// `D`: calendar days.
        Days,
        /// `H`: exact hours.
        Hours,
        /// `M` after `T`: exact minutes.
        Minutes,
        /// `S`: exact seconds.
        Seconds,
    }

    impl DurationUnit {
        const ALL: [DurationUnit; 7] = [
            DurationUnit::Years,
            DurationUnit::Months,
            DurationUnit::Weeks,
            DurationUnit::Days,
            DurationUnit::Hours,
            DurationUnit::Minutes,
            DurationUnit::Seconds,
        ];

        fn designator(self) -> char {
            match self {
                DurationUnit::Years => 'Y',
                DurationUnit::Months | DurationUnit::Minutes => 'M',
                DurationUnit::Weeks => 'W',
                DurationUnit::Days => 'D',
                DurationUnit::Hours => 'H',
                DurationUnit::Seconds => 'S',
            }
        }

        fn is_time(self) -> bool {
            self >= DurationUnit::Hours
        }

        /// Nanoseconds in one unit, for the units that have an exact length here (a
        /// fraction of a week or a day counts in exact hours).
        fn exact_nanos(self) -> Option<u128> {
            const S: u128 = 1_000_000_000;
            match self {
                DurationUnit::Years | DurationUnit::Months => None,
                DurationUnit::Weeks => Some(7 * 86_400 * S),
                DurationUnit::Days => Some(86_400 * S),
                DurationUnit::Hours => Some(3_600 * S),
                DurationUnit::Minutes => Some(60 * S),
                DurationUnit::Seconds => Some(S),
            }
        }
    }

    /// Upper bound on any normalised part of a duration: 10,000 years' worth. Longer
    /// periods mean nothing for a job and would only invite overflow.
    const MAX_MONTHS: u64 = 12 * 10_000;
    const MAX_DAYS: u64 = 366 * 10_000;
    const MAX_EXACT_NANOS: u128 = 366 * 10_000 * 86_400 * 1_000_000_000;

    /// An ISO 8601 duration such as `P1Y2M`, `P1W`, `PT0.5S` or `P1DT12H`.
    ///
    /// It keeps the components as written (for printing) and their normalised meaning:
    /// whole calendar months (years count twelve), whole calendar days (weeks count
    /// seven) and an exact remainder in nanoseconds (hours, minutes, seconds, and the
    /// fractional part of a week or a day, so `P0.5D` is twelve exact hours).
    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
    )]
    #[serde(try_from = "String", into = "String")]
    pub struct IsoDuration {
        /// Whole values per unit, in [`DurationUnit::ALL`] order; `None` = not written.
        parts: [Option<u64>; 7],
        /// The unit carrying a decimal fraction and the fraction in billionths.
        fraction: Option<(DurationUnit, u32)>,
        months: u64,
        days: u64,
        exact_nanos: u128,
    }

    impl IsoDuration {
        /// Parses `P...` (see the module grammar).
        pub fn parse(input: &str) -> Result<IsoDuration, Iso8601Error> {
            let bad = |reason: &str| Iso8601Error::BadDuration {
                input: input.to_string(),
                reason: reason.to_string(),
            };
            let rest = input
                .strip_prefix('P')
                .ok_or_else(|| bad("must start with P"))?;
            let mut d = IsoDuration::default();
            let mut in_time = false;
            let mut last: Option<DurationUnit> = None;
            let mut chars = rest.char_indices().peekable();
            let mut seen_time_part = false;
            while let Some(&(i, c)) = chars.peek() {
                if c == 'T' {
                    if in_time {
                        return Err(bad("T appears twice"));
                    }
                    in_time = true;
                    chars.next();
                    continue;
                }
                // A number: digits, then an optional fraction.
                let start = i;
                let mut end = i;
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_ascii_digit() || c == '.' || c == ',' {
                        end = j + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let number = &rest[start..end];
                if number.is_empty() {
                    return Err(bad(&format!("expected a number before {c:?}")));
                }
                let Some((_, designator)) = chars.next() else {
                    return Err(bad(&format!("{number} has no unit designator")));
                };
                let unit = match (designator, in_time) {
                    ('Y', false) => DurationUnit::Years,
                    ('M', false) => DurationUnit::Months,
                    ('W', false) => DurationUnit::Weeks,
                    ('D', false) => DurationUnit::Days,
                    ('H', true) => DurationUnit::Hours,
                    ('M', true) => DurationUnit::Minutes,
                    ('S', true) => DurationUnit::Seconds,
                    ('H' | 'S', false) => {
                        return Err(bad(&format!(
                            "{designator} is a time unit and needs a T before it"
                        )));
                    }
                    ('Y' | 'W' | 'D', true) => {
                        return Err(bad(&format!(
                            "{designator} is a date unit and cannot follow T"
                        )));
                    }
                    _ => return Err(bad(&format!("unknown unit designator {designator:?}"))),
                };
                if last.is_some_and(|l| l >= unit) {
                    return Err(bad(
                        "units must appear once each, largest first (Y M W D T H M S)",
                    ));
                }
                if d.fraction.is_some() {
                    return Err(bad("only the smallest unit given may have a fraction"));
                }
                let (whole, fraction) = parse_decimal(number).map_err(|r| bad(&r))?;
                d.parts[unit as usize] = Some(whole);
                if let Some(f) = fraction {
                    d.fraction = Some((unit, f));
                }
                if unit.is_time() {
                    seen_time_part = true;
                }
                last = Some(unit);
            }
            if in_time && !seen_time_part {
                return Err(bad("T must be followed by hours, minutes or seconds"));
            }
            d.normalise().map_err(|r| bad(&r))?;
            Ok(d)
        }

        /// Computes the normalised months, days and exact nanoseconds, refusing what has
        /// no defined length or is absurdly long.
        fn normalise(&mut self) -> Result<(), String> {
            let too_long = || "is absurdly long (limit 10000 years)".to_string();
            let get = |u: DurationUnit| self.parts[u as usize].unwrap_or(0);
            let mut months = get(DurationUnit::Years)
                .checked_mul(12)
                .ok_or_else(too_long)?;
            months = months
                .checked_add(get(DurationUnit::Months))
                .ok_or_else(too_long)?;
            let weeks_days = get(DurationUnit::Weeks)
                .checked_mul(7)
                .ok_or_else(too_long)?;
            let days = weeks_days
                .checked_add(get(DurationUnit::Days))
                .ok_or_else(too_long)?;
            let mut exact: u128 = u128::from(get(DurationUnit::Hours)) * 3_600_000_000_000
                + u128::from(get(DurationUnit::Minutes)) * 60_000_000_000
                + u128::from(get(DurationUnit::Seconds)) * 1_000_000_000;
            match self.fraction {
                None => {}
                Some((DurationUnit::Years, f)) => {
                    // A fraction of a year is fine when it is whole months (P1.5Y).
                    let twelfths = u64::from(f) * 12;
                    if twelfths % 1_000_000_000 != 0 {
                        return Err("a fraction of a year must be a whole number of months".into());
                    }
                    months = months
                        .checked_add(twelfths / 1_000_000_000)
                        .ok_or_else(too_long)?;
                }
                Some((DurationUnit::Months, _)) => {
                    return Err("a fraction of a month has no fixed length".into());
                }
                Some((unit, f)) => {
                    let per_unit = unit.exact_nanos().unwrap_or(0);
                    exact += per_unit * u128::from(f) / 1_000_000_000;
                }
            }
            if months > MAX_MONTHS || days > MAX_DAYS || exact > MAX_EXACT_NANOS {
                return Err(too_long());
            }
            self.months = months;
            self.days = days;
            self.exact_nanos = exact;
            if self.is_zero() {
                // `P`, `PT0S` and `P0D` are one value; keep them equal.
                self.parts = [None; 7];
                self.fraction = None;
            }
            Ok(())
        }

        /// Calendar months (years count twelve); added in wall-clock time, clamped to the
        /// end of a shorter month.
        pub fn months(&self) -> u64 {
            self.months
        }

        /// Calendar days (weeks count seven); added in wall-clock time.
        pub fn days(&self) -> u64 {
            self.days
        }

        /// The exact part in nanoseconds: hours, minutes, seconds and any fraction of a
        /// week or day.
        pub fn exact_nanos(&self) -> u128 {
            self.exact_nanos
        }

        /// Whether the duration is zero (`P`, `PT0S`).
        pub fn is_zero(&self) -> bool {
            self.months == 0 && self.days == 0 && self.exact_nanos == 0
        }

        /// The length when it does not depend on the calendar (no months or years; days
        /// count 24 hours), e.g. for `epsilon`; `None` for `P1M` and the like.
        pub fn fixed_length(&self) -> Option<TimeDelta> {
            if self.months != 0 {
                return None;
            }
            let total = u128::from(self.days) * 86_400_000_000_000 + self.exact_nanos;
            let secs = i64::try_from(total / 1_000_000_000).ok()?;
            let nanos = u32::try_from(total % 1_000_000_000).ok()?;
            TimeDelta::new(secs, nanos)
        }
    }

    impl fmt::Display for IsoDuration {
        /// The canonical form: the components as written (without zero padding), `PT0S`
        /// for a zero duration.
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let written: Vec<(DurationUnit, u64)> = DurationUnit::ALL
                .iter()
                .filter_map(|&u| self.parts[u as usize].map(|v| (u, v)))
                .collect();
            let all_zero =
                written.iter().all(|&(_, v)| v == 0) && self.fraction.is_none_or(|(_, fr)| fr == 0);
            if all_zero {
                return f.write_str("PT0S");
            }
            f.write_str("P")?;
            let mut wrote_t = false;
            for (unit, value) in written {
                let fraction = self
                    .fraction
                    .filter(|&(u, _)| u == unit)
                    .map(|(_, fr)| fr)
                    .unwrap_or(0);
                if value == 0 && fraction == 0 {
                    continue;
                }
                if unit.is_time() && !wrote_t {
                    f.write_str("T")?;
                    wrote_t = true;
                }
                write!(f, "{value}")?;
                if fraction != 0 {
                    let digits = format!("{fraction:09}");
                    write!(f, ".{}", digits.trim_end_matches('0'))?;
                }
                write!(f, "{}", unit.designator())?;
            }
            Ok(())
        }
    }

    impl TryFrom<String> for IsoDuration {
        type Error = Iso8601Error;
        fn try_from(s: String) -> Result<Self, Self::Error> {
            IsoDuration::parse(&s)
        }
    }

    impl From<IsoDuration> for String {
        fn from(d: IsoDuration) -> String {
            d.to_string()
        }
    }

    impl std::str::FromStr for IsoDuration {
        type Err = Iso8601Error;
        fn from_str(s: &str) -> Result<Self, Self::Err> {
            IsoDuration::parse(s)
        }
    }

    /// Parses `123`, `0.5` or `0,25` into a whole part and billionths.
    fn parse_decimal(s: &str) -> Result<(u64, Option<u32>), String> {
        let (whole, frac) = match s.find(['.', ',']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not a number"));
        }
        let whole: u64 = whole.parse().map_err(|_| format!("{s} is too large"))?;
        let frac = match frac {
            None => None,
            Some(f) => {
                if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{s:?} is not a number"));
                }
                if f.len() > 9 {
                    return Err(format!("{s} is more precise than a nanosecond"));
                }
                // Pad to nine digits: "5" -> 500000000 billionths.
                let padded = format!("{f:0<9}");
                Some(
                    padded
                        .parse::<u32>()
                        .map_err(|_| format!("{s:?} is not a number"))?,
                )
            }
        };
        Ok((whole, frac))
    }

    /// A start date-time as written: the wall-clock fields and the offset, if one was given.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct IsoDateTime {
        /// The wall-clock date and time (midnight when only a date was written).
        pub local: NaiveDateTime,
        /// The offset written after the time (`Z` is +00:00); `None` when absent.
        pub offset: Option<FixedOffset>,
    }

    impl IsoDateTime {
        /// Parses a start (see the module grammar).
        pub fn parse(input: &str) -> Result<IsoDateTime, Iso8601Error> {
            let bad = |reason: String| Iso8601Error::BadStart {
                input: input.to_string(),
                reason,
            };
            let (date_part, time_part) = match input.find(['T', 't']) {
                Some(i) => (&input[..i], Some(&input[i + 1..])),
                None => (input, None),
            };
            let date = parse_date(date_part).map_err(bad)?;
            let (time, offset) = match time_part {
                None => (NaiveTime::MIN, None),
                Some(t) => parse_time_and_offset(t).map_err(bad)?,
            };
            Ok(IsoDateTime {
                local: date.and_time(time),
                offset,
            })
        }
    }

    fn digits(s: &str, n: usize, what: &str) -> Result<u32, String> {
        if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{what} must be {n} digits, got {s:?}"));
        }
        s.parse()
            .map_err(|_| format!("{what} {s:?} is not a number"))
    }

    fn parse_date(s: &str) -> Result<NaiveDate, String> {
        if s.is_empty() {
            return Err("a date (YYYY-MM-DD) is required".into());
        }
        let mut parts = s.split('-');
        let year_text = parts.next().unwrap_or("");
        let year = digits(year_text, 4, "the year")? as i32;
        let second = parts.next();
        let third = parts.next();
        if parts.next().is_some() {
            return Err("too many '-' in the date".into());
        }
        let out_of_range = || format!("{s} is not a date in the calendar");
        match (second, third) {
            (None, _) => NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(out_of_range),
            (Some(w), day) if w.starts_with('W') => {
                let week = digits(&w[1..], 2, "the week")?;
                let weekday = match day {
                    None => 1,
                    Some(d) => digits(d, 1, "the day of the week")?,
                };
                let weekday = match weekday {
                    1 => Weekday::Mon,
                    2 => Weekday::Tue,
                    3 => Weekday::Wed,
                    4 => Weekday::Thu,
                    5 => Weekday::Fri,
                    6 => Weekday::Sat,
                    7 => Weekday::Sun,
                    _ => return Err(format!("day of the week {weekday} is not 1-7")),
                };
                NaiveDate::from_isoywd_opt(year, week, weekday).ok_or_else(out_of_range)
            }
            (Some(ord), None) if ord.len() == 3 => {
                let ordinal = digits(ord, 3, "the day of the year")?;
                NaiveDate::from_yo_opt(year, ordinal).ok_or_else(out_of_range)
            }
            (Some(m), day) => {
                let month = digits(m, 2, "the month")?;
                let day = match day {
                    None => 1,
                    Some(d) => digits(d, 2, "the day")?,
                };
                NaiveDate::from_ymd_opt(year, month, day).ok_or_else(out_of_range)
            }
        }
    }

    fn parse_time_and_offset(s: &str) -> Result<(NaiveTime, Option<FixedOffset>), String> {
        let split = s.find(['Z', 'z', '+', '-']).unwrap_or(s.len());
        let (time, offset) = s.split_at(split);
        if time.is_empty() {
            return Err("T must be followed by a time (HH[:MM[:SS]])".into());
        }
        let offset = if offset.is_empty() {
            None
        } else {
            Some(parse_offset(offset)?)
        };
        // The last field may carry a decimal fraction that spills into the smaller ones.
        let (fields, fraction) = match time.find(['.', ',']) {
            Some(i) => (&time[..i], Some(&time[i..])),
            None => (time, None),
        };
        let mut it = fields.split(':');
        let hour = digits(it.next().unwrap_or(""), 2, "the hour")?;
        let minute = it.next().map(|m| digits(m, 2, "the minute")).transpose()?;
        let second = it.next().map(|m| digits(m, 2, "the second")).transpose()?;
        if it.next().is_some() {
            return Err("too many ':' in the time".into());
        }
        if hour > 23 || minute.unwrap_or(0) > 59 || second.unwrap_or(0) > 59 {
            return Err(format!(
                "{fields} is not a time of day (00:00:00 to 23:59:59)"
            ));
        }
        let base = u64::from(hour) * 3_600
            + u64::from(minute.unwrap_or(0)) * 60
            + u64::from(second.unwrap_or(0));
        let mut nanos_total = u128::from(base) * 1_000_000_000;
        if let Some(frac) = fraction {
            let (_, billionths) = parse_decimal(&format!("0{frac}"))?;
            let unit_nanos: u128 = match (minute, second) {
                (None, _) => 3_600_000_000_000,
                (Some(_), None) => 60_000_000_000,
                (Some(_), Some(_)) => 1_000_000_000,
            };
            nanos_total += unit_nanos * u128::from(billionths.unwrap_or(0)) / 1_000_000_000;
        }
        let secs = u32::try_from(nanos_total / 1_000_000_000)
            .map_err(|_| "time out of range".to_string())?;
        let nanos = u32::try_from(nanos_total % 1_000_000_000)
            .map_err(|_| "time out of range".to_string())?;
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
            .ok_or_else(|| format!("{time} is not a time of day"))?;
        Ok((time, offset))
    }

    fn parse_offset(s: &str) -> Result<FixedOffset, String> {
        if s == "Z" || s == "z" {
            return FixedOffset::east_opt(0).ok_or_else(|| "bad offset".to_string());
        }
        let bad = || format!("offset {s:?} must be Z, ±HH, ±HHMM or ±HH:MM");
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let (h, m) = match rest.len() {
            2 => (rest, "00"),
            4 => (&rest[..2], &rest[2..]),
            5 if rest.as_bytes()[2] == b':' => (&rest[..2], &rest[3..]),
            _ => return Err(bad()),
        };
        let h = digits(h, 2, "the offset hour").map_err(|_| bad())?;
        let m = digits(m, 2, "the offset minute").map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        FixedOffset::east_opt(sign * (h as i32 * 3_600 + m as i32 * 60)).ok_or_else(bad)
    }

    /// A parsed `R[n]/start/period`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct RepeatingInterval {
        /// How many runs: `None` = forever (`R`), `Some(0)` = never (`R0`).
        pub repetitions: Option<u64>,
        /// The first run as written; `None` for an empty start, which means "now".
        pub start: Option<IsoDateTime>,
        /// The time between runs.
        pub period: IsoDuration,
    }

    impl RepeatingInterval {
        /// Parses `R[n]/start/period` (see the module grammar).
        pub fn parse(input: &str) -> Result<RepeatingInterval, Iso8601Error> {
            if input.is_empty() {
                return Err(Iso8601Error::Empty);
            }
            let parts: Vec<&str> = input.split('/').collect();
            let [reps, start, period] = parts[..] else {
                return Err(Iso8601Error::NotRepeatingInterval(input.to_string()));
            };
            let Some(count) = reps.strip_prefix('R') else {
                return Err(Iso8601Error::NotRepeatingInterval(input.to_string()));
            };
            let repetitions = if count.is_empty() {
                None
            } else if count.bytes().all(|b| b.is_ascii_digit()) {
                Some(
                    count
                        .parse::<u64>()
                        .map_err(|_| Iso8601Error::BadRepetitions(reps.to_string()))?,
                )
            } else {
                return Err(Iso8601Error::BadRepetitions(reps.to_string()));
            };
            let start = if start.is_empty() {
                None
            } else {
                Some(IsoDateTime::parse(start)?)
            };
            let period = IsoDuration::parse(period)?;
            Ok(RepeatingInterval {
                repetitions,
                start,
                period,
            })
        }
    }

    /// Java's legacy three-letter zone ids (`java.time.ZoneId.SHORT_IDS`), which Chronos
    /// accepted through `java.util.TimeZone`, mapped to the IANA zones Java used for them.
    /// Ids that are also IANA names (`EST`, `MST`, `HST`) resolve as IANA names first.
    const JAVA_SHORT_IDS: &[(&str, &str)] = &[
        ("ACT", "Australia/Darwin"),
        ("AET", "Australia/Sydney"),
        ("AGT", "America/Argentina/Buenos_Aires"),
        ("ART", "Africa/Cairo"),
        ("AST", "America/Anchorage"),
        ("BET", "America/Sao_Paulo"),
        ("BST", "Asia/Dhaka"),
        ("CAT", "Africa/Harare"),
        ("CNT", "America/St_Johns"),
        ("CST", "America/Chicago"),
        ("CTT", "Asia/Shanghai"),
        ("EAT", "Africa/Addis_Ababa"),
        ("ECT", "Europe/Paris"),
        ("IET", "America/Indiana/Indianapolis"),
        ("IST", "Asia/Kolkata"),
        ("JST", "Asia/Tokyo"),
        ("MIT", "Pacific/Apia"),
        ("NET", "Asia/Yerevan"),
        ("NST", "Pacific/Auckland"),
        ("PLT", "Asia/Karachi"),
        ("PNT", "America/Phoenix"),
        ("PRT", "America/Puerto_Rico"),
        ("PST", "America/Los_Angeles"),
        ("SST", "Pacific/Guadalcanal"),
        ("VST", "Asia/Ho_Chi_Minh"),
    ];

    /// Looks a `scheduleTimeZone` up: an IANA name (`Europe/Berlin`, `UTC`), or one of
    /// Java's legacy short ids that Chronos accepted (`PST` is America/Los_Angeles, `BST`
    /// is Asia/Dhaka, as in Java). Unlike Java, which silently falls back to GMT, an
    /// unknown name is an error.
    pub fn resolve_time_zone(name: &str) -> Result<chrono_tz::Tz, Iso8601Error> {
        if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
            return Ok(tz);
        }
        JAVA_SHORT_IDS
            .iter()
            .find(|(short, _)| *short == name)
            .and_then(|(_, iana)| iana.parse::<chrono_tz::Tz>().ok())
            .ok_or_else(|| Iso8601Error::UnknownTimeZone(name.to_string()))
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)] // tests: a panic is the failure report
    mod tests {
        use super::*;

        #[test]
        fn durations_normalise() {
            let d = IsoDuration::parse("P1Y2M3W4DT5H6M7.5S").unwrap();
            assert_eq!(d.months(), 14);
            assert_eq!(d.days(), 25);
            assert_eq!(
                d.exact_nanos(),
                ((5 * 3600 + 6 * 60 + 7) as u128) * 1_000_000_000 + 500_000_000
            );
            assert_eq!(d.to_string(), "P1Y2M3W4DT5H6M7.5S");
            assert_eq!(
                IsoDuration::parse("P0.5D").unwrap().exact_nanos(),
                12 * 3_600_000_000_000
            );
            assert_eq!(IsoDuration::parse("P1.5Y").unwrap().months(), 18);
            assert_eq!(IsoDuration::parse("PT02S").unwrap().to_string(), "PT2S");
            assert_eq!(
                IsoDuration::parse("PT0,25S").unwrap().to_string(),
                "PT0.25S"
            );
            assert!(IsoDuration::parse("P").unwrap().is_zero());
            assert_eq!(IsoDuration::parse("P").unwrap().to_string(), "PT0S");
            assert_eq!(IsoDuration::parse("P1M").unwrap().months(), 1);
            assert_eq!(
                IsoDuration::parse("PT1M").unwrap().exact_nanos(),
                60_000_000_000
            );
            assert_eq!(
                IsoDuration::parse("PT60S").unwrap().fixed_length(),
                TimeDelta::new(60, 0)
            );
            assert_eq!(IsoDuration::parse("P1M").unwrap().fixed_length(), None);
        }

        #[test]
        fn durations_refused() {
            for bad in [
                "",
                "1D",
                "P1",
                "PT",
                "PT1D",
                "P1H",
                "P1.5M",
                "P0.3Y",
                "P1D2Y",
                "P1DT1H1H",
                "P-1D",
                "PT1.5H2M",
                "PT1.1234567891S",
                "P1X",
                "PT1S/",
                "P99999999999999999999D",
                "P20000Y",
            ] {
                assert!(
                    IsoDuration::parse(bad).is_err(),
                    "{bad:?} should be refused"
                );
            }
        }

        #[test]
        fn starts_parse() {
            let s = IsoDateTime::parse("2008-03-01T13:00:00Z").unwrap();
            assert_eq!(s.local.to_string(), "2008-03-01 13:00:00");
            assert_eq!(s.offset, FixedOffset::east_opt(0));
            let s = IsoDateTime::parse("2008-03-01T13:00:00.250-04:00").unwrap();
            assert_eq!(s.local.to_string(), "2008-03-01 13:00:00.250");
            assert_eq!(s.offset, FixedOffset::west_opt(4 * 3600));
            assert_eq!(
                IsoDateTime::parse("2008-03-01").unwrap().local.to_string(),
                "2008-03-01 00:00:00"
            );
            assert_eq!(
                IsoDateTime::parse("2008-061")
                    .unwrap()
                    .local
                    .date()
                    .to_string(),
                "2008-03-01"
            );
            assert_eq!(
                IsoDateTime::parse("2008-W09-6")
                    .unwrap()
                    .local
                    .date()
                    .to_string(),
                "2008-03-01"
            );
            assert_eq!(
                IsoDateTime::parse("2008-03-01T13.5")
                    .unwrap()
                    .local
                    .to_string(),
                "2008-03-01 13:30:00"
            );
            assert_eq!(
                IsoDateTime::parse("2008-03-01T13:00+0530").unwrap().offset,
                FixedOffset::east_opt(19800)
            );
            for bad in [
                "",
                "FOO",
                "2008-02-30",
                "2008-3-1",
                "T13:00",
                "2008-03-01T",
                "2008-03-01T25:00",
                "2008-03-01T13:00:60",
                "2008-03-01TZ:PST",
                "2008-03-01T13:00:00TZ:PST",
                "2008-03-01T13:00:00ZTZ:PST",
                "2008-03-01T13:00+25:00",
            ] {
                assert!(
                    IsoDateTime::parse(bad).is_err(),
                    "{bad:?} should be refused"
                );
            }
        }

        #[test]
        fn intervals_parse() {
            let r = RepeatingInterval::parse("R5/2008-03-01T13:00:00Z/P1D").unwrap();
            assert_eq!(r.repetitions, Some(5));
            assert!(r.start.is_some());
            assert_eq!(
                RepeatingInterval::parse("R/2008-03-01T13:00:00Z/P1D")
                    .unwrap()
                    .repetitions,
                None
            );
            assert_eq!(RepeatingInterval::parse("R1//P1D").unwrap().start, None);
            for bad in [
                "",
                "FOO",
                "R/2008-03-01T13:00:00Z",
                "2012-01-01T00:00:00.000Z",
                "R5x/2008-03-01/P1D",
                "R/2008-03-01/P1D/TZ:PST",
                "r/2008-03-01/P1D",
            ] {
                assert!(
                    RepeatingInterval::parse(bad).is_err(),
                    "{bad:?} should be refused"
                );
            }
        }

        #[test]
        fn zones_resolve() {
            assert_eq!(
                resolve_time_zone("Europe/Berlin").unwrap(),
                chrono_tz::Tz::Europe__Berlin
            );
            assert_eq!(
                resolve_time_zone("PST").unwrap(),
                chrono_tz::Tz::America__Los_Angeles
            );
            assert_eq!(
                resolve_time_zone("BST").unwrap(),
                chrono_tz::Tz::Asia__Dhaka
            );
            assert_eq!(resolve_time_zone("UTC").unwrap(), chrono_tz::Tz::UTC);
            assert!(resolve_time_zone("Mars/Olympus").is_err());
            assert!(resolve_time_zone("").is_err());
        }
    }
}

/// Chronos's default `epsilon`: a run may start up to a minute late.
pub const DEFAULT_EPSILON: &str = "PT60S";
/// Chronos's default number of retries after a failed run.
pub const DEFAULT_RETRIES: u32 = 2;
/// Chronos's default CPUs for a job that gives none (or 0).
pub const DEFAULT_CPUS: f64 = 0.1;
/// Chronos's default memory in MiB for a job that gives none (or 0).
pub const DEFAULT_MEM: f64 = 128.0;
/// Chronos's default disk in MiB for a job that gives none (or 0).
pub const DEFAULT_DISK: f64 = 256.0;
/// Longest job name accepted (Chronos had no limit; the name is a path component).
pub const MAX_NAME_LEN: usize = 200;
/// Most retries accepted; more is a mistake, not a policy.
pub const MAX_RETRIES: u32 = 1_000;

/// The constraint operators Chronos implements.
pub const CONSTRAINT_OPERATORS: [&str; 3] = ["EQUALS", "LIKE", "UNLIKE"];

/// A Chronos placement constraint. On the wire and in the store it stays Chronos's
/// array `[attribute, operator, value]`, which Chronos clients read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "[String; 3]", into = "[String; 3]")]
pub struct JobConstraint {
    /// `hostname` or a node attribute name.
    pub attribute: String,
    /// How the attribute's value must relate to `value`.
    pub operator: JobConstraintOperator,
    /// The value, or for `LIKE`/`UNLIKE` the regular expression.
    pub value: String,
}

/// The operator of a [`JobConstraint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobConstraintOperator {
    /// `EQUALS`: the attribute has exactly this value.
    Equals,
    /// `LIKE`: the attribute's value matches this regular expression.
    Like,
    /// `UNLIKE`: the attribute's value does not match this regular expression.
    Unlike,
}

impl JobConstraintOperator {
    /// Chronos's name of the operator (one of [`CONSTRAINT_OPERATORS`]).
    pub fn name(self) -> &'static str {
        match self {
            JobConstraintOperator::Equals => "EQUALS",
            JobConstraintOperator::Like => "LIKE",
            JobConstraintOperator::Unlike => "UNLIKE",
        }
    }

    /// The operator named `name`, if Chronos has it.
    pub fn from_name(name: &str) -> Option<JobConstraintOperator> {
        match name {
            "EQUALS" => Some(JobConstraintOperator::Equals),
            "LIKE" => Some(JobConstraintOperator::Like),
            "UNLIKE" => Some(JobConstraintOperator::Unlike),
            _ => None,
        }
    }
}

/// A constraint array whose operator Chronos does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of {CONSTRAINT_OPERATORS:?}")]
pub struct UnknownConstraintOperator(pub String);

impl TryFrom<[String; 3]> for JobConstraint {
    type Error = UnknownConstraintOperator;

    fn try_from([attribute, operator, value]: [String; 3]) -> Result<Self, Self::Error> {
        let operator = JobConstraintOperator::from_name(&operator)
            .ok_or(UnknownConstraintOperator(operator))?;
        Ok(JobConstraint {
            attribute,
            operator,
            value,
        })
    }
}

impl From<JobConstraint> for [String; 3] {
    fn from(c: JobConstraint) -> Self {
        [c.attribute, c.operator.name().to_string(), c.value]
    }
}

impl JobConstraint {
    /// The same rule as a placement constraint, as apps write them.
    pub fn placement(&self) -> Constraint {
        let value = self.value.clone();
        let operator = match self.operator {
            JobConstraintOperator::Equals => ConstraintOperator::Is(value),
            JobConstraintOperator::Like => ConstraintOperator::Like(value),
            JobConstraintOperator::Unlike => ConstraintOperator::Unlike(value),
        };
        Constraint {
            field: self.attribute.clone(),
            operator,
        }
    }
}

/// Top-level fields Drover acts on; any other field is kept in [`ChronosJob::extra`]
/// and reported as ignored.
pub const ACTED_ON_FIELDS: &[&str] = &[
    "name",
    "command",
    "shell",
    "arguments",
    "schedule",
    "scheduleTimeZone",
    "epsilon",
    "parents",
    "retries",
    "concurrent",
    "disabled",
    "softError",
    "cpus",
    "mem",
    "disk",
    "container",
    "environmentVariables",
    "owner",
    "owners",
    "ownerName",
    "description",
    "constraints",
];

/// A Chronos job as Drover keeps it. Serialises to Chronos's field names; the fields
/// Drover does not act on travel in [`extra`](ChronosJob::extra) unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChronosJob {
    /// Unique job name: one or more of `[A-Za-z0-9_.-]` (Chronos's `[\w.-]+`).
    pub name: String,
    /// The command; run by `sh -c` when `shell` is true, else executed with `arguments`.
    pub command: String,
    /// Whether `command` is a shell command line (Chronos default true).
    #[serde(default = "default_true")]
    pub shell: bool,
    /// Arguments when `shell` is false (or for the container's entry point).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// The ISO 8601 repeating interval of a scheduled job, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The zone whose wall clock the schedule's start and calendar periods follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_time_zone: Option<String>,
    /// How late a run may still start (Chronos default `PT60S`); has a fixed length.
    #[serde(default = "default_epsilon")]
    pub epsilon: IsoDuration,
    /// The jobs that must succeed before a dependent job runs; empty for scheduled jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// Retries after a failed run (Chronos default 2).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Whether runs may overlap (Chronos default false).
    #[serde(default)]
    pub concurrent: bool,
    /// A disabled job keeps its definition but does not run.
    #[serde(default)]
    pub disabled: bool,
    /// Whether children run even when this job fails.
    #[serde(default)]
    pub soft_error: bool,
    /// Fractional CPUs; `None` or 0 means [`DEFAULT_CPUS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory in MiB; `None` or 0 means [`DEFAULT_MEM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<f64>,
    /// Disk in MiB; `None` or 0 means [`DEFAULT_DISK`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<f64>,
    /// The container to run the command in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<JobContainer>,
    /// Extra environment for each run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_variables: Vec<EnvironmentVariable>,
    /// Who to tell about failures (Chronos: comma-separated e-mail addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The owner's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Placement constraints, each `[attribute, operator, value]` on the wire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<JobConstraint>,
    /// Fields Drover keeps and returns but does not act on (`async`, `executor`, `uris`,
    /// `fetch`, `runAsUser`, Chronos's run statistics, unknown fields...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn default_true() -> bool {
    true
}

fn default_retries() -> u32 {
    DEFAULT_RETRIES
}

fn default_epsilon() -> IsoDuration {
    // The constant is well-formed; the fallback (zero) is unreachable.
    IsoDuration::parse(DEFAULT_EPSILON).unwrap_or_default()
}

/// The container a job runs in (Chronos's `container` object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobContainer {
    /// `DOCKER` (default) or `MESOS` (a Mesos-containerizer image; Drover runs it with Docker).
    #[serde(rename = "type", default)]
    pub kind: ContainerType,
    /// The image to run.
    pub image: String,
    /// Docker network mode: `HOST`, `BRIDGE`, `USER` or `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Volumes to mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<JobVolume>,
    /// Pull the image before every run.
    #[serde(default)]
    pub force_pull_image: bool,
    /// Other container fields: `parameters` (the agent applies them) and the ones Drover
    /// does not act on (`networkName`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The kind of container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContainerType {
    /// A Docker container.
    #[default]
    Docker,
    /// A Mesos-containerizer image.
    Mesos,
}

/// The Docker network modes Chronos accepts.
pub const NETWORK_MODES: [&str; 4] = ["HOST", "BRIDGE", "USER", "NONE"];

/// A volume in a job's container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobVolume {
    /// Where it appears inside the container.
    pub container_path: String,
    /// The host directory to mount; absent for external volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// `RW` or `RO`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Volume fields Drover does not act on (`external`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One environment variable (`{"name": ..., "value": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    /// Variable name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl ChronosJob {
    /// Whether the job runs after its parents rather than on a schedule.
    pub fn is_dependent(&self) -> bool {
        !self.parents.is_empty()
    }

    /// The resources of one run, with Chronos's defaults where none (or 0) is given.
    pub fn resources(&self) -> Resources {
        let or = |v: Option<f64>, d: f64| v.filter(|&x| x > 0.0).unwrap_or(d);
        Resources::new(
            or(self.cpus, DEFAULT_CPUS),
            or(self.mem, DEFAULT_MEM),
            or(self.disk, DEFAULT_DISK),
        )
    }

    /// The parsed schedule, if the job has one. Syntax only: the scheduler resolves the
    /// zone and computes runs.
    pub fn repeating_interval(&self) -> Option<Result<RepeatingInterval, iso8601::Iso8601Error>> {
        self.schedule.as_deref().map(RepeatingInterval::parse)
    }

    /// Checks the rules a job must meet on its own (its parents' existence is
    /// [`check_job_graph`]'s business). The error names the field.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_name("name", &self.name)?;
        if self.command.is_empty() && self.container.is_none() {
            return Err(ApiError::invalid(
                "command",
                "must not be empty (only a container job may leave it empty)",
            ));
        }
        match (&self.schedule, self.parents.is_empty()) {
            (Some(_), false) => {
                return Err(ApiError::invalid(
                    "parents",
                    "a job has either a schedule or parents, not both (drop one of them)",
                ));
            }
            (None, true) => {
                return Err(ApiError::invalid(
                    "schedule",
                    "a job needs a schedule (R[n]/start/period) or, for a dependent job, non-empty parents",
                ));
            }
            (Some(s), true) => {
                RepeatingInterval::parse(s)
                    .map_err(|e| ApiError::invalid("schedule", e.to_string()))?;
            }
            (None, false) => {}
        }
        if let Some(zone) = &self.schedule_time_zone {
            resolve_time_zone(zone)
                .map_err(|e| ApiError::invalid("scheduleTimeZone", e.to_string()))?;
        }
        for (i, parent) in self.parents.iter().enumerate() {
            validate_name(&format!("parents[{i}]"), parent)?;
            if *parent == self.name {
                return Err(ApiError::invalid(
                    format!("parents[{i}]"),
                    "a job cannot be its own parent",
                ));
            }
        }
        if self.epsilon.fixed_length().is_none() {
            return Err(ApiError::invalid(
                "epsilon",
                "must have a fixed length (no months or years)",
            ));
        }
        if self.retries > MAX_RETRIES {
            return Err(ApiError::invalid(
                "retries",
                format!("{} is too many (limit {MAX_RETRIES})", self.retries),
            ));
        }
        let given = Resources::new(
            self.cpus.unwrap_or(0.0),
            self.mem.unwrap_or(0.0),
            self.disk.unwrap_or(0.0),
        );
        given.validate("")?;
        // Zero means Chronos's default, so the floors apply to what a run will reserve.
        self.resources().validate_task("")?;
        if let Some(c) = &self.container {
            if c.image.is_empty() {
                return Err(ApiError::invalid("container.image", "must not be empty"));
            }
            if let Some(n) = &c.network
                && !NETWORK_MODES.contains(&n.as_str())
            {
                return Err(ApiError::invalid(
                    "container.network",
                    format!("{n:?} is not one of {NETWORK_MODES:?}"),
                ));
            }
            for (i, v) in c.volumes.iter().enumerate() {
                if v.container_path.is_empty() {
                    return Err(ApiError::invalid(
                        format!("container.volumes[{i}].containerPath"),
                        "must not be empty",
                    ));
                }
                if let Some(m) = &v.mode
                    && m != "RW"
                    && m != "RO"
                {
                    return Err(ApiError::invalid(
                        format!("container.volumes[{i}].mode"),
                        format!("{m:?} is not RW or RO"),
                    ));
                }
            }
        }
        for (i, env) in self.environment_variables.iter().enumerate() {
            if env.name.is_empty() || env.name.contains('=') || env.name.contains('\0') {
                return Err(ApiError::invalid(
                    format!("environmentVariables[{i}].name"),
                    format!("{:?} is not a valid variable name", env.name),
                ));
            }
        }
        Ok(())
    }
}

/// Chronos's name rule (`JobUtils.isValidJobName`: the whole name matches `[\w.-]+`,
/// where Java's `\w` is ASCII `[A-Za-z0-9_]`), plus a length limit and no `.`/`..`.
fn validate_name(field: &str, name: &str) -> Result<(), ApiError> {
    let charset_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !charset_ok {
        return Err(ApiError::invalid(
            field,
            format!("{name:?} is not a valid job name (one or more of A-Z a-z 0-9 _ . -)"),
        ));
    }
    if name == "." || name == ".." {
        return Err(ApiError::invalid(
            field,
            format!("{name:?} is not a valid job name"),
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(())
}

/// Parses a Chronos job JSON and validates it.
///
/// Returns the job and the JSON paths of the fields Drover keeps but does not act on
/// (sorted; e.g. `async`, `uris`, `container.networkName`), or an error naming the field.
/// Numbers and booleans given as strings are accepted where Chronos accepted them.
pub fn parse_job(value: &Value) -> Result<(ChronosJob, Vec<String>), ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("job", "must be a JSON object"))?;
    let mut ignored = Vec::new();
    let mut extra = BTreeMap::new();
    for (key, v) in obj {
        if !ACTED_ON_FIELDS.contains(&key.as_str()) {
            ignored.push(key.clone());
            extra.insert(key.clone(), v.clone());
        }
    }

    let name = req_string(obj, "name")?;
    let command = opt_string(obj, "command")?.unwrap_or_default();
    // Chronos prints an empty schedule for dependent jobs; treat it as absent.
    let schedule = opt_string(obj, "schedule")?.filter(|s| !s.is_empty());
    let schedule_time_zone = opt_string(obj, "scheduleTimeZone")?.filter(|s| !s.is_empty());
    let epsilon = match opt_string(obj, "epsilon")? {
        None => default_epsilon(),
        Some(s) => {
            IsoDuration::parse(&s).map_err(|e| ApiError::invalid("epsilon", e.to_string()))?
        }
    };
    let owner = match opt_string(obj, "owner")? {
        Some(o) => Some(o),
        // The 2013 README wrote `owners` as a list; keep it as Chronos's later string.
        None => opt_string_list(obj, "owners")?
            .map(|l| l.join(","))
            .filter(|s| !s.is_empty()),
    };
    let container = match obj.get("container") {
        None | Some(Value::Null) => None,
        Some(c) => Some(parse_container(c, &mut ignored)?),
    };
    let mut job = ChronosJob {
        name,
        command,
        shell: opt_bool(obj, "shell")?.unwrap_or(true),
        arguments: opt_string_list(obj, "arguments")?.unwrap_or_default(),
        schedule,
        schedule_time_zone,
        epsilon,
        parents: opt_string_list(obj, "parents")?.unwrap_or_default(),
        retries: opt_u32(obj, "retries")?.unwrap_or(DEFAULT_RETRIES),
        concurrent: opt_bool(obj, "concurrent")?.unwrap_or(false),
        disabled: opt_bool(obj, "disabled")?.unwrap_or(false),
        soft_error: opt_bool(obj, "softError")?.unwrap_or(false),
        cpus: opt_f64(obj, "cpus")?,
        mem: opt_f64(obj, "mem")?,
        disk: opt_f64(obj, "disk")?,
        container,
        environment_variables: parse_env(obj)?,
        owner,
        owner_name: opt_string(obj, "ownerName")?,
        description: opt_string(obj, "description")?,
        constraints: Vec::new(),
        extra,
    };
    // Constraint shapes are checked among the fields, operators after every other
    // check: a job with several faults is refused naming the first in that order.
    let constraints = parse_constraints(obj)?;
    // A dependent job posted with an explicitly empty parent list is a mistake, not a
    // scheduled job without a schedule: say so about `parents`.
    if job.schedule.is_none() && matches!(obj.get("parents"), Some(Value::Array(a)) if a.is_empty())
    {
        return Err(ApiError::invalid(
            "parents",
            "a dependent job needs at least one parent",
        ));
    }
    job.validate()?;
    job.constraints = typed_constraints(constraints)?;
    ignored.sort();
    Ok((job, ignored))
}

fn type_error(field: &str, want: &str, got: &Value) -> ApiError {
    let kind = crate::error::json_kind(got);
    ApiError::invalid(field, format!("must be {want}, got {kind}"))
}

fn req_string(obj: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    opt_string_at(obj, key, key)?.ok_or_else(|| ApiError::invalid(key, "is required"))
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    opt_string_at(obj, key, key)
}

fn opt_string_at(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(type_error(path, "a string", v)),
    }
}

fn opt_string_list(obj: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(type_error(&format!("{key}[{i}]"), "a string", v)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(type_error(key, "an array of strings", v)),
    }
}

/// A boolean, or the strings `"true"`/`"false"` (Chronos's docs show `"shell": "false"`).
fn opt_bool_at(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(type_error(path, "true or false", v)),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    opt_bool_at(obj, key, key)
}

/// A number, or a string holding one (`"cpus": "0.5"`, as Chronos's docs write it).
fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    let n = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(v) => return Err(type_error(key, "a number", v)),
    };
    match n {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
        Some(x) if x.is_finite() => Err(ApiError::invalid(
            key,
            format!("must not be negative, got {x}"),
        )),
        _ => Err(ApiError::invalid(
            key,
            format!("{} is not a number", obj.get(key).unwrap_or(&Value::Null)),
        )),
    }
}

/// A non-negative integer, or a string holding one (`"retries": "2"`).
fn opt_u32(obj: &Map<String, Value>, key: &str) -> Result<Option<u32>, ApiError> {
    let v = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        v => return Err(type_error(key, "a non-negative integer", v)),
    };
    match parsed {
        Some(n) if n < 0 => Err(ApiError::invalid(
            key,
            format!("must not be negative, got {n}"),
        )),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| ApiError::invalid(key, format!("{n} is too large"))),
        None => Err(ApiError::invalid(key, format!("{v} is not a whole number"))),
    }
}

/// The items of an array field; none when it is absent or null.
fn array_items<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    want: &str,
) -> Result<&'a [Value], ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(v) => Err(type_error(key, want, v)),
    }
}

fn parse_env(obj: &Map<String, Value>) -> Result<Vec<EnvironmentVariable>, ApiError> {
    array_items(obj, "environmentVariables", "an array of {name, value}")?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("environmentVariables[{i}]");
            let o = item
                .as_object()
                .ok_or_else(|| type_error(&path, "an object {name, value}", item))?;
            let name = opt_string_at(o, "name", &format!("{path}.name"))?
                .ok_or_else(|| ApiError::invalid(format!("{path}.name"), "is required"))?;
            let value = opt_string_at(o, "value", &format!("{path}.value"))?.unwrap_or_default();
            Ok(EnvironmentVariable { name, value })
        })
        .collect()
}

fn typed_constraints(raw: Vec<[String; 3]>) -> Result<Vec<JobConstraint>, ApiError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| {
            JobConstraint::try_from(c)
                .map_err(|e| ApiError::invalid(format!("constraints[{i}][1]"), e.to_string()))
        })
        .collect()
}

/// The constraints' shapes: arrays of three strings.
fn parse_constraints(obj: &Map<String, Value>) -> Result<Vec<[String; 3]>, ApiError> {
    array_items(
        obj,
        "constraints",
        "an array of [attribute, operator, value]",
    )?
    .iter()
    .enumerate()
    .map(|(i, item)| {
        let path = format!("constraints[{i}]");
        let parts = item
            .as_array()
            .ok_or_else(|| type_error(&path, "[attribute, operator, value]", item))?;
        let strings: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                p.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| type_error(&format!("{path}[{j}]"), "a string", p))
            })
            .collect::<Result<_, _>>()?;
        match <[String; 3]>::try_from(strings) {
            Ok(triple) => Ok(triple),
            Err(v) => Err(ApiError::invalid(
                path,
                format!(
                    "must have 3 elements [attribute, operator, value], got {}",
                    v.len()
                ),
            )),
        }
    })
    .collect()
}

const CONTAINER_FIELDS: &[&str] = &["type", "image", "network", "volumes", "forcePullImage"];
const VOLUME_FIELDS: &[&str] = &["containerPath", "hostPath", "mode"];

fn parse_container(value: &Value, ignored: &mut Vec<String>) -> Result<JobContainer, ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| type_error("container", "an object", value))?;
    let mut extra = BTreeMap::new();
    for (key, v) in obj {
        if !CONTAINER_FIELDS.contains(&key.as_str()) {
            // `parameters` travels in `extra` to the agent, which applies it.
            if key != "parameters" {
                ignored.push(format!("container.{key}"));
            }
            extra.insert(key.clone(), v.clone());
        }
    }
    match obj.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, p) in items.iter().enumerate() {
                let is_str = |k: &str| p.get(k).is_some_and(Value::is_string);
                if !(is_str("key") && is_str("value")) {
                    return Err(ApiError::invalid(
                        format!("container.parameters[{i}]"),
                        "needs key and value strings",
                    ));
                }
            }
        }
        Some(v) => return Err(type_error("container.parameters", "an array", v)),
    }
    let kind = match opt_string_at(obj, "type", "container.type")?.as_deref() {
        None | Some("DOCKER") | Some("docker") => ContainerType::Docker,
        Some("MESOS") | Some("mesos") => ContainerType::Mesos,
        Some(other) => {
            return Err(ApiError::invalid(
                "container.type",
                format!("{other:?} is not DOCKER or MESOS"),
            ));
        }
    };
    let image = opt_string_at(obj, "image", "container.image")?
        .ok_or_else(|| ApiError::invalid("container.image", "is required"))?;
    let volumes = match obj.get("volumes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_volume(i, v, ignored))
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(type_error("container.volumes", "an array", v)),
    };
    Ok(JobContainer {
        kind,
        image,
        network: opt_string_at(obj, "network", "container.network")?,
        volumes,
        force_pull_image: opt_bool_at(obj, "forcePullImage", "container.forcePullImage")?
            .unwrap_or(false),
        extra,
    })
}

fn parse_volume(i: usize, value: &Value, ignored: &mut Vec<String>) -> Result<JobVolume, ApiError> {
    let path = format!("container.volumes[{i}]");
    let obj = value
        .as_object()
        .ok_or_else(|| type_error(&path, "an object", value))?;
    let mut extra = BTreeMap::new();
    for (key, v) in obj {
        if !VOLUME_FIELDS.contains(&key.as_str()) {
            ignored.push(format!("{path}.{key}"));
            extra.insert(key.clone(), v.clone());
        }
    }
    Ok(JobVolume {
        container_path: opt_string_at(obj, "containerPath", &format!("{path}.containerPath"))?
            .ok_or_else(|| ApiError::invalid(format!("{path}.containerPath"), "is required"))?,
        host_path: opt_string_at(obj, "hostPath", &format!("{path}.hostPath"))?,
        mode: opt_string_at(obj, "mode", &format!("{path}.mode"))?,
        extra,
    })
}

/// What is wrong with a set of jobs' parent links.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobGraphError {
    /// Two jobs share a name.
    #[error("two jobs are named {0:?}")]
    DuplicateName(String),
    /// A job names a parent that is not in the set.
    #[error("job {job:?} names parent {parent:?}, which does not exist")]
    MissingParent {
        /// The dependent job.
        job: String,
        /// The parent it names.
        parent: String,
    },
    /// Following parents leads back to where it started; the path starts and ends
    /// with the same job, each job naming the next as a parent.
    #[error("parents form a cycle: {}", path.join(" -> "))]
    Cycle {
        /// The cycle, e.g. `["a", "b", "a"]`: a's parent is b, b's parent is a.
        path: Vec<String>,
    },
}

impl From<JobGraphError> for ApiError {
    fn from(e: JobGraphError) -> Self {
        let field = match e {
            JobGraphError::DuplicateName(_) => "name",
            _ => "parents",
        };
        ApiError::invalid(field, e.to_string())
    }
}

/// Checks that every parent named by a job exists in `jobs` and that parent links have
/// no cycle. Deterministic: jobs are visited in name order, so the same set always
/// reports the same problem.
pub fn check_job_graph<'a>(
    jobs: impl IntoIterator<Item = &'a ChronosJob>,
) -> Result<(), JobGraphError> {
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for job in jobs {
        let ps = job.parents.iter().map(String::as_str).collect();
        if parents.insert(job.name.as_str(), ps).is_some() {
            return Err(JobGraphError::DuplicateName(job.name.clone()));
        }
    }
    for (job, ps) in &parents {
        if let Some(missing) = ps.iter().find(|p| !parents.contains_key(**p)) {
            return Err(JobGraphError::MissingParent {
                job: job.to_string(),
                parent: missing.to_string(),
            });
        }
    }
    // Iterative depth-first search; `on_stack` holds the current path (grey nodes).
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for &root in parents.keys() {
        if done.contains(root) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        let mut on_stack: Vec<&str> = vec![root];
        while let Some((node, next)) = stack.last_mut() {
            let node: &str = node;
            let ps = parents.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if *next >= ps.len() {
                done.insert(node);
                stack.pop();
                on_stack.pop();
                continue;
            }
            let child = ps[*next];
            *next += 1;
            if let Some(pos) = on_stack.iter().position(|n| *n == child) {
                let mut path: Vec<String> = on_stack[pos..].iter().map(|s| s.to_string()).collect();
                path.push(child.to_string());
                return Err(JobGraphError::Cycle { path });
            }
            if !done.contains(child) {
                stack.push((child, 0));
                on_stack.push(child);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use serde_json::json;

    use super::*;

    fn job(name: &str, parents: &[&str]) -> ChronosJob {
        let v = if parents.is_empty() {
            json!({"name": name, "command": "true", "schedule": "R/2026-01-01T00:00:00Z/P1D"})
        } else {
            json!({"name": name, "command": "true", "parents": parents})
        };
        parse_job(&v).unwrap().0
    }

    #[test]
    fn defaults_and_string_numbers() {
        let (j, ignored) = parse_job(&json!({
            "name": "date", "command": "date", "schedule": "R/2014-09-25T17:22:00Z/PT2M",
            "cpus": "0.5", "mem": "64", "retries": "3", "shell": "false", "uris": [], "async": false
        }))
        .unwrap();
        assert_eq!(j.cpus, Some(0.5));
        assert_eq!(j.mem, Some(64.0));
        assert_eq!(j.retries, 3);
        assert!(!j.shell);
        assert_eq!(j.epsilon.to_string(), "PT60S");
        assert_eq!(ignored, vec!["async", "uris"]);
        assert_eq!(j.extra.len(), 2);
        assert_eq!(j.resources(), Resources::new(0.5, 64.0, DEFAULT_DISK));
        let (j, _) =
            parse_job(&json!({"name": "a", "command": "x", "schedule": "R/2026-01-01/P1D"}))
                .unwrap();
        assert!(j.shell);
        assert_eq!(j.retries, 2);
        assert!(!j.concurrent);
    }

    #[test]
    fn round_trips_through_serde() {
        let (j, _) = parse_job(&json!({
            "name": "dockerjob", "command": "x", "schedule": "R/2014-09-25T17:22:00Z/PT2M", "epsilon": "PT30M",
            "container": {"type": "DOCKER", "image": "busybox", "network": "BRIDGE", "parameters": [],
                          "volumes": [{"containerPath": "/a", "hostPath": "/b", "mode": "RW", "external": {}}]},
            "highPriority": true
        }))
        .unwrap();
        let text = serde_json::to_string(&j).unwrap();
        let back: ChronosJob = serde_json::from_str(&text).unwrap();
        assert_eq!(back, j);
        let (again, ignored) = parse_job(&serde_json::to_value(&j).unwrap()).unwrap();
        assert_eq!(again, j);
        assert_eq!(
            ignored,
            vec!["container.volumes[0].external", "highPriority"]
        );
    }

    #[test]
    fn constraints_are_typed_and_written_back_as_chronos_arrays() {
        let wire = json!([
            ["rack", "EQUALS", "r1"],
            ["hostname", "LIKE", "web-[0-9]+"],
            ["zone", "UNLIKE", "eu-.*"]
        ]);
        let (j, _) = parse_job(&json!({
            "name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "constraints": wire
        }))
        .unwrap();
        assert_eq!(
            j.constraints,
            vec![
                JobConstraint {
                    attribute: "rack".into(),
                    operator: JobConstraintOperator::Equals,
                    value: "r1".into(),
                },
                JobConstraint {
                    attribute: "hostname".into(),
                    operator: JobConstraintOperator::Like,
                    value: "web-[0-9]+".into(),
                },
                JobConstraint {
                    attribute: "zone".into(),
                    operator: JobConstraintOperator::Unlike,
                    value: "eu-.*".into(),
                },
            ]
        );
        let out = serde_json::to_value(&j).unwrap();
        assert_eq!(out["constraints"], wire);
        let back: ChronosJob = serde_json::from_value(out).unwrap();
        assert_eq!(back, j);
        // The placement rules are the app constraints of the same meaning.
        let placement: Vec<Constraint> =
            j.constraints.iter().map(JobConstraint::placement).collect();
        assert_eq!(
            placement,
            vec![
                Constraint {
                    field: "rack".into(),
                    operator: ConstraintOperator::Is("r1".into()),
                },
                Constraint {
                    field: "hostname".into(),
                    operator: ConstraintOperator::Like("web-[0-9]+".into()),
                },
                Constraint {
                    field: "zone".into(),
                    operator: ConstraintOperator::Unlike("eu-.*".into()),
                },
            ]
        );
        // A job without constraints writes none.
        let (plain, _) =
            parse_job(&json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D"}))
                .unwrap();
        assert!(
            serde_json::to_value(&plain)
                .unwrap()
                .get("constraints")
                .is_none()
        );
    }

    #[test]
    fn constraint_refusals_keep_their_messages() {
        let refused = |constraints: Value| {
            parse_job(&json!({
                "name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "constraints": constraints
            }))
            .unwrap_err()
        };
        let e = refused(json!([["rack", "EQUALS", "r1"], ["rack", "GROUP_BY", "1"]]));
        assert_eq!(e.field.as_deref(), Some("constraints[1][1]"));
        assert_eq!(
            e.message,
            r#"constraints[1][1]: "GROUP_BY" is not one of ["EQUALS", "LIKE", "UNLIKE"]"#
        );
        let e = refused(json!([["rack", "LIKE"]]));
        assert_eq!(e.field.as_deref(), Some("constraints[0]"));
        assert_eq!(
            e.message,
            "constraints[0]: must have 3 elements [attribute, operator, value], got 2"
        );
        let e = refused(json!([["rack", 1, "r1"]]));
        assert_eq!(e.field.as_deref(), Some("constraints[0][1]"));
        let e = refused(json!("rack:EQUALS:r1"));
        assert_eq!(e.field.as_deref(), Some("constraints"));
        // An unknown operator is named only once every other field is valid.
        let e = parse_job(&json!({
            "name": "a@b", "command": "c", "schedule": "R/2012-01-01/P1D",
            "constraints": [["rack", "GROUP_BY", "1"]]
        }))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        // A stored job with an operator Chronos lacks does not load.
        let stored =
            json!({"name": "a", "command": "c", "constraints": [["rack", "CLUSTER", "r1"]]});
        assert!(serde_json::from_value::<ChronosJob>(stored).is_err());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                json!({"name": "sample@$&name", "command": "c", "schedule": "R/2012-01-01T00:00:01.000Z/PT1M"}),
                "name",
            ),
            (
                json!({"name": "..", "command": "c", "schedule": "R/2012-01-01T00:00:01.000Z/PT1M"}),
                "name",
            ),
            (
                json!({"command": "c", "schedule": "R/2012-01-01T00:00:01.000Z/PT1M"}),
                "name",
            ),
            (json!({"name": "a", "command": "c"}), "schedule"),
            // Zero means the default; a positive value below the floor is refused.
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "cpus": 0.0001}),
                "cpus",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "mem": 0.0001}),
                "mem",
            ),
            (
                json!({"name": "a", "command": "c", "parents": []}),
                "parents",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "parents": ["b"]}),
                "parents",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "FOO"}),
                "schedule",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "scheduleTimeZone": "Mars/Base"}),
                "scheduleTimeZone",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "cpus": -1}),
                "cpus",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "mem": "lots"}),
                "mem",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "retries": -1}),
                "retries",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "retries": 1.5}),
                "retries",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "epsilon": "P1M"}),
                "epsilon",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "epsilon": "soon"}),
                "epsilon",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "shell": "maybe"}),
                "shell",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "parents": "b"}),
                "parents",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "constraints": [["rack", "GROUP_BY", "1"]]}),
                "constraints[0][1]",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "constraints": [["rack", "LIKE"]]}),
                "constraints[0]",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "environmentVariables": [{"value": "x"}]}),
                "environmentVariables[0].name",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "container": {"type": "DOCKER"}}),
                "container.image",
            ),
            (
                json!({"name": "a", "command": "c", "schedule": "R/2012-01-01/P1D", "container": {"image": "x", "network": "WIFI"}}),
                "container.network",
            ),
            (
                json!({"name": "a", "parents": ["a"], "command": "c"}),
                "parents[0]",
            ),
            (json!("not an object"), "job"),
        ];
        for (value, field) in cases {
            let err = parse_job(&value).expect_err(&value.to_string());
            assert_eq!(
                err.field.as_deref(),
                Some(field),
                "{value}: {}",
                err.message
            );
            assert_eq!(err.http_status(), 400);
        }
    }

    #[test]
    fn graph_finds_missing_parents_and_cycles() {
        let a = job("a", &[]);
        let b = job("b", &["a"]);
        let c = job("c", &["a", "b"]);
        assert_eq!(check_job_graph([&a, &b, &c]), Ok(()));
        let d = job("d", &["nope"]);
        assert_eq!(
            check_job_graph([&a, &d]),
            Err(JobGraphError::MissingParent {
                job: "d".into(),
                parent: "nope".into()
            })
        );
        let x = job("x", &["z"]);
        let y = job("y", &["x"]);
        let z = job("z", &["y"]);
        let err = check_job_graph([&a, &x, &y, &z]).unwrap_err();
        assert_eq!(
            err,
            JobGraphError::Cycle {
                path: vec!["x".into(), "z".into(), "y".into(), "x".into()]
            }
        );
        assert_eq!(ApiError::from(err).field.as_deref(), Some("parents"));
        assert_eq!(
            check_job_graph([&a, &a.clone()]),
            Err(JobGraphError::DuplicateName("a".into()))
        );
    }
}
