//! `TlsConnector` on loopback, against rustls servers with certificates
//! made at test time: pooled reuse (one handshake for many leases), each
//! handshake failure with its exact error, idle connections the server
//! closes, session tickets that must not evict, identity isolation (SNI
//! names and client certificates), session resumption, ALPN, socket
//! timeouts, `close_notify` on disposal, and settings changed while the
//! pool runs (`swap`).

#![cfg(all(target_os = "linux", feature = "tls"))]

use leasehold_testkit::{fds, pki, tls_echo, wait};

use fds::Descriptors;
use leasehold::rustls::HandshakeKind;
use leasehold::tls::{ClientIdentity, TlsBuilder, TlsConnector, TlsRoute, TlsStream};
use leasehold::{Builder, Error, Lax, Offlock, Policy, Pool, Strict, TcpConnector, TlsError};
use pki::{server_config, Authority, Validity};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread;
use std::time::{Duration, Instant};
use tls_echo::{ping, EchoServer, Mode};
use wait::eventually;

/// Far longer than anything here should take: a failing route must fail
/// its waiters long before it.
const PATIENCE: Duration = Duration::from_secs(20);

/// Tests take it shared; the one that counts descriptors takes it alone.
static PROCESS: RwLock<()> = RwLock::new(());

fn shared_process() -> RwLockReadGuard<'static, ()> {
    PROCESS.read().unwrap_or_else(PoisonError::into_inner)
}

/// One CA for servers and clients, and a connector that trusts only it.
struct Setup {
    ca: Authority,
    connector: TlsConnector,
    _process: RwLockReadGuard<'static, ()>,
}

/// A connector that trusts only `ca`, with `more` settings.
fn trusting(ca: &Authority, more: impl FnOnce(TlsBuilder) -> TlsBuilder) -> TlsConnector {
    more(TlsConnector::builder().root_certificates(ca.roots()))
        .build()
        .unwrap()
}

/// A plain TLS echo server presenting `cert`.
fn serving(cert: &pki::Certified) -> EchoServer {
    EchoServer::start(Mode::Tls(server_config(cert, None)), None, Vec::new())
}

fn setup() -> Setup {
    let process = shared_process();
    let ca = Authority::new("leasehold test CA");
    let connector = trusting(&ca, |b| b);
    Setup {
        ca,
        connector,
        _process: process,
    }
}

fn pool<P: Policy>(connector: TlsConnector, per_route: usize) -> Pool<TlsConnector, P> {
    builder(connector, per_route).build().unwrap()
}

fn builder<P: Policy>(connector: TlsConnector, per_route: usize) -> Builder<TlsConnector, P> {
    Pool::builder(connector)
        .policy::<P>()
        .max_per_route(per_route)
        .max_total(64)
        .acquire_timeout(PATIENCE)
        .connect_timeout(PATIENCE)
}

/// A TLS server for `names`, issued by the setup's CA.
fn server(setup: &Setup, names: &[&str]) -> EchoServer {
    let cert = setup.ca.server(names, Validity::Current);
    serving(&cert)
}

