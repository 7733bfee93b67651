//! Acquiring a connection: one state machine, [`Request`], that blocking and
//! async callers drive alike, so that both wait in the same policy queues and
//! groups under the same rules.
//!
//! A request never blocks inside [`Request::poll`]: it asks the core, takes
//! what it is given, starts a connect or joins a group, and when it has to
//! wait it leaves the caller's waker wherever the answer will come from
//! (the core's waiter node, its group's slot) and reports when it wants to
//! be polled again at the latest ([`Request::wake_at`]: its deadline, or
//! the end of its patience). A blocking caller parks until then; an async
//! one asks the event loop for an alarm.
//!
//! ```text
//!   Start ──hit──────────────────────────────────────────▶ checked out
//!     │ ──queued──▶ Queued ──grant──▶ (as from Start)
//!     │ ──capacity──▶ open: adopt an orphan connect ─┐
//!     │                     patience ──▶ Bound(permit) ──out of patience──▶ connect
//!     │                     connect ──ready──▶ admit ─────────────▶ checked out
//!     │                             ──pending──▶ Bound ◀──────────┘
//!   Bound ──group's connection / an idle one / failure / deadline──▶ done
//! ```
//!
//! Dropping a request (a cancelled future) at any step gives back whatever
//! it holds: a grant from the core goes back to the core (to the next waiter
//! or to idle), a group slot is left (a connection handed to it meanwhile
//! goes on), a permit is returned. Nothing is lost and nobody waits for a
//! request that is gone.

use crate::connect::bind::{Join, Joining, Outcome, WaitCell};
use crate::connect::breaker::Admit;
use crate::connector::{Connector, Progress};
use crate::error::Error;
use crate::figures::Asked;
use crate::reactor::LoopCommand;
use crate::shared::{CoreOf, EntryOf, Hit, Shared};
use leasehold_policies::unstable::{Acquire, Core, Grant, Held, Permit, Wait, Waiting};
use leasehold_policies::{Policy, State};
use std::ops::ControlFlow;
use std::panic::Location;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

pub(crate) type WaiterOf<C, P> =
    <CoreOf<C, P> as Core<<C as Connector>::Route, EntryOf<C>>>::Waiter;

/// Where a request stands.
enum Step<C: Connector, P: Policy> {
    /// New: the hit path first ([`Shared::hit`]).
    Start,
    /// About to ask the core, queuing if it must (after a miss, or after a
    /// connection failed its check-out).
    Ask,
    /// The core answered at once; the grant is yet to be used.
    Granted(Grant),
    /// Queued in the core for a connection or capacity.
    Queued(WaiterOf<C, P>),
    /// Waiting in its group for a connection: a connect's, or an idle one
    /// found by a probe of the core.
    Bound {
        slot: Arc<WaitCell>,
        /// Held while the request waits out its patience; used to start a
        /// connect when the patience runs out, given back otherwise.
        permit: Option<Permit>,
        /// A non-waiting acquire the core answers later (its serializer is
        /// busy): an idle connection, or none.
        probe: Option<WaiterOf<C, P>>,
        /// When the patience ends, or the deadline.
        until: Option<Instant>,
    },
    /// At the gate of a paused pool, with its ticket once it has one.
    Paused(Option<u64>),
    /// Answered (or never to be polled again).
    Done,
}

/// What a step led to.
enum Next<C: Connector, P: Policy> {
    Step(Step<C, P>),
    Ready(Result<Held, Error>),
}

/// One request for a connection; see the module docs.
pub(crate) struct Request<'a, C: Connector, P: Policy> {
    shared: &'a Shared<C, P>,
    route: &'a C::Route,
    state: Option<&'a State>,
    mode: Wait,
    at: &'static Location<'static>,
    /// When the request first missed: its deadline counts from here.
    started: Option<Instant>,
    /// When it asked, if its lease is one the figures time.
    asked: Option<Instant>,
    /// Connections closed at check-out so far (dead, or refused by a hook).
    rejected: u32,
    step: Step<C, P>,
}

