//! What a pool measures of its own work, per route, merged into pool-wide
//! figures when read: how each lease was served (an idle connection at
//! once, a returned one after a wait, a new one after a connect) and how
//! long it waited, how long connections are held, how long connects take,
//! and the requests that timed out or were refused.
//!
//! # Cost
//!
//! A hit adds one to its connection's own count (a load and a store: the
//! holder is its only writer, see [`CountPart`]) and steps a thread-local
//! tick. Clock reads are sampled: one lease in [`DEFAULT_SAMPLE_EVERY`]
//! per thread (by default) has its hit and its hold timed, so hold times
//! and hit waits are estimates from that sample; waits that queued or
//! connected, and connects, are timed every time (those paths read the
//! clock already). Histograms take one relaxed add per bucket and sum.
//!
//! # Route lifetime
//!
//! A route's figures live while a connection or a waiting request refers
//! to them; the pool's route sweep then folds them into the pool-wide
//! totals, so [`Pool::figures`](crate::Pool::figures) never goes back,
//! while [`Pool::route_figures`](crate::Pool::route_figures) starts over
//! for a route that comes back.

#[cfg(feature = "metrics")]
mod export;
mod histogram;
pub(crate) mod report;
mod sizing;

pub use histogram::Histogram;
pub use sizing::{Sizing, SizingReport};

use leasehold_policies::unstable::{CountPart, CountSum};
use leasehold_policies::Stats;
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// One lease in this many (per thread) has its hit and hold timed, unless
/// [`Builder::sample_every`](crate::Builder::sample_every) says otherwise.
pub const DEFAULT_SAMPLE_EVERY: u32 = 32;

thread_local! {
    /// Leases this thread has asked for, of any pool: the sampling tick.
    static TICK: Cell<u32> = const { Cell::new(0) };
}

/// The figures of one route, as connections and requests record them.
///
/// Waits and connects are counted by their histograms (each is recorded
/// every time); the rest, off the hit path but for the hits, in counters.
pub(crate) struct RouteFigures {
    /// Each open connection's hits, and those of the closed ones.
    hits: CountSum,
    timeouts: AtomicU64,
    exhausted: AtomicU64,
    connects_started: AtomicU64,
    connect_failures: AtomicU64,
    wait_hit: histogram::Recorder,
    wait_queued: histogram::Recorder,
    wait_connect: histogram::Recorder,
    hold: histogram::Recorder,
    connect_time: histogram::Recorder,
}

/// How a lease was served, for [`ConnTally::served`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Asked {
    /// At once; `Some` when the lease is sampled: when it asked.
    Hit(Option<Instant>),
    /// After waiting since `since`; `sampled`: its hold is to be timed.
    Waited { since: Instant, sampled: bool },
}

impl RouteFigures {
    fn new() -> Self {
        Self {
            hits: CountSum::new(),
            timeouts: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            connects_started: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            wait_hit: histogram::Recorder::new(),
            wait_queued: histogram::Recorder::new(),
            wait_connect: histogram::Recorder::new(),
            hold: histogram::Recorder::new(),
            connect_time: histogram::Recorder::new(),
        }
    }

    /// A sampled hit asked at `asked` is served now; returns now.
    fn timed_hit(&self, asked: Instant) -> Instant {
        let now = Instant::now();
        self.wait_hit.record(now.saturating_duration_since(asked));
        now
    }

