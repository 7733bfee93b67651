//! `leasehold_hyper::Client` against the loopback HTTP/1.1 server of the
//! root crate's tests, plain and TLS, on tokio's multi-thread and
//! current-thread runtimes: keep-alive reuse counted on the server,
//! concurrency, servers that close idle connections, reset them, answer
//! `Connection: close`, send bytes past a response or answer before the
//! request body is in; cancelled requests and bodies, errors, and no
//! descriptor left open. Whatever a connection went through, the pool's
//! stats say whether it came back.

#![cfg(target_os = "linux")]

use leasehold_testkit::{fds, http, pki, wait};

use ::http::header::CONNECTION;
use ::http::{Method, Request, StatusCode};
use bytes::Bytes;
use fds::Descriptors;
use http::{Server, ServerConfig};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Body;
use leasehold::tls::TlsConnector;
use leasehold_hyper::{Client, ClientError, Endpoint, ResponseBody};
use pki::{server_config, Authority, Validity};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use wait::eventually;

/// Far longer than anything here should take.
const PATIENCE: Duration = Duration::from_secs(20);

/// The descriptor checks are only meaningful with one test at a time.
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

/// Runs `test` to completion on each runtime flavour, one test at a time.
fn on_each_runtime<F: Future<Output = ()>>(test: impl Fn(&'static str) -> F) {
    let _alone = alone();
    for (flavour, runtime) in runtimes() {
        runtime.block_on(test(flavour));
    }
}

/// A client with room for two connections per server, which waits long.
fn client() -> Client {
    client_with(None)
}

fn client_with(tls: Option<TlsConnector>) -> Client {
    let builder = Client::builder().pool(|pool| {
        pool.max_per_route(2)
            .acquire_timeout(PATIENCE)
            .connect_timeout(PATIENCE)
    });
    match tls {
        Some(tls) => builder.tls(tls),
        None => builder,
    }
    .build()
    .unwrap()
}

fn url(server: &Server) -> String {
    format!("http://{}/", server.addr())
}

/// A GET of `uri`, its body read to the end: the status and the body.
async fn get(client: &Client, uri: &str) -> Result<(StatusCode, Bytes), ClientError> {
    let response = client.get(uri).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The body the test server sends: `len` bytes of "okok…".
fn okok(len: usize) -> Bytes {
    b"ok".iter().copied().cycle().take(len).collect()
}

/// The route a plain request to `server` uses.
fn endpoint(server: &Server) -> Endpoint {
    Endpoint::Tcp(server.addr())
}

/// A TLS server with a certificate for `names`, and a connector that
/// trusts its CA.
fn tls_server(names: &[&str], config: ServerConfig) -> (Server, TlsConnector) {
    let ca = Authority::new("leasehold-hyper test CA");
    let cert = ca.server(names, Validity::Current);
    let server = Server::start(config.tls(server_config(&cert, None))).unwrap();
    let connector = TlsConnector::builder()
        .root_certificates(ca.roots())
        .build()
        .unwrap();
    (server, connector)
}

#[test]
fn gets_reuse_one_keep_alive_connection() {
    on_each_runtime(|flavour| async move {
        // A body of many reads, so the body drives the connection.
        let server = Server::start(ServerConfig::default().body(100_000)).unwrap();
        let client = client();
        for _ in 0..30 {
            let (status, body) = get(&client, &url(&server)).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{flavour}");
            assert_eq!(body, okok(100_000), "{flavour}");
        }
        assert_eq!(server.accepted(), 1, "{flavour}: keep-alive reuse");
        assert_eq!(server.requests(), 30, "{flavour}");
        let stats = client.pool().route_stats(&endpoint(&server));
        assert_eq!((stats.idle, stats.leased), (1, 0), "{flavour}");
    });
}

#[test]
fn tls_gets_reuse_one_connection_and_one_handshake() {
    on_each_runtime(|flavour| async move {
        let (server, connector) = tls_server(&["127.0.0.1"], ServerConfig::default().body(50_000));
        let client = client_with(Some(connector));
        let uri = format!("https://{}/", server.addr());
        for _ in 0..20 {
            let (status, body) = get(&client, &uri).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{flavour}");
            assert_eq!(body.len(), 50_000, "{flavour}");
        }
        assert_eq!(server.accepted(), 1, "{flavour}");
        assert_eq!(server.handshakes(), 1, "{flavour}");
        assert_eq!(server.requests(), 20, "{flavour}");
    });
}

#[test]
fn a_host_name_is_resolved_and_names_the_tls_server() {
    on_each_runtime(|flavour| async move {
        let (server, connector) = tls_server(&["localhost"], ServerConfig::default());
        let client = client_with(Some(connector));
        // `localhost` may resolve to ::1 first, where nothing listens: the
        // client moves on to 127.0.0.1.
        let uri = format!("https://localhost:{}/", server.addr().port());
        for _ in 0..5 {
            assert_eq!(
                get(&client, &uri).await.unwrap().0,
                StatusCode::OK,
                "{flavour}"
            );
        }
        assert_eq!(server.handshakes(), 1, "{flavour}");
        assert_eq!(server.requests(), 5, "{flavour}");
    });
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
        let server = Arc::new(Server::start(ServerConfig::default().body(3_000)).unwrap());
        let client = client();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let client = client.clone();
                let server = server.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let (status, body) = get(&client, &url(&server)).await.unwrap();
                        assert_eq!(status, StatusCode::OK);
                        assert_eq!(body.len(), 3_000);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(server.requests(), 640);
        // Two connections per route, each reused by every task in turn.
        assert!(server.accepted() <= 2, "{} connections", server.accepted());
        let stats = client.pool().route_stats(&endpoint(&server));
        assert_eq!(stats.leased, 0);
    });
}

