#!/usr/bin/env bash
# A private PostgreSQL cluster for the local stack and the tests: initdb into
# $VETPMS_VAR_DIR/pg, its own port, TCP on 127.0.0.1 only, the socket inside the
# cluster folder. As root, the server runs as the `postgres` user, which owns
# only that folder.
#   pg.sh start   initdb if new, start, create roles/database/extension (idempotent)
#   pg.sh stop    fast shutdown
#   pg.sh psql    a superuser psql on the cluster (extra args passed through)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIR="$VAR_DIR/pg"
PGBIN=${VETPMS_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] || die "postgresql server binaries not found (run scripts/install-deps.sh)"

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

init_cluster() {
  [ -f "$DIR/data/PG_VERSION" ] && return 0
  log "pg: initdb into $DIR/data"
  mkdir -p "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
  chmod 700 "$DIR"
  as_owner "$PGBIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 > "$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; die "pg: initdb failed"; }
  # The socket lives in the owner-only folder: trust on it reaches only root and
  # the owner. TCP is loopback only, with passwords.
  cat > "$DIR/data/pg_hba.conf" <<HBA
local all postgres trust
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
HBA
}

start() {
  init_cluster
  if as_owner "$PGBIN/pg_ctl" -D "$DIR/data" status > /dev/null 2>&1; then
    log "pg: already running"
  else
    as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
      -o "-p $PG_PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB -c fsync=${VETPMS_PG_FSYNC:-on}" \
      start > /dev/null || { tail -20 "$DIR/postgres.log" >&2; die "pg: start failed"; }
    log "pg: ready on 127.0.0.1:$PG_PORT"
  fi
  setup
}

su_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PG_PORT" -U postgres "$@"; }

# Roles, database, schema and extension (schema/setup/, shared with the compose
# stack's scripts/container-pg-init.sh); passwords as psql variables.
setup() {
  su_psql -d postgres \
    -v projector_pw="$(secret pg_projector_password "${VETPMS_PG_PROJECTOR_PASSWORD:-}")" \
    -v reader_pw="$(secret pg_reader_password "${VETPMS_PG_READER_PASSWORD:-}")" \
    -v analyst_pw="$(secret pg_analyst_password "${VETPMS_PG_ANALYST_PASSWORD:-}")" \
    -f "$ROOT/schema/setup/roles.sql"
  su_psql -d vetpms -f "$ROOT/schema/setup/database.sql"
}

stop() {
  [ -f "$DIR/data/PG_VERSION" ] || return 0
  if as_owner "$PGBIN/pg_ctl" -D "$DIR/data" status > /dev/null 2>&1; then
    as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop > /dev/null
    log "pg: stopped"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  psql) shift; su_psql -d vetpms "$@" ;;
  *) echo "usage: $0 start|stop|psql" >&2; exit 2 ;;
esac
