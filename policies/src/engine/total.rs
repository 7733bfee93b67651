//! The total queue of a `Segmented` engine: where routes whose requests are
//! blocked by the total cap wait for a unit of it.
//!
//! `Segmented` routes share nothing but the total cap. When a route's
//! serializer cannot serve its oldest request because the total is reached
//! (and it has no idle connection of its own to close), the route joins
//! this queue, once, and counts itself in `Engine::total_blocked`. The queue,
//! itself a serializer, then works for the routes in it, oldest first:
//!
//! * it reserves a freed unit of the total and gives it to the first route
//!   as *credit* (a `Credit` command to that route's serializer), which
//!   spends it on its oldest request or, if nothing there can use it any
//!   more, gives it back; a route still blocked joins the end of the queue
//!   again, so freed units go round-robin among blocked routes;
//! * when none is free, it raises `TOTAL_WAIT` on every route and then
//!   looks for an idle connection to close on a route *not* in the queue: a
//!   stateless one it takes itself (lock-free), a stateful one it asks its
//!   route's serializer to close (`Surrender`, one at a time). A connection
//!   that goes idle after the flag was raised makes its route's serializer
//!   kick the queue, so none is missed.
//!
//! The idle connections of a route in the queue are its own requests': a
//! connection returned to such a route is idle only for the instant before
//! the route's serializer hands it to its oldest request (or, in another
//! state, closes it and opens one in the state that request needs, keeping
//! the slot). Closed by the queue instead, it would come back as a unit of
//! credit for a new connection of the same route: a reconnect for nothing.
//! So the queue holds only routes whose requests wait: before it makes room,
//! it lets go of those none of whose requests are counted any more (served
//! by connections of their own, or withdrawn) with `Dismissed`, and their
//! idle connections may then be closed for the others. A route let go
//! joins again if a request of it is still blocked.
//!
//! Capacity freed anywhere reaches the queue the same way freed route
//! capacity reaches a route: the freeing thread re-reads `total_blocked`
//! with a read-modify-write after the total counter went down, the
//! counterpart of the route's own increment before it joined.
//!
//! While routes wait here nobody else takes a unit of the total — not a
//! newcomer on the hot path, not another route's serializer — so a blocked
//! route is never overtaken by one that blocked later.

use super::queues::SerialCommand;
use super::segments::PerRoute;
use super::table::TotalWaitFlags;
use super::{Engine, Flavor};
use crate::sync::Ordering;
use crate::types::{Item, RouteKey};
use std::collections::VecDeque;

pub(super) enum TotalCommand {
    /// Route `id` is blocked by the total cap (sent once until credited or
    /// dismissed).
    Block(usize),
    /// A unit of the total was freed, or a connection went idle while the
    /// queue is flagged.
    Kick,
    /// A route answered a `Surrender`.
    Surrendered,
    Shutdown,
}

pub(super) struct TotalQueue<T> {
    /// Blocked routes, by id, oldest first.
    routes: VecDeque<usize>,
    /// Routes carrying `TOTAL_WAIT`.
    flags: TotalWaitFlags,
    /// A `Surrender` is out, not answered yet.
    surrendering: bool,
    closed: bool,
    /// Idle connections closed to make room, to dispose of.
    victims: Vec<T>,
}

impl<T: Item> TotalQueue<T> {
    pub(super) fn new() -> Self {
        Self {
            routes: VecDeque::new(),
            flags: TotalWaitFlags::default(),
            surrendering: false,
            closed: false,
            victims: Vec::new(),
        }
    }

    pub(super) fn apply(&mut self, command: TotalCommand) {
        match command {
            TotalCommand::Block(id) => self.routes.push_back(id),
            TotalCommand::Kick => {}
            TotalCommand::Surrendered => self.surrendering = false,
            TotalCommand::Shutdown => self.closed = true,
        }
    }

    /// Gives freed units to the routes in the queue, making room where it can;
    /// returns the items to dispose of.
    pub(super) fn settle<K: RouteKey, F: Flavor<Serializers = PerRoute>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) -> Vec<T> {
        if self.closed {
            // The routes answer their own requests with `Closed`.
            core.serializers
                .total_blocked
                .fetch_sub(self.routes.len(), Ordering::AcqRel);
            self.routes.clear();
        }
        while let Some(&id) = self.routes.front() {
            if core.reserve_total() {
                self.routes.pop_front();
                core.serializers
                    .total_blocked
                    .fetch_sub(1, Ordering::AcqRel);
                core.submit(id, SerialCommand::Credit);
                continue;
            }
            // Raise, then look: a connection idle before the flag is found
            // below; one that goes idle after it kicks us. A route registered
            // while routes wait here takes a unit of the total only through
            // this queue (`total_blocked` is not 0), so it is flagged here
            // before it can hold a connection.
            if core.raise_total_wait(&mut self.flags) {
                continue;
            }
            if self.dismiss_served(core) {
                continue;
            }
            if self.close_stateless(core) {
                continue;
            }
            if !self.surrendering {
                if let Some(route) = core.stateful_holder(self.routes.make_contiguous()) {
                    self.surrendering = true;
                    core.submit(route.id, SerialCommand::Surrender { answer: true });
                }
            }
            break;
        }
        if self.routes.is_empty() {
            core.lower_total_wait(&mut self.flags);
        }
        std::mem::take(&mut self.victims)
    }

    /// Lets the routes in the queue go whose requests have all left (served by
    /// connections of their own, or withdrawn): room is made only for
    /// requests that wait, and the idle connections of a route in the queue are
    /// never closed (see the module docs). Whether it let any go.
    fn dismiss_served<K: RouteKey, F: Flavor<Serializers = PerRoute>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) -> bool {
        let before = self.routes.len();
        self.routes.retain(|&id| {
            if core.route(id).word().waiters() != 0 {
                return true;
            }
            core.serializers
                .total_blocked
                .fetch_sub(1, Ordering::AcqRel);
            core.submit(id, SerialCommand::Dismissed);
            false
        });
        self.routes.len() != before
    }

    /// Closes an idle stateless connection of a route not in the queue, freeing a
    /// unit of the total; whether it found one.
    fn close_stateless<K: RouteKey, F: Flavor<Serializers = PerRoute>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) -> bool {
        let in_line = self.routes.make_contiguous();
        let Some((route, slot)) = core.take_idle_elsewhere(None, in_line) else {
            return false;
        };
        self.victims.push(core.close_slot(route, slot));
        // The route's own requests may use the unit of its cap.
        core.route_freed(route);
        true
    }
}