/// How many connections a request that does not wait may find unfit at
/// check-out before it gives up as if the pool were exhausted: a hook that
/// refuses every connection must not keep it connecting forever.
const REJECTED_WITHOUT_WAITING: u32 = 8;

impl<'a, C: Connector, P: Policy> Request<'a, C, P> {
    pub(crate) fn new(
        shared: &'a Shared<C, P>,
        route: &'a C::Route,
        state: Option<&'a State>,
        mode: Wait,
        at: &'static Location<'static>,
        asked: Option<Instant>,
    ) -> Self {
        Self {
            shared,
            route,
            state,
            mode,
            at,
            started: None,
            asked,
            rejected: 0,
            step: Step::Start,
        }
    }

    /// Takes in what the caller's own hit path found short of a connection:
    /// a grant to use, or (`None`) nothing, and then the request asks the
    /// core again, queuing if it must.
    pub(crate) fn after_hit(&mut self, first: Option<Grant>) {
        self.step = match first {
            Some(grant) => Step::Granted(grant),
            None => Step::Ask,
        };
    }

    /// Counts the deadline from `at`, when the request first missed, if it
    /// has not queued yet.
    pub(crate) fn missed_at(&mut self, at: Instant) {
        self.started.get_or_insert(at);
    }

    /// Makes progress without blocking. `Pending`: `waker` is woken when
    /// there is more to do, or poll again by [`Request::wake_at`].
    #[inline]
    pub(crate) fn poll(&mut self, waker: &Waker) -> Poll<Result<Held, Error>> {
        if let Step::Start = self.step {
            if self.shared.gate.is_closed() {
                self.step = Step::Paused(None);
                return self.drive(waker);
            }
            self.step = match self.shared.hit(self.route, self.state, self.at, self.asked) {
                Hit::Leased(held) => {
                    self.step = Step::Done;
                    return Poll::Ready(Ok(held));
                }
                Hit::Answered(grant) => Step::Granted(grant),
                Hit::Missed | Hit::Rejected => Step::Ask,
            };
        }
        self.drive(waker)
    }

