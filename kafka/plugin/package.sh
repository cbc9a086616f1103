#!/usr/bin/env bash
# Packages trigger-kafka as a Spin plugin: a tarball and a plugin manifest
# that `spin plugins install --file` accepts. Also writes a `trigger-cron`
# plugin (the same binary) for hosts without Spin's own cron plugin.
#   ./kafka/plugin/package.sh && spin plugins install --file target/plugin/trigger-kafka.json --yes
# TRIGGER_KAFKA_BIN packages an already-built binary (no cargo build);
# PLUGIN_OUT chooses the output directory (default target/plugin).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/todo-chatbot/target}"
OUT="${PLUGIN_OUT:-$ROOT/target/plugin}"
VERSION="$(sed -nE 's/^version = "([^"]+)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"

case "$(uname -s)" in Linux) os=linux ;; Darwin) os=macos ;; *) echo "unsupported OS" >&2; exit 1 ;; esac
case "$(uname -m)" in x86_64|amd64) arch=amd64 ;; aarch64|arm64) arch=aarch64 ;; *) echo "unsupported arch" >&2; exit 1 ;; esac

BIN="${TRIGGER_KAFKA_BIN:-}"
if [ -z "$BIN" ]; then
    echo "==> building trigger-kafka (release)" >&2
    # The same feature selection as the test and run builds, so Wasmtime
    # is compiled once (see scripts/lib.sh).
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release --workspace --features todo-domain/native --bin trigger-kafka)
    BIN="$TARGET/release/trigger-kafka"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

package() {
    local name="$1" description="$2" stage
    stage="$(mktemp -d)"
    cp "$BIN" "$stage/$name"
    tar -C "$stage" -czf "$OUT/$name-$VERSION-$os-$arch.tar.gz" "$name"
    rm -rf "$stage"
    local sha
    sha="$(sha256sum "$OUT/$name-$VERSION-$os-$arch.tar.gz" | cut -d' ' -f1)"
    cat >"$OUT/$name.json" <<JSON
{
  "name": "$name",
  "description": "$description",
  "version": "$VERSION",
  "spinCompatibility": ">=3.0",
  "license": "Apache-2.0",
  "packages": [
    {
      "os": "$os",
      "arch": "$arch",
      "url": "file://$OUT/$name-$VERSION-$os-$arch.tar.gz",
      "sha256": "$sha"
    }
  ]
}
JSON
    echo "wrote $OUT/$name.json" >&2
}

package trigger-kafka "Kafka trigger for Spin: consumer groups, retries, dead-letter topics and a transactional-outbox relay"
package trigger-cron "Timer trigger for Spin (cron expressions with seconds), from trigger-kafka"
