//! Sizing advice from live figures, by Little's law: the connections a
//! route keeps busy on average are its arrival rate times the mean hold
//! time (`L = λ × W`). Over a window of [`Figures`], [`Sizing`] reports
//! `λ`, the mean and p99 hold, `L`, what the p99 hold would need, the
//! configured cap and a recommendation, and warns of waits and timeouts.
//!
//! The recommendation is `L + 3√L`, rounded up, at least 1: the
//! square-root staffing rule of queueing theory. With independent
//! (Poisson) arrivals the share of requests that find every connection
//! busy is then about 2 % at `L` = 1 (Erlang C, 4 connections), under
//! 0.6 % from `L` = 2 on, and falls towards 0.15 % as the load grows,
//! with headroom that shrinks relative to `L` (12 for `L` = 5, 130 for
//! `L` = 100). `λ × p99 hold` is reported beside it, as the load if every
//! lease held as long as the slowest in a hundred. Hold times are sampled (see
//! [`Builder::sample_every`](crate::Builder::sample_every)); with no hold
//! timed in the window the advice says so instead of guessing.

use super::report::Short;
use super::Figures;
use std::fmt;
use std::time::Duration;

/// Little's-law sizing of a pool or a route over a window of its figures:
/// from [`Pool::sizing`](crate::Pool::sizing), or [`Sizing::of`] on two
/// reads of [`Pool::figures`](crate::Pool::figures) subtracted with
/// [`Figures::since`].
///
/// Its `Display` reads as advice:
///
/// ```text
/// needs 5 at the current load (2500 leases/s × 2.0 ms mean hold); max 20 gives 4.0× headroom;
/// at the p99 hold (5.6 ms) it would need 14; recommended max 14
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Sizing {
    /// How long the window lasted.
    pub window: Duration,
    /// Leases served in the window.
    pub leases: u64,
    /// Leases per second: `λ`.
    pub arrival_rate: f64,
    /// The mean hold time, from the holds timed in the window: `W`.
    pub mean_hold: Duration,
    /// The p99 hold time (to a quarter), `None` if no hold was timed.
    pub p99_hold: Option<Duration>,
    /// Connections in use on average: `L = λ × W`.
    pub in_use: f64,
    /// Connections in use if every lease held for the p99 hold time.
    pub in_use_at_p99: f64,
    /// The cap configured now.
    pub max: usize,
    /// The cap the rule in the module docs recommends: `L + 3√L`.
    pub recommended: usize,
    /// Leases that waited (for a return or a connect).
    pub waited: u64,
    /// The p99 of those waits, `None` if none waited.
    pub p99_wait: Option<Duration>,
    /// Requests that timed out waiting.
    pub timeouts: u64,
    /// Requests refused without waiting (`try_lease`).
    pub exhausted: u64,
}

impl Sizing {
    /// The sizing for a window of figures: `window` is a later read minus
    /// an earlier one ([`Figures::since`]), or a read since the pool
    /// started.
    pub fn of(window: &Figures) -> Sizing {
        let seconds = window.elapsed.as_secs_f64();
        let leases = window.leases();
        let arrival_rate = if seconds > 0.0 {
            leases as f64 / seconds
        } else {
            0.0
        };
        let mean_hold = window.hold.mean();
        let p99_hold = window.hold.quantile(0.99);
        let in_use = arrival_rate * mean_hold.as_secs_f64();
        let in_use_at_p99 = arrival_rate * p99_hold.unwrap_or_default().as_secs_f64();
        let recommended = (in_use + 3.0 * in_use.sqrt()).ceil().max(1.0);
        let mut waits = window.wait_queued.clone();
        waits.merge(&window.wait_connect);
        Sizing {
            window: window.elapsed,
            leases,
            arrival_rate,
            mean_hold,
            p99_hold,
            in_use,
            in_use_at_p99,
            max: window.stats.max,
            // Saturating: a recommendation past usize is usize::MAX.
            recommended: recommended as usize,
            waited: window.waits + window.connect_waits,
            p99_wait: waits.quantile(0.99),
            timeouts: window.timeouts,
            exhausted: window.exhausted,
        }
    }

    /// The cap over the connections in use on average (infinite when none
    /// are).
    pub fn headroom(&self) -> f64 {
        self.max as f64 / self.in_use
    }

    /// Whether requests waited, timed out or were refused in the window.
    pub fn is_strained(&self) -> bool {
        self.waited > 0 || self.timeouts > 0 || self.exhausted > 0
    }
}

/// [`Pool::sizing`](crate::Pool::sizing): the pool's and each route's
/// [`Sizing`] over the same window. Its `Display` writes the pool's line,
/// then one per route.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SizingReport<R> {
    /// Every route together, against the total cap.
    pub total: Sizing,
    /// Each route with figures, against its own cap.
    pub routes: Vec<(R, Sizing)>,
}

