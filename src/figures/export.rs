//! The `metrics` feature: the pool's figures recorded into the [`metrics`]
//! facade, under the names of OpenTelemetry's semantic conventions for
//! connection pools where there is one, so that any `metrics` exporter
//! (Prometheus, OpenTelemetry, StatsD…) publishes them.
//!
//! The pool's event loop records them every
//! [`metrics_every`](crate::Builder::metrics_every), and
//! [`Pool::export_metrics`](crate::Pool::export_metrics) on demand: gauges
//! are set, counters set to the pool's running totals, and histograms get
//! what was recorded since the last export (each value at its bucket's
//! midpoint). The hit path never touches the facade.
//!
//! The names and labels are listed at
//! [`Pool::export_metrics`](crate::Pool::export_metrics).

use super::{Figures, Histogram};
use metrics::{Label, Unit};
use std::collections::HashMap;
use std::fmt;
use std::sync::Once;

const POOL: &str = "db.client.connection.pool.name";
const ROUTE: &str = "leasehold.route";
const SERVED: &str = "leasehold.served";

/// What the last export sent of each route's histograms, to send only the
/// values recorded since.
#[derive(Default)]
pub(crate) struct Exporter {
    sent: HashMap<String, Figures>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("routes", &self.sent.len())
            .finish()
    }
}

/// Describes the metrics to the recorder, once per process.
fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        use metrics::{describe_counter, describe_gauge, describe_histogram};
        describe_gauge!(
            "db.client.connection.count",
            "Connections open, by state (idle or used)."
        );
        describe_gauge!("db.client.connection.max", "The most connections allowed.");
        describe_gauge!(
            "db.client.connection.pending_requests",
            "Requests waiting for a connection."
        );
        describe_counter!(
            "db.client.connection.timeouts",
            "Requests that timed out waiting for a connection."
        );
        describe_histogram!(
            "db.client.connection.wait_time",
            Unit::Seconds,
            "How long leases waited for a connection, by how they were served."
        );
        describe_histogram!(
            "db.client.connection.use_time",
            Unit::Seconds,
            "How long leases held their connections (sampled)."
        );
        describe_histogram!(
            "db.client.connection.create_time",
            Unit::Seconds,
            "How long connects took that made a connection."
        );
        describe_counter!(
            "leasehold.leases",
            "Leases served, by how they were served."
        );
        describe_counter!("leasehold.connects", "Connects, by outcome.");
        describe_counter!("leasehold.connects_started", "Connects begun.");
        describe_counter!("leasehold.exhausted", "Requests refused without waiting.");
        describe_counter!(
            "leasehold.closes",
            "Connections the pool closed on its own, by cause."
        );
    });
}

impl Exporter {
    /// Records the pool's figures: `total` for the pool-wide closes, each of
    /// `routes` for everything else.
    pub(crate) fn export<R: fmt::Debug>(
        &mut self,
        pool: &str,
        total: &Figures,
        routes: &[(R, Figures)],
    ) {
        describe();
        // Routes let go since the last export drop out of `sent`; their
        // series stay at their last values.
        let mut sent = std::mem::take(&mut self.sent);
        for (route, figures) in routes {
            let route = format!("{route:?}");
            let before = sent.remove(&route).unwrap_or_default();
            route_metrics(pool, &route, figures, &before);
            self.sent.insert(route, figures.clone());
        }
        let health = total.health;
        for (cause, count) in [
            ("stale", health.stale),
            ("idle", health.idle),
            ("expired", health.expired),
            ("invalid", health.invalid),
            ("broken", health.broken),
            ("rejected", health.rejected),
        ] {
            metrics::counter!("leasehold.closes", POOL => pool.to_owned(), "leasehold.cause" => cause)
                .absolute(count);
        }
    }
}

fn route_metrics(pool: &str, route: &str, now: &Figures, sent: &Figures) {
    let labels = || {
        vec![
            Label::new(POOL, pool.to_owned()),
            Label::new(ROUTE, route.to_owned()),
        ]
    };
    let with = |key: &'static str, value: &'static str| {
        let mut labels = labels();
        labels.push(Label::new(key, value));
        labels
    };
    let stats = now.stats;
    metrics::gauge!(
        "db.client.connection.count",
        with("db.client.connection.state", "idle")
    )
    .set(stats.idle as f64);
    metrics::gauge!(
        "db.client.connection.count",
        with("db.client.connection.state", "used")
    )
    .set(stats.leased as f64);
    metrics::gauge!("db.client.connection.max", labels()).set(stats.max as f64);
    metrics::gauge!("db.client.connection.pending_requests", labels()).set(stats.pending as f64);
    metrics::counter!("db.client.connection.timeouts", labels()).absolute(now.timeouts);
    metrics::counter!("leasehold.exhausted", labels()).absolute(now.exhausted);
    for (served, count, waits, waits_sent) in [
        ("hit", now.hits, &now.wait_hit, &sent.wait_hit),
        ("queued", now.waits, &now.wait_queued, &sent.wait_queued),
        (
            "connect",
            now.connect_waits,
            &now.wait_connect,
            &sent.wait_connect,
        ),
    ] {
        metrics::counter!("leasehold.leases", with(SERVED, served)).absolute(count);
        record(
            metrics::histogram!("db.client.connection.wait_time", with(SERVED, served)),
            &waits.since(waits_sent),
        );
    }
    metrics::counter!("leasehold.connects", with("leasehold.outcome", "made"))
        .absolute(now.connects);
    metrics::counter!("leasehold.connects", with("leasehold.outcome", "failed"))
        .absolute(now.connect_failures);
    record(
        metrics::histogram!("db.client.connection.use_time", labels()),
        &now.hold.since(&sent.hold),
    );
    record(
        metrics::histogram!("db.client.connection.create_time", labels()),
        &now.connect_time.since(&sent.connect_time),
    );
}

/// Records `new` values into `histogram`, each at its bucket's midpoint.
fn record(histogram: metrics::Histogram, new: &Histogram) {
    let mut lower = 0.0;
    for (upper, count) in new.bucket_bounds() {
        let upper = upper.as_secs_f64();
        // The last bucket has no bound: its values at its lower one.
        let value = if upper.is_finite() && upper < 1e9 {
            (lower + upper) / 2.0
        } else {
            lower
        };
        if count > 0 {
            histogram.record_many(value, count as usize);
        }
        lower = upper;
    }
}
