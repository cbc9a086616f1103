# Shared by run.sh and test.sh: install what is missing, build, start tansu.
# Every step is idempotent and says what it is doing.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${TODO_CHATBOT_CACHE:-$HOME/.cache/todo-chatbot}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
TOOLS="$CACHE/tools"
TANSU="$TOOLS/bin/tansu"
TANSU_VERSION="0.6.0"
HOST_BIN="$CARGO_TARGET_DIR/release/trigger-kafka"
WASM_COMPONENTS=(todo-api todo-reminder todo-notifier todo-recurring todo-audit todo-sync kafka-probe kafka-batch-probe kafka-noop kafka-batch-noop cron-probe spin-probe)
WASM_ARGS=()
for c in "${WASM_COMPONENTS[@]}"; do WASM_ARGS+=(-p "$c"); done

step() { printf '\n==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }

ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
}

ensure_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        step "Adding the wasm32-wasip2 Rust target"
        rustup target add wasm32-wasip2
    fi
}

# install_debs PKG...: installs the Debian packages that are missing.
install_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        step "Installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

# C toolchain for librdkafka (bundled) and SQLite (bundled); xz for the
# compressed Spin CLI the tests may find; the sqlite3 shell adds the index
# tansu's storage lacks (kafka/tansu/indexes.sql).
ensure_packages() {
    install_debs gcc g++ make pkg-config zlib1g-dev curl xz-utils sqlite3
}

# PostgreSQL's server binaries, for the private servers the tests start
# (initdb + pg_ctl in a temp dir on a spare port). The package's own
# cluster, a system service on 5432, is not wanted, so it is not created.
ensure_postgres() {
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
        $sudo tee /etc/postgresql-common/createcluster.d/todo-chatbot.conf >/dev/null
    install_debs postgresql
}

# redis-server, for the private servers the tests start (a key-value store
# of type = "redis"). Its package's own service is not wanted: a policy-rc.d
# keeps the install from starting it when this script put the policy there.
ensure_redis() {
    command -v redis-server >/dev/null && return
    local sudo="" policy=/usr/sbin/policy-rc.d placed=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
        placed=1
    fi
    install_debs redis-server
    [ -z "$placed" ] || $sudo rm -f "$policy"
}

# Headless Chromium and its WebDriver, for the console test (tests/console).
ensure_browser() {
    install_debs chromium chromium-driver
}

ensure_tansu() {
    if [ -x "$TANSU" ] && "$TANSU" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
        return
    fi
    step "Installing tansu $TANSU_VERSION (a Kafka-compatible broker) from crates.io; about 6 minutes on 2 cores"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql --root "$TOOLS"
}

build_components() {
    step "Building Wasm components (${WASM_COMPONENTS[*]})"
    (cd "$ROOT" && cargo build --target wasm32-wasip2 --release "${WASM_ARGS[@]}")
    # spin.toml points at ./target, as `spin build` would leave them.
    mkdir -p "$ROOT/target/wasm32-wasip2/release"
    for c in "${WASM_COMPONENTS[@]}"; do
        local file="${c//-/_}.wasm"
        if [ "$CARGO_TARGET_DIR" != "$ROOT/target" ]; then
            cp -f "$CARGO_TARGET_DIR/wasm32-wasip2/release/$file" "$ROOT/target/wasm32-wasip2/release/$file"
        fi
    done
}

# One feature selection for every native build (run, test, bench): the
# whole workspace with the domain's native store. Building `-p
# trigger-kafka` alone unifies features differently and compiles Wasmtime
# a second time (about three minutes on 2 cores).
NATIVE_SELECTION=(--release --workspace --features todo-domain/native)

build_host() {
    step "Building the trigger-kafka host (release)"
    (cd "$ROOT" && cargo build "${NATIVE_SELECTION[@]}" --bin trigger-kafka)
}

# A virtualenv with the Python tools the tests run: the manifest checker's
# dependencies (deploy/tests), the official MCP SDK and Schemathesis
# (tests/contract), OpenTelemetry's protobuf messages (tests/traces),
# pinned so a run is repeatable.
VENV="$CACHE/venv"
PYTHON_TOOLS=(kubernetes-validate pyyaml "mcp==2.3.0" "schemathesis==4.32.5" "opentelemetry-proto==1.45.2" "selenium==4.51.0")
ensure_python_tools() {
    if [ ! -x "$VENV/bin/python" ]; then
        step "Creating a Python virtualenv for the test tools"
        python3 -m venv "$VENV" 2>/dev/null || {
            install_debs python3-venv
            python3 -m venv "$VENV"
        }
    fi
    if ! "$VENV/bin/python" -c "import kubernetes_validate, yaml, mcp, schemathesis, opentelemetry.proto, selenium" 2>/dev/null \
        || ! "$VENV/bin/pip" show mcp schemathesis 2>/dev/null | grep -qx "Version: 2.3.0"; then
        step "Installing ${PYTHON_TOOLS[*]} from PyPI"
        "$VENV/bin/pip" install -q "${PYTHON_TOOLS[@]}"
    fi
    export TODO_VENV="$VENV"
}

