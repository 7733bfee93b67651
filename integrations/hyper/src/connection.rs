//! What the client's pool holds: a stream, plain or TLS, together with the
//! hyper HTTP/1 connection over it, made once when the stream is opened
//! and reused by every request the connection carries.
//!
//! [`ClientConnector`] opens an [`Endpoint`]'s stream with the
//! [`EndpointConnector`] (on the pool's event loop, under its connect
//! timeout), then starts `hyper::client::conn::http1` over it: hyper's
//! buffers, its request channel and the exchange state are allocated once
//! per connection, not once per request. The event loop watches the
//! socket while the connection idles, as it would the bare stream.
//!
//! # Implementation Details
//!
//! Nothing is spawned: the request's future, and then its response body,
//! poll the hyper connection themselves ([`ClientConnection::poll_drive`]),
//! so the exchange runs on the caller's task, with the connection's own
//! [`Turns`] waker keeping hyper's internal wake-ups from rescheduling it.
//!
//! A connection goes back to the pool in one way only, [`InUse::finish`],
//! once the response body has been read to its end and hyper stands idle,
//! waiting for the next request ([`SendRequest::is_ready`]): the exchange
//! ended cleanly and keep-alive holds (no `Connection: close` either way,
//! no HTTP/1.0 without keep-alive, no error, the request body handed over
//! to its end). `finish` polls hyper once more so that it looks at the
//! socket as an idle client does: a byte past the response, or the end of
//! the stream, ends the connection there. A write that hyper has not
//! flushed keeps the connection out as well (hyper counts a request body
//! as sent once it is in its buffer). Anything else drops the [`InUse`],
//! which discards the connection: an error, a body dropped before its end,
//! a request future or body cancelled at any `.await`, a panic.

use crate::endpoint::{Endpoint, EndpointConnector, EndpointHandshake, EndpointStream};
use crate::turns::Turns;
use bytes::{Buf, Bytes};
use http::Request;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use leasehold::{
    AsyncConnector, AsyncStream, Connector, MapHandshake, OwnedLease, Policy, Progress, Watched,
};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The body every request is sent with: the caller's, whatever its type,
/// behind one box (which allocates nothing for a body without state, such
/// as `Empty`).
pub(crate) type OutBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// `request` with its body boxed as [`OutBody`].
pub(crate) fn boxed<B>(request: Request<B>) -> Request<OutBody>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    request.map(|body| UnsyncBoxBody::new(InBytes { body }))
}

pin_project_lite::pin_project! {
    /// A request body whose chunks become [`Bytes`] (copied unless they
    /// are already), with its size hint kept: hyper sends `Content-Length`
    /// from an exact one, and chunked encoding otherwise.
    struct InBytes<B> {
        #[pin]
        body: B,
    }
}

impl<B> Body for InBytes<B>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().body.poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame
                    .map(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
                    .map_err(Into::into)
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A lease of the client's pool.
pub(crate) type ClientLease<P> = OwnedLease<ClientConnector, P>;

/// The connector of the client's pool: opens an [`Endpoint`]'s stream with
/// an [`EndpointConnector`] and starts a hyper HTTP/1 connection over it.
/// Closing, watching and the idle checks are those of the stream.
#[derive(Clone, Debug)]
pub struct ClientConnector {
    shared: Arc<ConnectorShared>,
}

#[derive(Debug)]
struct ConnectorShared {
    streams: AsyncConnector<EndpointConnector>,
    http1: http1::Builder,
}

impl ClientConnector {
    /// Streams from `endpoints`, HTTP/1 connections with `http1`'s options.
    pub fn new(endpoints: EndpointConnector, http1: http1::Builder) -> Self {
        Self {
            shared: Arc::new(ConnectorShared {
                streams: AsyncConnector::new(endpoints),
                http1,
            }),
        }
    }

    /// The connector of the streams.
    pub fn endpoints(&self) -> &EndpointConnector {
        self.shared.streams.get_ref()
    }
}

impl ConnectorShared {
    /// The connection over a stream that has just been opened.
    fn open(&self, stream: AsyncStream<EndpointStream>) -> io::Result<ClientConnection> {
        let watched = self.streams.watch(&stream);
        let unflushed = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(TrackedIo {
            stream,
            unflushed: unflushed.clone(),
        });
        // An HTTP/1 handshake only builds hyper's state: it completes at
        // the first poll, needing neither I/O nor a runtime.
        let handshake = pin!(self.http1.handshake(io));
        let (sender, connection) = match handshake.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(parts) => parts.map_err(io::Error::other)?,
            Poll::Pending => {
                return Err(io::Error::other(
                    "hyper's HTTP/1 handshake did not complete at once",
                ))
            }
        };
        Ok(ClientConnection {
            sender,
            driver: Driver { connection },
            unflushed,
            carried: false,
            turns: Turns::new(),
            watched: Mutex::new(watched),
        })
    }
}

