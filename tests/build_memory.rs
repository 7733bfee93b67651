//! Building a pool costs memory in proportion to the connections it holds,
//! not to its caps: a pool allowed a million connections is cheap until it
//! opens them.
//!
//! The figure is the process's resident set (`VmRSS` of
//! `/proc/self/status`), so this binary holds this one test: no other test
//! thread allocates while it measures. Linux only.

#![cfg(target_os = "linux")]

use leasehold::mock::MockConnector;
use leasehold::{Lax, Offlock, Policy, Pool, Strict};

/// How much resident memory building a pool of `max_total(1_000_000)` may
/// take: generous, and far below a slot per allowed connection (a cache
/// line or two each, over 100 MiB).
const LARGE_CAP_BUDGET: u64 = 16 << 20;

/// The resident set of this process, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("a VmRSS line in /proc/self/status");
    kib << 10
}

/// The growth of the resident set while a pool of `max_total` is built,
/// and the pool (kept alive, so that nothing it took is given back before
/// the measurement).
fn build_growth<P: Policy>(max_total: usize) -> (u64, Pool<MockConnector, P>) {
    let before = resident();
    let pool = Pool::builder(MockConnector::new())
        .policy::<P>()
        .max_total(max_total)
        .build()
        .expect("valid pool config");
    let after = resident();
    (after.saturating_sub(before), pool)
}

fn assert_large_cap_is_cheap<P: Policy>() {
    // Warm-up: whatever a first pool touches once per process (code,
    // thread-locals, the allocator's arenas) is not the pool's size. It
    // stays alive, so the pools measured get no memory it gave back.
    let (_, warm_up) = build_growth::<P>(25);
    let (default_size, small) = build_growth::<P>(25);
    let (large, big) = build_growth::<P>(1_000_000);
    println!(
        "[{}] resident growth at build(): max_total(25) {} KiB, max_total(1_000_000) {} KiB",
        P::NAME,
        default_size >> 10,
        large >> 10
    );
    assert!(
        large < LARGE_CAP_BUDGET,
        "[{}] building a pool of max_total(1_000_000) took {} KiB resident \
         before any connection exists (budget {} KiB)",
        P::NAME,
        large >> 10,
        LARGE_CAP_BUDGET >> 10
    );
    drop((warm_up, small, big));
}

#[test]
fn building_a_pool_with_a_large_cap_reserves_little_memory() {
    assert_large_cap_is_cheap::<Strict>();
    assert_large_cap_is_cheap::<Lax>();
    assert_large_cap_is_cheap::<Offlock>();
}
