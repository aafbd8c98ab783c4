#!/usr/bin/env bash
# Installs the Debian packages the build, the local stack and the tests need.
# Idempotent: asks apt only for what is missing, so a second run costs ~1 s.
set -euo pipefail

packages=(
  build-essential pkg-config
  librdkafka-dev libpq-dev libevent-dev libcjson-dev libsodium-dev libcmocka-dev
  postgresql postgresql-contrib
  openjdk-17-jre-headless maven
  python3 python3-pytest python3-requests python3-psycopg python3-confluent-kafka
  python3-jsonschema python3-yaml
  python3-venv  # scripts/venv.sh: schemathesis in .cache/venv
  curl procps jq
  valgrind  # make valgrind-unit
  wrk  # make bench: the HTTP load generator
  clang libfuzzer-14-dev libclang-rt-14-dev  # make fuzz, and its smoke in make test:
                                            # libFuzzer, the sanitizer runtimes
  libjs-chart.js  # the dashboard page's charts (query-reader serves it under /app/vendor/)
  chromium chromium-driver python3-selenium  # the page's browser test (tests/e2e)
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
