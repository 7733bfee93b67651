//! A connector whose connects take as long as the server wants: after the
//! TCP connect, the handshake waits (on readiness, in the pool's event
//! loop) for a one-byte greeting, as database protocols do. With
//! [`GreetingServer`], which greets each new connection after a set delay,
//! tests and benchmarks get slow connects on loopback without sleeping on
//! any pool thread.

use leasehold::{Connector, Handshake, Progress};
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Connects over TCP, then waits for the server's greeting byte.
#[derive(Clone, Debug, Default)]
pub struct GreetingConnector;

/// A connect in progress: TCP first, then the greeting.
#[derive(Debug)]
pub struct GreetingHandshake {
    stream: Option<mio::net::TcpStream>,
}

impl Source for GreetingHandshake {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.stream()?.register(r, t, i)
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.stream()?.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match &mut self.stream {
            Some(stream) => stream.deregister(r),
            None => Ok(()),
        }
    }
}

impl GreetingHandshake {
    fn stream(&mut self) -> io::Result<&mut mio::net::TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::other("handshake already finished"))
    }
}

impl Handshake for GreetingHandshake {
    type Conn = TcpStream;

    fn interest(&self) -> Interest {
        Interest::READABLE
    }

    fn advance(&mut self) -> io::Result<Option<TcpStream>> {
        let stream = self.stream()?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {
                // Hand over a duplicate: the registered descriptor stays with
                // the handshake until the pool deregisters and drops it.
                let conn = duplicate(self.stream()?)?;
                conn.set_nonblocking(false)?;
                conn.set_nodelay(true)?;
                Ok(Some(conn))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A `std` stream on a duplicate of the mio stream's descriptor.
fn duplicate(stream: &mio::net::TcpStream) -> io::Result<TcpStream> {
    use std::os::fd::{AsFd, OwnedFd};
    let fd: OwnedFd = stream.as_fd().try_clone_to_owned()?;
    Ok(TcpStream::from(fd))
}

impl Connector for GreetingConnector {
    type Route = SocketAddr;
    type Conn = TcpStream;
    type Handshake = GreetingHandshake;

    fn connect(&self, addr: &SocketAddr) -> io::Result<Progress<TcpStream, GreetingHandshake>> {
        Ok(Progress::Pending(GreetingHandshake {
            stream: Some(mio::net::TcpStream::connect(*addr)?),
        }))
    }

    fn close(&self, conn: TcpStream) {
        let _ = conn.shutdown(Shutdown::Write);
    }

    fn watch(&self, conn: &TcpStream) -> Option<leasehold::Watched> {
        let dup = conn.try_clone().ok()?;
        Some(leasehold::Watched::socket(dup.into()))
    }
}

/// Greets each accepted connection after `delay`, then echoes what it reads
/// until the client closes.
#[derive(Debug)]
pub struct GreetingServer {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    /// Connections accepted and not yet greeted (connects in flight), now
    /// and at most.
    ungreeted: Arc<(AtomicU64, AtomicU64)>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl GreetingServer {
    /// Listens on a free loopback port and greets each connection `delay`
    /// after accepting it.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    pub fn start(delay: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let ungreeted = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            let ungreeted = ungreeted.clone();
            let (streams, threads) = (streams.clone(), threads.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let now = ungreeted.0.fetch_add(1, Ordering::SeqCst) + 1;
                    ungreeted.1.fetch_max(now, Ordering::SeqCst);
                    let ungreeted = ungreeted.clone();
                    if let Ok(clone) = stream.try_clone() {
                        streams.lock().unwrap().push(clone);
                    }
                    let stop = stop.clone();
                    let serve = thread::spawn(move || {
                        let greet_at = std::time::Instant::now() + delay;
                        while std::time::Instant::now() < greet_at && !stop.load(Ordering::SeqCst) {
                            thread::sleep(Duration::from_millis(2));
                        }
                        // Counted out before the greeting goes: the client starts
                        // its next connect only once it has it.
                        ungreeted.0.fetch_sub(1, Ordering::SeqCst);
                        if stop.load(Ordering::SeqCst) || stream.write_all(b"+").is_err() {
                            return;
                        }
                        let mut buf = [0u8; 512];
                        while let Ok(n @ 1..) = stream.read(&mut buf) {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                    threads.lock().unwrap().push(serve);
                }
            })
        };
        Ok(Self {
            addr,
            accepted,
            ungreeted,
            stop,
            streams,
            threads,
            acceptor: Some(acceptor),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The most connections that were accepted and waiting for their
    /// greeting at once: connects in flight, as the server saw them.
    pub fn most_ungreeted(&self) -> u64 {
        self.ungreeted.1.load(Ordering::SeqCst)
    }
}

impl Drop for GreetingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for thread in self.threads.lock().unwrap().drain(..) {
            let _ = thread.join();
        }
    }
}
