//! What pooling TLS connections saves: one HTTP/1.1 `GET /` (2-byte body)
//! per iteration, from one thread, to the loopback TLS HTTP server of the
//! tests (`leasehold_testkit::http` with a rustls `ServerConfig`; TLS 1.3,
//! ring, an ECDSA P-256 certificate for `localhost` from a CA made at
//! start-up, which is the only one the clients trust):
//!
//! * (a) `pooled/strict`: lease from a `Pool<TlsConnector, Strict>`, send,
//!   read, give back — one connection, one handshake, reused throughout;
//! * (b) `new connection/full handshake`: a new TCP connection and rustls
//!   client connection per request, resumption off, closed with
//!   `close_notify` after the response. This is the honest "no pool"
//!   baseline: it is what a client without a pool does, with the same
//!   rustls settings as the connector (ring, safe default versions, the
//!   same roots), and none of the pool's costs (event-loop hand-off,
//!   background disposal) charged to the handshake;
//! * (c) `new connection/resumed`: the same with resumption on (one client
//!   configuration and its session cache kept across requests), so each
//!   handshake resumes a ticket from an earlier one — what pooling saves
//!   over resumption;
//! * (b') `new connection/full handshake via pool`: the connector itself,
//!   `session_cache(0)`, through a pool that is told to discard every
//!   connection: (b) plus the pool's connect and disposal path, as a
//!   cross-check of the connector against plain rustls.
//!
//! Client and server share the machine, so a handshake's time is both
//! sides' crypto; the server also starts a thread per accepted connection,
//! which (b), (b') and (c) pay and (a) does not. Outside the timing the
//! bench asserts that (a) made one connection, (b) and (b') only full
//! handshakes, and (c) only resumed ones (from the server's counters, and
//! the handshake kind the client reports). At the end it prints (a)'s
//! speed-up over (b) and (c) from its own mean times (warm-up included),
//! next to criterion's estimates. About 30 s in all.
//!
//! ```text
//! cargo bench --bench tls
//! ```

use leasehold_testkit::{http, pki};

use criterion::{Bencher, Criterion, Throughput};
use leasehold::rustls::{ClientConfig, HandshakeKind};
use leasehold::tls::{self, TlsConnector, TlsRoute};
use leasehold::{Pool, Strict};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The total time and iterations of one benchmark, warm-up included.
#[derive(Debug, Default)]
struct Mean {
    total: Duration,
    iters: u64,
}

impl Mean {
    /// The mean time per iteration, if it ran.
    fn per_iter(&self) -> Option<Duration> {
        (self.iters > 0).then(|| self.total / u32::try_from(self.iters).unwrap_or(u32::MAX))
    }
}

/// Times `op` for criterion, adding every batch to `mean`.
fn measure(b: &mut Bencher<'_>, mean: &mut Mean, mut op: impl FnMut()) {
    b.iter_custom(|iters| {
        let start = Instant::now();
        for _ in 0..iters {
            op();
        }
        let elapsed = start.elapsed();
        mean.total += elapsed;
        mean.iters += iters;
        elapsed
    });
}

/// One request on a new pool-less TLS connection made with `config`.
fn exchange(addr: SocketAddr, config: &Arc<ClientConfig>) -> http::TlsClient {
    let mut client = http::connect_tls(addr, "localhost", config).expect("TLS connect");
    let response = http::get(&mut client, "/").expect("response");
    assert_eq!(response.status, 200);
    client
}

/// The server's (full, resumed) handshake counts.
fn handshakes(server: &http::Server) -> (u64, u64) {
    (server.full_handshakes(), server.resumed_handshakes())
}

/// The (full, resumed) handshakes the server completed since `before`.
fn handshakes_since(server: &http::Server, before: (u64, u64)) -> (u64, u64) {
    let now = handshakes(server);
    (now.0 - before.0, now.1 - before.1)
}

/// A pool of one TLS connection that trusts only `ca`, remembering
/// `sessions` sessions for resumption.
fn one_connection_pool(ca: &pki::Authority, sessions: usize) -> Pool<TlsConnector, Strict> {
    let connector = TlsConnector::builder()
        .root_certificates(ca.roots())
        .session_cache(sessions)
        .build()
        .expect("connector");
    Pool::builder(connector)
        .max_total(1)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .expect("pool")
}

