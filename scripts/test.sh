#!/usr/bin/env bash
# The README's test command: starts a private local broker (scripts/broker.sh, its own
# port and state dir, so a running demo broker is untouched), runs the whole cargo test
# suite against it (FOLLOWGUARD_TEST_BROKERS), and stops the broker it started.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test kafka_e2e).
#
# Set FOLLOWGUARD_TEST_BROKERS yourself to test against another Kafka instead.
set -euo pipefail
cd "$(dirname "$0")/.."

export FOLLOWGUARD_DATA_DIR="${FOLLOWGUARD_DATA_DIR:-$PWD/../shared/data}"
CACHE="${FOLLOWGUARD_CACHE:-$HOME/.cache/followguard}"

if [[ -z "${FOLLOWGUARD_TEST_BROKERS:-}" ]]; then
    export FOLLOWGUARD_BROKER_DIR="$CACHE/broker-test"
    # A broker left over from an interrupted run holds old topics; start fresh.
    scripts/broker.sh stop >/dev/null 2>&1 || true
    FOLLOWGUARD_TEST_BROKERS="$(scripts/broker.sh start "${FOLLOWGUARD_TEST_BROKER_PORT:-19093}")"
    trap 'scripts/broker.sh stop' EXIT
fi
export FOLLOWGUARD_TEST_BROKERS
echo "test.sh: broker at $FOLLOWGUARD_TEST_BROKERS" >&2

cargo test --no-fail-fast "$@"