/// A TLS server for `a.test` that agrees to `h2` or `http/1.1`.
fn alpn_server(setup: &Setup) -> EchoServer {
    let cert = setup.ca.server(&["a.test"], Validity::Current);
    let mut config = (*server_config(&cert, None)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    EchoServer::start(Mode::Tls(Arc::new(config)), None, Vec::new())
}

fn route(server: &EchoServer, name: &str) -> TlsRoute {
    TlsRoute::new(server.addr, name).unwrap()
}

/// The server-side connection number in a reply.
fn connection_of(reply: &str) -> usize {
    reply.split(' ').nth(1).unwrap().parse().unwrap()
}

fn pooled_reuse_does_one_handshake<P: Policy>() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let pool: Pool<TlsConnector, P> = pool(setup.connector.clone(), 1);
    let route = route(&server, "a.test");
    let mut connections = Vec::new();
    for _ in 0..100 {
        let mut lease = pool.lease(&route).unwrap();
        let reply = ping(&mut lease).unwrap();
        assert!(reply.ends_with(" a.test -"), "{reply}");
        connections.push(connection_of(&reply));
    }
    connections.dedup();
    assert_eq!(connections.len(), 1, "one connection served every lease");
    assert_eq!(server.seen.handshakes(), 1);
    assert_eq!(server.seen.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn strict_pooled_reuse_does_one_handshake() {
    pooled_reuse_does_one_handshake::<Strict>();
}

#[test]
fn lax_pooled_reuse_does_one_handshake() {
    pooled_reuse_does_one_handshake::<Lax>();
}

#[test]
fn offlock_pooled_reuse_does_one_handshake() {
    pooled_reuse_does_one_handshake::<Offlock>();
}

// ---------------------------------------------------------------------------
// Failures: each fails the route's waiting requests at once, with the cause
// ---------------------------------------------------------------------------

/// Four requests wait on `bad` at once (one connection allowed); each must
/// fail with an error `expected` accepts, long before the acquire timeout.
/// Then the capacity is free again and a good route on the same pool is
/// served.
fn fails_fast(
    pool: &Pool<TlsConnector, Strict>,
    bad: &TlsRoute,
    good: &TlsRoute,
    expected: impl Fn(&Error) -> bool + Sync,
) {
    let started = Instant::now();
    thread::scope(|s| {
        let waiters: Vec<_> = (0..4)
            .map(|_| s.spawn(|| pool.lease(bad).map(drop)))
            .collect();
        for waiter in waiters {
            let error = waiter
                .join()
                .unwrap()
                .expect_err("a lease on a failing route");
            assert!(expected(&error), "unexpected error: {error:?}");
        }
    });
    assert!(
        started.elapsed() < PATIENCE / 2,
        "the waiters failed only after {:?}",
        started.elapsed()
    );
    // The waiters are answered before the event loop (or the serializer)
    // finishes the operation that answered them: the capacity comes back a
    // moment later, and must not stay taken.
    eventually("the failing route to give its capacity back", || {
        let stats = pool.route_stats(bad);
        (stats.leased, stats.idle, stats.pending, stats.connecting) == (0, 0, 0, 0)
    });
    let mut lease = pool.lease(good).unwrap();
    assert!(ping(&mut lease).unwrap().starts_with("pong "));
}

/// A pool over `setup`'s connector, one connection per route, no backoff
/// (so that every failure is the handshake's own), and a healthy route.
fn failing_pool(setup: &Setup) -> (Pool<TlsConnector, Strict>, EchoServer, TlsRoute) {
    failing_pool_with(setup, PATIENCE)
}

fn failing_pool_with(
    setup: &Setup,
    connect_timeout: Duration,
) -> (Pool<TlsConnector, Strict>, EchoServer, TlsRoute) {
    let pool = builder(setup.connector.clone(), 1)
        .connect_timeout(connect_timeout)
        .connect_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let good = server(setup, &["good.test"]);
    let route = route(&good, "good.test");
    (pool, good, route)
}

fn tls_error(error: &Error) -> Option<&TlsError> {
    match error {
        Error::Tls { source, .. } => Some(source),
        _ => None,
    }
}

#[test]
fn untrusted_certificate_fails_the_route() {
    let setup = setup();
    let (pool, _good, good) = failing_pool(&setup);
    let stranger = Authority::new("someone else's CA");
    let cert = stranger.server(&["a.test"], Validity::Current);
    let server = serving(&cert);
    let bad = route(&server, "a.test");
    fails_fast(&pool, &bad, &good, |e| {
        tls_error(e)
            == Some(&TlsError::UntrustedCertificate(
                "invalid peer certificate: UnknownIssuer".into(),
            ))
    });
    assert_eq!(server.seen.handshakes(), 0);
}

#[test]
fn name_mismatch_fails_the_route() {
    let setup = setup();
    let (pool, _good, good) = failing_pool(&setup);
    let server = server(&setup, &["a.test"]);
    let bad = route(&server, "b.test");
    fails_fast(&pool, &bad, &good, |e| {
        matches!(tls_error(e), Some(TlsError::NameMismatch(why))
            if why.contains("\"b.test\"") && why.contains("a.test"))
    });
    let error = pool.lease(&bad).unwrap_err().to_string();
    let expected = format!(
        "TLS handshake with route tls://b.test@{} failed: \
         the server's certificate is not for this host: ",
        server.addr
    );
    assert!(error.starts_with(&expected), "{error}");
}

#[test]
fn expired_certificate_fails_the_route() {
    let setup = setup();
    let (pool, _good, good) = failing_pool(&setup);
    let cert = setup.ca.server(&["a.test"], Validity::Expired);
    let server = serving(&cert);
    let bad = route(&server, "a.test");
    fails_fast(&pool, &bad, &good, |e| {
        matches!(tls_error(e), Some(TlsError::CertificateExpired(why))
            if why.starts_with("invalid peer certificate: certificate expired"))
    });
}

#[test]
fn plaintext_server_fails_the_route() {
    let setup = setup();
    let (pool, _good, good) = failing_pool(&setup);
    let server = EchoServer::start(Mode::Plaintext, None, Vec::new());
    let bad = route(&server, "a.test");
    fails_fast(&pool, &bad, &good, |e| {
        tls_error(e)
            == Some(&TlsError::NotTls(
                "received corrupt message of type InvalidContentType".into(),
            ))
    });
}

#[test]
fn handshake_timeout_fails_the_route() {
    let setup = setup();
    let (pool, _good, good) = failing_pool_with(&setup, Duration::from_millis(200));
    let server = EchoServer::start(Mode::Silent, None, Vec::new());
    let bad = route(&server, "a.test");
    fails_fast(&pool, &bad, &good, |e| match e {
        Error::ConnectTimeout { source, .. } => {
            // Requests that waited while it failed have that noted after it.
            source
                .to_string()
                .starts_with("connect timed out after 200ms (TLS handshake under way)")
        }
        _ => false,
    });
}

// ---------------------------------------------------------------------------
// Idle connections: closed by the server, or just sent session tickets
// ---------------------------------------------------------------------------

#[test]
fn connections_the_server_closes_while_idle_are_evicted_without_failures() {
    let setup = setup();
    let cert = setup.ca.server(&["a.test"], Validity::Current);
    let idle_close = Duration::from_millis(150);
    let server = EchoServer::start(
        Mode::Tls(server_config(&cert, None)),
        Some(idle_close),
        Vec::new(),
    );
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 4);
    let route = route(&server, "a.test");
    let burst = |pool: &Pool<TlsConnector, Strict>| {
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let mut lease = pool.lease(&route).unwrap();
                        ping(&mut lease).expect("a request on a pooled connection");
                    }
                });
            }
        });
    };
    burst(&pool);
    assert!(pool.route_stats(&route).idle > 0);
    // The server closes each idle connection; the event loop sees every
    // close_notify and evicts the connection before anyone leases it. (The
    // idle gauge alone can read 0 while an eviction pass has the survivors
    // in hand: the count of evictions is what settles.)
    let accepted = || server.seen.accepted.load(Ordering::SeqCst);
    eventually("every connection to be evicted as stale", || {
        pool.health().stale == accepted() as u64 && pool.route_stats(&route).idle == 0
    });
    let opened = accepted();
    assert_eq!(server.seen.idle_closes.load(Ordering::SeqCst), opened);
    burst(&pool);
    assert!(server.seen.accepted.load(Ordering::SeqCst) > opened);
}

