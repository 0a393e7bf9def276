# syntax=docker/dockerfile:1
# Multi-stage build of beacongate. It builds exactly as `make build` does:
# cgo on, with the librdkafka that confluent-kafka-go bundles (static,
# glibc), so the runtime image needs glibc but no librdkafka package.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN make build VERSION=${VERSION}
# The spool's directory, created here because the runtime image has no
# shell: owned by the runtime user, so a volume Docker creates on it starts
# writable (Kubernetes mounts its own volume there; see deploy/kubernetes).
RUN mkdir -p /out/var/lib/beacongate/spool

# distroless/base has glibc and nothing else; it runs as uid 65532.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/bin/beacongate /usr/local/bin/beacongate
COPY --from=build --chown=65532:65532 /out/var/lib/beacongate /var/lib/beacongate
USER nonroot:nonroot
# The working directory is / and the root file system may be read-only:
# the spool goes to an absolute path on a volume, never to the flag's
# relative default ./data/spool. Everything else needs no disk.
ENV BEACONGATE_SPOOL_DIR=/var/lib/beacongate/spool
VOLUME ["/var/lib/beacongate"]
# Public beacon port, admin port (bind it with -admin.listen :9100 only on a
# private network), and the embedded development broker.
EXPOSE 8080 9100
# Production: set BEACONGATE_KAFKA_BROKERS; without it the embedded
# development broker starts and writes to /tmp/kafka.
ENV BEACONGATE_EMBEDDED_DATA_DIR=/tmp/kafka
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/beacongate", "healthcheck", "-url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/beacongate"]
