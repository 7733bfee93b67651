//! Tests for the loopback HTTP server and client of
//! `leasehold_testkit::http`, which the pool's tests, examples and
//! benchmarks lean on; with the `tls` feature, also for its TLS mode,
//! through a `Pool<TlsConnector>`.
//!
//! Every test holds `SERIAL`, so that the descriptor check in
//! `fds_return_after_drop` sees no other test's sockets.

#[cfg(feature = "tls")]
use leasehold_testkit::pki;
use leasehold_testkit::{fds, http, wait};

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use fds::Descriptors;
use http::{full_backlog_listener, get, read_response, Server, ServerConfig};
use wait::eventually;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A client stream that cannot hang a test forever.
fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let _serial = serial();
    let server = Server::start(ServerConfig::default()).expect("start");
    let mut stream = connect(&server);
    for i in 0..100 {
        let response = get(&mut stream, &format!("/{i}")).expect("get");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"ok");
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests(), 100);
    assert_eq!(server.open(), 1);
    drop(stream);
    eventually("the server closes after the client", || server.open() == 0);
}

#[test]
fn body_has_the_configured_length() {
    let _serial = serial();
    for len in [0, 1, 5, 100_000] {
        let server = Server::start(ServerConfig::default().body(len)).expect("start");
        let mut stream = connect(&server);
        for _ in 0..2 {
            let response = get(&mut stream, "/").expect("get");
            assert_eq!(response.status, 200);
            assert_eq!(response.body.len(), len);
            assert!(response.body.iter().all(|b| b"ok".contains(b)));
        }
    }
}

#[test]
fn latency_is_waited_before_each_response() {
    let _serial = serial();
    let latency = Duration::from_millis(50);
    let server = Server::start(ServerConfig::default().latency(latency)).expect("start");
    let mut stream = connect(&server);
    for _ in 0..3 {
        let start = Instant::now();
        get(&mut stream, "/").expect("get");
        assert!(
            start.elapsed() >= latency,
            "answered in {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn idle_connection_is_closed_and_counted() {
    let _serial = serial();
    let idle = Duration::from_millis(100);
    let server = Server::start(ServerConfig::default().idle_close(idle)).expect("start");
    let mut stream = connect(&server);
    let start = Instant::now();
    get(&mut stream, "/").expect("get");
    // Without writing anything, the next read sees the server's FIN.
    let mut byte = [0u8; 1];
    assert_eq!(stream.read(&mut byte).expect("read EOF"), 0);
    assert!(start.elapsed() >= idle);
    assert_eq!(server.idle_closed(), 1);
    // A request on the closed connection is an error, not a hang.
    let err = get(&mut stream, "/").expect_err("request on a closed connection");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
    eventually("the socket is closed", || server.open() == 0);
    assert_eq!(server.requests(), 1);
}

#[test]
fn partial_request_is_not_idle() {
    let _serial = serial();
    let idle = Duration::from_millis(100);
    let server = Server::start(ServerConfig::default().idle_close(idle)).expect("start");
    let mut stream = connect(&server);
    // A request split over writes with gaps longer than `idle`: once part of
    // it has arrived the connection is waiting for the rest, not idle.
    let gap = Duration::from_millis(250);
    for (i, part) in ["GET / HT", "TP/1.1\r\nHost: local", "host\r\n\r\n"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            thread::sleep(gap);
        }
        stream.write_all(part.as_bytes()).expect("write");
    }
    let response = read_response(&mut stream).expect("response");
    assert_eq!(response.status, 200);
    assert_eq!(server.idle_closed(), 0);
}

#[test]
fn reset_after_resets_the_connection() {
    let _serial = serial();
    let server = Server::start(ServerConfig::default().reset_after(3)).expect("start");
    let mut stream = connect(&server);
    for _ in 0..3 {
        get(&mut stream, "/").expect("get before the reset");
    }
    eventually("the server resets", || {
        server.resets() == 1 && server.open() == 0
    });
    let err = get(&mut stream, "/").expect_err("request after the reset");
    // The RST has arrived, so the write (or else the read) reports it.
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );
    // Other connections are unaffected.
    let mut other = connect(&server);
    get(&mut other, "/").expect("get on a new connection");
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.requests(), 4);
}

