//! The loom models of `models/mod.rs` against the `Strict` core, whose routes
//! have two idle shards under loom, each counting the route's waiters.
//! Threads take shards as under `Lax` (see `lax.rs`): in the
//! return-vs-enqueue model A returns to shard 1 while B counts itself in
//! shard 0 and then in shard 1, so A's return must see B in shard 1's word
//! and hand over, or go idle before B's count and be found by B's request.
//! Built only with `--cfg leasehold_loom` (`loom-tests/run.sh`).

#![cfg(leasehold_loom)]

/// The core the models check.
type TestCore = leasehold_policies::unstable::StrictCore<u8, models::Conn>;

/// The reuse order of every core the models build.
const REUSE: leasehold_policies::Reuse = leasehold_policies::Reuse::Lifo;

/// How many times a newcomer may lease the connection ahead of a queued
/// request (model 11): never, under this policy.
const MAX_AHEAD: usize = 0;

mod models;
