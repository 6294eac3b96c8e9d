#!/usr/bin/env bash
# Issue #19, memory under an output outage at full input rate, with real processes: two
# private tansu brokers (scripts/broker.sh, each with its own port and run dir), one for
# the input topic and one for the output topics (`serve --output-brokers`), a generated
# stream of which the first part is already in the input topic (serve starts behind, so
# it reads at its full catch-up rate), `followguard serve` with a byte budget for
# in-flight output; then the output broker is stopped (SIGSTOP: every produce stalls,
# nothing is refused) for FOLLOWGUARD_OUTAGE_SECS while the rest of the stream is
# produced into the input broker as fast as it takes it (or at FOLLOWGUARD_OUTAGE_RATE
# events/s) and serve's RSS, `followguard_in_flight_bytes` and its input lag are sampled
# every 10 s; then the output broker resumes and serve must finish the input: every event
# processed once, the same alert ids opened as `replay` of the same file, no alert id
# opened twice, committed offsets at the end. Prints `bench.outage.*` lines and one
# `outage.sample` line per sample (BENCHMARKS.md, "Memory under hostile input").
#
# Environment (all optional):
#   FOLLOWGUARD_BIN             binary (default: build target/release/followguard)
#   FOLLOWGUARD_OUTAGE_SECS     how long the output broker stays stopped (default 600)
#   FOLLOWGUARD_OUTAGE_BUDGET   serve's --max-in-flight-bytes (default 268435456, serve's default)
#   FOLLOWGUARD_OUTAGE_PORT     input broker port (default 19197; serve's admin port is
#                               PORT+1, the output broker's PORT+2)
#   FOLLOWGUARD_OUTAGE_RATE     events/s of the input produced during the outage (default 0:
#                               as fast as the input broker takes them)
#   FOLLOWGUARD_OUTAGE_BEFORE   events in the input topic before serve starts (default 40000)
#   FOLLOWGUARD_OUTAGE_DIR      work dir (default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${FOLLOWGUARD_BIN:-}" ]]; then
    BIN="$FOLLOWGUARD_BIN"
else
    cargo build --release --quiet -p followguard
    BIN="${CARGO_TARGET_DIR:-target}/release/followguard"
fi
OUTAGE="${FOLLOWGUARD_OUTAGE_SECS:-600}"
BUDGET="${FOLLOWGUARD_OUTAGE_BUDGET:-268435456}"
PORT="${FOLLOWGUARD_OUTAGE_PORT:-19197}"
ADMIN="127.0.0.1:$((PORT + 1))"
OUT_PORT=$((PORT + 2))
RATE="${FOLLOWGUARD_OUTAGE_RATE:-0}"
BEFORE="${FOLLOWGUARD_OUTAGE_BEFORE:-40000}"
WORK="${FOLLOWGUARD_OUTAGE_DIR:-$(mktemp -d -t followguard-outage.XXXXXX)}"
mkdir -p "$WORK"
log() { echo "outage-bench: $*" >&2; }

# Many campaigns, so the stream makes plenty of output (moderation records) per event.
"$BIN" generate --out "$WORK/events.jsonl" --truth "$WORK/truth.json" --seed 19 \
    --followees 3000 --days 6 --campaigns 120 --min-campaign 300 --max-campaign 6000 \
    2>"$WORK/generate.log"
EVENTS="$(wc -l <"$WORK/events.jsonl")"
"$BIN" replay --input "$WORK/events.jsonl" --alerts "$WORK/replay-alerts.jsonl" \
    --moderation /dev/null >"$WORK/replay.log" 2>&1
REPLAY_OPENS="$(grep -c '"status":"open"' "$WORK/replay-alerts.jsonl" || true)"

head -n "$BEFORE" "$WORK/events.jsonl" >"$WORK/before.jsonl"
tail -n +"$((BEFORE + 1))" "$WORK/events.jsonl" >"$WORK/during.jsonl"

# Input cluster and output cluster: two brokers, each with its own run dir.
broker() { FOLLOWGUARD_BROKER_DIR="$WORK/$1" scripts/broker.sh "${@:2}"; }
broker in stop >/dev/null 2>&1 || true
broker out stop >/dev/null 2>&1 || true
BROKERS="$(broker in start "$PORT")"
OUT_BROKERS="$(broker out start "$OUT_PORT")"
OUT_PID="$(cat "$WORK/out/tansu.pid")"
SERVE_PID=""
PRODUCE_PID=""
cleanup() {
    kill -CONT "$OUT_PID" 2>/dev/null || true
    [[ -z "$PRODUCE_PID" ]] || kill "$PRODUCE_PID" 2>/dev/null || true
    [[ -z "$SERVE_PID" ]] || kill "$SERVE_PID" 2>/dev/null || true
    broker in stop || true
    broker out stop || true
}
trap cleanup EXIT

"$BIN" topics --brokers "$BROKERS" --partitions 4 >"$WORK/topics.log" 2>&1
"$BIN" topics --brokers "$OUT_BROKERS" --partitions 4 >>"$WORK/topics.log" 2>&1
"$BIN" produce --brokers "$BROKERS" --topic follows --input "$WORK/before.jsonl" \
    >"$WORK/produce.log" 2>&1

