# tokenwarden worker image: the worker (ENTRYPOINT) and the starter CLI.
#
#   docker build -t tokenwarden:local .
#
# docker-compose.yml builds it for the worker and the one-shot `starter setup` job.
# Every base image is pinned to an exact tag; deploy/compose_test.go checks that the Go
# version here is the one go.mod names and that the build targets exist.

# --- build -------------------------------------------------------------------------
FROM golang:1.26.8-bookworm AS build

# Never download another toolchain: the image's Go is the one go.mod asks for.
ENV GOTOOLCHAIN=local \
    CGO_ENABLED=0

WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# Static binaries (the SQLite driver, modernc.org/sqlite, is pure Go), without the build
# machine's paths. .dockerignore keeps .git out, hence -buildvcs=false.
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/ ./worker ./starter

# --- runtime -----------------------------------------------------------------------
# debian slim rather than distroless: it has bash, which the healthchecks use to GET
# /livez and /readyz (bash's /dev/tcp, no curl needed), and `docker compose exec` into it
# works.
FROM debian:12.12-slim

# A fixed non-root user: the key file mounted into the container must be owned by this
# UID and mode 0600 or 0400 (the worker refuses a key file that group or others can read).
ARG UID=65532
ARG GID=65532
RUN groupadd --system --gid "${GID}" tokenwarden \
    && useradd --system --uid "${UID}" --gid "${GID}" --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin tokenwarden \
    && mkdir -p /data \
    && chown "${UID}:${GID}" /data \
    && chmod 0700 /data

# Root certificates for the providers' HTTPS token endpoints, from the pinned build image.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/worker /out/starter /usr/local/bin/

# SQLite store and default key file location; docker-compose.yml uses PostgreSQL and a
# Docker secret for the key file instead. A named volume mounted here starts out owned
# by the tokenwarden user.
ENV TOKENWARDEN_DATA_DIR=/data \
    TOKENWARDEN_HTTP_ADDR=0.0.0.0:8234
VOLUME ["/data"]
WORKDIR /data

# The codec endpoint (/codec), /livez, /readyz and /metrics. /codec decrypts payloads
# for whoever can reach it: publish it on the host's loopback only (docker run -p
# 127.0.0.1:8234:8234). On 0.0.0.0 it is beyond loopback, so the worker needs
# TOKENWARDEN_CODEC_BEARER_TOKEN to start.
EXPOSE 8234

# Liveness: the process serves HTTP (GET /livez on the port of TOKENWARDEN_HTTP_ADDR
# above). docker-compose.yml replaces it with /readyz, which also asks Temporal, the
# token store and the key file.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8234 && printf 'GET /livez HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

USER ${UID}:${GID}
ENTRYPOINT ["/usr/local/bin/worker"]
