//! The sequential reference model of `Pool<MockConnector<u8>, P>`, for
//! every policy, and the driver that replays an operation sequence on the
//! pool and the model side by side: after every step it checks the caps
//! (invariant 1), lease exclusivity (2), conservation of connections (3),
//! that `Exhausted` is only ever answered when nothing could serve the
//! request (4), state isolation (7), and that the pool's stats and the
//! connection ids it hands out (LIFO or FIFO reuse) are the model's.
//!
//! Where the policy's choice is deliberately unspecified (which idle
//! connection is closed to make room, which idle connections a lowered
//! route cap trims), the model branches and keeps every state consistent
//! with what the pool was seen to do. Single-threaded, and kept on one CPU
//! for the run (`Lax`'s shards follow CPUs: a thread moved between two
//! steps would find its returns in another shard, in another order),
//! every policy uses one shard, and `Offlock` serves every request of its segments
//! at once, so the one model is every policy's; `Offlock` closes on its
//! disposal thread, which each step waits for.
//!
//! Two drivers use it: the proptest properties (`tests/proptest_model.rs`)
//! and the differential fuzz target (`fuzz/fuzz_targets/ops.rs`).

use leasehold::mock::MockConnector;
use leasehold::{Disposal, Error, Lease, Policy, Pool, Reuse, State, Stats};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// What went wrong, with the operations that led there.
pub type Mismatch = String;

/// The connector of the pools under test: routes are `u8`s.
pub type Mock = MockConnector<u8>;

/// Routes are `0..ROUTES`.
pub const ROUTES: usize = 3;
/// State `i` of a lease: `None`, `Some("a")` or `Some("b")`.
pub const STATE_NAMES: [Option<&str>; 3] = [None, Some("a"), Some("b")];
/// How many lease states there are.
pub const STATES: usize = STATE_NAMES.len();
/// Logical holders ("threads") that own leases in the sequential property.
pub const HOLDERS: usize = 3;

/// The state token of state `i`.
pub fn state_token(state: usize) -> Option<State> {
    STATE_NAMES[state].map(State::from)
}

/// The route key of route `i`.
pub fn route_key(route: usize) -> u8 {
    u8::try_from(route).expect("small route")
}

// ---------------------------------------------------------------------------
// Configuration and operations
// ---------------------------------------------------------------------------

/// The settings of the pool under test (and so of the model).
#[derive(Clone, Debug)]
pub struct Config {
    /// The total cap.
    pub max_total: usize,
    /// The cap of every route, except route 2 with `route2_max`.
    pub max_per_route: usize,
    /// An override for route 2, set through the builder.
    pub route2_max: Option<usize>,
    /// `None`: the default (`max_total`).
    pub max_idle: Option<usize>,
    /// Which idle connection is reused first.
    pub reuse: Reuse,
}

impl Config {
    /// The cap of `route`.
    pub fn route_max(&self, route: usize) -> usize {
        match (route, self.route2_max) {
            (2, Some(max)) => max,
            _ => self.max_per_route,
        }
    }

    /// A pool of these settings on `connector`, disposing inline where the
    /// policy allows it.
    pub fn build<P: Policy>(
        &self,
        connector: &Mock,
        acquire_timeout: Option<Duration>,
    ) -> Pool<Mock, P> {
        // Closed connections are counted at once where the policy allows
        // (the sequential property checks the connector's counts after every
        // step, and waits for the disposal thread otherwise).
        let disposal = if P::DISPOSES_OFF_THREAD {
            Disposal::default()
        } else {
            Disposal::Inline
        };
        let mut builder = Pool::builder(connector.clone())
            .policy::<P>()
            .max_total(self.max_total)
            .max_per_route(self.max_per_route)
            .reuse(self.reuse)
            .disposal(disposal);
        if let Some(max) = self.route2_max {
            builder = builder.route_max(2, max);
        }
        if let Some(max_idle) = self.max_idle {
            builder = builder.max_idle(max_idle);
        }
        if let Some(timeout) = acquire_timeout {
            builder = builder.acquire_timeout(timeout);
        }
        builder.build().expect("valid test config")
    }
}