impl Connector for ClientConnector {
    type Route = Endpoint;
    type Conn = ClientConnection;
    type Handshake = ClientHandshake;

    fn connect(&self, route: &Endpoint) -> io::Result<Progress<ClientConnection, ClientHandshake>> {
        let shared = self.shared.clone();
        self.shared
            .streams
            .connect(route)?
            .map(move |stream| shared.open(stream))
    }

    /// Closes the stream as its connector does (a TLS `close_notify`).
    fn close(&self, conn: ClientConnection) {
        let stream = conn.driver.connection.into_parts().io.into_inner().stream;
        self.shared.streams.close(stream);
    }

    /// The stream's watch, taken when the connection was opened.
    fn watch(&self, conn: &ClientConnection) -> Option<Watched> {
        conn.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Broken when hyper's side of the connection has ended, or a write is
    /// not flushed (see the module docs).
    fn has_broken(&self, conn: &mut ClientConnection) -> bool {
        conn.sender.is_closed() || conn.unflushed.load(Relaxed)
    }
}

/// A connect of a [`ClientConnector`] in progress: the stream's connect
/// (and TLS handshake), driven by the pool's event loop, then hyper's
/// connection over the stream.
pub type ClientHandshake =
    MapHandshake<MapHandshake<EndpointHandshake, AsyncStream<EndpointStream>>, ClientConnection>;

/// A connection of the client's pool: the stream, and hyper's HTTP/1
/// connection over it, idle between requests.
pub struct ClientConnection {
    pub(crate) sender: SendRequest<OutBody>,
    pub(crate) driver: Driver,
    /// Whether a write came after the last completed flush of the stream.
    unflushed: Arc<AtomicBool>,
    /// Whether a request was sent on the connection before.
    pub(crate) carried: bool,
    /// The waker the connection's futures are polled with.
    pub(crate) turns: Turns,
    /// What the pool's event loop watches, until it asks for it.
    watched: Mutex<Option<Watched>>,
}

impl ClientConnection {
    /// Whether hyper waits for another request, with nothing left unsent.
    fn is_idle(&self) -> bool {
        self.sender.is_ready() && !self.unflushed.load(Relaxed)
    }
}

impl fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConnection")
            .field("sender", &self.sender)
            .field("connection", &self.driver.connection)
            .finish_non_exhaustive()
    }
}

/// Hyper's side of a connection.
pub(crate) struct Driver {
    connection: Connection<TokioIo<TrackedIo>, OutBody>,
}

impl Driver {
    /// Runs the connection: writes the request, reads the response into
    /// its body. `Ready` when hyper is done with the connection, which then
    /// cannot be reused; errors reach the response or its body.
    pub(crate) fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.connection.poll_without_shutdown(cx).map(drop)
    }
}

/// The stream under hyper, noting whether bytes may wait in hyper's write
/// buffer: hyper ends every flush of its buffer with one of the stream's,
/// once the buffer is out, but may consider a request written (and itself
/// idle) while its last bytes still wait there for the socket.
struct TrackedIo {
    stream: AsyncStream<EndpointStream>,
    unflushed: Arc<AtomicBool>,
}

impl fmt::Debug for TrackedIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.stream.fmt(f)
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed.store(true, Relaxed);
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.unflushed.store(false, Relaxed);
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A leased connection carrying one exchange: discarded when dropped, back
/// to the pool only through [`finish`](Self::finish).
pub(crate) struct InUse<P: Policy> {
    /// `None` once finished.
    lease: Option<ClientLease<P>>,
}

impl<P: Policy> InUse<P> {
    pub(crate) fn new(lease: ClientLease<P>) -> Self {
        Self { lease: Some(lease) }
    }

    pub(crate) fn conn(&mut self) -> &mut ClientConnection {
        self.lease
            .as_mut()
            .expect("an InUse holds its lease until it is finished or dropped")
    }

    /// Ends the exchange after the response body's last byte: gives the
    /// connection back if hyper, polled once more, stands idle and finds
    /// nothing past the response; closes it otherwise.
    pub(crate) fn finish(mut self, cx: &mut Context<'_>) {
        let ClientConnection { driver, turns, .. } = self.conn();
        let running = turns.finally(cx, |cx| driver.poll_drive(cx)).is_pending();
        if running && self.conn().is_idle() {
            drop(self.lease.take());
        }
    }
}

impl<P: Policy> Drop for InUse<P> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.discard();
        }
    }
}

impl<P: Policy> fmt::Debug for InUse<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InUse").field("lease", &self.lease).finish()
    }
}
