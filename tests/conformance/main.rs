//! The conformance suite: every invariant of the design brief and the
//! Apache scenario table, written once as generic scenarios and stamped out
//! for every policy by `conformance!` (as arc-swap stamps its tests out for
//! every strategy).

mod asynch;
mod scenarios;
mod stress;

use leasehold::{Lax, Offlock, Strict};

/// Stamps out one `#[test]` per scenario for a policy.
macro_rules! conformance {
    ($module:ident, $policy:ty) => {
        mod $module {
            use super::*;
            conformance!(@tests $policy;
                scenarios::lease_returns_and_reuses,
                scenarios::caps_hold_per_route_and_total,
                scenarios::waiter_served_after_non_reusable_release,
                scenarios::waiter_served_after_reusable_release,
                scenarios::route_b_served_when_route_a_idle_fills_total,
                scenarios::route_b_served_when_route_a_stateful_idle_fills_total,
                scenarios::route_b_waiter_served_when_route_a_lease_returns,
                scenarios::freed_total_goes_to_the_route_that_blocked_first,
                scenarios::slow_disposal_on_one_route_does_not_delay_another,
                scenarios::stateless_lease_never_gets_stateful_connection,
                scenarios::stateful_lease_gets_only_its_state,
                scenarios::stateful_lease_reclaims_other_state_when_route_full,
                scenarios::stateless_waiter_reclaims_its_routes_stateful_return_at_total,
                scenarios::lease_timeout_fires_without_pool_activity,
                scenarios::timeout_error_names_route_and_stats,
                scenarios::try_lease_exhausted_never_waits,
                scenarios::panicking_holder_connection_is_discarded,
                scenarios::discard_closes_and_frees_capacity,
                scenarios::shutdown_wakes_every_waiter,
                scenarios::shutdown_closes_idle_and_returned,
                scenarios::refused_connect_frees_capacity,
                scenarios::connect_errors_are_told_apart,
                scenarios::repeated_connect_failures_back_off,
                scenarios::connect_timeout_bounds_a_stuck_handshake,
                scenarios::panicking_connector_returns_capacity,
                scenarios::max_idle_closes_extra_returns,
                scenarios::set_max_idle_closes_idle_over_it,
                scenarios::lowering_route_max_trims_idle,
                scenarios::raising_route_max_serves_waiters,
                scenarios::pause_holds_new_leases_until_resume,
                scenarios::pause_bounds_a_lease_by_its_acquire_timeout,
                scenarios::shutdown_wakes_a_paused_lease,
                scenarios::drain_waits_for_leases_then_closes_idle,
                scenarios::drain_times_out_with_leases_out,
                scenarios::reuse_order_lifo_and_fifo,
                scenarios::dropping_pool_closes_idle,
                scenarios::owned_lease_returns_from_anywhere_and_keeps_the_pool,
                scenarios::detach_takes_the_connection_out_of_the_pool,
                scenarios::broken_connections_are_not_reused,
                stress::threads_keep_caps_and_exclusivity,
                stress::resizing_under_load_keeps_the_caps,
                stress::max_idle_changed_under_load,
                stress::pause_and_drain_under_load,
                stress::route_settings_changed_under_load,
                stress::threads_with_discards_and_timeouts_conserve,
                stress::waiters_on_many_routes_all_served,
                stress::leases_returned_on_another_thread_reuse_their_connections,
                stress::async_leases_returned_on_another_thread_reuse_their_connections,
            );
        }
    };
    (@tests $policy:ty; $($path:ident :: $test:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                $path::$test::<$policy>();
            }
        )+
    };
}

/// Stamps out one `#[test]` per async scenario for a policy, per executor.
macro_rules! async_conformance {
    ($module:ident, $policy:ty) => {
        mod $module {
            use super::asynch::*;
            use super::*;
            async_conformance!(@executor $policy; tokio_current, TokioCurrent);
            async_conformance!(@executor $policy; tokio_multi, TokioMulti);
            async_conformance!(@executor $policy; smol, Smol);
            async_conformance!(@executor $policy; block_on, BlockOn);
        }
    };
    (@executor $policy:ty; $module:ident, $executor:ty) => {
        mod $module {
            use super::*;
            async_conformance!(@tests $policy, $executor;
                async_lease_returns_and_reuses,
                async_waiter_served_by_blocking_return,
                async_timeout_fires_without_pool_activity,
                async_far_deadline_fires_on_time,
                async_owned_lease,
                async_shutdown_wakes_waiter,
                async_pause_holds_until_resume,
                async_pause_times_out,
                async_refused_connect_fails_fast,
                async_stateful_lease_gets_only_its_state,
                cancel_before_first_poll,
                cancel_while_queued,
                cancel_after_hand_off_before_poll,
                cancel_while_connect_in_flight,
                cancel_during_patience,
                cancel_storm_conserves,
            );
        }
    };
    (@tests $policy:ty, $executor:ty; $($test:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                asynch::$test::<$policy, $executor>();
            }
        )+
    };
}

conformance!(strict, Strict);
conformance!(lax, Lax);
conformance!(offlock, Offlock);

async_conformance!(strict_async, Strict);
async_conformance!(lax_async, Lax);
async_conformance!(offlock_async, Offlock);
