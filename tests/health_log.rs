//! What a pool tells `tracing`, as a subscriber prints it: the periodic
//! health line (gauges, rates, the busiest routes), and the events of
//! connects, evictions, timeouts and a route going down and up, each with
//! its route.

use leasehold_testkit::wait;

use leasehold::mock::MockConnector;
use leasehold::Pool;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wait::eventually;

/// What the process's subscriber printed so far.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

impl io::Write for Printed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The lines printed so far that contain `text`.
fn printed(text: &str) -> Vec<String> {
    static PRINTED: OnceLock<Printed> = OnceLock::new();
    let printed = PRINTED.get_or_init(|| {
        let printed = Printed::default();
        let writer = printed.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        printed
    });
    let bytes = printed.0.lock().unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| line.contains(text))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_health_line_comes_every_period_with_the_busiest_routes() {
    printed("");
    let pool = Pool::builder(MockConnector::<&str>::new())
        .name("logged")
        .health_log(Duration::from_millis(30))
        .build()
        .unwrap();
    let _held = pool.lease(&"db-a").unwrap();
    drop(pool.lease(&"db-b").unwrap());
    eventually("a health line with both routes", || {
        printed("pool logged: ").iter().any(|line| {
            line.contains("leasehold::health")
                && line.contains("1/25 leased, 1 idle, 0 waiting, 0 connecting")
                && line.contains("| \"db-a\" 1/5 leased, 0 idle")
                && line.contains("| \"db-b\" 0/5 leased, 1 idle")
        })
    });
    // The next period's line counts only its own leases.
    eventually("a line for a quiet period", || {
        printed("pool logged: ")
            .iter()
            .any(|line| line.contains("; 0 leases/s, 0% waited"))
    });
}

#[test]
fn connects_evictions_timeouts_and_a_route_down_are_told_with_their_route() {
    printed("");
    let connector = MockConnector::<&str>::new();
    let pool = Pool::builder(connector.clone())
        .max_per_route(1)
        .acquire_timeout(Duration::from_millis(10))
        .connect_backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    connector.fail_next(2, io::ErrorKind::ConnectionRefused);
    assert!(pool.lease(&"flaky").is_err());
    assert!(pool.lease(&"flaky").is_err());
    eventually("the route down", || {
        printed("route down after failed connects")
            .iter()
            .any(|line| line.contains("WARN") && line.contains("route=\"flaky\""))
    });
    eventually("the route back up", || {
        pool.lease(&"flaky").is_ok() && !printed("route up again").is_empty()
    });
    let held = pool.lease(&"flaky").unwrap();
    assert!(pool.lease(&"flaky").is_err());
    assert!(printed("acquire timed out")
        .iter()
        .any(|line| line.contains("route=\"flaky\"")));
    drop(held);
    assert!(printed("leasehold: connected")
        .iter()
        .any(|line| line.contains("route=\"flaky\"")));
    pool.close_idle(Duration::ZERO);
    assert!(printed("evicted an idle connection")
        .iter()
        .any(|line| line.contains("route=\"flaky\"") && line.contains("idle too long")));
}
