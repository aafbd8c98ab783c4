#!/usr/bin/env bash
# PostgreSQL set-up of the compose stack (compose.yaml mounts this file into the
# postgres image's /docker-entrypoint-initdb.d/): the same roles, database,
# extension, schema and grants as scripts/pg.sh `setup` for the local stack: both
# run schema/setup/roles.sql and database.sql.
#
# The image's entrypoint runs it once, on the first start with an empty data
# volume, against a temporary server on the Unix socket (local connections are
# trusted there). Changing a VETPMS_PG_*_PASSWORD later does not reach an existing
# volume: ALTER ROLE by hand, or `docker compose down -v` to start over.
#
# The entrypoint sources this file when it is not executable, so no `exit` and no
# `set -u` here (either would leak into the entrypoint); errors stop it through
# ON_ERROR_STOP and `set -e`, which the entrypoint itself also uses.
set -e

vetpms_psql() {
  psql -X -q -v ON_ERROR_STOP=1 --no-password --username "${POSTGRES_USER:-postgres}" "$@"
}

# The SQL is the local stack's (scripts/pg.sh): schema/setup/, mounted by
# compose.yaml at /vetpms-setup. Passwords as psql variables, never pasted into SQL.
setup_dir=${VETPMS_SETUP_DIR:-/vetpms-setup}
vetpms_psql --dbname postgres \
  -v projector_pw="${VETPMS_PG_PROJECTOR_PASSWORD:?VETPMS_PG_PROJECTOR_PASSWORD not set}" \
  -v reader_pw="${VETPMS_PG_READER_PASSWORD:?VETPMS_PG_READER_PASSWORD not set}" \
  -v analyst_pw="${VETPMS_PG_ANALYST_PASSWORD:?VETPMS_PG_ANALYST_PASSWORD not set}" \
  -f "$setup_dir/roles.sql"
vetpms_psql --dbname vetpms -f "$setup_dir/database.sql"
