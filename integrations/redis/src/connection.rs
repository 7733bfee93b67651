//! [`RedisConnection`]: a pooled connection that runs the redis crate's
//! commands, blocking ([`redis::ConnectionLike`]) and, with the `tokio`
//! feature, with `.await` ([`redis::aio::ConnectionLike`]).
//!
//! # Implementation details
//!
//! Replies are read into a buffer the connection keeps, as much as the
//! socket has per read, and taken out of it one complete reply at a time
//! (`resp`). The connection tracks its state, which the pool asks about
//! when it is given back (`RedisConnector::has_broken`): it is fit for the
//! next holder only when every request got all its replies, nothing is
//! left in the buffer, no I/O error or unreadable reply was met, and no
//! command left session state behind (`session`). A request cut short (a
//! cancelled future, a panic) leaves the connection marked busy, and so
//! it is closed instead of being lent out with a reply still on its way.
//!
//! Blocking calls use the socket in its own mode. A connection that an
//! async holder used is registered with tokio, which makes the socket
//! non-blocking; a blocking call on it then waits for readiness with
//! `poll(2)` under the socket's read or write timeout, so both kinds of
//! callers can share one pool.

use crate::resp::{self, ReplyScan};
use crate::session::SessionState;
use crate::transport::RedisStream;
use leasehold::Nonblocking;
use redis::{Cmd, ConnectionLike, RedisError, RedisResult, ServerError, Value};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

/// What a read buffer starts with, and shrinks back to after a large reply.
const BUFFER: usize = 8 * 1024;

/// A buffer grown past this by a large reply is given back once empty.
const BUFFER_KEPT: usize = 256 * 1024;

#[cfg(feature = "tokio")]
pub(crate) type ConnectionIo = leasehold::AsyncStream<RedisStream>;
#[cfg(not(feature = "tokio"))]
pub(crate) type ConnectionIo = RedisStream;

/// A connection to a Redis server, lent out by a pool of
/// [`RedisConnector`](crate::RedisConnector)s: pass it (or the lease, which
/// dereferences to it) to the redis crate's `query`, `query_async`,
/// `Commands` and `AsyncCommands`.
///
/// It speaks one request at a time: a request's replies are all read
/// before the call returns, so it needs no background task. RESP3 push
/// messages that arrive between replies are skipped.
///
/// The pool closes it instead of lending it out again when it cannot be
/// trusted: after an I/O error or an unreadable reply, a request cut short
/// (a cancelled future), bytes nobody asked for, or a command that leaves
/// state on the connection (`MULTI` without `EXEC`, `WATCH`, `SELECT`,
/// `SUBSCRIBE`, `CLIENT …`; see the crate docs). A connection that failed
/// so refuses further requests; [`is_open`](ConnectionLike::is_open) says
/// `false` then.
pub struct RedisConnection {
    io: ConnectionIo,
    read: ReadBuffer,
    /// Where a `Cmd` is packed, kept for its capacity.
    out: Vec<u8>,
    state: RequestState,
    session: SessionState,
    db: i64,
}

/// Where the connection is between requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestState {
    /// Every request has had its replies.
    Ready,
    /// A request is under way (or was cut short).
    Busy,
    /// An I/O error or an unreadable reply: the protocol state is lost.
    Broken,
}

impl RedisConnection {
    pub(crate) fn new(stream: RedisStream, db: i64) -> Self {
        Self {
            #[cfg(feature = "tokio")]
            io: leasehold::AsyncStream::new(stream),
            #[cfg(not(feature = "tokio"))]
            io: stream,
            read: ReadBuffer::new(),
            out: Vec::new(),
            state: RequestState::Ready,
            session: SessionState::default(),
            db,
        }
    }

