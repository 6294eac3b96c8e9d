#!/usr/bin/env bash
# Issue 21: restore time of one changelog partition against its state size
# (docs/state.md "Sizing and restore time", BENCHMARKS.md). Starts a private tansu broker
# (scripts/broker.sh, its own port and run dir), generates a small stream whose followee
# states serve as templates, and runs the restore_bench example (release) for each size:
# a partition snapshot of N followees written as serve writes it, then restored and timed.
# Prints `bench.restore.f<N>.*` lines (records, bytes, seconds, records/s, MiB/s).
#
# Usage: scripts/restore-bench.sh [N ...]   (default: 10000 100000 1000000)
# Environment (optional): FOLLOWGUARD_BENCH_PORT (broker port, default 19098),
# FOLLOWGUARD_BENCH_DIR (work dir, default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(10000 100000 1000000)
PORT="${FOLLOWGUARD_BENCH_PORT:-19098}"
WORK="${FOLLOWGUARD_BENCH_DIR:-$(mktemp -d -t followguard-restore-bench.XXXXXX)}"
mkdir -p "$WORK"
TARGET="${CARGO_TARGET_DIR:-target}"

cargo build --release --quiet -p followguard --bin followguard --example restore_bench
"$TARGET/release/followguard" generate --out "$WORK/events.jsonl" --truth "$WORK/truth.json" \
    --seed 21 --followees 2000 --days 7 --humans 50000 --campaigns 20 --max-campaign 2000 \
    2>"$WORK/generate.log"

export FOLLOWGUARD_BROKER_DIR="$WORK/broker"
scripts/broker.sh stop >/dev/null 2>&1 || true
BROKERS="$(scripts/broker.sh start "$PORT")"
trap 'scripts/broker.sh stop; rm -f "$WORK/events.jsonl"' EXIT

echo "bench.run.started $(date -u +%Y-%m-%dT%H:%M:%SZ) utc"
echo "bench.run.commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) git"
"$TARGET/release/examples/restore_bench" "$BROKERS" "$WORK/events.jsonl" models/default.json \
    "${sizes[@]}" 2>"$WORK/restore-bench.log"
