#!/usr/bin/env bash
# Runs the benchmarks (scripts that print figures; not tests) against real infrastructure:
#   bash scripts/bench.sh [outbox] [gateway] [tracing] [peers] [http] [feed] [e2e] [logger]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
bash infra/up.sh --no-migrate
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}" DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(outbox gateway tracing peers http feed e2e logger)
for bench in "${benches[@]}"; do
  case "$bench" in
  outbox) node libs/outbox/dist/bench.js ;;
  gateway) node tests/e2e/dist/bench-gateway.js ;;
  tracing) node tests/e2e/dist/bench-tracing.js ;;
  http) node tests/e2e/dist/bench-http.js ;;
  feed) node tests/e2e/dist/bench-feed.js ;;
  e2e) node tests/e2e/dist/bench-e2e.js ;;
  peers) node bench/peers/dist/main.js ;;
  logger) node libs/telemetry/dist/bench-logger.js ;;
  *) die "unknown benchmark '$bench' (known: outbox, gateway, tracing, peers, http, feed, e2e, logger)" ;;
  esac
done
