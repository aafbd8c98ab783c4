# Shared shell helpers for the stack scripts (sourced, not run).
# Every path and port comes from VETPMS_* variables with the defaults below.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR_DIR=${VETPMS_VAR_DIR:-$ROOT/var}
BIN_DIR=${VETPMS_BIN_DIR:-$ROOT/bin}
CACHE_DIR=${VETPMS_CACHE_DIR:-$ROOT/.cache}

PG_PORT=${VETPMS_PG_PORT:-55432}
KAFKA_PORT=${VETPMS_KAFKA_PORT:-59092}
KAFKA_CONTROLLER_PORT=${VETPMS_KAFKA_CONTROLLER_PORT:-59093}
KAFKA_BROKERS=${VETPMS_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}
WRITER_PORT=${VETPMS_WRITER_PORT:-8080}
READER_PORT=${VETPMS_READER_PORT:-8081}
PROJECTOR_PORT=${VETPMS_PROJECTOR_PORT:-8082}
PARTITIONS=${VETPMS_PARTITIONS:-6}

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A secret from the environment, else generated once into $VAR_DIR/secrets/<name>.
secret() {
  local name=$1 env_value=$2 file="$VAR_DIR/secrets/$1"
  if [ -n "$env_value" ]; then printf '%s' "$env_value"; return; fi
  if [ ! -s "$file" ]; then
    mkdir -p "$VAR_DIR/secrets" && chmod 700 "$VAR_DIR/secrets"
    (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | head -c 40 > "$file")
  fi
  cat "$file"
}

# Is the process in pid file $1 alive?
pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops the process in pid file $1: TERM, wait up to $2 s, then KILL.
stop_pid() {
  local file=$1 wait_s=${2:-20} pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((wait_s * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop in ${wait_s}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}
