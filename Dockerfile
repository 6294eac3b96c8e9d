# syntax=docker/dockerfile:1.7
# followguard container: multi-stage build with a cached dependency layer (cargo-chef),
# a slim Debian runtime, a non-root user and the default model baked in.

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
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --bin followguard

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin followguard
COPY --from=builder /src/target/release/followguard /usr/local/bin/followguard
COPY models/ /usr/share/followguard/models/
# The model path is a flag/env like every other setting: mount another file and point
# FOLLOWGUARD_MODEL at it to override the baked-in default.
ENV FOLLOWGUARD_MODEL=/usr/share/followguard/models/default.json \
    FOLLOWGUARD_ADMIN_ADDR=0.0.0.0:9095 \
    RUST_LOG=info
USER 10001
EXPOSE 9095
ENTRYPOINT ["/usr/local/bin/followguard"]
CMD ["serve"]
