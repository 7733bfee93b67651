//! `Connector::with_setup` on loopback: the opening exchange runs on the
//! event loop before the first lease, over TCP, over TLS and under the
//! async adapter; a refusal fails the waiting requests at once with its
//! cause; a silent server runs into the connect timeout, which names the
//! exchange; extra bytes, a close mid-exchange and a greeting-first
//! protocol; no descriptor left open.

#![cfg(all(target_os = "linux", feature = "tls"))]

use leasehold_testkit::{fds, pki, tls_echo};

use fds::Descriptors;
use leasehold::tls::{TlsConnector, TlsRoute};
use leasehold::{Connector, Error, Pool, Setup, TcpConnector};
use pki::{server_config, Authority, Validity};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use tls_echo::{ping, EchoServer, Mode};

const PATIENCE: Duration = Duration::from_secs(20);

static PROCESS: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    PROCESS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `HELLO <db>` answered by one line: `OK` lets the connection in, anything
/// else refuses it.
struct Hello(u32);

impl<R> Setup<R> for Hello {
    fn request(&self, _: &R) -> Vec<u8> {
        format!("HELLO {}\n", self.0).into_bytes()
    }

    fn response(&self, _: &R, received: &[u8]) -> io::Result<Option<usize>> {
        let Some(end) = received.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        match &received[..end] {
            b"OK" => Ok(Some(end + 1)),
            other => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    fn stage(&self) -> &'static str {
        "HELLO"
    }
}

/// How the line server answers a connection's first line.
#[derive(Clone, Copy)]
enum Answer {
    /// `OK`, then echoes every line.
    Ok,
    /// `ERR wrong password`.
    Refuse,
    /// Nothing, ever.
    Silent,
    /// `OK` and more bytes in the same write.
    OkAndMore,
    /// Closes the connection.
    Close,
    /// Sends `OK` before reading anything (a greeting), then echoes.
    Greet,
}

/// A line server on loopback; counts the first lines it received. Dropping
/// it stops accepting and closes the listener; each connection's thread
/// ends when its client goes.
struct LineServer {
    addr: SocketAddr,
    hellos: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Drop for LineServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl LineServer {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hellos = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, a, halt) = (hellos.clone(), accepted.clone(), stop.clone());
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                a.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                thread::spawn(move || serve(stream, answer, &h));
            }
        });
        Self {
            addr,
            hellos,
            accepted,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

fn serve(mut stream: TcpStream, answer: Answer, hellos: &AtomicUsize) {
    if let Answer::Greet = answer {
        let _ = stream.write_all(b"OK\n");
    }
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if !matches!(answer, Answer::Greet) {
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        assert!(line.starts_with("HELLO "), "{line:?}");
        hellos.fetch_add(1, Ordering::SeqCst);
        let reply: &[u8] = match answer {
            Answer::Ok | Answer::Greet => b"OK\n",
            Answer::Refuse => b"ERR wrong password\n",
            Answer::OkAndMore => b"OK\nsurprise\n",
            Answer::Silent => {
                // Holds the connection open until the client goes.
                let _ = reader.read_to_end(&mut Vec::new());
                return;
            }
            Answer::Close => return,
        };
        if stream.write_all(reply).is_err() {
            return;
        }
    }
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if stream.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

fn pool<C: Connector>(connector: C, connect_timeout: Duration) -> Pool<C> {
    Pool::builder(connector)
        .max_per_route(4)
        .acquire_timeout(PATIENCE)
        .connect_timeout(connect_timeout)
        .build()
        .unwrap()
}

/// Sends a line and reads it back.
fn echo(stream: &mut (impl Read + Write), text: &str) -> String {
    stream.write_all(format!("{text}\n").as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0; 1];
    while reply.last() != Some(&b'\n') {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed");
        reply.push(byte[0]);
    }
    String::from_utf8(reply).unwrap()
}

#[test]
fn the_exchange_runs_once_per_connection_before_its_first_lease() {
    let _alone = alone();
    let before = Descriptors::open();
    {
        let server = LineServer::start(Answer::Ok);
        let pool = pool(TcpConnector::new().with_setup(Hello(3)), PATIENCE);
        for i in 0..10 {
            let mut conn = pool.lease(&server.addr).unwrap();
            // The first bytes a holder reads are its own reply, not `OK`.
            assert_eq!(
                echo(&mut *conn, &format!("line {i}")),
                format!("line {i}\n")
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(server.hellos.load(Ordering::SeqCst), 1);
    }
    before.assert_none_left();
}

#[test]
fn a_refusal_fails_every_waiting_request_at_once_with_its_cause() {
    let _alone = alone();
    let server = LineServer::start(Answer::Refuse);
    let pool = pool(TcpConnector::new().with_setup(Hello(0)), PATIENCE);
    let started = Instant::now();
    let errors: Vec<Error> = thread::scope(|s| {
        let waiters: Vec<_> = (0..4)
            .map(|_| s.spawn(|| pool.lease(&server.addr).unwrap_err()))
            .collect();
        waiters.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(started.elapsed() < PATIENCE / 4, "{:?}", started.elapsed());
    for err in errors {
        let text = err.to_string();
        assert!(text.contains("ERR wrong password"), "{text}");
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::PermissionDenied);
    }
    assert_eq!(pool.stats().total.leased, 0);
}

#[test]
fn a_silent_server_runs_into_the_connect_timeout_which_names_the_exchange() {
    let _alone = alone();
    let server = LineServer::start(Answer::Silent);
    let pool = pool(
        TcpConnector::new().with_setup(Hello(0)),
        Duration::from_millis(200),
    );
    let err = pool.lease(&server.addr).unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains("HELLO under way"), "{err}");
}

#[test]
fn bytes_after_the_answer_or_a_close_during_it_fail_the_connect() {
    let _alone = alone();
    let before = Descriptors::open();
    for (answer, expected) in [
        (Answer::OkAndMore, "bytes arrived after the HELLO answer"),
        (Answer::Close, "closed the connection during HELLO"),
    ] {
        let server = LineServer::start(answer);
        let pool = pool(TcpConnector::new().with_setup(Hello(0)), PATIENCE);
        let err = pool.lease(&server.addr).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    before.assert_none_left();
}

/// A server that speaks first: nothing to send, one line to read.
struct Greeting;

impl<R> Setup<R> for Greeting {
    fn request(&self, _: &R) -> Vec<u8> {
        Vec::new()
    }

    fn response(&self, route: &R, received: &[u8]) -> io::Result<Option<usize>> {
        Hello(0).response(route, received)
    }
}

#[test]
fn a_greeting_first_protocol_only_reads() {
    let _alone = alone();
    let server = LineServer::start(Answer::Greet);
    let pool = pool(TcpConnector::new().with_setup(Greeting), PATIENCE);
    let mut conn = pool.lease(&server.addr).unwrap();
    assert_eq!(
        echo(&mut *conn, "after the greeting"),
        "after the greeting\n"
    );
}

/// Over TLS: a `ping` answered by the echo server's `pong` line.
struct Ping;

impl<R> Setup<R> for Ping {
    fn request(&self, _: &R) -> Vec<u8> {
        b"ping\n".to_vec()
    }

    fn response(&self, _: &R, received: &[u8]) -> io::Result<Option<usize>> {
        Ok(received.iter().position(|&b| b == b'\n').map(|end| {
            assert!(received.starts_with(b"pong 1 a.test"), "{received:?}");
            end + 1
        }))
    }
}

#[test]
fn over_tls_the_exchange_follows_the_handshake() {
    let _alone = alone();
    let ca = Authority::new("leasehold setup test CA");
    let cert = ca.server(&["a.test"], Validity::Current);
    let server = EchoServer::start(Mode::Tls(server_config(&cert, None)), None, Vec::new());
    let connector = TlsConnector::builder()
        .root_certificates(ca.roots())
        .build()
        .unwrap();
    let pool = pool(connector.with_setup(Ping), PATIENCE);
    let route = TlsRoute::new(server.addr, "a.test").unwrap();
    for _ in 0..5 {
        let mut conn = pool.lease(&route).unwrap();
        assert!(ping(&mut *conn).unwrap().starts_with("pong 1 a.test"));
    }
    assert_eq!(server.seen.handshakes(), 1);
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_adapter_takes_a_connector_with_setup() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _alone = alone();
    let server = LineServer::start(Answer::Ok);
    let connector = leasehold::AsyncConnector::new(TcpConnector::new().with_setup(Hello(1)));
    let pool = pool(connector, PATIENCE);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = pool.lease_async(&server.addr).await.unwrap();
            conn.write_all(b"async\n").await.unwrap();
            let mut reply = [0; 6];
            conn.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply, b"async\n");
        });
    assert_eq!(server.hellos.load(Ordering::SeqCst), 1);
}
