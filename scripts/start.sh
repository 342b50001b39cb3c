#!/usr/bin/env bash
# Starts the whole platform on this machine: installs and builds, brings up Kafka (from Maven
# jars), Redis and PostgreSQL, applies migrations, then runs post-service, chat-service,
# notification-service, the fanout gateway and the demo web app until Ctrl-C (which stops them all).
# Logs: .cache/logs/<service>.log
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
bash infra/up.sh

mkdir -p .cache/logs
pids=()
stop_all() {
  trap - INT TERM EXIT
  say "stopping services"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

start_service() {
  local name=$1 port=$2
  node "services/$name/dist/main.js" >".cache/logs/$name.log" 2>&1 &
  pids+=($!)
  local deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    if ! kill -0 "${pids[-1]}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      tail -n 20 ".cache/logs/$name.log" >&2
      die "$name did not become ready on :$port (log: .cache/logs/$name.log)"
    fi
    sleep 0.3
  done
  say "$name ready on :$port"
}

start_service fanout-gateway 8080
start_service post-service 3001
start_service chat-service 3002
start_service notification-service 3003
start_service demo 8090

cat <<TXT

Ripple is running.
  demo app    http://127.0.0.1:8090   (pick a user; live feed, notifications, chat)
  WebSocket   ws://127.0.0.1:8080/ws?access_token=<jwt>
  posts       http://127.0.0.1:3001   chat http://127.0.0.1:3002   notifications http://127.0.0.1:3003
  API docs    /docs on each of those (OpenAPI)
  health      /healthz, /readyz and /metrics on every port above
  a token     pnpm token --user u42
  logs        .cache/logs/
Press Ctrl-C to stop.
TXT
wait -n "${pids[@]}" || true
die "a service exited; see .cache/logs/"
