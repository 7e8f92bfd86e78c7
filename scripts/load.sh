#!/usr/bin/env bash
# Runs the pipeline load generator against a fresh demo server with
# production durability (a demo with --data-dir keeps fsync and
# synchronous_commit on). Usage:
#   scripts/load.sh intake --rate 1000 --duration 20s
#   scripts/load.sh e2e --total 20000 --per-request 100
# Figures go to docs/benchmarks.md with the command that produced them.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/load.sh intake|e2e [greenpoints-load flags]}
shift
go build -o bin/greenpoints ./cmd/greenpoints
go build -o bin/greenpoints-load ./cmd/greenpoints-load
dir=$(mktemp -d /tmp/greenpoints-load.XXXXXX)
chmod 755 "$dir" # PostgreSQL runs as its own user and must reach its data directory
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bin/greenpoints demo --data-dir "$dir/pg" --keys-dir "$dir/keys" --addr "127.0.0.1:$port" --log-level warn >"$dir/out" 2>"$dir/err" &
demo=$!
cleanup() { kill -TERM "$demo" 2>/dev/null || true; wait "$demo" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 600); do
	grep -q '^Database: ' "$dir/out" 2>/dev/null && break
	kill -0 "$demo" 2>/dev/null || { cat "$dir/err" >&2; exit 1; }
	sleep 0.2
done
db=$(sed -n 's/^Database: //p' "$dir/out")
bin/greenpoints-load --mode "$mode" --url "http://127.0.0.1:$port" --keys-dir "$dir/keys" --database-url "$db" "$@"