/// One step of the sequential property. `pick` selects one of the holder's
/// leases (modulo how many it holds); an op on a holder with no lease is a
/// no-op.
#[derive(Clone, Debug)]
pub enum Op {
    /// `try_lease` on a route with a state; the holder keeps the lease.
    TryLease {
        /// Who keeps the lease.
        holder: usize,
        /// Which route, `0..ROUTES`.
        route: usize,
        /// Which state, `0..STATES`.
        state: usize,
    },
    /// One of the holder's leases goes back to the pool.
    Release {
        /// Whose lease.
        holder: usize,
        /// Which of its leases.
        pick: usize,
    },
    /// One of the holder's leases is discarded.
    Discard {
        /// Whose lease.
        holder: usize,
        /// Which of its leases.
        pick: usize,
    },
    /// One of the holder's leases changes state.
    SetState {
        /// Whose lease.
        holder: usize,
        /// Which of its leases.
        pick: usize,
        /// The new state, `0..STATES`.
        state: usize,
    },
    /// A route's cap changes.
    SetRouteMax {
        /// Which route.
        route: usize,
        /// Its new cap.
        max: usize,
    },
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RouteModel {
    max: usize,
    /// leased + idle (the pool is never left connecting between steps).
    alloc: usize,
    /// Idle connection ids per state, oldest first.
    idle: [Vec<u64>; STATES],
    created: u64,
    closed: u64,
}

impl RouteModel {
    fn idle_count(&self) -> usize {
        self.idle.iter().map(Vec::len).sum()
    }

    fn leased(&self) -> usize {
        self.alloc - self.idle_count()
    }

    /// Every idle connection, as (state, position).
    fn idle_slots(&self, except_state: Option<usize>) -> Vec<(usize, usize)> {
        (0..STATES)
            .filter(|&s| Some(s) != except_state)
            .flat_map(|s| (0..self.idle[s].len()).map(move |pos| (s, pos)))
            .collect()
    }

    /// Takes idle connections off their lists (the caller counts them as
    /// closed, or moves their capacity).
    fn close_idle(&mut self, slots: &[(usize, usize)]) {
        let mut slots = slots.to_vec();
        // Highest position first, so earlier positions stay valid.
        slots.sort_by_key(|&(_, pos)| std::cmp::Reverse(pos));
        for (state, pos) in slots {
            self.idle[state].remove(pos);
        }
    }
}

/// What a `try_lease` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Handed out the idle connection with this id.
    Reuse(u64),
    /// Opened a new connection with this id.
    New(u64),
    Exhausted,
    Closed,
}

/// A sequential model of the `Strict` policy, as seen through the pool's
/// public API when no request ever waits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Model {
    routes: [RouteModel; ROUTES],
    max_total: usize,
    max_idle: usize,
    fifo: bool,
    /// The id `MockConnector` gives the next connection (= opened so far).
    next_id: u64,
    shut: bool,
}

impl Model {
    fn new(cfg: &Config) -> Self {
        Self {
            routes: std::array::from_fn(|r| RouteModel {
                max: cfg.route_max(r),
                alloc: 0,
                idle: Default::default(),
                created: 0,
                closed: 0,
            }),
            max_total: cfg.max_total,
            max_idle: cfg.max_idle.unwrap_or(cfg.max_total),
            fifo: cfg.reuse == Reuse::Fifo,
            next_id: 0,
            shut: false,
        }
    }

    fn total_alloc(&self) -> usize {
        self.routes.iter().map(|r| r.alloc).sum()
    }

    fn total_idle(&self) -> usize {
        self.routes.iter().map(RouteModel::idle_count).sum()
    }

    fn open(&mut self, route: usize) -> Outcome {
        let id = self.next_id;
        self.next_id += 1;
        self.routes[route].created += 1;
        Outcome::New(id)
    }

