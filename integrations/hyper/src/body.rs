//! The body of a response: hyper's incoming body, plus the connection it
//! arrives on, which reading the body drives and, at its end, gives back
//! to the pool.

use crate::error::Error;
use crate::exchange::Exchange;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The body of a response from a [`Client`](crate::Client): a [`Body`] of
/// [`Bytes`].
///
/// Reading it runs the connection it arrives on. Once it has been read to
/// its end (the frame that completes it, or the `None` after the last
/// one), the connection goes back to the pool; dropped before that, it
/// closes the connection instead, since the rest of the response would
/// still be on its way. `is_end_stream` turns true only once the
/// connection is back.
///
/// ```no_run
/// # async fn run(client: leasehold_hyper::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use http_body_util::BodyExt;
///
/// let response = client.get("http://127.0.0.1:8080/").await?;
/// let bytes = response.into_body().collect().await?.to_bytes();
/// # let _ = bytes;
/// # Ok(())
/// # }
/// ```
pub struct ResponseBody {
    incoming: Incoming,
    /// The connection, until it is given back or closed.
    exchange: Option<Box<dyn Exchange>>,
}

impl ResponseBody {
    pub(crate) fn new(incoming: Incoming, exchange: Box<dyn Exchange>) -> Self {
        Self {
            incoming,
            exchange: Some(exchange),
        }
    }

    /// A body whose connection hyper is done with already.
    pub(crate) fn detached(incoming: Incoming) -> Self {
        Self {
            incoming,
            exchange: None,
        }
    }

    /// Whether the body has been read to its end: nothing more will come.
    pub(crate) fn is_complete(&self) -> bool {
        self.incoming.is_end_stream()
    }

    /// Ends the exchange after the body's last byte: gives the connection
    /// back if hyper is ready for another request on it, closes it if not.
    pub(crate) fn finish(&mut self, cx: &mut Context<'_>) {
        if let Some(mut exchange) = self.exchange.take() {
            // Reading the last frame usually leaves hyper idle already; if
            // not, one more turn settles it, or shows it will not be.
            if exchange.is_idle() || (exchange.poll_drive(cx).is_pending() && exchange.is_idle()) {
                exchange.release();
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        // The connection reads what the body waits for. An idle one has
        // delivered the whole body already.
        if let Some(exchange) = &mut this.exchange {
            if !exchange.is_idle() && exchange.poll_drive(cx).is_ready() {
                // Hyper is done with the connection without going idle: it
                // is not reusable. What it read stays in `incoming`.
                this.exchange = None;
            }
        }
        match ready!(Pin::new(&mut this.incoming).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if this.incoming.is_end_stream() {
                    this.finish(cx);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.exchange = None;
                Poll::Ready(Some(Err(Error::Http(e))))
            }
            None => {
                this.finish(cx);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.is_none() && self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("incoming", &self.incoming)
            .field("connection", &self.exchange.is_some())
            .finish()
    }
}