#[test]
fn request_bodies_are_written_in_full_on_a_reused_connection() {
    on_each_runtime(|flavour| async move {
        let server = Server::start(ServerConfig::default()).unwrap();
        let client = client();
        for round in 0..10 {
            let request = Request::post(url(&server))
                .body(Full::new(Bytes::from(vec![b'x'; 1_000 * round])))
                .unwrap();
            let response = client.request(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{flavour}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, okok(2), "{flavour}");
        }
        // Chunks of another type than `Bytes`, with their length known.
        let request = Request::post(url(&server))
            .body(Full::new(&b"not bytes"[..]))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{flavour}");
        response.into_body().collect().await.unwrap();
        // A request body left unread would have broken the next request.
        assert_eq!(server.requests(), 11, "{flavour}");
        assert_eq!(server.accepted(), 1, "{flavour}");
    });
}

#[test]
fn an_empty_body_gives_the_connection_back_with_the_response() {
    on_each_runtime(|flavour| async move {
        let server = Server::start(ServerConfig::default().body(0)).unwrap();
        let client = client();
        for _ in 0..5 {
            let response = client.get(url(&server)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{flavour}");
            // Back before anyone reads the body: there is nothing to read.
            assert!(response.body().is_end_stream(), "{flavour}");
            let stats = client.pool().route_stats(&endpoint(&server));
            assert_eq!((stats.idle, stats.leased), (1, 0), "{flavour}");
            drop(response);
        }
        assert_eq!(server.accepted(), 1, "{flavour}");
    });
}

/// Waits for `cond`, which the server's threads or the pool's event loop
/// make true; blocking the runtime's thread meanwhile holds neither up.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    eventually(what, cond);
}

#[test]
fn idle_connections_the_server_closes_are_replaced() {
    on_each_runtime(|flavour| async move {
        // Long enough for a request on a new connection to arrive in time
        // on a busy machine.
        let config = ServerConfig::default().idle_close(Duration::from_millis(300));
        let server = Server::start(config).unwrap();
        let client = client();
        for round in 1..=2 {
            let (status, _) = get(&client, &url(&server)).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{flavour}");
            // The server closes the connection while it sits in the pool,
            // and the pool hears of it. (A request sent while the close is
            // on its way fails: nothing tells that from a server that took
            // the request and died.)
            wait_for("the server to close the idle connection", || {
                server.idle_closed() == round && server.open() == 0
            });
            wait_for("the pool to let the connection go", || {
                client.pool().route_stats(&endpoint(&server)).idle == 0
            });
        }
        assert_eq!(get(&client, &url(&server)).await.unwrap().0, StatusCode::OK);
        assert_eq!(server.accepted(), 3, "{flavour}");
        assert_eq!(server.requests(), 3, "{flavour}");
    });
}

