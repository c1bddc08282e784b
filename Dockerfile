# syntax=docker/dockerfile:1.7
#
# One image with both binaries:
#   /usr/local/bin/strom-operator  (the ENTRYPOINT)
#   /usr/local/bin/strom-broker    (the operator runs broker pods from this same image)
#
#   DOCKER_BUILDKIT=1 docker build -t ghcr.io/strom-dev/strom:0.1.0 .
#
# The build uses BuildKit cache mounts for the cargo registry and the target dir, so
# rebuilds only recompile what changed. rdkafka is a dev-dependency only; nothing
# from it ends up in the image.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# The SBOM tool, in a stage of its own so its layer is reused until the base changes.
FROM ${RUST_IMAGE} AS sbom-tool
ARG CARGO_CYCLONEDX_VERSION=0.5.9
# --debug: it runs once per build, for seconds; optimising it would take minutes.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo install --locked --debug --root /opt/sbom-tool cargo-cyclonedx --version ${CARGO_CYCLONEDX_VERSION}

FROM ${RUST_IMAGE} AS builder
# The release profile keeps some debug info for local profiling; the image's binaries are
# stripped of it below, so the build makes none (RUN sees ARGs as environment variables).
ARG CARGO_PROFILE_RELEASE_DEBUG=0
COPY --from=sbom-tool /opt/sbom-tool/bin/cargo-cyclonedx /usr/local/cargo/bin/
WORKDIR /src
COPY . .
# The target dir lives in a cache mount, which is not part of the layer: copy the two
# binaries out of it inside the same RUN. Debug info (the release profile keeps some) is
# stripped; symbols stay, so panics still print readable backtraces. `--locked`: the
# image is built from exactly the versions in Cargo.lock, or not at all.
# The SBOM (CycloneDX JSON, one per binary: every crate compiled into it, with its
# version, license and source) is made from the same lock file and ships in the image
# under /usr/share/doc/strom/.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p strom-broker -p strom-operator \
 && mkdir -p /out/sbom \
 && cp target/release/strom-broker target/release/strom-operator /out/ \
 && strip --strip-debug /out/strom-broker /out/strom-operator \
 && cargo cyclonedx --format json --spec-version 1.5 --no-build-deps --describe binaries \
 && cp broker/strom-broker_bin.cdx.json /out/sbom/strom-broker.cdx.json \
 && cp operator/strom-operator_bin.cdx.json /out/sbom/strom-operator.cdx.json

# distroless "cc": glibc + libgcc_s, no shell, runs as uid/gid 65532 ("nonroot").
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="strom" \
      org.opencontainers.image.description="Strom: Kafka-compatible broker (strom-broker) and its Kubernetes operator (strom-operator)" \
      org.opencontainers.image.source="https://github.com/strom-dev/strom" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/strom-broker /out/strom-operator /usr/local/bin/
COPY --from=builder /out/sbom/ /usr/share/doc/strom/
# Broker pods run `strom-operator pod-init` (init container) and `strom-broker` by name.
ENV PATH=/usr/local/bin:/usr/bin:/bin
USER 65532:65532
# 9092: Kafka client listener (broker), 9644: broker admin HTTP (/health, /ready,
# /metrics), 8080: operator HTTP (/metrics, /healthz, /readyz).
EXPOSE 9092 9644 8080
ENTRYPOINT ["/usr/local/bin/strom-operator"]