    /// Every outcome the policy may produce for `try_lease(route, state)`,
    /// with the model after it.
    ///
    /// 1. An idle connection of the route in the state: reused, the most
    ///    recently returned one (LIFO) or the least (FIFO).
    /// 2. Else room under the route's cap and the total: a new connection.
    /// 3. Else an idle connection of the same route in another state is
    ///    closed to make room (any one: the choice is the policy's).
    /// 4. Else, if only the total is full, an idle connection of another
    ///    route is closed to make room (any one).
    /// 5. Else `Exhausted`: invariant 4 says nothing else may be.
    fn try_lease(&self, route: usize, state: usize) -> Vec<(Outcome, Model)> {
        if self.shut {
            return vec![(Outcome::Closed, self.clone())];
        }
        let mut next = self.clone();
        let rt = &mut next.routes[route];
        if !rt.idle[state].is_empty() {
            let id = if self.fifo {
                rt.idle[state].remove(0)
            } else {
                rt.idle[state].pop().expect("non-empty")
            };
            return vec![(Outcome::Reuse(id), next)];
        }
        let room_on_route = rt.alloc < rt.max;
        if room_on_route && self.total_alloc() < self.max_total {
            rt.alloc += 1;
            let outcome = next.open(route);
            return vec![(outcome, next)];
        }
        let mut out = Vec::new();
        for slot in self.routes[route].idle_slots(Some(state)) {
            let mut next = self.clone();
            let rt = &mut next.routes[route];
            rt.close_idle(&[slot]);
            rt.closed += 1;
            let outcome = next.open(route);
            out.push((outcome, next));
        }
        if !out.is_empty() {
            return out;
        }
        if room_on_route {
            for victim in (0..ROUTES).filter(|&v| v != route) {
                for slot in self.routes[victim].idle_slots(None) {
                    let mut next = self.clone();
                    let vt = &mut next.routes[victim];
                    vt.close_idle(&[slot]);
                    vt.alloc -= 1;
                    vt.closed += 1;
                    next.routes[route].alloc += 1;
                    let outcome = next.open(route);
                    out.push((outcome, next));
                }
            }
        }
        if out.is_empty() {
            out.push((Outcome::Exhausted, self.clone()));
        }
        out
    }

    /// A lease of `route`, now in `state`, holding connection `id`, returns:
    /// closed if the pool is shut, the route is over its cap or `max_idle`
    /// connections are idle already; idle (most recent) otherwise.
    fn release(&mut self, route: usize, state: usize, id: u64) {
        let over_cap = self.routes[route].alloc > self.routes[route].max;
        if self.shut || over_cap || self.total_idle() >= self.max_idle {
            self.discard(route);
        } else {
            self.routes[route].idle[state].push(id);
        }
    }

    fn discard(&mut self, route: usize) {
        let rt = &mut self.routes[route];
        rt.alloc -= 1;
        rt.closed += 1;
    }

    /// Every model after lowering or raising a route's cap: on each route
    /// over its cap, idle connections are closed until it is not (or none is
    /// idle); which ones is the policy's choice.
    fn set_route_max(&self, route: usize, max: usize) -> Vec<Model> {
        let mut base = self.clone();
        base.routes[route].max = max;
        let mut models = vec![base];
        for r in 0..ROUTES {
            let mut next = Vec::new();
            for model in models {
                let rt = &model.routes[r];
                let slots = rt.idle_slots(None);
                if rt.alloc <= rt.max || slots.is_empty() {
                    next.push(model);
                    continue;
                }
                let need = (rt.alloc - rt.max).min(slots.len());
                for mask in 0u32..(1 << slots.len()) {
                    if mask.count_ones() as usize != need {
                        continue;
                    }
                    let chosen: Vec<_> = (0..slots.len())
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| slots[i])
                        .collect();
                    let mut m = model.clone();
                    let rt = &mut m.routes[r];
                    rt.close_idle(&chosen);
                    rt.alloc -= need;
                    rt.closed += need as u64;
                    next.push(m);
                }
            }
            models = next;
        }
        models
    }

    /// Shutdown closes every idle connection; later returns are closed.
    fn shutdown(&mut self) {
        for rt in &mut self.routes {
            let idle = rt.idle_count();
            rt.alloc -= idle;
            rt.closed += idle as u64;
            rt.idle = Default::default();
        }
        self.shut = true;
    }

    fn matches(&self, seen: &Seen) -> bool {
        let routes_match = self.routes.iter().zip(&seen.routes).all(|(m, s)| {
            (m.leased(), m.idle_count(), m.max, m.created, m.closed)
                == (s.leased, s.idle, s.max, s.created, s.closed)
        });
        let closed: u64 = self.routes.iter().map(|r| r.closed).sum();
        routes_match && self.next_id == seen.opened && closed == seen.dropped
    }
}

fn dedup(models: Vec<Model>) -> Vec<Model> {
    let mut seen = HashSet::new();
    models
        .into_iter()
        .filter(|m| seen.insert(m.clone()))
        .collect()
}

