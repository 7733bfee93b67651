//! The idle-hit path makes no heap allocation: leasing an idle connection
//! and giving it back, with `lease` or `try_lease`, for every policy.
//! (`benches/cycle.rs` runs the same audit before it benchmarks.)

use leasehold::Policy;
use leasehold_testkit::alloc_audit::{hit_path_allocations, CountingAlloc, CYCLES};

/// Counts this thread's allocations for the audit.
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Asserts that policy `P`'s idle-hit path allocates nothing.
fn assert_hit_path_allocation_free<P: Policy>() {
    let (lease, try_lease) = hit_path_allocations::<P>();
    println!(
        "[{}] allocations in {CYCLES} idle-hit cycles: lease {lease}, try_lease {try_lease}",
        P::NAME
    );
    assert_eq!(
        (lease, try_lease),
        (0, 0),
        "[{}] the idle-hit path allocated (lease, try_lease) over {CYCLES} cycles each",
        P::NAME
    );
}

/// Runs `$f::<P>()` for every policy, in order. A new policy is one more
/// line here.
macro_rules! for_each_policy {
    ($f:ident) => {{
        $f::<leasehold::Strict>();
        $f::<leasehold::Lax>();
    }};
}

#[test]
fn idle_hit_path_does_not_allocate() {
    for_each_policy!(assert_hit_path_allocation_free);
}