#[test]
fn connections_reset_after_a_response_are_never_reused() {
    on_each_runtime(|flavour| async move {
        let server = Server::start(ServerConfig::default().reset_after(1)).unwrap();
        let client = client();
        for round in 1..=10 {
            let (status, body) = get(&client, &url(&server)).await.unwrap();
            assert_eq!((status, body), (StatusCode::OK, okok(2)), "{flavour}");
            // The connection went back to the pool with its response read;
            // the reset follows, and the pool lets it go.
            wait_for("the server to reset the connection", || {
                server.resets() == round && server.open() == 0
            });
            wait_for("the pool to let the connection go", || {
                client.pool().route_stats(&endpoint(&server)).idle == 0
            });
        }
        assert_eq!(server.accepted(), 10, "{flavour}");
        assert_eq!(server.requests(), 10, "{flavour}");
    });
}

#[test]
fn connection_close_closes_the_connection() {
    on_each_runtime(|flavour| async move {
        let server = Server::start(ServerConfig::default().body(10_000)).unwrap();
        let client = client();
        for round in 1..=3 {
            let request = Request::get(url(&server))
                .header(CONNECTION, "close")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = client.request(request).await.unwrap();
            assert_eq!(response.headers()[CONNECTION], "close", "{flavour}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, okok(10_000), "{flavour}");
            let stats = client.pool().route_stats(&endpoint(&server));
            assert_eq!(
                (stats.idle, stats.leased),
                (0, 0),
                "{flavour}: not returned"
            );
            assert_eq!(server.accepted(), round, "{flavour}");
        }
        // A keep-alive request after them opens a connection of its own.
        assert_eq!(get(&client, &url(&server)).await.unwrap().0, StatusCode::OK);
        assert_eq!(server.accepted(), 4, "{flavour}");
        assert_eq!(client.pool().route_stats(&endpoint(&server)).idle, 1);
    });
}

#[test]
fn bytes_past_the_response_close_the_connection() {
    on_each_runtime(|flavour| async move {
        // The test server sends a body even to HEAD, which has none: its
        // bytes follow the response on the connection.
        let server = Server::start(ServerConfig::default()).unwrap();
        let client = client();
        let head = || {
            Request::builder()
                .method(Method::HEAD)
                .uri(url(&server))
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        for round in 1..=3 {
            let response = client.request(head()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{flavour}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert!(body.is_empty(), "{flavour}");
            let stats = client.pool().route_stats(&endpoint(&server));
            assert_eq!(
                (stats.idle, stats.leased),
                (0, 0),
                "{flavour}: not returned"
            );
            assert_eq!(server.accepted(), round, "{flavour}");
        }
        assert_eq!(get(&client, &url(&server)).await.unwrap().1, okok(2));
    });
}

/// A server that answers the first request on each connection as soon as
/// its head has arrived, without reading its body, and then holds the
/// connection open until it is told to stop.
struct EarlyAnswer {
    addr: std::net::SocketAddr,
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EarlyAnswer {
    fn start() -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            let _ = stopped.recv();
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EarlyAnswer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn an_answer_before_the_request_body_is_written_closes_the_connection() {
    on_each_runtime(|flavour| async move {
        let server = EarlyAnswer::start();
        let client = client();
        // More than the socket buffers hold, so hyper is still writing it
        // when the response is complete.
        let request = Request::post(format!("http://{}/", server.addr))
            .body(Full::new(Bytes::from(vec![b'x'; 32 << 20])))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, okok(2), "{flavour}");
        let stats = client.pool().route_stats(&Endpoint::Tcp(server.addr));
        assert_eq!((stats.idle, stats.leased), (0, 0), "{flavour}: mid-request");
    });
}

#[test]
fn a_cancelled_request_does_not_poison_the_next() {
    on_each_runtime(|flavour| async move {
        let config = ServerConfig::default().latency(Duration::from_millis(200));
        let server = Server::start(config).unwrap();
        let client = client();
        // A warm connection first, so that the cancelled request reuses it.
        assert_eq!(get(&client, &url(&server)).await.unwrap().0, StatusCode::OK);
        let uri = url(&server);
        let cut = tokio::time::timeout(Duration::from_millis(20), get(&client, &uri));
        assert!(
            cut.await.is_err(),
            "{flavour}: the request outran its timeout"
        );
        // The cancelled request's response is still on its way: its
        // connection must be gone, not back in the pool.
        let stats = client.pool().route_stats(&endpoint(&server));
        assert_eq!((stats.idle, stats.leased), (0, 0), "{flavour}");
        for _ in 0..3 {
            let (status, body) = get(&client, &url(&server)).await.unwrap();
            assert_eq!((status, body), (StatusCode::OK, okok(2)), "{flavour}");
        }
        assert_eq!(server.accepted(), 2, "{flavour}: a fresh connection");
        assert_eq!(client.pool().route_stats(&endpoint(&server)).idle, 1);
    });
}

#[test]
fn a_body_dropped_before_its_end_closes_the_connection() {
    on_each_runtime(|flavour| async move {
        let server = Server::start(ServerConfig::default().body(1 << 20)).unwrap();
        let client = client();
        let response = client.get(url(&server)).await.unwrap();
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(!first.is_empty() && first.len() < 1 << 20, "{flavour}");
        drop(body);
        let stats = client.pool().route_stats(&endpoint(&server));
        assert_eq!((stats.idle, stats.leased), (0, 0), "{flavour}");
        let (status, body) = get(&client, &url(&server)).await.unwrap();
        assert_eq!((status, body.len()), (StatusCode::OK, 1 << 20), "{flavour}");
        assert_eq!(server.accepted(), 2, "{flavour}");
    });
}

#[test]
fn failures_say_what_failed() {
    on_each_runtime(|flavour| async move {
        let client = client();
        for uri in ["/relative", "ftp://127.0.0.1/", "127.0.0.1:80"] {
            let err = client.get(uri).await.unwrap_err();
            assert!(
                matches!(err, ClientError::Uri { .. }),
                "{flavour}: {uri}: {err:?}"
            );
            let io = std::io::Error::from(err);
            assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput, "{flavour}");
        }
        let err = client.get("http://exa mple/").await.unwrap_err();
        assert!(matches!(err, ClientError::Request(_)), "{flavour}: {err:?}");
        // A port nobody listens on: the server is gone.
        let gone = Server::start(ServerConfig::default()).unwrap();
        let addr = gone.addr();
        drop(gone);
        let err = client.get(format!("http://{addr}/")).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Connect(leasehold::Error::Refused { .. })),
            "{flavour}: {err:?}"
        );
        let io = std::io::Error::from(err);
        assert_eq!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{flavour}"
        );
    });
}

