//! The state a pool's handles and its event loop share, and the paths
//! through it: acquiring (hit, queue, or open a connection and bind late),
//! checking a connection out and back in, and what the event loop does to
//! the pool (admit a new connection, fail a route, evict, warm up).
//!
//! The policy core decides who gets what; this module adds what needs the
//! connector, the clock or the event loop, and keeps it off the idle-hit
//! path unless a setting asks for it: with the defaults, a hit costs the
//! core's own operations plus a few predictable branches.

use crate::config::{Config, RouteSettings};
use crate::connect::bind::{Binder, Failure, Outcome, WaitCell};
use crate::connect::breaker::{Admit, Breaker};
use crate::connector::{connector_panicked, Connector, Progress};
use crate::entry::{CloseCounters, Entry};
use crate::error::{Error, Unavailable};
use crate::figures::{Asked, Figures, Health, Registry, SizingReport};
use crate::hooks::Hooks;
use crate::reactor::dispose::DisposalService;
use crate::reactor::{Attempt, ConnectJob, LeakCheck, LoopCommand, LoopHost, Remote, Watch};
use leasehold_policies::unstable::{Acquire, Core, Grant, Held, Permit, Wait};
use leasehold_policies::{Policy, PoolStats, State, Stats};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

mod acquire;
mod gate;
mod route_settings;

pub(crate) use acquire::Request;
use gate::Gate;
use route_settings::{Expiry, RouteTable};

pub(crate) type EntryOf<C> = Entry<<C as Connector>::Route, <C as Connector>::Conn>;
pub(crate) type CoreOf<C, P> = <P as Policy>::Core<<C as Connector>::Route, EntryOf<C>>;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// Wakes this thread: made once per thread, cloned only into the node of
    /// a request that has to wait.
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
}

fn with_waker<R>(f: impl FnOnce(&Waker) -> R) -> R {
    THREAD_WAKER.with(f)
}

/// How many times a blocking request that missed yields its thread,
/// asking again after each yield, before it queues: see
/// [`Shared::defer`].
const DEFER_YIELDS: u32 = 16;

/// What the hit path found ([`Shared::hit`]).
pub(crate) enum Hit {
    /// A connection, checked out.
    Leased(Held),
    /// An answer other than a connection: capacity, `Busy` or `Closed`.
    Answered(Grant),
    /// Nothing at once: the request asks again, and queues if it must.
    Missed,
    /// A connection that failed its check-out (closed): the request asks
    /// again.
    Rejected,
}

/// The state a pool's handles, its requests and its event loop share. Its
/// fields are this module's (the request machine, `acquire`, is part of
/// it); the pool's handles and its leases use the methods below, and the
/// event loop the [`LoopHost`] interface.
pub(crate) struct Shared<C: Connector, P: Policy> {
    core: CoreOf<C, P>,
    connector: Arc<C>,
    disposer: Arc<DisposalService<C>>,
    config: Config<C::Route>,
    binder: Binder<C::Route>,
    breaker: Breaker<C::Route>,
    remote: Arc<Remote<C>>,
    counters: Arc<CloseCounters>,
    figures: Registry<C::Route>,
    hooks: Hooks<C::Conn>,
    /// A return reads the clock (idle times or lifetimes matter).
    clock_on_release: AtomicBool,
    /// Closed while the pool is paused.
    gate: Gate,
    /// The routes' own timeouts.
    routes: RouteTable<C::Route>,
}

/// Where the core sends the connections it is done with: [`retire`].
pub(crate) fn disposal<C: Connector>(
    disposer: Arc<DisposalService<C>>,
    remote: Arc<Remote<C>>,
) -> leasehold_policies::unstable::Disposer<EntryOf<C>> {
    Arc::new(move |entry: EntryOf<C>| retire(&disposer, &remote, entry))
}

/// Closes a connection the pool is done with: the watch on its socket is
/// dropped first, then the closer takes it.
fn retire<C: Connector>(disposer: &DisposalService<C>, remote: &Remote<C>, entry: EntryOf<C>) {
    if let Some(watch) = &entry.watch {
        watch.drop_duplicate();
        // Given back once the loop stopped: it watches nothing then.
        let _ = remote.post(LoopCommand::Forget(watch.token));
    }
    if let Some(conn) = entry.conn {
        disposer.dispose(conn);
    }
}

