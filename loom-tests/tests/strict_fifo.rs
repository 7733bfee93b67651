//! The loom models of `models/mod.rs` against the `Strict` core with FIFO
//! reuse, which keeps one idle list per route: a queue beside the route word, and a return
//! checks the word, queues, then counts — not one CAS — so it must re-check
//! what it counted into. Built only with `--cfg leasehold_loom`
//! (`loom-tests/run.sh`).

#![cfg(leasehold_loom)]

/// The core the models check.
type TestCore = leasehold_policies::unstable::StrictCore<u8, models::Conn>;

/// The reuse order of every core the models build.
const REUSE: leasehold_policies::Reuse = leasehold_policies::Reuse::Fifo;

/// How many times a newcomer may lease the connection ahead of a queued
/// request (model 11): never, under this policy.
const MAX_AHEAD: usize = 0;

mod models;
