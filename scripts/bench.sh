#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one run, printing the figures in one stable format:
#
#   bench.<area>.<case>.<metric> <value> <unit>
#
# on stdout (progress and tool chatter go to stderr, and to $OUT/*.log). CI does not gate
# on these figures: the machines are shared and noisy, so compare ratios within one run.
#
# Usage: scripts/bench.sh [pipeline] [memory] [criterion] [e2e] [changelog] [links]
#        (no argument: the first four)
#
#   pipeline   followguard bench-pipeline: in-process events/s and per-event latency,
#              cold and warm follower cache (≈ 1 min)
#   memory     followguard bench-memory: RSS per tracked followee and per cached score at
#              1M and 10M, RSS at 10M followees (≈ 2 min, ~3 GB peak)
#   criterion  cargo bench -p followguard-bench --bench pipeline and --bench model: the
#              core stages and the classifier bar of issue #2; mean time per event from
#              criterion's estimates (≈ 5 min)
#   e2e        scripts/bench-e2e.sh: through a private tansu broker, plain consumer vs
#              serve, event → alert latency at half load, the live capacity (broker
#              ingesting) and latency at half of it (≈ 5 min; needs ../shared/data)
#   changelog  issue 21: the cost of `serve --changelog-topic`, both ways in one run: the
#              cold pipeline case without and with `bench-pipeline --changelog`
#              (bench.changelog.{off,on}.pipeline.*), and scripts/bench-e2e.sh --no-live
#              without and with --changelog (serve --changelog-topic, one changelog per
#              phase's input topic) (bench.changelog.{off,on}.e2e.*) (≈ 8 min)
#   links      issue 21: a link-stage snapshot (periodic, or on revoke) of a follower
#              stage holding 100,000 links (`--links-snapshot-records`' default), against
#              taking those links in: cargo bench -p followguard-bench --bench links
#              (bench.links.*: mean ms per snapshot / per 100,000 links, ns per link) (≈ 1 min)
#
# Environment (optional): FOLLOWGUARD_BENCH_EVENTS (pipeline events, default 1000000),
# FOLLOWGUARD_BENCH_OUT (where logs and criterion output go, default a temp dir), and
# what scripts/bench-e2e.sh reads (FOLLOWGUARD_DATA_DIR, FOLLOWGUARD_BENCH_PORT, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

areas=("$@")
[[ ${#areas[@]} -eq 0 ]] && areas=(pipeline memory criterion e2e)
for a in "${areas[@]}"; do
    case "$a" in
        pipeline | memory | criterion | e2e | changelog | links) ;;
        *)
            echo "bench.sh: unknown benchmark '$a' (pipeline, memory, criterion, e2e, changelog, links)" >&2
            exit 2
            ;;
    esac
done

OUT="${FOLLOWGUARD_BENCH_OUT:-$(mktemp -d -t followguard-bench.XXXXXX)}"
mkdir -p "$OUT"
TARGET="${CARGO_TARGET_DIR:-target}"
# `followguard bench-*` runs the followguard-bench binary built next to it.
BIN="$TARGET/release/followguard"

echo "bench.sh: building (release), logs in $OUT" >&2
cargo build --release --quiet
echo "bench.run.started $(date -u +%Y-%m-%dT%H:%M:%SZ) utc"
echo "bench.run.commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) git"
echo "bench.run.cpus $(nproc) cpus"
echo "bench.run.loadavg_1m $(cut -d' ' -f1 /proc/loadavg) load"

for a in "${areas[@]}"; do
    echo "bench.sh: === $a" >&2
    case "$a" in
        pipeline)
            "$BIN" bench-pipeline --events "${FOLLOWGUARD_BENCH_EVENTS:-1000000}" \
                2>"$OUT/pipeline.log"
            ;;
        memory)
            "$BIN" bench-memory 2>"$OUT/memory.log"
            ;;
        criterion)
            # Criterion writes its estimates under the target dir; each bench's mean
            # (ns per iteration = per event) becomes one line.
            rm -rf "$TARGET/criterion"
            cargo bench -p followguard-bench --bench pipeline -- --noplot >"$OUT/criterion-pipeline.log" 2>&1
            cargo bench -p followguard-bench --bench model -- --noplot >"$OUT/criterion-model.log" 2>&1
            python3 - "$TARGET/criterion" <<'EOF'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
for est in sorted(root.glob("**/new/estimates.json")):
    name = est.parent.parent.relative_to(root).as_posix().replace("/", ".")
    mean = json.loads(est.read_text())["mean"]["point_estimate"]
    print(f"bench.criterion.{name}.mean_ns {mean:.1f} ns")
    print(f"bench.criterion.{name}.per_s {1e9 / mean:.0f} events/s")
EOF
            ;;
        e2e)
            FOLLOWGUARD_BIN="$BIN" scripts/bench-e2e.sh 2>"$OUT/e2e.log"
            ;;
        links)
            # One line per case: mean per iteration (a snapshot, or taking in all the
            # links) and per link (the id's last part is the number of links).
            rm -rf "$TARGET/criterion/links"
            cargo bench -p followguard-bench --bench links -- --noplot >"$OUT/criterion-links.log" 2>&1
            grep '^links:' "$OUT/criterion-links.log" >&2 || true
            python3 - "$TARGET/criterion/links" <<'EOF'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
for est in sorted(root.glob("*/*/new/estimates.json")):
    case, n = est.parent.parent.parent.name, int(est.parent.parent.name)
    mean = json.loads(est.read_text())["mean"]["point_estimate"]
    print(f"bench.links.{case}.{n}.mean_ms {mean / 1e6:.2f} ms")
    print(f"bench.links.{case}.{n}.per_link_ns {mean / n:.1f} ns")
EOF
            ;;
        changelog)
            for mode in off on; do
                flag=()
                [[ $mode == on ]] && flag=(--changelog)
                "$BIN" bench-pipeline --events "${FOLLOWGUARD_BENCH_EVENTS:-1000000}" \
                    --cases cold "${flag[@]}" 2>"$OUT/changelog-$mode-pipeline.log" |
                    sed "s/^bench\.pipeline\./bench.changelog.$mode.pipeline./"
            done
            for mode in off on; do
                flag=()
                [[ $mode == on ]] && flag=(--changelog)
                FOLLOWGUARD_BIN="$BIN" scripts/bench-e2e.sh --no-live "${flag[@]}" \
                    2>"$OUT/changelog-$mode-e2e.log" |
                    sed "s/^bench\.e2e\./bench.changelog.$mode.e2e./"
            done
            ;;
    esac
done
echo "bench.run.finished $(date -u +%Y-%m-%dT%H:%M:%SZ) utc"