fn benches(c: &mut Criterion) {
    let ca = pki::Authority::new("leasehold tls bench CA");
    let cert = ca.server(&["localhost"], pki::Validity::Current);
    let server =
        http::Server::start(http::ServerConfig::default().tls(pki::server_config(&cert, None)))
            .expect("server");
    let addr = server.addr();
    let route = TlsRoute::new(addr, "localhost").expect("route");
    let mut group = c.benchmark_group("tls");
    group.throughput(Throughput::Elements(1));

    // (a) One pooled connection, reused.
    let mut pooled = Mean::default();
    {
        let pool = one_connection_pool(&ca, tls::DEFAULT_SESSION_CACHE);
        let before = handshakes(&server);
        {
            // The one connection, made outside the timing.
            let mut conn = pool.lease(&route).expect("lease");
            assert_eq!(conn.handshake_kind(), Some(HandshakeKind::Full));
            assert_eq!(http::get(&mut *conn, "/").expect("response").status, 200);
        }
        group.bench_function("pooled/strict", |b| {
            measure(b, &mut pooled, || {
                let mut conn = pool.lease(&route).expect("lease");
                let response = http::get(&mut *conn, "/").expect("response");
                assert_eq!(response.status, 200);
            })
        });
        assert_eq!(pool.stats().total.created, 1, "(a) reused one connection");
        assert_eq!(handshakes_since(&server, before), (1, 0));
    }

    // (b) A full handshake per request, without a pool.
    let mut full = Mean::default();
    {
        let config = pki::client_config(ca.roots(), 0);
        let before = handshakes(&server);
        group.bench_function("new connection/full handshake", |b| {
            measure(b, &mut full, || http::close_tls(exchange(addr, &config)))
        });
        assert_eq!(
            handshakes_since(&server, before),
            (full.iters, 0),
            "(b) does only full handshakes"
        );
    }

    // (c) A resumed handshake per request, without a pool.
    let mut resumed = Mean::default();
    {
        let config = pki::client_config(ca.roots(), 256);
        // The first connection is given tickets; the next resumes one.
        http::close_tls(exchange(addr, &config));
        let client = exchange(addr, &config);
        assert_eq!(client.conn.handshake_kind(), Some(HandshakeKind::Resumed));
        http::close_tls(client);
        let before = handshakes(&server);
        group.bench_function("new connection/resumed", |b| {
            measure(b, &mut resumed, || http::close_tls(exchange(addr, &config)))
        });
        assert_eq!(
            handshakes_since(&server, before),
            (0, resumed.iters),
            "(c) resumes every handshake"
        );
    }

    // (b') A full handshake per request through the connector: every
    // connection discarded, so each lease connects anew.
    {
        let pool = one_connection_pool(&ca, 0);
        let mut via_pool = Mean::default();
        let before = handshakes(&server);
        group.bench_function("new connection/full handshake via pool", |b| {
            measure(b, &mut via_pool, || {
                let mut conn = pool.lease(&route).expect("lease");
                let response = http::get(&mut *conn, "/").expect("response");
                assert_eq!(response.status, 200);
                conn.discard();
            })
        });
        assert_eq!(
            handshakes_since(&server, before),
            (via_pool.iters, 0),
            "(b') does only full handshakes"
        );
        if let (Some(via_pool), Some(full)) = (via_pool.per_iter(), full.per_iter()) {
            eprintln!(
                "\n(b') through the pool: {via_pool:.1?} per request, (b) without: {full:.1?}"
            );
        }
    }
    group.finish();

    if let (Some(a), Some(b), Some(c)) = (pooled.per_iter(), full.per_iter(), resumed.per_iter()) {
        let ratio = |x: Duration| x.as_secs_f64() / a.as_secs_f64();
        eprintln!(
            "\nmean per request: (a) pooled {a:.1?}, (b) full handshake {b:.1?}, (c) resumed {c:.1?}\n\
             (a) is {:.1}x faster than (b) and {:.1}x faster than (c)",
            ratio(b),
            ratio(c)
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .without_plots()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);
    benches(&mut c);
    c.final_summary();
}