#[test]
fn request_bodies_and_pipelined_requests_are_served() {
    let _serial = serial();
    let server = Server::start(ServerConfig::default()).expect("start");
    let mut stream = connect(&server);
    // A POST with a body that itself looks like a request, then two GETs,
    // all in one write.
    let body = "GET /not-a-request HTTP/1.1\r\n\r\n";
    let requests = format!(
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}\
         GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n\
         GET /c HTTP/1.1\r\nHost: localhost\r\n\r\n",
        body.len()
    );
    stream.write_all(requests.as_bytes()).expect("write");
    for _ in 0..3 {
        assert_eq!(read_response(&mut stream).expect("response").status, 200);
    }
    assert_eq!(server.requests(), 3);
    // And the connection is still good for one more.
    get(&mut stream, "/d").expect("get");
    assert_eq!(server.requests(), 4);
}

#[test]
fn request_body_arriving_in_pieces_is_consumed() {
    let _serial = serial();
    let server = Server::start(ServerConfig::default()).expect("start");
    let mut stream = connect(&server);
    let body = vec![b'x'; 20_000];
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000\r\n\r\n")
        .expect("write head");
    for piece in body.chunks(7_000) {
        stream.write_all(piece).expect("write body");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(read_response(&mut stream).expect("response").status, 200);
    get(&mut stream, "/").expect("get after the body");
    assert_eq!(server.requests(), 2);
}

#[test]
fn connection_close_is_honoured() {
    let _serial = serial();
    let server = Server::start(ServerConfig::default()).expect("start");
    let mut stream = connect(&server);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut stream).expect("response").status, 200);
    let mut byte = [0u8; 1];
    assert_eq!(stream.read(&mut byte).expect("read EOF"), 0);
    assert_eq!(server.idle_closed(), 0);
    assert_eq!(server.resets(), 0);
}

#[test]
fn malformed_request_gets_400_and_a_close() {
    let _serial = serial();
    let server = Server::start(ServerConfig::default()).expect("start");
    let mut stream = connect(&server);
    stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").expect("write");
    assert_eq!(read_response(&mut stream).expect("response").status, 400);
    let mut byte = [0u8; 1];
    assert_eq!(stream.read(&mut byte).expect("read EOF"), 0);
    assert_eq!(server.requests(), 0);
}

#[test]
fn client_sees_eof_when_the_peer_closes_mid_response() {
    let _serial = serial();
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = [0u8; 256];
        let _ = stream.read(&mut request).expect("read");
        // Promise ten bytes, send three, hang up.
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .expect("write");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        // Keep reading so the close is a FIN, not a RST.
        let _ = stream.read(&mut request);
    });
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let err = get(&mut stream, "/").expect_err("truncated response");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err:?}");
    drop(stream);
    peer.join().expect("peer");
}

#[test]
fn shutdown_closes_open_connections() {
    let _serial = serial();
    // A long latency, so a request is in progress when the server stops.
    let server =
        Server::start(ServerConfig::default().latency(Duration::from_secs(60))).expect("start");
    let mut idle = connect(&server);
    let mut busy = connect(&server);
    busy.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("write");
    eventually("both connections accepted", || server.open() == 2);
    let start = Instant::now();
    server.shutdown();
    assert!(start.elapsed() < Duration::from_secs(10), "shutdown waited");
    let mut byte = [0u8; 1];
    for stream in [&mut idle, &mut busy] {
        match stream.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
    }
}

