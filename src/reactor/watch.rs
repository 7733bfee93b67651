//! Idle watching: the event loop's handle on a pooled connection's socket.
//!
//! A connection whose connector hands out a duplicate of its socket
//! ([`Connector::watch`](crate::Connector::watch)) stays registered with the
//! event loop from its first day to its last, in one of two modes. While it
//! is leased, or was leased within the last arming period or two, the loop
//! hears only of a close or an error (`EPOLLRDHUP`, with `EPOLLERR` and
//! `EPOLLHUP`): a holder's responses never wake it. Once the loop has found
//! it idle at two looks in a row, it probes it without blocking
//! (`MSG_PEEK`) and widens the registration to bytes as well, so that an
//! idle connection the peer writes to is evicted too, and so are bytes a
//! holder left unread; the first readiness while it is leased again
//! narrows it back. An [`LeaseMark`] (the protocol, model-checked, lives in
//! `leasehold-policies`) keeps leases, returns and the loop in step: a
//! close seen while the connection is leased makes its return close it; a
//! close, an error or stray bytes seen while it is idle mark it dead and
//! evict it at once; a lease never takes one marked dead. Neither the lease
//! nor the return makes a system call.
//!
//! Closes alone can be asked for on Linux and Android (`EPOLLRDHUP`);
//! elsewhere the narrow mode is no registration at all, and a connection
//! used within the last period or two is not watched.

use leasehold_policies::unstable::{Arming, LeaseMark, WatchEvent};
use mio::{Registry, Token};
use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::connector::{Liveness, Watched};

/// One watched connection.
pub(crate) struct Watch {
    /// The event-loop token it is registered under.
    pub(crate) token: usize,
    mark: LeaseMark,
    /// The duplicate socket and its check; taken (and closed) before the
    /// connection is.
    watched: Mutex<Option<Watched>>,
}

impl Watch {
    /// A watch for a connection that starts out leased.
    pub(crate) fn new(token: usize, watched: Watched) -> Self {
        Self {
            token,
            mark: LeaseMark::leased(),
            watched: Mutex::new(Some(watched)),
        }
    }

    /// Runs `f` on the watched socket, unless its duplicate was dropped.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Watched) -> R) -> Option<R> {
        let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        watched.as_ref().map(f)
    }

    /// A lease takes the connection: `false` if the loop found it dead.
    #[inline]
    pub(crate) fn lease(&self) -> bool {
        self.mark.lease()
    }

    /// The lease gives it back: `false` if the loop saw the peer close it,
    /// or an error on it, meanwhile.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        self.mark.release()
    }

    /// The loop saw readiness on the socket.
    pub(crate) fn readiness(&self) -> WatchEvent {
        self.mark.readiness(|| self.quiet())
    }

    /// How many leases it has had, if it is idle, unarmed and alive.
    pub(crate) fn idle_leases(&self) -> Option<u32> {
        self.mark.idle_leases()
    }

    /// The loop registered for its socket: probe and arm it.
    pub(crate) fn arm(&self, leases: u32) -> Arming {
        self.mark.arm(leases, || self.quiet())
    }

    /// The probe the loop runs; a dropped duplicate (the connection is
    /// being closed) counts as quiet.
    fn quiet(&self) -> bool {
        self.with(Watched::check).is_none_or(Liveness::is_alive)
    }

    /// Whether the loop marked it dead.
    pub(crate) fn is_dead(&self) -> bool {
        self.mark.is_dead()
    }

    /// Ends the loop's registration of the socket now (the connection
    /// leaves the pool open, so closing the duplicate would not end it).
    pub(crate) fn unregister(&self, registry: &Registry) {
        self.with(|watched| {
            let raw = watched.fd().as_raw_fd();
            // Not registered (never watchable): nothing to end.
            let _ = registry.deregister(&mut mio::unix::SourceFd(&raw));
        });
    }

    /// Closes the duplicate socket: the connection is about to be closed.
    pub(crate) fn drop_duplicate(&self) {
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

/// How often the loop looks at the connections it watches for closes
/// only: one found idle at two looks in a row, not leased in between, is
/// watched for bytes as well. It has then been idle for one to two periods.
pub(crate) const ARM_PERIOD: Duration = Duration::from_millis(50);

/// The loop's table of watched connections: each one's watch, and the
/// unarmed ones (registered for closes only), each with its lease count if
/// it was idle at the last look.
#[derive(Default)]
pub(crate) struct Watches {
    table: HashMap<Token, Arc<Watch>>,
    unarmed: Vec<(Token, Option<u32>)>,
}

impl Watches {
    /// A new connection, leased to its opener: watched for closes at once,
    /// for bytes once it has been idle through an arming period.
    pub(crate) fn add(&mut self, registry: &Registry, watch: Arc<Watch>) {
        let token = Token(watch.token);
        match watch.with(|watched| interest::closes(registry, watched.fd(), token, true)) {
            Some(Ok(())) => {}
            // Not watchable: unwatched, as every other one would be.
            Some(Err(e)) => return tracing::debug!(error = %e, "cannot watch a pooled socket"),
            None => return, // closed before the loop got to it
        }
        self.unarmed.push((token, None));
        self.table.insert(token, watch);
    }

    /// The connection is being closed (its duplicate already dropped; the
    /// registration lasts until the connection's own descriptor is closed,
    /// and events for the token meanwhile find no entry).
    pub(crate) fn forget(&mut self, token: usize) {
        self.table.remove(&Token(token));
    }

    /// Whether some connection waits to be armed: the loop looks again
    /// after [`ARM_PERIOD`].
    pub(crate) fn waiting(&self) -> bool {
        !self.unarmed.is_empty()
    }

    /// Readiness on a watched socket: `true` if it marked an idle
    /// connection dead. A leased one that was armed is watched for closes
    /// only from now on.
    pub(crate) fn readiness(&mut self, registry: &Registry, token: Token) -> bool {
        let Some(watch) = self.table.get(&token) else {
            return false;
        };
        match watch.readiness() {
            WatchEvent::Quiet | WatchEvent::Doomed => false,
            WatchEvent::Dead => true,
            WatchEvent::Leased => {
                // A close that came with the traffic is reported again by
                // the narrower registration.
                narrow(registry, watch);
                self.unarmed.push((token, None));
                false
            }
        }
    }

    /// Arms every unarmed connection that was idle at the last look and
    /// still is, not leased in between: `true` if the probe found one dead.
    pub(crate) fn arm_idle(&mut self, registry: &Registry) -> bool {
        let mut dead = false;
        let table = &self.table;
        self.unarmed.retain_mut(|(token, seen)| {
            let Some(watch) = table.get(token) else {
                return false; // closed
            };
            if watch.is_dead() {
                return false;
            }
            let idle = watch.idle_leases();
            let Some(leases) = idle.filter(|_| idle == *seen) else {
                *seen = idle;
                return true;
            };
            // Widening reports bytes already there (epoll queues them),
            // and the probe in `arm` finds them first.
            match watch.with(|watched| interest::bytes(registry, watched.fd(), *token)) {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "cannot watch a pooled socket");
                    return false;
                }
                None => return false, // being closed
            }
            match watch.arm(leases) {
                Arming::Armed => false,
                Arming::Dead => {
                    dead = true;
                    false
                }
                Arming::Busy => {
                    narrow(registry, watch);
                    *seen = None;
                    true
                }
            }
        });
        dead
    }
}

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watches")
            .field("watched", &self.table.len())
            .field("unarmed", &self.unarmed.len())
            .finish()
    }
}

