//! The hand-off primitive: one waiting request.
//!
//! A [`Node`] is shared between the request (which polls it and may cancel
//! it) and the one granter that serves the request's queue. Its `state` makes
//! the grant and the cancellation mutually exclusive:
//!
//! ```text
//!   PENDING --granter CAS--> GRANTED   (grant published, waker woken)
//!   PENDING --request CAS--> CANCELLED (no grant will ever be read)
//! ```
//!
//! How it works: [the design notes](crate::implementation#a-waiters-grant-cell).

use crate::sync::{AtomicU8, AtomicWaker, Ordering, UnsafeCell};
use crate::types::{Grant, State, Wait};
use std::fmt;
use std::task::Waker;

const PENDING: u8 = 0;
const GRANTED: u8 = 1;
const CANCELLED: u8 = 2;

/// A queued request. Exactly one granter may call [`Node::fulfil`] on a node
/// (the policy's serializer guarantees it); any number of readers may poll.
pub(crate) struct Node {
    state: AtomicU8,
    /// # Safety
    /// Written only by the granter while `state == PENDING` (and read back by
    /// it after a failed CAS); read only by the request after it observed
    /// `GRANTED`.
    grant: UnsafeCell<Option<Grant>>,
    waker: AtomicWaker,
    pub(crate) ticket: u64,
    /// When it queued, on [`clock_nanos`](crate::sync::clock_nanos).
    pub(crate) since: u64,
    pub(crate) state_token: Option<State>,
    pub(crate) mode: Wait,
}

impl Node {
    pub(crate) fn new(ticket: u64, state_token: Option<State>, mode: Wait, waker: &Waker) -> Self {
        let slot = AtomicWaker::new();
        slot.register(waker);
        Self {
            state: AtomicU8::new(PENDING),
            grant: UnsafeCell::new(None),
            waker: slot,
            ticket,
            since: crate::sync::clock_nanos(),
            state_token,
            mode,
        }
    }

    /// Wakes `waker` instead of the one registered before, when the grant is
    /// published. A grant published before this call woke the old waker:
    /// the caller looks with [`Node::try_take`] after registering.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Wakes the request without a grant, to try for an idle connection
    /// itself. A request woken this way registers its waker again before
    /// it looks, so a later nudge is never lost; until then, nudges add
    /// nothing.
    pub(crate) fn nudge(&self) {
        self.waker.wake();
    }

    /// Whether the request may take an idle connection itself, rather than
    /// only be handed one (`Lax`): it is stateless, and it waits.
    pub(crate) fn may_take_idle(&self) -> bool {
        self.state_token.is_none() && self.mode == Wait::Queue
    }

    /// Whether the request gave up.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) == CANCELLED
    }

    /// Hands `grant` to the request and wakes it, or gives the grant back if
    /// the request was cancelled. Only the node's single granter may call it.
    pub(crate) fn fulfil(&self, grant: Grant) -> Result<(), Grant> {
        if self.state.load(Ordering::Acquire) != PENDING {
            return Err(grant);
        }
        // SAFETY: we are the only granter and the state was PENDING, so the
        // request does not read the cell until our CAS below succeeds.
        self.grant.with_mut(|cell| unsafe { *cell = Some(grant) });
        match self
            .state
            .compare_exchange(PENDING, GRANTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.waker.wake();
                Ok(())
            }
            Err(_) => {
                // SAFETY: the request cancelled, so it never reads the cell;
                // we wrote it and take our grant back.
                let grant = self.grant.with_mut(|cell| unsafe { (*cell).take() });
                Err(grant.expect("the grant written above"))
            }
        }
    }

    /// Takes the grant if one has been published.
    pub(crate) fn try_take(&self) -> Option<Grant> {
        if self.state.load(Ordering::Acquire) != GRANTED {
            return None;
        }
        // SAFETY: GRANTED was observed with acquire ordering: the granter's
        // write is visible and the granter never touches the cell again. The
        // request (our caller) is the cell's only user from now on.
        self.grant.with_mut(|cell| unsafe { (*cell).take() })
    }

    /// Cancels the request. `Ok(())`: no grant will ever be published.
    /// `Err(grant)`: the granter won; the grant (if not already taken) is
    /// returned so the caller can use or give back what it holds.
    pub(crate) fn cancel(&self) -> Result<(), Option<Grant>> {
        match self
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(CANCELLED) => Ok(()),
            Err(_) => Err(self.try_take()),
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state.load(Ordering::Relaxed) {
            PENDING => "pending",
            GRANTED => "granted",
            _ => "cancelled",
        };
        f.debug_struct("Node")
            .field("state", &state)
            .field("ticket", &self.ticket)
            .field("state_token", &self.state_token)
            .field("mode", &self.mode)
            .finish()
    }
}

// SAFETY: the cell is accessed under the protocol in the module docs, which
// hands the `Grant` from one thread to another exactly once, as a channel
// does; a `Grant` is `Send`.
unsafe impl Send for Node {}
// SAFETY: as above: shared access never yields `&Grant` to two threads.
unsafe impl Sync for Node {}