    /// The server's socket address.
    ///
    /// # Errors
    /// The socket's error (it is not connected any more…).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream().peer_addr()
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.stream().is_tls()
    }

    pub(crate) fn stream(&self) -> &RedisStream {
        #[cfg(feature = "tokio")]
        return self.io.get_ref();
        #[cfg(not(feature = "tokio"))]
        return &self.io;
    }

    pub(crate) fn stream_mut(&mut self) -> &mut RedisStream {
        stream_of(&mut self.io)
    }

    pub(crate) fn into_stream(self) -> RedisStream {
        #[cfg(feature = "tokio")]
        return self.io.into_inner();
        #[cfg(not(feature = "tokio"))]
        return self.io;
    }

    /// Whether the next holder could not pick the connection up where it
    /// is (see the type's docs).
    pub(crate) fn is_unfit(&self) -> bool {
        self.state != RequestState::Ready || !self.read.is_empty() || self.session.is_dirty()
    }

    /// Starts a request: refused unless every earlier one completed.
    fn begin(&mut self, request: &[u8]) -> RedisResult<()> {
        match self.state {
            RequestState::Ready => {}
            RequestState::Busy => {
                self.state = RequestState::Broken;
                return Err(unusable(
                    "an earlier request on this connection was cut short (a cancelled future?)",
                ));
            }
            RequestState::Broken => {
                return Err(unusable(
                    "an earlier request on this connection failed with an I/O or protocol error",
                ))
            }
        }
        self.state = RequestState::Busy;
        self.session.note(request);
        Ok(())
    }

    /// Ends a request: its outcome, with the connection marked broken if
    /// the exchange failed (an I/O error, an unreadable reply). A server's
    /// error replies are values here, so they leave it usable.
    fn end<T>(&mut self, outcome: RedisResult<T>) -> RedisResult<T> {
        match outcome {
            Ok(replies) => {
                self.state = RequestState::Ready;
                Ok(replies)
            }
            Err(e) => {
                self.state = RequestState::Broken;
                self.read.clear();
                Err(e)
            }
        }
    }

    fn send_blocking(&mut self, request: &[u8]) -> io::Result<()> {
        let stream = stream_of(&mut self.io);
        let mut sent = 0;
        while sent < request.len() {
            match stream.write(&request[sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) => wait_after(stream.socket(), Direction::Write, e)?,
            }
        }
        loop {
            match stream.flush() {
                Ok(()) => return Ok(()),
                Err(e) => wait_after(stream.socket(), Direction::Write, e)?,
            }
        }
    }

    /// The next reply that is not a push message.
    fn reply_blocking(&mut self) -> RedisResult<Value> {
        let stream = stream_of(&mut self.io);
        loop {
            if let Some(value) = self.read.next()? {
                if !matches!(value, Value::Push { .. }) {
                    return Ok(value);
                }
                continue;
            }
            match stream.read(self.read.spare()) {
                Ok(0) => return Err(closed()),
                Ok(n) => self.read.filled(n),
                Err(e) => wait_after(stream.socket(), Direction::Read, e)?,
            }
        }
    }

    /// Sends `request` and reads `replies` replies (see [`Replies`]).
    fn request_blocking(&mut self, request: &[u8], mut replies: Replies) -> RedisResult<Replies> {
        self.begin(request)?;
        let outcome = self
            .send_blocking(request)
            .map_err(RedisError::from)
            .and_then(|()| {
                while !replies.is_complete() {
                    replies.push(self.reply_blocking()?);
                }
                Ok(replies)
            });
        self.end(outcome)
    }
}

fn stream_of(io: &mut ConnectionIo) -> &mut RedisStream {
    #[cfg(feature = "tokio")]
    return io.get_mut();
    #[cfg(not(feature = "tokio"))]
    return io;
}

/// The replies a request expects, gathered as the redis crate's own
/// connections gather them: for `query`, one; for a pipeline, `offset`
/// replies to skip (the `QUEUED`s of a transaction, whose errors abort it)
/// and `count` to keep.
#[derive(Debug)]
pub(crate) struct Replies {
    skip: usize,
    keep: usize,
    /// The first kept reply, apart: a single command allocates nothing.
    first: Option<Value>,
    rest: Vec<Value>,
    refused: Option<ServerError>,
}

impl Replies {
    pub(crate) fn one() -> Self {
        Self::pipeline(0, 1)
    }

    pub(crate) fn none() -> Self {
        Self::pipeline(0, 0)
    }

    pub(crate) fn pipeline(offset: usize, count: usize) -> Self {
        Self {
            skip: offset,
            keep: count,
            first: None,
            // Room for `first` too, which joins them at the end.
            rest: Vec::with_capacity(if count > 1 { count } else { 0 }),
            refused: None,
        }
    }

    fn kept(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.skip == 0 && self.kept() == self.keep
    }

    pub(crate) fn push(&mut self, value: Value) {
        if self.skip > 0 {
            self.skip -= 1;
            if let (Value::ServerError(e), None) = (value, &self.refused) {
                self.refused = Some(e);
            }
        } else if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.rest.push(value);
        }
    }

    /// The kept replies, or the first error among the skipped ones.
    pub(crate) fn finish(mut self) -> RedisResult<Vec<Value>> {
        if let Some(e) = self.refused {
            return Err(e.into());
        }
        if let Some(first) = self.first {
            self.rest.insert(0, first);
        }
        Ok(self.rest)
    }

    pub(crate) fn single(self) -> Value {
        self.first.unwrap_or(Value::Nil)
    }
}

/// The error of a request on a connection that cannot take one.
fn unusable(why: &'static str) -> RedisError {
    RedisError::from(io::Error::new(io::ErrorKind::NotConnected, why))
}

fn closed() -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the Redis server closed the connection",
    ))
}

/// Which way a blocking call moves bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    Read,
    Write,
}

/// Handles the error `e` of a blocking read or write: an interruption or
/// a non-blocking socket with nothing to do yet returns (after waiting
/// for readiness, in the second case) so that the caller tries again;
/// everything else is the caller's error.
fn wait_after(socket: BorrowedFd<'_>, direction: Direction, e: io::Error) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    match e.kind() {
        io::ErrorKind::Interrupted => return Ok(()),
        io::ErrorKind::WouldBlock => {}
        _ => return Err(e),
    }
    let sock = socket2::SockRef::from(&socket);
    let what = match direction {
        Direction::Read => "reading a Redis reply",
        Direction::Write => "sending a Redis request",
    };
    if !sock.nonblocking()? {
        // A blocking socket says `WouldBlock` when its timeout ran out.
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} timed out"),
        ));
    }
    let (timeout, flags) = match direction {
        Direction::Read => (sock.read_timeout()?, PollFlags::IN),
        Direction::Write => (sock.write_timeout()?, PollFlags::OUT),
    };
    let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
    let mut fds = [PollFd::new(&socket, flags)];
    match poll(&mut fds, timeout.as_ref()) {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} timed out"),
        )),
        Ok(_) => Ok(()),
        Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The bytes read and not yet taken as replies, and how far the reply at
