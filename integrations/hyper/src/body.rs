//! The body of a response: hyper's incoming body, plus the connection it
//! arrives on, which reading the body drives and, at its end, gives back
//! to the pool.

use crate::connection::{ClientConnection, InUse};
use crate::error::ClientError;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use leasehold::{Policy, Strict};
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
/// still be on its way. `is_end_stream` turns true only once the exchange
/// is over, its connection back in the pool or closed.
///
/// `P` is the policy of the client's pool.
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
pub struct ResponseBody<P: Policy = Strict> {
    incoming: Incoming,
    /// The connection, until it is given back or closed.
    attached: Option<InUse<P>>,
}

impl<P: Policy> ResponseBody<P> {
    /// The body of a response whose head arrived on `in_use`; the exchange
    /// ends at once if the body is empty.
    pub(crate) fn new(incoming: Incoming, in_use: Option<InUse<P>>, cx: &mut Context<'_>) -> Self {
        let attached = match in_use {
            Some(in_use) if incoming.is_end_stream() => {
                // No body to wait for (HEAD, 204, 304, an empty one).
                in_use.finish(cx);
                None
            }
            attached => attached,
        };
        Self { incoming, attached }
    }
}

impl<P: Policy> Body for ResponseBody<P> {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        let this = self.get_mut();
        let incoming = &mut this.incoming;
        let Some(in_use) = &mut this.attached else {
            // Whatever is left was read before hyper let go of the
            // connection.
            return Pin::new(incoming).poll_frame(cx).map_err(ClientError::Http);
        };
        let ClientConnection {
            sender,
            driver,
            turns,
            ..
        } = in_use.conn();
        let mut ending = BodyEnd::Not;
        let poll = turns.run(cx, |cx| {
            // The connection reads what the body waits for. An idle one
            // has delivered the whole body already.
            if !sender.is_ready() && driver.poll_drive(cx).is_ready() {
                // Hyper is done with the connection without going idle:
                // it is not reusable. What it read stays in `incoming`.
                ending = BodyEnd::Closed;
            }
            let frame = ready!(Pin::new(&mut *incoming).poll_frame(cx));
            match &frame {
                Some(Err(_)) => ending = BodyEnd::Closed,
                Some(Ok(_)) if !incoming.is_end_stream() => {}
                // The last frame, or the end after it.
                _ if ending == BodyEnd::Not => ending = BodyEnd::Complete,
                _ => {}
            }
            Poll::Ready(frame)
        });
        match ending {
            BodyEnd::Not => {}
            BodyEnd::Closed => this.attached = None,
            BodyEnd::Complete => {
                if let Some(in_use) = this.attached.take() {
                    in_use.finish(cx);
                }
            }
        }
        let frame = ready!(poll);
        Poll::Ready(frame.map(|frame| frame.map_err(ClientError::Http)))
    }

    fn is_end_stream(&self) -> bool {
        self.attached.is_none() && self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// How a turn of [`ResponseBody::poll_frame`] left the exchange.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    /// Under way.
    Not,
    /// The body has been read to its end.
    Complete,
    /// Hyper is done with the connection, or failed.
    Closed,
}

impl<P: Policy> fmt::Debug for ResponseBody<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("incoming", &self.incoming)
            .field("connection", &self.attached.is_some())
            .finish()
    }
}
