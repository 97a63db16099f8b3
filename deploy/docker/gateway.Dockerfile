# Builds bin/gateway into a minimal image. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t sluice-gateway .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.work go.work.sum ./
COPY client/go.mod client/go.sum client/
COPY pkg/go.mod pkg/go.sum pkg/
COPY pkg/dev/go.mod pkg/dev/go.sum pkg/dev/
COPY limiter/go.mod limiter/go.sum limiter/
COPY gateway/go.mod gateway/go.sum gateway/
COPY worker/go.mod worker/go.sum worker/
RUN cd gateway && go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gateway ./gateway/cmd/gateway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /gateway
EXPOSE 8080 9090
USER nonroot
ENTRYPOINT ["/gateway"]
