//! `AsyncConnector` on tokio, multi-thread and current-thread: HTTP/1.1
//! exchanges with `.await` through pooled TCP and TLS connections against a
//! loopback server, keep-alive reuse, idle connections the server closes
//! still evicted by the pool's event loop, a request cancelled midway and
//! discarded, a connection used from one runtime after another, the errors
//! outside tokio and without its I/O driver, the `futures-io` traits on
//! other executors, and no descriptor left open.

#![cfg(all(
    target_os = "linux",
    feature = "tokio",
    feature = "async-io",
    feature = "tls"
))]

use leasehold_testkit::{fds, http, pki, wait};

use fds::Descriptors;
use http::{Server, ServerConfig};
use leasehold::tls::{TlsConnector, TlsRoute};
use leasehold::{AsyncConnector, Connector, Nonblocking, Pool, TcpConnector};
use pki::{server_config, Authority, Validity};
use std::future::Future;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wait::eventually;

/// Far longer than anything here should take.
const PATIENCE: Duration = Duration::from_secs(20);

/// The descriptor count is only meaningful with one test at a time.
static PROCESS: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    PROCESS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Both runtime flavours, each with I/O and timers.
fn runtimes() -> [(&'static str, tokio::runtime::Runtime); 2] {
    [
        (
            "multi-thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
    ]
}

/// Runs `test` to completion on each runtime flavour.
fn on_each_runtime<F: Future<Output = ()>>(test: impl Fn(&'static str) -> F) {
    for (flavour, runtime) in runtimes() {
        runtime.block_on(test(flavour));
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: leasehold.test\r\n\r\n";

/// Whether `buf` holds a whole response: its status and body length.
fn complete(buf: &[u8]) -> io::Result<Option<(u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response
        .parse(buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
    else {
        return Ok(None);
    };
    let length: usize = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no length"))?;
    assert!(buf.len() <= head + length, "bytes past the response");
    Ok((buf.len() == head + length).then_some((response.code.unwrap_or(0), length)))
}

/// One `GET /` through tokio's traits, read to the end of its body: the
/// status and the body's length. It reads into the buffer's uninitialised
/// spare room, as hyper does (and `get_initialised` into zeroed memory).
async fn get(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> io::Result<(u16, usize)> {
    stream.write_all(GET).await?;
    stream.flush().await?;
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        buf.reserve(1 << 16);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(done) = complete(&buf)? {
            return Ok(done);
        }
    }
}

/// [`get`], reading into an initialised buffer.
async fn get_initialised(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
) -> io::Result<(u16, usize)> {
    stream.write_all(GET).await?;
    stream.flush().await?;
    let (mut buf, mut chunk) = (Vec::new(), [0; 4096]);
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(done) = complete(&buf)? {
            return Ok(done);
        }
    }
}

/// [`get`] through the `futures-io` traits.
async fn get_futures(
    stream: &mut (impl futures::AsyncRead + futures::AsyncWrite + Unpin),
) -> io::Result<(u16, usize)> {
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(GET).await?;
    stream.flush().await?;
    let (mut buf, mut chunk) = (Vec::new(), [0; 4096]);
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(done) = complete(&buf)? {
            return Ok(done);
        }
    }
}

fn pool<C: Connector<Conn: Nonblocking>>(connector: C) -> Pool<AsyncConnector<C>> {
    Pool::builder(AsyncConnector::new(connector))
        .max_per_route(2)
        .acquire_timeout(PATIENCE)
        .connect_timeout(PATIENCE)
        .build()
        .unwrap()
}

/// A TLS server with a certificate for `a.test`, and a connector that
/// trusts its CA.
fn tls_server(config: ServerConfig) -> (Server, TlsConnector, TlsRoute) {
    let ca = Authority::new("leasehold async test CA");
    let cert = ca.server(&["a.test"], Validity::Current);
    let server = Server::start(config.tls(server_config(&cert, None))).unwrap();
    let connector = TlsConnector::builder()
        .root_certificates(ca.roots())
        .build()
        .unwrap();
    let route = TlsRoute::new(server.addr(), "a.test").unwrap();
    (server, connector, route)
}

/// Twenty GETs of a 100 kB body (many TLS records, read in pieces smaller
/// than one) through `pool`, on one kept-alive connection.
async fn twenty_gets<C>(
    pool: &Pool<AsyncConnector<C>>,
    route: &C::Route,
    server: &Server,
    flavour: &str,
) where
    C: Connector<Conn: Nonblocking + Unpin>,
{
    for i in 0..20 {
        let mut conn = pool.lease_async(route).await.unwrap();
        let got = if i % 2 == 0 {
            get(&mut conn).await
        } else {
            get_initialised(&mut conn).await
        };
        assert_eq!(got.unwrap(), (200, 100_000), "{flavour}");
    }
    assert_eq!(server.accepted(), 1, "{flavour}: keep-alive reuse");
    assert_eq!(server.requests(), 20, "{flavour}");
}

#[test]
fn tcp_exchanges_reuse_one_connection() {
    let _alone = alone();
    let before = Descriptors::open();
    on_each_runtime(|flavour| async move {
        let server = Server::start(ServerConfig::default().body(100_000)).unwrap();
        let pool = pool(TcpConnector::new());
        twenty_gets(&pool, &server.addr(), &server, flavour).await;
    });
    before.assert_none_left();
}

#[test]
fn tls_exchanges_reuse_one_connection() {
    let _alone = alone();
    let before = Descriptors::open();
    on_each_runtime(|flavour| async move {
        let (server, connector, route) = tls_server(ServerConfig::default().body(100_000));
        let pool = pool(connector);
        twenty_gets(&pool, &route, &server, flavour).await;
        assert_eq!(server.handshakes(), 1, "{flavour}");
    });
    before.assert_none_left();
}

#[test]
fn tasks_share_the_pool_across_worker_threads() {
    let _alone = alone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server, connector, route) = tls_server(ServerConfig::default());
        let pool = std::sync::Arc::new(pool(connector));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let pool = pool.clone();
                let route = route.clone();
                tokio::spawn(async move {
                    for _ in 0..25 {
                        let mut conn = pool.lease_owned_async(&route).await.unwrap();
                        assert_eq!(get(&mut conn).await.unwrap().0, 200);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(server.requests(), 400);
        assert!(server.accepted() <= 2, "{} connections", server.accepted());
    });
}

#[test]
fn idle_connections_the_server_closes_are_evicted() {
    let _alone = alone();
    on_each_runtime(|flavour| async move {
        let config = ServerConfig::default().idle_close(Duration::from_millis(100));
        let (server, connector, route) = tls_server(config);
        let pool = pool(connector);
        let mut conn = pool.lease_async(&route).await.unwrap();
        assert_eq!(get(&mut conn).await.unwrap().0, 200);
        drop(conn);
        assert_eq!(pool.route_stats(&route).idle, 1);
        // The loop sees the close_notify and the FIN while the connection
        // sits in the pool, still registered with this runtime.
        tokio::task::spawn_blocking({
            let pool = pool.clone();
            let route = route.clone();
            move || {
                eventually("the closed connection to leave the pool", || {
                    pool.route_stats(&route).idle == 0
                })
            }
        })
        .await
        .unwrap();
        let mut conn = pool.lease_async(&route).await.unwrap();
        assert_eq!(get(&mut conn).await.unwrap().0, 200, "{flavour}");
        assert_eq!(server.accepted(), 2, "{flavour}");
        assert_eq!(server.idle_closed(), 1, "{flavour}");
    });
}

#[test]
fn a_cancelled_request_is_discarded_and_the_next_lease_is_clean() {
    let _alone = alone();
    on_each_runtime(|flavour| async move {
        let server =
            Server::start(ServerConfig::default().latency(Duration::from_millis(300))).unwrap();
        let pool = pool(TcpConnector::new());
        let mut conn = pool.lease_async(&server.addr()).await.unwrap();
        let cut = tokio::time::timeout(Duration::from_millis(30), get(&mut conn)).await;
        assert!(cut.is_err(), "{flavour}: the request outran its timeout");
        // The response is still on its way: this connection is mid-request.
        conn.discard();
        assert_eq!(pool.route_stats(&server.addr()).idle, 0, "{flavour}");
        let mut conn = pool.lease_async(&server.addr()).await.unwrap();
        assert_eq!(get(&mut conn).await.unwrap(), (200, 2), "{flavour}");
        assert_eq!(server.accepted(), 2, "{flavour}: a fresh connection");
    });
}

#[test]
fn a_connection_moves_to_the_runtime_that_polls_it() {
    let _alone = alone();
    let before = Descriptors::open();
    let server = Server::start(ServerConfig::default()).unwrap();
    let pool = pool(TcpConnector::new());
    let addr = server.addr();
    for (flavour, runtime) in runtimes() {
        runtime.block_on(async {
            let mut conn = pool.lease_async(&addr).await.unwrap();
            assert_eq!(get(&mut conn).await.unwrap().0, 200, "{flavour}");
        });
        // The runtime is gone; the idle connection still holds its
        // registration until the next runtime polls it.
        drop(runtime);
    }
    let again = runtimes();
    for (flavour, runtime) in &again {
        runtime.block_on(async {
            let mut conn = pool.lease_async(&addr).await.unwrap();
            assert_eq!(get(&mut conn).await.unwrap().0, 200, "{flavour}");
        });
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(server.requests(), 4);
    drop(again);
    drop(pool);
    drop(server);
    before.assert_none_left();
}

#[test]
fn outside_tokio_or_without_its_io_driver_the_stream_says_why() {
    let _alone = alone();
    let server = Server::start(ServerConfig::default()).unwrap();
    let pool = pool(TcpConnector::new());
    let addr = server.addr();

    let err = futures::executor::block_on(async {
        let mut conn = pool.lease_async(&addr).await.unwrap();
        get(&mut conn).await.unwrap_err()
    });
    assert!(err.to_string().contains("outside tokio"), "{err}");

    let no_io = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let err = no_io.block_on(async {
        let mut conn = pool.lease_async(&addr).await.unwrap();
        get(&mut conn).await.unwrap_err()
    });
    assert!(err.to_string().contains("enable_io"), "{err}");

    // Neither failure cost the connection its use.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = pool.lease_async(&addr).await.unwrap();
        assert_eq!(get(&mut conn).await.unwrap().0, 200);
    });
    assert_eq!(server.accepted(), 1);
}

#[test]
fn blocking_and_async_holders_share_a_connection() {
    use std::io::{Read, Write};
    let _alone = alone();
    let server = Server::start(ServerConfig::default()).unwrap();
    let pool = pool(TcpConnector::new());
    let addr = server.addr();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = pool.lease_async(&addr).await.unwrap();
        assert_eq!(get(&mut conn).await.unwrap().0, 200);
    });
    // The registered socket is non-blocking now; the inner stream's own
    // reads see that, and waiting for the reply is the holder's business.
    let mut conn = pool.lease(&addr).unwrap();
    let stream = conn.get_mut();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: leasehold.test\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0; 256];
    while !reply.ends_with(b"\r\n\r\nok") {
        match stream.read(&mut chunk) {
            Ok(0) => panic!("closed"),
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(reply.starts_with(b"HTTP/1.1 200"));
    assert_eq!(server.accepted(), 1);
}

#[test]
fn futures_io_exchanges_run_on_any_executor() {
    let _alone = alone();
    // async-io's reactor is the process's from its first use: its
    // descriptors are open before the test counts.
    let reactor = Server::start(ServerConfig::default()).unwrap();
    futures::executor::block_on(async {
        let pool = pool(TcpConnector::new());
        let mut conn = pool.lease_async(&reactor.addr()).await.unwrap();
        assert_eq!(get_futures(&mut conn).await.unwrap(), (200, 2));
    });
    drop(reactor);
    let before = Descriptors::open();
    {
        let (server, connector, route) = tls_server(ServerConfig::default().body(100_000));
        let pool = pool(connector);
        // No runtime at all: async-io's reactor runs on a thread of its own.
        futures::executor::block_on(async {
            for _ in 0..10 {
                let mut conn = pool.lease_async(&route).await.unwrap();
                assert_eq!(get_futures(&mut conn).await.unwrap(), (200, 100_000));
            }
        });
        // smol's executor, several tasks at once.
        let executor = async_executor::Executor::new();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                executor.spawn(async {
                    for _ in 0..10 {
                        let mut conn = pool.lease_owned_async(&route).await.unwrap();
                        assert_eq!(get_futures(&mut conn).await.unwrap().0, 200);
                    }
                })
            })
            .collect();
        futures::executor::block_on(executor.run(async {
            for task in tasks {
                task.await;
            }
        }));
        assert_eq!(server.requests(), 50);
        assert!(server.accepted() <= 2, "{}", server.accepted());
        // The same connections serve tokio tasks too.
        let (pool, route) = (&pool, &route);
        on_each_runtime(|flavour| async move {
            let mut conn = pool.lease_async(route).await.unwrap();
            assert_eq!(get(&mut conn).await.unwrap().0, 200, "{flavour}");
        });
    }
    before.assert_none_left();
}
