//! A lock-free histogram of durations: log-linear buckets (four per power
//! of two, 64 ns to about 275 s), recorded with one relaxed add per value
//! and read as a [`Histogram`] snapshot.
//!
//! A value falls in the bucket whose bounds hold it; quantiles read back
//! as the upper bound of their bucket, so they overstate by at most a
//! quarter (half a bucket's width on average). Sums are exact, so means
//! are too.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Bucket bounds grow by this many steps per power of two.
const STEPS_LOG2: u32 = 2;
const STEPS: usize = 1 << STEPS_LOG2;
/// The first bucket holds what is under `2^MIN_LOG2` ns (64 ns).
const MIN_LOG2: u32 = 6;
/// Powers of two covered above that: up to `2^(6 + 32)` ns, about 275 s.
const OCTAVES: usize = 32;
/// Below the range, the log-linear buckets, above the range.
pub(crate) const BUCKETS: usize = 1 + OCTAVES * STEPS + 1;

/// The bucket of `nanos`.
fn bucket(nanos: u64) -> usize {
    if nanos < 1 << MIN_LOG2 {
        return 0;
    }
    let log2 = 63 - nanos.leading_zeros();
    let octave = (log2 - MIN_LOG2) as usize;
    if octave >= OCTAVES {
        return BUCKETS - 1;
    }
    let step = ((nanos >> (log2 - STEPS_LOG2)) as usize) & (STEPS - 1);
    1 + octave * STEPS + step
}

/// The upper bound of bucket `index`, in nanoseconds (`u64::MAX` for the
/// last, which has none).
fn upper_bound(index: usize) -> u64 {
    if index == 0 {
        return 1 << MIN_LOG2;
    }
    if index >= BUCKETS - 1 {
        return u64::MAX;
    }
    let octave = (index - 1) / STEPS;
    let step = (index - 1) % STEPS;
    let log2 = MIN_LOG2 + octave as u32;
    ((STEPS + step + 1) as u64) << (log2 - STEPS_LOG2)
}

/// The recording side: atomic buckets.
pub(crate) struct Recorder {
    buckets: [AtomicU64; BUCKETS],
    /// Every value recorded, in nanoseconds (saturating at `u64::MAX`
    /// per value).
    sum: AtomicU64,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket(nanos)].fetch_add(1, Relaxed);
        self.sum.fetch_add(nanos, Relaxed);
    }

    /// Adds what this recorder holds to `into`.
    pub(crate) fn add_to(&self, into: &mut Histogram) {
        for (total, bucket) in into.buckets.iter_mut().zip(&self.buckets) {
            *total += bucket.load(Relaxed);
        }
        into.sum_nanos = into.sum_nanos.wrapping_add(self.sum.load(Relaxed));
    }
}

/// Durations as a pool recorded them (see [`Figures`](crate::Figures)):
/// how many, their sum, and how they spread.
///
/// ```
/// # let histogram = leasehold::Histogram::default();
/// if let Some(p99) = histogram.quantile(0.99) {
///     println!("{} waits, mean {:?}, p99 under {p99:?}", histogram.count(), histogram.mean());
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    buckets: Box<[u64; BUCKETS]>,
    sum_nanos: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: Box::new([0; BUCKETS]),
            sum_nanos: 0,
        }
    }
}