#[test]
fn full_backlog_listener_times_out_connects() {
    let _serial = serial();
    let (addr, backlog) = full_backlog_listener().expect("full backlog");
    assert!(backlog.fillers() >= 1);
    for _ in 0..3 {
        let start = Instant::now();
        let err = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .expect_err("connect to a full backlog");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{err:?}"
        );
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
    // Once the guard is gone the port is closed: refused, not a hang.
    drop(backlog);
    let err = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect_err("closed port");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
}

#[test]
fn fds_return_after_drop() {
    let _serial = serial();
    let before = Descriptors::open();
    {
        let server = Server::start(
            ServerConfig::default()
                .idle_close(Duration::from_millis(50))
                .reset_after(5),
        )
        .expect("start");
        let mut streams: Vec<TcpStream> = (0..8).map(|_| connect(&server)).collect();
        for stream in &mut streams {
            get(stream, "/").expect("get");
            // Half a request keeps the connection from going idle, so it is
            // still open, with bytes buffered, when the server is dropped.
            stream.write_all(b"GET / HT").expect("write");
        }
        // Some connections end by themselves before the drop: idle, reset,
        // closed by the client.
        let mut reset = connect(&server);
        for _ in 0..5 {
            get(&mut reset, "/").expect("get");
        }
        let idle = connect(&server);
        drop(streams.pop());
        eventually("an idle close and a reset", || {
            server.idle_closed() >= 1 && server.resets() == 1
        });
        drop((reset, idle));
        // The rest are open when the server goes.
        assert!(server.open() >= streams.len());
        drop(server);
        drop(streams);
    }
    before.assert_none_left();
}

/// The server in TLS mode, with the pool's `TlsConnector` as its client:
/// certificates verified against a CA made for the test.
#[cfg(feature = "tls")]
mod tls {
    use super::{eventually, get, http, pki, read_response, serial, Server, ServerConfig};
    use leasehold::rustls::{HandshakeKind, ProtocolVersion};
    use leasehold::tls::{TlsConnector, TlsRoute};
    use leasehold::{Pool, Strict, TcpConnector};
    use std::io::{Read, Write};
    use std::thread;
    use std::time::Duration;

    /// A TLS server for `localhost`, and the CA that issued its certificate.
    fn tls_server(config: ServerConfig) -> (pki::Authority, Server) {
        let ca = pki::Authority::new("http_support CA");
        let cert = ca.server(&["localhost"], pki::Validity::Current);
        let server = Server::start(config.tls(pki::server_config(&cert, None))).expect("start");
        (ca, server)
    }

