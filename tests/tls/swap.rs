//! Connector settings changed while the pool runs: a client certificate
//! rotated under load (with and without retiring the connections made
//! with the old one), trust anchors, ALPN and TCP settings.

use super::*;
use leasehold::Nonblocking;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize};

/// Two client certificates of the setup's CA, "old" and "new", and a
/// server that requires one of them and names it in its replies.
struct Mutual {
    old: pki::Certified,
    new: pki::Certified,
    server: EchoServer,
}

fn mutual(setup: &Setup) -> Mutual {
    let old = setup.ca.client("old");
    let new = setup.ca.client("new");
    let server_cert = setup.ca.server(&["a.test"], Validity::Current);
    let server =
        EchoServer::requiring_clients(&server_cert, &setup.ca, &[(&old, "old"), (&new, "new")]);
    Mutual { old, new, server }
}

/// An identity of `connector` presenting `cert`, and a route to `server`
/// with it.
fn identified(
    connector: &TlsConnector,
    cert: &pki::Certified,
    server: &EchoServer,
) -> (ClientIdentity, TlsRoute) {
    let identity = connector
        .client_identity(cert.chain.clone(), cert.key.clone_key())
        .unwrap();
    let route = route(server, "a.test").with_identity(identity.clone());
    (identity, route)
}

/// The client certificate a reply names.
fn client_of(reply: &str) -> &str {
    reply.trim_end().rsplit(' ').next().unwrap()
}

/// One request on a fresh lease: (server connection, client certificate).
fn served<P: Policy>(lease: &mut leasehold::Lease<'_, TlsConnector, P>) -> (usize, String) {
    let reply = ping(lease).unwrap();
    (connection_of(&reply), client_of(&reply).to_owned())
}

/// Whether a request on `route` fails (at the lease, or at the first
/// read: a TLS 1.3 server refuses a client certificate after the client
/// is done with its handshake).
fn request_fails<P: Policy>(pool: &Pool<TlsConnector, P>, route: &TlsRoute) -> bool {
    match pool.lease(route) {
        Err(_) => true,
        Ok(mut lease) => ping(&mut lease).is_err(),
    }
}

// ---------------------------------------------------------------------------
// Client certificate rotation
// ---------------------------------------------------------------------------

const PER_ROUTE: usize = 3;
const THREADS: usize = 4;
/// Requests before the rotation, and requests begun after it.
const REQUESTS_BEFORE: usize = 120;
const REQUESTS_AFTER: usize = 240;

