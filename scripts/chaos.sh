#!/usr/bin/env bash
# The chaos suite (tests/e2e/src/chaos): installs and builds, makes sure PostgreSQL runs and the
# Kafka jars are there (infra/up.sh), then runs every scenario on a private Kafka broker, Redis and
# PostgreSQL.
# Prints a table and a final JSON line; exits non-zero when a scenario missed a goal.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bootstrap.sh
bash infra/up.sh --no-migrate >&2
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
exec node tests/e2e/dist/chaos/main.js
