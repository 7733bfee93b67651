//! The event loop: one thread per pool running a `mio::Poll`.
//!
//! It drives connects on readiness (many at once, none on a caller's
//! thread), enforces the connect timeout, watches idle sockets and evicts
//! the ones the peer closed, runs the pool's timers (idle timeout, max
//! lifetime, leak detection, `min_idle` upkeep) and hands connections it
//! retires to the closer ([`dispose`]), which closes them off every
//! caller's thread.
//!
//! Everything reaches the loop through a lock-free command queue
//! ([`Remote`], a [`Mailbox`]) plus a `mio::Waker`; the loop owns its
//! poller, its timers and its tables, so none of them needs a lock. What
//! it does to the pool (hand a new connection to a waiter, evict, fail a
//! route) goes through [`LoopHost`], the narrow interface the pool's shared
//! state implements, the same way a caller's thread would. A pool whose connector connects at once (an
//! in-memory mock) and has no timers set never wakes it.
//!
//! It stops on shutdown or when the pool is dropped: connects in flight are
//! abandoned (their capacity given back, their sockets closed) and the
//! thread is joined, within the shutdown grace — unless the pool is
//! dropped on this very thread (a connect that carried the last handle
//! completed), which then ends on its own after the turn it is in. The
//! stop closes the mailbox and drains it, so a connect queued before is
//! abandoned by the loop and one sent after is handed back to its sender,
//! who abandons it: none is lost with its capacity.

pub(crate) mod alarm;
pub(crate) mod dispose;
pub(crate) mod pool_thread;
mod timers;
#[cfg(unix)]
mod watch;

#[cfg(not(unix))]
pub(crate) use nowatch::Watch;
#[cfg(not(unix))]
use nowatch::{Watches, ARM_PERIOD};
#[cfg(unix)]
pub(crate) use watch::Watch;
#[cfg(unix)]
use watch::{Watches, ARM_PERIOD};

use crate::config::Config;
use crate::connector::{connector_panicked, Connector, Handshake};
use crate::figures::Figures;
use crate::unwind::{guarded, message};
use alarm::Alarm;
use leasehold_policies::unstable::{Mailbox, Permit};
use leasehold_policies::State;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use timers::Timers;

const WAKER: Token = Token(0);

/// When a connect started and whether it is its route's probe: what the
/// circuit breaker needs to know of its outcome.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    pub(crate) started: Instant,
    pub(crate) probe: bool,
}

/// A connect in flight.
pub(crate) struct ConnectJob<C: Connector> {
    pub(crate) route: C::Route,
    pub(crate) state: Option<State>,
    pub(crate) permit: Permit,
    pub(crate) attempt: Attempt,
    pub(crate) handshake: C::Handshake,
}

/// A lease to check for a leak at `at`.
#[derive(Debug)]
pub(crate) struct LeakCheck {
    pub(crate) at: Instant,
    pub(crate) taken: Instant,
    pub(crate) leases: Arc<AtomicU64>,
    pub(crate) lease: u64,
    pub(crate) location: &'static Location<'static>,
    pub(crate) route: String,
}

/// What the loop is asked to do.
pub(crate) enum LoopCommand<C: Connector> {
    /// Drive this connect to its end.
    Connect(ConnectJob<C>),
    /// Watch this idle-to-be connection's socket.
    Watch(Arc<Watch>),
    /// The connection under this token is being closed.
    Forget(usize),
    /// Report this lease if it is still out at its deadline.
    Leak(LeakCheck),
    /// Wake this async request at its instant.
    Alarm(Weak<Alarm>),
}

