//! [`for_each_policy!`](crate::for_each_policy): a test per policy for
//! each generic test function.

/// `for_each_policy!(a, b, …)`: one module per policy (`strict`, `lax`,
/// `offlock`), each with a `#[test]` per named function of the calling
/// module, generic over the policy (`fn a<P: Policy>()`), which it calls
/// with that policy.
#[macro_export]
macro_rules! for_each_policy {
    ($($test:ident),+ $(,)?) => {
        $crate::for_each_policy!(@policy strict, $crate::__private::leasehold::Strict; $($test),+);
        $crate::for_each_policy!(@policy lax, $crate::__private::leasehold::Lax; $($test),+);
        $crate::for_each_policy!(@policy offlock, $crate::__private::leasehold::Offlock; $($test),+);
    };
    (@policy $module:ident, $policy:ty; $($test:ident),+) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test::<$policy>();
                }
            )+
        }
    };
}
