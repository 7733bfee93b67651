//! The client: a request's way from its URI through a pooled connection to
//! its response, and the retry of a request a reused connection could not
//! even send.

use crate::body::ResponseBody;
use crate::builder::ClientBuilder;
use crate::connection::{boxed, ClientConnection, ClientConnector, ClientLease, InUse, OutBody};
use crate::error::ClientError;
use crate::resolve::{Addrs, Resolver};
use crate::target::{prepare, Target};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use hyper::body::Body;
use leasehold::{Policy, Pool, Strict};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The pool under a [`Client`]: HTTP/1 connections to
/// [`Endpoint`](crate::Endpoint)s, plain and TLS.
pub type ClientPool<P = Strict> = Pool<ClientConnector, P>;

/// How many times a request is sent again after a reused connection turned
/// out to be closed before the request could be written to it.
const MAX_RESENDS: usize = 4;

/// An HTTP/1.1 client whose connections live in a leasehold pool.
///
/// Each request leases a connection to its URI's host (plain for `http`,
/// TLS for `https`), runs one exchange over it with hyper, and gives it
/// back, hyper's connection state with it, once the response body has been read to its end and the
/// connection can carry another request; anything else (an error,
/// `Connection: close`, a body dropped early, a cancelled request) closes
/// it. Cloning a client is cheap and shares the pool.
///
/// Requests need a tokio runtime with I/O enabled, multi-thread or
/// current-thread; building the client does not.
///
/// # Examples
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use http_body_util::BodyExt;
///
/// let client = leasehold_hyper::Client::new();
/// let response = client.get("http://127.0.0.1:8080/").await?;
/// assert!(response.status().is_success());
/// let body = response.into_body().collect().await?.to_bytes();
/// # let _ = body;
/// # Ok(())
/// # }
/// ```
pub struct Client<P: Policy = Strict> {
    pool: ClientPool<P>,
    /// Host names' addresses, shared by the clones.
    resolver: Arc<Resolver>,
}

impl Client {
    /// A client with the default settings (see [`ClientBuilder`]).
    ///
    /// # Panics
    /// When the pool's threads cannot be started or the default TLS
    /// settings are refused by the crypto provider; [`Client::builder`]
    /// returns those errors instead.
    pub fn new() -> Self {
        ClientBuilder::new()
            .build()
            .unwrap_or_else(|e| panic!("building a leasehold-hyper client failed: {e}"))
    }

    /// Starts configuring a client: pool, TCP and TLS settings, hyper's
    /// HTTP/1 options, name resolution.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Policy> Client<P> {
    pub(crate) fn from_parts(pool: ClientPool<P>, resolver: Resolver) -> Self {
        Self {
            pool,
            resolver: Arc::new(resolver),
        }
    }

