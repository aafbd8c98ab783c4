#!/usr/bin/env bash
# Apache Kafka 3.9 for the local stack and the tests: one KRaft node (broker and
# controller in one JVM) on 127.0.0.1, data under $VETPMS_VAR_DIR/kafka.
#   kafka.sh fetch   jars from Maven Central into .cache/kafka/libs (once)
#   kafka.sh start   format the storage if new, start, wait until a metadata
#                    request is answered
#   kafka.sh stop    clean shutdown (by pid file)
#   kafka.sh launch  start without waiting (a node of a cluster cannot be ready
#                    before a quorum of its controllers runs)
#   kafka.sh wait    wait until the node answers a metadata request
#
# One node of a replicated cluster (the e2e suite's tests/e2e/replicated_kafka.py
# starts three): the same script with, per node,
#   VETPMS_KAFKA_DIR              data, config, log and pid file (default $VAR_DIR/kafka)
#   VETPMS_KAFKA_NODE_ID          node.id (default 1)
#   VETPMS_KAFKA_QUORUM_VOTERS    controller.quorum.voters (default: this node alone)
#   VETPMS_KAFKA_CLUSTER_ID       the cluster id the storage is formatted with
#                                 (default: a random one; every node needs the same)
#   VETPMS_KAFKA_REPLICATION      default and internal topics' replication factor (1)
#   VETPMS_KAFKA_MIN_ISR          min.insync.replicas, also of the transaction log (1)
# And for a test that needs a broker setting of its own:
#   VETPMS_KAFKA_EXTRA_CONFIG     lines added to server.properties as they are
# Unset, they give exactly the single node above.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

LIBS="$CACHE_DIR/kafka/libs"
DIR=${VETPMS_KAFKA_DIR:-$VAR_DIR/kafka}
PID_FILE="$DIR/kafka.pid"
HEAP=${VETPMS_KAFKA_HEAP:-512m}
READY_TIMEOUT=${VETPMS_KAFKA_READY_TIMEOUT:-120}
NODE_ID=${VETPMS_KAFKA_NODE_ID:-1}
QUORUM_VOTERS=${VETPMS_KAFKA_QUORUM_VOTERS:-$NODE_ID@127.0.0.1:$KAFKA_CONTROLLER_PORT}
REPLICATION=${VETPMS_KAFKA_REPLICATION:-1}
MIN_ISR=${VETPMS_KAFKA_MIN_ISR:-1}

fetch() {
  [ -f "$LIBS/kafka_2.13-3.9.1.jar" ] && return 0
  log "kafka: fetching Apache Kafka 3.9.1 jars with maven"
  mkdir -p "$LIBS.tmp"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" \
    -Dmaven.repo.local="$CACHE_DIR/m2" >&2
  rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS"
}

write_config() {
  local flush=""
  # Kafka leaves fsync to the OS by default; this switch makes every append
  # durable on a single node at a measured cost (see docs/operations.md).
  [ "${VETPMS_KAFKA_FSYNC:-0}" = "1" ] && flush="log.flush.interval.messages=1"
  cat > "$DIR/server.properties" <<CONF
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$QUORUM_VOTERS
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
auto.create.topics.enable=false
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$REPLICATION
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=-1
$flush
${VETPMS_KAFKA_EXTRA_CONFIG:-}
CONF
  cat > "$DIR/log4j.properties" <<CONF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
CONF
}

# The classpath wildcard is Java's, not the shell's: keep it quoted.
java_cmd() {
  JAVA=(java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true -Dlog4j.configuration="file:$DIR/log4j.properties"
    -cp "$LIBS/*")
}

# Starts the node in the background; sets STARTED (for wait_ready's message).
launch() {
  fetch
  mkdir -p "$DIR"
  if pid_alive "$PID_FILE"; then log "kafka: already running (pid $(cat "$PID_FILE"))"; return 0; fi
  write_config
  if [ ! -f "$DIR/data/meta.properties" ]; then
    # A cluster id is 16 random bytes in url-safe base64 without padding.
    local cluster_id=${VETPMS_KAFKA_CLUSTER_ID:--}
    # (one starting with '-' would read as an option to StorageTool: draw again)
    while [ "${cluster_id#-}" != "$cluster_id" ]; do
      cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    java_cmd
    "${JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$DIR/server.properties" > "$DIR/format.log" 2>&1 \
      || { cat "$DIR/format.log" >&2; die "kafka: storage format failed"; }
  fi
  STARTED=$(date +%s.%N)
  java_cmd
  setsid "${JAVA[@]}" kafka.Kafka "$DIR/server.properties" >> "$DIR/kafka.log" 2>&1 < /dev/null &
  echo $! > "$PID_FILE"
}

start() {
  STARTED=
  launch
  [ -z "$STARTED" ] || wait_ready "$STARTED"
}

# Does the node's client listener take a TCP connection? (bash's /dev/tcp)
listening() { (: <>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }

# Ready = a metadata request answered by the broker (vetctl, librdkafka).
# The listener opens only once the broker has registered with its
# controller; until then a metadata request can only wait out its 1 s
# timeout, so readiness was seen up to 1.3 s late. A connection is tried
# every 0.1 s first.
wait_ready() {
  local started=$1 deadline=$(( $(date +%s) + READY_TIMEOUT ))
  while :; do
    pid_alive "$PID_FILE" || { tail -30 "$DIR/kafka.log" >&2; die "kafka: exited during start"; }
    if listening; then
      if "$BIN_DIR/vetctl" kafka ready --brokers "$KAFKA_BROKERS" --timeout-ms 1000 >/dev/null 2>&1; then
        log "kafka: ready on $KAFKA_BROKERS in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
        return 0
      fi
      sleep 0.3
    else
      sleep 0.1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { tail -30 "$DIR/kafka.log" >&2; die "kafka: not ready after ${READY_TIMEOUT}s"; }
  done
}

stop() { stop_pid "$PID_FILE" 60; }

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  launch) launch ;;
  wait) wait_ready "$(date +%s.%N)" ;;
  *) echo "usage: $0 fetch|start|stop|launch|wait" >&2; exit 2 ;;
esac
