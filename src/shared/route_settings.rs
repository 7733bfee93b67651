//! The routes' own idle timeout, lifetime and connect timeout, changeable
//! while the pool runs, and what each route's comes to with the pool's.
//!
//! Read where a connection is opened (its connect deadline, its lifetime)
//! and where the event loop sweeps idle connections, never on the hit path:
//! a read lock on a map is cheap beside a connect. The sweep takes a
//! snapshot, shared by every serializer that evicts.

use crate::config::{Config, RouteSettings};
use leasehold_policies::RouteKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Each route's own settings (those given one), and the pool's.
#[derive(Debug)]
pub(crate) struct RouteTable<K> {
    routes: RwLock<Arc<HashMap<K, RouteSettings>>>,
    /// Whether any route has an idle timeout or lifetime of its own: the
    /// event loop then sweeps even if the pool has none.
    any_expiry: AtomicBool,
    /// How many times a route's settings were set: a return that sees a
    /// new count works its connection's expiry out again.
    changes: AtomicU64,
}

/// What the sweep applies: every route's idle timeout and lifetime.
#[derive(Debug, Clone)]
pub(crate) struct Expiry<K> {
    idle_timeout: Option<Duration>,
    routes: Arc<HashMap<K, RouteSettings>>,
}

impl<K: RouteKey> RouteTable<K> {
    pub(crate) fn new(config: &Config<K>) -> Self {
        let table = Self {
            routes: RwLock::default(),
            any_expiry: AtomicBool::new(false),
            changes: AtomicU64::new(0),
        };
        for (route, settings) in &config.route_settings {
            table.set(route.clone(), *settings);
        }
        table
    }

    /// Gives `route` these settings (all unset: the pool's again).
    pub(crate) fn set(&self, route: K, settings: RouteSettings) {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::clone(&routes);
        if settings == RouteSettings::default() {
            next.remove(&route);
        } else {
            next.insert(route, settings);
        }
        let expiry = next
            .values()
            .any(|s| s.idle_timeout.is_some() || s.max_lifetime.is_some());
        self.any_expiry.store(expiry, Ordering::Release);
        *routes = Arc::new(next);
        self.changes.fetch_add(1, Ordering::Release);
    }

    /// How many times a route's settings were set.
    #[inline]
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// `route`'s own settings (all unset if it has none).
    pub(crate) fn get(&self, route: &K) -> RouteSettings {
        self.snapshot().get(route).copied().unwrap_or_default()
    }

    fn snapshot(&self) -> Arc<HashMap<K, RouteSettings>> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether some route's connections expire though the pool's do not.
    pub(crate) fn any_expiry(&self) -> bool {
        self.any_expiry.load(Ordering::Acquire)
    }

    /// `route`'s connect timeout: its own, else the pool's.
    pub(crate) fn connect_timeout(&self, route: &K, config: &Config<K>) -> Option<Duration> {
        self.get(route).connect_timeout.or(config.connect_timeout)
    }

    /// `route`'s lifetime: its own, else the pool's.
    pub(crate) fn max_lifetime(&self, route: &K, config: &Config<K>) -> Option<Duration> {
        self.get(route).max_lifetime.or(config.max_lifetime)
    }

    /// How often idle connections are swept: a tenth of the shortest idle
    /// timeout or lifetime, the pool's or a route's, between 5 ms and 1 s;
    /// `None` if nothing expires.
    pub(crate) fn sweep_period(&self, config: &Config<K>) -> Option<Duration> {
        let pool = config.sweep_period();
        if !self.any_expiry() {
            return pool;
        }
        let shortest = self
            .snapshot()
            .values()
            .flat_map(|s| [s.idle_timeout, s.max_lifetime])
            .flatten()
            .min()?;
        let own = (shortest / 10).clamp(Duration::from_millis(5), Duration::from_secs(1));
        Some(pool.map_or(own, |pool| pool.min(own)))
    }

    /// What the sweep applies now.
    pub(crate) fn expiry(&self, config: &Config<K>) -> Expiry<K> {
        Expiry {
            idle_timeout: config.idle_timeout,
            routes: self.snapshot(),
        }
    }
}

impl<K: RouteKey> Expiry<K> {
    /// Applies no idle timeout (lifetimes only).
    pub(crate) fn without_idle_timeouts(&mut self) {
        self.idle_timeout = None;
        let routes = self
            .routes
            .iter()
            .map(|(route, s)| {
                let mut s = *s;
                s.idle_timeout = None;
                (route.clone(), s)
            })
            .collect();
        self.routes = Arc::new(routes);
    }

    /// Whether a connection of `route`, idle since `idle_since`, has been
    /// idle too long at `now`.
    pub(crate) fn idle_too_long(&self, route: &K, idle_since: Instant, now: Instant) -> bool {
        let limit = self
            .routes
            .get(route)
            .and_then(|s| s.idle_timeout)
            .or(self.idle_timeout);
        limit.is_some_and(|limit| now.saturating_duration_since(idle_since) >= limit)
    }

    /// Whether a connection of `route` opened at `created` is past the
    /// route's own lifetime at `now` (the pool's is in its expiry instant).
    pub(crate) fn past_route_lifetime(&self, route: &K, created: Instant, now: Instant) -> bool {
        self.routes
            .get(route)
            .and_then(|s| s.max_lifetime)
            .is_some_and(|life| now.saturating_duration_since(created) >= life)
    }
}
