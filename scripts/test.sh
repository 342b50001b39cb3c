#!/usr/bin/env bash
# Runs every test: installs and builds, starts real Kafka/Redis/PostgreSQL when needed, runs
# node:test over the compiled unit, integration and end-to-end tests (Chromium, for the browser
# tests, is installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
. scripts/chromium.sh
exec node scripts/run-tests.mjs "$@"