/// Watches a socket for closes only; one whose duplicate was dropped is
/// not watched any more anyway.
fn narrow(registry: &Registry, watch: &Watch) {
    let token = Token(watch.token);
    if let Some(Err(e)) =
        watch.with(|watched| interest::closes(registry, watched.fd(), token, false))
    {
        tracing::debug!(error = %e, "cannot narrow the watch on a pooled socket");
    }
}

/// The two registrations, edge-triggered.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod interest {
    use super::BorrowedFd;
    use mio::{Registry, Token};
    use rustix::event::epoll::{self, EventData, EventFlags};
    use std::io;
    use std::os::fd::AsFd;

    /// Closes and errors only (`EPOLLRDHUP`; `EPOLLERR` and `EPOLLHUP`
    /// come with every registration), registered anew if `new`.
    pub(super) fn closes(
        registry: &Registry,
        fd: BorrowedFd<'_>,
        token: Token,
        new: bool,
    ) -> io::Result<()> {
        let flags = EventFlags::RDHUP | EventFlags::ET;
        let data = EventData::new_u64(token.0 as u64);
        let epoll = registry.as_fd();
        if new {
            epoll::add(epoll, fd, data, flags)?;
        } else {
            epoll::modify(epoll, fd, data, flags)?;
        }
        Ok(())
    }

    /// Bytes as well as closes.
    pub(super) fn bytes(registry: &Registry, fd: BorrowedFd<'_>, token: Token) -> io::Result<()> {
        let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ET;
        let data = EventData::new_u64(token.0 as u64);
        epoll::modify(registry.as_fd(), fd, data, flags)?;
        Ok(())
    }
}

/// The two registrations where mio cannot ask for closes alone: the
/// narrow one is no registration (a close while the connection is leased
/// or just returned goes unseen until it is armed again).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod interest {
    use super::BorrowedFd;
    use mio::{unix::SourceFd, Interest, Registry, Token};
    use std::io;
    use std::os::fd::AsRawFd;

    pub(super) fn closes(
        registry: &Registry,
        fd: BorrowedFd<'_>,
        _: Token,
        new: bool,
    ) -> io::Result<()> {
        if new {
            return Ok(());
        }
        match registry.deregister(&mut SourceFd(&fd.as_raw_fd())) {
            // Never armed: nothing to take back.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    pub(super) fn bytes(registry: &Registry, fd: BorrowedFd<'_>, token: Token) -> io::Result<()> {
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
    }
}