impl<C: Connector, P: Policy> Shared<C, P> {
    pub(crate) fn new(
        core: CoreOf<C, P>,
        connector: Arc<C>,
        disposer: Arc<DisposalService<C>>,
        config: Config<C::Route>,
        hooks: Hooks<C::Conn>,
        remote: Arc<Remote<C>>,
    ) -> Self {
        let (initial, max) = config.backoff;
        Self {
            core,
            connector,
            disposer,
            routes: RouteTable::new(&config),
            clock_on_release: AtomicBool::new(
                config.clock_on_release()
                    || config
                        .route_settings
                        .iter()
                        .any(|(_, s)| s.idle_timeout.is_some() || s.max_lifetime.is_some()),
            ),
            figures: Registry::new(config.sample_every),
            config,
            binder: Binder::new(),
            breaker: Breaker::new(initial, max),
            remote,
            counters: Arc::default(),
            hooks,
            gate: Gate::default(),
        }
    }

    /// When a lease the figures time was asked for: now, for one lease in
    /// `sample_every` per thread.
    pub(crate) fn sample(&self) -> Option<Instant> {
        self.figures.sample()
    }

    pub(crate) fn stats(&self) -> PoolStats<C::Route> {
        let mut stats = self.core.stats();
        stats.paused = self.gate.is_closed();
        stats.total.pending += self.gate.waiting();
        stats
    }

    /// Gives `route` its own settings (validated); connections opened from
    /// now on use them, and the next sweep applies its idle timeout and
    /// lifetime to those already idle.
    pub(crate) fn set_route_settings(&self, route: C::Route, settings: RouteSettings) {
        if settings.idle_timeout.is_some() || settings.max_lifetime.is_some() {
            self.clock_on_release.store(true, Ordering::Relaxed);
        }
        self.routes.set(route, settings);
        // The loop sweeps at the new period from its next sweep on.
    }

    pub(crate) fn route_settings(&self, route: &C::Route) -> RouteSettings {
        self.routes.get(route)
    }

    /// When a connection of `route` opened at `created` expires: its
    /// route's lifetime, or the pool's, jittered.
    fn expiry_of(&self, route: &C::Route, created: Instant) -> Option<Instant> {
        self.routes
            .max_lifetime(route, &self.config)
            // A lifetime past what the clock can hold never ends.
            .and_then(|life| created.checked_add(jittered(life)))
    }

    /// Makes new requests wait until [`Self::resume`]; whether the pool
    /// was running.
    pub(crate) fn pause(&self) -> bool {
        self.gate.close()
    }

    /// Lets requests through again; whether the pool was paused.
    pub(crate) fn resume(&self) -> bool {
        self.gate.open()
    }

    /// Disposes of every idle connection (the core's serializers close
    /// them, off this thread).
    pub(crate) fn close_all_idle(&self) {
        self.core.evict_idle(Arc::new(|_: &EntryOf<C>| true));
    }

    pub(crate) fn route_stats(&self, route: &C::Route) -> Stats {
        self.core.route_stats(route)
    }

    /// One route's figures, its gauges read now.
    pub(crate) fn route_figures(&self, route: &C::Route) -> Figures {
        self.figures.of_route(route, self.core.route_stats(route))
    }

    pub(crate) fn set_route_max(&self, route: &C::Route, max: usize) {
        self.core.set_route_max(route, max);
    }

    pub(crate) fn set_max_per_route(&self, max: usize) {
        self.core.set_max_per_route(max);
    }

    pub(crate) fn set_max_total(&self, max: usize) {
        self.core.set_max_total(max);
    }

    pub(crate) fn set_max_idle(&self, max: usize) {
        self.core.set_max_idle(max);
    }