/// What the event loop asks of the pool it serves, and all it knows of
/// it: the pool's shared state implements it.
pub(crate) trait LoopHost: Send + Sync + 'static {
    type Connector: Connector;

    fn config(&self) -> &Config<RouteOf<Self>>;

    fn remote(&self) -> &Remote<Self::Connector>;

    fn connector(&self) -> &Self::Connector;

    /// The loop cannot go on: every request fails at once rather than
    /// waiting for connects, deadlines or evictions it would drive.
    fn loop_broke(&self);

    /// A connect to `route` begins now.
    fn attempt(&self, route: &RouteOf<Self>, probe: bool) -> Attempt;

    /// A connect begun at `started` finished.
    fn connected(&self, route: RouteOf<Self>, permit: Permit, conn: ConnOf<Self>, started: Instant);

    /// A connect failed.
    fn connect_failed(
        &self,
        route: RouteOf<Self>,
        state: Option<State>,
        permit: Permit,
        attempt: Attempt,
        error: io::Error,
    );

    /// A permit for one more connect for requests of `route` and `state`
    /// that `max_connecting` held back, if any wait.
    fn refill(&self, route: &RouteOf<Self>, state: Option<&State>) -> Option<Permit>;

    /// Evicts idle connections past their idle timeout or lifetime at
    /// `now`, and any the loop found dead.
    fn sweep(&self, now: Instant);

    /// How often to [`sweep`](Self::sweep): `None` if nothing expires.
    fn sweep_period(&self) -> Option<Duration>;

    /// The connect timeout of `route`.
    fn connect_timeout(&self, route: &RouteOf<Self>) -> Option<Duration>;

    /// Forgets routes unused for a sweep period.
    fn sweep_routes(&self);

    /// Evicts the idle connections the loop found dead.
    fn evict_dead(&self);

    /// Reports a lease still out at its deadline.
    fn leak(&self, check: LeakCheck, now: Instant);

    /// Permits for the connections routes below their `min_idle` need
    /// (with whether each is its route's probe).
    fn warm_permits(&self) -> Vec<(RouteOf<Self>, Permit, bool)>;

    /// A warming connect to `route` is starting.
    fn warm_started(&self, route: &RouteOf<Self>);

    /// Writes the health line; the figures it read, where the next
    /// period starts.
    fn log_health(&self, last: Option<&Figures>) -> Figures;

    /// Records the figures into the `metrics` facade.
    #[cfg(feature = "metrics")]
    fn export_metrics(&self);

    /// Drops a connect the loop will not drive (it stopped).
    fn abandon(&self, job: ConnectJob<Self::Connector>);

    /// Abandons a command the stopped loop will not run.
    fn abandon_command(&self, command: LoopCommand<Self::Connector>);
}

/// The routes of a host's connector.
type RouteOf<H> = <<H as LoopHost>::Connector as Connector>::Route;
/// The connections of a host's connector.
type ConnOf<H> = <<H as LoopHost>::Connector as Connector>::Conn;

/// The way into the loop, shared by the pool's threads.
pub(crate) struct Remote<C: Connector> {
    /// Closed by the loop when it stops (see [`Remote::close_and_drain`]).
    commands: Mailbox<LoopCommand<C>>,
    waker: mio::Waker,
    /// The loop's registry, for a registration that must end before the
    /// loop hears of it (a detached connection's).
    pub(crate) registry: mio::Registry,
    tokens: AtomicUsize,
    stopping: AtomicBool,
    /// Makes the loop panic at the end of its next turn (tests of what the
    /// pool does when its loop cannot go on).
    #[cfg(test)]
    pub(crate) crash: AtomicBool,
}

impl<C: Connector> Remote<C> {
    /// Queues `command` and wakes the loop.
    ///
    /// # Errors
    /// Gives `command` back once the loop has stopped: the caller abandons
    /// a connect itself.
    pub(crate) fn send(&self, command: LoopCommand<C>) -> Result<(), LoopCommand<C>> {
        self.commands.push(command)?;
        // A failed wake leaves the command for the loop's next turn.
        let _ = self.waker.wake();
        Ok(())
    }

    /// Queues `command` for the loop's next turn, without waking it.
    ///
    /// # Errors
    /// Gives `command` back once the loop has stopped, as [`send`](Self::send).
    pub(crate) fn post(&self, command: LoopCommand<C>) -> Result<(), LoopCommand<C>> {
        self.commands.push(command)
    }

