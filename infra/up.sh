#!/usr/bin/env bash
# Brings up the real infrastructure on this machine without Docker, and is harmless to re-run:
#   Kafka (from Maven Central jars, KRaft), Redis and PostgreSQL (started from local binaries when
#   they are installed but not running), then each service's database and migrations.
# Usage: infra/up.sh [--no-migrate]   (migrations need a built repo: pnpm build)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
PG_HOST="${PGHOST:-127.0.0.1}"
PG_PORT="${PGPORT:-5432}"

ensure_redis() {
  local host port
  host=$(url_host "$REDIS_URL")
  port=$(url_port "$REDIS_URL" 6379)
  if port_open "$host" "$port"; then
    say "Redis answers on $host:$port"
    return 0
  fi
  command -v redis-server >/dev/null 2>&1 ||
    die "Redis is not running on $host:$port and redis-server is not installed (Debian: apt-get install redis-server)"
  mkdir -p "$RIPPLE_HOME/redis"
  say "starting redis-server on $host:$port"
  redis-server --daemonize yes --bind "$host" --port "$port" --save '' --appendonly no \
    --dir "$RIPPLE_HOME/redis" --logfile "$RIPPLE_HOME/redis/redis.log" >/dev/null
  wait_for 20 "Redis on $host:$port" port_open "$host" "$port" || die "redis-server did not start; see $RIPPLE_HOME/redis/redis.log"
}

ensure_postgres() {
  if port_open "$PG_HOST" "$PG_PORT"; then
    say "PostgreSQL answers on $PG_HOST:$PG_PORT"
    return 0
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting PostgreSQL $version cluster 'main'"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
      die "pg_ctlcluster could not start PostgreSQL $version"
  else
    die "PostgreSQL is not running on $PG_HOST:$PG_PORT and no local cluster was found (Debian: apt-get install postgresql)"
  fi
  wait_for 30 "PostgreSQL on $PG_HOST:$PG_PORT" port_open "$PG_HOST" "$PG_PORT" || die "PostgreSQL did not start"
}

migrate() {
  local root=$here/..
  [ -f "$root/libs/db/dist/cli.js" ] || die "the repo is not built: run 'pnpm install && pnpm build' first"
  node "$root/libs/db/dist/cli.js" --url "${POST_SERVICE_DATABASE_URL:-postgresql://postgres@$PG_HOST:$PG_PORT/post_service}" \
    --migrations "$root/services/post-service/prisma/migrations"
  node "$root/libs/db/dist/cli.js" --url "${CHAT_SERVICE_DATABASE_URL:-postgresql://postgres@$PG_HOST:$PG_PORT/chat_service}" \
    --migrations "$root/services/chat-service/prisma/migrations"
  node "$root/libs/db/dist/cli.js" --url "${NOTIFICATION_SERVICE_DATABASE_URL:-postgresql://postgres@$PG_HOST:$PG_PORT/notification_service}" \
    --migrations "$root/services/notification-service/prisma/migrations"
}

ensure_redis
ensure_postgres
bash "$here/kafka/kafka.sh" start
[ "${1:-}" = "--no-migrate" ] || migrate