    /// Sends `request` and waits for the head of its response; the body
    /// follows as it is read.
    ///
    /// The URI must be absolute, `http` or `https`. A `Host` header is
    /// added from it unless the request has one, and the request goes out
    /// with its URI in origin form (`/path?query`).
    ///
    /// A reused connection the server closed while it sat idle may fail
    /// the request before any of it was written; the request is then sent
    /// on another connection. Nothing that may have reached the server is
    /// sent twice: a request written just as the server closed the
    /// connection fails with [`ClientError::Http`] (an incomplete
    /// message), and only the caller knows whether it is safe to send
    /// again.
    ///
    /// Dropping the future at any point closes the connection it was
    /// using, if any: a connection in an unknown state never goes back
    /// to the pool.
    ///
    /// # Errors
    /// [`ClientError::Uri`] for a URI the client cannot send to,
    /// [`ClientError::Resolve`] when its host does not resolve,
    /// [`ClientError::Connect`] when no connection can be had (the pool's
    /// wait or the connect timed out, the server refused…),
    /// [`ClientError::Http`] when the exchange fails.
    pub async fn request<B>(
        &self,
        mut request: Request<B>,
    ) -> Result<Response<ResponseBody<P>>, ClientError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let target = Target::of(request.uri())?;
        let addrs = self
            .resolver
            .resolve(target.host(), target.port())
            .await
            .map_err(|source| ClientError::Resolve {
                host: target.host().to_owned(),
                source,
            })?;
        prepare(&mut request)?;
        let mut request = boxed(request);
        let mut resends = 0;
        loop {
            let mut lease = self.lease(&target, &addrs).await?;
            let reused = std::mem::replace(&mut lease.carried, true);
            match self.exchange(lease, request).await {
                Ok(response) => return Ok(response),
                Err(Failed::Unsent(returned, _)) if reused && resends < MAX_RESENDS => {
                    resends += 1;
                    request = returned;
                }
                Err(Failed::Unsent(_, error) | Failed::Exchange(error)) => {
                    return Err(ClientError::Http(error))
                }
            }
        }
    }

    /// Sends a `GET` for `uri` (see [`request`](Self::request)).
    ///
    /// # Errors
    /// As [`request`](Self::request); [`ClientError::Request`] too when `uri`
    /// does not parse.
    pub async fn get<U>(&self, uri: U) -> Result<Response<ResponseBody<P>>, ClientError>
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        let request = Request::get(uri).body(Empty::<Bytes>::new());
        self.request(request.map_err(ClientError::Request)?).await
    }

    /// The pool: its stats, per-route caps, `close_idle`, `shutdown`…
    pub fn pool(&self) -> &ClientPool<P> {
        &self.pool
    }

    /// A connection to the first of `addrs`, the target's addresses, that
    /// can be had; a refused or failed connect moves on to the next one.
    async fn lease(&self, target: &Target, addrs: &Addrs) -> Result<ClientLease<P>, ClientError> {
        let mut failure = None;
        for addr in addrs.iter() {
            let endpoint = target.endpoint(addr)?;
            match self.pool.lease_owned_async(&endpoint).await {
                Ok(lease) => return Ok(lease),
                Err(
                    e @ (leasehold::Error::Refused { .. }
                    | leasehold::Error::ConnectTimeout { .. }
                    | leasehold::Error::Connect { .. }
                    | leasehold::Error::Down { .. }),
                ) => failure = Some(e),
                Err(e) => return Err(ClientError::Connect(e)),
            }
        }
        Err(ClientError::Connect(
            failure.unwrap_or(leasehold::Error::Closed),
        ))
    }

    /// Runs one exchange on `lease`, up to the head of the response.
    async fn exchange(
        &self,
        lease: ClientLease<P>,
        request: Request<OutBody>,
    ) -> Result<Response<ResponseBody<P>>, Failed> {
        let mut in_use = Some(InUse::new(lease));
        let mut response = pin!(in_use
            .as_mut()
            .map(|in_use| in_use.conn().sender.try_send_request(request))
            .expect("just leased"));
        let head = poll_fn(|cx| {
            let Some(running) = &mut in_use else {
                return response.as_mut().poll(cx);
            };
            let ClientConnection { driver, turns, .. } = running.conn();
            let mut done = false;
            let poll = turns.run(cx, |cx| {
                // The connection first: it writes the request and reads the
                // response the other future waits for.
                if !done && driver.poll_drive(cx).is_ready() {
                    done = true;
                }
                response.as_mut().poll(cx)
            });
            if done {
                // Hyper is done with the connection without going idle: it
                // is not reusable. Discarding it also fails the response
                // future if hyper has not.
                in_use = None;
                if poll.is_pending() {
                    return response.as_mut().poll(cx);
                }
            }
            poll
        })
        .await;
        let (parts, incoming) = match head {
            Ok(response) => response.into_parts(),
            Err(mut e) => {
                drop(in_use);
                return Err(match e.take_message() {
                    Some(request) => Failed::Unsent(request, e.into_error()),
                    None => Failed::Exchange(e.into_error()),
                });
            }
        };
        let mut parts = Some((parts, incoming, in_use));
        poll_fn(|cx| {
            let (parts, incoming, in_use) = parts.take().expect("polled once");
            let body = ResponseBody::new(incoming, in_use, cx);
            Poll::Ready(Ok(Response::from_parts(parts, body)))
        })
        .await
    }
}

/// How an exchange failed.
enum Failed {
    /// Before the request was written: hyper gave it back.
    Unsent(Request<OutBody>, hyper::Error),
    /// After.
    Exchange(hyper::Error),
}

impl<P: Policy> Clone for Client<P> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            resolver: self.resolver.clone(),
        }
    }
}

impl<P: Policy> fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("pool", &self.pool)
            .field("resolver", &self.resolver)
            .finish()
    }
}

/// A client is a tower `Service` of requests, always ready: the pool
/// queues what it cannot serve at once.
impl<B, P> tower_service::Service<Request<B>> for Client<P>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    P: Policy,
{
    type Response = Response<ResponseBody<P>>;
    type Error = ClientError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<ResponseBody<P>>, ClientError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.request(request).await })
    }
}
