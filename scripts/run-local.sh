#!/usr/bin/env bash
# `make run`: a local smartqueue on loopback with its own redis-server in a temp dir.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${REDIS_PORT:-16379}
API_PORT=${API_PORT:-8091}
workdir=$(mktemp -d -t smartqueue-run.XXXXXX)
pids=()

cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
  echo "smartqueue local stack stopped"
}
trap cleanup INT TERM EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$workdir" \
  --appendonly yes --maxmemory-policy noeviction --save "" --daemonize no \
  >"$workdir/redis.log" 2>&1 &
pids+=($!)

export SMARTQUEUE_REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
export SMARTQUEUE_FLEET="${SMARTQUEUE_FLEET:-deploy/fleet.local.yaml}"
.venv/bin/smartqueue serve --host 127.0.0.1 --port "$API_PORT" &
pids+=($!)

cat <<MSG

smartqueue is starting on loopback:
  API docs   http://127.0.0.1:${API_PORT}/docs
  overview   http://127.0.0.1:${API_PORT}/status
  redis      redis://127.0.0.1:${REDIS_PORT} (data in ${workdir})

Try:
  curl -si -X POST http://127.0.0.1:${API_PORT}/enqueue \\
    -H 'Content-Type: application/json' -H 'X-Syslog-Model: light' \\
    -d '{"messages":[{"role":"user","content":"hello"}],"max_tokens":16}'

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
