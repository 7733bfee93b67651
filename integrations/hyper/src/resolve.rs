//! From a URI's host to the addresses the pool connects to.
//!
//! An IP literal is its own address, found without a lookup. A host name
//! is looked up with [`tokio::net::lookup_host`], which runs the system
//! resolver on tokio's blocking threads (never on the event loop or the
//! caller's worker thread), and its addresses are cached for a while,
//! because the pool keys connections by address: without the cache every
//! request to a named host would pay for a lookup before it could reuse a
//! pooled connection.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Host names cached at most; past this, expired entries go, and if none
/// had expired, all of them.
const MAX_CACHED: usize = 1024;

/// The addresses of one host at one port, in the resolver's order.
#[derive(Clone, Debug)]
pub(crate) struct Addrs {
    ips: Ips,
    port: u16,
}

#[derive(Clone, Debug)]
enum Ips {
    /// An IP literal's.
    One(IpAddr),
    /// A host name's.
    Many(Arc<[IpAddr]>),
}

impl Addrs {
    pub(crate) fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let ips = match &self.ips {
            Ips::One(ip) => std::slice::from_ref(ip),
            Ips::Many(ips) => ips,
        };
        ips.iter().map(|ip| SocketAddr::new(*ip, self.port))
    }
}

/// Looks host names up and remembers their addresses for `ttl`.
#[derive(Debug)]
pub(crate) struct Resolver {
    ttl: Duration,
    /// By host name; the addresses of a name do not depend on the port.
    cache: RwLock<HashMap<Box<str>, Cached>>,
}

#[derive(Debug)]
struct Cached {
    ips: Arc<[IpAddr]>,
    /// `None`: for good (a time-to-live past the clock's end).
    until: Option<Instant>,
}

impl Cached {
    fn is_fresh(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

impl Resolver {
    /// A resolver that keeps answers for `ttl` (zero: not at all).
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The addresses of `host` (without the brackets of an IPv6 literal)
    /// at `port`.
    ///
    /// # Errors
    /// The lookup failed or found nothing.
    pub(crate) async fn resolve(&self, host: &str, port: u16) -> io::Result<Addrs> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ips = Ips::One(ip);
            return Ok(Addrs { ips, port });
        }
        if let Some(ips) = self.cached(host) {
            let ips = Ips::Many(ips);
            return Ok(Addrs { ips, port });
        }
        let ips: Arc<[IpAddr]> = tokio::net::lookup_host((host, port))
            .await?
            .map(|addr| addr.ip())
            .collect();
        if ips.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the name resolved to no address",
            ));
        }
        self.remember(host, ips.clone());
        let ips = Ips::Many(ips);
        Ok(Addrs { ips, port })
    }

    fn cached(&self, host: &str) -> Option<Arc<[IpAddr]>> {
        if self.ttl.is_zero() {
            return None;
        }
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.get(host)?;
        entry.is_fresh(Instant::now()).then(|| entry.ips.clone())
    }

    fn remember(&self, host: &str, ips: Arc<[IpAddr]>) {
        if self.ttl.is_zero() {
            return;
        }
        let until = Instant::now().checked_add(self.ttl);
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, entry| entry.is_fresh(now));
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(host.into(), Cached { ips, until });
    }
}