    fn drive(&mut self, waker: &Waker) -> Poll<Result<Held, Error>> {
        loop {
            let step = std::mem::replace(&mut self.step, Step::Done);
            let next = match step {
                Step::Start => self.at_gate(None, waker),
                Step::Ask => self.start(waker),
                Step::Paused(ticket) => self.at_gate(ticket, waker),
                Step::Granted(grant) => self.granted(grant, waker),
                Step::Queued(waiter) => self.queued(waiter, waker),
                Step::Bound {
                    slot,
                    permit,
                    probe,
                    until,
                } => self.bound(slot, permit, probe, until, waker),
                Step::Done => return Poll::Pending,
            };
            match next {
                Next::Ready(result) => return Poll::Ready(result),
                Next::Step(step) => {
                    let parked = matches!(
                        step,
                        Step::Queued(_) | Step::Bound { .. } | Step::Paused(Some(_))
                    );
                    self.step = step;
                    if parked {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// The latest instant to poll again at: the deadline, or the end of the
    /// patience. `None`: only a wake-up moves it on.
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        match &self.step {
            Step::Queued(_) | Step::Paused(_) => self.deadline(),
            Step::Bound { until, .. } => *until,
            Step::Start | Step::Ask | Step::Granted(_) | Step::Done => None,
        }
    }

    fn since(&mut self) -> Instant {
        *self.started.get_or_insert_with(Instant::now)
    }

    fn deadline(&self) -> Option<Instant> {
        match self.mode {
            Wait::Queue => self.shared.acquire_deadline(self.started?),
            // Answered promptly: no deadline.
            Wait::Never => None,
        }
    }

    fn timeout(&self, now: Instant) -> Error {
        if let Some(figures) = self.shared.figures.route(self.route) {
            figures.timed_out();
        }
        let waited = self.started.map_or(Duration::ZERO, |s| now - s);
        tracing::debug!(route = ?self.route, ?waited, "leasehold: acquire timed out");
        Error::Timeout(self.shared.unavailable(self.route, waited))
    }

    /// The answer to a request that does not wait and found nothing.
    fn exhausted(&self) -> Error {
        if let Some(figures) = self.shared.figures.route(self.route) {
            figures.exhausted();
        }
        Error::Exhausted(self.shared.unavailable(self.route, Duration::ZERO))
    }

    /// Passes the gate of a paused pool, or waits there (within the
    /// deadline, counted from its arrival); an open gate lets it ask the
    /// core.
    fn at_gate(&mut self, ticket: Option<u64>, waker: &Waker) -> Next<C, P> {
        let gate = &self.shared.gate;
        if ticket.is_none() && !gate.is_closed() {
            return self.start(waker);
        }
        match self.mode {
            Wait::Never => {
                if let Some(ticket) = ticket {
                    gate.leave(ticket);
                }
                // A request that does not wait finds nothing while paused.
                return Next::Ready(Err(self.exhausted()));
            }
            Wait::Queue => {}
        }
        let now = Instant::now();
        self.since();
        if self.deadline().is_some_and(|deadline| now >= deadline) {
            if let Some(ticket) = ticket {
                gate.leave(ticket);
            }
            return Next::Ready(Err(self.timeout(now)));
        }
        match gate.wait(ticket, waker) {
            Some(ticket) => Next::Step(Step::Paused(Some(ticket))),
            None => self.start(waker),
        }
    }

    fn start(&mut self, waker: &Waker) -> Next<C, P> {
        let shared = self.shared;
        match shared
            .core
            .acquire(self.route, self.state, self.mode, waker)
        {
            Acquire::Ready(grant) => self.granted(grant, waker),
            Acquire::Queued(waiter) => {
                self.since();
                self.queued(waiter, waker)
            }
        }
    }

    fn queued(&mut self, mut waiter: WaiterOf<C, P>, waker: &Waker) -> Next<C, P> {
        if let Some(grant) = waiter.try_take() {
            return self.granted(grant, waker);
        }
        if let Some(deadline) = self.deadline() {
            let now = Instant::now();
            if now >= deadline {
                return match self.shared.core.cancel(waiter, true) {
                    // Served at the last moment: take it.
                    Some(grant) => self.granted(grant, waker),
                    None => Next::Ready(Err(self.timeout(now))),
                };
            }
        }
        waiter.register(waker);
        let grant = waiter
            .try_take()
            // A policy whose requests compete for returns (`Lax`) may wake
            // us to take an idle connection ourselves.
            .or_else(|| self.shared.core.retry(&mut waiter));
        match grant {
            Some(grant) => self.granted(grant, waker),
            None => Next::Step(Step::Queued(waiter)),
        }
    }

    /// Uses what the core granted.
    fn granted(&mut self, grant: Grant, waker: &Waker) -> Next<C, P> {
        match grant {
            Grant::Conn(held) => self.checked(held),
            Grant::Connect(permit) => self.open(permit, waker),
            Grant::Busy => Next::Ready(Err(self.exhausted())),
            Grant::Closed => Next::Ready(Err(Error::Closed)),
        }
    }

    /// Checks a connection out; one that fails the check is closed and the
    /// request starts over.
    fn checked(&mut self, held: Held) -> Next<C, P> {
        let asked = match self.started {
            None => Asked::Hit(self.asked),
            Some(since) => Asked::Waited {
                since,
                sampled: self.asked.is_some(),
            },
        };
        match self.shared.check_out(held, self.at, asked) {
            Some(held) => Next::Ready(Ok(held)),
            None => self.again(),
        }
    }

    /// Starts over after a connection failed its check-out, unless the
    /// request is out of time: connections that keep failing (a hook that
    /// refuses them all) may be made as fast as they are closed, so the
    /// deadline is looked at here too, and a request that does not wait
    /// stops after a few.
    fn again(&mut self) -> Next<C, P> {
        self.since();
        self.rejected = self.rejected.saturating_add(1);
        let now = Instant::now();
        let out_of_time = match self.mode {
            Wait::Queue => self.deadline().is_some_and(|deadline| now >= deadline),
            Wait::Never => self.rejected >= REJECTED_WITHOUT_WAITING,
        };
        if !out_of_time {
            return Next::Step(Step::Ask);
        }
        Next::Ready(Err(match self.mode {
            Wait::Queue => self.timeout(now),
            Wait::Never => self.exhausted(),
        }))
    }

    /// Uses a permit: adopts a connect nobody waits for, waits out the
    /// patience for a return, or starts a connect.
    fn open(&mut self, permit: Permit, waker: &Waker) -> Next<C, P> {
        let shared = self.shared;
        debug_assert_eq!(
            permit.state(),
            self.state,
            "a permit carries its request's state"
        );
        let since = self.since();
        match shared.admit_connect(self.route, since) {
            Admit::Connect => {}
            Admit::Probe => return self.connect(permit, None, waker, true),
            Admit::Wait => {
                shared.core.connect_failed(permit);
                return self.await_probe(waker);
            }
            Admit::Refuse(error) => {
                shared.core.connect_failed(permit);
                return Next::Ready(Err(error));
            }
        }
        // Nothing to adopt and nothing to wait for: connect at once. Under
        // `max_connecting` every connect is counted in its group first (the
        // group's lock decides who may start one), or requests missing at
        // the same instant would all start one before any was counted.
        if !shared.binder.has_connects()
            && shared.config.patience.is_none()
            && shared.config.max_connecting.is_none()
        {
            return self.connect(permit, None, waker, false);
        }
        // Patience only where a connection is out that could come back.
        let patience = shared
            .config
            .patience
            .filter(|_| shared.core.route_stats(self.route).leased > 0);
        // A request that connects at once counts its connect as it joins,
        // under the group's lock, so that `max_connecting` holds however
        // many requests miss at the same instant.
        let cap = shared.config.max_connecting;
        let Some((slot, join)) = shared.binder.join(
            self.route,
            self.state,
            waker,
            Joining {
                may_adopt: true,
                connect_now: patience.is_none(),
            },
            cap,
        ) else {
            shared.core.connect_failed(permit);
            return Next::Ready(Err(Error::Closed));
        };
        if join == Join::Adopt {
            shared.core.connect_failed(permit);
            return self.bound(slot, None, None, self.deadline(), waker);
        }
        match patience {
            Some(patience) => {
                // Patience past what the clock can hold lasts until the
                // deadline, if any.
                let until = match (Instant::now().checked_add(patience), self.deadline()) {
                    (Some(until), Some(deadline)) => Some(until.min(deadline)),
                    (until, deadline) => until.or(deadline),
                };
                self.bound(slot, Some(permit), None, until, waker)
            }
            None => self.connect(permit, Some(slot), waker, false),
        }
    }

    /// Waits in the group for the probe of a route that is down: for its
    /// connection, its failure, or the word to start over once the route
    /// is up. If the probe ended before the request joined, it starts over
    /// at once.
    fn await_probe(&mut self, waker: &Waker) -> Next<C, P> {
        let shared = self.shared;
        let (route, state) = (self.route, self.state);
        let Some((slot, _)) = shared.binder.join(
            route,
            state,
            waker,
            Joining {
                may_adopt: false,
                connect_now: false,
            },
            None,
        ) else {
            return Next::Ready(Err(Error::Closed));
        };
        if !shared.breaker.probing(route) {
            return self
                .given(shared.binder.leave(route, state, &slot))
                .unwrap_or(Next::Step(Step::Ask));
        }
        self.bound(slot, None, None, self.deadline(), waker)
    }

    /// Starts a connect on this thread (connectors never block in
    /// `connect`); one that is not done at once goes to the event loop,
    /// and the request waits in its group. A request already in its group
    /// (`slot`) joined it with this connect counted (or reserved it under
    /// `max_connecting`); one not there yet joins once the connect is
    /// under way.
    fn connect(
        &mut self,
        permit: Permit,
        slot: Option<Arc<WaitCell>>,
        waker: &Waker,
        probe: bool,
    ) -> Next<C, P> {
        let shared = self.shared;
        let (route, state) = (self.route, self.state);
        // A counted connect that ends here never reaches the event loop,
        // which would uncount it.
        let uncount = || {
            if slot.is_some() {
                shared.binder.abandoned(route, state);
            }
        };
        match shared.start(route, permit, state, probe) {
            Ok(Progress::Ready((permit, conn, started))) => {
                if let Some(slot) = &slot {
                    shared.leave(route, state, slot);
                }
                uncount();
                let admitted = shared.admit(route, permit, conn, started);
                shared.route_up(route);
                match admitted {
                    Ok(held) => self.checked(held),
                    Err(e) => Next::Ready(Err(e)),
                }
            }
            Ok(Progress::Pending(job)) => {
                let slot = match slot {
                    Some(slot) => slot,
                    None => match shared.binder.join(
                        route,
                        state,
                        waker,
                        Joining {
                            may_adopt: false,
                            connect_now: true,
                        },
                        None,
                    ) {
                        Some((slot, _)) => slot,
                        None => {
                            shared.abandon_uncounted(job);
                            return Next::Ready(Err(Error::Closed));
                        }
                    },
                };
                shared.submit(LoopCommand::Connect(job));
                self.bound(slot, None, None, self.deadline(), waker)
            }
            Err(e) => {
                if let Some(slot) = &slot {
                    shared.leave(route, state, slot);
                }
                uncount();
                Next::Ready(Err(Error::from_connect(format!("{route:?}"), e)))
            }
        }
    }

    /// Waits in the group: for a connection handed to `slot`, an idle one
    /// (a probe of the core, made on every poll), a failure, or `until`.
    fn bound(
        &mut self,
        slot: Arc<WaitCell>,
        permit: Option<Permit>,
        probe: Option<WaiterOf<C, P>>,
        until: Option<Instant>,
        waker: &Waker,
    ) -> Next<C, P> {
        let shared = self.shared;
        let (route, state) = (self.route, self.state);
        // Whatever ends the wait, an unused permit goes back.
        let settle = |next: Next<C, P>, permit: Option<Permit>| {
            if let Some(permit) = permit {
                shared.core.connect_failed(permit);
            }
            next
        };
        if let Some(next) = self.given(slot.take()) {
            self.withdraw(probe);
            return settle(next, permit);
        }
        let probe = match self.probe(probe, waker) {
            ControlFlow::Break(held) => {
                shared.leave(route, state, &slot);
                return settle(self.checked(held), permit);
            }
            ControlFlow::Continue(probe) => probe,
        };
        if let Some(next) = self.given(slot.poll(waker)) {
            self.withdraw(probe);
            return settle(next, permit);
        }
        let now = Instant::now();
        let Some(until) = until.filter(|&until| now >= until) else {
            return Next::Step(Step::Bound {
                slot,
                permit,
                probe,
                until,
            });
        };
        if let Some(held) = self.drop_probe(probe) {
            shared.leave(route, state, &slot);
            return settle(self.checked(held), permit);
        }
        match permit {
            // Out of patience before the deadline: connect now, unless the
            // route went down meanwhile.
            Some(permit) if self.deadline().is_none_or(|d| until < d) => {
                let admit = shared.admit_connect(route, self.since());
                let connects = matches!(admit, Admit::Connect | Admit::Probe);
                let cap = shared.config.max_connecting;
                if connects && !shared.binder.try_start(route, state, cap) {
                    // `max_connecting` connects are in flight: one of them,
                    // or a return, serves this request.
                    shared.core.connect_failed(permit);
                    let until = self.deadline();
                    return self.bound(slot, None, None, until, waker);
                }
                match admit {
                    Admit::Connect => self.connect(permit, Some(slot), waker, false),
                    Admit::Probe => self.connect(permit, Some(slot), waker, true),
                    Admit::Wait => {
                        // Still in the group: the probe's end reaches it.
                        shared.core.connect_failed(permit);
                        let until = self.deadline();
                        self.bound(slot, None, None, until, waker)
                    }
                    Admit::Refuse(error) => {
                        shared.leave(route, state, &slot);
                        settle(Next::Ready(Err(error)), Some(permit))
                    }
                }
            }
            permit => {
                let next = self
                    .given(shared.binder.leave(route, state, &slot))
                    .unwrap_or_else(|| Next::Ready(Err(self.timeout(now))));
                settle(next, permit)
            }
        }
    }

    /// Looks for an idle connection of the group: asks the core without
    /// queueing, or looks at the answer to an earlier ask. `Break`: one was
    /// found. `Continue`: none, with the ask still unanswered if so (its
    /// waker registered).
    fn probe(
        &self,
        probe: Option<WaiterOf<C, P>>,
        waker: &Waker,
    ) -> ControlFlow<Held, Option<WaiterOf<C, P>>> {
        let shared = self.shared;
        let mut probe = match probe {
            Some(probe) => probe,
            None => match shared
                .core
                .acquire(self.route, self.state, Wait::Never, waker)
            {
                Acquire::Ready(grant) => {
                    return self
                        .idle_from(grant)
                        .map_or(ControlFlow::Continue(None), ControlFlow::Break)
                }
                Acquire::Queued(probe) => probe,
            },
        };
        match probe.try_take() {
            Some(grant) => self
                .idle_from(grant)
                .map_or(ControlFlow::Continue(None), ControlFlow::Break),
            None => {
                probe.register(waker);
                ControlFlow::Continue(Some(probe))
            }
        }
    }

    /// What a group's outcome means for the request; `None` while waiting.
    fn given(&mut self, outcome: Outcome) -> Option<Next<C, P>> {
        match outcome {
            Outcome::Waiting => None,
            Outcome::Conn(held) => {
                // Handed over, and out of the group: a return's wake-up this
                // request took goes on to the next waiter.
                self.shared.pass_on(self.route, self.state);
                Some(self.checked(held))
            }
            Outcome::Failed(failure) => Some(Next::Ready(Err(failure.error()))),
            Outcome::Retry => Some(Next::Step(Step::Ask)),
            Outcome::Closed => Some(Next::Ready(Err(Error::Closed))),
        }
    }

    /// The idle connection a probe found, if any. Capacity it was granted
    /// instead goes back: the group's connect in flight covers the request.
    fn idle_from(&self, grant: Grant) -> Option<Held> {
        match grant {
            Grant::Conn(held) => Some(held),
            Grant::Connect(permit) => {
                self.shared.core.connect_failed(permit);
                None
            }
            Grant::Busy | Grant::Closed => None,
        }
    }

    /// Withdraws a probe; an idle connection it was given meanwhile is
    /// returned to the caller.
    fn drop_probe(&self, probe: Option<WaiterOf<C, P>>) -> Option<Held> {
        let grant = self.shared.core.cancel(probe?, false)?;
        self.idle_from(grant)
    }

    /// Withdraws a probe that is no longer wanted; an idle connection it
    /// was given meanwhile goes back to the pool.
    fn withdraw(&self, probe: Option<WaiterOf<C, P>>) {
        if let Some(held) = self.drop_probe(probe) {
            self.shared.give_back(held, true);
        }
    }
}

impl<C: Connector, P: Policy> Drop for Request<'_, C, P> {
    fn drop(&mut self) {
        let shared = self.shared;
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::Start | Step::Ask | Step::Done | Step::Paused(None) => {}
            Step::Paused(Some(ticket)) => shared.gate.leave(ticket),
            Step::Granted(grant) => shared.unused(grant),
            Step::Queued(waiter) => {
                if let Some(grant) = shared.core.cancel(waiter, false) {
                    shared.unused(grant);
                }
            }
            Step::Bound {
                slot,
                permit,
                probe,
                ..
            } => {
                self.withdraw(probe);
                shared.leave(self.route, self.state, &slot);
                if let Some(permit) = permit {
                    shared.core.connect_failed(permit);
                }
            }
        }
    }
}

impl<C: Connector, P: Policy> std::fmt::Debug for Request<'_, C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let step = match &self.step {
            Step::Start => "start",
            Step::Paused(_) => "paused",
            Step::Ask => "ask",
            Step::Granted(_) => "granted",
            Step::Queued(_) => "queued",
            Step::Bound {
                permit: Some(_), ..
            } => "patient",
            Step::Bound { .. } => "bound",
            Step::Done => "done",
        };
        f.debug_struct("Request")
            .field("route", self.route)
            .field("state", &self.state)
            .field("step", &step)
            .field("started", &self.started)
            .finish()
    }
}
