//! A loopback HTTP/1.1 peer for tests, examples and benchmarks: something
//! real for the pool's connections to talk to, in plaintext or over TLS,
//! with knobs for the ways a server misbehaves (slow answers, idle closes,
//! resets, a full accept queue) and counters that say what it saw.
//!
//! Its client side, [`get`], [`read_response`] and a TLS client without the
//! pool, is here too. It uses only std, `httparse`, `socket2` and `rustls`,
//! and nothing of the crate under test.
//!
//! # Implementation Details
//!
//! [`Server`] is blocking std I/O: one thread accepts, and each connection
//! gets a thread of its own. Every accepted stream is also kept, as a
//! `try_clone`, in a registry, so that shutting the server down can
//! `shutdown(Both)` each connection and wake its thread wherever it is
//! blocked. A connection thread removes its clone before it drops its own
//! stream: the socket closes (FIN, or RST after `reset_after`) only once
//! both descriptors are gone.
//!
//! The accepting thread is woken on shutdown by shutting the listening socket
//! down for reading, which on Linux fails a blocked `accept` with `EINVAL`.
//! Where that call is refused, a connection to ourselves does the same job.
//!
//! Idleness is a read timeout of `idle_close` on each accepted socket: a read
//! that times out while no part of a request is buffered closes the
//! connection.
//!
//! With [`ServerConfig::tls`], a connection's thread first completes a rustls
//! server handshake on the blocking socket (counted as full or resumed),
//! then serves the same requests through a `rustls::Stream` over it: the
//! serving loop is generic over the stream, so latency, idle close, resets
//! and the counters work the same. The read timeout surfaces through rustls
//! as the same `WouldBlock`. A connection the server ends (idle, or
//! `Connection: close`) gets a `close_notify` before its FIN, as a TLS
//! client expects; a reset gets none.

mod client;

pub use client::{close_tls, connect_tls, get, read_response, Response, TlsClient};

use rustls::{HandshakeKind, ServerConnection};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest request or response head either side accepts.
const MAX_HEAD: usize = 64 * 1024;

/// Headers parsed per message; more is an error.
const MAX_HEADERS: usize = 32;

/// Longest uninterrupted sleep while waiting out `latency`, so that a
/// shutdown is not held up by a long latency.
const SLEEP_SLICE: Duration = Duration::from_millis(10);

/// How the embedded [`Server`] behaves. Every knob defaults to the
/// well-behaved value; the methods set one knob each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Sleep before each response.
    pub latency: Duration,
    /// Close a keep-alive connection after this long without request bytes.
    /// Must not be zero.
    pub idle_close: Option<Duration>,
    /// Reset a connection (RST, through `SO_LINGER` 0) right after it has
    /// been answered this many times.
    pub reset_after: Option<u64>,
    /// Bytes of response body.
    pub body: usize,
    /// Speak TLS with this configuration.
    pub tls: Option<Tls>,
}

/// The TLS configuration of a [`ServerConfig`]; two are equal when they are
/// the same configuration.
#[derive(Debug, Clone)]
pub struct Tls(pub Arc<rustls::ServerConfig>);

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Tls {}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            idle_close: None,
            reset_after: None,
            body: 2,
            tls: None,
        }
    }
}

impl ServerConfig {
    /// Sets [`latency`](Self::latency).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets [`idle_close`](Self::idle_close).
    pub fn idle_close(mut self, after: Duration) -> Self {
        self.idle_close = Some(after);
        self
    }

    /// Sets [`reset_after`](Self::reset_after).
    pub fn reset_after(mut self, requests: u64) -> Self {
        self.reset_after = Some(requests);
        self
    }

    /// Sets [`body`](Self::body).
    pub fn body(mut self, bytes: usize) -> Self {
        self.body = bytes;
        self
    }

    /// Sets [`tls`](Self::tls): every connection shakes hands with `config`
    /// before its first request.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(Tls(config));
        self
    }
}

/// An HTTP/1.1 keep-alive server on `127.0.0.1`, answering every request
/// with `200 OK` and a body of [`ServerConfig::body`] bytes, over TLS when
/// [`ServerConfig::tls`] is set.
///
/// Dropping it (or [`shutdown`](Self::shutdown)) closes every connection and
/// joins every thread it started, leaving no descriptor behind.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// A duplicate of the listening socket, to wake the acceptor with.
    waker: TcpListener,
    acceptor: Option<JoinHandle<()>>,
}

