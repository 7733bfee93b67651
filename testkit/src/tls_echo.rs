//! A TLS line server on loopback for tests: each accepted connection is one
//! thread that shakes hands (rustls, blocking), then answers every line
//! with `pong <connection> <sni> <client>`, naming the server-side
//! connection number, the SNI name the client sent and the client
//! certificate's name (`-` for none). It counts handshakes (full and
//! resumed) and clean closes (a `close_notify` before end of stream),
//! records the client certificate each handshake saw, can close
//! connections idle too long with a `close_notify`, and has two broken
//! twins: one that answers in plaintext, one that never answers.

use leasehold::rustls::pki_types::CertificateDer;
use leasehold::rustls::{HandshakeKind, ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the server does with a connection.
#[derive(Clone, Debug)]
pub enum Mode {
    /// TLS with this configuration.
    Tls(Arc<ServerConfig>),
    /// Answers whatever arrives with an HTTP 400, in plaintext.
    Plaintext,
    /// Accepts and never says a word.
    Silent,
}

/// What the server has seen.
#[derive(Debug, Default)]
pub struct Seen {
    /// Connections accepted.
    pub accepted: AtomicUsize,
    /// Handshakes completed without resuming a session.
    pub full_handshakes: AtomicUsize,
    /// Handshakes that resumed a session.
    pub resumed_handshakes: AtomicUsize,
    /// Handshakes that failed.
    pub failed_handshakes: AtomicUsize,
    /// Connections the client ended with `close_notify`.
    pub clean_closes: AtomicUsize,
    /// Connections the server closed for idleness.
    pub idle_closes: AtomicUsize,
    /// The name of the client certificate each completed handshake saw
    /// (`-` for none), in the order they completed.
    pub clients: Mutex<Vec<String>>,
}

impl Seen {
    /// How many completed handshakes saw the client certificate `name`.
    pub fn clients_named(&self, name: &str) -> usize {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.iter().filter(|seen| *seen == name).count()
    }
}

impl Seen {
    /// Handshakes completed, full and resumed.
    pub fn handshakes(&self) -> usize {
        self.full_handshakes.load(Ordering::SeqCst) + self.resumed_handshakes.load(Ordering::SeqCst)
    }
}

/// A running server; stops accepting when dropped.
#[derive(Debug)]
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it has seen so far.
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    /// Sockets of `Mode::Silent`, held open until the server is dropped.
    held: Arc<Mutex<Vec<TcpStream>>>,
}

/// Names client certificates for the replies: (certificate, name).
pub type ClientNames = Vec<(CertificateDer<'static>, String)>;

impl EchoServer {
    /// A TLS echo server presenting `cert` that requires a client
    /// certificate issued by `clients` and verifies it; it names the
    /// certificates in `names` in its replies and in [`Seen::clients`].
    pub fn requiring_clients(
        cert: &crate::pki::Certified,
        clients: &crate::pki::Authority,
        names: &[(&crate::pki::Certified, &str)],
    ) -> Self {
        let config = crate::pki::server_config_requiring(cert, clients);
        let names = names
            .iter()
            .map(|(cert, name)| (cert.chain[0].clone(), (*name).to_owned()))
            .collect();
        Self::start(Mode::Tls(config), None, names)
    }

    /// Listens on a free loopback port and serves each connection as `mode`
    /// says; with `idle_close`, closes TLS connections idle that long;
    /// `clients` names the client certificates it may be shown.
    pub fn start(mode: Mode, idle_close: Option<Duration>, clients: ClientNames) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let clients = Arc::new(clients);
        {
            let (seen, stop, held) = (seen.clone(), stop.clone(), held.clone());
            thread::spawn(move || {
                for (n, stream) in listener.incoming().enumerate() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    seen.accepted.fetch_add(1, Ordering::SeqCst);
                    match &mode {
                        Mode::Silent => held.lock().unwrap().push(stream),
                        Mode::Plaintext => {
                            thread::spawn(move || plaintext(stream));
                        }
                        Mode::Tls(config) => {
                            let (config, seen, clients) =
                                (config.clone(), seen.clone(), clients.clone());
                            thread::spawn(move || {
                                tls(stream, n + 1, config, idle_close, &seen, &clients)
                            });
                        }
                    }
                }
            });
        }
        Self {
            addr,
            seen,
            stop,
            held,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        self.held.lock().unwrap().clear();
    }
}

fn plaintext(mut stream: TcpStream) {
    let mut buf = [0; 1024];
    let _ = stream.read(&mut buf);
    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let _ = stream.shutdown(Shutdown::Both);
}

fn tls(
    mut sock: TcpStream,
    n: usize,
    config: Arc<ServerConfig>,
    idle_close: Option<Duration>,
    seen: &Seen,
    clients: &ClientNames,
) {
    let mut conn = ServerConnection::new(config).expect("a server connection");
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            seen.failed_handshakes.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => seen.resumed_handshakes.fetch_add(1, Ordering::SeqCst),
        _ => seen.full_handshakes.fetch_add(1, Ordering::SeqCst),
    };
    let sni = conn.server_name().unwrap_or("-").to_owned();
    let client = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map_or("-".to_owned(), |cert| {
            clients
                .iter()
                .find(|(known, _)| known == cert)
                .map_or("unknown".to_owned(), |(_, name)| name.clone())
        });
    seen.clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(client.clone());
    sock.set_read_timeout(idle_close).unwrap();
    let mut stream = leasehold::rustls::StreamOwned::new(conn, sock);
    let mut line = Vec::new();
    let mut byte = [0; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => {
                seen.clean_closes.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(_) if byte[0] == b'\n' => {
                let reply = format!("pong {n} {sni} {client}\n");
                line.clear();
                if stream.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
            Ok(_) => line.push(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                seen.idle_closes.fetch_add(1, Ordering::SeqCst);
                stream.conn.send_close_notify();
                let _ = stream.flush();
                let _ = stream.sock.shutdown(Shutdown::Both);
                return;
            }
            Err(_) => return,
        }
    }
}

/// Sends `ping` and reads the reply line.
pub fn ping(stream: &mut (impl Read + Write)) -> io::Result<String> {
    stream.write_all(b"ping\n")?;
    let mut reply = Vec::new();
    let mut byte = [0; 1];
    loop {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            return Ok(String::from_utf8(reply).expect("an ASCII reply"));
        }
        reply.push(byte[0]);
    }
}
