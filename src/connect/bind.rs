//! Late binding: requests waiting on connects in flight.
//!
//! A request that was granted capacity (a permit) starts one connect and
//! then waits here, in the *bind group* of its route and state, for whichever
//! comes first:
//!
//! * a connection from any connect of its group that completes (connects are
//!   not bound to the request that started them: the first waiter of the
//!   group takes the first connection);
//! * a connection returned to the pool: a return wakes the group's first
//!   waiter, which takes the idle connection with a non-waiting acquire;
//! * a failed connect, which fails every waiter of the route at once with
//!   the cause;
//! * shutdown, or its own deadline.
//!
//! A connect that completes after its waiter was served goes to the group's
//! next waiter, or back to the pool (to a queued request or to idle). A group
//! counts its connects in flight, so a request that finds one not covered
//! by a waiter (an *orphan*) adopts it instead of starting another: a route
//! never has more connects in flight than waiters not yet served, except
//! for the moment between a waiter being served by a return and its
//! connect's completion.
//!
//! The groups sit behind one mutex: they are touched only when a connect is
//! started, completes or fails, and by returns while someone waits on a
//! connect — never on the idle-hit path, which sees one relaxed load of
//! [`Binder::has_waiters`].

use crate::error::{Error, TlsError};
use crate::unwind::wake_task;
use leasehold_policies::unstable::Held;
use leasehold_policies::{RouteKey, State};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

/// Why the connects of a route failed: enough to rebuild the error for
/// every waiter (an `io::Error` cannot be cloned).
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) route: String,
    pub(crate) kind: std::io::ErrorKind,
    /// The OS error code, where the cause was one: the rebuilt error keeps
    /// it (`raw_os_error`).
    pub(crate) os: Option<i32>,
    pub(crate) message: String,
    /// A TLS connector's account of a failed handshake, kept whole.
    pub(crate) tls: Option<TlsError>,
}

impl Failure {
    pub(crate) fn new(route: String, error: &std::io::Error) -> Self {
        Self {
            route,
            kind: error.kind(),
            os: error.raw_os_error(),
            message: error.to_string(),
            tls: TlsError::of(error).cloned(),
        }
    }

    /// The cause, rebuilt: the same OS error code, TLS account or text.
    pub(crate) fn io_error(&self) -> std::io::Error {
        match (&self.tls, self.os) {
            (Some(tls), _) => std::io::Error::new(self.kind, tls.clone()),
            (None, Some(code)) => std::io::Error::from_raw_os_error(code),
            (None, None) => std::io::Error::new(self.kind, self.message.clone()),
        }
    }

    /// The error a request waiting on the failed connect sees.
    pub(crate) fn error(&self) -> Error {
        Error::from_connect(self.route.clone(), self.io_error())
    }

    /// Whether the connect failed for want of this process's or this
    /// machine's resources (descriptors, buffers, memory) rather than
    /// because of the route.
    pub(crate) fn is_local(&self) -> bool {
        #[cfg(unix)]
        {
            matches!(
                self.os,
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
            )
        }
        #[cfg(not(unix))]
        {
            false
        }
    }
}

/// What a waiting request was given.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Nothing yet.
    Waiting,
    /// A connection, leased to the request.
    Conn(Held),
    /// The route's connect failed.
    Failed(Failure),
    /// The route's probe succeeded after it was down: start over, and
    /// connect if nothing is idle.
    Retry,
    /// The pool shut down.
    Closed,
}

/// One waiting request: what it was given, and the waker to wake when it
/// is given something. The request may register a new waker on every look
/// (an async task moves between threads); both sit under one lock, so a
/// look either finds the outcome or leaves a waker that the giver wakes.
pub(crate) struct WaitCell {
    inner: Mutex<(Outcome, Waker)>,
}

impl WaitCell {
    fn new(waker: &Waker) -> Self {
        Self {
            inner: Mutex::new((Outcome::Waiting, waker.clone())),
        }
    }

    /// Takes what the request was given, leaving `Waiting`.
    pub(crate) fn take(&self) -> Outcome {
        std::mem::replace(&mut lock(&self.inner).0, Outcome::Waiting)
    }

    /// Takes what the request was given; if nothing yet, `waker` is woken
    /// when something is.
    pub(crate) fn poll(&self, waker: &Waker) -> Outcome {
        let mut inner = lock(&self.inner);
        match std::mem::replace(&mut inner.0, Outcome::Waiting) {
            Outcome::Waiting => {
                if !inner.1.will_wake(waker) {
                    inner.1 = waker.clone();
                }
                Outcome::Waiting
            }
            given => given,
        }
    }

