//! The loom models of `models/mod.rs` against the `Lax` core (two shards
//! under loom) with FIFO reuse: a return to one shard checks, queues, then
//! counts, while the serializer may raise `ROUTE_WAIT` in between; the
//! return must see the flag in what it counted into and hand over. Built
//! only with `--cfg leasehold_loom` (`loom-tests/run.sh`).

#![cfg(leasehold_loom)]

/// The core the models check.
type TestCore = leasehold_policies::unstable::LaxCore<u8, models::Conn>;

/// The reuse order of every core the models build.
const REUSE: leasehold_policies::Reuse = leasehold_policies::Reuse::Fifo;

/// How many times a newcomer may lease the connection ahead of a queued
/// request (model 11): `Lax::PASS_LIMIT`, which is 1 under loom.
const MAX_AHEAD: usize = 1;

mod models;
