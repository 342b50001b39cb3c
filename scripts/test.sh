#!/usr/bin/env bash
# Runs every test: installs and builds, starts real Kafka/Redis/PostgreSQL when needed, runs
# node:test over the compiled unit, integration and end-to-end tests (Chromium, for the browser
# tests, is installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
. scripts/chromium.sh
# promtool (Prometheus' linter, from the Debian package prometheus) checks every process's /metrics.
command -v promtool >/dev/null 2>&1 || apt_install "the /metrics lint (promtool)" prometheus --no-install-recommends
exec node scripts/run-tests.mjs "$@"