/// their front has been scanned.
#[derive(Debug)]
pub(crate) struct ReadBuffer {
    /// Always initialized in full; `start..end` holds the unread bytes.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    scan: ReplyScan,
}

impl ReadBuffer {
    fn new() -> Self {
        Self {
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            scan: ReplyScan::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The next complete reply in the buffer, taken out of it.
    pub(crate) fn next(&mut self) -> RedisResult<Option<Value>> {
        let unread = &self.buf[self.start..self.end];
        let Some(len) = self.scan.complete(unread)? else {
            return Ok(None);
        };
        let value = resp::decode(&unread[..len]);
        self.start += len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > BUFFER_KEPT {
                self.buf = vec![0; BUFFER];
            }
        }
        value.map(Some)
    }

    /// Room after the unread bytes for a read, made if there is none.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Counts `n` bytes read into [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.scan.reset();
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.request_blocking(cmd, Replies::one())
            .map(Replies::single)
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.request_blocking(cmd, Replies::pipeline(offset, count))?
            .finish()
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let mut packed = std::mem::take(&mut self.out);
        packed.clear();
        cmd.write_packed_command(&mut packed);
        let replies = if cmd.is_no_response() {
            Replies::none()
        } else {
            Replies::one()
        };
        let result = self.request_blocking(&packed, replies).map(Replies::single);
        self.out = packed;
        result
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.state != RequestState::Broken
    }
}

#[cfg(feature = "tokio")]
mod aio {
    //! The async side: the same exchange over leasehold's `AsyncStream`.

    use super::{closed, RedisConnection, Replies};
    use leasehold::Nonblocking;
    use redis::aio::ConnectionLike;
    use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
    use std::future::poll_fn;
    use std::io;
    use std::pin::Pin;
    use std::task::{ready, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    impl RedisConnection {
        async fn send_async(&mut self, request: &[u8]) -> io::Result<()> {
            let io = &mut self.io;
            let mut sent = 0;
            // A request usually fits the socket's buffer at once: written
            // without a trip through the runtime's reactor, which is only
            // needed to wait.
            while sent < request.len() {
                match io.get_mut().try_write(&request[sent..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            while sent < request.len() {
                let n = poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, &request[sent..])).await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                sent += n;
            }
            if !io.get_ref().is_tls() {
                // A TCP write leaves nothing behind to flush.
                return Ok(());
            }
            poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
        }

        async fn reply_async(&mut self) -> RedisResult<Value> {
            loop {
                if let Some(value) = self.read.next()? {
                    if !matches!(value, Value::Push { .. }) {
                        return Ok(value);
                    }
                    continue;
                }
                let (io, spare) = (&mut self.io, self.read.spare());
                let n = poll_fn(|cx| {
                    let mut buf = ReadBuf::new(&mut *spare);
                    ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
                    Poll::Ready(Ok::<_, io::Error>(buf.filled().len()))
                })
                .await?;
                if n == 0 {
                    return Err(closed());
                }
                self.read.filled(n);
            }
        }

        async fn request_async(
            &mut self,
            request: &[u8],
            mut replies: Replies,
        ) -> RedisResult<Replies> {
            self.begin(request)?;
            let outcome: RedisResult<Replies> = async {
                self.send_async(request).await.map_err(RedisError::from)?;
                while !replies.is_complete() {
                    replies.push(self.reply_async().await?);
                }
                Ok(replies)
            }
            .await;
            self.end(outcome)
        }
    }

    impl ConnectionLike for RedisConnection {
        fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
            Box::pin(async move {
                let mut packed = std::mem::take(&mut self.out);
                packed.clear();
                cmd.write_packed_command(&mut packed);
                let replies = if cmd.is_no_response() {
                    Replies::none()
                } else {
                    Replies::one()
                };
                let result = self.request_async(&packed, replies).await;
                self.out = packed;
                result.map(Replies::single)
            })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            pipeline: &'a Pipeline,
            offset: usize,
            count: usize,
        ) -> RedisFuture<'a, Vec<Value>> {
            Box::pin(async move {
                let packed = pipeline.get_packed_pipeline();
                self.request_async(&packed, Replies::pipeline(offset, count))
                    .await?
                    .finish()
            })
        }

        fn get_db(&self) -> i64 {
            self.db
        }
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("peer", &self.peer_addr().ok())
            .field("tls", &self.is_tls())
            .field("db", &self.db)
            .field("state", &self.state)
            .field("unread", &(self.read.end - self.read.start))
            .field("session", &self.session)
            .finish()
    }
}
