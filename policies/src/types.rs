//! The vocabulary shared by every policy: limits, connection state tokens,
//! what a policy hands out (`Held`, `Permit`, `Grant`) and what it reports
//! (`Stats`, `PoolStats`).

use crate::arena::SlotToken;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

/// A route key: what connections are pooled by (scheme/host/port/TLS
/// identity, or `()` for a single backend).
///
/// Blanket-implemented for every type with the listed bounds.
pub trait RouteKey: Eq + Hash + Clone + Send + Sync + fmt::Debug + 'static {}
impl<K: Eq + Hash + Clone + Send + Sync + fmt::Debug + 'static> RouteKey for K {}

/// What a policy needs to know about a pooled item.
pub trait Item: Send + 'static {
    /// The connection's state token, if it carries one (invariant 7: a lease
    /// for state S only ever gets a connection in state S, a lease with no
    /// state only a stateless one).
    fn state(&self) -> Option<&State>;
}

/// A connection state token, such as the identity a connection was
/// authenticated as. Cheap to clone; compared by value.
///
/// ```
/// use leasehold_policies::State;
/// let alice = State::new("alice");
/// assert_eq!(alice, State::from("alice"));
/// assert_ne!(alice, State::from("bob"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State(Arc<str>);

impl State {
    /// Makes a state token from any string-like value.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into())
    }

    /// The token as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for State {
    fn from(token: &str) -> Self {
        Self::new(token)
    }
}

impl From<String> for State {
    fn from(token: String) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "State({:?})", &*self.0)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which idle connection a lease gets when several are idle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reuse {
    /// Most recently returned first (default): keeps a small warm set busy and
    /// lets the rest age out under idle timeouts.
    #[default]
    Lifo,
    /// Least recently returned first: spreads use over every connection.
    Fifo,
}

/// The capacity limits a policy enforces.
///
/// ```
/// use leasehold_policies::unstable::Limits;
/// use leasehold_policies::Reuse;
/// let limits = Limits::<&str>::new(10, 4)
///     .with_route_max("db-primary", 8)
///     .with_max_idle(6)
///     .with_reuse(Reuse::Fifo);
/// assert!(limits.validate().is_ok());
/// assert_eq!(limits.route_max(&"db-primary"), 8);
/// assert_eq!(limits.route_max(&"other"), 4);
/// ```
#[derive(Clone, Debug)]
pub struct Limits<K> {
    max_total: usize,
    max_per_route: usize,
    per_route: HashMap<K, usize>,
    max_idle: usize,
    reuse: Reuse,
    forget_routes: bool,
}

/// The largest `max_total` a policy accepts.
pub const MAX_CAPACITY: usize = (u32::MAX >> 2) as usize;

/// Why a [`Limits`] value was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidLimits {
    /// `max_total` was 0: the pool could never hold a connection.
    ZeroTotal,
    /// `max_total` exceeded [`MAX_CAPACITY`].
    TotalTooLarge(usize),
    /// A per-route maximum was 0; the route given as its `Debug` text, or
    /// `None` for the default.
    ZeroPerRoute(Option<String>),
    /// `max_idle` was greater than `max_total`.
    IdleAboveTotal {
        /// The requested `max_idle`.
        max_idle: usize,
        /// The pool's `max_total`.
        max_total: usize,
    },
}

impl fmt::Display for InvalidLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroTotal => f.write_str("max_total must be at least 1"),
            Self::TotalTooLarge(n) => {
                write!(f, "max_total {n} exceeds the maximum of {MAX_CAPACITY}")
            }
            Self::ZeroPerRoute(None) => f.write_str("max_per_route must be at least 1"),
            Self::ZeroPerRoute(Some(route)) => {
                write!(f, "the maximum for route {route} must be at least 1")
            }
            Self::IdleAboveTotal {
                max_idle,
                max_total,
            } => write!(
                f,
                "max_idle ({max_idle}) must not exceed max_total ({max_total})"
            ),
        }
    }
}

impl std::error::Error for InvalidLimits {}

impl<K: RouteKey> Limits<K> {
    /// Limits with the given total and default per-route maxima, LIFO reuse,
    /// and `max_idle` equal to `max_total`.
    pub fn new(max_total: usize, max_per_route: usize) -> Self {
        Self {
            max_total,
            max_per_route,
            per_route: HashMap::new(),
            max_idle: max_total,
            reuse: Reuse::Lifo,
            forget_routes: true,
        }
    }