/// What the server's threads share.
#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    /// The full response, built once.
    response: Vec<u8>,
    /// The same with `Connection: close`.
    response_close: Vec<u8>,
    stopping: AtomicBool,
    /// Set when a connection thread panicked.
    panicked: AtomicBool,
    accepted: AtomicU64,
    requests: AtomicU64,
    idle_closed: AtomicU64,
    resets: AtomicU64,
    full_handshakes: AtomicU64,
    resumed_handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    open: AtomicUsize,
    registry: Mutex<Registry>,
}

/// The open connections and the threads serving them.
#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    /// A clone of each open connection's stream, by id.
    streams: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere must not stop the shutdown that cleans up.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// Why a connection's serving loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed its side.
    PeerClosed,
    /// No request bytes for `idle_close`.
    Idle,
    /// `reset_after` requests answered.
    Reset,
    /// `Connection: close`, HTTP/1.0, or a request we refused.
    Close,
    /// The server is shutting down.
    Stopping,
}

impl Server {
    /// Binds `127.0.0.1:0` and starts accepting.
    ///
    /// # Errors
    ///
    /// When binding or spawning the accepting thread fails, or `InvalidInput`
    /// when `idle_close` is zero (a zero read timeout is refused by std).
    pub fn start(config: ServerConfig) -> io::Result<Server> {
        if config.idle_close == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "idle_close must be longer than zero",
            ));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let waker = listener.try_clone()?;
        let shared = Arc::new(Shared {
            response: response_bytes(config.body, false),
            response_close: response_bytes(config.body, true),
            config,
            stopping: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            idle_closed: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            full_handshakes: AtomicU64::new(0),
            resumed_handshakes: AtomicU64::new(0),
            failed_handshakes: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            registry: Mutex::new(Registry::default()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Server {
            addr,
            shared,
            waker,
            acceptor: Some(acceptor),
        })
    }

    /// The address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Requests answered so far (counted just before the response is
    /// written, so a client holding a response sees it counted).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Acquire)
    }

    /// Connections the server closed because they were idle for
    /// `idle_close` (counted before the socket is closed).
    pub fn idle_closed(&self) -> u64 {
        self.shared.idle_closed.load(Ordering::Acquire)
    }

    /// Connections reset after `reset_after` requests (counted before the
    /// socket is closed).
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::Acquire)
    }

    /// TLS handshakes completed in full (no session resumed).
    pub fn full_handshakes(&self) -> u64 {
        self.shared.full_handshakes.load(Ordering::Acquire)
    }

    /// TLS handshakes that resumed a session.
    pub fn resumed_handshakes(&self) -> u64 {
        self.shared.resumed_handshakes.load(Ordering::Acquire)
    }

    /// TLS handshakes completed, full and resumed (counted before the
    /// first request is read).
    pub fn handshakes(&self) -> u64 {
        self.full_handshakes() + self.resumed_handshakes()
    }

    /// TLS handshakes that failed (a client that gave up, a certificate it
    /// refused, a stall as long as `idle_close`, or the server stopping).
    pub fn failed_handshakes(&self) -> u64 {
        self.shared.failed_handshakes.load(Ordering::Acquire)
    }

    /// Connections open on the server's side: accepted and not yet closed
    /// (a connection stops counting once its socket is closed).
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Stops the server: the same as dropping it, spelled out.
    ///
    /// # Panics
    ///
    /// When one of the server's threads panicked.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Stops accepting, shuts every connection down and joins every thread.
    /// Idempotent.
    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::Release);
        // On Linux this fails the blocked `accept` with EINVAL. Elsewhere it
        // may be refused; then a connection wakes the acceptor instead, which
        // sees `stopping` and drops it.
        if socket2::SockRef::from(&self.waker)
            .shutdown(Shutdown::Read)
            .is_err()
        {
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        }
        let mut panicked = acceptor.join().is_err();
        // The acceptor is gone, so the registry holds every connection
        // there will ever be.
        let threads = {
            let mut registry = self.shared.registry();
            for stream in registry.streams.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut registry.threads)
        };
        for thread in threads {
            panicked |= thread.join().is_err();
        }
        panicked |= self.shared.panicked.load(Ordering::Acquire);
        if panicked && !thread::panicking() {
            panic!("a thread of the test HTTP server panicked");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts until `stopping`, giving each connection a thread.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors, or a connection aborted before we got
                // to it: back off briefly rather than spin.
                thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        reap_finished(shared);
        let _ = stream.set_nodelay(true);
        if stream.set_read_timeout(shared.config.idle_close).is_err() {
            continue;
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let mut registry = shared.registry();
        let id = registry.next_id;
        registry.next_id += 1;
        registry.streams.insert(id, clone);
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        shared.open.fetch_add(1, Ordering::AcqRel);
        let spawned = {
            let shared = Arc::clone(shared);
            thread::Builder::new()
                .name(format!("http-conn-{id}"))
                .spawn(move || connection(stream, id, &shared))
        };
        match spawned {
            Ok(thread) => registry.threads.push(thread),
            Err(_) => {
                // The stream went down with the closure; drop the clone too.
                registry.streams.remove(&id);
                shared.open.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Joins the connection threads that have already finished, so a long
/// benchmark does not pile up handles.
fn reap_finished(shared: &Shared) {
    let finished: Vec<JoinHandle<()>> = {
        let mut registry = shared.registry();
        let (finished, running) = std::mem::take(&mut registry.threads)
            .into_iter()
            .partition(|thread| thread.is_finished());
        registry.threads = running;
        finished
    };
    for thread in finished {
        if thread.join().is_err() {
            shared.panicked.store(true, Ordering::Release);
        }
    }
}

/// One connection's thread: serve it, count how it ended, close it.
fn connection(stream: TcpStream, id: u64, shared: &Shared) {
    let ending = match &shared.config.tls {
        None => serve(&mut &stream, shared),
        Some(Tls(config)) => serve_tls(&stream, config, shared),
    };
    match ending {
        Ok(Ending::Reset) => {
            // With a zero linger time, close sends RST instead of FIN.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            shared.resets.fetch_add(1, Ordering::AcqRel);
        }
        // Idleness was counted where it was seen, before any close_notify.
        Ok(Ending::Idle | Ending::PeerClosed | Ending::Close | Ending::Stopping) | Err(_) => {}
    }
    // Both descriptors must go before the socket closes.
    let clone = shared.registry().streams.remove(&id);
    drop(clone);
    drop(stream);
    shared.open.fetch_sub(1, Ordering::AcqRel);
}

/// What the server needs from a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RequestHead {
    /// Bytes of the head, up to and including the blank line.
    len: usize,
    /// `Content-Length` of the body that follows.
    body: usize,
    /// Whether to close the connection after answering.
    close: bool,
}

/// Shakes hands on `socket`, answers requests through TLS until one side is
/// done, and sends `close_notify` when the server is the one ending it.
fn serve_tls(
    mut socket: &TcpStream,
    config: &Arc<rustls::ServerConfig>,
    shared: &Shared,
) -> io::Result<Ending> {
    let mut tls = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    while tls.is_handshaking() {
        if let Err(e) = tls.complete_io(&mut socket) {
            shared.failed_handshakes.fetch_add(1, Ordering::AcqRel);
            return Err(e);
        }
    }
    let kind = match tls.handshake_kind() {
        Some(HandshakeKind::Resumed) => &shared.resumed_handshakes,
        _ => &shared.full_handshakes,
    };
    kind.fetch_add(1, Ordering::AcqRel);
    let ending = serve(&mut rustls::Stream::new(&mut tls, &mut socket), shared)?;
    if matches!(ending, Ending::Idle | Ending::Close) {
        // The alert goes out before the FIN that dropping the socket sends.
        tls.send_close_notify();
        while tls.wants_write() {
            if tls.write_tls(&mut socket).is_err() {
                break;
            }
        }
    }
    Ok(ending)
}

/// Answers requests on `stream` (a socket, or TLS over one) until one side
/// is done with it.
fn serve<S: Read + Write>(stream: &mut S, shared: &Shared) -> io::Result<Ending> {
    let config = &shared.config;
    // Bytes read but not yet consumed: part of a request, or several
    // pipelined ones.
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut answered: u64 = 0;
    loop {
        if config.reset_after.is_some_and(|limit| answered >= limit) {
            return Ok(Ending::Reset);
        }
        // The head of the next request.
        let head = loop {
            if shared.stopping() {
                return Ok(Ending::Stopping);
            }
            if !buf.is_empty() {
                match parse_request(&buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) if buf.len() < MAX_HEAD => {}
                    Ok(None) | Err(()) => {
                        let _ = stream.write_all(BAD_REQUEST).and_then(|()| stream.flush());
                        return Ok(Ending::Close);
                    }
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(Ending::PeerClosed),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) && buf.is_empty() => {
                    // Counted before anything of the close is sent.
                    shared.idle_closed.fetch_add(1, Ordering::AcqRel);
                    return Ok(Ending::Idle);
                }
                // Half a request is not idleness: keep waiting for the rest.
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        buf.drain(..head.len);
        // Its body, which we read and throw away; whatever follows it stays
        // in `buf` for the next round.
        let mut body_left = head.body;
        let buffered = body_left.min(buf.len());
        buf.drain(..buffered);
        body_left -= buffered;
        while body_left > 0 {
            if shared.stopping() {
                return Ok(Ending::Stopping);
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(Ending::PeerClosed),
                Ok(n) => {
                    let body = body_left.min(n);
                    body_left -= body;
                    buf.extend_from_slice(&chunk[body..n]);
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !config.latency.is_zero() && !pause(shared, config.latency) {
            return Ok(Ending::Stopping);
        }
        let response = if head.close {
            &shared.response_close
        } else {
            &shared.response
        };
        shared.requests.fetch_add(1, Ordering::AcqRel);
        stream.write_all(response)?;
        // A no-op on a socket; TLS sends the records it still holds.
        stream.flush()?;
        answered += 1;
        if head.close {
            return Ok(Ending::Close);
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is
/// incomplete, `Err` for anything we will not serve.
fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    // HTTP/1.0 closes unless asked not to; HTTP/1.1 stays open unless asked.
    let mut close = request.version != Some(1);
    let mut body = 0;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            body = std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse().ok())
                .ok_or(())?;
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked bodies are not something the pool's tests send.
            return Err(());
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = std::str::from_utf8(header.value).map_err(|_| ())?;
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        }
    }
    Ok(Some(RequestHead { len, body, close }))
}

/// The answer to a request we could not parse; the connection closes after.
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// `200 OK` with `body` bytes of "okok...".
fn response_bytes(body: usize, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let mut response =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {body}\r\n{connection}\r\n").into_bytes();
    response.extend(b"ok".iter().copied().cycle().take(body));
    response
}

/// Sleeps for `duration` in slices, giving up early when the server stops.
/// Returns whether the whole duration passed.
fn pause(shared: &Shared, duration: Duration) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        if shared.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep((deadline - now).min(SLEEP_SLICE));
    }
}

/// Whether `e` is a read timeout (std reports `WouldBlock` on Unix).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A loopback listener whose accept queue is full, so a connect to it gets
/// no SYN-ACK and waits until its timeout. Dropping it frees the port.
#[derive(Debug)]
pub struct FullBacklog {
    /// Never accepts; it holds the port while it lives.
    _listener: socket2::Socket,
    /// The connections that filled the queue; they must stay open.
    fillers: Vec<TcpStream>,
}

impl FullBacklog {
    /// How many connections it took to fill the queue.
    pub fn fillers(&self) -> usize {
        self.fillers.len()
    }
}

/// Connects until a connect no longer completes in this long.
const FILL_PROBE: Duration = Duration::from_millis(100);

/// More fillers than this means the queue is not filling up.
const MAX_FILLERS: usize = 64;

/// A listener on `127.0.0.1` whose accept backlog is full: connects to the
/// returned address hang (no SYN-ACK) until the connector's own timeout.
///
/// The listener is made with `listen(0)` and never accepts; connections are
/// opened until one fails to complete within 100 ms. Those that did complete
/// are the queue's contents and live in the returned guard.
///
/// Observed on Linux 6.18: `listen(0)` leaves room for exactly one queued
/// connection (the kernel calls the queue full only once it holds *more*
/// than the backlog), so one filler connects and the second times out. After
/// that, `TcpStream::connect_timeout(addr, 200ms)` fails with `TimedOut`, and
/// so does a 1.5 s one, which spans the client's first SYN retransmission:
/// the SYNs are dropped, never answered or refused. This held for every
/// combination of `net.ipv4.tcp_syncookies` 0/1/2 and
/// `net.ipv4.tcp_abort_on_overflow` 0/1 (tried in a private network
/// namespace). That matches the kernel's order of checks: a SYN meeting a
/// full accept queue is dropped before SYN cookies are considered, and
/// `tcp_abort_on_overflow` only governs handshakes that complete into a full
/// queue, which a dropped SYN never does.
///
/// # Errors
///
/// When the socket calls fail, a connect is refused, or the queue never
/// fills within 64 connections.
pub fn full_backlog_listener() -> io::Result<(SocketAddr, FullBacklog)> {
    use socket2::{Domain, Protocol, Socket, Type};

    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(0)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no IP address"))?;
    let mut fillers = Vec::new();
    while fillers.len() < MAX_FILLERS {
        match TcpStream::connect_timeout(&addr, FILL_PROBE) {
            Ok(stream) => fillers.push(stream),
            Err(e) if is_timeout(&e) => {
                return Ok((
                    addr,
                    FullBacklog {
                        _listener: listener,
                        fillers,
                    },
                ))
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "accept queue still not full after {MAX_FILLERS} connections"
    )))
}
