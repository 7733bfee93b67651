//! The loom models of `models/mod.rs` against the `Offlock` core, whose
//! routes each have their own serializer and meet only at the total line:
//! in the cross-route models (6 and 7) the request blocked by the total cap
//! goes through its route's serializer into the total line, which reserves
//! the freed unit for it or closes the other route's idle connection —
//! segment vs total counter. Its routes have two idle shards under loom,
//! each counting the route's waiters, as under `Strict` (see `strict.rs`).
//! Built only with `--cfg leasehold_loom` (`loom-tests/run.sh`).

#![cfg(leasehold_loom)]

/// The core the models check.
type TestCore = leasehold_policies::unstable::OfflockCore<u8, models::Conn>;

/// The reuse order of every core the models build.
const REUSE: leasehold_policies::Reuse = leasehold_policies::Reuse::Lifo;

/// How many times a newcomer may lease the connection ahead of a queued
/// request (model 11): never, under this policy.
const MAX_AHEAD: usize = 0;

mod models;