#[test]
fn session_tickets_do_not_evict_an_idle_connection() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 1);
    let route = route(&server, "a.test");
    // Leased and returned before anything is read: the TLS 1.3 server's
    // tickets arrive while the connection is idle.
    drop(pool.lease(&route).unwrap());
    eventually("the server to finish its handshake", || {
        server.seen.handshakes() == 1
    });
    thread::sleep(Duration::from_millis(100));
    assert_eq!(pool.route_stats(&route).idle, 1, "evicted for its tickets");
    // Long enough for the loop to probe it and watch its bytes too.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(pool.route_stats(&route).idle, 1, "evicted once armed");
    let mut lease = pool.lease(&route).unwrap();
    assert_eq!(connection_of(&ping(&mut lease).unwrap()), 1);
    assert_eq!(server.seen.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn unread_application_data_makes_a_connection_unfit() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 1);
    let route = route(&server, "a.test");
    let mut lease = pool.lease(&route).unwrap();
    ping(&mut lease).unwrap();
    // A request whose reply nobody reads: the next holder would read it.
    lease.write_all(b"ping\n").unwrap();
    drop(lease);
    eventually("the idle connections to be evicted", || {
        pool.route_stats(&route).idle == 0
    });
    let mut lease = pool.lease(&route).unwrap();
    assert_eq!(connection_of(&ping(&mut lease).unwrap()), 2);
}

