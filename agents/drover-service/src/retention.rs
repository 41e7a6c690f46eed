//! Retention of what grows with use (ended tasks, job run records, finished
//! deployments): keep the newest `count` ended records and none that ended longer than
//! `max_age` ago. The decision is [`expired`], a plain function; each binary applies
//! it to its own records and deletes the keys it returns.
//!
//! Records still open (a running task, an attempt waiting to retry, a running
//! deployment) are never chosen. The newest ended record is never dropped for its age,
//! so a job that runs monthly still shows its last run; the count still applies.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The default age limit of every history: a week, so that last week's failures can
/// still be looked into after a weekend ([`DEFAULT_MAX_AGE_TEXT`] as a flag default).
pub const DEFAULT_MAX_AGE: MaxAge = MaxAge(Some(Duration::from_secs(7 * 86_400)));
/// [`DEFAULT_MAX_AGE`] as a flag's default value.
pub const DEFAULT_MAX_AGE_TEXT: &str = "7d";

/// How long ended records are kept: a duration, or no limit (`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge(pub Option<Duration>);

impl MaxAge {
    /// The age limit as a duration, `None` without a limit (or one too long for dates).
    pub fn as_delta(self) -> Option<TimeDelta> {
        self.0.and_then(|d| TimeDelta::from_std(d).ok())
    }
}

const UNITS: [(&str, u64); 5] = [
    ("w", 7 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("m", 60),
    ("s", 1),
];

impl FromStr for MaxAge {
    type Err = String;

    /// A whole number with a unit (`90s`, `30m`, `12h`, `7d`, `2w`), a bare number of
    /// seconds, or `0` for no age limit.
    fn from_str(s: &str) -> Result<MaxAge, String> {
        let t = s.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let how = || {
            format!(
                "{s:?} is not an age: use a whole number with a unit (90s, 30m, 12h, 7d, 2w), or 0 for no age limit"
            )
        };
        let n: u64 = number.parse().map_err(|_| how())?;
        let scale = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(how)?
        };
        let seconds = n
            .checked_mul(scale)
            .filter(|s| *s <= 100 * 365 * 86_400)
            .ok_or_else(|| format!("{s:?} is longer than 100 years (use 0 for no age limit)"))?;
        Ok(MaxAge((seconds > 0).then(|| Duration::from_secs(seconds))))
    }
}

impl fmt::Display for MaxAge {
    /// The shortest form [`MaxAge::from_str`] reads back: `7d`, `36h`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(d) = self.0 else {
            return write!(f, "0");
        };
        let secs = d.as_secs();
        // Weeks read back but days print: "7d" says what operators write.
        let (unit, scale) = UNITS[1..]
            .iter()
            .copied()
            .find(|(_, scale)| secs.is_multiple_of(*scale))
            .unwrap_or(("s", 1));
        write!(f, "{}{unit}", secs / scale)
    }
}

/// A clap value parser for [`MaxAge`].
pub fn parse_max_age(s: &str) -> Result<MaxAge, String> {
    s.parse()
}

/// What is kept of one history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The most ended records kept.
    pub count: usize,
    /// How long after it ended a record is kept.
    pub max_age: MaxAge,
}

/// One record of a history as [`expired`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<K> {
    /// What identifies it (a store key, a task id).
    pub key: K,
    /// When it ended; `None` while it is open.
    pub ended: Option<DateTime<Utc>>,
}