    /// Overrides the maximum of one route.
    pub fn with_route_max(mut self, route: K, max: usize) -> Self {
        self.per_route.insert(route, max);
        self
    }

    /// Caps how many idle connections the pool keeps in all (a connection
    /// returned beyond it is closed).
    pub fn with_max_idle(mut self, max_idle: usize) -> Self {
        self.max_idle = max_idle;
        self
    }

    /// Sets the reuse order.
    pub fn with_reuse(mut self, reuse: Reuse) -> Self {
        self.reuse = reuse;
        self
    }

    /// Whether routes unused for a while are removed
    /// ([`Core::sweep_routes`](crate::Core::sweep_routes); the default).
    /// Without, a core keeps every route it has seen, and its lookups skip
    /// the epoch pin that makes removal safe.
    pub fn with_forget_routes(mut self, forget: bool) -> Self {
        self.forget_routes = forget;
        self
    }

    /// Checks the limits make sense.
    ///
    /// # Errors
    /// The first rule broken, as an [`InvalidLimits`].
    pub fn validate(&self) -> Result<(), InvalidLimits> {
        if self.max_total == 0 {
            return Err(InvalidLimits::ZeroTotal);
        }
        if self.max_total > MAX_CAPACITY {
            return Err(InvalidLimits::TotalTooLarge(self.max_total));
        }
        if self.max_per_route == 0 {
            return Err(InvalidLimits::ZeroPerRoute(None));
        }
        if let Some((route, _)) = self.per_route.iter().find(|(_, max)| **max == 0) {
            return Err(InvalidLimits::ZeroPerRoute(Some(format!("{route:?}"))));
        }
        if self.max_idle > self.max_total {
            return Err(InvalidLimits::IdleAboveTotal {
                max_idle: self.max_idle,
                max_total: self.max_total,
            });
        }
        Ok(())
    }

    /// The total cap.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// The default per-route cap.
    pub fn max_per_route(&self) -> usize {
        self.max_per_route
    }

    /// The cap configured for `route` alone, if any.
    pub fn route_override(&self, route: &K) -> Option<usize> {
        self.per_route.get(route).copied()
    }

    /// The cap of `route` at start-up (its override, or the default).
    pub fn route_max(&self, route: &K) -> usize {
        self.per_route
            .get(route)
            .copied()
            .unwrap_or(self.max_per_route)
    }

    /// The cap on idle connections, over all routes.
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// The reuse order.
    pub fn reuse(&self) -> Reuse {
        self.reuse
    }

    /// Whether unused routes are removed.
    pub fn forgets_routes(&self) -> bool {
        self.forget_routes
    }
}

/// A leased item: the leaseholder's capability to reach it through its
/// core ([`Core::item`](crate::Core::item),
/// [`Core::item_mut`](crate::Core::item_mut)) and to give it back
/// ([`Core::release`](crate::Core::release)).
///
/// The item itself stays where the core keeps it, so leasing and returning
/// never copy it; a `Held` is two words. It names its core (`owner`), and a
/// core refuses (panics on) a `Held` of another core.
#[derive(Debug)]
pub struct Held {
    slot: SlotToken,
    owner: usize,
}

static OWNERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

impl Held {
    /// Lends the item in the slot `slot` owns, of core `owner`: the `Held`
    /// carries the slot's ownership.
    pub(crate) fn new(slot: SlotToken, owner: usize) -> Self {
        Self { slot, owner }
    }

    /// The core's token for the item.
    pub fn token(&self) -> usize {
        self.slot.index() as usize
    }

    /// The slot's ownership, borrowed.
    pub(crate) fn slot(&self) -> &SlotToken {
        &self.slot
    }

    /// The slot's ownership, borrowed mutably.
    pub(crate) fn slot_mut(&mut self) -> &mut SlotToken {
        &mut self.slot
    }

    /// The slot's ownership, back from the lease.
    pub(crate) fn into_slot(self) -> SlotToken {
        self.slot
    }

    /// The id of the core that lent it.
    pub fn owner(&self) -> usize {
        self.owner
    }

