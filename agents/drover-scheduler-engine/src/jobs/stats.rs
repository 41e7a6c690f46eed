//! Run statistics: counts over a job's whole history, durations over its recent runs.
//!
//! # Percentiles
//!
//! Percentiles use linear interpolation between closest ranks (Hyndman and Fan's type 7:
//! R's and NumPy's default, Excel's `PERCENTILE.INC`): for `n` sorted values `x[0..n]`
//! and `q` in [0, 1], `h = (n - 1) q`, and the percentile is
//! `x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])`. So the median of an even
//! count is the mean of the two middle values, p0 is the minimum and p100 the maximum,
//! and a single value is every percentile. The mean is the arithmetic mean, computed
//! separately (Chronos reported the median as the mean).
//!
//! One sample per finished run (succeeded, or failed after its last attempt): the
//! duration of its last attempt. The last [`RECENT_RUNS`] samples are kept.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use drover_api::job_run::{DurationStats, JobStats};
use serde::{Deserialize, Serialize};

/// How many recent runs the duration statistics cover.
pub const RECENT_RUNS: usize = 100;

/// The `q`-quantile (`q` in [0, 1], clamped) of `sorted` (ascending, finite), by linear
/// interpolation (see the module docs); `None` when empty.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let h = last as f64 * q;
    let below = h.floor() as usize;
    let above = (below + 1).min(last);
    let (lo, hi) = (sorted[below], sorted[above]);
    Some(lo + (h - below as f64) * (hi - lo))
}

/// Count, median, mean, p75, p95 and p99 of `samples` (seconds; non-finite ones are
/// dropped); `None` when there is none.
pub fn duration_stats(samples: impl IntoIterator<Item = f64>) -> Option<DurationStats> {
    let mut sorted: Vec<f64> = samples.into_iter().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    let mean = sorted.iter().sum::<f64>() / count as f64;
    Some(DurationStats {
        count,
        median: percentile(&sorted, 0.5)?,
        mean,
        p75: percentile(&sorted, 0.75)?,
        p95: percentile(&sorted, 0.95)?,
        p99: percentile(&sorted, 0.99)?,
    })
}

/// The statistics a job accumulates, persisted with it: counts from all history, the
/// recent durations as samples.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStats {
    /// Runs that succeeded, and "mark success"es.
    pub success_count: u64,
    /// Runs that failed after their last attempt.
    pub error_count: u64,
    /// Runs killed.
    pub killed_count: u64,
    /// Runs skipped.
    pub skipped_count: u64,
    /// When a run last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// When a run last failed.
    pub last_error: Option<DateTime<Utc>>,
    /// Durations in seconds of the last [`RECENT_RUNS`] finished runs, oldest first.
    pub recent_durations: VecDeque<f64>,
}

impl RunStats {
    /// A run succeeded at `at`, having taken `duration` seconds if known.
    pub fn record_success(&mut self, at: DateTime<Utc>, duration: Option<f64>) {
        self.success_count += 1;
        self.last_success = Some(self.last_success.map_or(at, |l| l.max(at)));
        self.push_duration(duration);
    }

    /// A run failed (after its last attempt) at `at`.
    pub fn record_error(&mut self, at: DateTime<Utc>, duration: Option<f64>) {
        self.error_count += 1;
        self.last_error = Some(self.last_error.map_or(at, |l| l.max(at)));
        self.push_duration(duration);
    }

    /// A run was killed.
    pub fn record_killed(&mut self) {
        self.killed_count += 1;
    }

    /// `n` runs were skipped.
    pub fn record_skipped(&mut self, n: u64) {
        self.skipped_count = self.skipped_count.saturating_add(n);
    }

    fn push_duration(&mut self, duration: Option<f64>) {
        if let Some(d) = duration.filter(|d| d.is_finite() && *d >= 0.0) {
            if self.recent_durations.len() >= RECENT_RUNS {
                self.recent_durations.pop_front();
            }
            self.recent_durations.push_back(d);
        }
    }

    /// The wire form.
    pub fn to_api(&self) -> JobStats {
        JobStats {
            success_count: self.success_count,
            error_count: self.error_count,
            killed_count: self.killed_count,
            skipped_count: self.skipped_count,
            last_success: self.last_success,
            last_error: self.last_error,
            durations: duration_stats(self.recent_durations.iter().copied()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn hand_computed_values() {
        // Durations 1..=10 and one outlier of 100 (11 values, sorted).
        // mean = (55 + 100) / 11 = 14.0909...; median: h = 10 * 0.5 = 5 -> x[5] = 6.
        // p75: h = 7.5 -> 8 + 0.5 * (9 - 8) = 8.5.
        // p95: h = 9.5 -> 10 + 0.5 * (100 - 10) = 55.
        // p99: h = 9.9 -> 10 + 0.9 * 90 = 91.
        let s = duration_stats([3.0, 1.0, 2.0, 100.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
        assert_eq!(s.count, 11);
        assert!(close(s.mean, 155.0 / 11.0), "{}", s.mean);
        assert!(close(s.median, 6.0));
        assert!(close(s.p75, 8.5));
        assert!(close(s.p95, 55.0));
        assert!(close(s.p99, 91.0));
        assert!(
            s.mean > 2.0 * s.median,
            "mean and median differ with an outlier"
        );

        // Even count: the median is the mean of the middle two.
        let s = duration_stats([10.0, 20.0, 30.0, 40.0]).unwrap();
        assert!(close(s.median, 25.0));
        // p75: h = 3 * 0.75 = 2.25 -> 30 + 0.25 * 10 = 32.5.
        assert!(close(s.p75, 32.5));
        // p99: h = 2.97 -> 30 + 0.97 * 10 = 39.7.
        assert!(close(s.p99, 39.7));

        let one = duration_stats([7.0]).unwrap();
        assert_eq!((one.median, one.mean, one.p99), (7.0, 7.0, 7.0));
        assert_eq!(duration_stats([]), None);
        assert_eq!(percentile(&[1.0, 2.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[1.0, 2.0], 1.0), Some(2.0));
    }

    #[test]
    fn only_recent_durations_but_all_counts() {
        let mut st = RunStats::default();
        let t = DateTime::<Utc>::UNIX_EPOCH;
        for i in 0..150 {
            st.record_success(t, Some(f64::from(i)));
        }
        st.record_error(t, None);
        let api = st.to_api();
        assert_eq!(api.success_count, 150);
        assert_eq!(api.error_count, 1);
        let d = api.durations.unwrap();
        assert_eq!(d.count, RECENT_RUNS);
        // The last 100 are 50..=149: median 99.5, mean 99.5.
        assert!(close(d.median, 99.5));
        assert!(close(d.mean, 99.5));
    }
}