    /// A lease that waited since `since` is served now by a connection new
    /// (`fresh`) or not; returns now.
    fn waited(&self, since: Instant, fresh: bool) -> Instant {
        let now = Instant::now();
        let waited = now.saturating_duration_since(since);
        if fresh {
            self.wait_connect.record(waited);
        } else {
            self.wait_queued.record(waited);
        }
        now
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn exhausted(&self) {
        self.exhausted.fetch_add(1, Relaxed);
    }

    /// A connect began.
    pub(crate) fn connect_started(&self) {
        self.connects_started.fetch_add(1, Relaxed);
    }

    /// A connect started at `started` ended, made or failed.
    pub(crate) fn connect_ended(&self, started: Instant, made: bool) {
        if made {
            self.connect_time.record(started.elapsed());
        } else {
            self.connect_failures.fetch_add(1, Relaxed);
        }
    }

    /// Adds these figures to `into`.
    fn add_to(&self, into: &mut Figures) {
        let mut read = Figures {
            hits: self.hits.total(),
            timeouts: self.timeouts.load(Relaxed),
            exhausted: self.exhausted.load(Relaxed),
            connects_started: self.connects_started.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            ..Figures::default()
        };
        self.wait_hit.add_to(&mut read.wait_hit);
        self.wait_queued.add_to(&mut read.wait_queued);
        self.wait_connect.add_to(&mut read.wait_connect);
        self.hold.add_to(&mut read.hold);
        self.connect_time.add_to(&mut read.connect_time);
        // The counts the histograms keep, from the same read of them.
        read.waits = read.wait_queued.count();
        read.connect_waits = read.wait_connect.count();
        read.connects = read.connect_time.count();
        read.add_counts_to(into);
    }
}

/// A connection's way into its route's figures, and its part of the
/// route's hit count: the connection's holder is its only writer (see
/// [`CountPart`]), so a hit adds with a load and a store instead of a
/// read-modify-write. Its field order drops the part before the figures.
pub(crate) struct ConnTally {
    hits: CountPart,
    figures: Arc<RouteFigures>,
}

impl ConnTally {
    /// Records a lease of the connection served as `asked` says, by a
    /// connection new (`fresh`) or not; returns when its hold began if it
    /// is to be timed.
    #[inline]
    pub(crate) fn served(&self, asked: Asked, fresh: bool) -> Option<Instant> {
        match asked {
            Asked::Hit(asked) => {
                self.hits.add_one();
                Some(self.figures.timed_hit(asked?))
            }
            Asked::Waited { since, sampled } => {
                let now = self.figures.waited(since, fresh);
                sampled.then_some(now)
            }
        }
    }

    /// A lease timed from `since` ended now.
    pub(crate) fn held(&self, since: Instant) {
        self.figures.hold.record(since.elapsed());
    }

    /// The connection was opened by a connect that began at `started`.
    pub(crate) fn opened(&self, started: Instant) {
        self.figures.connect_ended(started, true);
    }
}

/// The figures of every route of a pool.
pub(crate) struct Registry<R> {
    /// One lease in this many per thread is timed, a power of two; 0: no
    /// figures at all.
    sample_every: u32,
    routes: RwLock<HashMap<R, Arc<RouteFigures>>>,
    /// The figures of the routes swept away.
    retired: Mutex<Figures>,
    started: Instant,
    /// What the last [`sizing`](Self::sizing) read: the window of the next
    /// one starts there.
    last_sizing: Mutex<Option<(Figures, HashMap<R, Figures>)>>,
    #[cfg(feature = "metrics")]
    exporter: Mutex<export::Exporter>,
}

impl<R: Clone + Eq + Hash> Registry<R> {
    /// Figures that time one lease in `sample_every`, rounded up to a power
    /// of two (0: no figures).
    pub(crate) fn new(sample_every: u32) -> Self {
        let sample_every = match sample_every {
            0 => 0,
            n => n.checked_next_power_of_two().unwrap_or(1 << 31),
        };
        Self {
            sample_every,
            routes: RwLock::default(),
            retired: Mutex::default(),
            started: Instant::now(),
            last_sizing: Mutex::default(),
            #[cfg(feature = "metrics")]
            exporter: Mutex::default(),
        }
    }

    /// Whether the pool records figures.
    pub(crate) fn on(&self) -> bool {
        self.sample_every > 0
    }

    /// When this thread's lease is to be timed: now, when it asked. The
    /// thread's tick, masked: one lease in `sample_every` (a power of two)
    /// is, the thread's first among them.
    #[inline]
    pub(crate) fn sample(&self) -> Option<Instant> {
        if self.sample_every == 0 {
            return None;
        }
        let tick = TICK.with(|tick| {
            let now = tick.get();
            tick.set(now.wrapping_add(1));
            now
        });
        (tick & (self.sample_every - 1) == 0).then(Instant::now)
    }

    /// The tally of a new connection to `route`; `None` when figures are
    /// off.
    pub(crate) fn conn(&self, route: &R) -> Option<ConnTally> {
        let figures = self.route(route)?;
        Some(ConnTally {
            hits: figures.hits.open(),
            figures,
        })
    }

    /// The figures of `route`, made if need be; `None` when figures are off.
    pub(crate) fn route(&self, route: &R) -> Option<Arc<RouteFigures>> {
        if !self.on() {
            return None;
        }
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(figures) = routes.get(route) {
            return Some(figures.clone());
        }
        drop(routes);
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        Some(
            routes
                .entry(route.clone())
                .or_insert_with(|| Arc::new(RouteFigures::new()))
                .clone(),
        )
    }

