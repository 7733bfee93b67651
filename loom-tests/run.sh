#!/usr/bin/env bash
# Runs the loom model checks of loom-tests/tests/ (built with
# `--cfg leasehold_loom`, in their own target directory so that the normal
# build is not invalidated). Extra arguments go to the test harness, e.g.
# `loom-tests/run.sh cancel` to run one model. LOOM_MAX_PREEMPTIONS bounds
# how many preemptions per execution loom explores (default 3: every model,
# the core hand-off ones included, finishes in seconds; 4 takes about 2.5
# minutes on the 2-core machine, and passes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUSTFLAGS="--cfg leasehold_loom" LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3} \
    cargo test -p leasehold-loom-tests --release --target-dir target/loom -- --test-threads=1 "$@"
