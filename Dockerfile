# syntax=docker/dockerfile:1.7
# followguard container: multi-stage build with a cached dependency layer (cargo-chef),
# a slim Debian runtime with CA certificates, a non-root user, the default model baked in
# (overridable by path) and `serve` as the default command. Linted by hadolint in
# scripts/ops-check.sh (there is no Docker engine on the build machines).
#
# Issue #23: the `dist` profile (Cargo.toml: release without debug info, stripped), OCI
# version / revision labels from build arguments, and a HEALTHCHECK with the binary's own
# probe (the image has no curl):
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .

FROM rust:1.95-bookworm AS chef
# Build deps for rdkafka's bundled librdkafka (C build with SSL and zlib).
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake libssl-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/* \
    && cargo install cargo-chef --locked --version 0.1.71
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml / Cargo.lock change.
RUN cargo chef cook --profile dist --locked --recipe-path recipe.json
COPY . .
# A cargo workspace (crates/*): the service binary, and the benchmark binary that
# `followguard bench-…` runs from the same directory.
RUN cargo build --profile dist --locked --bin followguard --bin followguard-bench \
    && cp target/dist/followguard target/dist/followguard-bench /usr/local/bin/

FROM debian:bookworm-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="followguard" \
      org.opencontainers.image.description="Streaming detection of accounts buying followers" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 followguard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin followguard
COPY --from=builder /usr/local/bin/followguard /usr/local/bin/followguard-bench /usr/local/bin/
COPY models/default.json /usr/share/followguard/models/default.json
# The model path is a flag/env like every other setting: mount another file and point
# FOLLOWGUARD_MODEL at it to override the baked-in default (FOLLOWGUARD_MODEL_SHA256 pins it).
# The admin server binds all interfaces inside the container (the binary defaults to loopback).
ENV FOLLOWGUARD_MODEL=/usr/share/followguard/models/default.json \
    FOLLOWGUARD_ADMIN_ADDR=0.0.0.0:9464 \
    RUST_LOG=info
# generate/replay write relative paths; /tmp is writable for the non-root user.
WORKDIR /tmp
USER 10001:10001
# Admin HTTP: /metrics /healthz /readyz /info.
EXPOSE 9464
# GET /healthz on FOLLOWGUARD_ADMIN_ADDR (0.0.0.0 is probed through loopback); exit 0 / 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/followguard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/followguard"]
CMD ["serve"]