/// `THREADS` threads lease, ping and return (discarding every fourth
/// lease, so new connections keep being made) while the identity's
/// certificate is rotated from "old" to "new", retiring the old
/// connections if `retire`. No request fails; connections made after the
/// rotation present the new certificate; with `retire`, no request begun
/// after the rotation is served on a connection that presented the old.
fn rotation_under_load<P: Policy>(retire: bool) {
    let setup = setup();
    let Mutual { old, new, server } = mutual(&setup);
    let connector = setup.connector.clone();
    let (identity, route) = identified(&connector, &old, &server);
    let mut builder = builder::<P>(connector.clone(), PER_ROUTE);
    if retire {
        builder = builder.on_check_out(connector.refuse_retired());
    }
    let pool = builder.build().unwrap();

    let rotated = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let requests = AtomicUsize::new(0);
    let (after_old, after_new) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let failures = Mutex::new(Vec::<String>::new());
    let fail = |what: String| failures.lock().unwrap().push(what);
    let created_at_rotation = thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut done = 0_usize;
                while !stop.load(Ordering::SeqCst) {
                    // Read before the lease: true means the whole lease
                    // comes after the rotation.
                    let after = rotated.load(Ordering::SeqCst);
                    let mut lease = match pool.lease(&route) {
                        Ok(lease) => lease,
                        Err(e) => {
                            fail(format!("lease: {e}"));
                            continue;
                        }
                    };
                    let reply = match ping(&mut lease) {
                        Ok(reply) => reply,
                        Err(e) => {
                            fail(format!("request: {e}"));
                            lease.discard();
                            continue;
                        }
                    };
                    match (client_of(&reply), after) {
                        (_, false) => {}
                        ("new", true) => {
                            after_new.fetch_add(1, Ordering::SeqCst);
                        }
                        (_, true) => {
                            after_old.fetch_add(1, Ordering::SeqCst);
                            if retire {
                                fail(format!("after the rotation: {reply:?}"));
                            }
                        }
                    }
                    done += 1;
                    requests.fetch_add(1, Ordering::SeqCst);
                    if done % 4 == 0 {
                        lease.discard();
                    }
                }
            });
        }
        eventually("requests before the rotation", || {
            requests.load(Ordering::SeqCst) >= REQUESTS_BEFORE
                || !failures.lock().unwrap().is_empty()
        });
        connector
            .rotate_identity(&identity, new.chain.clone(), new.key.clone_key())
            .unwrap();
        if retire {
            connector.retire_existing();
        }
        // Every connect begun before the rotation is counted here, or is
        // one of at most `PER_ROUTE` still under way.
        let created = pool.stats().total.created;
        rotated.store(true, Ordering::SeqCst);
        eventually("requests after the rotation", || {
            after_old.load(Ordering::SeqCst) + after_new.load(Ordering::SeqCst) >= REQUESTS_AFTER
                || !failures.lock().unwrap().is_empty()
        });
        stop.store(true, Ordering::SeqCst);
        created
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );

    eventually("the server to see every connection", || {
        let stats = pool.stats().total;
        stats.connecting == 0 && server.seen.handshakes() as u64 == stats.created
    });
    let created = pool.stats().total.created;
    let (olds, news) = (
        server.seen.clients_named("old") as u64,
        server.seen.clients_named("new") as u64,
    );
    assert_eq!(
        olds + news,
        created,
        "each connection presented one of the two: {:?}",
        server.seen.clients.lock().unwrap()
    );
    assert!(
        created > created_at_rotation + 2 * PER_ROUTE as u64,
        "too few connections were made after the rotation to tell: {created_at_rotation} then {created}"
    );
    assert!(
        olds <= created_at_rotation + PER_ROUTE as u64,
        "{olds} connections presented the old certificate, {created_at_rotation} were made before the rotation"
    );
    assert!(news > 0);
    if retire {
        assert_eq!(after_old.load(Ordering::SeqCst), 0);
        // Nothing made with the old certificate is left in the pool.
        let mut leases: Vec<_> = (0..PER_ROUTE)
            .map(|_| pool.lease(&route).unwrap())
            .collect();
        for lease in &mut leases {
            assert_eq!(served(lease).1, "new");
        }
    }
}

fn rotation_under_load_keeps_serving<P: Policy>() {
    rotation_under_load::<P>(false);
}

fn rotation_under_load_with_retire_serves_none_on_the_old_certificate<P: Policy>() {
    rotation_under_load::<P>(true);
}

