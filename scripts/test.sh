#!/usr/bin/env bash
# Runs every test: installs and builds, starts real Kafka/Redis/PostgreSQL when needed, runs
# node:test over the compiled unit, integration and end-to-end tests (Chromium, for the browser
# tests, is installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
. scripts/chromium.sh
# promtool (Prometheus' linter, from the Debian package prometheus) checks every process's /metrics.
if ! command -v promtool >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] ||
    die "promtool not found: install Prometheus' promtool (Debian/Ubuntu: apt-get install prometheus)"
  say "installing promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; }; } ||
    die "apt-get install prometheus failed: install promtool by hand"
fi
exec node scripts/run-tests.mjs "$@"
