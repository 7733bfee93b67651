//! What more than one benchmark uses: reference pool designs, harnesses that
//! time work on many threads, and the contention results as CSV.

pub mod baseline;
pub mod report;
pub mod threads;