    /// A fresh token for a watched socket.
    pub(crate) fn token(&self) -> usize {
        self.tokens.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes a queued command (the loop's).
    pub(crate) fn take(&self) -> Option<LoopCommand<C>> {
        self.commands.pop()
    }

    /// The loop stops taking commands: every later `send` or `post` gives
    /// its command back, and `abandon` gets each command still queued, once
    /// no send is half-way (so none slips in behind the drain).
    pub(crate) fn close_and_drain(&self, abandon: impl FnMut(LoopCommand<C>)) {
        self.commands.close_and_drain(abandon);
    }

    /// Whether the loop has stopped taking commands.
    pub(crate) fn is_stopped(&self) -> bool {
        self.commands.is_closed()
    }

    /// Asks the loop to stop.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

impl<C: Connector> fmt::Debug for Remote<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("queued", &self.commands.len())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// What a timer is for.
enum Timer {
    /// The connect under this token runs out of time.
    ConnectDeadline(Token),
    /// Evict idle connections past their idle timeout or lifetime, and
    /// any the loop marked dead.
    Sweep,
    /// Top idle connections up to `min_idle`, and again every
    /// `WARM_PERIOD` (one such timer is pending at any time).
    Warm,
    /// Top idle connections up to `min_idle` once (after evictions).
    WarmNow,
    /// Evict idle connections marked dead once more.
    EvictDead,
    /// Watch connections that have stayed idle since the last look.
    ArmIdle,
    /// Take queued leak checks into the timers.
    LeakTick,
    Leak(LeakCheck),
    Alarm(Weak<Alarm>),
    /// Log the health line, and again every `health_every`.
    Health,
    /// Record the figures into the `metrics` facade, and again every
    /// `metrics_every`.
    #[cfg(feature = "metrics")]
    Metrics,
}

/// The loop's own state, owned by its thread.
pub(crate) struct Reactor<H: LoopHost> {
    host: Arc<H>,
    poll: Poll,
    timers: Timers<Timer>,
    jobs: HashMap<Token, (ConnectJob<H::Connector>, Interest)>,
    watches: Watches,
    /// A `Timer::EvictDead` is pending.
    recheck_set: bool,
    /// A `Timer::ArmIdle` is pending.
    arm_set: bool,
    /// The figures the last health line read: the next line's period
    /// starts there.
    last_health: Option<crate::figures::Figures>,
}

/// Creates the poller and the way into it.
pub(crate) fn channel<C: Connector>() -> io::Result<(Poll, Remote<C>)> {
    let poll = Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), WAKER)?;
    let registry = poll.registry().try_clone()?;
    Ok((
        poll,
        Remote {
            commands: Mailbox::new(),
            waker,
            registry,
            tokens: AtomicUsize::new(1),
            stopping: AtomicBool::new(false),
            #[cfg(test)]
            crash: AtomicBool::new(false),
        },
    ))
}

impl<H: LoopHost> Reactor<H> {
    pub(crate) fn new(host: Arc<H>, poll: Poll) -> Self {
        Self {
            host,
            poll,
            timers: Timers::new(),
            jobs: HashMap::new(),
            watches: Watches::default(),
            recheck_set: false,
            arm_set: false,
            last_health: None,
        }
    }

