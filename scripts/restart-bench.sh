#!/usr/bin/env bash
# Issue 21's long kill -9 run (docs/state.md, BENCHMARKS.md): at least 2,000,000 input
# records on one partition (10x the default --rebuild-max-records), `serve
# --changelog-topic` (release build, default rebuild cap and snapshot cadence) killed
# with SIGKILL at 60 % and restarted in the same group, against an uninterrupted run.
# Runs the ignored test kafka_changelog::kill_nine_after_two_million_records_on_one_partition
# against a private tansu broker and prints its report line ("changelog kill -9 ...").
#
# Environment (optional): FOLLOWGUARD_BENCH_PORT (broker port, default 19099),
# FOLLOWGUARD_KILL_FOLLOWEES (stream size, default 15000: about 2.09M events),
# FOLLOWGUARD_BENCH_DIR (broker run dir, default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${FOLLOWGUARD_BENCH_PORT:-19099}"
WORK="${FOLLOWGUARD_BENCH_DIR:-$(mktemp -d -t followguard-restart-bench.XXXXXX)}"
mkdir -p "$WORK"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p followguard --bin followguard

export FOLLOWGUARD_BROKER_DIR="$WORK/broker"
scripts/broker.sh stop >/dev/null 2>&1 || true
BROKERS="$(scripts/broker.sh start "$PORT")"
trap 'scripts/broker.sh stop' EXIT

FOLLOWGUARD_TEST_BROKERS="$BROKERS" FOLLOWGUARD_BIN="$PWD/$TARGET/release/followguard" \
    FOLLOWGUARD_DATA_DIR="${FOLLOWGUARD_DATA_DIR:-$PWD/../shared/data}" \
    cargo test -p followguard --test kafka_changelog -- --ignored --nocapture \
    kill_nine_after_two_million_records_on_one_partition 2>&1 |
    grep -E "changelog kill -9|^test |panicked|assert" 