metrics() { curl -sf "http://$ADMIN/metrics" || true; }
# Sum of a metric's samples (all label sets) in the current /metrics text.
metric() { metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f", s }'; }

"$BIN" serve --brokers "$BROKERS" --output-brokers "$OUT_BROKERS" --group-id outage --admin-addr "$ADMIN" \
    --max-in-flight-bytes "$BUDGET" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 600); do
    [[ "$(metric followguard_events_total)" -gt 20000 ]] 2>/dev/null && break
    sleep 0.1
done

kill -STOP "$OUT_PID"
log "output broker stopped for ${OUTAGE}s (serve pid $SERVE_PID, budget $BUDGET bytes); producing the rest of the input"
start=$SECONDS
"$BIN" produce --brokers "$BROKERS" --topic follows --input "$WORK/during.jsonl" --rate "$RATE" \
    >>"$WORK/produce.log" 2>&1 &
PRODUCE_PID=$!
produced_at=""
peak_rss=0
peak_inflight=0
peak_lag=0
while (( SECONDS - start < OUTAGE )); do
    if [[ -n "$PRODUCE_PID" && -z "$produced_at" ]] && ! kill -0 "$PRODUCE_PID" 2>/dev/null; then
        wait "$PRODUCE_PID" || { log "producing the input failed"; exit 1; }
        produced_at=$((SECONDS - start))
        PRODUCE_PID=""
    fi
    rss="$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$SERVE_PID/status")"
    inflight="$(metric followguard_in_flight_bytes)"
    events="$(metric followguard_events_total)"
    lag="$(metric followguard_consumer_lag_records)"
    (( rss > peak_rss )) && peak_rss=$rss
    (( inflight > peak_inflight )) && peak_inflight=$inflight
    (( lag > peak_lag )) && peak_lag=$lag
    echo "outage.sample t=$((SECONDS - start))s rss=$rss in_flight_bytes=$inflight events=$events lag=$lag"
    sleep 10
done
if [[ -n "$PRODUCE_PID" ]]; then
    log "the input was still being produced when the outage ended"
    wait "$PRODUCE_PID" || { log "producing the input failed"; exit 1; }
    produced_at=$((SECONDS - start))
    PRODUCE_PID=""
fi
events_during="$(metric followguard_events_total)"
pauses="$(metric followguard_input_pauses_total)"
state_bytes="$(metric followguard_state_bytes)"
kill -CONT "$OUT_PID"
log "output broker resumed"

resumed=$SECONDS
while [[ "$(metric followguard_events_total)" -lt "$EVENTS" ]]; do
    (( SECONDS - resumed < 900 )) || { log "serve did not finish within 900 s"; break; }
    sleep 1
done
# The last acknowledgements and offset commits.
for _ in $(seq 1 60); do
    [[ "$(metric followguard_in_flight_bytes)" == 0 ]] && break
    sleep 1
done
catch_up=$((SECONDS - resumed))
events_after="$(metric followguard_events_total)"
hwm="$(awk '/^VmHWM:/ {print $2 * 1024}' "/proc/$SERVE_PID/status")"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID" || true
SERVE_PID=""
"$BIN" watch --brokers "$OUT_BROKERS" --json --idle-exit 10s >"$WORK/alerts.jsonl" 2>"$WORK/watch.log" || true
opens="$(grep -c '"status":"open"' "$WORK/alerts.jsonl" || true)"
distinct_opens="$(grep '"status":"open"' "$WORK/alerts.jsonl" | grep -o '"alert_id":"[^"]*"' | sort -u | wc -l)"
missing="$(comm -23 <(grep '"status":"open"' "$WORK/replay-alerts.jsonl" | grep -o '"alert_id":"[^"]*"' | sort -u) \
    <(grep '"status":"open"' "$WORK/alerts.jsonl" | grep -o '"alert_id":"[^"]*"' | sort -u) | wc -l)"

echo "bench.outage.events $EVENTS events"
echo "bench.outage.outage_seconds $OUTAGE s"
echo "bench.outage.in_flight_budget $BUDGET bytes"
echo "bench.outage.peak_in_flight_bytes $peak_inflight bytes"
echo "bench.outage.peak_rss_sampled $peak_rss bytes"
echo "bench.outage.serve_vm_hwm $hwm bytes"
echo "bench.outage.input_produced_during_outage $(wc -l <"$WORK/during.jsonl") events"
echo "bench.outage.input_produced_in ${produced_at} s"
echo "bench.outage.peak_consumer_lag $peak_lag records"
echo "bench.outage.state_bytes_at_end_of_outage $state_bytes bytes"
echo "bench.outage.events_processed_during_outage $events_during events"
echo "bench.outage.input_pauses $pauses pauses"
echo "bench.outage.catch_up_seconds $catch_up s"
echo "bench.outage.events_processed $events_after events"
echo "bench.outage.alert_opens $opens records"
echo "bench.outage.distinct_alert_opens $distinct_opens alerts"
echo "bench.outage.duplicate_opens $((opens - distinct_opens)) records"
echo "bench.outage.replay_alert_opens $REPLAY_OPENS alerts"
echo "bench.outage.replay_opens_missing $missing alerts"
log "work dir $WORK"