/// A reply read only in part leaves decrypted bytes in the session: the
/// return finds the connection broken and closes it at once.
#[test]
fn a_half_read_reply_is_broken_at_return() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 1);
    let route = route(&server, "a.test");
    let mut lease = pool.lease(&route).unwrap();
    assert_eq!(connection_of(&ping(&mut lease).unwrap()), 1);
    drop(lease);
    assert_eq!(pool.health().broken, 0, "a whole reply read: kept");
    let mut lease = pool.lease(&route).unwrap();
    lease.write_all(b"ping\n").unwrap();
    let mut first = [0u8; 1];
    lease.read_exact(&mut first).unwrap();
    drop(lease);
    assert_eq!(pool.health().broken, 1);
    assert_eq!(pool.route_stats(&route).idle, 0, "closed, not kept");
    let mut lease = pool.lease(&route).unwrap();
    assert_eq!(connection_of(&ping(&mut lease).unwrap()), 2);
}

#[test]
fn disposal_sends_close_notify() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 2);
    let route = route(&server, "a.test");
    let mut lease = pool.lease(&route).unwrap();
    ping(&mut lease).unwrap();
    lease.discard();
    eventually("a close_notify", || {
        server.seen.clean_closes.load(Ordering::SeqCst) == 1
    });
    let mut lease = pool.lease(&route).unwrap();
    ping(&mut lease).unwrap();
    drop(lease);
    pool.shutdown();
    eventually("a close_notify", || {
        server.seen.clean_closes.load(Ordering::SeqCst) == 2
    });
}

// ---------------------------------------------------------------------------
// Identity: server names and client certificates never share connections
// ---------------------------------------------------------------------------

#[test]
fn routes_to_one_address_never_share_connections_across_names_or_identities() {
    let setup = setup();
    let cert = setup.ca.server(&["a.test", "b.test"], Validity::Current);
    let (x, y) = (setup.ca.client("client-x"), setup.ca.client("client-y"));
    let names = vec![
        (x.chain[0].clone(), "client-x".to_owned()),
        (y.chain[0].clone(), "client-y".to_owned()),
    ];
    let config = server_config(&cert, Some(&setup.ca));
    let server = EchoServer::start(Mode::Tls(config), None, names);
    let connector = setup.connector.clone();
    let as_x = connector.client_identity(x.chain, x.key).unwrap();
    let as_y = connector.client_identity(y.chain, y.key).unwrap();
    assert_ne!(as_x, as_y);
    assert_eq!(as_x, as_x.clone());
    // (route, the SNI name and client name the server must see on it)
    let routes: Vec<(TlsRoute, &str, &str)> = vec![
        (route(&server, "a.test"), "a.test", "-"),
        (route(&server, "b.test"), "b.test", "-"),
        (
            route(&server, "a.test").with_identity(as_x.clone()),
            "a.test",
            "client-x",
        ),
        (
            route(&server, "a.test").with_identity(as_y.clone()),
            "a.test",
            "client-y",
        ),
        (
            route(&server, "b.test").with_identity(as_x),
            "b.test",
            "client-x",
        ),
    ];
    let pool: Pool<TlsConnector, Lax> = pool(connector, 2);
    // Which route each server-side connection served.
    let served: Mutex<HashMap<usize, usize>> = Mutex::new(HashMap::new());
    thread::scope(|s| {
        for t in 0..6 {
            let (pool, routes, served) = (&pool, &routes, &served);
            s.spawn(move || {
                for i in 0..60 {
                    let which = (t * 7 + i * 3) % routes.len();
                    let (route, sni, client) = &routes[which];
                    let mut lease = pool.lease(route).unwrap();
                    let reply = ping(&mut lease).unwrap();
                    let fields: Vec<&str> = reply.split(' ').collect();
                    assert_eq!(&fields[2..], [*sni, *client], "{route:?} got {reply}");
                    let first = *served
                        .lock()
                        .unwrap()
                        .entry(connection_of(&reply))
                        .or_insert(which);
                    assert_eq!(first, which, "one connection served two routes");
                }
            });
        }
    });
    let served = served.into_inner().unwrap();
    assert_eq!(
        served
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        routes.len()
    );
    assert!(served.len() <= 2 * routes.len());
}