impl<R: fmt::Debug> fmt::Display for SizingReport<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool: {}", self.total)?;
        for (route, sizing) in &self.routes {
            write!(f, "\n{route:?}: {sizing}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Sizing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.leases == 0 {
            return write!(
                f,
                "no leases in {}: no load to size for",
                Short(self.window)
            );
        }
        let Some(p99_hold) = self.p99_hold else {
            return write!(
                f,
                "{:.0} leases/s, but no hold was timed in {}: read again after more leases",
                self.arrival_rate,
                Short(self.window)
            );
        };
        write!(
            f,
            "needs {:.0} at the current load ({:.0} leases/s × {} mean hold); ",
            self.in_use.ceil(),
            self.arrival_rate,
            Short(self.mean_hold)
        )?;
        if self.in_use > 0.0 {
            write!(
                f,
                "max {} gives {:.1}× headroom; ",
                self.max,
                self.headroom()
            )?;
        }
        write!(
            f,
            "at the p99 hold ({}) it would need {:.0}; recommended max {}",
            Short(p99_hold),
            self.in_use_at_p99.ceil(),
            self.recommended
        )?;
        if self.waited > 0 {
            let share = 100.0 * self.waited as f64 / self.leases as f64;
            write!(f, ". {share:.1}% of leases waited")?;
            if let Some(p99) = self.p99_wait {
                write!(f, " (p99 {})", Short(p99))?;
            }
        }
        if self.timeouts > 0 {
            write!(f, ". {} timed out", self.timeouts)?;
        }
        if self.exhausted > 0 {
            write!(f, ". {} refused at once", self.exhausted)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::histogram::Recorder;
    use crate::figures::Histogram;

    fn histogram(values: impl IntoIterator<Item = Duration>) -> Histogram {
        let recorder = Recorder::new();
        for value in values {
            recorder.record(value);
        }
        let mut histogram = Histogram::default();
        recorder.add_to(&mut histogram);
        histogram
    }

    /// 10 s at 2500 leases/s, each held 2 ms but one in a hundred held
    /// 20 ms, a cap of 20, with 10 waits.
    fn window() -> Figures {
        let holds = (0..100).map(|i| Duration::from_millis(if i == 99 { 20 } else { 2 }));
        let mut figures = Figures {
            hits: 24_990,
            waits: 10,
            elapsed: Duration::from_secs(10),
            hold: histogram(holds),
            wait_queued: histogram((0..10).map(|_| Duration::from_millis(3))),
            ..Figures::default()
        };
        figures.stats.max = 20;
        figures
    }

    #[test]
    fn littles_law_from_rate_and_hold() {
        let sizing = Sizing::of(&window());
        assert_eq!(sizing.leases, 25_000);
        assert_eq!(sizing.arrival_rate, 2500.0);
        // Mean hold (99 × 2 ms + 20 ms) / 100 = 2.18 ms: 5.45 in use.
        assert_eq!(sizing.mean_hold, Duration::from_micros(2180));
        assert!((sizing.in_use - 5.45).abs() < 1e-9, "{}", sizing.in_use);
        assert!((sizing.headroom() - 20.0 / 5.45).abs() < 1e-9);
        // The p99 hold is the 99th of 100 values, 2 ms, read as its
        // bucket's upper bound (2.097 ms): 5.24 in use at p99.
        let p99 = sizing.p99_hold.unwrap();
        assert!(p99 >= Duration::from_millis(2) && p99 <= Duration::from_micros(2500));
        assert_eq!(
            sizing.recommended, 13,
            "5.45 + 3 × √5.45 = 12.45, rounded up"
        );
        assert_eq!((sizing.waited, sizing.timeouts), (10, 0));
        assert!(sizing.is_strained());
        assert_eq!(
            sizing.to_string(),
            format!(
                "needs 6 at the current load (2500 leases/s × 2.2 ms mean hold); max 20 gives \
                 3.7× headroom; at the p99 hold ({}) it would need 6; recommended max 13. \
                 0.0% of leases waited (p99 {})",
                Short(p99),
                Short(sizing.p99_wait.unwrap())
            )
        );
    }

    #[test]
    fn headroom_shrinks_relative_to_the_load_as_it_grows() {
        // 10 000 leases/s held 10 ms: 100 in use, 130 recommended.
        let figures = Figures {
            hits: 100_000,
            elapsed: Duration::from_secs(10),
            hold: histogram((0..10).map(|_| Duration::from_millis(10))),
            ..Figures::default()
        };
        let sizing = Sizing::of(&figures);
        assert!((sizing.in_use - 100.0).abs() < 1e-9);
        assert_eq!(sizing.recommended, 130);
        // A tenth of the load: 10 in use, 20 recommended (10 + 9.49).
        let figures = Figures {
            hits: 10_000,
            ..figures
        };
        assert_eq!(Sizing::of(&figures).recommended, 20);
    }

    #[test]
    fn no_load_and_no_sample_say_so() {
        let idle = Sizing::of(&Figures {
            elapsed: Duration::from_secs(1),
            ..Figures::default()
        });
        assert_eq!(idle.recommended, 1);
        assert!(idle.to_string().starts_with("no leases in 1.00 s"));
        let unsampled = Sizing::of(&Figures {
            hits: 5,
            elapsed: Duration::from_secs(1),
            ..Figures::default()
        });
        assert!(unsampled.to_string().contains("no hold was timed"));
    }
}
