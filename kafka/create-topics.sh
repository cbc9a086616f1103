#!/usr/bin/env bash
# Creates the topics of topics.toml with Redpanda's rpk (used by the compose
# file and the Kubernetes Job; trigger-kafka has `topics apply` for the same
# job). Existing topics are left alone. Usage: create-topics.sh FILE BROKERS
set -euo pipefail
file="${1:-topics.toml}"
brokers="${2:-localhost:9092}"

create() {
    local name="$1" partitions="$2" retention="$3" out
    if out=$(rpk topic create "$name" -p "$partitions" -c "retention.ms=$retention" -X "brokers=$brokers" 2>&1); then
        echo "created topic $name"
    elif grep -qi "already exists" <<<"$out"; then
        echo "topic $name exists"
    else
        echo "$out" >&2
        return 1
    fi
}

name="" partitions="" retention=""
flush() {
    if [ -n "$name" ]; then create "$name" "$partitions" "$retention"; fi
    name="" partitions="" retention=""
}
while IFS= read -r line; do
    line="${line%%#*}"
    case "$line" in
        *"[[topic]]"*) flush ;;
        *name*=*) name=$(sed -E 's/.*=[[:space:]]*"([^"]+)".*/\1/' <<<"$line") ;;
        *partitions*=*) partitions=$(sed -E 's/.*=[[:space:]]*([0-9]+).*/\1/' <<<"$line") ;;
        *retention_ms*=*) retention=$(sed -E 's/.*=[[:space:]]*([0-9]+).*/\1/' <<<"$line") ;;
    esac
done <"$file"
flush
