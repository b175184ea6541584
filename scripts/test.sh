#!/usr/bin/env bash
# Runs the whole d4c test suite: unit and integration tests (with the 100,000-case
# property test), a bounded fuzzing run, and the privileged tiers where this machine has
# what they need. Privileged tiers skip with a reason, or fail when
# D4C_REQUIRE_PRIVILEGED=1 (CI sets it).
#
#   scripts/test.sh            # everything
#   D4C_FUZZ_SECONDS=0 ...     # skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() { printf '\n==> %s\n' "$*"; }

step "cargo test --workspace (tiers a, b, c)"
cargo test --workspace --no-fail-fast 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}

fuzz_seconds=${D4C_FUZZ_SECONDS:-60}
if ((fuzz_seconds > 0)); then
    step "fuzzing parse+validate+compile for ${fuzz_seconds}s"
    corpus=${D4C_CACHE_DIR:-target}/fuzz-corpus
    mkdir -p "$corpus"
    if cargo +nightly fuzz run --fuzz-dir policy/fuzz parse_compile "$corpus" config/policies \
        -- -max_total_time="$fuzz_seconds" -print_final_stats=1 2>&1 | tail -n 15; then
        echo "fuzz: 1 passed, 0 failed" | tee -a "$log"
    else
        echo "fuzz: 0 passed, 1 failed" | tee -a "$log"
        status=1
    fi
fi

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
step "summary"
echo "total: ${passed} passed, ${failed} failed"
exit "$status"
