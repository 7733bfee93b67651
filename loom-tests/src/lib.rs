//! Loom model checks of leasehold-policies; see `tests/`.
