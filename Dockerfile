# VetPMS: one image for cmd-writer, projector, query-reader and vetctl.
# compose.yaml picks the program per service (`command:`); alone:
#   docker build -t vetpms:local .
#   docker run --rm vetpms:local vetctl --help

# ---- build: compiler, -dev packages, `make all` (no network needed by make) ----
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      librdkafka-dev libpq-dev libevent-dev libcjson-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what `make all` reads: a new source folder must be added here too.
COPY Makefile ./
COPY common/ common/
COPY cmd-writer/ cmd-writer/
COPY projector/ projector/
COPY query-reader/ query-reader/
COPY vetctl/ vetctl/
RUN make -j"$(nproc)" all \
 && ls -l bin/cmd-writer bin/projector bin/query-reader bin/vetctl

# ---- runtime: shared libraries only, non-root ----
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libpq5 libevent-2.1-7 libevent-pthreads-2.1-7 libcjson1 libsodium23 \
      ca-certificates curl \
      libjs-chart.js \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --home-dir /opt/vetpms --no-create-home \
      --shell /usr/sbin/nologin vetpms
COPY --from=build /src/bin/ /usr/local/bin/
COPY schema/ /opt/vetpms/schema/
# The dashboard page query-reader serves at /app/ (docs/dashboard.md); Chart.js
# comes from libjs-chart.js above (VETPMS_READER_VENDOR_DIR's default).
COPY web/app/ /opt/vetpms/web/app/
# The projector reads migrations from schema/migrations relative to its working
# directory; the variable makes that independent of WORKDIR.
WORKDIR /opt/vetpms
ENV VETPMS_MIGRATIONS_DIR=/opt/vetpms/schema/migrations
ENV VETPMS_READER_APP_DIR=/opt/vetpms/web/app
USER vetpms
EXPOSE 8080 8081 8082
CMD ["vetctl", "--help"]
