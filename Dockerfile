# syntax=docker/dockerfile:1
#
# The koreo controller image: one static binary on distroless, running as non-root.
#
#   docker build -t ghcr.io/koreo-rs/koreo:dev .
#
# The binary is built for the musl target (`<arch>-unknown-linux-musl`, so it needs no libc at
# run time). musl's own malloc is slow under concurrency; koreo's global allocator is mimalloc,
# compiled into the binary from C, so the musl build keeps a fast allocator. The C parts
# (mimalloc, ring for TLS) are compiled with musl-gcc. The target is the build machine's own
# architecture: for arm64 images build on arm64 or under emulation (docker buildx --platform).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep crates and build artefacts between builds; the binary is copied out of
# the target cache, and checked to be static (no NEEDED libraries, no program interpreter).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    TARGET_CC=musl-gcc cargo build --release --locked -p koreo --target "$target"; \
    cp "target/$target/release/koreo" /koreo; \
    if readelf -d /koreo | grep -q NEEDED || readelf -l /koreo | grep -q INTERP; then \
      echo "/koreo is not a static binary" >&2; exit 1; \
    fi

# /etc/passwd with nonroot (65532), CA certificates, tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="koreo" \
      org.opencontainers.image.description="Koreo workflows as Kubernetes controllers" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /koreo /koreo
USER 65532:65532
# /metrics, /healthz, /readyz (koreo run --metrics-addr)
EXPOSE 8080
ENTRYPOINT ["/koreo"]
