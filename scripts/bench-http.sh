#!/usr/bin/env bash
# HTTP speed of the shipped app under the real `spin up` (Spin serves HTTP,
# the plugins Kafka and the timer) and under `trigger-kafka up`, side by
# side in one run: the same app copy, the same SQLite files, the same
# broker, the same load (wrk). Prints requests/s and the ratio
# trigger-kafka / Spin for each endpoint. Without a Spin CLI it measures
# trigger-kafka alone and says so.
#   ./scripts/bench-http.sh            # 15 s per endpoint and server
#   BENCH_SECONDS=5 ./scripts/bench-http.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_EACH="${BENCH_SECONDS:-15}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
SECRET="bench-secret"

ensure_cargo
ensure_packages
ensure_wasm_target
ensure_tansu
ensure_spin
if ! command -v wrk >/dev/null 2>&1; then
    step "Installing wrk (HTTP load generator) from Debian"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk
fi
build_components
build_host

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-http.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
    [ -n "${TANSU_PID:-}" ] && kill "$TANSU_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

BROKER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_tansu "$WORK/tansu" "$BROKER_PORT"
"$HOST_BIN" topics apply -t "$ROOT/kafka/topics.toml" --brokers "127.0.0.1:$BROKER_PORT" >/dev/null

APP="$WORK/app"
mkdir -p "$APP"
WASM_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/release"
sed "s#\"target/wasm32-wasip2/release/#\"$WASM_DIR/#" "$ROOT/spin.toml" >"$APP/spin.toml"
cp "$ROOT/runtime-config/local.toml" "$APP/runtime-config.toml"

TOKEN=$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
def token(sub):
    body = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 86400}).encode())
    sig = b64(hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"
print(token("reader"), token("writer"))
PY
)
READER="${TOKEN% *}"
WRITER="${TOKEN#* }"
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"title": "benchmark task", "priority": "high", "tags": ["bench"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $WRITER"
LUA

export SPIN_VARIABLE_KAFKA_BROKERS="127.0.0.1:$BROKER_PORT"
export SPIN_VARIABLE_JWT_SECRET="$SECRET"
export TRIGGER_KAFKA_ADMIN_LISTEN=127.0.0.1:0 TRIGGER_CRON_ADMIN_LISTEN=127.0.0.1:0 TRIGGER_KAFKA_LOG=warn

# wait_port LOG: the port `Serving http://` printed in LOG.
wait_port() {
    for _ in $(seq 1 600); do
        local port
        port=$(sed -nE 's#.*Serving http://127\.0\.0\.1:([0-9]+).*#\1#p' "$1" | head -n1)
        if [ -n "$port" ] && port_open 127.0.0.1 "$port"; then echo "$port"; return; fi
        sleep 0.1
    done
    cat "$1" >&2
    return 1
}

if [ -n "${SPIN_BIN:-}" ]; then
    step "Installing the plugins into a private Spin data directory"
    export SPIN_DATA_DIR="$WORK/spin-data"
    TRIGGER_KAFKA_BIN="$HOST_BIN" PLUGIN_OUT="$WORK/plugins" "$ROOT/kafka/plugin/package.sh" 2>/dev/null
    "$SPIN_BIN" plugins install --file "$WORK/plugins/trigger-kafka.json" --yes >/dev/null
    "$SPIN_BIN" plugins install --file "$WORK/plugins/trigger-cron.json" --yes >/dev/null
fi

declare -A RESULT
run_wrk() { # NAME PORT ARGS...
    local name="$1" port="$2"; shift 2
    local rps
    rps=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "$@" "http://127.0.0.1:$port$PATH_UNDER_TEST" | awk '/Requests\/sec/ {print $2}')
    RESULT["$name"]="$rps"
    note "$(printf '%-28s %10s req/s' "$name" "$rps")"
}

bench_server() { # LABEL PORT
    local label="$1" port="$2"
    PATH_UNDER_TEST=/healthz run_wrk "$label healthz" "$port"
    PATH_UNDER_TEST="/api/tasks?limit=20" run_wrk "$label list-20" "$port" -H "Authorization: Bearer $READER"
    PATH_UNDER_TEST=/api/tasks run_wrk "$label create" "$port" -s "$WORK/post.lua"
}

seed() { # PORT: 82 tasks for the reader, the list endpoint's data
    for i in $(seq 1 82); do
        curl -s -o /dev/null -X POST "http://127.0.0.1:$1/api/tasks" -H "Authorization: Bearer $READER" \
            -H 'Content-Type: application/json' -d "{\"title\": \"task $i\", \"tags\": [\"t$((i % 5))\"]}"
    done
}

SERVERS=(trigger-kafka)
[ -n "${SPIN_BIN:-}" ] && SERVERS=(spin trigger-kafka)
SEEDED=""
for server in "${SERVERS[@]}"; do
    step "Benchmarking under $server (${SECONDS_EACH}s per endpoint, wrk -t2 -c$CONNECTIONS)"
    log="$WORK/$server.log"
    if [ "$server" = spin ]; then
        (cd "$APP" && exec setsid "$SPIN_BIN" up --listen 127.0.0.1:0 --runtime-config-file runtime-config.toml >"$log" 2>&1) &
    else
        (cd "$APP" && exec setsid "$HOST_BIN" up -f spin.toml --listen 127.0.0.1:0 --runtime-config-file runtime-config.toml >"$log" 2>&1) &
    fi
    pid=$!
    PIDS+=("$pid")
    port=$(wait_port "$log")
    [ -n "$SEEDED" ] || { seed "$port"; SEEDED=1; }
    bench_server "$server" "$port"
    kill -INT -- "-$pid" 2>/dev/null || kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
done

step "Results (requests/s; higher is better)"
printf '%-10s %14s %14s %8s\n' endpoint spin trigger-kafka ratio
for endpoint in healthz list-20 create; do
    s="${RESULT["spin $endpoint"]:-}"
    t="${RESULT["trigger-kafka $endpoint"]:-}"
    ratio="-"
    [ -n "$s" ] && [ -n "$t" ] && ratio=$(python3 -c "print(f'{$t/$s:.2f}x')")
    printf '%-10s %14s %14s %8s\n' "$endpoint" "${s:-n/a}" "${t:-n/a}" "$ratio"
done
[ -n "${SPIN_BIN:-}" ] || note "No Spin CLI: only trigger-kafka was measured."
