//! `for_each_policy!(a, b, …)`: one module per policy (`strict`, `lax`,
//! `offlock`), each with a `#[test]` per named generic function, which it
//! calls with that policy. The calling file must have `Strict`, `Lax` and
//! `Offlock` in scope.

macro_rules! for_each_policy {
    ($($test:ident),+ $(,)?) => {
        for_each_policy!(@policy strict, Strict; $($test),+);
        for_each_policy!(@policy lax, Lax; $($test),+);
        for_each_policy!(@policy offlock, Offlock; $($test),+);
    };
    (@policy $module:ident, $policy:ty; $($test:ident),+) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $test() {
                    super::$test::<$policy>();
                }
            )+
        }
    };
}