# The Spin CLI for the Spin-mode tests: `spin` on PATH, else the compressed
# Spin 3.6.3 kept beside the repository on development machines and in CI
# (../shared/tools), unpacked once into the cache. Sets SPIN_BIN, or says
# why the Spin-mode tests will be skipped.
SPIN_XZ="$ROOT/../shared/tools/spin-3.6.3-linux-amd64.xz"
ensure_spin() {
    if [ -n "${SPIN_BIN:-}" ] && [ -x "$SPIN_BIN" ]; then
        return
    fi
    if command -v spin >/dev/null 2>&1; then
        SPIN_BIN="$(command -v spin)"
    elif [ -f "$SPIN_XZ" ]; then
        SPIN_BIN="$TOOLS/spin-3.6.3"
        if ! "$SPIN_BIN" --version >/dev/null 2>&1; then
            step "Unpacking Spin 3.6.3 from $SPIN_XZ"
            mkdir -p "$TOOLS"
            xz -dc "$SPIN_XZ" >"$SPIN_BIN.partial" && chmod +x "$SPIN_BIN.partial" && mv "$SPIN_BIN.partial" "$SPIN_BIN"
        fi
    else
        note "No Spin CLI (no \`spin\` on PATH, no $SPIN_XZ): the Spin-mode tests will be skipped."
        unset SPIN_BIN
        return
    fi
    export SPIN_BIN
    note "Spin-mode tests use $("$SPIN_BIN" --version) at $SPIN_BIN"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# pid_listens PID PORT: process PID itself listens on TCP PORT (from
# /proc/net/tcp{,6}: local address hex:HEXPORT, state 0A = LISTEN, inode).
# A connect() cannot tell: another process on the port answers it too.
pid_listens() {
    local hex inode
    hex="$(printf '%04X' "$2")"
    for inode in $(awk -v port=":$hex" 'substr($2, length($2) - 4) == port && $4 == "0A" { print $10 }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
        ls -l "/proc/$1/fd" 2>/dev/null | grep -qF "socket:[$inode]" && return 0
    done
    return 1
}

# start_postgres DIR PORT: a private PostgreSQL (Debian's binaries) with its
# data in DIR, on 127.0.0.1:PORT, user `todo` trusted on loopback only; no
# system service. As root the server runs as the package's `postgres`
# user (Postgres refuses root). Sets POSTGRES_URL.
start_postgres() {
    local dir="$1" port="$2" bin as=()
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "$dir"
        as=(runuser -u postgres --)
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        step "Creating a Postgres cluster in $dir/data"
        "${as[@]}" "$bin/initdb" -D "$dir/data" -U todo --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; return 1; }
    fi
    step "Starting Postgres on 127.0.0.1:$port (data $dir/data)"
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null ||
        { cat "$dir/server.log" >&2; return 1; }
    POSTGRES_STOP=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop)
    POSTGRES_URL="postgres://todo@127.0.0.1:$port/postgres"
}

# start_tansu DIR PORT: a broker with persistent SQLite storage in DIR.
start_tansu() {
    local dir="$1" port="$2"
    mkdir -p "$dir"
    # Another process on the port (a broker, a second run.sh) would make
    # tansu exit at once: say so plainly.
    if port_open 127.0.0.1 "$port"; then
        echo "port $port is taken by another process: choose another with KAFKA_PORT=..., or use the broker there with KAFKA_BROKERS=127.0.0.1:$port" >&2
        return 1
    fi
    step "Starting tansu on 127.0.0.1:$port (storage $dir/tansu.db)"
    # tansu wants a relative sqlite:// path, so it runs inside DIR; its own
    # session keeps Ctrl-C away from it until the app has stopped.
    (cd "$dir" && exec setsid "$TANSU" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://tansu.db" >"$dir/tansu.log" 2>&1) &
    TANSU_PID=$!
    for _ in $(seq 1 100); do
        if ! kill -0 "$TANSU_PID" 2>/dev/null; then
            echo "tansu exited; its log ($dir/tansu.log):" >&2
            cat "$dir/tansu.log" >&2
            return 1
        fi
        # tansu may listen a moment before it has created its tables.
        if pid_listens "$TANSU_PID" "$port" && [ -f "$dir/tansu.db" ] &&
            [ "$(sqlite3 -cmd ".timeout 10000" "$dir/tansu.db" \
                "select count(*) from sqlite_master where type = 'table' and name = 'header'")" = 1 ]; then
            sqlite3 -cmd ".timeout 10000" "$dir/tansu.db" <"$ROOT/kafka/tansu/indexes.sql"
            return 0
        fi
        sleep 0.1
    done
    echo "tansu did not start; see $dir/tansu.log" >&2
    return 1
}
