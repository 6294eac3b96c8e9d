#!/usr/bin/env bash
# The end-to-end benchmark through the broker (issue #6): generates a ~1M-event stream
# (profiles sampled from the labelled CSVs, so ~0.6 KB events with real descriptions),
# starts a private tansu broker (scripts/broker.sh, its own port and run dir), runs
# `followguard bench-e2e` against it and stops the broker. Prints `bench.e2e.*` lines.
#
# Environment (all optional):
#   FOLLOWGUARD_BIN              binary (default: build target/release/followguard)
#   FOLLOWGUARD_DATA_DIR         labelled CSVs (default ../shared/data)
#   FOLLOWGUARD_BENCH_PORT       broker port (default 19097)
#   FOLLOWGUARD_BENCH_FOLLOWEES  followees in the generated stream (default 6500 ≈ 1M events)
#   FOLLOWGUARD_BENCH_DIR        work dir for the stream and serve logs (default a temp dir)
# Extra arguments go to `followguard bench-e2e` (e.g. --json, --serve-arg=...).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${FOLLOWGUARD_BIN:-}" ]]; then
    BIN="$FOLLOWGUARD_BIN"
else
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-target}/release/followguard"
fi
DATA="${FOLLOWGUARD_DATA_DIR:-$PWD/../shared/data}"
PORT="${FOLLOWGUARD_BENCH_PORT:-19097}"
WORK="${FOLLOWGUARD_BENCH_DIR:-$(mktemp -d -t followguard-bench-e2e.XXXXXX)}"
mkdir -p "$WORK"

"$BIN" generate --out "$WORK/events.jsonl" --truth "$WORK/truth.json" --seed 6 \
    --followees "${FOLLOWGUARD_BENCH_FOLLOWEES:-6500}" --days 14 --humans 200000 \
    --campaigns 80 --max-campaign 5000 --viral 60 \
    --profiles "$DATA/cresci-2015/all_users_labeled.csv,$DATA/cresci-2017/genuine_accounts.csv=human" \
    2>"$WORK/generate.log"

export FOLLOWGUARD_BROKER_DIR="$WORK/broker"
# A fresh broker: memory storage, nothing left from earlier runs.
scripts/broker.sh stop >/dev/null 2>&1 || true
BROKERS="$(scripts/broker.sh start "$PORT")"
trap 'scripts/broker.sh stop' EXIT

"$BIN" bench-e2e --brokers "$BROKERS" --input "$WORK/events.jsonl" \
    --broker-pid "$(cat "$FOLLOWGUARD_BROKER_DIR/tansu.pid")" --work-dir "$WORK" "$@"