#[test]
fn an_identity_from_another_connector_is_refused() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let other = trusting(&setup.ca, |b| b);
    let x = setup.ca.client("client-x");
    let foreign = other.client_identity(x.chain, x.key).unwrap();
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 1);
    let route = route(&server, "a.test").with_identity(foreign);
    match pool.lease(&route) {
        Err(Error::Connect { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput);
            assert!(source
                .to_string()
                .ends_with("was made by another TlsConnector"));
        }
        other => panic!("expected a refused identity, got {other:?}"),
    }
    assert_eq!(server.seen.accepted.load(Ordering::SeqCst), 0);
}

#[test]
fn connection_states_are_kept_apart_on_one_tls_route() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 3);
    let route = route(&server, "a.test");
    let alice = leasehold::State::new("alice");
    let mut lease = pool.lease_with_state(&route, &alice).unwrap();
    let as_alice = connection_of(&ping(&mut lease).unwrap());
    drop(lease);
    let mut lease = pool.lease(&route).unwrap();
    assert_ne!(connection_of(&ping(&mut lease).unwrap()), as_alice);
    drop(lease);
    let mut lease = pool.lease_with_state(&route, &alice).unwrap();
    assert_eq!(connection_of(&ping(&mut lease).unwrap()), as_alice);
}

// ---------------------------------------------------------------------------
// Resumption, ALPN, socket timeouts
// ---------------------------------------------------------------------------

/// Opens a connection on `first`, then one on `second` while the first
/// (which has read its tickets) is held, and tells how each shook hands.
fn two_connects(
    pool: &Pool<TlsConnector, Strict>,
    first: &TlsRoute,
    second: &TlsRoute,
) -> (HandshakeKind, HandshakeKind) {
    let mut one = pool.lease(first).unwrap();
    ping(&mut one).unwrap();
    let mut two = pool.lease(second).unwrap();
    ping(&mut two).unwrap();
    (one.handshake_kind().unwrap(), two.handshake_kind().unwrap())
}

#[test]
fn a_second_connection_resumes_the_session() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 2);
    let route = route(&server, "a.test");
    assert_eq!(
        two_connects(&pool, &route, &route),
        (HandshakeKind::Full, HandshakeKind::Resumed)
    );
    assert_eq!(server.seen.full_handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(server.seen.resumed_handshakes.load(Ordering::SeqCst), 1);
}

#[test]
fn resumption_can_be_turned_off() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let connector = trusting(&setup.ca, |b| b.session_cache(0));
    let pool: Pool<TlsConnector, Strict> = pool(connector, 2);
    let route = route(&server, "a.test");
    assert_eq!(
        two_connects(&pool, &route, &route),
        (HandshakeKind::Full, HandshakeKind::Full)
    );
    assert_eq!(server.seen.resumed_handshakes.load(Ordering::SeqCst), 0);
}

