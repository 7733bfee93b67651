//! End to end: HTTP/1.1 `GET`s to a loopback keep-alive server (the
//! embedded server of the tests), one at a time from one thread:
//!
//! * `raw keep-alive`: one `TcpStream` reused for every request, no pool —
//!   the floor;
//! * `pooled/<policy>`: lease a connection, send the request, read the
//!   response, return it;
//! * `new connection`: connect, request, close — what the pool saves.
//!
//! Criterion reports each request's time; the pool's share of a request is
//! `pooled − raw`, and what it saves is `new connection ÷ pooled`.
//!
//! ```text
//! cargo bench --bench http
//! ```

use leasehold_testkit::http;

use criterion::{Criterion, Throughput};
use leasehold::{Policy, Pool, TcpConnector};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn pooled<P: Policy>(c: &mut Criterion, addr: SocketAddr) {
    let pool: Pool<TcpConnector, P> = Pool::builder(TcpConnector::new())
        .policy::<P>()
        .max_total(4)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .expect("valid config");
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("pooled/{}", P::NAME), |b| {
        b.iter(|| {
            let mut conn = pool.lease(&addr).expect("lease");
            let response = http::get(&mut *conn, "/").expect("response");
            assert_eq!(response.status, 200);
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let server = http::Server::start(http::ServerConfig::default()).expect("server");
    let addr = server.addr();
    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(1));
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    group.bench_function("raw keep-alive", |b| {
        b.iter(|| {
            let response = http::get(&mut stream, "/").expect("response");
            assert_eq!(response.status, 200);
        })
    });
    group.bench_function("new connection", |b| {
        b.iter(|| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let response = http::get(&mut stream, "/").expect("response");
            assert_eq!(response.status, 200);
        })
    });
    group.finish();
    drop(stream);
    pooled::<leasehold::Strict>(c, addr);
    pooled::<leasehold::Lax>(c, addr);
    pooled::<leasehold::Offlock>(c, addr);
}

fn main() {
    let mut c = Criterion::default()
        .without_plots()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    benches(&mut c);
    c.final_summary();
}
