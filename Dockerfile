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

# distroless/base has glibc and nothing else; it runs as uid 65532.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/bin/beacongate /usr/local/bin/beacongate
USER nonroot:nonroot
# Public beacon port, admin port (bind it with -admin.listen :9100 only on a
# private network), and the embedded development broker.
EXPOSE 8080 9100
# Production: set BEACONGATE_KAFKA_BROKERS; without it the embedded
# development broker starts and writes to /tmp/kafka.
ENV BEACONGATE_EMBEDDED_DATA_DIR=/tmp/kafka
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/beacongate", "healthcheck", "-url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/beacongate"]