#[test]
fn the_client_is_a_tower_service() {
    use tower_service::Service;
    on_each_runtime(|flavour| async move {
        let server = Server::start(ServerConfig::default()).unwrap();
        let mut client = client();
        for _ in 0..3 {
            std::future::poll_fn(|cx| {
                Service::<Request<Empty<Bytes>>>::poll_ready(&mut client, cx)
            })
            .await
            .unwrap();
            let request = Request::get(url(&server))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = client.call(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{flavour}");
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(server.accepted(), 1, "{flavour}");
    });
}

#[test]
fn requests_and_bodies_move_between_tasks() {
    fn send_static<T: Send + 'static>(_: &T) {}
    let _alone = alone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = Server::start(ServerConfig::default()).unwrap();
        let client = client();
        let request = {
            let client = client.clone();
            let uri = url(&server);
            async move { client.get(uri).await }
        };
        send_static(&request);
        let response = tokio::spawn(request).await.unwrap().unwrap();
        let body: ResponseBody = response.into_body();
        send_static(&body);
        let bytes = tokio::spawn(body.collect()).await.unwrap().unwrap();
        assert_eq!(bytes.to_bytes(), okok(2));
        assert_eq!(client.pool().route_stats(&endpoint(&server)).idle, 1);
    });
}

#[test]
fn nothing_is_left_open() {
    let before = {
        let _alone = alone();
        Descriptors::open()
    };
    on_each_runtime(|flavour| async move {
        let (tls, connector) = tls_server(&["127.0.0.1"], ServerConfig::default());
        let plain = Server::start(ServerConfig::default()).unwrap();
        let slow = ServerConfig::default().latency(Duration::from_millis(200));
        let slow = Server::start(slow).unwrap();
        let client = client_with(Some(connector));
        for _ in 0..3 {
            let uri = format!("https://{}/", tls.addr());
            assert_eq!(
                get(&client, &uri).await.unwrap().0,
                StatusCode::OK,
                "{flavour}"
            );
            assert_eq!(get(&client, &url(&plain)).await.unwrap().0, StatusCode::OK);
        }
        // A cancelled request too.
        let uri = url(&slow);
        let cut = tokio::time::timeout(Duration::from_millis(20), get(&client, &uri)).await;
        assert!(cut.is_err(), "{flavour}");
        drop(client);
    });
    let _alone = alone();
    before.assert_none_left();
}