/// The route is the same across a rotation, so its pooled connection keeps
/// serving it; a new one presents the new certificate; retiring closes the
/// old one whether it is idle (refused at check-out) or leased (closed when
/// given back).
fn rotation_keeps_the_route_and_retire_closes_old_connections<P: Policy>() {
    let setup = setup();
    let Mutual { old, new, server } = mutual(&setup);
    let connector = setup.connector.clone();
    let (identity, route) = identified(&connector, &old, &server);
    let pool: Pool<TlsConnector, P> = builder(connector.clone(), 2)
        .on_check_out(connector.refuse_retired())
        .build()
        .unwrap();

    let (first, client) = served(&mut pool.lease(&route).unwrap());
    assert_eq!(client, "old");
    connector
        .rotate_identity(&identity, new.chain.clone(), new.key.clone_key())
        .unwrap();
    let mut reused = pool.lease(&route).unwrap();
    assert_eq!(
        served(&mut reused),
        (first, "old".to_owned()),
        "reused across the rotation"
    );
    let mut fresh = pool.lease(&route).unwrap();
    let (second, client) = served(&mut fresh);
    assert_eq!(client, "new");
    assert_ne!(second, first);
    drop(reused); // idle, made with the old certificate
    assert!(!connector.is_retired(&fresh));

    connector.retire_existing();
    assert!(
        !connector.is_retired(&fresh),
        "made under the current settings"
    );
    // The idle old connection is refused at check-out: a new one instead.
    let mut third_lease = pool.lease(&route).unwrap();
    let (third, client) = served(&mut third_lease);
    assert_eq!(client, "new");
    assert!(third != first && third != second);
    assert_eq!(pool.stats().total.closed, 1);

    // A leased connection retired is closed when given back.
    connector
        .rotate_identity(&identity, old.chain.clone(), old.key.clone_key())
        .unwrap();
    connector.retire_existing();
    assert!(connector.is_retired(&fresh) && connector.is_retired(&third_lease));
    drop(fresh);
    drop(third_lease);
    let stats = pool.stats().total;
    assert_eq!((stats.idle, stats.closed), (0, 3), "{stats:?}");
    let (fourth, client) = served(&mut pool.lease(&route).unwrap());
    assert_eq!(client, "old", "rotated back");
    assert!(fourth > third);
    assert_eq!(
        *server.seen.clients.lock().unwrap(),
        ["old", "new", "new", "old"]
    );
}

leasehold_testkit::for_each_policy!(
    rotation_under_load_keeps_serving,
    rotation_under_load_with_retire_serves_none_on_the_old_certificate,
    rotation_keeps_the_route_and_retire_closes_old_connections,
);

#[test]
fn the_rotation_test_server_requires_a_client_certificate() {
    let setup = setup();
    let client = setup.ca.client("old");
    let server_cert = setup.ca.server(&["a.test"], Validity::Current);
    let server = EchoServer::requiring_clients(&server_cert, &setup.ca, &[(&client, "old")]);
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 1);
    assert!(request_fails(&pool, &route(&server, "a.test")));
    let stranger = Authority::new("a stranger").client("old");
    let unknown = setup
        .connector
        .client_identity(stranger.chain, stranger.key)
        .unwrap();
    assert!(request_fails(
        &pool,
        &route(&server, "a.test").with_identity(unknown)
    ));
    assert_eq!(server.seen.handshakes(), 0);
}

#[test]
fn rotating_to_a_key_that_is_not_the_certificates_fails_and_keeps_the_old() {
    let setup = setup();
    let Mutual { old, new, server } = mutual(&setup);
    let (identity, _) = identified(&setup.connector, &old, &server);
    assert!(setup
        .connector
        .rotate_identity(&identity, new.chain.clone(), old.key.clone_key())
        .is_err());
    let elsewhere = trusting(&setup.ca, |b| b);
    assert!(elsewhere
        .rotate_identity(&identity, new.chain.clone(), new.key.clone_key())
        .is_err());
    let pool: Pool<TlsConnector, Strict> = pool(setup.connector.clone(), 1);
    let route = route(&server, "a.test").with_identity(identity);
    assert_eq!(served(&mut pool.lease(&route).unwrap()).1, "old");
}

// ---------------------------------------------------------------------------
// Trust anchors, ALPN, TCP settings
// ---------------------------------------------------------------------------

