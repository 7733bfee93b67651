//! The `metrics` feature against a real exporter: a pool's figures
//! recorded into the `metrics` facade, scraped as Prometheus text from
//! metrics-exporter-prometheus, and checked series by series: the
//! OpenTelemetry names and labels, gauges, counters, histograms, on demand
//! and from the event loop's own period.

#![cfg(feature = "metrics")]

use leasehold_testkit::wait;

use leasehold::mock::MockConnector;
use leasehold::{Error, Pool};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;
use wait::eventually;

/// The process's recorder (a `metrics` recorder is global), with
/// histogram buckets so that they render as Prometheus histograms. Each
/// test installs it before its pool records anything: what is recorded
/// before a recorder is installed goes nowhere.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(&[1e-4, 1e-3, 1e-2, 1e-1, 1.0])
            .expect("valid buckets")
            .install_recorder()
            .expect("the only recorder of this process")
    })
}

fn scrape() -> String {
    recorder().render()
}

/// The value of the series `name` whose labels include `labels`; `None`
/// if there is none. Panics if several match.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, rest) = key.split_once('{').unwrap_or((key, ""));
        if metric != name {
            continue;
        }
        let has = |(k, v): &(&str, &str)| rest.contains(&format!("{k}=\"{v}\""));
        if labels.iter().all(has) {
            assert!(
                found.is_none(),
                "two series match {name} {labels:?}:\n{text}"
            );
            found = Some(value.parse().expect("a number"));
        }
    }
    found
}

#[test]
fn a_scrape_shows_the_pools_series_under_the_opentelemetry_names() {
    recorder();
    let pool = Pool::builder(MockConnector::<u8>::new())
        .name("scraped")
        .max_per_route(1)
        .acquire_timeout(Duration::from_millis(20))
        .sample_every(1)
        .metrics_every(Duration::MAX)
        .build()
        .unwrap();
    // A connect and two hits, then a refusal and a timeout while held.
    for _ in 0..3 {
        drop(pool.lease(&7).unwrap());
    }
    let held = pool.lease(&7).unwrap();
    assert!(matches!(pool.try_lease(&7), Err(Error::Exhausted(_))));
    assert!(matches!(pool.lease(&7), Err(Error::Timeout(_))));
    pool.export_metrics();
    let text = scrape();
    let pool_label = ("db_client_connection_pool_name", "scraped");
    let route = ("leasehold_route", "7");
    let of = |name: &str, more: &[(&str, &str)]| {
        let mut labels = vec![pool_label, route];
        labels.extend_from_slice(more);
        series(&text, name, &labels).unwrap_or_else(|| panic!("no {name} {more:?} in:\n{text}"))
    };
    let state = "db_client_connection_state";
    assert_eq!(of("db_client_connection_count", &[(state, "used")]), 1.0);
    assert_eq!(of("db_client_connection_count", &[(state, "idle")]), 0.0);
    assert_eq!(of("db_client_connection_max", &[]), 1.0);
    assert_eq!(of("db_client_connection_pending_requests", &[]), 0.0);
    assert_eq!(of("db_client_connection_timeouts", &[]), 1.0);
    assert_eq!(of("leasehold_exhausted", &[]), 1.0);
    let served = "leasehold_served";
    assert_eq!(of("leasehold_leases", &[(served, "hit")]), 3.0);
    assert_eq!(of("leasehold_leases", &[(served, "connect")]), 1.0);
    assert_eq!(of("leasehold_leases", &[(served, "queued")]), 0.0);
    assert_eq!(
        of("leasehold_connects", &[("leasehold_outcome", "made")]),
        1.0
    );
    // Histograms: every hit timed at sample_every(1), three holds over.
    assert_eq!(
        of("db_client_connection_wait_time_count", &[(served, "hit")]),
        3.0
    );
    assert_eq!(
        of(
            "db_client_connection_wait_time_count",
            &[(served, "connect")]
        ),
        1.0
    );
    assert_eq!(of("db_client_connection_use_time_count", &[]), 3.0);
    assert_eq!(of("db_client_connection_create_time_count", &[]), 1.0);
    let hits_under_a_second = of(
        "db_client_connection_wait_time_bucket",
        &[(served, "hit"), ("le", "1")],
    );
    assert_eq!(hits_under_a_second, 3.0);
    assert!(
        series(
            &text,
            "leasehold_closes",
            &[pool_label, ("leasehold_cause", "stale")]
        )
        .is_some(),
        "{text}"
    );

    // A second export adds only what was recorded since to histograms.
    drop(held);
    drop(pool.lease(&7).unwrap());
    pool.export_metrics();
    let text = scrape();
    let hits = series(
        &text,
        "db_client_connection_wait_time_count",
        &[pool_label, route, (served, "hit")],
    );
    assert_eq!(hits, Some(4.0));
    assert_eq!(
        series(
            &text,
            "db_client_connection_use_time_count",
            &[pool_label, route]
        ),
        Some(5.0)
    );
}

#[test]
fn the_event_loop_exports_every_period() {
    recorder();
    let pool = Pool::builder(MockConnector::<u8>::new())
        .name("periodic")
        .metrics_every(Duration::from_millis(20))
        .build()
        .unwrap();
    drop(pool.lease(&1).unwrap());
    eventually("the loop's export", || {
        series(
            &scrape(),
            "leasehold_leases",
            &[
                ("db_client_connection_pool_name", "periodic"),
                ("leasehold_served", "connect"),
            ],
        ) == Some(1.0)
    });
}