    fn give(&self, outcome: Outcome) {
        let mut inner = lock(&self.inner);
        inner.0 = outcome;
        wake_task(&inner.1);
    }

    fn wake(&self) {
        wake_task(&lock(&self.inner).1);
    }
}

impl fmt::Debug for WaitCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitCell")
            .field("outcome", &lock(&self.inner).0)
            .finish()
    }
}

/// How a request joins its group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Joining {
    /// Instead of starting a connect, it may adopt one in flight that no
    /// request waits on, or wait when `max_connecting` are in flight
    /// ([`Join::Adopt`]).
    pub(crate) may_adopt: bool,
    /// Where it does not adopt, it counts its connect as started now; else
    /// it starts one later, after its patience ([`Binder::try_start`]).
    pub(crate) connect_now: bool,
}

#[derive(Debug, Default)]
struct BindGroup {
    /// Unserved requests, oldest first.
    waiters: VecDeque<Arc<WaitCell>>,
    /// Connects in flight for this group.
    connecting: usize,
}

type GroupKey<K> = (K, Option<State>);

/// What a request holding a permit should do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Join {
    /// Start a connect: the request is counted as covered by it.
    Connect,
    /// A connect in flight is not covered by anyone: wait for it and give
    /// the permit back.
    Adopt,
}

