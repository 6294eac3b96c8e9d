#!/usr/bin/env bash
# The README's main command. On a fresh machine it: installs and starts a local broker,
# creates the topics, starts `followguard serve`, generates a follow stream with bought-
# follower campaigns and produces it, prints alerts as they arrive, shows where /metrics
# is, and shuts everything down cleanly at the end or on Ctrl-C.
#
# Environment (all optional):
#   FOLLOWGUARD_BIN           use this binary instead of building target/release/followguard
#   FOLLOWGUARD_DEMO_PORT     broker port (default 19092)
#   FOLLOWGUARD_ADMIN_ADDR    admin HTTP address (default 127.0.0.1:9464)
#   FOLLOWGUARD_MODEL         model file (default models/default.json)
#   FOLLOWGUARD_DEMO_RATE     events per second fed to the service (default 3000)
#   FOLLOWGUARD_DEMO_KEEP=1   leave the broker running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [[ -n "${FOLLOWGUARD_BIN:-}" ]]; then
    BIN="$FOLLOWGUARD_BIN"
else
    say "building followguard (release)"
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-target}/release/followguard"
fi
[[ -x "$BIN" ]] || { echo "demo.sh: no binary at $BIN" >&2; exit 1; }

ADMIN="${FOLLOWGUARD_ADMIN_ADDR:-127.0.0.1:9464}"
MODEL="${FOLLOWGUARD_MODEL:-models/default.json}"
RATE="${FOLLOWGUARD_DEMO_RATE:-3000}"
WORK="$(mktemp -d -t followguard-demo.XXXXXX)"
RUN="demo.$(date +%s)"
TOPIC_ARGS=(--input-topic "$RUN.follows" --alerts-topic "$RUN.alerts"
            --moderation-topic "$RUN.moderation" --dlq-topic "$RUN.dlq")

BROKER_WAS_RUNNING=0
scripts/broker.sh status >/dev/null 2>&1 && BROKER_WAS_RUNNING=1
say "starting the broker (tansu, pinned + checksummed, cached in ${FOLLOWGUARD_CACHE:-$HOME/.cache/followguard})"
BROKERS="$(scripts/broker.sh start "${FOLLOWGUARD_DEMO_PORT:-19092}")"

SERVE_PID=""; WATCH_PID=""; PRODUCE_PID=""
cleanup() {
    trap - EXIT INT TERM
    [[ -n "$PRODUCE_PID" ]] && kill "$PRODUCE_PID" 2>/dev/null || true
    if [[ -n "$SERVE_PID" ]] && kill -0 "$SERVE_PID" 2>/dev/null; then
        say "stopping followguard serve (SIGTERM: drain, commit, exit)"
        kill -TERM "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null && say "serve exited cleanly" || say "serve exited with status $?"
    fi
    [[ -n "$WATCH_PID" ]] && kill "$WATCH_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ "$BROKER_WAS_RUNNING" == 0 && "${FOLLOWGUARD_DEMO_KEEP:-0}" != 1 ]]; then
        scripts/broker.sh stop
    fi
    say "logs and generated data: $WORK"
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

say "creating topics $RUN.{follows,alerts,moderation,dlq}"
"$BIN" topics --brokers "$BROKERS" "${TOPIC_ARGS[@]}" --partitions 4 >/dev/null

say "starting followguard serve (log: $WORK/serve.log)"
"$BIN" serve --brokers "$BROKERS" "${TOPIC_ARGS[@]}" --group-id "$RUN" \
    --model "$MODEL" --admin-addr "$ADMIN" \
    --kafka-option session.timeout.ms=6000 --stats-interval 1s \
    >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 300); do
    curl -sf "http://$ADMIN/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "http://$ADMIN/readyz" >/dev/null || { echo "serve never became ready" >&2; cat "$WORK/serve.log" >&2; exit 1; }
say "serve is ready; metrics at http://$ADMIN/metrics (also /healthz /readyz /info)"

say "generating a 3-day stream for 400 accounts with 5 bought-follower campaigns"
"$BIN" generate --out "$WORK/events.jsonl" --truth "$WORK/truth.json" --seed 42 \
    --followees 400 --days 3 --humans 20000 --viral 3 --campaigns 5 \
    --min-campaign 300 --max-campaign 1500 2>"$WORK/generate.log"
N=$(wc -l <"$WORK/events.jsonl")

say "alerts as they arrive (topic $RUN.alerts):"
"$BIN" watch --brokers "$BROKERS" --alerts-topic "$RUN.alerts" > >(tee "$WORK/alerts.txt") &
WATCH_PID=$!

say "producing $N events at $RATE/s"
"$BIN" produce --brokers "$BROKERS" --topic "$RUN.follows" --input "$WORK/events.jsonl" \
    --rate "$RATE" >/dev/null &
PRODUCE_PID=$!
wait "$PRODUCE_PID"
PRODUCE_PID=""

metric() { curl -sf "http://$ADMIN/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $2} END {printf "%d", s}'; }
for _ in $(seq 1 600); do
    [[ "$(metric followguard_events_total)" -ge "$N" ]] && break
    sleep 0.2
done
sleep 2  # let the last alerts reach the watcher

say "summary"
echo "  events processed:     $(metric followguard_events_total) of $N"
echo "  suspicious follows:   $(metric followguard_suspicious_follows_total)"
echo "  alert records:        $(metric followguard_alerts_total)"
echo "  moderation records:   $(metric followguard_moderation_records_total)"
echo "  dead-lettered:        $(metric followguard_dead_letter_records_total)"
python3 - "$WORK/truth.json" "$WORK/alerts.txt" <<'PY' || echo "  ground truth: $WORK/truth.json"
import json, re, sys
truth = json.load(open(sys.argv[1]))
alerted = set(re.findall(r"followee=(\S+)", open(sys.argv[2]).read()))
targets = {c["followee_id"]: c for c in truth["campaigns"]}
hit = [f for f in targets if f in alerted]
print(f"  campaigns alerted:    {len(hit)} of {len(targets)} injected")
for f, c in targets.items():
    print(f"    followee {f:<8} {c['size']:>5} bought ({c['speed']}): {'ALERTED' if f in hit else 'missed'}")
others = sorted(alerted - set(targets))
print(f"  other accounts alerted: {len(others)}" + (f" ({', '.join(others[:10])})" if others else ""))
PY
echo "  metrics:              http://$ADMIN/metrics"