    pub(crate) fn health(&self) -> Health {
        self.counters.snapshot()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Shuts down: waiting requests get `Closed`, idle connections are
    /// closed, and the event loop stops.
    pub(crate) fn shut_down(&self) {
        self.core.shutdown();
        // Requests at a pause's gate go on, to find the pool closed.
        self.gate.open();
        self.binder.close();
        self.remote.stop();
    }

    /// Starts the shutdown grace: graceful closes until the instant it
    /// returns (`None`: no end), aborts after.
    pub(crate) fn start_grace(&self) -> Option<Instant> {
        // A grace no clock can count to has no end.
        let deadline = Instant::now().checked_add(self.config.shutdown_grace);
        self.disposer.start_grace(deadline);
        deadline
    }

    /// Stops the disposal thread, once nothing more is to be closed.
    pub(crate) fn stop_disposal(&self) {
        self.disposer.stop();
    }

    /// The leased connection `held` stands for.
    #[inline]
    pub(crate) fn item<'a>(&'a self, held: &'a Held) -> &'a EntryOf<C> {
        self.core.item(held)
    }

    /// The leased connection `held` stands for, mutably.
    #[inline]
    pub(crate) fn item_mut<'a>(&'a self, held: &'a mut Held) -> &'a mut EntryOf<C> {
        self.core.item_mut(held)
    }

    /// The event loop's registry, for a registration that must end before
    /// the loop hears of it (a detached connection's).
    pub(crate) fn registry(&self) -> &mio::Registry {
        &self.remote.registry
    }

    /// Asks the event loop to ring `alarm`, due at `at`; gives the command
    /// back once the loop has stopped.
    pub(crate) fn set_alarm(
        &self,
        alarm: LoopCommand<C>,
        at: Instant,
    ) -> Result<(), LoopCommand<C>> {
        // The loop turns at least once a route sweep period: an alarm due
        // later than two of those reaches it in time without a wake-up (the
        // default acquire timeout, 30 s).
        let far = 2 * self.config.route_sweep_period();
        if at.saturating_duration_since(Instant::now()) > far {
            self.remote.post(alarm)
        } else {
            self.remote.send(alarm)
        }
    }

    /// The hit path, the one for blocking and async callers alike: the core
    /// serves the request at once where it can, without queuing it, and a
    /// connection it gives is checked out.
    #[inline(always)]
    pub(crate) fn hit(
        &self,
        route: &C::Route,
        state: Option<&State>,
        at: &'static Location<'static>,
        asked: Option<Instant>,
    ) -> Hit {
        match self.core.acquire_now(route, state) {
            Some(Grant::Conn(held)) => match self.check_out(held, at, Asked::Hit(asked)) {
                Some(held) => Hit::Leased(held),
                None => Hit::Rejected,
            },
            Some(other) => Hit::Answered(other),
            None => Hit::Missed,
        }
    }

    /// Acquires a connection, checked out and ready to lease, parking this
    /// thread while it waits.
    pub(crate) fn acquire(
        &self,
        route: &C::Route,
        state: Option<&State>,
        mode: Wait,
        at: &'static Location<'static>,
    ) -> Result<Held, Error> {
        let asked = self.figures.sample();
        if self.gate.is_closed() {
            return self.wait_paused(route, state, mode, at, asked);
        }
        let (first, missed) = match self.hit(route, state, at, asked) {
            Hit::Leased(held) => return Ok(held),
            Hit::Answered(grant) => (Some(grant), None),
            Hit::Rejected => (None, None),
            Hit::Missed => {
                // The deadline counts from the miss.
                let missed = Instant::now();
                match self.defer(route, state, mode, at, asked, missed) {
                    Hit::Leased(held) => return Ok(held),
                    Hit::Answered(grant) => (Some(grant), Some(missed)),
                    Hit::Rejected | Hit::Missed => (None, Some(missed)),
                }
            }
        };
        let mut request = Request::new(self, route, state, mode, at, asked);
        request.after_hit(first);
        if let Some(missed) = missed {
            request.missed_at(missed);
        }
        with_waker(|waker| self.wait(request, waker))
    }

    /// A blocking request that found the pool paused: it waits at the gate
    /// as a request, parked.
    #[cold]
    #[inline(never)]
    fn wait_paused(
        &self,
        route: &C::Route,
        state: Option<&State>,
        mode: Wait,
        at: &'static Location<'static>,
        asked: Option<Instant>,
    ) -> Result<Held, Error> {
        let request = Request::new(self, route, state, mode, at, asked);
        with_waker(|waker| self.wait(request, waker))
    }

    /// When a waiting request that missed at `missed` times out: none
    /// without an acquire timeout, or past what the clock can hold.
    fn acquire_deadline(&self, missed: Instant) -> Option<Instant> {
        missed.checked_add(self.config.acquire_timeout?)
    }

    /// Before a blocking stateless request queues, it yields its thread and
    /// asks again, up to [`DEFER_YIELDS`] times or until its acquire
    /// timeout. Where threads outnumber cores, the holders are often
    /// threads the scheduler preempted; while this thread steps aside they
    /// run and give their connections back, and it takes one without
    /// sleeping. A request that queues instead sleeps until the one return
    /// meant for it wakes it, and once most threads have queued, every
    /// cycle of the pool waits for a wake-up (the convoy of a FIFO
    /// hand-off to sleeping threads). Stepping aside does not overtake
    /// anyone: the hit path never takes a connection while a request is
    /// queued for it. Where no other thread is ready to run, a yield
    /// returns at once.
    #[cold]
    #[inline(never)]
    fn defer(
        &self,
        route: &C::Route,
        state: Option<&State>,
        mode: Wait,
        at: &'static Location<'static>,
        asked: Option<Instant>,
        missed: Instant,
    ) -> Hit {
        // Stateful requests are served by the core's slow path whatever
        // returns; a request that will not wait is answered at once.
        if state.is_some() || mode == Wait::Never {
            return Hit::Missed;
        }
        let deadline = self.acquire_deadline(missed);
        for _ in 0..DEFER_YIELDS {
            thread::yield_now();
            match self.hit(route, state, at, asked) {
                Hit::Missed if deadline.is_some_and(|at| Instant::now() >= at) => break,
                Hit::Missed => {}
                found => return found,
            }
        }
        Hit::Missed
    }

    /// The rest of a blocking acquire: a request, polled until it ends, with
    /// this thread parked between polls.
    #[cold]
    #[inline(never)]
    fn wait(&self, mut request: Request<'_, C, P>, waker: &Waker) -> Result<Held, Error> {
        loop {
            if let Poll::Ready(result) = request.poll(waker) {
                return result;
            }
            match request.wake_at() {
                None => thread::park(),
                Some(at) => {
                    let now = Instant::now();
                    if now < at {
                        thread::park_timeout(at - now);
                    }
                }
            }
        }
    }

    /// Starts a connect on this thread (connectors never block in
    /// `connect`); one done at once comes with the instant it began. The
    /// permit goes back to the core if it fails; a panic of the connector
    /// is a failed connect.
    #[allow(clippy::type_complexity)]
    pub(crate) fn start(
        &self,
        route: &C::Route,
        permit: Permit,
        state: Option<&State>,
        probe: bool,
    ) -> std::io::Result<Progress<(Permit, C::Conn, Instant), ConnectJob<C>>> {
        let attempt = self.attempt(route, probe);
        let started = catch_unwind(AssertUnwindSafe(|| self.connector.connect(route)))
            .unwrap_or_else(|_| Err(connector_panicked()));
        match started {
            Ok(Progress::Ready(conn)) => Ok(Progress::Ready((permit, conn, attempt.started))),
            Ok(Progress::Pending(handshake)) => Ok(Progress::Pending(ConnectJob {
                route: route.clone(),
                state: state.cloned(),
                permit,
                attempt,
                handshake,
            })),
            Err(e) => {
                let failure = self.failed(route, &e, attempt);
                self.core.connect_failed(permit);
                self.binder.fail_route(route, &failure);
                Err(e)
            }
        }
    }

    /// What a request that needs a new connection to `route`, and has
    /// waited since `since`, does now (the circuit breaker's answer).
    pub(crate) fn admit_connect(&self, route: &C::Route, since: Instant) -> Admit {
        let now = Instant::now();
        self.breaker.admit(route, now, since.min(now))
    }

    /// A connect to `route` succeeded: a route that was down is up again,
    /// and the requests that waited for its probe start over.
    pub(crate) fn route_up(&self, route: &C::Route) {
        if self.breaker.succeeded(route) {
            self.binder.retry_route(route);
        }
    }

    /// Leaves a group; a connection handed over meanwhile goes on to the
    /// next waiter or back to the pool, and the group's next waiter gets the
    /// wake-up this request may have taken (see [`pass_on`](Self::pass_on)).
    pub(crate) fn leave(&self, route: &C::Route, state: Option<&State>, slot: &Arc<WaitCell>) {
        if let Outcome::Conn(held) = self.binder.leave(route, state, slot) {
            self.give_back(held, true);
        }
        self.pass_on(route, state);
    }

    /// Wakes the first request still waiting in the group of `route` and
    /// `state`, for a request that is done waiting there. A return wakes
    /// the group's first waiter; when two returns come before that waiter
    /// runs, both wake it, it takes one connection, and without this the
    /// other would sit idle while the next waiter sleeps until a connect
    /// ends or its deadline comes. At worst this wakes a waiter that finds
    /// nothing and waits again.
    pub(crate) fn pass_on(&self, route: &C::Route, state: Option<&State>) {
        if self.binder.has_waiters() {
            self.binder.returned(route, state);
        }
    }

    /// Last checks before a connection is leased: not found dead by the
    /// event loop, alive if it idled long, counted for leak detection, and
    /// recorded in its route's figures as `asked` says it was served.
    /// `None` if it was closed instead.
    // Always inlined: out of line, the connection handle comes back through
    // memory, which the idle hit pays for on every lease.
    #[inline(always)]
    pub(crate) fn check_out(
        &self,
        mut held: Held,
        at: &'static Location<'static>,
        asked: Asked,
    ) -> Option<Held> {
        let entry = self.core.item_mut(&mut held);
        let fresh = std::mem::take(&mut entry.fresh);
        if let Some(watch) = &entry.watch {
            if !watch.lease() {
                CloseCounters::bump(&self.counters.stale);
                self.core.release(held, false);
                return None;
            }
        }
        if let Some(after) = self.config.validate_after {
            if entry.idle_since.elapsed() >= after {
                let connector = &self.connector;
                let conn = entry.conn.as_mut();
                let alive = catch_unwind(AssertUnwindSafe(|| {
                    conn.is_some_and(|c| connector.is_alive(c))
                }))
                .unwrap_or(false);
                if !alive {
                    CloseCounters::bump(&self.counters.invalid);
                    self.core.release(held, false);
                    return None;
                }
            }
        }
        if self.hooks.any() {
            let pass = entry
                .conn
                .as_mut()
                .is_some_and(|conn| self.hooks.pass(conn, fresh));
            if !pass {
                CloseCounters::bump(&self.counters.rejected);
                self.core.release(held, false);
                return None;
            }
        }
        if let Some(figures) = &entry.figures {
            entry.held_since = figures.served(asked, fresh);
        }
        if let (Some(threshold), Some(leases)) = (self.config.leak_threshold, &entry.leases) {
            let lease = leases.fetch_add(1, Ordering::AcqRel) + 1;
            let now = Instant::now();
            // A threshold past what the clock can hold is never reached.
            let Some(due) = now.checked_add(threshold) else {
                return Some(held);
            };
            // Given back once the loop stopped: no lease is checked then.
            let _ = self.remote.post(LoopCommand::Leak(LeakCheck {
                at: due,
                taken: now,
                leases: leases.clone(),
                lease,
                location: at,
                route: format!("{:?}", entry.route),
            }));
        }
        Some(held)
    }

    /// Gives a leased connection back: kept for reuse if `reuse`, the
    /// event loop saw no close or error on it while it was leased, the
    /// connector does not find it broken and its lifetime is not over;
    /// else closed. No system call of the pool's own.
    #[inline]
    pub(crate) fn give_back(&self, mut held: Held, mut reuse: bool) {
        let entry = self.core.item_mut(&mut held);
        if let (Some(since), Some(figures)) = (entry.held_since.take(), &entry.figures) {
            figures.held(since);
        }
        if let Some(leases) = &entry.leases {
            leases.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(watch) = &entry.watch {
            if !watch.release() && reuse {
                CloseCounters::bump(&self.counters.stale);
                reuse = false;
            }
        }
        if reuse {
            if let Some(conn) = entry.conn.as_mut() {
                let connector = &self.connector;
                let broken = catch_unwind(AssertUnwindSafe(|| connector.has_broken(conn)));
                if broken.unwrap_or(true) {
                    CloseCounters::bump(&self.counters.broken);
                    reuse = false;
                }
            }
        }
        if reuse && self.clock_on_release.load(Ordering::Relaxed) {
            let now = Instant::now();
            let changes = self.routes.changes();
            if entry.settings_seen != changes {
                // A route's lifetime changed since this one was opened.
                entry.settings_seen = changes;
                entry.expires = self.expiry_of(&entry.route, entry.created);
            }
            if entry.expires.is_some_and(|expires| expires <= now) {
                CloseCounters::bump(&self.counters.expired);
                reuse = false;
            }
            entry.idle_since = now;
        }
        let wake = (reuse && self.binder.has_waiters())
            .then(|| (entry.route.clone(), entry.state.clone()));
        self.core.release(held, reuse);
        if let Some((route, state)) = wake {
            self.binder.returned(&route, state.as_ref());
        }
    }

    /// Gives back a grant its request no longer wants (it was cancelled):
    /// a connection to the next waiter or to idle, capacity to the next
    /// request.
    pub(crate) fn unused(&self, grant: Grant) {
        match grant {
            Grant::Conn(held) => self.give_back(held, true),
            Grant::Connect(permit) => self.core.connect_failed(permit),
            Grant::Busy | Grant::Closed => {}
        }
    }

    /// Takes a new connection into the core, leased to the permit's holder;
    /// its connect began at `started`.
    pub(crate) fn admit(
        &self,
        route: &C::Route,
        permit: Permit,
        conn: C::Conn,
        started: Instant,
    ) -> Result<Held, Error> {
        let now = Instant::now();
        let figures = self.figures.conn(route);
        if let Some(tally) = &figures {
            tally.opened(started);
        }
        tracing::debug!(route = ?route, took = ?started.elapsed(), "leasehold: connected");
        let watch = self.watch_of(&conn);
        let entry = Entry {
            state: permit.state().cloned(),
            route: route.clone(),
            created: now,
            // A lifetime past what the clock can hold never ends.
            settings_seen: self.routes.changes(),
            expires: self.expiry_of(route, now),
            idle_since: now,
            fresh: true,
            watch: watch.clone(),
            leases: self
                .config
                .leak_threshold
                .map(|_| Arc::new(AtomicU64::new(0))),
            figures,
            held_since: None,
            conn: Some(conn),
        };
        match self.core.connected(permit, entry) {
            Ok(held) => {
                if let Some(watch) = watch {
                    // Given back once the loop stopped: the socket goes
                    // unwatched, as every other does then.
                    let _ = self.remote.send(LoopCommand::Watch(watch));
                }
                Ok(held)
            }
            Err(entry) => {
                retire(&self.disposer, &self.remote, entry);
                Err(Error::Closed)
            }
        }
    }

    #[cfg(unix)]
    fn watch_of(&self, conn: &C::Conn) -> Option<Arc<Watch>> {
        let connector = &self.connector;
        let watched = crate::unwind::guarded("the connector's watch", || connector.watch(conn))??;
        Some(Arc::new(Watch::new(self.remote.token(), watched)))
    }

    #[cfg(not(unix))]
    fn watch_of(&self, _: &C::Conn) -> Option<Arc<Watch>> {
        None
    }

    /// Capacity for one more connection to `route` in `state`, taken
    /// without queueing. An idle connection found instead goes back to the
    /// pool (which wakes a group waiting for one). `None` if neither is free.
    fn spare_permit(&self, route: &C::Route, state: Option<&State>) -> Option<Permit> {
        let grant = match self.core.acquire(route, state, Wait::Never, Waker::noop()) {
            Acquire::Ready(grant) => Some(grant),
            Acquire::Queued(waiter) => self.core.cancel(waiter, false),
        };
        match grant {
            Some(Grant::Connect(permit)) => Some(permit),
            Some(Grant::Conn(held)) => {
                self.give_back(held, true);
                None
            }
            _ => None,
        }
    }

    /// A connect to `route` failed: counted, and recorded by the breaker.
    /// The caller then frees the connect's capacity, and only then answers
    /// the requests waiting on a connect to the route with the returned
    /// cause: whoever gets the capacity sees the breaker's new state, and a
    /// request answered sees the capacity freed (`stats()` no longer counts
    /// the connect).
    fn failed(&self, route: &C::Route, error: &std::io::Error, attempt: Attempt) -> Failure {
        CloseCounters::bump(&self.counters.connect_failures);
        if let Some(figures) = self.figures.route(route) {
            figures.connect_ended(attempt.started, false);
        }
        tracing::warn!(route = ?route, error = %error, "leasehold: connect failed");
        let failure = Failure::new(format!("{route:?}"), error);
        self.breaker.failed(
            route,
            &failure,
            attempt.started,
            attempt.probe,
            Instant::now(),
        );
        failure
    }

    /// Drops a connect not counted in its group.
    pub(crate) fn abandon_uncounted(&self, job: ConnectJob<C>) {
        if job.attempt.probe {
            self.breaker.probe_ended(&job.route);
        }
        self.core.connect_failed(job.permit);
    }

    pub(crate) fn submit(&self, command: LoopCommand<C>) {
        if let Err(command) = self.remote.send(command) {
            self.abandon_command(command);
        }
    }

    /// Closes idle connections idle for at least `idle`.
    pub(crate) fn close_idle(&self, idle: Duration) {
        self.evict(Retire {
            idle_for: Some((Instant::now(), idle)),
            ..Retire::default()
        });
    }

    /// Closes idle connections past their lifetime.
    pub(crate) fn close_expired(&self) {
        let mut routes = self.routes.expiry(&self.config);
        // Lifetimes only: no idle timeout.
        routes.without_idle_timeouts();
        self.evict(Retire {
            expired_by: Some(Instant::now()),
            routes: Some(routes),
            ..Retire::default()
        });
    }

    /// Closes the idle connections `retire` picks, each counted under the
    /// first reason that applies.
    fn evict(&self, retire: Retire<C::Route>) {
        let counters = self.counters.clone();
        self.core.evict_idle(Arc::new(move |entry: &EntryOf<C>| {
            let routes = retire.routes.as_ref();
            let (counter, cause) =
                if retire.dead && entry.watch.as_ref().is_some_and(|w| w.is_dead()) {
                    (&counters.stale, "closed or written to by the peer")
                } else if retire.expired_by.is_some_and(|now| {
                    entry.expires.is_some_and(|at| at <= now)
                        || routes.is_some_and(|r| {
                            r.past_route_lifetime(&entry.route, entry.created, now)
                        })
                }) {
                    (&counters.expired, "lifetime over")
                } else if retire.idle_for.is_some_and(|(now, idle)| {
                    now.saturating_duration_since(entry.idle_since) >= idle
                }) || retire.expired_by.is_some_and(|now| {
                    routes.is_some_and(|r| r.idle_too_long(&entry.route, entry.idle_since, now))
                }) {
                    (&counters.idle, "idle too long")
                } else {
                    return false;
                };
            CloseCounters::bump(counter);
            tracing::debug!(route = ?entry.route, cause, "leasehold: evicted an idle connection");
            true
        }));
    }

    /// The pool-wide figures, with the gauges and closes of the moment.
    pub(crate) fn figures_total(&self) -> Figures {
        self.figures
            .total(self.core.stats().total, self.counters.snapshot())
    }

    /// Each route's figures, with its gauges.
    pub(crate) fn figures_by_route(&self) -> Vec<(C::Route, Figures)> {
        self.figures.by_route(|route| self.core.route_stats(route))
    }

    /// Little's-law advice over the window since the last call.
    pub(crate) fn sizing(&self) -> SizingReport<C::Route> {
        self.figures
            .sizing(self.figures_total(), self.figures_by_route())
    }

    pub(crate) fn unavailable(&self, route: &C::Route, waited: Duration) -> Box<Unavailable> {
        Unavailable::new(
            format!("{route:?}"),
            waited,
            self.core.route_stats(route),
            self.core.stats().total,
        )
    }
}

/// Which idle connections an eviction pass closes.
#[derive(Clone, Debug)]
struct Retire<K> {
    /// Those the event loop marked dead (counted stale).
    dead: bool,
    /// Those whose lifetime ended by then (counted expired), the pool's or
    /// (with `routes`) their route's.
    expired_by: Option<Instant>,
    /// Those idle at least this long at that instant (counted idle).
    idle_for: Option<(Instant, Duration)>,
    /// Each route's lifetime and (at `expired_by`) idle timeout, the pool's
    /// where a route has none.
    routes: Option<Expiry<K>>,
}

impl<K> Default for Retire<K> {
    fn default() -> Self {
        Self {
            dead: false,
            expired_by: None,
            idle_for: None,
            routes: None,
        }
    }
}

// The event loop's view of the pool: what it calls, and nothing else.
impl<C: Connector, P: Policy> LoopHost for Shared<C, P> {
    type Connector = C;

    fn config(&self) -> &Config<C::Route> {
        &self.config
    }

    fn remote(&self) -> &Remote<C> {
        &self.remote
    }

    fn connector(&self) -> &C {
        &self.connector
    }

    fn loop_broke(&self) {
        self.core.shutdown();
        self.binder.close();
    }

    fn sweep_routes(&self) {
        self.core.sweep_routes();
        self.figures.sweep();
    }

    fn warm_started(&self, route: &C::Route) {
        // Counted in the stateless group: its next request adopts it.
        self.binder.started(route, None);
    }

    /// A connect to `route` begins now, counted in the route's figures.
    fn attempt(&self, route: &C::Route, probe: bool) -> Attempt {
        if let Some(figures) = self.figures.route(route) {
            figures.connect_started();
        }
        Attempt {
            started: Instant::now(),
            probe,
        }
    }

    /// The event loop finished a connect begun at `started`: the group's
    /// first waiter gets the connection, or the pool does.
    fn connected(&self, route: C::Route, permit: Permit, conn: C::Conn, started: Instant) {
        let state = permit.state().cloned();
        match self.admit(&route, permit, conn, started) {
            Ok(held) => {
                if let Some(held) = self.binder.completed(&route, state.as_ref(), held) {
                    self.give_back(held, true);
                }
            }
            Err(_) => self.binder.abandoned(&route, state.as_ref()),
        }
        self.route_up(&route);
    }

    /// A permit for one more connect for the group of `route` and `state`,
    /// if requests wait there uncovered (their connects were held back by
    /// `max_connecting`).
    fn refill(&self, route: &C::Route, state: Option<&State>) -> Option<Permit> {
        if !self
            .binder
            .uncovered(route, state, self.config.max_connecting)
        {
            return None;
        }
        let permit = self.spare_permit(route, state)?;
        self.binder.started(route, state);
        Some(permit)
    }

    /// The event loop's connect failed.
    fn connect_failed(
        &self,
        route: C::Route,
        state: Option<State>,
        permit: Permit,
        attempt: Attempt,
        error: std::io::Error,
    ) {
        self.binder.abandoned(&route, state.as_ref());
        let failure = self.failed(&route, &error, attempt);
        self.core.connect_failed(permit);
        self.binder.fail_route(&route, &failure);
    }

    /// Drops a connect the event loop will not drive (shutdown).
    fn abandon(&self, job: ConnectJob<C>) {
        self.binder.abandoned(&job.route, job.state.as_ref());
        self.abandon_uncounted(job);
    }

    /// Abandons a command the loop will not run (it has stopped): a
    /// connect's capacity goes back. A watch, a forget or a leak check is
    /// dropped: the stopped loop watches and times nothing any more.
    fn abandon_command(&self, command: LoopCommand<C>) {
        if let LoopCommand::Connect(job) = command {
            self.abandon(job);
        }
    }

    /// Evicts idle connections past their idle timeout or lifetime at
    /// `now`, and any the loop found dead.
    fn sweep(&self, now: Instant) {
        self.evict(Retire {
            dead: true,
            expired_by: Some(now),
            routes: Some(self.routes.expiry(&self.config)),
            ..Retire::default()
        });
    }

    fn sweep_period(&self) -> Option<Duration> {
        self.routes.sweep_period(&self.config)
    }

    fn connect_timeout(&self, route: &C::Route) -> Option<Duration> {
        self.routes.connect_timeout(route, &self.config)
    }

    /// Evicts the idle connections the loop found dead.
    fn evict_dead(&self) {
        self.evict(Retire {
            dead: true,
            ..Retire::default()
        });
    }

    /// Reports the lease of `check` if it is still out.
    fn leak(&self, check: LeakCheck, now: Instant) {
        if check.leases.load(Ordering::Acquire) != check.lease {
            return;
        }
        CloseCounters::bump(&self.counters.leaks);
        tracing::warn!(
            route = %check.route,
            location = %check.location,
            held_for = ?now.saturating_duration_since(check.taken),
            "leasehold: a lease has been held longer than the leak-detection threshold"
        );
    }

    /// Permits for the connections routes need to reach their `min_idle`,
    /// each with whether it is its route's probe (a route that is down
    /// gets one connect at most, and none while it rests).
    fn warm_permits(&self) -> Vec<(C::Route, Permit, bool)> {
        if self.core.is_closed() {
            return Vec::new();
        }
        let mut routes: Vec<C::Route> = self
            .config
            .min_idle
            .iter()
            .map(|(r, _)| r.clone())
            .collect();
        if self.config.min_idle_per_route > 0 {
            for (route, _) in self.core.stats().routes {
                // Each route once: the permits below are not yet counted in
                // its group, so a second pass would warm it twice.
                if !routes.contains(&route) {
                    routes.push(route);
                }
            }
        }
        let mut permits = Vec::new();
        for route in routes {
            let want = self.config.min_idle(&route);
            let have = self.core.route_stats(&route).idle + self.binder.connecting_for(&route);
            if have >= want {
                continue;
            }
            let probe = match self.admit_connect(&route, Instant::now()) {
                Admit::Connect => false,
                Admit::Probe => true,
                Admit::Wait | Admit::Refuse(_) => continue,
            };
            let wanted = if probe { 1 } else { want - have };
            let before = permits.len();
            for _ in 0..wanted {
                match self.spare_permit(&route, None) {
                    Some(permit) => permits.push((route.clone(), permit, probe)),
                    None => break,
                }
            }
            if probe && permits.len() == before {
                self.breaker.probe_ended(&route);
            }
        }
        permits
    }

    /// Records the figures into the `metrics` facade.
    #[cfg(feature = "metrics")]
    fn export_metrics(&self) {
        let routes = self.figures_by_route();
        self.figures
            .export(&self.config.name, &self.figures_total(), &routes);
    }

    /// Logs the health line for the period since `last` (the previous
    /// line's figures), and returns the figures it read.
    fn log_health(&self, last: Option<&Figures>) -> Figures {
        let total = self.figures_total();
        let window = match last {
            Some(last) => total.since(last),
            None => total.clone(),
        };
        let mut routes = self.core.stats().routes;
        let line = crate::figures::report::health_line(&self.config.name, &window, &mut routes);
        tracing::info!(target: "leasehold::health", pool = %self.config.name, "{line}");
        total
    }
}

/// `lifetime` less a random part of up to 5 %, so connections opened
/// together expire apart.
fn jittered(lifetime: Duration) -> Duration {
    let spread = lifetime / 20;
    let cut = spread.mul_f64(fastrand::f64());
    lifetime - cut
}
