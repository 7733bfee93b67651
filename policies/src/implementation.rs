//! How the core works inside: the design notes behind each part, kept
//! here so that the modules' own headers stay short. Nothing here is
//! code; each section names the module it explains.
//!
//! ## The engine
//!
//! (`engine`)
//!
//! Two paths share the state:
//!
//! * The **hot path** — lease an idle stateless connection, return one when
//!   nobody waits, open a new one when capacity is free and nobody waits — is
//!   lock-free and allocation-free: a route lookup in an insert-only table
//!   (plain loads, see `table`) and one CAS of a 128-bit shard word, which
//!   holds an idle stack's head, the idle count, the waiter count and flags
//!   (see `route`). Routes have one shard per CPU (one in all under
//!   `Strict` and `Offlock` with FIFO reuse), so a thread that finds its own
//!   connection again touches no cache line another thread writes.
//! * The **slow path** — queued requests, stateful connections, cross-route
//!   reclaim, eviction, shutdown — runs in a non-blocking serializer
//!   (`serial`): commands are queued and whichever thread finds it idle runs
//!   them, so the waiter queues are plain sequential code. How many
//!   serializers there are is the flavor's serializing strategy
//!   (`serializing`): `Strict` and `Lax` have one for all routes
//!   (`OneSerializer`); `Offlock` gives every route its own, and routes
//!   meet only at the total cap, through the total queue (`PerRoute`,
//!   `segments`, `total`).
//!
//! A request that cannot be served at once counts itself in its route's
//! shard 0 (`Strict` and `Offlock`: then in every other shard), and where
//! one serializer serves all routes in `waiting_all`, *before* its
//! `Enqueue` command is queued. From then on nobody opens a new connection
//! on the hot path while anyone waits, so freed capacity goes through the
//! serializer, which serves the oldest request first. Every operation that
//! frees capacity re-reads that count with a read-modify-write and kicks
//! the serializer when it is non-zero — the counterpart of the queuing
//! request's own read-modify-write, so no wake-up is lost (under
//! `PerRoute`, the route's count and the total queue's `total_blocked` play
//! those parts).
//!
//! Returned connections follow the flavor's barging strategy (`barging`):
//! under `Handoff` (`Strict`, `Offlock`) every shard counts the route's
//! waiters, so a return sees them in the same CAS that pushes the
//! connection, whichever shard it returns to, and newcomers never take an
//! idle connection while waiters are counted. A request counts itself in
//! every shard *before* its `Enqueue` is queued, so a return that pushed
//! without seeing it is found by the serializer's look after it. A
//! newcomer that takes a connection from a shard the request has not
//! counted itself in yet runs alongside the request's `acquire`, and so
//! overtakes nobody queued. Under `Compete` (`Lax`), queued requests
//! compete for returns with newcomers, within a bound; its protocol is in
//! `compete`.
//!
//! `TOTAL_WAIT` says that requests of other routes wait for an idle
//! connection to be closed to make room: while it is up, returns go
//! through the serializer. Such a connection is found in the idle index
//! (`idle_index`), which lists the shards that have idle connections, so
//! making room costs the same however many routes the pool has seen.
//!
//! Routes come and go: one with no connection and no request for a full
//! sweep period is removed (`sweep_routes`), and its memory reclaimed
//! through the epoch (`reclaim`). See `Engine::remove_route` for the
//! protocol and for what keeps a route from removal.
//!
//! ## A route and its shard words
//!
//! (`engine::route`)
//!
//! A route has one shard per CPU (one under `Strict` and `Offlock` with
//! FIFO reuse); each shard is a 128-bit atomic word, on its own cache line:
//!
//! ```text
//!  bits 0..32    head of the shard's idle stack (a slot index, or NIL) } LIFO
//!  bits 32..64   tag, bumped by every push and pop (no ABA)            } only
//!  bits 64..95   idle stateless connections in this shard
//!  bit  95       LISTED: the shard is in the engine's idle index
//!  bits 96..123  requests waiting on this route (shard 0; `Strict` and
//!                `Offlock`: every shard)
//!  bit  123      NUDGED: a request woken to compete has yet to look (sharded)
//!  bit  124      CONTEND: requests wait here and compete (sharded routes)
//!  bit  125      ROUTE_WAIT: returns go to the oldest request (sharded)
//!  bit  126      TOTAL_WAIT: a request somewhere is blocked by the total cap
//!  bit  127      CLOSED
//! ```
//!
//! With LIFO reuse, leasing an idle connection is one CAS of this word (pop,
//! count down, and check in the same step that nobody waits and the route
//! is open), and so is returning one (push, count up, and refuse in the same
//! step if requests wait or the route closed). Because the waiter count and
//! the idle list change in the same atomic word, a return and a request
//! about to queue always see each other: either the return sees the waiter
//! and hands the connection to the serializer, or the serializer, acting on
//! the request, finds the connection idle. No fence is needed and no wake-up
//! is lost. `TOTAL_WAIT` does the same for requests of *other* routes that
//! wait for an idle connection to be closed to make room: the serializer
//! raises it on every route before it looks again for such a connection, so
//! a return either happened before that look or sees the flag and goes
//! through the serializer.
//!
//! `Strict` and `Offlock` keep the waiter count in every shard: a request
//! counts itself in shard 0 first and in the others after, and leaves shard
//! 0 last, so shard 0 (which the stats and the capacity checks read) never
//! counts fewer than another shard. A return and a newcomer see the waiters
//! in the word they touch, as with one shard.
//!
//! Under `Lax` the waiter count sits in shard 0 only, so the
//! serializer raises flags on every shard of a route whose requests it could
//! not serve, then looks once more, exactly as for `TOTAL_WAIT`. `CONTEND`
//! says requests wait: a return still goes idle, and then kicks the
//! serializer, which wakes the oldest request to take it (or lets whoever
//! is faster have it). The returning thread counts such a return itself,
//! in the route's pass counter, *before* it pushes; once
//! `Lax::PASS_LIMIT` went by, it hands the
//! connection to the serializer instead, which serves the oldest request
//! and resets the counter. Counted by the returner, the bound holds however
//! late the serializer runs. (A return that raced with the raise of
//! `CONTEND` and pushed without counting counts itself after.)
//! `ROUTE_WAIT` says the oldest request has let enough returns go by, or
//! does not compete: returns are refused outright and go through the
//! serializer to it.
//!
//! `NUDGED` spares the serializer and the sleeping threads a kick and a
//! wake-up per return: the serializer raises it on every shard when it
//! wakes the oldest request to compete, and while a return's push finds it
//! up, the return kicks nobody, since someone is on the way to look (unless
//! the return used up the passes: the serializer hands it to the oldest
//! then). Whoever looks lowers the flag first, shard by shard, with the
//! read-modify-write that counts the shard's idle connections: a push
//! ordered before that lowering is counted, and one ordered after it finds
//! the flag down and kicks, or finds it raised again for a request woken
//! later, which is yet to look. The woken request looks when it runs
//! (`Route::look`); so does the serializer, at the start of every batch,
//! which covers a woken request that is served, or gives up, before it
//! looks; lowering `CONTEND` lowers it too.
//!
//! With FIFO reuse the list is a queue beside the word (unbounded, its
//! memory following the idle connections, not the cap), and the
//! word's idle count is a reservation count: an index is queued *before*
//! the count goes up, and the count goes down *before* an index is dequeued,
//! so whoever reserved one finds one.
//!
//! `LISTED` says that the shard has an entry in the engine's idle index,
//! where cross-route reclaim finds idle connections of other routes without
//! looking at every route (see `idle_index`). A push that finds it down
//! raises it after the push, with a `fetch_or`, and the one push whose
//! `fetch_or` finds it down adds the entry. Only the reclaimer holding the
//! entry lowers it, and only in a CAS that finds the shard empty
//! (`Route::take_or_unlist`), so a shard with idle connections is always
//! listed, or being listed by the push that made it non-empty. A lease
//! leaves the flag as it is: a shard that goes empty and fills again, as
//! one connection leased and returned over and over does, finds the flag up
//! and adds nothing.
//!
//! ## The idle index
//!
//! (`engine::idle_index`)
//!
//! A reclaimer pops entries off the front and puts those it keeps (a shard
//! it took a connection from, or one of a route it must spare) back at the
//! end, so victims rotate over the routes. An entry it holds is out of the
//! index until it puts it back: under `Segmented`, where several
//! serializers reclaim, one that put entries back wakes the total queue,
//! whose look may have missed them meanwhile.
//!
//! No wake-up is lost between a push and a reclaimer: the reclaimer raises
//! `TOTAL_WAIT` on every route before it looks a last time, and a push that
//! listed its shard adds the entry, then reads its shard's word with a
//! read-modify-write. If that read comes after the raise, it sees the flag
//! and kicks the reclaimer (a `Segmented` route's serializer, listing a
//! connection it put back, does so once its own requests were served); if
//! before, the raise is ordered after it, and so the look after the entry
//! was added.
//!
//! ## The arena and its index stacks
//!
//! (`arena`)
//!
//! A stack head packs `(index, tag)` into one `AtomicU64`; the tag is bumped
//! by every successful push or pop, so a popper that read `next` of a slot
//! that was popped and pushed again meanwhile fails its CAS (no ABA). The
//! stale `next` it may have read is an atomic load, never a data race.
//!
//! Fresh indices are claimed with a CAS on the count of slots made, which
//! never passes `cap`; the claimer then makes sure the index's segment
//! exists (`OnceLock`) before it uses the slot or hands the index on, so
//! whoever gets an index later — from a stack, whose CAS orders it after
//! the claimer's, or from a `Held` — finds the segment allocated. Slots are
//! only ever added: a freed slot goes on the free list, to be reused before
//! a fresh one is made.
//!
//! Ownership of a slot's contents is a value, `SlotToken`: made where a
//! slot is handed out (`Arena::fresh`, `IndexStack::pop`, a route's
//! idle list), carried inside a `Held` or `Permit`, and spent where the
//! slot is handed back (`IndexStack::push`, a push onto an idle list).
//! Its holder is the only one that touches that slot's `data`, so the
//! accessors that take a token are safe; the `unsafe` left is where a
//! token is made from an index a list gave up (`SlotToken::claim`). A
//! push's release CAS publishes the data to the next popper's acquire CAS.
//!
//! Each slot has a cache line (two, where the prefetcher pairs them) to
//! itself: two threads reusing two connections write their slots' links on
//! every return, and sharing a line would make each such cycle a line
//! transfer between cores.
//!
//! ## A waiter's grant cell
//!
//! (`waiter`)
//!
//! The granter writes the grant into the cell *before* its CAS, while the
//! state is `PENDING`; the request reads the cell only after it has seen
//! `GRANTED` with acquire ordering. If the request cancelled first, the
//! granter's CAS fails and the granter takes its grant back out of the cell:
//! the connection or capacity goes to the next request, never lost
//! (invariant 6). Exactly one side wins the CAS, and that side accounts for
//! the request leaving the queue.
//!
//! The waker sits in an atomic slot, so the request may replace it at any
//! time (an async task polled on another thread). The granter wakes the slot
//! *after* its CAS; a request that registers a new waker looks at `state`
//! *after* registering. Either the granter's wake finds the new waker, or the
//! request's look finds `GRANTED`: a grant is never left unseen.
//!
//! ## The non-blocking serializer
//!
//! (`serial`)
//!
//! `pending` counts submitted but not yet run commands. A submitter pushes
//! its command *then* increments; the one whose increment saw 0 becomes the
//! drainer. The drainer runs as many commands as it has counted and
//! subtracts that many; if the subtraction does not bring the count to 0,
//! more commands arrived and it runs again. Because every command is pushed
//! before it is counted, `n` counted commands are always in the queue; and
//! because the count is only changed by read-modify-writes (totally ordered),
//! a command is never left behind when the drainer stops.
//!
//! The state sits in a `Mutex` that is never waited on: only the drainer
//! locks it, with `try_lock`, and it unlocks before handing over the role —
//! the mutex is a checked cell, and a failed `try_lock` would be a protocol
//! bug (loom checks it).
//!
//! ## The mailbox
//!
//! (`mailbox`)
//!
//! One word, `state`, holds the `CLOSED` flag and the number of pushes in
//! flight. Every change to it is a read-modify-write, so all changes are
//! totally ordered and each one sees the effects of those before it:
//!
//! ```text
//!   push:            fetch_add(PUSHER) ─ CLOSED? hand back : queue
//!                    ─ fetch_sub(PUSHER)
//!   close_and_drain: fetch_or(CLOSED) ─ spin until no push in flight
//!                    ─ drain
//! ```
//!
//! - *Nothing lost.* A push announces itself (`fetch_add`) before it looks
//!   at `CLOSED`, and leaves (`fetch_sub`) only after its item is queued.
//!   A push whose `fetch_add` did not see `CLOSED` comes before the close's
//!   `fetch_or` in the word's order, so it is counted in every value of the
//!   word from the close on, until it leaves: when the closer reads a value
//!   with no push in flight, every such push has left, and its item is in
//!   the queue (the `fetch_sub` releases the item, the closer's read
//!   acquires it). The drain that follows takes it, unless the consumer
//!   popped it before. Every push whose `fetch_add` comes after the
//!   `fetch_or` sees `CLOSED` and hands its item back.
//! - *Nothing twice.* The queue is linearizable: each queued item is popped
//!   once, by `pop` or by the drain; a handed-back item was never queued.
//!
//! Checking `CLOSED` *before* announcing the push would break the first
//! point: the push could see the mailbox open, the close could find no
//! push in flight and drain, and the item would be queued after the last
//! drain. So would a drain that does not wait for the pushes in flight.
//!
//! The close waits only while a push is between its two read-modify-writes,
//! a few instructions that never block. Pushes that arrive after the close
//! are counted too (they announce themselves before they can see it), so an
//! unbroken stream of them could keep the closer spinning; after a close,
//! pushes are rare (a pool that stops takes no new work), so it does not
//! track them apart.
//!
//! ## The disposal queue
//!
//! (`disposal_queue`)
//!
//! One word, `state`, holds the `STOPPED` flag, the `WORKER` flag (a worker
//! has registered its thread handle, so pushers can wake it) and the number
//! of pushes in flight. Every change to it is a read-modify-write, so all
//! changes are totally ordered and each one sees the effects of those before
//! it:
//!
//! ```text
//!   push:  fetch_add(PUSHER) ─ STOPPED? hand back : queue (full? hand back)
//!          ─ fetch_sub(PUSHER) ─ WORKER? unpark it
//!   stop:  fetch_or(STOPPED) ─ WORKER? unpark it
//!   run:   register thread ─ fetch_or(WORKER) ─ loop { load; drain;
//!          STOPPED and no push in flight (in what was loaded)? return;
//!          closed anything? again : park }
//! ```
//!
//! - *No lost wake-up.* A push that queued an item unparks the worker after
//!   it left (`fetch_sub`), when the value it left shows `WORKER`. If that
//!   value does not show `WORKER`, the worker registers later, and its first
//!   drain comes after the push. Parking has a token: an unpark that comes
//!   between the worker's drain and its park makes the park return at once.
//!   The worker parks only after a drain that found nothing, so no `close`
//!   (the caller's code, which may park and unpark the thread itself) ran
//!   between the load and the park to use such an unpark up.
//! - *Nothing lost at stop.* A push announces itself (`fetch_add`) before it
//!   looks at `STOPPED`, and leaves only after its item is queued. The worker
//!   reads `state` *before* it drains: if that value shows `STOPPED` and no
//!   push in flight, every push that did not see `STOPPED` has left already,
//!   its item is in the queue, and this drain takes it; every later push sees
//!   `STOPPED` and hands its item back. While a push is in flight the worker
//!   parks, and the push's `fetch_sub` shows `WORKER` and wakes it.
//! - *Takers.* `take` is a plain pop of the bounded queue, which hands each
//!   item to one caller. An item another thread took is that thread's to
//!   close; the worker's rule for returning is unchanged, since it needs
//!   only that every item pushed before the stop is out of the queue.
