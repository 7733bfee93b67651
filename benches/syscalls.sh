#!/usr/bin/env bash
# Syscalls per lease + return cycle, counted with `strace -f -c` around the
# contention bench (benches/contention.rs), pool 8, no hold.
#
#   benches/syscalls.sh                 # ours and the blocking peers, 1 and 32 workers
#   benches/syscalls.sh strict qp       # some pools only
#
# Each pool and worker count runs the bench filtered to that one benchmark
# (one warm-up and 10 measured batches of CONTENTION_OPS cycles, 2^16 by
# default); a run whose filter matches nothing gives the harness's own calls
# (pool warm-up for every scenario, criterion, the runtime), which are
# subtracted. What is left is the batches' calls: thread start and end
# (about 10 per worker per batch) and whatever the cycles make. Under ptrace
# threads run slower, so the counts, not times, are what this is for.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v strace >/dev/null 2>&1; then
    echo "strace is not installed (Debian: apt-get install strace)" >&2
    exit 1
fi

ops=${CONTENTION_OPS:-65536}
batches=11
pools=("$@")
if [ ${#pools[@]} -eq 0 ]; then
    pools=(strict lax offlock r2d2 mutex_condvar hikari_bag qp)
fi

bench=$(cargo bench --bench contention --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
if [ -z "$bench" ]; then
    echo "could not build the contention bench" >&2
    exit 1
fi

# count FILTER: prints "total futex" syscall counts of one filtered run.
count() {
    local out
    out=$(mktemp)
    CONTENTION_OPS=$ops strace -f -c -q -o "$out" "$bench" --bench "$1" >/dev/null 2>&1
    awk '$NF == "total" { total = $4 } $NF == "futex" { futex = $4 } END { print total + 0, futex + 0 }' "$out"
    rm -f "$out"
}

read -r base_total base_futex < <(count '^matches-nothing$')
cycles=$((ops * batches))
echo "syscalls per 1000 lease + return cycles (pool 8, no hold, $cycles cycles per run;"
echo "harness baseline $base_total calls, $base_futex futex, subtracted)"
printf '%-14s %8s %14s %14s\n' pool workers "all calls" futex
for pool in "${pools[@]}"; do
    for workers in 1 32; do
        read -r total futex < <(count "contention/hold0ns_${ops}ops/${pool}/pool8_workers${workers}\$")
        awk -v t="$total" -v f="$futex" -v bt="$base_total" -v bf="$base_futex" -v c="$cycles" \
            -v p="$pool" -v w="$workers" \
            'BEGIN { printf "%-14s %8d %14.2f %14.2f\n", p, w, (t - bt) * 1000 / c, (f - bf) * 1000 / c }'
    done
done