    /// A pool of up to `max` TLS connections that trust only `ca`.
    fn tls_pool(ca: &pki::Authority, max: usize) -> Pool<TlsConnector, Strict> {
        let connector = TlsConnector::builder()
            .root_certificates(ca.roots())
            .tcp(TcpConnector::new().read_timeout(Some(Duration::from_secs(10))))
            .build()
            .expect("connector");
        Pool::builder(connector)
            .max_total(max)
            .max_per_route(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("pool")
    }

    #[test]
    fn tls_keep_alive_requests_through_the_pool() {
        let _serial = serial();
        let (ca, server) = tls_server(ServerConfig::default());
        let pool = tls_pool(&ca, 2);
        let route = TlsRoute::new(server.addr(), "localhost").expect("route");
        {
            // Two leases at once: two connections. Both handshakes are full,
            // as neither connection has read a session ticket yet.
            let mut a = pool.lease(&route).expect("lease");
            let mut b = pool.lease(&route).expect("lease");
            for conn in [&mut a, &mut b] {
                assert_eq!(conn.protocol_version(), Some(ProtocolVersion::TLSv1_3));
                assert_eq!(conn.handshake_kind(), Some(HandshakeKind::Full));
                let response = get(&mut **conn, "/").expect("get");
                assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));
            }
        }
        // Keep-alive requests from four threads share those two.
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..25 {
                        let mut conn = pool.lease(&route).expect("lease");
                        let response = get(&mut *conn, &format!("/{i}")).expect("get");
                        assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));
                    }
                });
            }
        });
        assert_eq!(server.requests(), 102);
        assert_eq!(pool.stats().total.created, 2);
        assert_eq!(pool.health().stale, 0);
        // One handshake per pooled connection.
        assert_eq!(server.accepted(), 2);
        assert_eq!(server.full_handshakes(), 2);
        assert_eq!(server.resumed_handshakes(), 0);
        assert_eq!(server.failed_handshakes(), 0);
    }

    #[test]
    fn tls_bodies_span_records() {
        let _serial = serial();
        // 100 000 bytes take seven TLS records.
        for len in [0, 1, 5, 100_000] {
            let (ca, server) = tls_server(ServerConfig::default().body(len));
            let pool = tls_pool(&ca, 1);
            let route = TlsRoute::new(server.addr(), "localhost").expect("route");
            for _ in 0..3 {
                let mut conn = pool.lease(&route).expect("lease");
                let response = get(&mut *conn, "/").expect("get");
                assert_eq!(response.status, 200);
                assert_eq!(response.body.len(), len);
                assert!(response.body.iter().all(|b| b"ok".contains(b)));
            }
            assert_eq!(server.handshakes(), 1);
        }
    }

    #[test]
    fn tls_pipelined_responses_are_read_one_by_one() {
        let _serial = serial();
        let (ca, server) = tls_server(ServerConfig::default());
        let config = pki::client_config(ca.roots(), 0);
        let mut client = http::connect_tls(server.addr(), "localhost", &config).expect("connect");
        client
            .sock
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        // Three requests in one write: their responses may arrive in one
        // TLS record, and each read must stop at the end of its own.
        client
            .write_all(
                b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    .repeat(3)
                    .as_slice(),
            )
            .expect("write");
        client.flush().expect("flush");
        for _ in 0..3 {
            let response = read_response(&mut client).expect("response");
            assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));
        }
        assert_eq!(get(&mut client, "/b").expect("get").status, 200);
        http::close_tls(client);
        assert_eq!(server.requests(), 4);
        assert_eq!(server.full_handshakes(), 1);
    }

    #[test]
    fn tls_idle_close_sends_close_notify_and_the_pool_resumes() {
        let _serial = serial();
        let idle = Duration::from_millis(100);
        let (ca, server) = tls_server(ServerConfig::default().idle_close(idle));

        // A client without the pool: after the idle close a read ends with
        // Ok(0), which rustls reports only when close_notify came first
        // (a bare FIN is `UnexpectedEof`).
        let config = pki::client_config(ca.roots(), 0);
        let mut client = http::connect_tls(server.addr(), "localhost", &config).expect("connect");
        client
            .sock
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        assert_eq!(get(&mut client, "/").expect("get").status, 200);
        let mut byte = [0u8; 1];
        assert_eq!(client.read(&mut byte).expect("a clean close"), 0);
        assert_eq!(server.idle_closed(), 1);

        // Through the pool: the event loop reads the close_notify of an
        // idle connection and evicts it; the next lease reconnects and
        // resumes the session it was given.
        let pool = tls_pool(&ca, 1);
        let route = TlsRoute::new(server.addr(), "localhost").expect("route");
        {
            let mut conn = pool.lease(&route).expect("lease");
            assert_eq!(conn.handshake_kind(), Some(HandshakeKind::Full));
            assert_eq!(get(&mut *conn, "/").expect("get").status, 200);
        }
        eventually("the idle close, and the pool evicting it", || {
            server.idle_closed() == 2 && pool.health().stale == 1
        });
        let mut conn = pool.lease(&route).expect("lease");
        assert_eq!(conn.handshake_kind(), Some(HandshakeKind::Resumed));
        assert_eq!(get(&mut *conn, "/").expect("get").status, 200);
        assert_eq!(pool.stats().total.created, 2);
        assert_eq!(server.full_handshakes(), 2);
        assert_eq!(server.resumed_handshakes(), 1);
        assert_eq!(server.failed_handshakes(), 0);
    }
}