    /// Folds the figures nothing refers to any more into the pool-wide
    /// totals.
    pub(crate) fn sweep(&self) {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        // Unique: no connection or request holds the figures, and none
        // can take them but from this map, locked. `get_mut` also makes
        // every add made through a clone now dropped visible here.
        routes.retain(|_, figures| match Arc::get_mut(figures) {
            Some(unused) => {
                unused.add_to(&mut retired);
                false
            }
            None => true,
        });
    }

    /// The figures of `route` so far, with `stats` as its gauges.
    pub(crate) fn of_route(&self, route: &R, stats: Stats) -> Figures {
        let mut figures = self.empty(stats);
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(route) = routes.get(route) {
            route.add_to(&mut figures);
        }
        figures
    }

    /// Every route's figures, merged, with the pool's gauges and closes.
    pub(crate) fn total(&self, stats: Stats, health: Health) -> Figures {
        let mut figures = self.empty(stats);
        figures.health = health;
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add_counts_to(&mut figures);
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        for route in routes.values() {
            route.add_to(&mut figures);
        }
        figures
    }

    /// The figures of every route the pool has figures for, each with its
    /// gauges from `stats`.
    pub(crate) fn by_route(&self, stats: impl Fn(&R) -> Stats) -> Vec<(R, Figures)> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes
            .iter()
            .map(|(route, recorded)| {
                let mut figures = self.empty(stats(route));
                recorded.add_to(&mut figures);
                (route.clone(), figures)
            })
            .collect()
    }

    /// Sizing advice over the window since the last call (or since the
    /// pool started), from `total` and `routes` read now.
    pub(crate) fn sizing(&self, total: Figures, routes: Vec<(R, Figures)>) -> SizingReport<R> {
        let mut last = self
            .last_sizing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = last.take();
        let window = |now: &Figures, before: Option<&Figures>| match before {
            Some(before) => Sizing::of(&now.since(before)),
            None => Sizing::of(now),
        };
        let report = SizingReport {
            total: window(&total, previous.as_ref().map(|(total, _)| total)),
            routes: routes
                .iter()
                .map(|(route, figures)| {
                    let before = previous.as_ref().and_then(|(_, routes)| routes.get(route));
                    (route.clone(), window(figures, before))
                })
                .collect(),
        };
        *last = Some((total, routes.into_iter().collect()));
        report
    }

    /// Records `total` and `routes` into the `metrics` facade.
    #[cfg(feature = "metrics")]
    pub(crate) fn export(&self, pool: &str, total: &Figures, routes: &[(R, Figures)])
    where
        R: std::fmt::Debug,
    {
        self.exporter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .export(pool, total, routes);
    }

    fn empty(&self, stats: Stats) -> Figures {
        Figures {
            stats,
            sample_every: self.sample_every,
            elapsed: self.started.elapsed(),
            ..Figures::default()
        }
    }
}

/// Why the pool closed connections on its own; see
/// [`Pool::health`](crate::Pool::health).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Idle connections evicted because the peer closed them, reset them or
    /// sent bytes nobody asked for (seen by the event loop, or when a lease
    /// gave the connection back).
    pub stale: u64,
    /// Idle connections closed by the idle timeout or [`close_idle`](crate::Pool::close_idle).
    pub idle: u64,
    /// Connections closed at their max lifetime, or by
    /// [`close_expired`](crate::Pool::close_expired).
    pub expired: u64,
    /// Connections that failed the liveness check on lease.
    pub invalid: u64,
    /// Connections the connector found broken when their lease gave them
    /// back ([`Connector::has_broken`](crate::Connector::has_broken)).
    pub broken: u64,
    /// Connects that failed (refused, timed out, other errors).
    pub connect_failures: u64,
    /// Leases reported as possible leaks.
    pub leaks: u64,
    /// Connections an [`on_create`](crate::Builder::on_create) or
    /// [`on_check_out`](crate::Builder::on_check_out) hook refused.
    pub rejected: u64,
}

