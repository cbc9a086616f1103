#!/usr/bin/env bash
# The test command: installs what it needs, builds every component and the
# host, checks formatting and lints, then runs all tests (unit, API,
# end-to-end through the real host, tansu broker and SQLite files).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_cargo
ensure_packages
ensure_wasm_target
ensure_tansu
ensure_python_tools
ensure_browser
ensure_postgres
ensure_redis
ensure_spin
build_components

step "Checking formatting"
(cd "$ROOT" && cargo fmt --all -- --check)

step "Linting (clippy, warnings are errors)"
(cd "$ROOT" && cargo clippy --release --workspace --all-targets --features todo-domain/native -- -D warnings)
(cd "$ROOT" && cargo clippy --release --target wasm32-wasip2 "${WASM_ARGS[@]}" -p trigger-kafka-sdk -- -D warnings)

# The tests build trigger-kafka themselves (CARGO_BIN_EXE), with the same
# features as the test build: building it separately would compile Wasmtime twice.
step "Running the tests"
export TANSU_BIN="$TANSU"
export TODO_WASM_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/release"
# Every suite runs even when one fails, so a CI log shows all failures.
(cd "$ROOT" && cargo test "${NATIVE_SELECTION[@]}" --no-fail-fast)

step "Checking the SpinKube manifests offline (deploy/)"
"$VENV/bin/python" "$ROOT/deploy/tests/check_manifests.py"
