#!/usr/bin/env bash
# The local stack behind `make run` / `make stop`: PostgreSQL, Kafka, topics and
# the three daemons, all on 127.0.0.1, state under $VETPMS_VAR_DIR (var/), logs
# in var/log/, pid files in var/run/. Stops only what its pid files name.
#   stack.sh start | stop | status | env
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUN_DIR="$VAR_DIR/run"
LOG_DIR="$VAR_DIR/log"
DAEMONS=(projector query-reader cmd-writer)

# The master key's file (docs/privacy.md): VETPMS_MASTER_KEY_FILE if given,
# else a dev key made once under var/secrets/ (32 random bytes, base64url).
# With VETPMS_MASTER_KEY set instead, no file is named.
master_key_file() {
  if [ -n "${VETPMS_MASTER_KEY_FILE:-}" ]; then printf '%s' "$VETPMS_MASTER_KEY_FILE"; return; fi
  [ -n "${VETPMS_MASTER_KEY:-}" ] && return
  local file="$VAR_DIR/secrets/master_key"
  if [ ! -s "$file" ]; then
    mkdir -p "$VAR_DIR/secrets" && chmod 700 "$VAR_DIR/secrets"
    (umask 077; head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$file")
  fi
  printf '%s' "$file"
}

# The environment the daemons and vetctl read (printed by `stack.sh env`).
daemon_env() {
  local jwt pj rd
  jwt=$(secret jwt_hs256_secret "${VETPMS_JWT_HS256_SECRET:-}")
  pj=$(secret pg_projector_password "${VETPMS_PG_PROJECTOR_PASSWORD:-}")
  rd=$(secret pg_reader_password "${VETPMS_PG_READER_PASSWORD:-}")
  cat <<ENV
VETPMS_KAFKA_BROKERS=$KAFKA_BROKERS
VETPMS_WRITER_PORT=$WRITER_PORT
VETPMS_READER_PORT=$READER_PORT
VETPMS_PROJECTOR_PORT=$PROJECTOR_PORT
VETPMS_PARTITIONS=$PARTITIONS
VETPMS_JWT_HS256_SECRET=$jwt
VETPMS_MASTER_KEY_FILE=$(master_key_file)
VETPMS_PROJECTOR_DSN=host=127.0.0.1 port=$PG_PORT dbname=vetpms user=vetpms_projector password=$pj
VETPMS_READER_DSN=host=127.0.0.1 port=$PG_PORT dbname=vetpms user=vetpms_reader password=$rd
ENV
}

wait_http() {
  local url=$1 name=$2 deadline=$(( $(date +%s) + 60 ))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    pid_alive "$RUN_DIR/$name.pid" || { tail -20 "$LOG_DIR/$name.log" >&2; die "$name exited"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "$name: $url not answering after 60s"
    sleep 0.2
  done
}

start_daemon() {
  local name=$1 port=$2
  if pid_alive "$RUN_DIR/$name.pid"; then log "$name: already running"; return 0; fi
  [ -x "$BIN_DIR/$name" ] || die "$BIN_DIR/$name missing: run make first"
  (
    while IFS='=' read -r key value; do export "$key=$value"; done < <(daemon_env)
    cd "$ROOT"
    setsid "$BIN_DIR/$name" >> "$LOG_DIR/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN_DIR/$name.pid"
  )
  wait_http "http://127.0.0.1:$port/healthz" "$name"
  log "$name: up on 127.0.0.1:$port (log $LOG_DIR/$name.log)"
}

tokens() {
  local tenant=$1 role jwt
  jwt=$(secret jwt_hs256_secret "${VETPMS_JWT_HS256_SECRET:-}")
  echo "Dev tokens (HS256, 24 h; demo clinic = tenant $tenant):"
  printf '  %-15s %s\n' platform-admin \
    "$(VETPMS_JWT_HS256_SECRET=$jwt "$BIN_DIR/vetctl" token --role platform-admin --sub dev-platform)"
  for role in admin vet nurse reception analyst ops; do
    printf '  %-15s %s\n' "$role" \
      "$(VETPMS_JWT_HS256_SECRET=$jwt "$BIN_DIR/vetctl" token --role "$role" --tenant "$tenant" --sub "dev-$role")"
  done
  # admin and vet: every panel of the dashboard page (docs/dashboard.md)
  printf '  %-15s %s\n' "admin,vet" \
    "$(VETPMS_JWT_HS256_SECRET=$jwt "$BIN_DIR/vetctl" token --role admin,vet --tenant "$tenant" --sub dev-dashboard)"
}

start() {
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  "$ROOT/scripts/pg.sh" start
  "$ROOT/scripts/kafka.sh" start
  "$BIN_DIR/vetctl" topics create --brokers "$KAFKA_BROKERS" --partitions "$PARTITIONS" >&2
  start_daemon projector "$PROJECTOR_PORT"
  start_daemon query-reader "$READER_PORT"
  start_daemon cmd-writer "$WRITER_PORT"
  wait_http "http://127.0.0.1:$WRITER_PORT/readyz" cmd-writer
  local tenant
  tenant=$("$ROOT/scripts/demo.sh")
  cat <<MSG

VetPMS is running.
  cmd-writer    http://127.0.0.1:$WRITER_PORT   (commands)
  query-reader  http://127.0.0.1:$READER_PORT   (queries)
  projector     http://127.0.0.1:$PROJECTOR_PORT   (health, metrics)
  dashboard     http://127.0.0.1:$READER_PORT/app/   (sign in with the admin,vet token below)
  Kafka         $KAFKA_BROKERS      PostgreSQL  127.0.0.1:$PG_PORT (database vetpms)
  logs          $LOG_DIR/
Try:  curl -s http://127.0.0.1:$WRITER_PORT/healthz
Stop: make stop

MSG
  tokens "$tenant"
}

stop() {
  for name in cmd-writer query-reader projector; do
    [ -s "$RUN_DIR/$name.pid" ] && { stop_pid "$RUN_DIR/$name.pid" 20; log "$name: stopped"; }
  done
  "$ROOT/scripts/kafka.sh" stop
  "$ROOT/scripts/pg.sh" stop
}

status() {
  for name in "${DAEMONS[@]}"; do
    if pid_alive "$RUN_DIR/$name.pid"; then echo "$name running (pid $(cat "$RUN_DIR/$name.pid"))"; else echo "$name stopped"; fi
  done
  if pid_alive "$VAR_DIR/kafka/kafka.pid"; then echo "kafka running"; else echo "kafka stopped"; fi
}

# Blue/green rebuild of the read model beside the running stack: projects the
# whole log into read_next, swaps it in, exits (projector/rebuild.c).
rebuild() {
  (
    while IFS='=' read -r key value; do export "$key=$value"; done < <(daemon_env)
    exec "$BIN_DIR/projector" rebuild --port 0
  )
}

case "${1:-}" in
  start) start ;;
  rebuild) rebuild ;;
  stop) stop ;;
  status) status ;;
  env) daemon_env ;;
  *) echo "usage: $0 start|stop|status|env|rebuild" >&2; exit 2 ;;
esac