impl Histogram {
    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Their sum.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_nanos)
    }

    /// Their mean; zero when there are none.
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            count => Duration::from_nanos(self.sum_nanos / count),
        }
    }

    /// A duration at least as long as the fraction `q` (0 to 1) of the
    /// recorded ones, and at most a quarter longer than the longest of
    /// them (the upper bound of its bucket); `None` when nothing was
    /// recorded. Values past about 275 s read as `Duration::MAX`.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // The rank of the value sought, 1-based: at least the first.
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(match upper_bound(index) {
                    u64::MAX => Duration::MAX,
                    nanos => Duration::from_nanos(nanos),
                });
            }
        }
        None
    }

    /// The buckets that hold values, in order: each bucket's upper bound
    /// (`Duration::MAX` for the last, unbounded one) and how many values
    /// fell in it — what a Prometheus histogram's `le` buckets are made
    /// of, cumulated.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.bucket_bounds().filter(|&(_, n)| n > 0)
    }

    /// The values recorded after `earlier`, a read of the same histogram
    /// taken before this one.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut buckets = self.buckets.clone();
        for (n, before) in buckets.iter_mut().zip(earlier.buckets.iter()) {
            *n = n.saturating_sub(*before);
        }
        Histogram {
            buckets,
            sum_nanos: self.sum_nanos.saturating_sub(earlier.sum_nanos),
        }
    }

    /// Every bucket in order, empty ones too: its upper bound
    /// (`Duration::MAX` for the last) and its count.
    pub(crate) fn bucket_bounds(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets.iter().enumerate().map(|(index, &n)| {
            let bound = match upper_bound(index) {
                u64::MAX => Duration::MAX,
                nanos => Duration::from_nanos(nanos),
            };
            (bound, n)
        })
    }

    /// Adds `other`'s values to these.
    pub fn merge(&mut self, other: &Histogram) {
        for (total, n) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *total += n;
        }
        self.sum_nanos = self.sum_nanos.wrapping_add(other.sum_nanos);
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("mean", &self.mean())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values_and_grow_by_a_quarter() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(63), 0);
        assert_eq!(bucket(64), 1);
        assert_eq!(upper_bound(1), 80);
        assert_eq!(bucket(79), 1);
        assert_eq!(bucket(80), 2);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for nanos in [
            64,
            65,
            100,
            1_000,
            4_095,
            4_096,
            999_999,
            1 << 37,
            (1 << 38) - 1,
        ] {
            let index = bucket(nanos);
            assert!(nanos < upper_bound(index), "{nanos} under its bound");
            assert!(
                nanos >= upper_bound(index - 1),
                "{nanos} over the last bound"
            );
            let width = upper_bound(index) - upper_bound(index - 1);
            assert!(
                width * 4 <= upper_bound(index - 1).max(64),
                "{nanos}: bucket too wide"
            );
        }
        assert_eq!(bucket(1 << 38), BUCKETS - 1);
    }

    #[test]
    fn quantiles_count_and_means_are_read_back() {
        let recorder = Recorder::new();
        for ms in 1..=100 {
            recorder.record(Duration::from_millis(ms));
        }
        let mut histogram = Histogram::default();
        recorder.add_to(&mut histogram);
        assert_eq!(histogram.count(), 100);
        assert_eq!(histogram.sum(), Duration::from_millis(5050));
        assert_eq!(histogram.mean(), Duration::from_micros(50_500));
        for (q, ms) in [(0.5, 50), (0.99, 99), (1.0, 100), (0.0, 1)] {
            let read = histogram.quantile(q).unwrap();
            let exact = Duration::from_millis(ms);
            assert!(
                read > exact && read <= exact * 5 / 4,
                "q{q}: {read:?} for {exact:?}"
            );
        }
        assert_eq!(histogram.buckets().map(|(_, n)| n).sum::<u64>(), 100);
        let mut twice = histogram.clone();
        twice.merge(&histogram);
        assert_eq!(twice.count(), 200);
        assert_eq!(twice.since(&histogram), histogram);
        assert_eq!(histogram.since(&twice).count(), 0);
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(Histogram::default().mean(), Duration::ZERO);
    }

    #[test]
    fn durations_past_the_range_are_kept() {
        let recorder = Recorder::new();
        recorder.record(Duration::MAX);
        recorder.record(Duration::from_secs(1000));
        let mut histogram = Histogram::default();
        recorder.add_to(&mut histogram);
        assert_eq!(histogram.count(), 2);
        assert_eq!(histogram.quantile(0.5), Some(Duration::MAX));
    }
}