/// The keys of the ended records to drop under `policy` at `now`, oldest first: all
/// but the newest `count` ended ones, and those that ended before `now - max_age`
/// (except the newest). Ties in end time keep the input order (later is newer).
pub fn expired<K: Clone>(records: &[Record<K>], policy: &Retention, now: DateTime<Utc>) -> Vec<K> {
    let mut ended: Vec<(DateTime<Utc>, usize)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.ended.map(|t| (t, i)))
        .collect();
    ended.sort_unstable();
    let excess = ended.len().saturating_sub(policy.count);
    let cutoff = policy
        .max_age
        .as_delta()
        .and_then(|age| now.checked_sub_signed(age));
    let newest = ended.len().saturating_sub(1);
    ended
        .iter()
        .enumerate()
        .take_while(|(n, (t, _))| *n < excess || (*n < newest && cutoff.is_some_and(|c| *t < c)))
        .map(|(_, (_, i))| records[*i].key.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(secs)
    }

    fn rec(key: &str, ended: Option<i64>) -> Record<String> {
        Record {
            key: key.into(),
            ended: ended.map(t),
        }
    }

    fn policy(count: usize, max_age: &str) -> Retention {
        Retention {
            count,
            max_age: max_age.parse().unwrap(),
        }
    }

    #[test]
    fn count_keeps_the_newest_ended_and_every_open_one() {
        let records = vec![
            rec("a", Some(10)),
            rec("open1", None),
            rec("b", Some(30)),
            rec("c", Some(20)),
            rec("d", Some(40)),
            rec("open2", None),
        ];
        // Oldest first by end time, not by position.
        assert_eq!(expired(&records, &policy(2, "0"), t(50)), vec!["a", "c"]);
        assert!(expired(&records, &policy(4, "0"), t(50)).is_empty());
        assert_eq!(
            expired(&records, &policy(0, "0"), t(50)),
            vec!["a", "c", "b", "d"]
        );
    }

    #[test]
    fn age_drops_the_old_but_never_the_newest_or_the_open() {
        let records = vec![
            rec("old", Some(0)),
            rec("open", None),
            rec("mid", Some(100)),
            rec("new", Some(200)),
        ];
        // Cutoff 250 - 100 = 150: "old" and "mid" ended before it.
        assert_eq!(
            expired(&records, &policy(10, "100s"), t(250)),
            vec!["old", "mid"]
        );
        // Everything is older than the cutoff: the newest ended record stays.
        assert_eq!(
            expired(&records, &policy(10, "100s"), t(10_000)),
            vec!["old", "mid"]
        );
        // Exactly at the cutoff is kept.
        assert_eq!(expired(&records, &policy(10, "100s"), t(200)), vec!["old"]);
        // Count and age together: the union, oldest first.
        assert_eq!(
            expired(&records, &policy(1, "1h"), t(250)),
            vec!["old", "mid"]
        );
        let only_open = vec![rec("open", None)];
        assert!(expired(&only_open, &policy(0, "1s"), t(1_000)).is_empty());
        assert!(expired::<String>(&[], &policy(0, "1s"), t(0)).is_empty());
    }

    #[test]
    fn equal_end_times_keep_the_later_record() {
        let records = vec![rec("first", Some(5)), rec("second", Some(5))];
        assert_eq!(expired(&records, &policy(1, "0"), t(5)), vec!["first"]);
    }

    #[test]
    fn max_age_parses_and_prints_back() {
        assert_eq!(
            DEFAULT_MAX_AGE_TEXT.parse::<MaxAge>().unwrap(),
            DEFAULT_MAX_AGE
        );
        for (text, secs, shown) in [
            ("7d", Some(604_800), "7d"),
            ("36h", Some(129_600), "36h"),
            ("90", Some(90), "90s"),
            ("90m", Some(5_400), "90m"),
            ("2w", Some(1_209_600), "14d"),
            (" 0 ", None, "0"),
            ("0d", None, "0"),
        ] {
            let age: MaxAge = text.parse().unwrap();
            assert_eq!(age.0, secs.map(Duration::from_secs), "{text}");
            assert_eq!(age.to_string(), shown);
            assert_eq!(shown.parse::<MaxAge>().unwrap(), age);
        }
        for bad in ["", "d", "-1d", "1.5h", "7 days", "3y", "1000000w"] {
            let e = bad.parse::<MaxAge>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