    /// Runs until asked to stop.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let now = Instant::now();
        let config = self.host.config();
        let period = self
            .host
            .sweep_period()
            .unwrap_or(crate::config::ROUTE_SWEEP_PERIOD);
        self.timers.set(now + period, Timer::Sweep);
        if config.warms() {
            self.timers.set(now, Timer::Warm);
        }
        if let Some(threshold) = config.leak_threshold {
            self.timers.set(now + leak_tick(threshold), Timer::LeakTick);
        }
        self.every(now, self.host.config().health_every, Timer::Health);
        #[cfg(feature = "metrics")]
        self.every(now, self.host.config().metrics_every, Timer::Metrics);
        let stopped = catch_unwind(AssertUnwindSafe(|| self.turns(&mut events)));
        let broken = match stopped {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("its poller failed: {e}")),
            Err(panic) => Some(format!("it panicked: {}", message(&*panic))),
        };
        if let Some(why) = broken {
            // Nothing would drive connects, deadlines or evictions any more:
            // every request fails at once rather than waiting for them.
            tracing::error!("leasehold: the event loop stopped ({why}); the pool is shut down");
            let host = &self.host;
            guarded("shutting the pool down", || host.loop_broke());
        }
        self.stop();
    }

    /// Runs the loop's turns until it is asked to stop; an error if the
    /// poller fails.
    fn turns(&mut self, events: &mut Events) -> io::Result<()> {
        while !self.host.remote().stopping.load(Ordering::SeqCst) {
            let wait = self.timers.next_in(Instant::now());
            if let Err(e) = self.poll.poll(events, wait) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // Every idle connection found dead in this turn is marked first
            // (a lease refuses a marked one from then on), then all are
            // evicted in one pass.
            let mut dead = false;
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    token if self.jobs.contains_key(&token) => self.advance(token),
                    token => dead |= self.watches.readiness(self.poll.registry(), token),
                }
            }
            if dead {
                self.evict_dead(Instant::now());
            }
            self.commands();
            self.fire(Instant::now());
            self.arm_later(Instant::now());
            #[cfg(test)]
            if self.host.remote().crash.load(Ordering::SeqCst) {
                panic!("an injected fault in the event loop");
            }
        }
        Ok(())
    }

    fn commands(&mut self) {
        while let Some(command) = self.host.remote().take() {
            match command {
                LoopCommand::Connect(job) => self.start(job),
                LoopCommand::Watch(watch) => self.watches.add(self.poll.registry(), watch),
                LoopCommand::Forget(token) => self.watches.forget(token),
                LoopCommand::Leak(check) => self.timers.set(check.at, Timer::Leak(check)),
                LoopCommand::Alarm(alarm) => {
                    // One dropped already (its request ended) needs no timer.
                    if let Some(at) = alarm.upgrade().map(|alarm| alarm.at) {
                        self.timers.set(at, Timer::Alarm(alarm));
                    }
                }
            }
        }
    }

    fn start(&mut self, mut job: ConnectJob<H::Connector>) {
        let token = Token(self.host.remote().token());
        let registry = self.poll.registry();
        let registered = guarded("the connector's handshake", || {
            let interest = job.handshake.interest();
            registry
                .register(&mut job.handshake, token, interest)
                .map(|()| interest)
        })
        .unwrap_or_else(|| Err(connector_panicked()));
        let interest = match registered {
            Ok(interest) => interest,
            Err(e) => {
                let ConnectJob {
                    route,
                    state,
                    permit,
                    attempt,
                    handshake,
                } = job;
                discard(handshake);
                return self.host.connect_failed(route, state, permit, attempt, e);
            }
        };
        let timeout = self.host.connect_timeout(&job.route);
        // A deadline past what the clock can hold is none.
        if let Some(at) = timeout.and_then(|timeout| Instant::now().checked_add(timeout)) {
            self.timers.set(at, Timer::ConnectDeadline(token));
        }
        self.jobs.insert(token, (job, interest));
        // Registration reports readiness that is already there, but a
        // handshake may also be able to progress before any event.
        self.advance(token);
    }

    fn advance(&mut self, token: Token) {
        let Some((job, interest)) = self.jobs.get_mut(&token) else {
            return;
        };
        let registry = self.poll.registry();
        let step = guarded("the connector's handshake", || {
            let conn = job.handshake.advance()?;
            if conn.is_none() {
                let next = job.handshake.interest();
                if next != *interest {
                    *interest = next;
                    registry.reregister(&mut job.handshake, token, next)?;
                }
            }
            Ok(conn)
        })
        .unwrap_or_else(|| Err(connector_panicked()));
        match step {
            Ok(None) => {}
            Ok(Some(conn)) => self.finish(token, Ok(conn)),
            Err(e) => self.finish(token, Err(e)),
        }
    }

    fn finish(&mut self, token: Token, result: io::Result<ConnOf<H>>) {
        let Some((job, _)) = self.jobs.remove(&token) else {
            return;
        };
        let ConnectJob {
            route,
            state,
            permit,
            attempt,
            mut handshake,
        } = job;
        let registry = self.poll.registry();
        guarded("the connector's handshake", || {
            registry.deregister(&mut handshake)
        });
        discard(handshake);
        match result {
            Ok(conn) => {
                self.host
                    .connected(route.clone(), permit, conn, attempt.started);
                if self.host.config().max_connecting.is_some() {
                    if let Some(permit) = self.host.refill(&route, state.as_ref()) {
                        self.connect(route, state, permit, false);
                    }
                }
            }
            Err(e) => self.host.connect_failed(route, state, permit, attempt, e),
        }
    }

    /// Starts a connect for a permit the loop took itself (counted in its
    /// group already).
    fn connect(&mut self, route: RouteOf<H>, state: Option<State>, permit: Permit, probe: bool) {
        let attempt = self.host.attempt(&route, probe);
        let connector = self.host.connector();
        let connected = guarded("the connector", || connector.connect(&route))
            .unwrap_or_else(|| Err(connector_panicked()));
        match connected {
            Ok(crate::Progress::Ready(conn)) => {
                self.host.connected(route, permit, conn, attempt.started)
            }
            Ok(crate::Progress::Pending(handshake)) => self.start(ConnectJob {
                route,
                state,
                permit,
                attempt,
                handshake,
            }),
            Err(e) => self.host.connect_failed(route, state, permit, attempt, e),
        }
    }

    /// Looks for idle connections to watch again after `ARM_PERIOD`, if
    /// some wait and no look is due yet.
    fn arm_later(&mut self, now: Instant) {
        if !self.arm_set && self.watches.waiting() {
            self.arm_set = true;
            self.timers.set(now + ARM_PERIOD, Timer::ArmIdle);
        }
    }

    /// Sets `timer` for one `period` after `now`, if there is a period and
    /// it ends within what the clock can hold (otherwise it never comes).
    fn every(&mut self, now: Instant, period: Option<Duration>, timer: Timer) {
        if let Some(at) = period.and_then(|period| now.checked_add(period)) {
            self.timers.set(at, timer);
        }
    }

    /// Evicts the idle connections marked dead, and looks again a little
    /// later: one that died between its return and its arrival among the
    /// idle ones is caught then (and refused at lease meanwhile).
    fn evict_dead(&mut self, now: Instant) {
        self.host.evict_dead();
        if !self.recheck_set {
            self.recheck_set = true;
            self.timers.set(now + RECHECK_DEAD, Timer::EvictDead);
        }
    }

    fn fire(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::ConnectDeadline(token) => {
                    let stage = self.jobs.get(&token).map(|(job, _)| {
                        let stage = guarded("the connector's handshake", || job.handshake.stage())
                            .unwrap_or("a connect");
                        (self.host.connect_timeout(&job.route), stage)
                    });
                    if let Some((Some(timeout), stage)) = stage {
                        let error = io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("connect timed out after {timeout:?} ({stage} under way)"),
                        );
                        self.finish(token, Err(error));
                    }
                }
                Timer::Sweep => {
                    let idle_period = self.host.sweep_period();
                    if idle_period.is_some() {
                        self.host.sweep(now);
                        if self.host.config().warms() {
                            self.timers.set(now, Timer::WarmNow);
                        }
                    }
                    self.host.sweep_routes();
                    // Alarms of requests that ended (served long before
                    // their deadline) would stay until it.
                    self.timers.retain(|timer| match timer {
                        Timer::Alarm(alarm) => alarm.strong_count() > 0,
                        _ => true,
                    });
                    let period = idle_period.unwrap_or(crate::config::ROUTE_SWEEP_PERIOD);
                    self.timers.set(now + period, Timer::Sweep);
                }
                Timer::EvictDead => {
                    self.recheck_set = false;
                    self.host.evict_dead();
                    if self.host.config().warms() {
                        self.timers.set(now, Timer::WarmNow);
                    }
                }
                Timer::ArmIdle => {
                    self.arm_set = false;
                    if self.watches.arm_idle(self.poll.registry()) {
                        self.evict_dead(now);
                    }
                }
                Timer::WarmNow => self.warm(),
                Timer::Warm => {
                    self.warm();
                    self.timers.set(now + WARM_PERIOD, Timer::Warm);
                }
                Timer::LeakTick => {
                    self.commands();
                    if let Some(threshold) = self.host.config().leak_threshold {
                        self.timers.set(now + leak_tick(threshold), Timer::LeakTick);
                    }
                }
                Timer::Leak(check) => self.host.leak(check, now),
                Timer::Alarm(alarm) => {
                    if let Some(alarm) = alarm.upgrade() {
                        alarm.ring();
                    }
                }
                Timer::Health => {
                    let last = self.last_health.take();
                    self.last_health = Some(self.host.log_health(last.as_ref()));
                    self.every(now, self.host.config().health_every, Timer::Health);
                }
                #[cfg(feature = "metrics")]
                Timer::Metrics => {
                    self.host.export_metrics();
                    self.every(now, self.host.config().metrics_every, Timer::Metrics);
                }
            }
        }
    }

    /// Opens connections for routes below their `min_idle`.
    fn warm(&mut self) {
        for (route, permit, probe) in self.host.warm_permits() {
            self.host.warm_started(&route);
            self.connect(route, None, permit, probe);
        }
    }

    fn stop(self) {
        for (_, (mut job, _)) in self.jobs {
            let (registry, host) = (self.poll.registry(), &self.host);
            guarded("abandoning a connect", move || {
                let _ = registry.deregister(&mut job.handshake);
                host.abandon(job);
            });
        }
        // After this, a connect sent to the loop comes back to its sender,
        // who abandons it (`Shared::submit`).
        let host = &self.host;
        host.remote()
            .close_and_drain(|command| host.abandon_command(command));
    }
}

