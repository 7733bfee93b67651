//! The periodic health line ([`Builder::health_log`](crate::Builder::health_log)):
//! the pool's state and the rates of the last period in one `tracing`
//! event, like HikariCP's housekeeper log, with the busiest routes.

use super::Figures;
use leasehold_policies::Stats;
use std::fmt::{self, Write};
use std::time::Duration;

/// At most this many routes are named in one line; the rest are counted.
const ROUTES_NAMED: usize = 8;

/// The line for `total` and `routes`, read now, with `window` the
/// figures of the period that ended (`total` minus the last read).
pub(crate) fn health_line<R: fmt::Debug>(
    name: &str,
    window: &Figures,
    routes: &mut [(R, Stats)],
) -> String {
    let stats = window.stats;
    let mut line = format!("pool {name}: ");
    gauges(&mut line, &stats);
    let seconds = window.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let _ = write!(
        line,
        "; {:.0} leases/s, {:.0}% waited",
        window.leases() as f64 / seconds,
        percent(window.waits + window.connect_waits, window.leases()),
    );
    let mut waits = window.wait_queued.clone();
    waits.merge(&window.wait_connect);
    if let Some(p99) = waits.quantile(0.99) {
        let _ = write!(line, " (p99 {})", Short(p99));
    }
    if window.hold.count() > 0 {
        let _ = write!(line, ", hold mean {}", Short(window.hold.mean()));
    }
    if window.timeouts > 0 {
        let _ = write!(line, ", {} timed out", window.timeouts);
    }
    if window.connects + window.connect_failures > 0 {
        let _ = write!(
            line,
            ", {} connects ({} failed)",
            window.connects + window.connect_failures,
            window.connect_failures
        );
    }
    let health = window.health;
    let closed = health.stale + health.idle + health.expired + health.broken + health.invalid;
    if closed > 0 {
        let _ = write!(
            line,
            ", closed {closed} (stale {}, idle {}, expired {}, broken {}, invalid {})",
            health.stale, health.idle, health.expired, health.broken, health.invalid
        );
    }
    // The busiest first: leased and waiting.
    routes.sort_by_key(|(_, stats)| std::cmp::Reverse(stats.leased + stats.pending));
    for (i, (route, stats)) in routes.iter().enumerate() {
        if i == ROUTES_NAMED {
            let _ = write!(line, " | {} more routes", routes.len() - ROUTES_NAMED);
            break;
        }
        let _ = write!(line, " | {route:?} ");
        gauges(&mut line, stats);
    }
    line
}

fn gauges(line: &mut String, stats: &Stats) {
    let _ = write!(
        line,
        "{}/{} leased, {} idle, {} waiting, {} connecting",
        stats.leased, stats.max, stats.idle, stats.pending, stats.connecting
    );
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// A duration in its most readable unit.
pub(crate) struct Short(pub(crate) Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        match nanos {
            0..=999 => write!(f, "{nanos} ns"),
            1_000..=999_999 => write!(f, "{:.1} µs", nanos as f64 / 1e3),
            1_000_000..=999_999_999 => write!(f, "{:.1} ms", nanos as f64 / 1e6),
            _ => write!(f, "{:.2} s", self.0.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_gauges_rates_and_the_busiest_routes() {
        let mut window = Figures {
            hits: 90,
            waits: 10,
            timeouts: 2,
            elapsed: Duration::from_secs(10),
            ..Figures::default()
        };
        (window.stats.leased, window.stats.idle) = (3, 2);
        (window.stats.max, window.stats.pending) = (25, 1);
        let route = |leased, max| {
            let mut stats = Stats::default();
            (stats.leased, stats.max) = (leased, max);
            stats
        };
        let mut routes: Vec<(u32, Stats)> =
            (0..10).map(|i| (i, route(i as usize % 3, 5))).collect();
        let line = health_line("db", &window, &mut routes);
        assert!(line.starts_with(
            "pool db: 3/25 leased, 2 idle, 1 waiting, 0 connecting; 10 leases/s, 10% waited, 2 timed out | 2 2/5 leased"
        ), "{line}");
        assert!(line.ends_with(" | 2 more routes"), "{line}");
        assert!(!line.contains('\n'));
    }
}
