//! Idle watching: the event loop's handle on a pooled connection's socket.
//!
//! A connection whose connector hands out a duplicate of its socket
//! ([`Connector::watch`](crate::Connector::watch)) stays registered with the
//! event loop for readability from its first day to its last. What an event
//! means depends on who has the connection, which an [`IdleMark`] tracks
//! (the protocol, model-checked, lives in `leasehold-policies`): while it is
//! leased, the loop only notes the event and the return probes the socket;
//! while it is idle, the loop probes it without blocking (`MSG_PEEK`), and
//! end of stream, an error or bytes nobody asked for mark it dead and evict
//! it at once. A lease never takes a connection marked dead.

use leasehold_policies::IdleMark;
use std::fmt;
use std::sync::Mutex;

use crate::connector::{Liveness, Watched};

/// One watched connection.
pub(crate) struct Watch {
    /// The event-loop token it is registered under.
    pub(crate) token: usize,
    mark: IdleMark,
    /// The duplicate socket and its check; taken (and closed) before the
    /// connection is.
    watched: Mutex<Option<Watched>>,
}

impl Watch {
    /// A watch for a connection that starts out leased.
    pub(crate) fn new(token: usize, watched: Watched) -> Self {
        Self {
            token,
            mark: IdleMark::leased(),
            watched: Mutex::new(Some(watched)),
        }
    }

    /// Runs `f` on the watched socket, unless it was disarmed.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Watched) -> R) -> Option<R> {
        let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        watched.as_ref().map(f)
    }

    /// A lease takes the connection: `false` if the loop found it dead.
    #[inline]
    pub(crate) fn lease(&self) -> bool {
        self.mark.lease()
    }

    /// The lease gives it back: `false` if the socket is not fit for reuse.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        self.mark
            .release(|| self.with(Watched::check).is_some_and(Liveness::is_alive))
    }

    /// The loop saw readiness: `true` if the connection is idle and dead
    /// now (the loop then evicts it).
    pub(crate) fn readiness(&self) -> bool {
        // A disarmed watch (the connection is being closed) counts as quiet.
        self.mark
            .readiness(|| self.with(Watched::check).is_none_or(Liveness::is_alive))
    }

    /// Whether the loop marked it dead.
    pub(crate) fn is_dead(&self) -> bool {
        self.mark.is_dead()
    }

    /// Closes the duplicate socket: the connection is about to be closed.
    pub(crate) fn disarm(&self) {
        let watched = self
            .watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(watched);
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("token", &self.token)
            .field("mark", &self.mark)
            .finish()
    }
}