/// The groups of every route.
pub(crate) struct Binder<K> {
    groups: Mutex<HashMap<GroupKey<K>, BindGroup>>,
    /// Unserved waiters over every group.
    waiting: AtomicUsize,
    /// Connects in flight over every group.
    connecting: AtomicUsize,
    closed: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks but a user's waker; the data
    // stays consistent either way.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: RouteKey> Binder<K> {
    pub(crate) fn new() -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            connecting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether any request waits on a connect: a return then wakes one.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) != 0
    }

    /// Whether any connect is in flight that a newcomer might adopt.
    #[inline]
    pub(crate) fn has_connects(&self) -> bool {
        self.connecting.load(Ordering::Relaxed) != 0
    }

    /// Queues a request holding a permit. `None` once the pool is closed.
    pub(crate) fn join(
        &self,
        route: &K,
        state: Option<&State>,
        waker: &Waker,
        joining: Joining,
        max_connecting: Option<usize>,
    ) -> Option<(Arc<WaitCell>, Join)> {
        let Joining {
            may_adopt,
            connect_now,
        } = joining;
        let mut groups = lock(&self.groups);
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let group = groups.entry((route.clone(), state.cloned())).or_default();
        let slot = Arc::new(WaitCell::new(waker));
        let orphan = group.connecting > group.waiters.len();
        let at_cap = max_connecting.is_some_and(|max| group.connecting >= max.max(1));
        let join = if may_adopt && (orphan || at_cap) {
            Join::Adopt
        } else {
            if connect_now {
                group.connecting += 1;
                self.connecting.fetch_add(1, Ordering::Relaxed);
            }
            Join::Connect
        };
        group.waiters.push_back(slot.clone());
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Some((slot, join))
    }

    /// Counts a connect started for a request already queued (after its
    /// patience ran out).
    pub(crate) fn started(&self, route: &K, state: Option<&State>) {
        // No cap: it is always counted.
        self.try_start(route, state, None);
    }

    /// Counts a connect about to start for a request already queued (after
    /// its patience ran out), if `max_connecting` leaves room for it.
    pub(crate) fn try_start(
        &self,
        route: &K,
        state: Option<&State>,
        max_connecting: Option<usize>,
    ) -> bool {
        let mut groups = lock(&self.groups);
        let group = groups.entry((route.clone(), state.cloned())).or_default();
        if max_connecting.is_some_and(|max| group.connecting >= max.max(1)) {
            return false;
        }
        group.connecting += 1;
        self.connecting.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Connects in flight for `route` that serve stateless requests.
    pub(crate) fn connecting_for(&self, route: &K) -> usize {
        lock(&self.groups)
            .get(&(route.clone(), None))
            .map_or(0, |group| group.connecting)
    }

    /// Whether the group has waiters no connect in flight covers, and room
    /// (under `max_connecting`) for another connect.
    pub(crate) fn uncovered(
        &self,
        route: &K,
        state: Option<&State>,
        max_connecting: Option<usize>,
    ) -> bool {
        lock(&self.groups)
            .get(&(route.clone(), state.cloned()))
            .is_some_and(|group| {
                group.waiters.len() > group.connecting
                    && max_connecting.is_none_or(|max| group.connecting < max.max(1))
            })
    }

    /// Takes `slot` out of its group. Returns what it was given meanwhile
    /// (`Waiting` if nothing).
    pub(crate) fn leave(&self, route: &K, state: Option<&State>, slot: &Arc<WaitCell>) -> Outcome {
        let mut groups = lock(&self.groups);
        let key = (route.clone(), state.cloned());
        if let Some(group) = groups.get_mut(&key) {
            if let Some(at) = group.waiters.iter().position(|s| Arc::ptr_eq(s, slot)) {
                group.waiters.remove(at);
                self.waiting.fetch_sub(1, Ordering::Relaxed);
            }
            if group.waiters.is_empty() && group.connecting == 0 {
                groups.remove(&key);
            }
        }
        slot.take()
    }

    /// A connect of the group finished with `conn` (leased, as
    /// `Core::connected` returns it): the group's first waiter gets it.
    /// Returns it if nobody waits.
    pub(crate) fn completed(&self, route: &K, state: Option<&State>, conn: Held) -> Option<Held> {
        let mut groups = lock(&self.groups);
        let key = (route.clone(), state.cloned());
        let Some(group) = groups.get_mut(&key) else {
            return Some(conn);
        };
        group.connecting = group.connecting.saturating_sub(1);
        self.connecting.fetch_sub(1, Ordering::Relaxed);
        let served = self.serve_first(group, conn);
        if group.waiters.is_empty() && group.connecting == 0 {
            groups.remove(&key);
        }
        served
    }

    fn serve_first(&self, group: &mut BindGroup, conn: Held) -> Option<Held> {
        match group.waiters.pop_front() {
            Some(slot) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                slot.give(Outcome::Conn(conn));
                None
            }
            None => Some(conn),
        }
    }

    /// A connect of the group ended without a connection.
    pub(crate) fn abandoned(&self, route: &K, state: Option<&State>) {
        let mut groups = lock(&self.groups);
        let key = (route.clone(), state.cloned());
        if let Some(group) = groups.get_mut(&key) {
            group.connecting = group.connecting.saturating_sub(1);
            self.connecting.fetch_sub(1, Ordering::Relaxed);
            if group.waiters.is_empty() && group.connecting == 0 {
                groups.remove(&key);
            }
        }
    }

    /// A connect to `route` failed: every waiter of the route (whatever its
    /// state) fails with `failure`.
    pub(crate) fn fail_route(&self, route: &K, failure: &Failure) {
        self.answer_route(route, || Outcome::Failed(failure.clone()));
    }

    /// The probe of a route that was down succeeded: every request still
    /// waiting on a connect to it starts over (and connects if it must).
    pub(crate) fn retry_route(&self, route: &K) {
        self.answer_route(route, || Outcome::Retry);
    }

    /// Gives every waiter of `route`, whatever its state, an `outcome`.
    fn answer_route(&self, route: &K, outcome: impl Fn() -> Outcome) {
        let mut groups = lock(&self.groups);
        for ((key, _), group) in groups.iter_mut() {
            if key == route {
                for slot in group.waiters.drain(..) {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    slot.give(outcome());
                }
            }
        }
        groups.retain(|_, group| !group.waiters.is_empty() || group.connecting > 0);
    }

    /// A connection of `route` in `state` went back to the pool: wakes the
    /// group's first waiter to try for it.
    pub(crate) fn returned(&self, route: &K, state: Option<&State>) {
        let groups = lock(&self.groups);
        if let Some(slot) = groups
            .get(&(route.clone(), state.cloned()))
            .and_then(|group| group.waiters.front())
        {
            slot.wake();
        }
    }

    /// Shutdown: every waiter gets `Closed`, and nobody joins again.
    pub(crate) fn close(&self) {
        let mut groups = lock(&self.groups);
        self.closed.store(true, Ordering::Release);
        for group in groups.values_mut() {
            for slot in group.waiters.drain(..) {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                slot.give(Outcome::Closed);
            }
        }
    }
}

impl<K: RouteKey> fmt::Debug for Binder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binder")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .field("connecting", &self.connecting.load(Ordering::Relaxed))
            .finish()
    }
}
