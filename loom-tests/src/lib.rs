//! Loom model checks of leasehold-policies; see `tests/`. This library holds
//! what the models share.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts the executions of one model and which of two outcomes each
/// reached, so a model can check that it explored the interleavings it is
/// about (and not only the easy one); printed with `--nocapture`.
///
/// It counts in `std` atomics, so it adds no scheduling points to the state
/// space loom explores.
#[derive(Debug, Default)]
pub struct Tally {
    outcomes: [AtomicUsize; 2],
}

impl Tally {
    /// Counts one execution, which reached the second outcome if `second`.
    pub fn note(&self, second: bool) {
        self.outcomes[usize::from(second)].fetch_add(1, Ordering::Relaxed);
    }

    /// Prints how many executions reached each outcome, and returns the
    /// counts.
    pub fn report(&self, model: &str, names: [&str; 2]) -> [usize; 2] {
        let counts = self.counts();
        println!(
            "{model}: {} executions ({}: {}, {}: {})",
            counts[0] + counts[1],
            names[0],
            counts[0],
            names[1],
            counts[1]
        );
        counts
    }

    /// Prints how many executions there were, for a model with one outcome.
    pub fn report_runs(&self, model: &str) {
        let runs: usize = self.counts().iter().sum();
        println!("{model}: {runs} executions");
    }

    /// How many executions reached each outcome.
    pub fn counts(&self) -> [usize; 2] {
        [0, 1].map(|i| self.outcomes[i].load(Ordering::Relaxed))
    }

    /// Prints the counts and asserts that both outcomes were reached.
    ///
    /// # Panics
    /// If an outcome was never reached: the model misses interleavings.
    pub fn assert_both(&self, model: &str, names: [&str; 2]) {
        let counts = self.report(model, names);
        assert!(
            counts.iter().all(|&n| n > 0),
            "{model}: an outcome was never reached; the model misses interleavings"
        );
    }
}
