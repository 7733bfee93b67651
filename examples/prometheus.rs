//! A pool's figures in Prometheus: the `metrics` feature records them into
//! the `metrics` facade, metrics-exporter-prometheus renders them as the
//! text a Prometheus server scrapes. Leases against a loopback TCP server,
//! one request left to time out, then the scrape and the pool's sizing
//! advice.
//!
//! ```text
//! cargo run --example prometheus --features metrics
//! ```
//!
//! A service would serve the text on `/metrics` (the exporter's
//! `http-listener` feature, or its own HTTP server).

use leasehold::{Pool, TcpConnector};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = PrometheusBuilder::new()
        .set_buckets(&[1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0])?
        .install_recorder()?;

    // A server that answers each 5-byte request with "pong\n".
    let server = TcpListener::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?;
    thread::spawn(move || {
        for stream in server.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let mut request = [0; 5];
                while stream.read_exact(&mut request).is_ok() {
                    if stream.write_all(b"pong\n").is_err() {
                        break;
                    }
                }
            });
        }
    });

    let pool = Pool::builder(TcpConnector::new())
        .name("example")
        .max_per_route(2)
        .acquire_timeout(Duration::from_millis(50))
        .build()?;
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..500 {
                    let mut conn = pool.lease(&addr).expect("a lease");
                    conn.write_all(b"ping\n").expect("a request");
                    conn.read_exact(&mut [0; 5]).expect("a reply");
                }
            });
        }
    });
    // Both connections held: a third request times out.
    let (_a, _b) = (pool.lease(&addr)?, pool.lease(&addr)?);
    let timed_out = pool.lease(&addr).unwrap_err();
    println!("as expected: {timed_out}\n");

    pool.export_metrics();
    for line in metrics.render().lines() {
        if line.starts_with("db_client") || line.starts_with("leasehold") {
            println!("{line}");
        }
    }
    println!("\nsizing:\n{}", pool.sizing());
    Ok(())
}