#[test]
fn sessions_are_not_resumed_across_client_identities() {
    let setup = setup();
    let cert = setup.ca.server(&["a.test"], Validity::Current);
    let server = EchoServer::start(
        Mode::Tls(server_config(&cert, Some(&setup.ca))),
        None,
        Vec::new(),
    );
    let x = setup.ca.client("client-x");
    let as_x = setup.connector.client_identity(x.chain, x.key).unwrap();
    let anonymous = route(&server, "a.test");
    let with_x = anonymous.clone().with_identity(as_x);
    // A session made without a certificate is not offered with one…
    let first: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 2);
    assert_eq!(
        two_connects(&first, &anonymous, &with_x),
        (HandshakeKind::Full, HandshakeKind::Full)
    );
    // …while each resumes its own (a new pool over the same connector: its
    // session caches, and no idle connections).
    let second: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 2);
    assert_eq!(
        two_connects(&second, &with_x, &anonymous),
        (HandshakeKind::Resumed, HandshakeKind::Resumed)
    );
    assert_eq!(server.seen.resumed_handshakes.load(Ordering::SeqCst), 2);
}

#[test]
fn alpn_is_offered_and_agreed() {
    let setup = setup();
    let server = alpn_server(&setup);
    let connector = trusting(&setup.ca, |b| b.alpn_protocols([&b"http/1.1"[..]]));
    let pool: Pool<TlsConnector, Strict> = pool(connector, 1);
    let lease = pool.lease(&route(&server, "a.test")).unwrap();
    assert_eq!(lease.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
}

#[test]
fn socket_timeouts_apply_to_the_tls_stream() {
    let setup = setup();
    let server = server(&setup, &["a.test"]);
    let connector = trusting(&setup.ca, |b| {
        b.tcp(TcpConnector::new().read_timeout(Some(Duration::from_millis(50))))
    });
    let pool: Pool<TlsConnector, Strict> = pool(connector, 1);
    let mut lease: leasehold::Lease<'_, TlsConnector, Strict> =
        pool.lease(&route(&server, "a.test")).unwrap();
    ping(&mut lease).unwrap();
    // Nothing was asked, so nothing comes: the read gives up.
    let started = Instant::now();
    let error = lease.read(&mut [0; 16]).unwrap_err();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < PATIENCE);
    let _: &TlsStream = &lease;
}

#[test]
fn tls_route_names_itself_and_resolves() {
    let _process = shared_process();
    let route = TlsRoute::resolve("localhost:8443").unwrap();
    assert_eq!(route.server_name().to_str(), "localhost");
    assert_eq!(route.addr().port(), 8443);
    let by_ip = TlsRoute::new("127.0.0.1:8443".parse().unwrap(), "127.0.0.1").unwrap();
    assert_eq!(format!("{by_ip:?}"), "tls://127.0.0.1@127.0.0.1:8443");
    assert!(TlsRoute::new("127.0.0.1:1".parse().unwrap(), "not a name!").is_err());
    let _: Option<&ClientIdentity> = by_ip.identity();
}

// ---------------------------------------------------------------------------
// Settings changed while the pool runs
// ---------------------------------------------------------------------------

#[path = "tls/swap.rs"]
mod swap;

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

#[test]
fn no_descriptor_outlives_the_pool() {
    let _process = PROCESS.write().unwrap_or_else(PoisonError::into_inner);
    let ca = Authority::new("leasehold test CA");
    let connector = trusting(&ca, |b| b);
    let before = Descriptors::open();
    {
        let cert = ca.server(&["a.test"], Validity::Current);
        let good = serving(&cert);
        let stranger = Authority::new("someone else's CA").server(&["a.test"], Validity::Current);
        let untrusted = serving(&stranger);
        let silent = EchoServer::start(Mode::Silent, None, Vec::new());
        let pool: Pool<TlsConnector, Offlock> = builder(connector, 4)
            .connect_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let leases: Vec<_> = (0..4)
            .map(|_| pool.lease(&route(&good, "a.test")).unwrap())
            .collect();
        for (i, mut lease) in leases.into_iter().enumerate() {
            ping(&mut lease).unwrap();
            if i % 2 == 0 {
                lease.discard();
            }
        }
        assert!(pool.lease(&route(&untrusted, "a.test")).is_err());
        assert!(pool.lease(&route(&silent, "a.test")).is_err());
        drop(pool);
        eventually("the server to see every connection closed", || {
            good.seen.clean_closes.load(Ordering::SeqCst) == 4
        });
    }
    before.assert_none_left();
}
