//! The client side of the loopback HTTP/1.1 peer in `http.rs`: send a `GET`,
//! read exactly one response, over a `TcpStream`, a pooled `TlsStream`, a
//! rustls `StreamOwned` or any other stream that is `Read + Write`; and a
//! TLS client connection made by hand, for the unpooled baselines.
//!
//! It is a submodule of `http.rs`, which re-exports what is here; include
//! that file, not this one.
//!
//! # Implementation Details
//!
//! A response must be read without consuming a byte of the next one, so
//! that the connection can carry the next request (or a pipelined response)
//! after it. The head's length is only known once it has arrived, so:
//!
//! * a `TcpStream` peeks: what has arrived is copied without being
//!   consumed, parsed, and only the bytes of this head are then read (one
//!   or two system calls per head). Generic code finds out it has a
//!   `TcpStream` through `Any`, which is why the helpers want a `'static`
//!   stream (`&mut *lease`, not `&mut lease`);
//! * any other stream is read in steps no longer than the shortest way the
//!   head could still end: a head ends at the first `\r\n\r\n`, so a buffer
//!   ending in `\r\n` is read at most two bytes further. That is ten-odd
//!   reads per head, which over TLS copy out of the plaintext rustls has
//!   already decrypted.
//!
//! Either way the body is then read to exactly its `Content-Length`.

use super::{MAX_HEAD, MAX_HEADERS};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::any::Any;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;

/// The end of a head (with CRLF line endings, which is what `http.rs`
/// sends).
const END_OF_HEAD: &[u8] = b"\r\n\r\n";

/// One HTTP response as [`get`] read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, `Content-Length` bytes of it.
    pub body: Vec<u8>,
}

/// Sends `GET {path}` on `stream` and reads exactly one response.
///
/// Nothing past that response is consumed, so the stream can carry the next
/// request, and responses to pipelined requests can be read one by one with
/// [`read_response`]. Set a read timeout on the socket beforehand to bound
/// the wait.
///
/// # Errors
///
/// The stream's error from writing or reading (`ConnectionReset`,
/// `BrokenPipe`, `WouldBlock` on a read timeout, `UnexpectedEof` from a TLS
/// stream whose peer closed without `close_notify`), `UnexpectedEof` when
/// the peer closes before the response is complete, and `InvalidData` for a
/// response this helper cannot read (malformed, chunked, or without
/// `Content-Length`).
pub fn get<S: Read + Write + Any>(stream: &mut S, path: &str) -> io::Result<Response> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // A no-op on a socket; a TLS stream sends what it still holds.
    stream.flush()?;
    read_response(stream)
}

/// Reads exactly one response from `stream`, and not a byte more (see the
/// module docs for how).
///
/// # Errors
///
/// As for [`get`].
pub fn read_response<S: Read + Any>(stream: &mut S) -> io::Result<Response> {
    if let Some(tcp) = (stream as &mut dyn Any).downcast_mut::<TcpStream>() {
        return read_response_peeking(tcp);
    }
    read_response_stepwise(stream)
}

