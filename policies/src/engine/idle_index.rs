//! The idle index: where cross-route reclaim finds an idle connection of
//! another route to close, without looking at every route.
//!
//! An entry names one shard of one route, by route id. A shard is listed
//! (its word's `LISTED` flag, see `route`) from the push that finds the flag
//! down until a reclaimer finds the shard empty, and has an entry meanwhile:
//! only the push that raises the flag adds one, and only a reclaimer that
//! finds the shard empty lowers it. Entries go stale when a shard's
//! connections are leased again, or its route is removed, and a reclaimer
//! drops them as it meets them, so finding a victim costs O(1) amortized:
//! each stale entry it skips was added by one push. A removed route's id may
//! name a new route by then: its stale entry then names a shard of the new
//! one, which may so have two entries for a while — harmless, since either
//! entry finds the shard's connections, and the flag comes down only while
//! the shard is empty.
//!
//! `Segmented` keeps a second index of the same kind for idle stateful
//! connections, which only a route's own serializer keeps: an entry names a
//! route (shard 0), listed by its `STATEFUL_LISTED` flag, raised as its
//! serializer counts a stateful connection going idle; the reclaimer asks
//! that serializer to close one (see `total`).
//!
//! How it works: [the design notes](crate::implementation#the-idle-index).

use crate::sync::Fifo;
use std::fmt;

/// Bits of an entry that name the shard (routes have at most 64).
const SHARD_BITS: u32 = 6;

/// Listed shards, oldest first.
pub(super) struct IdleIndex {
    entries: Fifo<usize>,
}

impl IdleIndex {
    pub(super) fn new() -> Self {
        Self {
            entries: Fifo::new(),
        }
    }

    /// Adds the entry of `route`'s `shard`, which the caller listed.
    pub(super) fn push(&self, route: usize, shard: usize) {
        debug_assert!(shard < 1 << SHARD_BITS);
        self.entries.push(route << SHARD_BITS | shard);
    }

    /// Takes the oldest entry: route id and shard.
    pub(super) fn pop(&self) -> Option<(usize, usize)> {
        let entry = self.entries.pop()?;
        Some((entry >> SHARD_BITS, entry & ((1 << SHARD_BITS) - 1)))
    }

    /// How many entries there are (a snapshot).
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl fmt::Debug for IdleIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleIndex")
            .field("entries", &self.entries.len())
            .finish()
    }
}
