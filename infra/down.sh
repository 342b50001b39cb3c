#!/usr/bin/env bash
# Stops the Kafka broker that infra/up.sh started. Redis and PostgreSQL are shared machine
# services and are left running.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/kafka/kafka.sh" stop
