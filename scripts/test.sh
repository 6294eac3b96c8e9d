#!/usr/bin/env bash
# The README's test command (and CI's): checks formatting and lints, starts a private
# local broker (scripts/broker.sh, its own port and state dir, so a running demo broker is
# untouched), lints and tests the whole workspace against it (`cargo clippy --workspace
# --all-targets`, `cargo test --workspace`; FOLLOWGUARD_TEST_BROKERS), runs the ops checks
# (scripts/ops-check.sh), and stops the broker it started.
# With arguments, only `cargo test --workspace ARGS` runs (e.g. scripts/test.sh --test kafka_e2e).
#
# Set FOLLOWGUARD_TEST_BROKERS yourself to test against another Kafka instead.
set -euo pipefail
cd "$(dirname "$0")/.."

export FOLLOWGUARD_DATA_DIR="${FOLLOWGUARD_DATA_DIR:-$PWD/../shared/data}"
CACHE="${FOLLOWGUARD_CACHE:-$HOME/.cache/followguard}"
# No incremental-compilation cache (~0.5 GB of the ~1.9 GB test target): CI builds from
# scratch and disk there is tight. Set CARGO_INCREMENTAL=1 for quick local re-runs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if [[ -z "${FOLLOWGUARD_TEST_BROKERS:-}" ]]; then
    export FOLLOWGUARD_BROKER_DIR="$CACHE/broker-test"
    # A broker left over from an interrupted run holds old topics; start fresh.
    scripts/broker.sh stop >/dev/null 2>&1 || true
    FOLLOWGUARD_TEST_BROKERS="$(scripts/broker.sh start "${FOLLOWGUARD_TEST_BROKER_PORT:-19093}")"
    trap 'scripts/broker.sh stop' EXIT
    started_broker=1
fi
export FOLLOWGUARD_TEST_BROKERS
echo "test.sh: broker at $FOLLOWGUARD_TEST_BROKERS" >&2

if [[ $# -gt 0 ]]; then
    cargo test --workspace --no-fail-fast "$@"
    exit $?
fi

# Every step runs even when an earlier one fails, so one CI run shows every problem;
# the script fails if any step failed.
failed=()
step() {
    local name="$1"; shift
    echo "test.sh: === $name" >&2
    "$@" || failed+=("$name")
}
step "cargo fmt --check" cargo fmt --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings
results="$(mktemp)"
trap 'rm -f "$results"; [[ -z "${started_broker:-}" ]] || scripts/broker.sh stop' EXIT
cargo_tests() { cargo test --workspace --no-fail-fast 2>&1 | tee "$results"; return "${PIPESTATUS[0]}"; }
step "cargo test" cargo_tests
step "ops checks (deploy/, Dockerfile, live Prometheus + Alertmanager)" \
    env FOLLOWGUARD_BIN="${CARGO_TARGET_DIR:-target}/debug/followguard" scripts/ops-check.sh all

# One closing line with the totals of every cargo test binary (the last binary cargo runs
# is the doc-test one, which has no tests and would otherwise close the log).
totals="$(awk '/^test result:/ {p += $4; f += $6} END {printf "%d passed, %d failed", p, f}' "$results")"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'test.sh: FAILED: %s\n' "${failed[@]}" >&2
    echo "tests: $totals"
    exit 1
fi
echo "test.sh: all steps passed" >&2
echo "tests: $totals"