/// What a pool, or one of its routes, recorded of its work: how leases
/// were served and how long they waited, hold and connect times, timeouts
/// and refusals, with the gauges of the moment. From
/// [`Pool::figures`](crate::Pool::figures) and
/// [`Pool::route_figures`](crate::Pool::route_figures); counts run from the
/// pool's start ([`elapsed`](Self::elapsed) ago), so rates are differences
/// between two reads.
///
/// ```
/// # use leasehold::{mock::MockConnector, Pool};
/// let pool = Pool::builder(MockConnector::<u32>::new()).build()?;
/// drop(pool.lease(&1)?);
/// drop(pool.lease(&1)?);
/// let figures = pool.figures();
/// assert_eq!((figures.leases(), figures.hits, figures.connect_waits), (2, 1, 1));
/// println!("connects took {:?} on average", figures.connect_time.mean());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Figures {
    /// Leases served at once, by an idle connection.
    pub hits: u64,
    /// Leases served after waiting, by a connection another lease gave back.
    pub waits: u64,
    /// Leases served after waiting, by a new connection.
    pub connect_waits: u64,
    /// Requests whose acquire timeout ran out.
    pub timeouts: u64,
    /// Requests that would not wait and found nothing (`try_lease`).
    pub exhausted: u64,
    /// Connects begun (made, failed, or under way: see `stats.connecting`).
    pub connects_started: u64,
    /// Connects that made a connection.
    pub connects: u64,
    /// Connects that failed (refused, timed out, other errors).
    pub connect_failures: u64,
    /// How long hits took, sampled (see [`sample_every`](Self::sample_every)).
    pub wait_hit: Histogram,
    /// How long the leases counted in [`waits`](Self::waits) waited.
    pub wait_queued: Histogram,
    /// How long the leases counted in [`connect_waits`](Self::connect_waits) waited.
    pub wait_connect: Histogram,
    /// How long leases held their connections, sampled.
    pub hold: Histogram,
    /// How long connects took that made a connection.
    pub connect_time: Histogram,
    /// The gauges: leased, idle, waiting (`pending`), connecting, the cap.
    pub stats: Stats,
    /// What the pool closed on its own, by cause (pool-wide figures only).
    pub health: Health,
    /// One lease in this many per thread had its hit and hold timed; 0 when
    /// the pool records no figures.
    pub sample_every: u32,
    /// How long the pool has been recording.
    pub elapsed: Duration,
}

impl Figures {
    /// Every lease served.
    pub fn leases(&self) -> u64 {
        self.hits + self.waits + self.connect_waits
    }

    /// The fraction of the cap leased now (0 to 1).
    pub fn utilization(&self) -> f64 {
        if self.stats.max == 0 {
            return 0.0;
        }
        self.stats.leased as f64 / self.stats.max as f64
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.stats.pending
    }

    /// What was recorded between `earlier`, a read of the same pool or
    /// route, and this read: counts, histograms and closes subtracted, the
    /// gauges of this read, `elapsed` the time between the two.
    pub fn since(&self, earlier: &Figures) -> Figures {
        let less = |now: u64, before: u64| now.saturating_sub(before);
        let (health, before) = (self.health, earlier.health);
        Figures {
            hits: less(self.hits, earlier.hits),
            waits: less(self.waits, earlier.waits),
            connect_waits: less(self.connect_waits, earlier.connect_waits),
            timeouts: less(self.timeouts, earlier.timeouts),
            exhausted: less(self.exhausted, earlier.exhausted),
            connects_started: less(self.connects_started, earlier.connects_started),
            connects: less(self.connects, earlier.connects),
            connect_failures: less(self.connect_failures, earlier.connect_failures),
            wait_hit: self.wait_hit.since(&earlier.wait_hit),
            wait_queued: self.wait_queued.since(&earlier.wait_queued),
            wait_connect: self.wait_connect.since(&earlier.wait_connect),
            hold: self.hold.since(&earlier.hold),
            connect_time: self.connect_time.since(&earlier.connect_time),
            stats: self.stats,
            health: Health {
                stale: less(health.stale, before.stale),
                idle: less(health.idle, before.idle),
                expired: less(health.expired, before.expired),
                invalid: less(health.invalid, before.invalid),
                broken: less(health.broken, before.broken),
                connect_failures: less(health.connect_failures, before.connect_failures),
                leaks: less(health.leaks, before.leaks),
                rejected: less(health.rejected, before.rejected),
            },
            sample_every: self.sample_every,
            elapsed: self.elapsed.saturating_sub(earlier.elapsed),
        }
    }

    /// Adds the counts and histograms of `self` to `into`.
    fn add_counts_to(&self, into: &mut Figures) {
        into.hits += self.hits;
        into.waits += self.waits;
        into.connect_waits += self.connect_waits;
        into.timeouts += self.timeouts;
        into.exhausted += self.exhausted;
        into.connects_started += self.connects_started;
        into.connects += self.connects;
        into.connect_failures += self.connect_failures;
        into.wait_hit.merge(&self.wait_hit);
        into.wait_queued.merge(&self.wait_queued);
        into.wait_connect.merge(&self.wait_connect);
        into.hold.merge(&self.hold);
        into.connect_time.merge(&self.connect_time);
    }
}