#[test]
fn swapped_roots_trust_a_new_ca_for_new_connects() {
    let setup = setup();
    let new_ca = Authority::new("the new CA");
    let server = serving(&new_ca.server(&["a.test"], Validity::Current));
    // Client certificates of the old CA, on a server the new CA certified:
    // the identity made before the swap must follow the new roots too.
    let client = setup.ca.client("old");
    let mutual = EchoServer::requiring_clients(
        &new_ca.server(&["a.test"], Validity::Current),
        &setup.ca,
        &[(&client, "old")],
    );
    let identity = setup
        .connector
        .client_identity(client.chain.clone(), client.key.clone_key())
        .unwrap();
    let plain = route(&server, "a.test");
    let with_identity = route(&mutual, "a.test").with_identity(identity);
    let connector = setup.connector.clone();
    let pool: Pool<TlsConnector, Strict> = builder(connector.clone(), 1)
        // No rest for a route that failed: the next request connects.
        .connect_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    for route in [&plain, &with_identity] {
        let error = pool.lease(route).unwrap_err();
        assert!(
            matches!(tls_error(&error), Some(TlsError::UntrustedCertificate(_))),
            "{error:?}"
        );
    }

    connector.set_root_certificates(new_ca.roots());
    ping(&mut pool.lease(&plain).unwrap()).unwrap();
    assert_eq!(served(&mut pool.lease(&with_identity).unwrap()).1, "old");

    // And the old CA is trusted no more.
    let old_server = server_of(&setup);
    let error = pool.lease(&route(&old_server, "a.test")).unwrap_err();
    assert!(
        matches!(tls_error(&error), Some(TlsError::UntrustedCertificate(_))),
        "{error:?}"
    );
}

fn server_of(setup: &Setup) -> EchoServer {
    server(setup, &["a.test"])
}

#[test]
fn swapped_alpn_is_offered_by_new_connects_and_retire_closes_the_rest() {
    let setup = setup();
    let server = alpn_server(&setup);
    let connector = trusting(&setup.ca, |b| b.alpn_protocols([&b"http/1.1"[..]]));
    let pool: Pool<TlsConnector, Strict> = pool(connector.clone(), 2);
    let route = route(&server, "a.test");

    let before = pool.lease(&route).unwrap();
    assert_eq!(before.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
    connector.set_alpn_protocols([&b"h2"[..]]);
    let after = pool.lease(&route).unwrap();
    assert_eq!(after.alpn_protocol().as_deref(), Some(&b"h2"[..]));
    drop(before);
    // Kept without retiring: the pool serves it again.
    let before = pool.lease(&route).unwrap();
    assert_eq!(before.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(pool.stats().total.created, 2);

    connector.retire_existing();
    drop(before);
    drop(after);
    let stats = pool.stats().total;
    assert_eq!((stats.idle, stats.closed), (1, 1), "{stats:?}");
    let again = pool.lease(&route).unwrap();
    assert_eq!(again.alpn_protocol().as_deref(), Some(&b"h2"[..]));
}

/// The read timeout the socket under a TLS stream has.
fn read_timeout_of(stream: &TlsStream) -> Option<Duration> {
    let socket = TcpStream::from(stream.socket().try_clone_to_owned().unwrap());
    socket.read_timeout().unwrap()
}

#[test]
fn tcp_settings_change_through_the_tls_connector_of_a_running_pool() {
    let setup = setup();
    let server = server_of(&setup);
    let connector = setup.connector.clone();
    let pool: Pool<TlsConnector, Strict> = builder(connector.clone(), 2)
        .validate_on_lease()
        .build()
        .unwrap();
    let route = route(&server, "a.test");
    let before = pool.lease(&route).unwrap();
    assert_eq!(read_timeout_of(&before), None);

    connector
        .tcp()
        .set_read_timeout(Some(Duration::from_secs(3)));
    let after = pool.lease(&route).unwrap();
    assert_eq!(read_timeout_of(&after), Some(Duration::from_secs(3)));
    assert_eq!(read_timeout_of(&before), None, "open ones keep theirs");
    drop(before); // idle, and not retired yet

    connector.retire_existing();
    assert!(!connector.is_retired(&after));
    // The idle one is found dead by the validation at lease (`is_alive`):
    // a new connection instead, with the new settings.
    let third = pool.lease(&route).unwrap();
    assert_eq!(read_timeout_of(&third), Some(Duration::from_secs(3)));
    let stats = pool.stats().total;
    assert_eq!((stats.created, stats.closed), (3, 1), "{stats:?}");
    drop(after);
    drop(third);
    assert_eq!(
        pool.stats().total.idle,
        2,
        "both made under the current settings"
    );
}
