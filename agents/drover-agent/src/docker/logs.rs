//! Pure: the bookkeeping that lets the agent copy a container's log stream into the
//! task's sandbox exactly once, across its own restarts.
//!
//! The agent asks Docker for the stream with timestamps and writes each entry's payload
//! to `stdout` or `stderr`. Every so often it saves a [`LogCursor`] (`logs.json`): the two
//! files' lengths and the timestamp of the last entry written. A restarted agent cuts the
//! files back to the saved lengths (dropping anything written after the save) and asks
//! again from the saved timestamp, skipping entries at or before it: nothing is lost and
//! nothing is written twice.

use chrono::{DateTime, Utc};
use drover_api::task::LogStream;
use serde::{Deserialize, Serialize};

/// `logs.json`: how far the copy of a container's logs got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogCursor {
    /// Bytes of `stdout` that are accounted for.
    pub stdout_len: u64,
    /// Bytes of `stderr` that are accounted for.
    pub stderr_len: u64,
    /// The timestamp of the last entry written, if any was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<DateTime<Utc>>,
}

impl LogCursor {
    /// Whether an entry stamped `at` is still to be written.
    pub fn is_new(&self, at: DateTime<Utc>) -> bool {
        self.last.is_none_or(|last| at > last)
    }

    /// Records that `len` bytes stamped `at` were appended to `stream`.
    pub fn advance(&mut self, stream: LogStream, at: DateTime<Utc>, len: usize) {
        let len = len as u64;
        match stream {
            LogStream::Stdout => self.stdout_len += len,
            LogStream::Stderr => self.stderr_len += len,
        }
        self.last = Some(at);
    }

    /// The length `stream`'s file is cut back to on resume.
    pub fn len(&self, stream: LogStream) -> u64 {
        match stream {
            LogStream::Stdout => self.stdout_len,
            LogStream::Stderr => self.stderr_len,
        }
    }

    /// Docker's `since` (whole seconds) that cannot miss an entry after `last`.
    pub fn since(&self) -> i32 {
        self.last
            .map_or(0, |t| i32::try_from(t.timestamp()).unwrap_or(i32::MAX))
    }
}

/// Splits a timestamped entry (`2026-11-27T10:00:00.123456789Z payload`) into its time
/// and payload; `None` when it has no readable timestamp.
pub fn split_timestamp(entry: &[u8]) -> Option<(DateTime<Utc>, &[u8])> {
    let space = entry.iter().position(|b| *b == b' ')?;
    let stamp = std::str::from_utf8(&entry[..space]).ok()?;
    let at = DateTime::parse_from_rfc3339(stamp)
        .ok()?
        .with_timezone(&Utc);
    Some((at, &entry[space + 1..]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn splits_entries_with_nanosecond_stamps() {
        let (at, payload) = split_timestamp(b"2026-11-27T10:00:00.123456789Z 10:00:00\n").unwrap();
        assert_eq!(at.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(payload, b"10:00:00\n");
        // Docker trims trailing zeros of the fraction.
        let (at, payload) = split_timestamp(b"2026-11-27T10:00:00.5Z  two spaces").unwrap();
        assert_eq!(at.timestamp_subsec_millis(), 500);
        assert_eq!(payload, b" two spaces");
        assert!(split_timestamp(b"no stamp here").is_none());
        assert!(split_timestamp(b"").is_none());
    }

    #[test]
    fn resumes_after_the_last_entry_and_never_repeats_it() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut c = LogCursor::default();
        assert_eq!(c.since(), 0, "from the start");
        assert!(c.is_new(t("2026-11-27T10:00:00Z")));
        c.advance(LogStream::Stdout, t("2026-11-27T10:00:01.25Z"), 9);
        c.advance(LogStream::Stderr, t("2026-11-27T10:00:01.75Z"), 4);
        assert_eq!((c.len(LogStream::Stdout), c.len(LogStream::Stderr)), (9, 4));
        // `since` is whole seconds, so Docker repeats the rest of that second: skipped.
        assert_eq!(i64::from(c.since()), t("2026-11-27T10:00:01Z").timestamp());
        assert!(!c.is_new(t("2026-11-27T10:00:01.25Z")));
        assert!(!c.is_new(t("2026-11-27T10:00:01.75Z")));
        assert!(c.is_new(t("2026-11-27T10:00:01.750000001Z")));
        let back: LogCursor = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
