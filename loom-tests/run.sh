#!/usr/bin/env bash
# Runs the loom model checks of loom-tests/tests/ (built with
# `--cfg leasehold_loom`, in their own target directory so that the normal
# build is not invalidated). Extra arguments go to the test harness, e.g.
# `loom-tests/run.sh cancel` to run one model. LOOM_MAX_PREEMPTIONS bounds
# how many preemptions per execution loom explores (default 3: every model,
# the core hand-off ones included, finishes in seconds; 4 takes about 2.5
# minutes on the 2-core machine, and passes). LOOM_TEST_THREADS models run
# at once (default: the CPUs, at most 4; each model is single-threaded, and
# the longest ones, of `Lax`, then run beside the others instead of after).
# Without arguments it uses cargo-nextest where installed (see below).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=${LOOM_TEST_THREADS:-$(nproc 2>/dev/null || echo 1)}
if [ "$threads" -gt 4 ]; then threads=4; fi
export RUSTFLAGS="--cfg leasehold_loom" LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3}
# The whole suite, where cargo-nextest is installed, runs every model of
# every binary from one pool of $threads: `cargo test` runs the binaries one
# after another, so each binary's longest model ends it alone on one core.
if [ "$#" -eq 0 ] && cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run -p leasehold-loom-tests --features models --release \
        --target-dir target/loom -j "$threads" --no-fail-fast
fi
cargo test -p leasehold-loom-tests --features models --release --target-dir target/loom -- --test-threads="$threads" "$@"
