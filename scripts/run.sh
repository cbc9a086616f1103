#!/usr/bin/env bash
# The run command: installs what is missing, builds the components and the
# trigger host, starts a tansu broker (unless KAFKA_BROKERS points at one),
# creates the topics and runs the whole app from spin.toml. Ctrl-C stops it.
#
# TODO_STORE=postgres keeps every store in Postgres instead of SQLite: the
# one at POSTGRES_URL, else a private server started here (data in
# .spin/postgres, port POSTGRES_PORT or 5433), as replicas would share it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LISTEN="${LISTEN:-127.0.0.1:3000}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
TODO_STORE="${TODO_STORE:-sqlite}"

ensure_cargo
ensure_packages
ensure_wasm_target
[ "$TODO_STORE" != postgres ] || [ -n "${POSTGRES_URL:-}" ] || ensure_postgres
build_components
build_host

cleanup() {
    if [ -n "${TANSU_PID:-}" ]; then
        kill "$TANSU_PID" 2>/dev/null || true
        wait "$TANSU_PID" 2>/dev/null || true
    fi
    if [ -n "${POSTGRES_STOP:-}" ]; then
        "${POSTGRES_STOP[@]}" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

if [ -z "${KAFKA_BROKERS:-}" ]; then
    ensure_tansu
    start_tansu "$ROOT/.spin/tansu" "$KAFKA_PORT"
    KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
fi
export SPIN_VARIABLE_KAFKA_BROKERS="$KAFKA_BROKERS"
case "$TODO_STORE" in
sqlite) ;;
postgres)
    if [ -z "${POSTGRES_URL:-}" ]; then
        start_postgres "$ROOT/.spin/postgres" "${POSTGRES_PORT:-5433}"
    fi
    export SPIN_VARIABLE_STORE=postgres SPIN_VARIABLE_POSTGRES_URL="$POSTGRES_URL"
    # The components may reach exactly that server.
    export SPIN_VARIABLE_POSTGRES_ORIGIN="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(f"postgres://{p.hostname}:{p.port or 5432}")' "$POSTGRES_URL")"
    note "Stores in Postgres ($SPIN_VARIABLE_POSTGRES_ORIGIN)"
    ;;
*) echo "TODO_STORE must be sqlite or postgres, not $TODO_STORE" >&2; exit 2 ;;
esac
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
