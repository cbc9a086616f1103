#!/usr/bin/env bash
# The run command: installs what is missing, builds the components and the
# trigger host, starts a tansu broker (unless KAFKA_BROKERS points at one),
# creates the topics and runs the whole app from spin.toml. Ctrl-C stops it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LISTEN="${LISTEN:-127.0.0.1:3000}"
KAFKA_PORT="${KAFKA_PORT:-9092}"

ensure_cargo
ensure_packages
ensure_wasm_target
build_components
build_host

cleanup() {
    if [ -n "${TANSU_PID:-}" ]; then
        kill "$TANSU_PID" 2>/dev/null || true
        wait "$TANSU_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

if [ -z "${KAFKA_BROKERS:-}" ]; then
    ensure_tansu
    start_tansu "$ROOT/.spin/tansu" "$KAFKA_PORT"
    KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
fi
export SPIN_VARIABLE_KAFKA_BROKERS="$KAFKA_BROKERS"
# Local development: accept X-User-Id, but only when no JWT secret is
# configured (with one, tokens are the only identity). The host prints a
# loud warning whenever development mode is on.
if [ -z "${SPIN_VARIABLE_JWT_SECRET:-}" ]; then
    export SPIN_VARIABLE_DEV_AUTH="${SPIN_VARIABLE_DEV_AUTH:-true}"
fi

step "Creating topics from kafka/topics.toml on $KAFKA_BROKERS"
(cd "$ROOT" && "$HOST_BIN" topics apply -t kafka/topics.toml -f spin.toml)

step "Starting the app; the API listens on http://$LISTEN (Ctrl-C stops everything)"
cd "$ROOT"
# In the foreground, so Ctrl-C reaches the host: it finishes in-flight work
# and commits, then the EXIT trap stops tansu.
"$HOST_BIN" up -f spin.toml --listen "$LISTEN" --runtime-config-file runtime-config/local.toml