/// What the test can see of the pool.
#[derive(Debug)]
struct Seen {
    routes: Vec<Stats>,
    opened: u64,
    dropped: u64,
}

// ---------------------------------------------------------------------------
// The sequential property
// ---------------------------------------------------------------------------

struct HeldLease<'p, P: Policy> {
    lease: Lease<'p, Mock, P>,
    id: u64,
    route: usize,
    state: usize,
}

struct Run<'p, P: Policy> {
    cfg: &'p Config,
    pool: &'p Pool<Mock, P>,
    connector: &'p Mock,
    holders: Vec<Vec<HeldLease<'p, P>>>,
    /// Every model state consistent with what the pool did so far.
    models: Vec<Model>,
    /// Per route: how far over its cap the route may be (only after its
    /// cap was lowered under leased connections, and only shrinking).
    over_cap: [usize; ROUTES],
    trace: Vec<String>,
}

impl<'p, P: Policy> Run<'p, P> {
    fn fail(&self, what: String) -> Mismatch {
        format!(
            "{what}\n  ops so far:\n    {}\n  config: {:?}\n  stats: {:?}\n  models: {:#?}",
            self.trace.join("\n    "),
            self.cfg,
            self.pool.stats(),
            self.models
        )
    }

    fn take_lease(&mut self, holder: usize, pick: usize) -> Option<HeldLease<'p, P>> {
        let leases = &mut self.holders[holder];
        if leases.is_empty() {
            None
        } else {
            let i = pick % leases.len();
            Some(leases.remove(i))
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), Mismatch> {
        self.trace.push(format!("{op:?}"));
        match *op {
            Op::TryLease {
                holder,
                route,
                state,
            } => self.try_lease(holder, route, state)?,
            Op::Release { holder, pick } => {
                if let Some(held) = self.take_lease(holder, pick) {
                    for model in &mut self.models {
                        model.release(held.route, held.state, held.id);
                    }
                    drop(held.lease);
                }
            }
            Op::Discard { holder, pick } => {
                if let Some(held) = self.take_lease(holder, pick) {
                    for model in &mut self.models {
                        model.discard(held.route);
                    }
                    held.lease.discard();
                }
            }
            Op::SetState {
                holder,
                pick,
                state,
            } => {
                let leases = &mut self.holders[holder];
                if !leases.is_empty() {
                    let i = pick % leases.len();
                    leases[i].lease.set_state(state_token(state));
                    leases[i].state = state;
                }
            }
            Op::SetRouteMax { route, max } => {
                let key = route_key(route);
                // Lowering the cap under leased connections may leave the
                // route over it until they return.
                self.over_cap[route] = self.pool.route_stats(&key).allocated();
                self.pool.set_route_max(&key, max).unwrap();
                let models = self
                    .models
                    .iter()
                    .flat_map(|m| m.set_route_max(route, max))
                    .collect();
                self.models = dedup(models);
            }
        }
        self.check()
    }

    fn try_lease(&mut self, holder: usize, route: usize, state: usize) -> Result<(), Mismatch> {
        let key = route_key(route);
        let opened_before = self.connector.opened();
        let result = match state_token(state) {
            None => self.pool.try_lease(&key),
            Some(token) => self.pool.try_lease_with_state(&key, &token),
        };
        let opened = self.connector.opened() - opened_before;
        let seen = match result {
            Ok(lease) => {
                let id = lease.id();
                if lease.state() != state_token(state).as_ref() || *lease.route() != key {
                    return Err(self.fail(format!(
                        "invariant 7 (state isolation) violated: try_lease(route {route}, \
                         state {:?}) got {lease:?}",
                        STATE_NAMES[state]
                    )));
                }
                self.holders[holder].push(HeldLease {
                    lease,
                    id,
                    route,
                    state,
                });
                match opened {
                    0 => Outcome::Reuse(id),
                    1 => Outcome::New(id),
                    n => return Err(self.fail(format!("one try_lease opened {n} connections"))),
                }
            }
            Err(Error::Exhausted { .. }) => Outcome::Exhausted,
            Err(Error::Closed) => Outcome::Closed,
            Err(e) => return Err(self.fail(format!("unexpected error from try_lease: {e}"))),
        };
        let predicted: Vec<(Outcome, Model)> = self
            .models
            .iter()
            .flat_map(|m| m.try_lease(route, state))
            .collect();
        let outcomes: Vec<Outcome> = predicted.iter().map(|(o, _)| *o).collect();
        let models: Vec<Model> = predicted
            .into_iter()
            .filter(|(o, _)| *o == seen)
            .map(|(_, m)| m)
            .collect();
        if models.is_empty() {
            let what = if seen == Outcome::Exhausted {
                "invariant 4 (no lost capacity) violated: try_lease answered Exhausted \
                 although an idle match, free capacity or a reclaimable idle connection exists"
            } else {
                "try_lease did not do what the reference model allows"
            };
            return Err(self.fail(format!(
                "{what}: route {route}, state {:?}: pool did {seen:?}, model allows {outcomes:?}",
                STATE_NAMES[state]
            )));
        }
        self.models = dedup(models);
        Ok(())
    }