    /// A fresh id for a core to name itself by in the `Held`s it makes.
    pub fn unique_owner() -> usize {
        OWNERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// One unit of capacity reserved on a route (counted as *connecting*): the
/// holder must open a connection and pass it to `Core::connected`, or hand
/// the permit back with `Core::connect_failed`. Like [`Held`], it names the
/// core that issued it.
#[derive(Debug)]
#[must_use = "a permit holds capacity until it is handed back to the policy"]
pub struct Permit {
    slot: SlotToken,
    owner: usize,
    state: Option<State>,
}

impl Permit {
    /// A permit for the empty slot `slot` owns, of core `owner`: the item
    /// passed to `Core::connected` with it is written there.
    pub(crate) fn new(slot: SlotToken, owner: usize, state: Option<State>) -> Self {
        Self { slot, owner, state }
    }

    /// The policy's token.
    pub fn token(&self) -> usize {
        self.slot.index() as usize
    }

    /// The slot's ownership, back from the permit.
    pub(crate) fn into_slot(self) -> SlotToken {
        self.slot
    }

    /// The id of the core that issued it.
    pub fn owner(&self) -> usize {
        self.owner
    }

    /// The state the new connection is for.
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }
}

/// What an acquisition receives.
#[derive(Debug)]
pub enum Grant {
    /// A pooled connection, now counted as leased.
    Conn(Held),
    /// Capacity to open a new connection.
    Connect(Permit),
    /// The request could not be served without waiting, and it asked not to
    /// wait.
    Busy,
    /// The pool was shut down.
    Closed,
}

/// Whether an acquisition may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Queue until served, cancelled or closed.
    Queue,
    /// Never queue behind others: answer `Grant::Busy` instead.
    Never,
}

/// The outcome of `Core::acquire`.
#[derive(Debug)]
pub enum Acquire<W> {
    /// Served at once.
    Ready(Grant),
    /// Queued: the waker given to `acquire` is woken once the waiter has a
    /// grant.
    Queued(W),
}

/// Where a policy sends connections it has taken out of the pool to close
/// them (reclaim, eviction, over-cap returns, shutdown).
pub type Disposer<T> = Arc<dyn Fn(T) + Send + Sync>;

/// Gauges and counters of one route, or of the whole pool.
///
/// Gauges are read from independent atomics, so under concurrent change a
/// snapshot can be off by the operations in flight; when the pool is quiet
/// they are exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections held by leases.
    pub leased: usize,
    /// Connections idle in the pool.
    pub idle: usize,
    /// Requests waiting.
    pub pending: usize,
    /// Connections being opened.
    pub connecting: usize,
    /// The cap (per route, or total).
    pub max: usize,
    /// Connections opened, ever.
    pub created: u64,
    /// Connections closed, ever.
    pub closed: u64,
    /// Requests that timed out while waiting, ever.
    pub timeouts: u64,
}

impl Stats {
    /// leased + idle + connecting: what counts against the cap.
    pub fn allocated(&self) -> usize {
        self.leased + self.idle + self.connecting
    }

    pub(crate) fn add(&mut self, other: &Stats) {
        self.leased += other.leased;
        self.idle += other.idle;
        self.pending += other.pending;
        self.connecting += other.connecting;
        self.created += other.created;
        self.closed += other.closed;
        self.timeouts += other.timeouts;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "leased {}, idle {}, pending {}, connecting {}, max {} (created {}, closed {}, timeouts {})",
            self.leased,
            self.idle,
            self.pending,
            self.connecting,
            self.max,
            self.created,
            self.closed,
            self.timeouts
        )
    }
}

/// Stats of the whole pool and of each route it has seen.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PoolStats<K> {
    /// The sums over every route; `max` is the total cap.
    pub total: Stats,
    /// Each route's own stats.
    pub routes: Vec<(K, Stats)>,
    /// Whether the pool is paused: new requests wait (leasehold's
    /// `Pool::pause`); a core alone always reports `false`.
    pub paused: bool,
}

impl<K: PartialEq> PoolStats<K> {
    /// The stats of one route, if the pool has seen it.
    pub fn route(&self, route: &K) -> Option<&Stats> {
        self.routes.iter().find(|(k, _)| k == route).map(|(_, s)| s)
    }
}
