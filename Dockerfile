# steward: multi-stage build. The builder compiles the release binary (SQLite and libpq are
# built from source by their crates; libpq links the system OpenSSL); the runtime image holds
# only the binary, the dashboard and the libraries it links.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock diesel.toml ./
COPY src ./src
COPY migrations ./migrations
COPY static ./static
RUN cargo build --release --locked \
    && cp target/release/steward /usr/local/bin/steward

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local/bin/steward /usr/local/bin/steward
COPY --from=builder /src/static /usr/share/steward/static
ENV STEWARD_STATIC_DIR=/usr/share/steward/static \
    STEWARD_DATA_DIR=/data \
    STEWARD_BIND=0.0.0.0:8080
# 0.0.0.0 is not a loopback address: steward refuses to start there without a token, so run
# the container with STEWARD_ADMIN_TOKEN=<token> (every /api route then needs
# "Authorization: Bearer <token>"). STEWARD_DATABASE_URL=postgres://... selects PostgreSQL;
# otherwise the SQLite database lives in /data.
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["steward"]
CMD ["serve"]
