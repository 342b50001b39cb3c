#!/usr/bin/env bash
# A real Apache Kafka broker (one combined broker/controller in KRaft mode) without Docker.
#   infra/kafka/kafka.sh start    resolve the jars (first time only), format storage, start, wait
#   infra/kafka/kafka.sh stop     stop the broker this script started
#   infra/kafka/kafka.sh status   exit 0 when a broker answers on the client port
# Env: RIPPLE_HOME (cache, default ~/.cache/ripple), KAFKA_DATA_DIR, KAFKA_PORT (9092),
#      KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP (512m).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
LIBS="$RIPPLE_HOME/kafka-$KAFKA_VERSION/libs"
DATA="${KAFKA_DATA_DIR:-$RIPPLE_HOME/kafka-data}"
PIDFILE="$DATA/kafka.pid"
HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"

require_java() {
  command -v java >/dev/null 2>&1 ||
    die "java not found: Kafka needs a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless), or use Docker: docker compose up"
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = \([0-9]*\).*/\1/p')
  [ "${major:-0}" -ge 17 ] || die "Kafka $KAFKA_VERSION needs Java 17 or newer; found Java ${major:-unknown}"
}

resolve() {
  if [ -f "$LIBS/.complete" ] && cmp -s "$here/pom.xml" "$LIBS/.pom"; then return 0; fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found: Maven resolves the Kafka jars from Maven Central (Debian: apt-get install maven), or use Docker: docker compose up"
  say "resolving Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS (first run only)"
  rm -rf "$LIBS.tmp"
  mvn -q -B -f "$here/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" ||
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is Maven Central reachable?)"
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  cp "$here/pom.xml" "$LIBS/.pom"
  touch "$LIBS/.complete"
}

write_config() {
  mkdir -p "$DATA/log" "$DATA/logs"
  cat >"$DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/log
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
PROPS
}

java_cmd() {
  java -Xms128m -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -Dkafka.logs.dir="$DATA/logs" \
    -cp "$LIBS/*" "$@"
}

format_storage() {
  [ -f "$DATA/cluster.id" ] || java_cmd kafka.tools.StorageTool random-uuid >"$DATA/cluster.id"
  java_cmd kafka.tools.StorageTool format -t "$(cat "$DATA/cluster.id")" -c "$DATA/server.properties" \
    --standalone --ignore-formatted >"$DATA/logs/format.log" 2>&1 ||
    die "formatting KRaft storage failed; see $DATA/logs/format.log"
}

broker_ready() {
  port_open "$HOST" "$PORT" && grep -q 'Kafka Server started' "$DATA/logs/server.log" 2>/dev/null
}

start() {
  if port_open "$HOST" "$PORT"; then
    say "Kafka already answers on $HOST:$PORT; nothing to do"
    return 0
  fi
  require_java
  resolve
  write_config
  format_storage
  : >"$DATA/logs/server.log"
  say "starting Kafka $KAFKA_VERSION on $HOST:$PORT (data: $DATA)"
  setsid nohup bash -c "$(declare -f java_cmd); here='$here' DATA='$DATA' LIBS='$LIBS' KAFKA_HEAP='${KAFKA_HEAP:-512m}'; java_cmd kafka.Kafka '$DATA/server.properties'" \
    >"$DATA/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_for 90 "Kafka on $HOST:$PORT" broker_ready; then
    tail -n 30 "$DATA/logs/server.log" "$DATA/logs/stdout.log" >&2 || true
    die "Kafka did not start within 90s; logs above and in $DATA/logs"
  fi
}

# session_alive SID: true while a process of the broker's session (the wrapper shell started with
# setsid, and the JVM it runs) is alive; a zombie waiting to be reaped does not count.
session_alive() {
  ps -o stat= --sid "$1" 2>/dev/null | grep -qv '^Z'
}

stop() {
  if [ ! -f "$PIDFILE" ]; then
    say "no broker started by this script (no $PIDFILE)"
    return 0
  fi
  local pid
  pid=$(cat "$PIDFILE")
  # Waits for the JVM, not only the wrapper shell: SIGTERM ends the shell at once while the JVM
  # shuts down for seconds more (tens on a loaded machine), still writing its checkpoints and logs
  # in $DATA; whoever deletes $DATA after `stop` then raced it (ENOTEMPTY).
  if session_alive "$pid"; then
    say "stopping Kafka (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while session_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    if session_alive "$pid"; then
      say "Kafka (pid $pid) still running after 30s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      wait_for 10 "Kafka (pid $pid) gone" bash -c "! (ps -o stat= --sid $pid | grep -qv '^Z')" >/dev/null ||
        die "Kafka (pid $pid) survived SIGKILL"
    fi
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) port_open "$HOST" "$PORT" ;;
resolve) resolve ;;
*) die "usage: $0 start|stop|status|resolve" ;;
esac