    /// Checks every invariant, and narrows the models to those whose stats
    /// are the pool's.
    fn check(&mut self) -> Result<(), Mismatch> {
        disposal_caught_up(self.pool, self.connector).map_err(|e| self.fail(e))?;
        let total = self.pool.stats().total;
        let routes: Vec<Stats> = (0..ROUTES)
            .map(|r| self.pool.route_stats(&route_key(r)))
            .collect();
        // Invariant 1: caps.
        if total.allocated() > self.cfg.max_total || total.max != self.cfg.max_total {
            return Err(self.fail(format!(
                "invariant 1 (caps) violated: total {total}, max_total {}",
                self.cfg.max_total
            )));
        }
        for (r, stats) in routes.iter().enumerate() {
            let allocated = stats.allocated();
            if allocated > stats.max.max(self.over_cap[r]) {
                return Err(self.fail(format!(
                    "invariant 1 (caps) violated: route {r}: {stats} (may be over its cap by \
                     leases outstanding from before it was lowered: {})",
                    self.over_cap[r]
                )));
            }
            if allocated > stats.max && stats.idle != 0 {
                return Err(self.fail(format!(
                    "route {r} is over its cap with idle connections: {stats}"
                )));
            }
            self.over_cap[r] = if allocated > stats.max { allocated } else { 0 };
        }
        if total.pending != 0 || total.connecting != 0 || total.timeouts != 0 {
            return Err(self.fail(format!("a single-threaded pool at rest shows {total}")));
        }
        // Invariant 2 (exclusivity) and 7 (state isolation).
        let mut ids = HashSet::new();
        let mut leased = [0usize; ROUTES];
        for held in self.holders.iter().flatten() {
            let lease = &held.lease;
            if !ids.insert(lease.id()) {
                return Err(self.fail(format!(
                    "invariant 2 (exclusivity) violated: connection {} held by two leases",
                    lease.id()
                )));
            }
            if lease.id() != held.id || usize::from(*lease.route()) != held.route {
                return Err(self.fail(format!(
                    "a lease changed connection: {lease:?}, expected id {} on route {}",
                    held.id, held.route
                )));
            }
            if lease.state() != state_token(held.state).as_ref() {
                return Err(self.fail(format!(
                    "invariant 7 (state isolation) violated: lease {lease:?} has state {:?}, \
                     expected {:?}",
                    lease.state(),
                    STATE_NAMES[held.state]
                )));
            }
            leased[held.route] += 1;
        }
        // Invariant 3: conservation.
        let (opened, dropped) = (self.connector.opened(), self.connector.dropped());
        if opened - dropped != (ids.len() + total.idle) as u64
            || total.created != opened
            || total.closed != dropped
        {
            return Err(self.fail(format!(
                "invariant 3 (conservation) violated: opened {opened}, dropped {dropped}, \
                 {} leases live, pool {total}",
                ids.len()
            )));
        }
        for (r, stats) in routes.iter().enumerate() {
            if stats.leased != leased[r] {
                return Err(self.fail(format!(
                    "route {r} counts {} leased, the test holds {}",
                    stats.leased, leased[r]
                )));
            }
        }
        // The reference model.
        let seen = Seen {
            routes,
            opened,
            dropped,
        };
        let models: Vec<Model> = self
            .models
            .iter()
            .filter(|m| m.matches(&seen))
            .cloned()
            .collect();
        if models.is_empty() {
            return Err(self.fail(format!(
                "pool stats diverged from the reference model: seen {seen:#?}"
            )));
        }
        self.models = models;
        Ok(())
    }