/// [`read_response`] on a socket: the head is found by peeking. A partial
/// head is consumed whole (it is all ours), so the next peek blocks until
/// more arrives instead of spinning.
fn read_response_peeking(stream: &mut TcpStream) -> io::Result<Response> {
    let mut head = vec![0u8; 1024];
    let mut filled = 0;
    loop {
        if filled == head.len() {
            if head.len() >= MAX_HEAD {
                return Err(invalid("response head too long"));
            }
            head.resize(head.len() * 2, 0);
        }
        let peeked = match stream.peek(&mut head[filled..]) {
            Ok(0) => return Err(closed_early()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let parsed = parse_response(&head[..filled + peeked])?;
        // `head[..filled]` alone was incomplete, so a complete head ends
        // inside what was just peeked.
        let ours = parsed.map_or(peeked, |(_, head_len, _)| head_len - filled);
        // These bytes are already queued, so this does not block.
        stream.read_exact(&mut head[filled..filled + ours])?;
        filled += ours;
        if let Some((status, _, body_len)) = parsed {
            let mut body = vec![0u8; body_len];
            // A close part-way through is reported as `UnexpectedEof`.
            stream.read_exact(&mut body)?;
            return Ok(Response { status, body });
        }
    }
}

/// [`read_response`] on a stream that cannot peek: the head is read in
/// steps that cannot run past its end.
fn read_response_stepwise<S: Read + ?Sized>(stream: &mut S) -> io::Result<Response> {
    let mut head = Vec::with_capacity(256);
    loop {
        let filled = head.len();
        let step = END_OF_HEAD.len() - end_of_head_so_far(&head);
        if filled + step > MAX_HEAD {
            return Err(invalid("response head too long"));
        }
        head.resize(filled + step, 0);
        let read = match stream.read(&mut head[filled..]) {
            Ok(0) => return Err(closed_early()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        head.truncate(filled + read);
        // Every complete head ends in a line feed.
        if head.last() != Some(&b'\n') {
            continue;
        }
        if let Some((status, head_len, body_len)) = parse_response(&head)? {
            // A head ended by bare line feeds is shorter than we assumed:
            // what was read past it is the start of the body.
            let early = head.len() - head_len;
            if early > body_len {
                return Err(invalid("read past the end of the response"));
            }
            let mut body = head.split_off(head_len);
            body.resize(body_len, 0);
            stream.read_exact(&mut body[early..])?;
            return Ok(Response { status, body });
        }
    }
}

/// How much of [`END_OF_HEAD`] `buf` ends with (0 to 3; 4 would be a
/// complete head).
fn end_of_head_so_far(buf: &[u8]) -> usize {
    (1..END_OF_HEAD.len())
        .rev()
        .find(|&k| buf.ends_with(&END_OF_HEAD[..k]))
        .unwrap_or(0)
}

fn closed_early() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "peer closed the connection before a complete response",
    )
}

/// Parses a response head: `(status, head length, body length)`, or `None`
/// while incomplete.
fn parse_response(buf: &[u8]) -> io::Result<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("malformed response: {e}"))),
    };
    let status = response.code.unwrap_or_default();
    let mut body_len = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(header.value)
                .ok()
                .and_then(|value| value.trim().parse().ok())
                .ok_or_else(|| invalid("bad Content-Length"))?;
            body_len = Some(len);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("Transfer-Encoding is not supported"));
        }
    }
    let body_len = match (body_len, status) {
        (Some(len), _) => len,
        // These never carry a body.
        (None, 100..=199 | 204 | 304) => 0,
        (None, _) => return Err(invalid("response without Content-Length")),
    };
    Ok(Some((status, head_len, body_len)))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// A TLS client connection made without a pool: see [`connect_tls`].
pub type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` (with `TCP_NODELAY`, as the pool's `TcpConnector`
/// does) and completes a TLS handshake with the server named `server_name`,
/// blocking; `config` decides whether a session is resumed.
///
/// # Errors
///
/// `InvalidInput` for a bad server name, the socket's errors, and
/// `InvalidData` when the handshake fails (certificate, alert…).
pub fn connect_tls(
    addr: SocketAddr,
    server_name: &str,
    config: &Arc<ClientConfig>,
) -> io::Result<TlsClient> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut conn = ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut socket = TcpStream::connect(addr)?;
    socket.set_nodelay(true)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut socket)?;
    }
    Ok(StreamOwned::new(conn, socket))
}

/// Ends a [`connect_tls`] connection as a well-behaved client does:
/// `close_notify`, then a FIN. Errors are ignored (the peer may be gone).
pub fn close_tls(mut client: TlsClient) {
    client.conn.send_close_notify();
    let _ = client.flush();
    let _ = client.sock.shutdown(Shutdown::Write);
}
