//! The loom models of `models/mod.rs` against the `Lax` core, whose routes have
//! two idle shards under loom. Threads take shards in order of first use:
//! the main thread (which leases first) gets shard 0, thread A shard 1,
//! thread B shard 0 again — so in the return-vs-enqueue model A returns to
//! shard 1 while B looks in shard 0, and B must steal the connection or be
//! handed it: steal vs return vs hand-off. Built only with
//! `--cfg leasehold_loom` (`loom-tests/run.sh`).

#![cfg(leasehold_loom)]

/// The core the models check.
type TestCore = leasehold_policies::unstable::LaxCore<u8, models::Conn>;

/// The reuse order of every core the models build.
const REUSE: leasehold_policies::Reuse = leasehold_policies::Reuse::Lifo;

/// How many times a newcomer may lease the connection ahead of a queued
/// request (model 11): `Lax::PASS_LIMIT`, which is 1 under loom.
const MAX_AHEAD: usize = 1;

mod models;