    /// Shuts the pool down with leases outstanding, then returns them.
    fn finish(mut self) -> Result<(), Mismatch> {
        self.trace.push("Shutdown".into());
        self.pool.shutdown();
        for model in &mut self.models {
            model.shutdown();
        }
        self.check()?;
        if self.pool.stats().total.idle != 0 {
            return Err(self.fail("idle connections survived shutdown".into()));
        }
        for state in 0..STATES {
            let result = match state_token(state) {
                None => self.pool.try_lease(&0),
                Some(token) => self.pool.try_lease_with_state(&0, &token),
            };
            if !matches!(result, Err(Error::Closed)) {
                return Err(self.fail(format!("try_lease after shutdown: {result:?}")));
            }
        }
        // Return what is still leased: discard every other one.
        let mut i = 0;
        while let Some(holder) = self.holders.iter().position(|h| !h.is_empty()) {
            let held = self.holders[holder].remove(0);
            let discard = i % 2 == 1;
            i += 1;
            self.trace
                .push(format!("return lease {} (discard: {discard})", held.id));
            for model in &mut self.models {
                model.release(held.route, held.state, held.id);
            }
            if discard {
                held.lease.discard();
            } else {
                drop(held.lease);
            }
            self.check()?;
        }
        let total = self.pool.stats().total;
        if self.connector.live() != 0 || total.created != total.closed || total.allocated() != 0 {
            return Err(self.fail(format!(
                "invariant 3 (conservation) violated after shutdown: {} live, pool {total}",
                self.connector.live()
            )));
        }
        Ok(())
    }
}

/// Runs `ops` on a pool of `cfg` with policy `P` and on the model side by
/// side, from one thread kept on one CPU, and ends with a shutdown.
///
/// # Errors
///
/// The first step where the pool did what the model does not allow, with
/// the operations that led there.
pub fn run_sequential<P: Policy>(cfg: &Config, ops: &[Op]) -> Result<(), Mismatch> {
    let _one_cpu = OneCpu::here();
    let connector = Mock::new();
    let pool = cfg.build::<P>(&connector, None);
    let mut run = Run {
        cfg,
        pool: &pool,
        connector: &connector,
        holders: (0..HOLDERS).map(|_| Vec::new()).collect(),
        models: vec![Model::new(cfg)],
        over_cap: [0; ROUTES],
        trace: Vec::new(),
    };
    run.check()?;
    for op in ops {
        run.apply(op)?;
    }
    run.finish()
}

/// Keeps the calling thread on the CPU it runs on until dropped, then lets
/// it run where it could before. Elsewhere than on Linux, `Lax` gives each
/// thread a shard of its own, and this does nothing.
struct OneCpu {
    #[cfg(target_os = "linux")]
    before: Option<libc::cpu_set_t>,
}

impl OneCpu {
    #[cfg(target_os = "linux")]
    fn here() -> Self {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: an all-zero `cpu_set_t` is the empty set (`CPU_ZERO`);
        // the affinity calls get the set's true size, and `CPU_SET` a CPU
        // number `sched_getcpu` gave, below `CPU_SETSIZE`.
        let before = unsafe {
            let mut before: libc::cpu_set_t = std::mem::zeroed();
            let cpu = libc::sched_getcpu();
            if cpu < 0 || libc::sched_getaffinity(0, size, &mut before) != 0 {
                return Self { before: None };
            }
            let mut only: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut only);
            (libc::sched_setaffinity(0, size, &only) == 0).then_some(before)
        };
        Self { before }
    }

    #[cfg(not(target_os = "linux"))]
    fn here() -> Self {
        Self {}
    }
}

impl Drop for OneCpu {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(before) = &self.before {
            // SAFETY: `before` is the set `sched_getaffinity` filled in,
            // passed with its true size.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), before) };
        }
    }
}

/// Waits until every connection the pool closed has reached the connector
/// (at once with inline disposal; else the disposal thread catches up).
pub fn disposal_caught_up<P: Policy>(
    pool: &Pool<Mock, P>,
    connector: &Mock,
) -> Result<(), Mismatch> {
    let started = Instant::now();
    while connector.dropped() != pool.stats().total.closed {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "the disposal thread never closed a connection: {:?}",
                pool.stats()
            ));
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// `PROPTEST_CASES` overrides a property's case count (for long runs).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
