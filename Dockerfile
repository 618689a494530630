# A static oauth-operator on a distroless base, running as non-root.
# docker build -t oauth-operator:0.1.0 .
FROM rust:1.95-alpine AS build
# The Rust image pins the toolchain; these come with its Alpine release (make builds jemalloc).
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc make
WORKDIR /src
COPY . .
# Alpine's Rust targets musl, which links statically.
RUN cargo build --release --locked --bin oauth-operator \
    && cp target/release/oauth-operator /oauth-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /oauth-operator /oauth-operator
USER 65532:65532
ENTRYPOINT ["/oauth-operator"]