/// Drops a handshake the loop is done with; a panic in its `Drop` is the
/// connector's, and is logged.
fn discard<H>(handshake: H) {
    guarded("dropping the connector's handshake", move || {
        drop(handshake)
    });
}

/// How long after evicting dead idle connections the loop looks again.
const RECHECK_DEAD: Duration = Duration::from_millis(20);

/// How often `min_idle` is checked besides after evictions.
const WARM_PERIOD: Duration = Duration::from_millis(500);

fn leak_tick(threshold: Duration) -> Duration {
    (threshold / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

#[cfg(not(unix))]
mod nowatch {
    //! Idle watching needs Unix file descriptors; elsewhere nothing is
    //! watched.

    use mio::{Registry, Token};
    use std::sync::Arc;
    use std::time::Duration;

    pub(crate) const ARM_PERIOD: Duration = Duration::from_secs(1);

    /// Never constructed off Unix.
    #[derive(Debug)]
    pub(crate) struct Watch {
        pub(crate) token: usize,
    }

    impl Watch {
        pub(crate) fn lease(&self) -> bool {
            true
        }
        pub(crate) fn release(&self) -> bool {
            true
        }
        pub(crate) fn is_dead(&self) -> bool {
            false
        }
        pub(crate) fn drop_duplicate(&self) {}
        pub(crate) fn unregister(&self, _: &Registry) {}
    }

    /// Watches nothing.
    #[derive(Debug, Default)]
    pub(crate) struct Watches;

    impl Watches {
        pub(crate) fn add(&mut self, _: &Registry, _: Arc<Watch>) {}
        pub(crate) fn forget(&mut self, _: usize) {}
        pub(crate) fn waiting(&self) -> bool {
            false
        }
        pub(crate) fn readiness(&mut self, _: &Registry, _: Token) -> bool {
            false
        }
        pub(crate) fn arm_idle(&mut self, _: &Registry) -> bool {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockConnector;

    /// An event loop that cannot go on shuts the pool down: the request
    /// waiting (with no deadline) and every later one fail at once instead
    /// of waiting for a loop that is gone.
    #[test]
    fn a_loop_that_panics_fails_every_request() {
        use crate::{Error, Pool};
        let pool: Pool<MockConnector> = Pool::builder(MockConnector::new())
            .max_total(1)
            .build()
            .unwrap();
        let held = pool.lease(&()).unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.lease(&()).map(drop));
            while pool.stats().total.pending == 0 {
                std::thread::yield_now();
            }
            let remote = LoopHost::remote(pool.shared());
            remote.crash.store(true, Ordering::SeqCst);
            assert!(
                remote.send(LoopCommand::Forget(0)).is_ok(),
                "wakes the loop"
            );
            assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
        });
        assert!(pool.is_closed());
        assert!(matches!(pool.lease(&()), Err(Error::Closed)));
        drop(held);
        assert_eq!(pool.stats().total.allocated(), 0, "closed on return");
    }

    #[test]
    fn a_stopped_loop_hands_commands_back() {
        let (_poll, remote) = channel::<MockConnector>().unwrap();
        assert!(remote.send(LoopCommand::Forget(1)).is_ok());
        assert!(remote.post(LoopCommand::Forget(2)).is_ok());
        assert!(format!("{remote:?}").contains("queued: 2"), "{remote:?}");
        let mut drained = Vec::new();
        remote.close_and_drain(|command| {
            if let LoopCommand::Forget(token) = command {
                drained.push(token);
            }
        });
        assert_eq!(drained, [1, 2]);
        assert!(remote.is_stopped());
        assert!(matches!(
            remote.send(LoopCommand::Forget(3)),
            Err(LoopCommand::Forget(3))
        ));
        assert!(matches!(
            remote.post(LoopCommand::Forget(4)),
            Err(LoopCommand::Forget(4))
        ));
        assert!(remote.take().is_none());
        assert!(
            format!("{remote:?}").contains("stopped: true"),
            "{remote:?}"
        );
    }
}
