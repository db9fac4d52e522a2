# syntax=docker/dockerfile:1

# Build a static binary (pure-Go SQLite, so no cgo).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /idp ./cmd/idp \
 && mkdir -p /out/var/lib/idp

# Distroless: no shell, no package manager; runs as uid/gid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /idp /idp
COPY --from=build --chown=65532:65532 /out/var/lib/idp /var/lib/idp
ENV IDP_DATA_DIR=/var/lib/idp \
    IDP_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/idp"]
CMD ["serve"]
