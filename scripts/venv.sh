#!/usr/bin/env bash
# Python tools the suite runs as subprocesses that Debian does not package:
# schemathesis (tests/e2e/test_schemathesis.py), pinned, in a virtualenv under
# $VETPMS_CACHE_DIR (.cache/venv). Debian's python3 refuses a system-wide pip
# install, and the suite itself runs on /usr/bin/python3 with Debian's modules.
# Idempotent: returns at once when the pinned version is installed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VENV="$CACHE_DIR/venv"
SCHEMATHESIS_VERSION=4.32.5

if [ "$("$VENV/bin/st" --version 2>/dev/null || true)" = "st, version $SCHEMATHESIS_VERSION" ]; then
  exit 0
fi
log "venv: schemathesis $SCHEMATHESIS_VERSION into $VENV"
/usr/bin/python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
