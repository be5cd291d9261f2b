//! Summary statistics over latency samples, as pure functions.
//!
//! Conventions (also stated in the API's `method` fields):
//! - percentiles use the **nearest-rank** method: the p-th percentile of `n` sorted samples is
//!   the sample at 1-based rank `ceil(p/100 * n)` (rank 1 for p = 0), so every percentile is a
//!   latency that was really observed;
//! - the standard deviation is the **sample** standard deviation (divisor `n - 1`); it is 0 for a
//!   single sample.

use serde::Serialize;

/// Name of the percentile method, reported in JSON.
pub const PERCENTILE_METHOD: &str = "nearest-rank";
/// Name of the standard deviation kind, reported in JSON.
pub const STDDEV_METHOD: &str = "sample (n-1)";

/// Summary of a set of latencies in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Sample standard deviation.
    pub stddev: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there is none (or any is not finite).
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            count: sorted.len(),
            mean: mean(&sorted)?,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            p50: percentile_sorted(&sorted, 50.0)?,
            p95: percentile_sorted(&sorted, 95.0)?,
            p99: percentile_sorted(&sorted, 99.0)?,
            stddev: sample_stddev(&sorted)?,
        })
    }
}

/// Arithmetic mean; `None` for no samples.
#[allow(clippy::cast_precision_loss)] // sample counts are far below 2^52
pub fn mean(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    Some(samples.iter().sum::<f64>() / samples.len() as f64)
}

/// Sample standard deviation (divisor `n - 1`); 0 for one sample, `None` for none.
#[allow(clippy::cast_precision_loss)] // sample counts are far below 2^52
pub fn sample_stddev(samples: &[f64]) -> Option<f64> {
    let m = mean(samples)?;
    if samples.len() == 1 {
        return Some(0.0);
    }
    let ss: f64 = samples.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (samples.len() - 1) as f64).sqrt())
}

/// Nearest-rank percentile of already **sorted** samples, `p` in `0..=100`.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)] // n is small; the rank is clamped to 1..=n
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Rounds to microsecond resolution in milliseconds (3 decimals), for readable JSON.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_has_no_summary() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn known_values() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).expect("summary");
        assert_eq!(s.count, 5);
        assert!((s.mean - 3.0).abs() < 1e-12);
        assert!((s.min - 1.0).abs() < 1e-12);
        assert!((s.max - 5.0).abs() < 1e-12);
        assert!((s.p50 - 3.0).abs() < 1e-12);
        assert!((s.p95 - 5.0).abs() < 1e-12);
        assert!((s.p99 - 5.0).abs() < 1e-12);
        // sample stddev of 1..5 is sqrt(2.5)
        assert!((s.stddev - 2.5_f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn nearest_rank_of_ten() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(5.0));
        assert_eq!(percentile_sorted(&v, 95.0), Some(10.0));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(percentile_sorted(&v, 10.0), Some(1.0));
        assert_eq!(percentile_sorted(&v, 11.0), Some(2.0));
        assert_eq!(percentile_sorted(&v, 101.0), None);
    }

    #[test]
    fn single_sample() {
        let s = Summary::of(&[7.5]).expect("summary");
        assert!((s.stddev).abs() < 1e-12);
        assert!((s.p99 - 7.5).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn order_holds(v in proptest::collection::vec(0.0f64..10_000.0, 1..200)) {
            let s = Summary::of(&v).expect("summary");
            prop_assert!(s.min <= s.p50 && s.p50 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max);
            prop_assert!(s.min <= s.mean + 1e-9 && s.mean <= s.max + 1e-9);
            prop_assert!(s.stddev >= 0.0);
            prop_assert_eq!(s.count, v.len());
        }

        #[test]
        fn percentiles_are_observed(v in proptest::collection::vec(0.0f64..10_000.0, 1..100),
                                    p in 0.0f64..=100.0) {
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let x = percentile_sorted(&sorted, p).expect("percentile");
            prop_assert!(v.contains(&x));
        }

        #[test]
        fn shift_invariance(v in proptest::collection::vec(0.0f64..1000.0, 2..50), c in 0.0f64..1000.0) {
            let a = Summary::of(&v).expect("summary");
            let shifted: Vec<f64> = v.iter().map(|x| x + c).collect();
            let b = Summary::of(&shifted).expect("summary");
            prop_assert!((b.stddev - a.stddev).abs() < 1e-6);
            prop_assert!((b.mean - a.mean - c).abs() < 1e-6);
            prop_assert!((b.p50 - a.p50 - c).abs() < 1e-6);
        }
    }
}
